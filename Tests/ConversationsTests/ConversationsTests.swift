import Chat
import ChatAPI
@testable import Conversations
import Foundation
import Imaging
import Testing
import TestSupport

func tempDir(_ tag: String) -> URL {
    let u = FileManager.default.temporaryDirectory.appendingPathComponent("conv-\(tag)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

let testModel = ModelIdentity(name: "tiny", configSHA256: String(repeating: "cd", count: 32), weightFormat: "bf16")

/// A conversation without a model: two turns, two images (fake PNG bytes: saving never decodes).
func syntheticSnapshot(answer: String = "A cat.") -> SessionSnapshot {
    func image(_ id: Int, _ fill: UInt8) -> SessionSnapshot.Image {
        let bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47] + [UInt8](repeating: fill, count: 5000)
        let info = AttachedImage(id: id, name: "/home/u/Pictures/pic \(id).png", width: 640, height: 480, tiles: 7, tokenCost: 1794,
                                 grid: TileGrid(cols: 3, rows: 2), tiling: TilingOptions(maxTiles: 6), tokensPerTile: 256,
                                 sha256: ContentHash.sha256(bytes))
        return .init(info: info, bytes: bytes, tokens: [Float](repeating: Float(fill), count: 32))
    }
    var st = TurnStats(); st.promptTokens = 2000; st.generatedTokenIDs = [1, 2, 3]; st.decodeSeconds = 0.5
    let rec = GenerationRecord(parameters: SamplingParameters(temperature: 0.7, topK: 40, seed: 9), model: testModel, stats: st)
    let turns = [
        ChatTurn(question: "Image-1: <image>\nImage-2: <image>\nCompare them.", typed: "Compare them.", answer: answer,
                 imageIDs: [1, 2], interrupted: false, record: rec),
        ChatTurn(question: "And the colours? 颜色呢？", typed: "And the colours? 颜色呢？", answer: "Red, then stopped",
                 imageIDs: [], interrupted: true, record: rec),
    ]
    return SessionSnapshot(systemMessage: "Be brief.", turns: turns, images: [image(1, 7), image(2, 9)], model: testModel)
}

struct FormatTests {
    @Test func saveAndLoadRoundTrip() throws {
        let root = tempDir("rt"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let snap = syntheticSnapshot()
        let h = try store.create()
        try store.rename(h, to: "cats")
        try store.save(snap, to: h)
        h.close()
        let id = try store.resolve("cats")
        let byPrefix = try store.resolve(String(id.prefix(15))), latest = try store.resolve(ConversationStore.latest)
        #expect(byPrefix == id && latest == id)
        let f = try store.read(id)
        #expect(f.version == 1 && f.name == "cats" && f.title == "Compare them." && f.images.map(\.name) == ["pic 1.png", "pic 2.png"])
        let loaded = store.load(f, model: testModel)
        #expect(loaded.problems.isEmpty && loaded.cachedVision == 2)
        // Texts, images (bytes, vision tokens, tiling), records come back equal; an image's name keeps
        // only the file name (the conversation holds no paths).
        var want = snap
        for i in want.images.indices {
            let o = want.images[i].info
            want.images[i].info = AttachedImage(id: o.id, name: (o.name as NSString).lastPathComponent, width: o.width, height: o.height,
                                                tiles: o.tiles, tokenCost: o.tokenCost, grid: o.grid, tiling: o.tiling,
                                                tokensPerTile: o.tokensPerTile, sha256: o.sha256)
        }
        let same = loaded.snapshot == want
        #expect(same, "the reloaded conversation differs")
        // Another model's vision tokens are not used (the images get encoded again).
        var other = testModel; other.configSHA256 = String(repeating: "ee", count: 32)
        #expect(store.load(f, model: other).cachedVision == 0)
        // The same image twice is stored once.
        var twice = snap; twice.images[1].bytes = twice.images[0].bytes; twice.images[1].info.sha256 = twice.images[0].info.sha256
        let h2 = try store.create(); try store.save(twice, to: h2); h2.close()
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("\(h2.id)/images").path).count == 1)
    }

    /// `updated` is kept to the second; saves within one second list (and resume as the latest)
    /// in the order they were written, whichever order the folder lists them in.
    @Test func savesWithinOneSecondListInTheOrderWritten() throws {
        let root = tempDir("tie"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let second = Date(timeIntervalSince1970: 2_000_000)
        let a = try store.create(now: second), b = try store.create(now: second)
        defer { a.close(); b.close() }
        try store.save(syntheticSnapshot(answer: "A cat."), to: a, now: second)
        usleep(20_000)
        try store.save(syntheticSnapshot(answer: "A dog."), to: b, now: second)
        #expect(store.list().first?.id == b.id)
        #expect(try store.resolve(ConversationStore.latest) == b.id)
        usleep(20_000)
        try store.save(syntheticSnapshot(answer: "A cat, again."), to: a, now: second)
        #expect(store.list().first?.id == a.id)
        #expect(try store.resolve(ConversationStore.latest) == a.id)
    }

    @Test func listingSearchingAndNames() throws {
        let root = tempDir("list"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        for (i, a) in ["A cat.", "Ein Hund, très mignon.", "A bird."].enumerated() {
            let h = try store.create(now: Date(timeIntervalSince1970: Double(1_000_000 + i)))
            try store.save(syntheticSnapshot(answer: a), to: h, now: Date(timeIntervalSince1970: Double(2_000_000 + i)))
            h.close()
        }
        let all = store.list()
        #expect(all.count == 3 && all.map(\.updated) == all.map(\.updated).sorted(by: >) && all.allSatisfy { $0.turns == 2 && $0.images == 2 })
        #expect(store.search("TRES MIGNON").count == 1 && store.search("hund").first?.id == all[1].id)
        #expect(store.search("colours").count == 3 && store.search("zebra").isEmpty)
        let h = try store.open(all[0].id).0
        try store.rename(h, to: "birds")
        for bad in ["", "../x", "a/b", ".hidden", String(repeating: "x", count: 81), "tab\tname"] {
            #expect(throws: ConversationError.badName(bad)) { try store.rename(h, to: bad) }
        }
        try store.save(syntheticSnapshot(answer: "A bird."), to: h); h.close()
        let h2 = try store.open(all[1].id).0
        #expect(throws: ConversationError.nameTaken("birds", id: all[0].id)) { try store.rename(h2, to: "birds") }
        h2.close()
        // A conversation created and never saved leaves nothing behind.
        let empty = try store.create(); empty.close()
        #expect(store.list().count == 3)
    }

    /// A new name (a rename, a save-as, an import) may not start with "-", which the command
    /// line reads as an option; a file that carries such a name already opens, resolves by it and
    /// keeps it when saved again.
    @Test func aNewNameMayNotLookLikeAnOption() throws {
        let root = tempDir("dash"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root.appendingPathComponent("store"))
        let h = try store.create(); try store.save(syntheticSnapshot(), to: h)
        for name in ["-x", "--help", "- spaced"] {
            #expect(throws: ConversationError.optionLikeName(name)) { try store.rename(h, to: name) }
        }
        let said = ConversationError.optionLikeName("-x").errorDescription ?? ""
        #expect(said.contains("-x cannot be a new conversation name") && said.contains("read as an option"), "\(said)")
        #expect(ConversationStore.problem(withNewName: "x-1") == nil && ConversationStore.problem(withNewName: "../x") == .badName("../x"))
        h.close()
        // A name from before the rule, written into the file.
        let url = root.appendingPathComponent("store/\(h.id)/conversation.json")
        var o = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        o["name"] = "-old"
        try JSONSerialization.data(withJSONObject: o).write(to: url)
        #expect(try store.resolve("-old") == h.id)
        let (again, _) = try store.open(h.id)
        try store.rename(again, to: "-old")
        try store.save(syntheticSnapshot(answer: "Again."), to: again); again.close()
        #expect(try store.read(h.id).name == "-old")
        // An export of it imports under another name only.
        let json = root.appendingPathComponent("export.json")
        try store.exportJSON(h.id, to: json)
        let other = ConversationStore(root: root.appendingPathComponent("other"))
        #expect(throws: ConversationError.optionLikeName("-old")) { try other.importJSON(json) }
        #expect(other.list().isEmpty, "a refused import stores nothing")
        let id = try other.importJSON(json, name: "old")
        #expect(try other.read(id).name == "old")
    }

    @Test func twoAppsCannotWriteOneConversation() throws {
        let root = tempDir("lock"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let h = try store.create(); try store.save(syntheticSnapshot(), to: h)
        do { _ = try store.open(h.id); Issue.record("a second open must be refused") } catch let e as ConversationError {
            #expect(e == .locked(h.id, by: "process \(getpid())"))
            #expect(e.errorDescription!.contains("open in another internvl-chat"))
        }
        h.close()
        let (again, _) = try store.open(h.id)       // free once closed
        again.close()
    }

    /// Writes `conversation.json` of a fresh saved conversation through `edit`, then checks that
    /// opening it fails with `expected` in the message, and that the file is left untouched.
    func refused(_ expected: String, _ edit: (inout [String: Any]) -> Void = { _ in }, raw: ((Data) -> Data)? = nil) throws {
        let root = tempDir("bad"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let h = try store.create(); try store.save(syntheticSnapshot(), to: h); h.close()
        let url = root.appendingPathComponent("\(h.id)/conversation.json")
        var data = try Data(contentsOf: url)
        if let raw { data = raw(data) } else {
            var o = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            edit(&o)
            data = try JSONSerialization.data(withJSONObject: o)
        }
        try data.write(to: url)
        do { _ = try store.open(h.id); Issue.record("should be refused: \(expected)") } catch {
            let m = (error as? LocalizedError)?.errorDescription ?? "\(error)"
            #expect(m.contains(expected), "\(m)")
            #expect(m.contains(url.path) || m.contains(h.id), "the message names the file: \(m)")
        }
        #expect(try Data(contentsOf: url) == data, "a refused file is never rewritten")
        #expect(store.list().first?.problem != nil, "listed as unreadable")
        let written = try FileManager.default.attributesOfItem(atPath: url.path)[.modificationDate] as? Date
        #expect(store.list().first?.updated == written, "an unreadable one is dated by its file, not the year 1")
        do { _ = try store.resolve("no such name"); Issue.record("resolved a name nothing has") } catch {
            let m = (error as? LocalizedError)?.errorDescription ?? "\(error)"
            #expect(m.contains("one could not be read") && m.contains("may be it"), "a name in an unreadable file is not claimed missing: \(m)")
        }
        // The app goes on: a new conversation saves beside it.
        let h2 = try store.create(); try store.save(syntheticSnapshot(), to: h2); h2.close()
        #expect(store.list().filter { $0.problem == nil }.count == 1)
    }

    @Test func brokenFilesAreRefusedAndLeftAlone() throws {
        try refused("not complete JSON", raw: { $0.prefix($0.count / 2) })
        try refused("not complete JSON", raw: { _ in Data() })
        try refused("newer internvl-chat (format version 7)") { $0["version"] = 7 }
        try refused("the number 1e+40 at version is out of its field's range") { $0["version"] = 1e40 }
        try refused("the number 1e+40 at images[0].bytes is out of its field's range") { o in
            var i = o["images"] as! [[String: Any]]; i[0]["bytes"] = 1e40; o["images"] = i
        }
        try refused("the date at created is not an ISO 8601 date") { $0["created"] = "yesterday" }
        try refused("the field answer is missing at turns[0]") { o in
            var t = o["turns"] as! [[String: Any]]; t[0]["answer"] = nil; o["turns"] = t
        }
        try refused("wrong type at turns[1].interrupted") { o in
            var t = o["turns"] as! [[String: Any]]; t[1]["interrupted"] = "yes"; o["turns"] = t
        }
        try refused("turn 1 shows image 6, but there are 2") { o in
            var t = o["turns"] as! [[String: Any]]; t[0]["images"] = [0, 5]; o["turns"] = t
        }
        try refused("format is \"something else\"") { $0["format"] = "something else" }
        // Path traversal and oversized claims.
        try refused("where a SHA-256 (64 hex digits) belongs") { o in
            var i = o["images"] as! [[String: Any]]; i[0]["sha256"] = "../../../etc/passwd"; o["images"] = i
        }
        try refused("claims 10000000000 bytes") { o in
            var i = o["images"] as! [[String: Any]]; i[0]["bytes"] = 10_000_000_000; o["images"] = i
        }
        try refused("claims 100000x100000 pixels") { o in
            var i = o["images"] as! [[String: Any]]; i[0]["width"] = 100_000; i[0]["height"] = 100_000; o["images"] = i
        }
        try refused("has format \"exe\"") { o in
            var i = o["images"] as! [[String: Any]]; i[0]["format"] = "exe"; o["images"] = i
        }
        try refused("its id") { $0["id"] = "../../elsewhere" }
    }

    /// A number its field cannot hold (Foundation's decoder names no field for these) is
    /// refused naming the file, the field and the number, the file left as it was.
    @Test func numbersOutOfRangeNameTheirField() throws {
        /// Puts `literal`, as written, where `edit` puts its placeholder.
        func number(_ literal: String, _ edit: @escaping (inout [String: Any], String) -> Void) -> (Data) -> Data {
            { data in
                var o = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
                edit(&o, "NUMBER-HERE")
                let text = String(decoding: try! JSONSerialization.data(withJSONObject: o), as: UTF8.self)
                return Data(text.replacingOccurrences(of: "\"NUMBER-HERE\"", with: literal).utf8)
            }
        }
        func image(_ key: String) -> (inout [String: Any], String) -> Void {
            { o, v in var i = o["images"] as! [[String: Any]]; i[0][key] = v; o["images"] = i }
        }
        func parameter(_ key: String) -> (inout [String: Any], String) -> Void {
            { o, v in
                var t = o["turns"] as! [[String: Any]]
                var r = t[0]["record"] as! [String: Any], p = r["parameters"] as! [String: Any]
                p[key] = v; r["parameters"] = p; t[0]["record"] = r; o["turns"] = t
            }
        }
        try refused("the number 1e30 at images[0].tiles is out of its field's range", raw: number("1e30", image("tiles")))
        try refused("the number 99999999999999999999 at images[0].width is out of its field's range",
                    raw: number("99999999999999999999", image("width")))
        try refused("the number -99999999999999999999 at images[0].grid.cols is out of its field's range", raw: number("-99999999999999999999") { o, v in
            var i = o["images"] as! [[String: Any]]; i[0]["grid"] = ["cols": v, "rows": 1]; o["images"] = i
        })
        try refused("the number -5 at turns[0].record.parameters.seed is out of its field's range", raw: number("-5", parameter("seed")))
        try refused("the number 1e300 at turns[0].record.parameters.temperature is out of its field's range",
                    raw: number("1e300", parameter("temperature")))
        try refused("the number 2.5 at turns[1].images[0] is out of its field's range", raw: number("2.5") { o, v in
            var t = o["turns"] as! [[String: Any]]; t[1]["images"] = [v]; o["turns"] = t
        })
        // An import names the field inside the export, and stores nothing.
        let root = tempDir("numexp"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root.appendingPathComponent("store"))
        let h = try store.create(); try store.save(syntheticSnapshot(), to: h); h.close()
        let json = root.appendingPathComponent("export.json")
        try store.exportJSON(h.id, to: json)
        var text = try String(contentsOf: json, encoding: .utf8)
        text.replace(/"tiles"\s*:\s*\d+/, with: "\"tiles\": 1e30", maxReplacements: 1)
        try Data(text.utf8).write(to: json)
        let other = ConversationStore(root: root.appendingPathComponent("other"))
        do { _ = try other.importJSON(json); Issue.record("an export with tiles 1e30 was imported") } catch {
            let m = (error as? LocalizedError)?.errorDescription ?? "\(error)"
            #expect(m.contains("the number 1e30 at conversation.images[0].tiles is out of its field's range") && m.contains(json.path), "\(m)")
        }
        #expect(other.list().isEmpty)
    }

    @Test func aHugeFileIsRefusedWithoutReadingIt() throws {
        let root = tempDir("huge"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let h = try store.create(); try store.save(syntheticSnapshot(), to: h); h.close()
        let url = root.appendingPathComponent("\(h.id)/conversation.json")
        #expect(truncate(url.path, 10 << 30) == 0)          // sparse: 10 GB claimed, nothing written
        #expect(throws: ConversationError.invalid(url.path, reason: "it is 10.0 GB, more than the 64 MB allowed")) { try store.read(h.id) }
    }

    @Test func missingOrAlteredImagesAreNamedAndTheTextStillLoads() throws {
        let root = tempDir("img"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let snap = syntheticSnapshot()
        let h = try store.create(); try store.save(snap, to: h); h.close()
        let images = root.appendingPathComponent("\(h.id)/images")
        let f1 = images.appendingPathComponent("\(snap.images[0].info.sha256).png")
        try FileManager.default.removeItem(at: f1)
        var loaded = store.load(try store.read(h.id), model: testModel)
        #expect(loaded.problems.count == 1 && loaded.problems[0].contains("Image 1 (pic 1.png) is missing"))
        #expect(loaded.snapshot.turns.map(\.typed) == snap.turns.map(\.typed) && loaded.snapshot.turns.map(\.answer) == snap.turns.map(\.answer))
        #expect(loaded.snapshot.turns[0].imageIDs.isEmpty && loaded.snapshot.turns[0].question == "Compare them.",
                "a turn that lost an image keeps its text, without placeholders")
        // A video's turn saved with its markers in the text typed too (older saves) loses them with its frames.
        var video = snap
        video.turns[0].question = "Frame1: <image>\nFrame2: <image>\nWhat happens?"
        video.turns[0].typed = video.turns[0].question
        let hv = try store.create(); try store.save(video, to: hv); hv.close()
        try FileManager.default.removeItem(at: root.appendingPathComponent("\(hv.id)/images/\(snap.images[0].info.sha256).png"))
        let lostVideo = store.load(try store.read(hv.id), model: testModel)
        #expect(lostVideo.snapshot.turns[0].imageIDs.isEmpty && lostVideo.snapshot.turns[0].question == "What happens?", "\(lostVideo.snapshot.turns[0])")
        var bytes = snap.images[0].bytes; bytes[100] ^= 1
        try Data(bytes).write(to: f1)
        loaded = store.load(try store.read(h.id), model: testModel)
        #expect(loaded.problems.count == 1 && loaded.problems[0].contains("was altered"))
        // A corrupt vision file is ignored (the image is encoded again), not trusted.
        try Data(snap.images[0].bytes).write(to: f1)
        let vision = root.appendingPathComponent("\(h.id)/vision")
        for n in try FileManager.default.contentsOfDirectory(atPath: vision.path) {
            try Data("IVT1garbage".utf8).write(to: vision.appendingPathComponent(n))
        }
        loaded = store.load(try store.read(h.id), model: testModel)
        #expect(loaded.problems.isEmpty && loaded.cachedVision == 0 && loaded.snapshot.images.allSatisfy { $0.tokens == nil })
        // So is one whose header is right but which holds a NaN.
        for n in try FileManager.default.contentsOfDirectory(atPath: vision.path) {
            var tokens = [Float](repeating: 0.5, count: 32); tokens[7] = .nan
            try VisionTokens.encode(tokens, model: testModel).write(to: vision.appendingPathComponent(n))
        }
        loaded = store.load(try store.read(h.id), model: testModel)
        #expect(loaded.cachedVision == 0 && loaded.snapshot.images.allSatisfy { $0.tokens == nil }, "a NaN in stored vision tokens")
    }

    @Test func exportAndImport() throws {
        let root = tempDir("exp"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root.appendingPathComponent("store"))
        var snap = syntheticSnapshot(answer: "A **cat** <script>alert(1)</script> \u{1b}[31mred\nR&D line\n```\nif a < b && c > d {}\n```")
        snap.images[0].info = AttachedImage(id: 1, name: "/tmp/we]ird (1).png", width: 640, height: 480, tiles: 7, tokenCost: 1794,
                                            grid: TileGrid(cols: 3, rows: 2), tiling: TilingOptions(maxTiles: 6), sha256: snap.images[0].info.sha256)
        let h = try store.create(); try store.rename(h, to: "my cats"); try store.save(snap, to: h); h.close()
        // JSON round trip into another store.
        let json = root.appendingPathComponent("export.json")
        try store.exportJSON(h.id, to: json)
        let other = ConversationStore(root: root.appendingPathComponent("other"))
        let id = try other.importJSON(json)
        let a = try store.read(h.id), b = try other.read(id)
        #expect(b.turns == a.turns && b.images == a.images && b.system == a.system && b.name == "my cats" && b.id != a.id || b.id == id)
        #expect(other.load(b, model: testModel).snapshot.images.map(\.bytes) == snap.images.map(\.bytes))
        // Broken imports are refused and leave nothing behind.
        var o = try JSONSerialization.jsonObject(with: Data(contentsOf: json)) as! [String: Any]
        var imgs = o["images"] as! [String: String]
        imgs[imgs.keys.first!] = Data([1, 2, 3]).base64EncodedString()
        o["images"] = imgs
        try JSONSerialization.data(withJSONObject: o).write(to: json)
        #expect(throws: ConversationError.self) { try other.importJSON(json, name: "again") }
        #expect(other.list().count == 1)
        // Markdown: a file and its images, rendered by a Markdown library.
        let md = try store.exportMarkdown(h.id, to: root.appendingPathComponent("md"))
        let text = try String(contentsOf: md, encoding: .utf8)
        #expect(!text.contains("\u{1b}") && !text.contains("<script>"))
        let html = try markdownToHTML(md)
        let srcs = html.matches(of: /<img alt="[^"]*" src="([^"]+)"/).map { String($0.1) }
        #expect(srcs.count == 2, "\(html)")
        for s in srcs {
            let path = md.deletingLastPathComponent().appendingPathComponent(s.removingPercentEncoding!).path
            #expect(FileManager.default.fileExists(atPath: path), "image \(s) is beside the Markdown file")
        }
        #expect(html.contains("<strong>cat</strong>") && html.contains("Compare them.") && html.contains("颜色呢"))
        #expect(html.contains("red<br />\nR&amp;D line"), "a single line break stays a line break: \(html)")
        #expect(html.contains("if a &lt; b &amp;&amp; c &gt; d {}"), "code keeps its text (escaped once, by the renderer): \(html)")
    }

    /// An image the conversation lost (its file deleted by hand) does not stop a Markdown export:
    /// the text names it, the other image is linked, and no empty images folder is left.
    @Test func aLostImageIsNamedInTheMarkdown() throws {
        let root = tempDir("explost"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root.appendingPathComponent("store"))
        let snap = syntheticSnapshot()
        let h = try store.create(); try store.save(snap, to: h); h.close()
        let images = root.appendingPathComponent("store/\(h.id)/images")
        let first = try FileManager.default.contentsOfDirectory(atPath: images.path).first { $0.hasPrefix(snap.images[0].info.sha256) }!
        try FileManager.default.removeItem(at: images.appendingPathComponent(first))
        let md = try String(contentsOf: store.exportMarkdown(h.id, to: root.appendingPathComponent("md")), encoding: .utf8)
        #expect(md.contains("_(image pic 1.png: missing from the saved conversation)_"), "\(md)")
        #expect(md.contains("](\(h.id)-images/\(snap.images[1].info.sha256).png)") && !md.contains(snap.images[0].info.sha256), "\(md)")
        for file in try FileManager.default.contentsOfDirectory(atPath: images.path) {
            try FileManager.default.removeItem(at: images.appendingPathComponent(file))
        }
        let none = try String(contentsOf: store.exportMarkdown(h.id, to: root.appendingPathComponent("md2")), encoding: .utf8)
        #expect(none.contains("_(image pic 2.png: missing from the saved conversation)_"), "\(none)")
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("md2/\(h.id)-images").path))
    }

    /// The model a conversation names comes from its file (an import, a hand edit): in the
    /// Markdown it is text like any other, on the header's line (it was written as it was).
    @Test func aModelNameInTheExportIsText() throws {
        let root = tempDir("expmodel"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root.appendingPathComponent("store"))
        var snap = syntheticSnapshot()
        snap.model = ModelIdentity(name: "tiny\u{1b}]0;PWNED\u{07}<script>x</script>\nsecond", configSHA256: testModel.configSHA256,
                                   weightFormat: "bf16\u{1b}[31m\u{9b}")
        let h = try store.create(); try store.save(snap, to: h); h.close()
        let md = try String(contentsOf: store.exportMarkdown(h.id, to: root.appendingPathComponent("md")), encoding: .utf8)
        #expect(!md.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" || (0x7F...0x9F).contains($0.value) }, "\(md.debugDescription)")
        #expect(!md.contains("<script>"))
        let header = md.split(separator: "\n").first { $0.hasPrefix("_Saved by") } ?? ""
        #expect(header.contains("model tiny]0;PWNED&lt;script&gt;x&lt;/script&gt; second (bf16[31m) · 2 turns_"), "\(header)")
    }

    /// Python-Markdown (pip `markdown`, installed by scripts/install-deps --test) as the viewer.
    func markdownToHTML(_ file: URL) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import markdown, sys; print(markdown.markdown(open(sys.argv[1], encoding='utf-8').read()))", file.path]
        let out = Pipe(); p.standardOutput = out
        try p.run()
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "python3 -m markdown must be installed (scripts/install-deps --test)")
        return String(decoding: d, as: UTF8.self)
    }
}

/// The crash-safety tests drive `conversation-writer`, which saves through the real store.
struct CrashSafetyTests {
    static var writer: URL { TestData.tool("conversation-writer") }

    static func run(_ exe: String, _ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let out = Pipe(); p.standardOutput = out; p.standardError = out
        try p.run()
        let d = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: d, as: UTF8.self))
    }

    /// SIGKILL delivered by strace at the N-th call of each system call a save makes (open,
    /// write, fsync, rename, unlink), for every N until a run completes: every step of a save is
    /// interrupted once. After each kill the conversation loads whole, as one of the versions.
    @Test func sigkillAtEverySystemCallOfASave() throws {
        let base = tempDir("base"); defer { try? FileManager.default.removeItem(at: base) }
        var (status, text) = try Self.run(Self.writer.path, ["save", base.path, "3", "64", "0", "0"])
        #expect(status == 0 && text == "saved 0\n")
        var kills = 0, seen = Set<Int>()
        for call in ["openat", "write", "fsync", "rename", "unlink"] {
            var n = 1
            while n < 200 {
                let root = tempDir("strace"); defer { try? FileManager.default.removeItem(at: root) }
                try FileManager.default.removeItem(at: root)
                try FileManager.default.copyItem(at: base, to: root)
                (status, text) = try Self.run("/usr/bin/strace", ["-f", "-o", "/dev/null", "-e", "trace=\(call)",
                                                                  "-e", "inject=\(call):signal=KILL:when=\(n)",
                                                                  Self.writer.path, "save", root.path, "3", "64", "1", "3"])
                let killed = !text.contains("saved 3")
                let (vs, vt) = try Self.run(Self.writer.path, ["verify", root.path])
                #expect(vs == 0, "killed at \(call) #\(n): \(vt)")
                if let k = Int(vt.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") { seen.insert(k) }
                if !killed { break }
                kills += 1
                n += 1
            }
            #expect(n > 1 && n < 200, "\(call): \(n - 1) kill points")
        }
        #expect(kills > 40 && seen == [0, 1, 2, 3], "\(kills) kills; versions found after them: \(seen.sorted())")
    }

    @Test func sigkillAtRandomMomentsLeavesTheLastSaveIntact() throws {
        var versions: [Int] = []
        for trial in 0..<12 {
            let root = tempDir("kill"); defer { try? FileManager.default.removeItem(at: root) }
            let p = Process()
            p.executableURL = Self.writer
            p.arguments = ["loop", root.path, "3", "200"]          // 3 images of 200 KB, new ones every other version
            let out = Pipe(); p.standardOutput = out
            try p.run()
            // Wait for save `target` to complete (0-5, so the kills spread over saves however fast
            // or loaded the machine is), then kill somewhere in the saves that follow it.
            let target = trial % 6
            var seen = ""
            while !seen.contains("saved \(target)\n") { seen += String(decoding: out.fileHandleForReading.availableData, as: UTF8.self) }
            usleep(useconds_t(trial * 700))                       // 0 to 7.7 ms: one save takes a few ms
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            #expect(p.terminationReason == .uncaughtSignal)
            let (status, text) = try Self.run(Self.writer.path, ["verify", root.path])
            #expect(status == 0, "trial \(trial): \(text)")
            if let k = Int(text.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") {
                versions.append(k)
                #expect(k >= target, "trial \(trial): save \(target) had completed, version \(k) loaded")
            }
            // No temporary file may be mistaken for a saved one, and the next save still works.
            let (s2, t2) = try Self.run(Self.writer.path, ["fill", root.path, "10"])
            #expect(s2 == 0 && t2.contains("saved 0"), "saving after the crash: \(t2)")
        }
        #expect(versions.count == 12)
        #expect(Set(versions).count >= 4, "kills landed at many different saves: \(versions)")
    }

    @Test func aFullDiskIsReportedAndThePreviousSaveSurvives() throws {
        // A 1.5 MB tmpfs in a private mount namespace (unshare -rm works without root).
        let root = tempDir("full"); defer { try? FileManager.default.removeItem(at: root) }
        let mnt = root.appendingPathComponent("disk")
        try FileManager.default.createDirectory(at: mnt, withIntermediateDirectories: true)
        let script = "mount -t tmpfs -o size=1536k tmpfs '\(mnt.path)' && '\(Self.writer.path)' fill '\(mnt.path)/store' 600"
        let (status, text) = try Self.run("/usr/bin/unshare", ["-rm", "sh", "-c", script])
        // fill: version 0 (one 600 KB image) fits; version 2 (two new images) cannot; then verify.
        #expect(text.contains("saved 0\n"), "\(text)")
        #expect(text.contains("No space left on device") && text.contains("Whatever was saved before is intact"), "\(text)")
        #expect(status == 0 && text.hasSuffix("version 0\n"), "the previous save loads: \(text)")
    }
}

/// With a real (tiny) model: a conversation saved and restored into a fresh session answers the
/// next question exactly as the original session does.
struct ReloadTests {
    static func collect(_ s: AsyncStream<ChatEvent>) async -> (stats: TurnStats?, restored: [AttachedImage]?, failure: String?) {
        var st: TurnStats?, r: [AttachedImage]?, f: String?
        for await e in s {
            switch e {
            case .finished(let x): st = x
            case .restored(let x): r = x
            case .failed(let m): f = m
            default: break
            }
        }
        return (st, r, f)
    }

    @Test(arguments: [true, false])
    func aFollowUpAfterReloadEqualsTheOneWithout(keepVision: Bool) async throws {
        let root = tempDir("reload"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let p = SamplingParameters(maxNewTokens: 12)
        let a = ChatSession(engine: try ChatEngine(folder: TestData.url("tiny-b")), systemMessage: "Be brief.")
        let cat = try await a.attach(path: TestData.url("images/photo-chelsea.png").path, maxTiles: 4)
        let coffee = try await a.attach(path: TestData.url("images/photo-coffee.png").path, maxTiles: nil)
        _ = await Self.collect(await a.send("Describe.", images: [cat], parameters: p))
        _ = await Self.collect(await a.send("Compare with this one.", images: [coffee], parameters: p))
        let saved = await a.snapshot()
        let h = try store.create(); try store.save(saved, to: h); h.close()
        if !keepVision { try FileManager.default.removeItem(at: root.appendingPathComponent("\(h.id)/vision")) }
        let want = await Self.collect(await a.send("And the colours?", images: [], parameters: p)).stats
        // Each record keeps the vision cost of the images its turn showed first.
        #expect(saved.turns.allSatisfy { ($0.record?.visionSeconds ?? 0) > 0 } && want?.visionSeconds == 0)

        // A fresh engine and session, as in a new process.
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        let b = ChatSession(engine: engine)
        let loaded = store.load(try store.read(h.id), model: engine.identity)
        #expect(loaded.problems.isEmpty && loaded.cachedVision == (keepVision ? 2 : 0))
        let r = await Self.collect(await b.restore(loaded.snapshot))
        #expect(r.failure == nil && r.restored?.map(\.tiles) == [cat.tiles, coffee.tiles])
        let again = await b.snapshot()
        #expect(again.turns == saved.turns.map { t in var t = t; t.imageIDs = t.imageIDs.map { [cat.id: 1, coffee.id: 2][$0]! }; return t })
        #expect(again.images.map(\.bytes) == saved.images.map(\.bytes) && again.images.map(\.tokens) == saved.images.map(\.tokens),
                "vision tokens: stored ones used, or encoded again to the same values")
        let got = await Self.collect(await b.send("And the colours?", images: [], parameters: p)).stats
        #expect(got?.generatedTokenIDs == want?.generatedTokenIDs && got?.text == want?.text)
        #expect(got?.promptTokenIDs == want?.promptTokenIDs)
    }
}

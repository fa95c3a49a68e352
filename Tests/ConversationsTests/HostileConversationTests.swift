import ChatAPI
import Conversations
import Foundation
import Testing

extension FormatTests {
    static func editImage(_ key: String, _ value: Any) -> (inout [String: Any]) -> Void {
        { o in
            var imgs = o["images"] as! [[String: Any]]
            imgs[0][key] = value
            o["images"] = imgs
        }
    }

    /// Every field that sizes something is checked, with overflow-safe arithmetic.
    @Test func fieldsThatSizeThingsAreValidated() throws {
        try refused("claims 4294967296x4294967296 pixels", { o in
            Self.editImage("width", 4_294_967_296)(&o); Self.editImage("height", 4_294_967_296)(&o)
        })
        try refused("claims 9223372036854775807x2 pixels", { o in
            Self.editImage("width", Int.max)(&o); Self.editImage("height", 2)(&o)
        })
        try refused("costs 5 tokens", Self.editImage("tokenCost", 5))
        try refused("costs 1794 tokens", Self.editImage("tokensPerTile", 1 << 40))
        try refused("has 1000000 tiles", Self.editImage("tiles", 1_000_000))
        try refused("0x0 grid", Self.editImage("grid", ["cols": 0, "rows": 0]))
        try refused("1000x1000 grid", Self.editImage("grid", ["cols": 1000, "rows": 1000]))
        try refused("9223372036854775807x9223372036854775807 grid", Self.editImage("grid", ["cols": Int.max, "rows": Int.max]))
        try refused("impossible tiling", Self.editImage("tiling", ["tileSize": -448, "minTiles": 1, "maxTiles": 6, "useThumbnail": true]))
        try refused("impossible tiling", Self.editImage("tiling", ["tileSize": 448, "minTiles": 7, "maxTiles": 6, "useThumbnail": true]))
        try refused("impossible statistics", { o in
            var turns = o["turns"] as! [[String: Any]]
            var r = turns[0]["record"] as! [String: Any]
            r["promptTokens"] = -1
            turns[0]["record"] = r
            o["turns"] = turns
        })
    }

    /// An image attached through a server whose model's tiling is not known (no grid, no cost)
    /// is saved and loaded back as it was; a zero grid with tiles or a cost is still refused.
    @Test func anImageWithoutKnownTilesRoundTrips() throws {
        let root = tempDir("uncosted"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        var snap = syntheticSnapshot()
        for i in snap.images.indices {
            let o = snap.images[i].info
            snap.images[i].info = AttachedImage(id: o.id, name: "pic \(o.id).png", width: o.width, height: o.height, tiles: 0, tokenCost: 0,
                                                grid: TileGrid(cols: 0, rows: 0), tiling: o.tiling, tokensPerTile: 0, sha256: o.sha256)
            snap.images[i].tokens = nil
        }
        let h = try store.create(); try store.save(snap, to: h); h.close()
        let loaded = store.load(try store.read(h.id), model: testModel)
        #expect(loaded.problems.isEmpty && loaded.snapshot.images.map(\.info) == snap.images.map(\.info) && loaded.snapshot.turns == snap.turns)
        try refused("0x0 grid", { o in Self.editImage("grid", ["cols": 0, "rows": 0])(&o); Self.editImage("tiles", 0)(&o) })
    }

    /// A copied folder may hold links: a `.lock` that links elsewhere is replaced, not written
    /// through; `images` and `vision` folders that link elsewhere are replaced by folders of the
    /// conversation's own, and nothing is pruned past them; files the store did not name are
    /// never pruned.
    @Test func linksInAConversationFolderAreNotFollowed() throws {
        let root = tempDir("links"); defer { try? FileManager.default.removeItem(at: root) }
        let outside = tempDir("outside"); defer { try? FileManager.default.removeItem(at: outside) }
        let store = ConversationStore(root: root)
        let h = try store.create(); try store.save(syntheticSnapshot(), to: h); h.close()
        let dir = root.appendingPathComponent(h.id)
        let victim = outside.appendingPathComponent("victim.txt")
        try Data("DATA\n".utf8).write(to: victim)
        try FileManager.default.removeItem(at: dir.appendingPathComponent(".lock"))
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(".lock"), withDestinationURL: victim)
        let kept = ["notes.txt", "keep.png", String(repeating: "a", count: 64) + ".png"]
        for sub in ["images", "vision"] {
            let target = outside.appendingPathComponent(sub)
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            for n in kept { try Data("mine".utf8).write(to: target.appendingPathComponent(n)) }
            try FileManager.default.removeItem(at: dir.appendingPathComponent(sub))
            try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent(sub), withDestinationURL: target)
        }
        let (h2, _) = try store.open(h.id)
        try store.save(syntheticSnapshot(answer: "Again."), to: h2)
        h2.close()
        #expect(try String(contentsOf: victim, encoding: .utf8) == "DATA\n", "the lock's link target was written")
        let lockType = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent(".lock").path)[.type] as? FileAttributeType
        #expect(lockType == .typeRegular)
        for sub in ["images", "vision"] {
            #expect(try FileManager.default.contentsOfDirectory(atPath: outside.appendingPathComponent(sub).path).sorted() == kept.sorted(), "\(sub)")
            let type = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent(sub).path)[.type] as? FileAttributeType
            #expect(type == .typeDirectory, "\(sub) is still a link")
        }
        #expect(store.load(try store.read(h.id), model: testModel).problems.isEmpty)
        // In the conversation's own folder, a file the store did not name stays.
        try Data("mine".utf8).write(to: dir.appendingPathComponent("images/notes.txt"))
        let (h3, _) = try store.open(h.id); try store.save(syntheticSnapshot(), to: h3); h3.close()
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("images/notes.txt").path))
    }

    /// Image bytes that are no image of their entry's format (an export whose bytes and SHA-256
    /// agree but are not an image): refused on import; already in a folder, that image is left
    /// out on load (its turns keep their text) instead of failing the whole resume.
    @Test func imageBytesThatAreNoImageAreCaught() throws {
        let root = tempDir("noimage"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        var snap = syntheticSnapshot()
        let garbage = [UInt8]("this is not an image at all".utf8)
        snap.images[1].bytes = garbage
        snap.images[1].info.sha256 = ContentHash.sha256(garbage)
        let h = try store.create(); try store.save(snap, to: h); h.close()
        let loaded = store.load(try store.read(h.id), model: testModel)
        #expect(loaded.problems.count == 1 && loaded.problems[0].contains("is not the jpeg image its entry says"), "\(loaded.problems)")
        #expect(loaded.snapshot.images.count == 1 && loaded.snapshot.turns[0].imageIDs == [])
        let export = root.appendingPathComponent("x.json")
        try store.exportJSON(h.id, to: export)
        #expect { _ = try store.importJSON(export) } throws: { e in
            ((e as? LocalizedError)?.errorDescription ?? "").contains("is not the jpeg image its entry says")
        }
    }

    /// Two conversations given one name before either is written (two processes saving or
    /// importing at once): the first write claims it, the second is refused, so the store never
    /// holds two of one name; an import under a taken name leaves nothing behind.
    @Test func oneNameIsClaimedByOneConversation() throws {
        let root = tempDir("names"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let a = try store.create(), b = try store.create()
        try store.rename(a, to: "race"); try store.rename(b, to: "race")      // both checks pass: nothing is written yet
        try store.save(syntheticSnapshot(), to: a)
        for _ in 0..<2 {                      // a refused save claims nothing: the next one is refused too
            #expect { try store.save(syntheticSnapshot(), to: b) } throws: { e in
                if case ConversationError.nameTaken("race", let id) = e { return id == a.id }
                return false
            }
        }
        try store.save(syntheticSnapshot(), to: a)
        a.close(); b.close()
        #expect(store.list().filter { $0.name == "race" }.count == 1)
        let export = root.appendingPathComponent("x.json")
        try store.exportJSON(a.id, to: export)
        let before = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
        #expect(throws: ConversationError.self) { _ = try store.importJSON(export, name: "race") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).sorted() == before)
    }

    /// Temporary files a killed save left behind go when the conversation is opened again.
    @Test func orphanedTemporaryFilesAreRemovedOnOpen() throws {
        let root = tempDir("tmp"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let h = try store.create(); try store.save(syntheticSnapshot(), to: h); h.close()
        let dir = root.appendingPathComponent(h.id)
        let orphans = [".conversation.json.tmp-4242-17", "images/.abc.png.tmp-1-2", "vision/.x.ivt.tmp-99-123456"]
        let kept = ["notes.tmp-1-2", ".conversation.json.tmp-x-1"]
        for name in orphans + kept {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(name).deletingLastPathComponent(),
                                                    withIntermediateDirectories: true)
            try Data("partial".utf8).write(to: dir.appendingPathComponent(name))
        }
        let (h2, f) = try store.open(h.id)
        h2.close()
        #expect(f.turns.count == 2)
        for name in orphans { #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path), "\(name)") }
        for name in kept { #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path), "\(name)") }
    }

    /// A conversation file that is a FIFO is refused at once, not waited on.
    @Test func aConversationFileThatIsAPipeIsRefused() throws {
        let root = tempDir("fifo"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let h = try store.create(); try store.save(syntheticSnapshot(), to: h); h.close()
        let url = root.appendingPathComponent("\(h.id)/conversation.json")
        try FileManager.default.removeItem(at: url)
        #expect(mkfifo(url.path, 0o644) == 0)
        #expect { _ = try store.read(h.id) } throws: { e in
            ((e as? LocalizedError)?.errorDescription ?? "").contains("is a FIFO (named pipe), not a regular file")
        }
    }
}

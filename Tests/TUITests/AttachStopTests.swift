import ChatAPI
import Foundation
import Imaging
import Testing
@testable import TUI

/// A backend that encodes as ChatSession does: one piece of work at a time, its cancel flag reset
/// when an attach starts and checked between the encoder's layers; a stopped attach ends its
/// stream with no event.
final class EncodingBackend: IdleBackend, @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false
    private var nextID = 1
    let layers: Int, layerTakes: Duration
    private(set) var started = 0, finished = 0, layersDone = 0

    init(layers: Int = 24, layerTakes: Duration = .milliseconds(20)) { self.layers = layers; self.layerTakes = layerTakes }

    override func attachStreaming(path: String, maxTiles: Int?) async -> AsyncStream<ChatEvent> {
        let (stream, c) = AsyncStream<ChatEvent>.makeStream()
        serial { [self] in
            lock.withLock { raised = false; started += 1 }
            c.yield(.phase(.decodingImage(name: path)))
            for k in 1...layers {
                try? await Task.sleep(for: layerTakes)
                if lock.withLock({ raised }) { c.finish(); return }
                lock.withLock { layersDone += 1 }
                c.yield(.phase(.encodingImage(layer: k, of: layers)))
            }
            let id = lock.withLock { defer { nextID += 1; finished += 1 }; return nextID }
            c.yield(.attached(AttachedImage(id: id, name: path, width: 8, height: 8, tiles: 1, tokenCost: 258)))
            c.finish()
        }
        return stream
    }
    override func cancel() { lock.withLock { raised = true } }
}

struct AttachStopTests {
    /// Delivers the backend's actions until `until` holds (at most 5 s).
    static func deliver(_ app: App, until: (AppState) -> Bool) async {
        for _ in 0..<1000 where !until(app.state) {
            for a in app.inbox.take() { app.dispatch(a) }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    static func encoding(_ s: AppState) -> Bool { if case .encodingImage = s.phase { true } else { false } }

    @Test func escStopsAnImageBeingEncoded() async {
        let backend = EncodingBackend()
        let app = ImageOrderTests.app(backend)
        ImageOrderTests.command(app, "/attach /pictures/cat.png")
        await Self.deliver(app, until: Self.encoding)
        #expect(render(app.state, width: 100, height: 12).text.contains("(Esc stops)"), "the status line says how to stop it")
        app.dispatch(.cancel)
        #expect(render(app.state, width: 100, height: 12).text.contains("stopping the attach…"))
        await ImageOrderTests.settle(app)
        #expect(!render(app.state, width: 100, height: 12).text.contains("stopping"), "the hint outlived the attach")
        #expect(backend.finished == 0 && backend.layersDone < backend.layers, "the encode ran to the end: \(backend.layersDone) layers")
        #expect(app.state.pending.isEmpty && app.state.attaching == 0 && app.state.phase == nil)
        #expect(app.state.messages.last?.text == "Attaching cat.png was stopped; attach it again.")
        ImageOrderTests.command(app, "What is this?")
        #expect(app.state.messages.contains { $0.kind == .user && $0.text == "What is this?" }, "a question is no longer held back")
    }

    @Test func ctrlCStopsAnAttachAsItStopsAnAnswerAndAsksToQuitOnlyWhenIdle() {
        var s = AppState()
        _ = reduce(&s, .type("/attach /pictures/cat.png")); _ = reduce(&s, .enter)
        #expect(reduce(&s, .interrupt) == [.stopAttaching] && !s.confirmQuit, "Ctrl-C during an encode asked to quit")
        _ = reduce(&s, .attachFailed("Attaching cat.png was stopped; attach it again."))
        #expect(reduce(&s, .interrupt).isEmpty && s.confirmQuit)
    }

    @Test func escStopsTheAttachesAskedBeforeItEvenThoseNotStartedYet() async {
        let backend = EncodingBackend()
        let app = ImageOrderTests.app(backend)
        ImageOrderTests.command(app, "/attach /pictures/cat.png")
        ImageOrderTests.command(app, "/attach /pictures/dog.png")
        app.dispatch(.cancel)               // before the backend started the first (it resets its flag when it starts)
        await ImageOrderTests.settle(app)
        #expect(backend.finished == 0, "an attach went on after Esc")
        #expect(app.state.pending.isEmpty && app.state.attaching == 0)
        #expect(app.state.messages.suffix(2).map(\.text) == ["Attaching cat.png was stopped; attach it again.",
                                                               "Attaching dog.png was stopped; attach it again."])
        ImageOrderTests.command(app, "/attach /pictures/cat.png")      // one asked after Esc is attached
        await ImageOrderTests.settle(app)
        #expect(app.state.pending.map(\.name) == ["/pictures/cat.png"] && backend.finished == 1)
    }

    @Test func escStopsAReCut() async {
        let backend = EncodingBackend(layers: 4)
        let app = ImageOrderTests.app(backend)
        ImageOrderTests.command(app, "/attach /pictures/cat.png")
        await ImageOrderTests.settle(app)
        let before = app.state.pending
        #expect(before.count == 1)
        var s = app.state
        s.pending[0] = AttachedImage(id: before[0].id, name: before[0].name, width: 640, height: 427, tiles: 7, tokenCost: 1794,
                                     grid: TileGrid(cols: 3, rows: 2), tiling: TilingOptions(maxTiles: 12), tokensPerTile: 256)
        app.state = s
        ImageOrderTests.command(app, "/tiles 1 1")
        #expect(!app.state.retiling.isEmpty)
        app.dispatch(.cancel)
        await ImageOrderTests.settle(app)
        #expect(app.state.retiling.isEmpty && app.state.pending.map(\.tiles) == [7])
        #expect(app.state.messages.last?.text == "Re-cutting cat.png was stopped; it keeps the tiles it had.")
    }

    @Test func anAttachAskedDuringAnAnswerWaitsForItAndSaysSo() {
        var s = AppState()
        _ = reduce(&s, .type("Tell me a story.")); _ = reduce(&s, .enter)
        _ = reduce(&s, .event(.phase(.generating)))
        _ = reduce(&s, .type("/attach /pictures/cat.png"))
        #expect(reduce(&s, .enter).isEmpty, "the attach went to the backend behind the answer")
        #expect(reduce(&s, .attachPaths(["/pictures/clip.mp4"])).isEmpty)
        #expect(s.messages.suffix(2).map(\.text) == ["Attaching cat.png when the answer ends.", "Sampling clip.mp4 when the answer ends."])
        #expect(render(s, width: 120, height: 12).text.contains("2 files queued to attach"))
        _ = reduce(&s, .type("/tiles 2")); _ = reduce(&s, .enter)            // settings changed meanwhile apply to them
        _ = reduce(&s, .type("/frames 4")); _ = reduce(&s, .enter)
        _ = reduce(&s, .event(.text("Once")))
        var st = TurnStats(); st.generatedTokenIDs = [1]
        #expect(reduce(&s, .event(.finished(st))) == [.save(name: nil, explicit: false), .attach(path: "/pictures/cat.png", maxTiles: 2),
                                                     .attachVideo(path: "/pictures/clip.mp4", segments: 4, maxTiles: 1)])
        #expect(s.messages.last?.text == "Sampling 4 frames of clip.mp4…")
        #expect(s.attachesAfterAnswer.isEmpty && s.attaching == 2)
        #expect(!render(s, width: 120, height: 12).text.contains("queued to attach"))
        #expect(reduce(&s, .answerEnded).isEmpty, "started once")
        // A question waits for them, as for any attach.
        _ = reduce(&s, .type("And this?"))
        #expect(reduce(&s, .enter).isEmpty && s.input == "And this?")
        // An answer stopped before its first token: the attach still follows it.
        var t = AppState()
        _ = reduce(&t, .type("q")); _ = reduce(&t, .enter)
        _ = reduce(&t, .type("/attach /pictures/cat.png")); _ = reduce(&t, .enter)
        #expect(reduce(&t, .cancel) == [.cancel])
        #expect(reduce(&t, .answerEnded) == [.attach(path: "/pictures/cat.png", maxTiles: nil)] && t.input == "q")
    }
}

/// Pasted paths: only images (by their first bytes, as /attach decodes them) and videos (by
/// extension, as /attach tells them apart) are attached; any other path is typed.
struct PastedPathTests {
    @Test func onlyImagesAndVideosAreAttached() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("paste-\(UUID())")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("photos"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let png = try #require(PNGEncoder.encode(RGBImage(width: 2, height: 2, pixels: [UInt8](repeating: 128, count: 12))))
        func file(_ name: String, _ bytes: [UInt8]) -> String {
            let p = dir.appendingPathComponent(name).path
            _ = FileManager.default.createFile(atPath: p, contents: Data(bytes))
            return p
        }
        let image = file("cat.png", png), renamed = file("cat photo.dat", png)
        let text = file("notes.txt", Array("hello\n".utf8)), source = file("main.swift", Array("print(1)\n".utf8))
        let fake = file("fake.png", Array("not an image at all".utf8)), video = file("clip.mp4", [])
        let folder = dir.appendingPathComponent("photos").path
        #expect(PathInput.isAttachable(image) && PathInput.isAttachable(renamed) && PathInput.isAttachable(video))
        for p in [text, source, fake, folder, dir.appendingPathComponent("missing.png").path, "/dev/null"] {
            #expect(!PathInput.isAttachable(p), "\(p)")
        }
        let app = ImageOrderTests.app(DedupBackend())
        for p in [text, source, folder, "'\(fake)'"] {
            app.paste(p)
            #expect(app.state.attaching == 0 && app.state.input == p, "\(p) was offered for attaching")
            app.dispatch(.killToStart)
        }
        app.paste("\(image) \(text)")
        #expect(app.state.attaching == 0 && app.state.input == "\(image) \(text)", "one of them is no image: all typed")
        app.dispatch(.killToStart)
        app.paste("'\(renamed)'")
        #expect(app.state.attaching == 1 && app.state.input.isEmpty)
    }
}

/// The keys right after a paste's end marker (one that was inside the pasted text) are more of
/// the paste: Enter a line break, nothing that would act.
struct PasteTailTests {
    @Test func keysUpToThePauseAreText() {
        var keys: [Terminal.Key] = [.char("r"), .char("m"), .char("\r"), .code(27), .char("\u{04}"), .char("\u{03}"), .alt("b"),
                                    .char("\t"), .char("é"), .wheel(3), .char("\n"), .paste("more\nlines"), .char("!"),
                                    .none, .char("\r")]
        let tail = PasteTail.read { keys.removeFirst() }
        #expect(tail == "rm\n\té\nmore\nlines!")
        #expect(keys == [.char("\r")], "the key after the pause is the person's own")
        var none: [Terminal.Key] = [.none, .char("\r")]
        #expect(PasteTail.read { none.removeFirst() }.isEmpty && none.count == 1)
    }

    /// A pasted CR LF (text from Windows) is one line break, a lone CR or LF one each.
    @Test func aPastedCRLFIsOneLineBreak() {
        let keys = Array("line A\r\nline B\rline C\n\nline D".unicodeScalars)
        var i = 0
        let pasted = Terminal.pasted {
            defer { i += 1 }
            return i < keys.count ? (isKey: false, value: keys[i].value) : (isKey: true, value: UInt32(Terminal.pasteEnd))
        }
        #expect(pasted == "line A\nline B\nline C\n\nline D", "\(pasted.debugDescription)")
    }

    /// A paste of a long file (200,000 characters) is read in a moment: counting the text read so
    /// far at every character froze the screen for half a minute.
    @Test func aLongPasteIsReadInTimeProportionalToItsLength() {
        let text = String(repeating: "word ", count: 40_000)
        let scalars = Array(text.unicodeScalars)
        var i = 0
        var pasted = ""
        let clock = ContinuousClock()
        let reading = clock.measure {
            pasted = Terminal.pasted {
                defer { i += 1 }
                return i < scalars.count ? (isKey: false, value: scalars[i].value) : (isKey: true, value: UInt32(Terminal.pasteEnd))
            }
        }
        #expect(pasted == text)
        #expect(reading < .seconds(3), "reading the paste took \(reading)")
        i = 0
        var tail = ""
        let tailReading = clock.measure {
            tail = PasteTail.read {
                defer { i += 1 }
                return i < scalars.count ? .char(String(Character(scalars[i]))) : .none
            }
        }
        #expect(tail == text)
        #expect(tailReading < .seconds(3), "reading the paste's tail took \(tailReading)")
    }
}

import ChatAPI
import FileInput
import Foundation
import Imaging
import Testing
import TestSupport
@testable import TUI

/// Snapshot helper: compares with Tests/TUITests/__Snapshots__/NAME.txt. With
/// RECORD_SNAPSHOTS=1, or when the file is missing, it writes the file and fails, so that a
/// recording is looked at before it counts.
func assertSnapshot(_ grid: CellGrid, _ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let url = TestData.packageRoot.appendingPathComponent("Tests/TUITests/__Snapshots__/\(name).txt")
    let text = grid.text + "\n"
    if ProcessInfo.processInfo.environment["RECORD_SNAPSHOTS"] == "1" || !FileManager.default.fileExists(atPath: url.path) {
        try text.write(to: url, atomically: true, encoding: .utf8)
        Issue.record("recorded snapshot \(name); check it and run again", sourceLocation: sourceLocation)
        return
    }
    let want = try String(contentsOf: url, encoding: .utf8)
    #expect(text == want, "snapshot \(name) differs:\n\(text)", sourceLocation: sourceLocation)
}

/// Top half red, bottom half blue: half-block cells and sixel placements can be checked by colour.
func twoColour(width: Int, height: Int) -> RGBImage {
    var px = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height { for x in 0..<width {
        let o = (y * width + x) * 3
        if y < height / 2 { px[o] = 230; px[o + 1] = 20; px[o + 2] = 20 } else { px[o] = 20; px[o + 1] = 20; px[o + 2] = 230 }
    } }
    return RGBImage(width: width, height: height, pixels: px)
}

let cat = AttachedImage(id: 1, name: "/home/u/Pictures/cat photo.jpg", width: 640, height: 427, tiles: 7, tokenCost: 1794,
                        grid: TileGrid(cols: 3, rows: 2), tiling: TilingOptions(maxTiles: 12), tokensPerTile: 256,
                        thumbnail: twoColour(width: 240, height: 160))

func conversationState() -> AppState {
    var s = AppState()
    s.modelName = "Mini-InternVL-Chat-2B-V1-5"
    _ = reduce(&s, .attached(cat))
    _ = reduce(&s, .type("What is in this picture? 这张图片里有什么？"))
    _ = reduce(&s, .enter)
    for chunk in ["A grey cat ", "sleeps on a red sofa 🛋️. ", "这是一只猫。", " Averyveryveryverylongwordthatdoesnotfitonanylineatallreally."] {
        _ = reduce(&s, .event(.text(chunk)))
    }
    var st = TurnStats(); st.promptTokens = 1900; st.generatedTokenIDs = Array(repeating: 1, count: 40); st.decodeSeconds = 9.75
    _ = reduce(&s, .event(.finished(st)))
    _ = reduce(&s, .type("And the sofa?"))
    _ = reduce(&s, .enter)
    _ = reduce(&s, .event(.phase(.generating)))
    _ = reduce(&s, .event(.text("It is red")))
    return s
}

struct UpdateTests {
    @Test func editingKeys() {
        var s = AppState()
        _ = reduce(&s, .type("hello world"))
        _ = reduce(&s, .killWord)
        #expect(s.input == "hello " && s.cursor == 6)
        _ = reduce(&s, .home); _ = reduce(&s, .type(">")); _ = reduce(&s, .end); _ = reduce(&s, .backspace)
        #expect(s.input == ">hello")
        _ = reduce(&s, .left); _ = reduce(&s, .left); _ = reduce(&s, .killToEnd)
        #expect(s.input == ">hel")
        _ = reduce(&s, .killToStart)
        #expect(s.input == "" && s.cursor == 0)
        _ = reduce(&s, .type("a")); _ = reduce(&s, .newline); _ = reduce(&s, .type("b"))
        #expect(s.input == "a\nb")
    }

    @Test func sendingStreamingAndCancelling() {
        var s = AppState()
        #expect(reduce(&s, .attached(cat)) == [.prefillAhead([cat])], "an attached image starts the prefill ahead")
        _ = reduce(&s, .type("Describe."))
        #expect(reduce(&s, .enter) == [.send(question: "Describe.", images: [cat])])
        #expect(s.busy && s.pending.isEmpty && s.messages.last?.kind == .assistant)
        _ = reduce(&s, .event(.text("A cat")))
        #expect(s.messages.last?.text == "A cat")
        #expect(reduce(&s, .cancel) == [.cancel])
        var st = TurnStats(); st.interrupted = true
        _ = reduce(&s, .event(.finished(st)))
        #expect(!s.busy && s.messages.last?.interrupted == true)
        let shown = s.messages
        _ = reduce(&s, .attached(cat))
        _ = reduce(&s, .type("x")); _ = reduce(&s, .enter)
        #expect(s.pending.isEmpty)
        // Failed before its first token: nothing was kept, the question and its image come back.
        _ = reduce(&s, .event(.failed("The prompt is too long.")))
        #expect(s.messages == shown + [.init(kind: .error, text: "The prompt is too long. Your question is back in the input.")] && !s.busy)
        #expect(s.input == "x" && s.pending == [cat])
        _ = reduce(&s, .killToStart)
        // With text typed while it was asked, the question goes above that text, the cursor
        // staying where it was.
        _ = reduce(&s, .type("Why?")); _ = reduce(&s, .enter)
        _ = reduce(&s, .type("draft typed meanwhile")); _ = reduce(&s, .left)
        _ = reduce(&s, .event(.failed("The server answered 500.")))
        #expect(s.input == "Why?\ndraft typed meanwhile" && s.cursor == s.input.count - 1 && s.pending == [cat], "\(s.input)")
        #expect(s.messages.last?.text == "The server answered 500. Your question is back in the input.")
        _ = reduce(&s, .end); _ = reduce(&s, .killToStart)
        // Ctrl-C when idle asks first.
        #expect(reduce(&s, .interrupt).isEmpty && s.confirmQuit)
        #expect(reduce(&s, .type("n")).isEmpty && !s.quitRequested)
        _ = reduce(&s, .interrupt)
        #expect(reduce(&s, .type("y")) == [.quit])
    }

    @Test func commandsAndPastedPaths() {
        var s = AppState()
        func run(_ line: String) -> [Effect] { _ = reduce(&s, .type(line)); return reduce(&s, .enter) }
        #expect(run("/attach '/tmp/my cat.jpg'") == [.attach(path: "/tmp/my cat.jpg", maxTiles: nil)])
        #expect(run("/tiles 6").isEmpty && s.maxTiles == 6)
        #expect(run("/set temperature 0.7").isEmpty && s.parameters.temperature == 0.7)
        #expect(run("/set top_k 40").isEmpty && s.parameters.topK == 40)
        #expect(run("/set max_tokens 0").isEmpty && s.messages.last?.kind == .error && s.parameters.maxNewTokens == 1024)
        #expect(run("/set min_tokens 2000").isEmpty && s.messages.last?.kind == .error && s.parameters.minNewTokens == 0)
        #expect(run("/set min_tokens 100").isEmpty && s.parameters.minNewTokens == 100)
        #expect(run("/set max_tokens 50").isEmpty && s.messages.last?.kind == .error && s.parameters.maxNewTokens == 1024)
        #expect(run("/set colour red").isEmpty && s.messages.last?.text.hasPrefix("Usage: /set") == true)
        #expect(run("/attach /tmp/my\\ cat.jpg") == [.attach(path: "/tmp/my cat.jpg", maxTiles: 6)])
        #expect(run("/attach file:///tmp/my%20cat.jpg") == [.attach(path: "/tmp/my cat.jpg", maxTiles: 6)])
        _ = reduce(&s, .attached(cat))
        #expect(run("/detach 2").isEmpty && s.messages.last?.kind == .error)
        #expect(run("/detach 1").isEmpty && s.pending.isEmpty)
        #expect(run("/frobnicate").isEmpty && s.messages.last?.text.contains("Unknown command /frobnicate") == true)
        #expect(run("/system Be brief.") == [.setSystem("Be brief.")])
        #expect(run("/new") == [.newConversation] && s.messages.map(\.kind) == [.info], "only the note of what /new kept")
        // History recall.
        _ = reduce(&s, .up)
        #expect(s.input == "/new")
    }
}

struct TilesAndPasteTests {
    @Test func tilesPreviewTheNewGridAndCostBeforeReEncoding() {
        var s = AppState()
        _ = reduce(&s, .attached(cat))
        func run(_ line: String) -> [Effect] { _ = reduce(&s, .type(line)); return reduce(&s, .enter) }
        // 640x427 (aspect 1.499) with one tile at most: 1x1, no thumbnail tile, 2 + 256 tokens.
        #expect(run("/tiles 1 1") == [.retile(oldID: 1, path: cat.name, maxTiles: 1)])
        #expect(s.retiling[1] == TilePlan(width: 640, height: 427, tiling: cat.tiling, maxTiles: 1, tokensPerTile: 256))
        #expect(s.retiling[1]?.grid == TileGrid(cols: 1, rows: 1) && s.retiling[1]?.tiles == 1 && s.retiling[1]?.tokenCost == 258)
        // With 4: the 1x1 and 2x2 grids tie (|1.499 - 1|) and the image is too small for 2x2, so 1x1 again.
        #expect(cat.plan(maxTiles: 4).grid == TileGrid(cols: 1, rows: 1))
        #expect(cat.plan(maxTiles: 6) == TilePlan(width: 640, height: 427, tiling: cat.tiling, maxTiles: 12, tokensPerTile: 256))
        #expect(s.maxTiles == nil, "/tiles K N changes image K only")
        let panel = render(s, width: 120, height: 30).text
        #expect(panel.contains("→ 1x1 = 1 tile") && panel.contains("258 tok (cutting…)"), "\(panel)")
        // Sending waits for the re-cut image, keeping the question.
        #expect(run("Describe it").isEmpty && s.input == "Describe it" && s.messages.last?.kind == .error)
        _ = reduce(&s, .killToStart)
        let recut = AttachedImage(id: 4, name: cat.name, width: 640, height: 427, tiles: 1, tokenCost: 258, grid: TileGrid(cols: 1, rows: 1))
        #expect(reduce(&s, .retiled(oldID: 1, recut)) == [.prefillAhead([recut])])
        #expect(s.pending == [recut] && s.retiling.isEmpty)
        // The same count again changes nothing; a bad index is refused.
        #expect(run("/tiles 1 1").isEmpty)
        #expect(run("/tiles 3 2").isEmpty && s.messages.last?.text.contains("no image 3") == true)
        #expect(run("/tiles 99").isEmpty && s.messages.last?.text.hasPrefix("Usage: /tiles") == true)
    }

    /// `~` is read as the shell reads it: from $HOME (not the account's home in the password
    /// database, which is what Foundation's expansion uses), `~user` from that account.
    @Test func aTildeIsTheHomeTheShellWouldUse() {
        #expect(FileInput.expandingTilde("~/pic.png", home: "/tmp/qa home") == "/tmp/qa home/pic.png")
        #expect(FileInput.expandingTilde("~", home: "/tmp/h/") == "/tmp/h/")
        #expect(FileInput.expandingTilde("~/a", home: "/tmp/h/") == "/tmp/h/a")
        #expect(FileInput.expandingTilde("~root/x.png", home: "/tmp/h") == "/root/x.png")
        #expect(FileInput.expandingTilde("~no-such-user-here/x.png", home: "/tmp/h") == "~no-such-user-here/x.png")
        #expect(FileInput.expandingTilde("a~/b", home: "/tmp/h") == "a~/b")
        #expect(PathInput.normalise("~/x.png") == (ProcessInfo.processInfo.environment["HOME"] ?? "") + "/x.png")
    }

    @Test func pastedTextThatNamesFiles() {
        #expect(PathInput.split("'/tmp/my cat.jpg'") == ["/tmp/my cat.jpg"])
        #expect(PathInput.split("/tmp/my\\ cat.jpg /tmp/b.png\n") == ["/tmp/my cat.jpg", "/tmp/b.png"])
        #expect(PathInput.split("file:///tmp/my%20cat.jpg file://localhost/tmp/x.png") == ["/tmp/my cat.jpg", "/tmp/x.png"])
        #expect(PathInput.split("\"/tmp/a b.png\"") == ["/tmp/a b.png"])
        #expect(PathInput.split("What is in /tmp/x.png?") == nil, "a sentence is text, not paths")
        #expect(PathInput.split("'/tmp/unclosed") == nil)
        #expect(PathInput.split("") == nil)
    }

    @Test func tabCompletesPathsAfterAttach() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("complete-\(UUID())")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("photos"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for f in ["cat one.jpg", "cat two.jpg", "dog.png", ".hidden.png"] {
            FileManager.default.createFile(atPath: dir.appendingPathComponent(f).path, contents: Data())
        }
        let base = "/attach " + dir.path + "/"
        #expect(PathInput.complete(base + "d")?.input == base + "dog.png")
        #expect(PathInput.complete(base + "ph")?.input == base + "photos/")
        let two = PathInput.complete(base + "c")
        #expect(two?.input == base + "cat " && two?.hint == "cat one.jpg  cat two.jpg")
        #expect(PathInput.complete(base + "z")?.hint == "no match")
        #expect(PathInput.complete(base)?.hint?.contains(".hidden") == false)
        #expect(PathInput.complete("hello") == nil)
        // A name that is not UTF-8 (its U+FFFD names no file) and one holding a newline are not offered.
        let raw = Array((dir.path + "/dog").utf8) + [0xFF] + Array("x.png".utf8)
        let fd = open(raw.map { CChar(bitPattern: $0) } + [0], O_CREAT | O_WRONLY, 0o600)
        #expect(fd >= 0); close(fd)
        FileManager.default.createFile(atPath: dir.appendingPathComponent("dog\nfood.png").path, contents: Data())
        #expect((try FileManager.default.contentsOfDirectory(atPath: dir.path)).count == 7)
        #expect(PathInput.complete(base + "d")?.input == base + "dog.png")
        #expect(PathInput.complete(base)?.hint?.contains("\u{FFFD}") == false)
        #expect(PathInput.complete(base)?.hint?.contains("\n") == false)
        // Through the update: the input and the hint line.
        var s = AppState()
        _ = reduce(&s, .setInput(two!.input, hint: two!.hint))
        #expect(s.input == base + "cat " && s.cursor == s.input.count)
        #expect(render(s, width: 100, height: 20).text.contains("cat one.jpg  cat two.jpg"))
        _ = reduce(&s, .type("o"))
        #expect(s.hint == nil, "the next key clears the hint")
    }

    @Test func phaseETA() {
        var s = AppState()
        _ = reduce(&s, .attached(cat))
        _ = reduce(&s, .type("q")); _ = reduce(&s, .enter)
        _ = reduce(&s, .event(.phase(.prefill(done: 0, of: 1000)), at: 100))
        _ = reduce(&s, .event(.phase(.prefill(done: 250, of: 1000)), at: 105))
        #expect(s.phaseClock?.eta == 15)
        #expect(render(s, width: 100, height: 20).text.contains("reading prompt 250/1000, 15 s left"))
        _ = reduce(&s, .event(.phase(.generating), at: 120))
        #expect(s.phaseClock?.eta == nil)
    }
}

struct ImageDisplayTests {
    @Test func fitKeepsTheAspectInSquarePixels() {
        #expect(Thumbnails.fit(width: 640, height: 427, maxCols: 12, maxRows: 4) == (12, 4))
        #expect(Thumbnails.fit(width: 200, height: 800, maxCols: 12, maxRows: 4) == (2, 4))
        #expect(Thumbnails.fit(width: 1000, height: 100, maxCols: 16, maxRows: 4) == (16, 1))
        #expect(Thumbnails.fit(width: 0, height: 10, maxCols: 16, maxRows: 4) == (0, 0))
    }

    @Test func halfBlocksCarryTheUpperAndLowerPixels() {
        let cells = Thumbnails.halfBlocks(twoColour(width: 40, height: 40), id: 77, cols: 4, rows: 2)
        #expect(cells.count == 8)
        // Row 0 is wholly in the red half, row 1 wholly in the blue half.
        for c in cells[0..<4] { #expect(c.top.r > 200 && c.top.b < 60 && c.bottom.r > 200) }
        for c in cells[4..<8] { #expect(c.top.b > 200 && c.top.r < 60 && c.bottom.b > 200) }
    }

    @Test func paletteMatchesANaiveNearestSearch() {
        // xterm's 256-colour table, built independently.
        var table: [(Int, Int, Int)] = []
        let lv = [0, 95, 135, 175, 215, 255]
        for r in 0..<6 { for g in 0..<6 { for b in 0..<6 { table.append((lv[r], lv[g], lv[b])) } } }
        for i in 0..<24 { table.append((8 + 10 * i, 8 + 10 * i, 8 + 10 * i)) }
        var rng = SeededRandom(seed: 1)
        for _ in 0..<2000 {
            let c = RGB(UInt8.random(in: 0...255, using: &rng), UInt8.random(in: 0...255, using: &rng), UInt8.random(in: 0...255, using: &rng))
            func d(_ t: (Int, Int, Int)) -> Int { let a = Int(c.r) - t.0, b = Int(c.g) - t.1, e = Int(c.b) - t.2; return a * a + b * b + e * e }
            let best = table.map(d).min()!
            let got = Palette.xterm256(c)
            // The cube pick is per channel, so it is within the nearest cube colour; never farther than
            // twice the true nearest distance.
            #expect(got >= 16 && got <= 255 && d(table[got - 16]) <= max(2 * best, best + 300), "\(c) -> \(got)")
        }
        #expect(Palette.xterm256(RGB(255, 0, 0)) == 196 && Palette.xterm256(RGB(128, 128, 128)) == 244)
        #expect(Palette.basic8(RGB(200, 10, 10)) == 1 && Palette.basic8(RGB(10, 10, 200)) == 4)
    }

    @Test func sixelModeReservesBlankCellsAndPlacesTheImage() {
        var s = AppState()
        s.graphics = .sixel
        _ = reduce(&s, .attached(cat))
        var g = render(s, width: 120, height: 30)
        // The panel: name on its row, the thumbnail rectangle below it, cells blank.
        #expect(g.placements.count == 1)
        let p = g.placements[0]
        #expect(p.imageID == 1 && p.rect.width == 14 && p.rect.height == 5)   // 35-cell panel: 20 cells kept for the text
        #expect(g.text.split(separator: "\n", omittingEmptySubsequences: false)[p.rect.y - 1].contains("1. cat photo.jpg"))
        for y in p.rect.y..<(p.rect.y + p.rect.height) { for x in p.rect.x..<(p.rect.x + p.rect.width) { #expect(g[x, y].char == " ") } }
        // Sent: it moves to "In this conversation" and appears inline by the user turn.
        _ = reduce(&s, .type("Describe it.")); _ = reduce(&s, .enter)
        g = render(s, width: 120, height: 30)
        #expect(g.placements.count == 2 && Set(g.placements.map(\.imageID)) == [1])
        // A long answer, scrolled so that the inline thumbnail (lines 1-8) is only partly in view
        // (the pane starts at line 2): it is not placed, so no half image is drawn.
        _ = reduce(&s, .event(.text(String(repeating: "word ", count: 400))))
        let L = Layout(width: 120, height: 30)!
        let count = conversationLines(s, width: L.conversation.width).count
        s.scroll = count - L.conversation.height - 2
        #expect(clampedScroll(s, width: 120, height: 30) == s.scroll)
        let g2 = render(s, width: 120, height: 30)
        #expect(!g2.placements.contains { $0.rect.x == 2 } && g2.placements.count == 1, "\(g2.text)")
        s.scroll = count - L.conversation.height
        #expect(render(s, width: 120, height: 30).placements.contains { $0.rect == Rect(x: 2, y: 1, width: 24, height: 8) })
        s.scroll = 10_000
        #expect(clampedScroll(s, width: 120, height: 30) == count - L.conversation.height, "PgUp stops at the first line")
        // In half-block mode the same cells hold coloured pixels instead; with none, only text.
        s.scroll = 0; s.graphics = .blocks
        let g3 = render(s, width: 120, height: 30)
        #expect(g3.placements.isEmpty && g3[p.rect.x, p.rect.y + 4].pixels != nil || g3.cells.contains { $0.pixels != nil })
        s.graphics = .none
        #expect(!render(s, width: 120, height: 30).cells.contains { $0.pixels != nil })
    }

    @Test func linesThatMoveAreNoticed() {
        var before = CellGrid(width: 20, height: 6)
        for y in 0..<5 { before.put("line \(y)", x: 0, y: y) }
        before.put("│ panel", x: 12, y: 2)
        var same = before
        #expect(!same.linesMayMove(from: before))
        same.put("typed", x: 0, y: 5)                         // a new row, like no old one
        #expect(!same.linesMayMove(from: before))
        var scrolled = CellGrid(width: 20, height: 6)          // the conversation one line up
        for y in 0..<4 { scrolled.put("line \(y + 1)", x: 0, y: y) }
        #expect(scrolled.linesMayMove(from: before))
        // A row only partly the same (the panel beside it differs) cannot be moved whole.
        var sideways = CellGrid(width: 20, height: 6)
        for y in 0..<5 { sideways.put("line \(y)", x: 0, y: y) }
        sideways.put("│ panel", x: 12, y: 3)
        #expect(sideways.linesMayMove(from: before) == false)
        #expect(CellGrid(width: 21, height: 6).linesMayMove(from: before))
    }

    @Test func blankingWritesSpacesOverTheImageCellsAndRestoresTheCursor() {
        let text = String(decoding: Terminal.blanking([Rect(x: 2, y: 1, width: 3, height: 2)]), as: UTF8.self)
        #expect(text == "\u{1b}7\u{1b}[0m\u{1b}[2;3H   \u{1b}[3;3H   \u{1b}8")
    }

    @Test func sixelEncodingAndSizes() throws {
        let (w, h) = Sixel.pixelSize(width: 640, height: 427, cols: 12, rows: 4, cw: 11, ch: 22)
        #expect(w <= 132 && h <= 88 && h % 6 == 0 && abs(Double(w) / Double(h) - 640.0 / 427.0) < 0.15)
        let bytes = try #require(Sixel.encode(twoColour(width: 24, height: 12)))
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.hasPrefix("\u{1b}P") && text.hasSuffix("\u{1b}\\") && text.contains("\"1;1;24;12"))
    }

    @Test func terminalRepliesAreParsed() {
        #expect(GraphicsProbe.hasSixel("\u{1b}[?63;1;2;4;6;9;15;16;22;28c"))
        #expect(!GraphicsProbe.hasSixel("\u{1b}[?64;1;2;6;9;15;16;17;18;21;22;28c"))
        #expect(!GraphicsProbe.hasSixel("\u{1b}[?1;2c") && !GraphicsProbe.hasSixel("\u{1b}[?14;2c"))
        #expect(GraphicsProbe.cellSize(fromReply: "\u{1b}[6;22;11t")! == (11, 22))
        #expect(GraphicsProbe.cellSize(fromReply: "garbage") == nil)
        let tmux = GraphicsProbe.detect(requested: nil, environment: ["TMUX": "/tmp/x", "TERM": "tmux-256color"])
        #expect(tmux.mode == .blocks)
        #expect(GraphicsProbe.detect(requested: nil, environment: ["TMUX": "/tmp/x", "NO_COLOR": "1"]).mode == .none)
        #expect(GraphicsProbe.detect(requested: .blocks, environment: [:]).mode == .blocks)
    }

    /// Keys typed while the app starts come in with the probe's replies: the reply is the
    /// `ESC [ ... terminator` sequence, whatever is around it is typing, kept in order. A typed
    /// "c" is no DA1 reply, a typed cursor key (`ESC [ D`) stays typing, and an unfinished reply
    /// is no reply yet.
    @Test func typingAroundAProbesReplyIsKept() {
        func split(_ s: String, _ end: Character) -> (String?, String) {
            let (reply, typed) = GraphicsProbe.splitReply(Array(s.utf8), terminator: end.asciiValue!)
            return (reply.map { String(decoding: $0, as: UTF8.self) }, String(decoding: typed, as: UTF8.self))
        }
        let da1 = "\u{1b}[?62;4;22c"
        #expect(split(da1, "c") == (da1, ""))
        #expect(split("abc" + da1, "c") == (da1, "abc"))
        #expect(split("wö" + da1 + "rld", "c") == (da1, "wörld"))
        #expect(split("x\u{1b}[D" + da1 + "\u{1b}[Cy", "c") == (da1, "x\u{1b}[D\u{1b}[Cy"))
        #expect(split("abc\u{1b}[?62;4", "c") == (nil, "abc\u{1b}[?62;4"))
        #expect(split("abc", "c") == (nil, "abc"))
        #expect(split("hi\u{1b}[6;22;11t!", "t") == ("\u{1b}[6;22;11t", "hi!"))
        #expect(split("", "c") == (nil, ""))
    }
}

struct RenderTests {
    @Test func wrapKeepsWideCharactersWholeAndFitsTheWidth() {
        let text = "这张图片里有什么？ A cat 🐈 on a sofa, averyveryverylongword and more."
        for w in 1...30 {
            for line in Wrap.lines(text, width: w) {
                #expect(TextWidth.of(line) <= max(w, 2), "width \(w): \(line)")
            }
        }
        #expect(Wrap.lines("ab cd", width: 2) == ["ab", "cd"])
        // A ZWJ sequence is drawn as its parts (terminals disagree on joining them): three wide emoji.
        #expect(TextWidth.of("你好") == 4 && TextWidth.of("e\u{301}") == 1 && TextWidth.of("👨‍👩‍👧") == 6)
    }

    @Test func codeBlocksAndListsStayReadable() {
        let text = "Steps:\n- first a rather long item that wraps\n12. numbered item that also wraps\n```swift\n    let x = [1, 2, 3].map { $0 * 2 }\n```\nDone."
        let lines = MessageLayout.lines(text, width: 24)
        #expect(lines.map(\.1) == [
            "Steps:",
            "- first a rather long",
            "  item that wraps",
            "12. numbered item that",
            "    also wraps",
            "```swift",
            "    let x = [1, 2, 3].ma",
            "p { $0 * 2 }",
            "```",
            "Done.",
        ])
        #expect(lines[6].0 == .code && lines[7].0 == .code && lines[5].0 == .dim && lines[9].0 == .text)
        for (_, l) in lines { #expect(TextWidth.of(l) <= 24) }
    }

    @Test func hostileTextIsInert() {
        var s = AppState()
        let evil = "ok\u{1b}[2J\u{1b}]0;pwned\u{07}\u{08}\u{202E}gnp.exe\u{9b}31m"
        _ = reduce(&s, .attached(AttachedImage(id: 2, name: "/tmp/\u{1b}[31mred.png", width: 1, height: 1, tiles: 1, tokenCost: 258)))
        _ = reduce(&s, .type("q")); _ = reduce(&s, .enter)
        _ = reduce(&s, .event(.text(evil)))
        let g = render(s, width: 80, height: 24)
        let scalars = g.cells.flatMap { $0.char.unicodeScalars }
        #expect(!scalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || (0x202A...0x202E).contains($0.value) })
        #expect(g.text.contains("ok␛[2J␛]0;pwned␇␈gnp.exe"))
    }

    /// The app loop's frame lays the conversation out once and clamps the scroll from it: the
    /// same grid as `render`, the same position as `clampedScroll`.
    @Test func oneFrameClampsTheScrollAsRenderAndClampedScrollDo() {
        var s = AppState()
        _ = reduce(&s, .type("Tell me a long story.")); _ = reduce(&s, .enter)
        _ = reduce(&s, .event(.text(String(repeating: "once upon a time ", count: 300))))
        for scroll in [0, 7, 10_000] {
            s.scroll = scroll
            let f = renderFrame(s, width: 100, height: 24)
            #expect(f.scroll == clampedScroll(s, width: 100, height: 24) && f.grid.text == render(s, width: 100, height: 24).text)
        }
        #expect(renderFrame(s, width: 100, height: 24).scroll < 10_000)
        #expect(renderFrame(s, width: 10, height: 4).scroll == 10_000, "too small: nothing to clamp against")
    }

    @Test func snapshots() throws {
        try assertSnapshot(render(conversationState(), width: 80, height: 24), "conversation-80x24")
        var plain = conversationState()
        plain.graphics = .none
        try assertSnapshot(render(plain, width: 80, height: 24), "conversation-no-graphics-80x24")
        var failed = conversationState()
        _ = reduce(&failed, .event(.failed("The image is too big: 30000x30000 pixels is more than 178956970.")))
        try assertSnapshot(render(failed, width: 40, height: 10), "error-40x10")
        var wide = conversationState()
        _ = reduce(&wide, .attached(AttachedImage(id: 3, name: "chart.png", width: 1200, height: 800, tiles: 7, tokenCost: 1794,
                                                          grid: TileGrid(cols: 3, rows: 2), thumbnail: twoColour(width: 120, height: 80))))
        try assertSnapshot(render(wide, width: 120, height: 40), "conversation-120x40")
        var scrolled = conversationState()
        _ = reduce(&scrolled, .pageUp)
        try assertSnapshot(render(scrolled, width: 80, height: 12), "scrolled-80x12")
        try assertSnapshot(render(conversationState(), width: 30, height: 8), "too-small-30x8")
    }
}

struct ThemeTests {
    /// The files in themes/ are exactly the built-in themes (users copy and edit them).
    @Test func shippedThemeFilesMatchTheBuiltIns() throws {
        for t in Theme.builtIn {
            let file = TestData.packageRoot.appendingPathComponent("themes/\(t.name).json").path
            #expect(try Theme.read(file) == t, "themes/\(t.name).json")
            #expect(Role.allCases.allSatisfy { t.roles[$0.rawValue] != nil }, "\(t.name) names every role")
        }
    }

    @Test func userThemesAndErrors() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("theme-\(UUID())")
        let folder = home.appendingPathComponent("internvl-chat/themes")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: home) }
        let env = ["XDG_CONFIG_HOME": home.path]
        try Data(#"{"name": "mine", "roles": {"user": {"fg": "magenta"}}}"#.utf8).write(to: folder.appendingPathComponent("mine.json"))
        #expect(try Theme.load("mine", environment: env).style(.user).fg == "magenta")
        #expect(try Theme.load("light", environment: env) == Theme.light)
        #expect(throws: Theme.LoadError.self) { try Theme.load("nope", environment: env) }
        try Data(#"{"name": "bad", "roles": {"user": {"fg": "pink"}}}"#.utf8).write(to: folder.appendingPathComponent("bad.json"))
        do { _ = try Theme.load("bad", environment: env); Issue.record("should fail") } catch {
            #expect((error as? LocalizedError)?.errorDescription?.contains("unknown colour pink") == true)
        }
        try Data(#"{"name": "bad2", "roles": {"headline": {}}}"#.utf8).write(to: folder.appendingPathComponent("bad2.json"))
        #expect(throws: Theme.LoadError.self) { try Theme.load("bad2", environment: env) }
    }

    /// A theme path that is a FIFO, a device or a huge file is refused before it is read (a
    /// FIFO would block the app's start for ever).
    @Test(.timeLimit(.minutes(1))) func themeFilesThatAreNotThemes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("theme-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("pipe.json").path, big = dir.appendingPathComponent("big.json")
        #expect(mkfifo(fifo, 0o644) == 0)
        try Data(count: Theme.maxFileBytes + 1).write(to: big)
        for (path, reason) in [(fifo, "is a FIFO (named pipe), not a regular file"), ("/dev/zero", "is a character device"),
                               (big.path, "more than the 1 MB allowed")] {
            do { _ = try Theme.load(path, environment: [:]); Issue.record("\(path) was read as a theme") } catch {
                let message = (error as? LocalizedError)?.errorDescription ?? ""
                #expect(message.contains(reason), "\(path): \(message)")
            }
        }
    }
}

/// The app's frames reuse the messages laid out before: a key or a streamed token lays out at
/// most the message that changed, and the frames equal those drawn without the cache.
struct LayoutCacheTests {
    @Test func framesRelayOnlyWhatChangedAndMatchAFreshLayout() {
        var s = AppState()
        for i in 0..<40 {
            s.messages.append(.init(kind: .user, text: "question \(i) about **the** picture"))
            s.messages.append(.init(kind: .assistant, text: String(repeating: "word \(i) ", count: 200) + "\n```\ncode \(i)\n```"))
        }
        let cache = ConversationLayoutCache()
        func frame(_ w: Int = 100, _ h: Int = 30) -> String {
            let cached = renderFrame(s, width: w, height: h, cache: cache)
            let fresh = renderFrame(s, width: w, height: h)
            #expect(cached.grid == fresh.grid && cached.scroll == fresh.scroll && cached.lines == fresh.lines)
            return cached.grid.text
        }
        _ = frame()
        #expect(cache.laidOut == 80)
        _ = reduce(&s, .type("and the colours?"))
        _ = frame()
        #expect(cache.laidOut == 80, "typing lays out no message")
        _ = reduce(&s, .enter)                                   // a question and an empty answer
        _ = frame()
        #expect(cache.laidOut == 82)
        _ = reduce(&s, .event(.text("Grey")))
        let screen = frame()
        #expect(cache.laidOut == 83 && screen.contains("  Grey"), "a token lays out the answer it went to")
        _ = reduce(&s, .pageUp)
        _ = frame()
        #expect(cache.laidOut == 83, "scrolling lays out nothing")
        _ = frame(90, 30)
        #expect(cache.laidOut == 83 + 82, "another width: everything again")
        var st = TurnStats(); st.interrupted = true
        _ = reduce(&s, .event(.finished(st)))
        _ = frame(90, 30)
        #expect(cache.laidOut == 83 + 82 + 1, "(interrupted) added to the answer")
        _ = reduce(&s, .type("/new")); _ = reduce(&s, .enter)
        #expect(frame(90, 30).contains("New conversation"))
    }
}

import Chat
import Foundation
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

let cat = AttachedImage(id: 1, name: "/home/u/Pictures/cat photo.jpg", width: 640, height: 427, tiles: 7, tokenCost: 1794)

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
        _ = reduce(&s, .type("x")); _ = reduce(&s, .enter)
        _ = reduce(&s, .event(.failed("The prompt is too long.")))
        #expect(s.messages.last == .init(kind: .error, text: "The prompt is too long.") && !s.busy)
        // Ctrl-C when idle asks first.
        #expect(reduce(&s, .cancel).isEmpty && s.confirmQuit)
        #expect(reduce(&s, .type("n")).isEmpty && !s.quitRequested)
        _ = reduce(&s, .cancel)
        #expect(reduce(&s, .type("y")) == [.quit])
    }

    @Test func commandsAndPastedPaths() {
        var s = AppState()
        func run(_ line: String) -> [Effect] { _ = reduce(&s, .type(line)); return reduce(&s, .enter) }
        #expect(run("/attach '/tmp/my cat.jpg'") == [.attach(path: "/tmp/my cat.jpg", maxTiles: nil)])
        #expect(run("/tiles 6").isEmpty && s.maxTiles == 6)
        #expect(run("/attach /tmp/my\\ cat.jpg") == [.attach(path: "/tmp/my cat.jpg", maxTiles: 6)])
        #expect(run("/attach file:///tmp/my%20cat.jpg") == [.attach(path: "/tmp/my cat.jpg", maxTiles: 6)])
        _ = reduce(&s, .attached(cat))
        #expect(run("/detach 2").isEmpty && s.messages.last?.kind == .error)
        #expect(run("/detach 1").isEmpty && s.pending.isEmpty)
        #expect(run("/frobnicate").isEmpty && s.messages.last?.text.contains("Unknown command /frobnicate") == true)
        #expect(run("/system Be brief.") == [.setSystem("Be brief.")])
        #expect(run("/new") == [.newConversation] && s.messages.isEmpty)
        // History recall.
        _ = reduce(&s, .up)
        #expect(s.input == "/new")
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
        #expect(TextWidth.of("你好") == 4 && TextWidth.of("e\u{301}") == 1 && TextWidth.of("👨‍👩‍👧") == 2)
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

    @Test func snapshots() throws {
        try assertSnapshot(render(conversationState(), width: 80, height: 24), "conversation-80x24")
        var wide = conversationState()
        _ = reduce(&wide, .attached(AttachedImage(id: 3, name: "chart.png", width: 1200, height: 800, tiles: 7, tokenCost: 1794)))
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
}

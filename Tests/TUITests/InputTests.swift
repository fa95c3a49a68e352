import ChatAPI
import Foundation
import Imaging
import Testing
import TestSupport
@testable import TUI

/// Typing, pasting and editing in grapheme clusters, and the rules that keep a draft.
struct InputTests {
    @Test func joinerTypedKeyByKeyJoinsTheEmojiAndKeepsTheCursorOnABoundary() {
        var s = AppState()
        for k in ["I am a ", "👩", "\u{200D}", "💻", " developer"] { _ = reduce(&s, .type(k)) }
        #expect(Array(s.input.unicodeScalars) == Array("I am a 👩‍💻 developer".unicodeScalars))
        #expect(s.cursor == s.input.count)
        _ = reduce(&s, .home)
        for _ in 0..<8 { _ = reduce(&s, .right) }            // past "I am a " and the one emoji
        _ = reduce(&s, .backspace)
        #expect(s.input == "I am a  developer" && s.cursor == 7)
        _ = reduce(&s, .type("🇩🇪")); _ = reduce(&s, .type("e\u{301}"))
        #expect(s.input == "I am a 🇩🇪é developer" && s.cursor == 9)
    }

    @Test func pastedJoinerSequenceKeepsTheSpaceAfterItOnScreen() {
        var s = AppState()
        _ = reduce(&s, .type("I am a 👩‍💻 developer"))
        let screen = render(s, width: 60, height: 12).text
        #expect(screen.contains("> I am a 👩💻 developer"), "\(screen)")
        // The cursor sits after the text as the terminal draws it: two wide parts of two cells each.
        #expect(TextWidth.of("I am a 👩‍💻 developer") == 7 + 4 + 10)
    }

    @Test func escNeverQuitsAndCtrlDWithADraftAsks() {
        var s = AppState()
        _ = reduce(&s, .type("a long draft"))
        #expect(reduce(&s, .cancel).isEmpty && reduce(&s, .cancel).isEmpty)
        #expect(!s.quitRequested && !s.confirmQuit && s.input == "a long draft")
        #expect(reduce(&s, .quit).isEmpty && s.confirmQuit && !s.quitRequested)
        #expect(s.messages.last?.text.contains("unsent text will be lost") == true)
        #expect(reduce(&s, .cancel).isEmpty && !s.quitRequested && s.input == "a long draft")
        _ = reduce(&s, .quit)
        #expect(reduce(&s, .quit) == [.quit])
        var empty = AppState()
        #expect(reduce(&empty, .quit) == [.quit], "nothing to lose: Ctrl-D quits at once")
    }

    /// After a save failed (a read-only or full disk), Ctrl-D asks first, saying why; a save that
    /// works again ends the question.
    @Test func ctrlDAfterAFailedSaveAsks() {
        var s = AppState()
        s.messages = [.init(kind: .user, text: "q"), .init(kind: .assistant, text: "a")]
        _ = reduce(&s, .saveFailed("Could not save /x/.lock: Read-only file system."))
        #expect(s.messages.last?.kind == .error && s.unsaved != nil)
        #expect(reduce(&s, .quit).isEmpty && s.confirmQuit && !s.quitRequested)
        #expect(s.messages.last?.text.contains("the last save failed, so the conversation may not be kept: Could not save /x/.lock") == true,
                "\(s.messages.last?.text ?? "")")
        _ = reduce(&s, .cancel)
        _ = reduce(&s, .saved(label: "c1", explicit: false))
        #expect(s.unsaved == nil && reduce(&s, .quit) == [.quit], "saved again: Ctrl-D quits at once")
    }

    @Test func historyKeepsTheDraft() {
        var s = AppState()
        s.history = ["first", "second"]
        let draft = String(repeating: "draft ", count: 350)
        _ = reduce(&s, .type(draft))
        _ = reduce(&s, .up); #expect(s.input == "second")
        _ = reduce(&s, .up); #expect(s.input == "first")
        _ = reduce(&s, .down); _ = reduce(&s, .down)
        #expect(s.input == draft && s.cursor == draft.count)
    }

    @Test func enterWhileAnsweringKeepsTheText() {
        var s = AppState()
        _ = reduce(&s, .type("Describe.")); _ = reduce(&s, .enter)
        _ = reduce(&s, .type("And the colours?"))
        #expect(reduce(&s, .enter).isEmpty)
        #expect(s.input == "And the colours?" && s.messages.last?.kind == .error)
        var st = TurnStats(); st.promptTokens = 10
        _ = reduce(&s, .event(.finished(st)))
        #expect(reduce(&s, .enter) == [.send(question: "And the colours?", images: [])])
    }

    @Test func ctrlYPutsBackWhatAKillTookOut() {
        var s = AppState()
        let text = "first line\nsecond line\nthird 👩‍💻"
        _ = reduce(&s, .type(text))
        _ = reduce(&s, .killToStart)
        #expect(s.input.isEmpty)
        _ = reduce(&s, .yank)
        #expect(s.input == text && s.cursor == text.count)
        _ = reduce(&s, .home); _ = reduce(&s, .killToEnd); _ = reduce(&s, .type("> ")); _ = reduce(&s, .yank)
        #expect(s.input == "> " + text)
        _ = reduce(&s, .killWord)
        #expect(s.input == "> first line\nsecond line\nthird ")
        _ = reduce(&s, .end); _ = reduce(&s, .yank)
        #expect(s.input == "> " + text)
        _ = reduce(&s, .yank)
        #expect(s.input == "> " + text + "👩‍💻", "the last kill (one word), not an earlier one")
    }

    @Test func aDoubledSlashSendsTheTextWithOneSlash() {
        var s = AppState()
        _ = reduce(&s, .type("//etc/hosts: what is this file?"))
        #expect(reduce(&s, .enter) == [.send(question: "/etc/hosts: what is this file?", images: [])])
        #expect(s.messages.contains { $0.kind == .user && $0.text == "/etc/hosts: what is this file?" })
        #expect(s.history.last == "//etc/hosts: what is this file?")
        var c = AppState()
        _ = reduce(&c, .type("/frobnicate"))
        #expect(reduce(&c, .enter).isEmpty && c.messages.last?.text.contains("Unknown command") == true)
    }

    @Test func eachAnswerDrawsItsSeedUnlessOneIsSet() {
        var s = AppState()
        var draws: [UInt64] = [11, 12]
        #expect(answerParameters(s) { draws.removeFirst() }.seed == 11)
        #expect(answerParameters(s) { draws.removeFirst() }.seed == 12)
        _ = reduce(&s, .type("/set seed 7")); _ = reduce(&s, .enter)
        #expect(answerParameters(s) { 99 }.seed == 7)
        _ = reduce(&s, .type("/set seed random")); _ = reduce(&s, .enter)
        #expect(answerParameters(s) { 99 }.seed == 99)
    }

    @Test func loadingSetsTheContextCounter() {
        var s = AppState()
        s.contextUsed = 123
        _ = reduce(&s, .loaded(messages: [.init(kind: .user, text: "q"), .init(kind: .assistant, text: "a")], label: "x",
                               problems: [], contextUsed: 4000))
        #expect(s.contextUsed == 4000)
        var d = AppState()
        _ = reduce(&d, .loaded(messages: [], label: "x", problems: [], draft: "half a question"))
        #expect(d.input == "half a question", "the unsent text saved with it comes back")
        d.savesConversation = true
        _ = reduce(&d, .quit)
        #expect(d.messages.last?.text.contains("unsent text is saved with the conversation") == true,
                "a conversation loaded with its draft only is saved too")
        _ = reduce(&d, .cancel)
        d.input = ""; _ = reduce(&d, .type("/new")); _ = reduce(&d, .enter)
        _ = reduce(&d, .type("another"))
        _ = reduce(&d, .quit)
        #expect(d.messages.last?.text.contains("unsent text will be lost") == true, "a new conversation has no file before a turn")
        #expect(render(s, width: 100, height: 30).text.contains("4000"))
        // Images saved as attached for the next question are attached again, shown in the panel.
        var p = AppState()
        _ = reduce(&p, .attached(cat))
        _ = reduce(&p, .loaded(messages: [.init(kind: .user, text: "q")], label: "x", problems: [], pending: [rocketImage]))
        #expect(p.pending.map(\.id) == [rocketImage.id])
        #expect(render(p, width: 120, height: 30).text.contains("1. rocket.jpg"))
        // Its system message replaces the one on screen: /system and /show tell the one in use.
        func run(_ s: inout AppState, _ line: String) { _ = reduce(&s, .type(line)); _ = reduce(&s, .enter) }
        var m = AppState()
        _ = reduce(&m, .loaded(messages: [], label: "x", problems: [], system: "You are a pirate."))
        run(&m, "/system")
        #expect(m.messages.last?.text == "System message: You are a pirate.")
        run(&m, "/show")
        #expect(m.messages.last?.text.contains("System message: You are a pirate.") == true)
        run(&m, "/system Be brief.")
        _ = reduce(&m, .loaded(messages: [], label: "y", problems: []))
        run(&m, "/system")
        #expect(m.messages.last?.text.contains("the model's default") == true, "a conversation with the default one")
    }

    @Test func textTypedWhileAConversationLoadsKeepsItsSavedDraft() {
        var s = AppState()
        _ = reduce(&s, .resume(""))
        _ = reduce(&s, .type("typed at once"))
        _ = reduce(&s, .loaded(messages: [], label: "x", problems: [], draft: "the question saved unsent"))
        #expect(s.input == "the question saved unsent\ntyped at once")
        #expect(s.cursor == s.input.count, "the cursor stays in what was being typed")
        var same = AppState()
        _ = reduce(&same, .type("half a question"))
        _ = reduce(&same, .loaded(messages: [], label: "x", problems: [], draft: "half a question"))
        #expect(same.input == "half a question")
    }

    /// Thousands of random keystrokes mixing ZWJ sequences, flags, skin tones, combining marks,
    /// CJK, right-to-left text and control keys, rendered at changing sizes: nothing crashes, and
    /// the input equals a scalar-level model of the same edits at grapheme boundaries.
    @Test(arguments: [1, 2, 3, 4]) func randomTyping(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let pieces = ["a", " ", "Z", "👩", "\u{200D}", "💻", "👨‍👩‍👧", "🇩🇪", "🇫", "🏽", "👍", "e", "\u{301}", "\u{308}",
                      "中", "文", "שלום", "مرحبا", "\u{FE0F}", "❤", "\n", "\t", "x\u{200D}", "ก", "\u{E31}"]
        var s = AppState()
        var model: [Unicode.Scalar] = [], pos = 0
        func boundaries() -> [Int] {
            var b = [0], n = 0
            for ch in String(String.UnicodeScalarView(model)) { n += ch.unicodeScalars.count; b.append(n) }
            return b
        }
        func snap() { pos = boundaries().last(where: { $0 <= pos }) ?? 0 }
        for step in 0..<3000 {
            switch rng.next() % 10 {
            case 0...4:
                var t = ""
                for _ in 0...(rng.next() % 3) { t += pieces[Int(rng.next() % UInt64(pieces.count))] }
                _ = reduce(&s, .type(t))
                model.insert(contentsOf: t.unicodeScalars, at: pos); pos += t.unicodeScalars.count; snap()
            case 5:
                _ = reduce(&s, .left); pos = boundaries().last(where: { $0 < pos }) ?? 0
            case 6:
                _ = reduce(&s, .right); pos = boundaries().first(where: { $0 > pos }) ?? pos
            case 7:
                _ = reduce(&s, .backspace)
                if let p = boundaries().last(where: { $0 < pos }) { model.removeSubrange(p..<pos); pos = p; snap() }
            case 8:
                _ = reduce(&s, .delete)
                if let n = boundaries().first(where: { $0 > pos }) { model.removeSubrange(pos..<n); snap() }
            default:
                if rng.next() % 2 == 0 { _ = reduce(&s, .home); pos = 0 } else { _ = reduce(&s, .end); pos = model.count }
            }
            #expect(Array(s.input.unicodeScalars) == model, "step \(step)")
            #expect(s.cursor == boundaries().firstIndex(of: pos), "step \(step)")
            if Array(s.input.unicodeScalars) != model { return }
            if step % 50 == 0 {
                let w = 10 + Int(rng.next() % 110), h = 4 + Int(rng.next() % 40)
                let g = render(s, width: w, height: h)
                #expect(g.width == w && g.height == h)
            }
        }
    }
}


struct CommandTests {
    func run(_ s: inout AppState, _ line: String) -> [Effect] { _ = reduce(&s, .type(line)); return reduce(&s, .enter) }

    @Test func showSystemNewAndDelete() {
        var s = AppState()
        s.modelName = "tiny-b"
        _ = run(&s, "/system")
        #expect(s.messages.last?.text.contains("the model's default") == true)
        #expect(run(&s, "/system Be brief.") == [.setSystem("Be brief.")])
        _ = run(&s, "/system")
        #expect(s.messages.last?.text == "System message: Be brief.")
        _ = run(&s, "/set seed 9")
        _ = run(&s, "/show")
        let shown = s.messages.last?.text ?? ""
        #expect(shown.contains("tiny-b") && shown.contains("Be brief.") && shown.contains("seed 9"), "\(shown)")
        _ = reduce(&s, .attached(cat))
        #expect(run(&s, "/new").contains(.newConversation))
        #expect(s.messages.count == 1 && s.messages[0].text.contains("your system message") && s.messages[0].text.contains("stay attached"))
        #expect(run(&s, "/delete old chat") == [.delete("old chat")])
        #expect(run(&s, "/theme light") == [.theme("light")])
        #expect(run(&s, "/delete").isEmpty && s.messages.last?.kind == .error)
        _ = run(&s, "/detach 2")
        #expect(s.messages.last?.text == "Usage: /detach 1 (one image is attached)")
    }

    @Test func tabCompletesCommandsAndConversationNames() {
        #expect(completeCommand("/sh", names: { [] })! == ("/show ", nil))
        let s = completeCommand("/s", names: { [] })!
        #expect(s.input == "/s" && s.hint == "/save  /set  /show  /system")
        #expect(completeCommand("/load co", names: { ["coffee chat", "cats", "20261205-1"] })! == ("/load coffee chat", nil))
        #expect(completeCommand("/delete c", names: { ["coffee chat", "cats"] })!.hint == "coffee chat  cats")
        #expect(completeCommand("hello", names: { [] }) == nil)
    }

    @Test func inputGrowsWithItsText() {
        var s = AppState()
        _ = reduce(&s, .type("one\ntwo\nthree\nfour\nfive"))
        let screen = render(s, width: 80, height: 24).text.split(separator: "\n", omittingEmptySubsequences: false)
        for (i, w) in ["one", "two", "three", "four", "five"].enumerated() {
            #expect(screen[18 + i].hasPrefix((i == 0 ? "> " : "  ") + w), "\(screen.joined(separator: "\n"))")
        }
    }

    @Test func firstScreenSaysWhatToDo() {
        let screen = render(AppState(), width: 100, height: 30).text
        #expect(screen.contains("type a question, Enter. F1: help"))
    }

    @Test func countsReadAsWords() {
        var s = AppState()
        let one = AttachedImage(id: 3, name: "/tmp/a.png", width: 10, height: 10, tiles: 1, tokenCost: 258)
        _ = reduce(&s, .attached(one))
        #expect(render(s, width: 80, height: 24).text.contains("a.png 10x10, 1 tile, 258 tokens"))
        #expect(counted(1, "turn") == "1 turn" && counted(2, "image") == "2 images" && counted(0, "tile") == "0 tiles")
    }
}

struct ScrollMarkerTests {
    @Test func theMoreMarkerHasItsOwnRow() {
        var s = conversationState()
        _ = reduce(&s, .scroll(4))
        let rows = render(s, width: 80, height: 12).text.split(separator: "\n").map(String.init)
        let marked = rows.filter { $0.contains("↓") }
        #expect(marked.count == 1, "\(rows.joined(separator: "\n"))")
        #expect(marked.first?.trimmingCharacters(in: .whitespaces).hasPrefix("↓ ") == true
                && marked.first?.hasSuffix("more lines (PgDn)") == true, "nothing else on its row: \(marked)")
    }
}

struct ThumbnailTests {
    @Test func fewColoursPickTheNearestOfTheSixteen() {
        // A naive twin: the index of the smallest weighted distance, written out.
        let pal = Palette.ansi16
        var rng = SeededRandom(seed: 7)
        for _ in 0..<2000 {
            let c = RGB(UInt8(rng.next() % 256), UInt8(rng.next() % 256), UInt8(rng.next() % 256))
            func d(_ p: (Int, Int, Int)) -> Int {
                let r = Int(c.r) - p.0, g = Int(c.g) - p.1, b = Int(c.b) - p.2
                return 3 * r * r + 4 * g * g + 2 * b * b
            }
            let want16 = (0..<16).min { d(pal[$0]) < d(pal[$1]) || (d(pal[$0]) == d(pal[$1]) && $0 < $1) }!
            let want8 = (0..<8).min { d(pal[$0]) < d(pal[$1]) || (d(pal[$0]) == d(pal[$1]) && $0 < $1) }!
            #expect(Palette.basic16(c) == want16 && Palette.basic8(c) == want8)
        }
        // Dark and light greys and a skin tone no longer become black, red or yellow alike.
        #expect(Palette.basic8(RGB(90, 90, 90)) == 0 && Palette.basic8(RGB(200, 200, 200)) == 7)
        #expect(Palette.basic16(RGB(120, 120, 120)) == 8 && Palette.basic16(RGB(250, 250, 250)) == 15)
    }

    @Test func aNarrowPanelLineKeepsEveryImagesNumberTilesAndCost() {
        var s = AppState()
        _ = reduce(&s, .attached(cat))
        _ = reduce(&s, .attached(AttachedImage(id: 2, name: "/tmp/a very long screenshot name.png", width: 1920, height: 1080,
                                               tiles: 7, tokenCost: 1794)))
        for w in [80, 60, 45] {
            let line = panelLine(s, width: w)
            #expect(TextWidth.of(line) <= w, "\(w): \(line)")
            #expect(line.contains("1: ") && line.contains("2: ") && line.components(separatedBy: "7 tiles, 1794 tok").count == 3, "\(w): \(line)")
        }
        #expect(panelLine(s, width: 200).contains("1: cat photo.jpg 640x427, 7 tiles, 1794 tokens"))
    }

    @Test func aLongFileNameInThePanelEndsWithAnEllipsis() {
        var s = AppState()
        _ = reduce(&s, .attached(AttachedImage(id: 5, name: "/tmp/a very very long file name for a photo of a cup of coffee.png",
                                               width: 600, height: 400, tiles: 7, tokenCost: 1794)))
        let row = render(s, width: 100, height: 30).text.split(separator: "\n").first { $0.contains("1. a very") }
        #expect(row?.hasSuffix("…") == true, "cut without a mark: \(row ?? "")")
    }

    @Test func conversationThumbnailsUseTheRoomThereIs() {
        let wide = imageLines(cat, .blocks, width: 100).compactMap(\.image).first
        #expect(wide?.cols == 24 && wide?.rows == 8, "640x427 in 24 x 16 half-block pixels, not 12 x 8")
    }
}

struct MarkdownTests {
    @Test func headingsAndTablesInAnswers() {
        let text = "## Colours\nThe cat:\n| part | colour |\n|---|:---:|\n| fur | grey 灰色 |\n| eyes | green |\nDone."
        let lines = MessageLayout.lines(text, width: 60)
        #expect(lines[0] == (.title, "Colours"))
        #expect(lines[1].1 == "The cat:")
        #expect(lines[2].1 == " part │ colour    ")
        #expect(lines[3].1 == "──────┼───────────")
        #expect(lines[4].1 == " fur  │ grey 灰色 ")
        #expect(lines[5].1 == " eyes │ green     ")
        #expect(lines[6].1 == "Done.")
        // The columns line up by display width (灰色 takes four cells).
        #expect(Set(lines[2...5].map { TextWidth.of($0.1) }).count == 1)
        // Too narrow: cut, never wider than the pane.
        #expect(MessageLayout.lines(text, width: 10).allSatisfy { TextWidth.of($0.1) <= 10 })
        // Not headings: "#hashtag", and "#" inside code.
        #expect(MessageLayout.lines("#hashtag", width: 20)[0] == (.text, "#hashtag"))
        #expect(MessageLayout.lines("```\n# comment\n```", width: 20)[1] == (.code, "# comment"))
    }
}

struct CopyTests {
    @Test func copyTakesTheLastAnswerOrItsCode() {
        var s = AppState()
        func run(_ line: String) -> [Effect] { _ = reduce(&s, .type(line)); return reduce(&s, .enter) }
        #expect(run("/copy").isEmpty && s.messages.last?.kind == .error)
        s.messages = [.init(kind: .user, text: "q"), .init(kind: .assistant, text: "Use:\n```swift\nlet x = 1\nprint(x)\n```\nDone.")]
        #expect(run("/copy") == [.copy("Use:\n```swift\nlet x = 1\nprint(x)\n```\nDone.")])
        #expect(run("/copy code") == [.copy("let x = 1\nprint(x)")])
        // The sequence: OSC 52, clipboard c, base64 of the text, BEL; no raw control byte from the text.
        let seq = String(decoding: Terminal.osc52("a\u{1b}b"), as: UTF8.self)
        #expect(seq == "\u{1b}]52;c;YRti\u{07}")
    }
}

let rocketImage = AttachedImage(id: 42, name: "/tmp/rocket.jpg", width: 300, height: 200, tiles: 3, tokenCost: 770,
                                grid: TileGrid(cols: 2, rows: 1), tiling: TilingOptions(maxTiles: 2), tokensPerTile: 256)

/// Keys as the app loop maps them, on an app with a backend that answers nothing.
struct KeyMapTests {
    @Test func f1ShowsTheHelpAndLeavesTheTypedTextAlone() {
        let app = ImageOrderTests.app(DedupBackend())
        app.dispatch(.type("half a question"))
        app.handle(code: app.helpKey)
        #expect(app.state.input == "half a question", "F1 used to type /help after the draft and send both")
        #expect(!app.state.busy && !app.state.messages.contains { $0.kind == .user })
        // No conversation folder here: the help does not promise saving.
        #expect(app.state.messages.last?.text == helpText.replacingOccurrences(of: savingSentence, with: "Saving is off (--no-save): nothing is written."))
        app.state.savesConversation = true
        app.handle(code: app.helpKey)
        #expect(app.state.messages.last?.text == helpText && helpText.contains(savingSentence))
    }
}

/// Where the cursor is drawn in a wrapped input, and what the input pane shows of a long text.
struct InputCursorTests {
    static func app(_ text: String, left: Int = 0) -> App {
        let app = ImageOrderTests.app(DedupBackend())
        app.dispatch(.type(text))
        for _ in 0..<left { app.dispatch(.left) }
        return app
    }

    /// The cell under the cursor holds the character after it (unless that is a blank the wrap
    /// dropped or a line break).
    static func cellUnderCursor(_ app: App, width: Int, height: Int) -> Character? {
        guard let (x, y) = app.cursorPosition(width: width, height: height) else { return nil }
        return render(app.state, width: width, height: height)[x, y].char
    }

    @Test func theCursorFollowsAWordTheWrapMovedToTheNextLine() {
        // 19 words fill the first line of a 100-column input (98 cells of text); the long word goes below.
        let text = String(repeating: "aaaa ", count: 19) + "bbQbbbbbbbbbb"
        let app = Self.app(text, left: 11)                 // before the Q, which is drawn on the second line
        #expect(app.state.input.dropFirst(app.state.cursor).first == "Q")
        let pos = app.cursorPosition(width: 100, height: 30)
        let screen = render(app.state, width: 100, height: 30).text.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(pos.map { screen[$0.y].hasPrefix("  bbQ") && $0.x == 4 } == true, "cursor at \(String(describing: pos))")
    }

    @Test(arguments: [1, 2, 3]) func theCellUnderTheCursorHoldsTheNextCharacter(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let pieces = ["a", "bb", "ccccccc", " ", "  ", "中", "文字", "é", "\n", String(repeating: "x", count: 70), "👩\u{200D}💻", "e\u{301}", "🇩🇪", "\t", "👍🏽"]
        for _ in 0..<30 {
            var text = ""
            for _ in 0..<(5 + rng.next() % 40) { text += pieces[Int(rng.next() % UInt64(pieces.count))] }
            let width = 40 + Int(rng.next() % 80), height = 12 + Int(rng.next() % 30)
            let app = Self.app("")
            for _ in 0..<20 {
                let c = Int(rng.next() % UInt64(text.count))
                let next = text[text.index(text.startIndex, offsetBy: c)]
                if next == " " || next == "\n" || next == "\t" { continue }       // blanks: drawn as spaces, or dropped at a break
                app.state.editor = LineEditor(text: text, cursor: c)
                let cell = Self.cellUnderCursor(app, width: width, height: height)
                #expect(cell == TextWidth.displayUnits(next).first?.text, "\(width)x\(height), cursor \(c) of \(text.debugDescription)")
                if cell != TextWidth.displayUnits(next).first?.text { return }
            }
        }
    }

    @Test func homeInALongTextShowsItsStart() {
        let text = (1...50).map { "line \($0) of the paste" }.joined(separator: "\n")
        let app = Self.app(text)
        app.dispatch(.home)
        let screen = render(app.state, width: 100, height: 30).text
        #expect(screen.contains("> line 1 of the paste"), "\(screen)")
        #expect(Self.cellUnderCursor(app, width: 100, height: 30) == "l")
        app.dispatch(.end)
        #expect(render(app.state, width: 100, height: 30).text.contains("  line 50 of the paste"))
    }
}

struct EditingKeyTests {
    @Test func altBAndAltFMoveByWords() {
        let app = ImageOrderTests.app(DedupBackend())
        app.dispatch(.type("look at  this\nphoto 中文"))
        app.handle(alt: "b")
        #expect(app.state.cursor == 20, "before 中文")
        app.handle(alt: "b"); app.handle(alt: "b")
        #expect(app.state.cursor == 9, "before this")
        app.handle(alt: "f")
        #expect(app.state.cursor == 13, "after this")
        app.handle(alt: "f")
        #expect(app.state.cursor == 19, "after photo, across the line break")
        app.handle(alt: "\u{7F}")
        #expect(app.state.input == "look at  this\n 中文", "Alt-Backspace deletes the word before")
        app.dispatch(.home); app.dispatch(.wordLeft)
        #expect(app.state.cursor == 0)
        app.dispatch(.end); app.dispatch(.wordRight)
        #expect(app.state.cursor == app.state.input.count)
    }

    @Test func upAndDownMoveBetweenLinesBeforeTheyRecallHistory() {
        var s = AppState()
        s.history = ["older question"]
        _ = reduce(&s, .type("first line\nsecond\nthird line"))
        _ = reduce(&s, .left); _ = reduce(&s, .left)          // "third li|ne"
        _ = reduce(&s, .up)
        #expect(s.input == "first line\nsecond\nthird line" && s.cursor == 17, "the end of 'second' (shorter than the column)")
        _ = reduce(&s, .up)
        #expect(s.cursor == 6, "first line, column 6")
        _ = reduce(&s, .type("X"))
        #expect(s.input == "first Xline\nsecond\nthird line")
        _ = reduce(&s, .down); _ = reduce(&s, .down)
        #expect(s.cursor == 25 && s.historyIndex == nil, "third line, column 6 (as on the shorter line)")
        _ = reduce(&s, .up); _ = reduce(&s, .up); _ = reduce(&s, .up)   // past the first line: the history
        #expect(s.input == "older question")
        _ = reduce(&s, .down)
        #expect(s.input == "first Xline\nsecond\nthird line", "the draft comes back")
    }

    @Test func ctrlWStopsAtALineBreak() {
        var s = AppState()
        _ = reduce(&s, .type("first line\nsecond line\nthird"))
        _ = reduce(&s, .killWord)
        #expect(s.input == "first line\nsecond line\n")
        _ = reduce(&s, .killWord)
        #expect(s.input == "first line\nsecond ")
    }
}

struct CommandArgumentTests {
    func run(_ s: inout AppState, _ line: String) -> [Effect] { _ = reduce(&s, .type(line)); return reduce(&s, .enter) }

    @Test func attachExpandsTheHomeFolderAsTabCompletionDoes() {
        var s = AppState()
        let home = ("~" as NSString).expandingTildeInPath
        #expect(home != "~")
        #expect(run(&s, "/attach ~/pictures/cat.jpg") == [.attach(path: home + "/pictures/cat.jpg", maxTiles: nil)])
        #expect(run(&s, "/attach '~/my cat.jpg'") == [.attach(path: home + "/my cat.jpg", maxTiles: nil)])
    }

    @Test func attachReadsAPathAsTheShellWroteIt() throws {
        var s = AppState()
        #expect(run(&s, "/attach /pictures/photo\\ \\(1\\).jpg") == [.attach(path: "/pictures/photo (1).jpg", maxTiles: nil)])
        #expect(run(&s, "/attach '/pictures/my cat'\\''s.png'") == [.attach(path: "/pictures/my cat's.png", maxTiles: nil)])
        #expect(run(&s, "/attach /pictures/my\\ cat\\'s.png") == [.attach(path: "/pictures/my cat's.png", maxTiles: nil)])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("attach-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let literal = folder.appendingPathComponent("a\\(b).png").path
        FileManager.default.createFile(atPath: literal, contents: Data())
        #expect(run(&s, "/attach \(literal)") == [.attach(path: literal, maxTiles: nil)], "a file whose name holds a backslash")
    }

    /// ollama's `/bye` and `/clear` (and `/exit`) do what `/quit` and `/new` do; Tab leaves them
    /// out (`/c` and `/e` still complete `/copy` and `/edit`).
    @Test func ollamasCommandNamesWorkAsOurs() {
        var base = AppState()
        base.messages = [.init(kind: .user, text: "q"), .init(kind: .assistant, text: "A cat.")]
        for (alias, name) in [("/bye", "/quit"), ("/exit", "/quit"), ("/clear", "/new")] {
            var a = base, b = base
            let ea = run(&a, alias), eb = run(&b, name)
            #expect(ea == eb && a.messages == b.messages && a.quitRequested == b.quitRequested && a.confirmQuit == b.confirmQuit, "\(alias)")
            #expect(!a.messages.contains { $0.text.hasPrefix("Unknown command") }, "\(alias)")
            var c = base
            _ = run(&c, alias + " now")
            #expect(c.messages.last?.text.hasPrefix("\(alias) takes nothing after it") == true, "\(alias): \(c.messages.last?.text ?? "")")
        }
        #expect(completeCommand("/co", names: { [] })?.input == "/copy " && completeCommand("/e", names: { [] })?.input == "/edit ")
        #expect(completeCommand("/fr", names: { [] })?.input == "/frames ")
        var d = base
        _ = run(&d, "/set parameter temperature 0.3"); _ = run(&d, "/set parameter num_predict 77"); _ = run(&d, "/set parameter seed 5")
        #expect(d.parameters.temperature == 0.3 && d.parameters.maxNewTokens == 77 && d.parameters.seed == 5 && d.seedFixed)
        #expect(!d.messages.contains { $0.kind == .error }, "\(d.messages.map(\.text))")
    }

    @Test func tilesRefusesWordsItCannotRead() {
        var s = AppState()
        _ = reduce(&s, .attached(cat))
        for bad in ["/tiles 2 x", "/tiles x 2", "/tiles 2 3 4", "/tiles", "/tiles 0", "/tiles 41", "/tiles 1 2.5"] {
            #expect(run(&s, bad).isEmpty && s.messages.last?.text.hasPrefix("Usage: /tiles") == true, "\(bad)")
            #expect(s.maxTiles == nil, "\(bad)")
        }
    }

    @Test func aQuestionWaitsForTheImagesStillBeingAttached() {
        var s = AppState()
        #expect(run(&s, "/attach /home/u/Pictures/cat photo.jpg") == [.attach(path: "/home/u/Pictures/cat photo.jpg", maxTiles: nil)])
        _ = reduce(&s, .attachPaths(["/tmp/b.png"]))
        #expect(run(&s, "What is this?").isEmpty, "sent while the image was encoding, the question went without it")
        #expect(s.input == "What is this?" && s.messages.last?.text.hasPrefix("An image is still being attached") == true)
        _ = reduce(&s, .attached(cat))
        #expect(reduce(&s, .enter).isEmpty && s.input == "What is this?", "one of the two is still coming")
        _ = reduce(&s, .attachFailed("/tmp/b.png does not exist."))
        #expect(reduce(&s, .enter) == [.send(question: "What is this?", images: [cat])])
    }

    /// A command refused because an answer is under way stays in the input, as text typed then
    /// does, to be sent when the answer ends; it joins the input history only when it runs.
    @Test func aCommandRefusedDuringAnAnswerStaysInTheInput() {
        var s = AppState()
        s.messages = [.init(kind: .user, text: "q"), .init(kind: .assistant, text: "A cat.")]
        #expect(run(&s, "Why?") == [.send(question: "Why?", images: [])])
        for line in ["/edit a long, carefully rewritten question", "/regen", "/new", "/load cats"] {
            #expect(run(&s, line).isEmpty && s.input == line, "\(line)")
            #expect(s.messages.last?.text.hasPrefix("Still answering: the command stays in the input") == true)
            #expect(s.history == ["Why?"], "\(line) did not run, yet it is in the input history")
            s.input = ""
        }
        _ = reduce(&s, .event(.text("Because.")))
        _ = reduce(&s, .event(.finished(TurnStats())))
        #expect(run(&s, "/regen") == [.regenerate])
        #expect(s.history == ["Why?", "/regen"], "a command that ran is history")
    }

    /// /regen and /edit answer the last turn again below the notes that came after it, where the
    /// view follows it; stopped before its first token, the screen is back as it was.
    @Test func aTurnAnsweredAgainMovesBelowTheNotesAfterIt() {
        let notes = (1...12).map { AppState.Message(kind: .error, text: "Unknown command /nope\($0)") }
        let before = [AppState.Message(kind: .user, text: "old q"), .init(kind: .assistant, text: "old answer")]
        for line in ["/regen", "/edit a new question"] {
            var s = AppState()
            s.messages = [.init(kind: .user, text: "first"), .init(kind: .assistant, text: "one")] + before + notes
            s.scroll = 7
            #expect(!run(&s, line).isEmpty, "\(line)")
            #expect(s.scroll == 0 && Array(s.messages.prefix(2)).map(\.text) == ["first", "one"], "\(line)")
            #expect(Array(s.messages.dropFirst(2).prefix(12)) == notes, "\(line): the notes stay in their order")
            #expect(s.messages.suffix(2).map(\.kind) == [.user, .assistant] && s.messages.last?.text == "", "\(line)")
            #expect(s.messages[s.messages.count - 2].text == (line == "/regen" ? "old q" : "a new question"), "\(line)")
            _ = reduce(&s, .answerEnded)
            #expect(Array(s.messages.prefix(16)) == [.init(kind: .user, text: "first"), .init(kind: .assistant, text: "one")] + before + notes,
                    "\(line): stopped before its first token, the screen is as it was")
        }
    }

    @Test func anAnswerStoppedBeforeItsFirstTokenPutsTheQuestionBack() {
        var s = AppState()
        _ = reduce(&s, .attached(cat))
        #expect(run(&s, "Describe it.") == [.send(question: "Describe it.", images: [cat])])
        _ = reduce(&s, .event(.phase(.prefill(done: 74, of: 445))))
        #expect(reduce(&s, .cancel) == [.cancel])
        _ = reduce(&s, .answerEnded)                    // the session ends such a stream with no event at all
        #expect(!s.busy && s.phase == nil, "the app stayed 'reading prompt 74/445' for good, refusing every question")
        #expect(s.input == "Describe it." && s.pending == [cat] && !s.messages.contains { $0.kind == .user })
        #expect(s.messages.last?.text == "Stopped before the answer began: nothing was kept; your question is back in the input.")
        // A regenerated answer stopped as early: the answer before is back on screen (the session keeps it).
        var t = AppState()
        t.messages = [.init(kind: .user, text: "q"), .init(kind: .assistant, text: "A cat.")]
        #expect(run(&t, "/regen") == [.regenerate])
        _ = reduce(&t, .answerEnded)
        #expect(!t.busy && t.messages[1].text == "A cat." && t.messages.last?.text.hasPrefix("Stopped before the answer began") == true)
        // After a finished answer the end of its stream changes nothing.
        _ = run(&t, "And the dog?")
        _ = reduce(&t, .event(.text("No dog.")))
        _ = reduce(&t, .event(.finished(TurnStats())))
        let done = t
        _ = reduce(&t, .answerEnded)
        #expect(t == done)
    }

    @Test func theAppEndsAnAnswerWhoseStreamEndsWithoutAnEvent() async {
        let app = ImageOrderTests.app(DedupBackend())        // its send stream ends at once, with no event
        ImageOrderTests.command(app, "Hello")
        await ImageOrderTests.settle(app)
        #expect(!app.state.busy && app.state.input == "Hello")
    }

    @Test func aHintStaysUntilTheNextKeyWhileAnAnswerStreams() {
        var s = AppState()
        _ = run(&s, "Tell me a story.")
        _ = reduce(&s, .setInput("/s", hint: "/save  /set  /show  /system"))
        _ = reduce(&s, .event(.text("Once")))
        #expect(s.hint == "/save  /set  /show  /system", "the next token used to wipe the completions")
        _ = reduce(&s, .type("h"))
        #expect(s.hint == nil)
    }

    @Test func enterWithImagesAndNoQuestionSaysWhatIsMissing() {
        var s = AppState()
        #expect(reduce(&s, .enter).isEmpty && s.hint == nil, "nothing typed, nothing attached: nothing to say")
        _ = reduce(&s, .attached(cat))
        #expect(reduce(&s, .enter).isEmpty && s.pending == [cat])
        #expect(render(s, width: 100, height: 30).text.contains("type a question about the attached image, then Enter"))
    }

    @Test func commandsWithoutArgumentsRefuseExtraWords() {
        var s = AppState()
        s.messages = [.init(kind: .user, text: "q"), .init(kind: .assistant, text: "A cat.")]
        #expect(run(&s, "/regen 1").isEmpty && s.messages.last?.text == "/regen takes nothing after it: it answers the last question again")
        #expect(run(&s, "/new chat about cats").isEmpty && s.messages.contains { $0.text == "A cat." }, "the conversation stays")
        #expect(run(&s, "/quit now").isEmpty && !s.quitRequested && !s.confirmQuit)
        #expect(run(&s, "/show all").isEmpty && s.messages.last?.kind == .error)
        #expect(run(&s, "/regen ") == [.regenerate], "trailing blanks are no argument")
    }

    @Test func regenAndEditSayWhyTheyCannot() {
        var s = AppState()
        #expect(run(&s, "/regen").isEmpty && s.messages.last?.text == "There is no answer to regenerate yet.")
        #expect(run(&s, "/edit Why?").isEmpty && s.messages.last?.text == "There is no question to edit yet.")
        _ = run(&s, "Describe.")
        #expect(s.busy)
        #expect(run(&s, "/regen").isEmpty && s.messages.last?.text.hasPrefix("Still answering") == true)
        s.input = ""                                    // (a refused command stays in the input)
        #expect(run(&s, "/edit Why?").isEmpty && s.messages.last?.text.hasPrefix("Still answering") == true)
        s.input = ""
        // /new during an answer cleared the screen while the answer went on unseen and was saved nowhere.
        #expect(run(&s, "/new").isEmpty && s.messages.last?.text.hasPrefix("Still answering") == true)
        #expect(s.messages.contains { $0.kind == .user && $0.text == "Describe." })
    }

    @Test func theQuitQuestionWaitsForAKeyWhileTheAnswerStreams() {
        var s = AppState()
        _ = run(&s, "Tell me a story.")
        _ = reduce(&s, .event(.phase(.generating)))
        #expect(reduce(&s, .quit).isEmpty && s.confirmQuit)
        #expect(s.messages.last?.text.contains("an answer is still coming") == true)
        _ = reduce(&s, .event(.text("Once")))                  // a token arrives while the question is on screen
        _ = reduce(&s, .notice("Saved.", error: false))
        #expect(s.confirmQuit, "streamed tokens used to answer 'Not quitting.' before the user could press y")
        #expect(s.messages.last(where: { $0.kind == .assistant })?.text == "Once")
        #expect(reduce(&s, .type("y")) == [.quit] && s.quitRequested)
        var t = AppState()
        _ = run(&t, "Tell me a story.")
        _ = reduce(&t, .quit)
        #expect(reduce(&t, .type("n")).isEmpty && !t.confirmQuit && !t.quitRequested && t.messages.last?.text == "Not quitting.")
        // Files queued to attach after the answer are not saved: the question says so.
        t.attachesAfterAnswer = ["/tmp/a.png", "/tmp/b.png"]
        _ = reduce(&t, .quit)
        #expect(t.messages.last?.text.contains("2 files queued to attach after the answer will not be attached") == true)
    }

    @Test func aPasteWhileTheQuitQuestionShowsIsKept() {
        var s = AppState()
        _ = reduce(&s, .type("my draft"))
        _ = reduce(&s, .quit)
        #expect(s.confirmQuit)
        #expect(reduce(&s, .type(" and a pasted paragraph")).isEmpty)
        #expect(!s.confirmQuit && !s.quitRequested && s.input == "my draft and a pasted paragraph")
        #expect(s.messages.last?.text == "Not quitting.")
        _ = reduce(&s, .quit)
        #expect(reduce(&s, .attachPaths(["/pictures/cat.png"])) == [.attach(path: "/pictures/cat.png", maxTiles: nil)])
        #expect(!s.confirmQuit && !s.quitRequested)
    }

    @Test func quitAsksAsCtrlDDoesWhenSomethingWouldBeLost() {
        var s = AppState()
        _ = reduce(&s, .attached(cat))
        #expect(run(&s, "/quit").isEmpty && s.confirmQuit && !s.quitRequested)
        #expect(s.messages.last?.text.contains("1 attached image will be dropped") == true)
        #expect(reduce(&s, .type("y")) == [.quit])
        var idle = AppState()
        #expect(run(&idle, "/quit") == [.quit] && idle.quitRequested, "nothing to lose: at once")
    }
}

struct StoppedAttachTests {
    @Test func anAttachThatEndsWithoutAnAnswerDoesNotHoldTheQuestionBack() async {
        let app = ImageOrderTests.app(DedupBackend(quietAttach: true))     // as a stopped attach of ChatSession ends
        ImageOrderTests.command(app, "/attach /pictures/cat.png")
        await ImageOrderTests.settle(app)
        #expect(app.state.attaching == 0 && app.state.messages.last?.text == "Attaching cat.png was stopped; attach it again.")
        app.dispatch(.type("What is this?"))
        app.dispatch(.enter)
        #expect(app.state.messages.contains { $0.kind == .user && $0.text == "What is this?" })
    }
}

import ChatAPI
import Testing
import TestSupport
@testable import TUI

/// The input laid out paragraph by paragraph and updated edit by edit (`InputLayoutCache`)
/// against its naive twin, `Wrap.rows` and `Wrap.cursor` over the whole text: the same rows, row
/// starts and cursor cells after every random edit; and a key in a long input re-wraps only the
/// paragraphs it touched.
struct InputLayoutTests {
    static let pieces = ["word", " ", "  ", "a", "longwordlongwordlongword", "你好", "世界", "\t", "\n", "\n\n", "\r", "\r\n",
                         "é", "e\u{301}", "\u{301}", "👩\u{200D}💻", "🙂", "\u{1}", "\u{7F}", "\u{202E}", "\u{FFFD}", "x y z "]

    static func randomText(_ rng: inout some RandomNumberGenerator, pieces n: Int) -> String {
        (0..<n).map { _ in pieces.randomElement(using: &rng)! }.joined()
    }

    /// The rows of `layout` with their starts counted from the text's start, as `Wrap.rows` gives them.
    static func globalRows(_ layout: InputLayout) -> [String] {
        var out: [String] = [], offset = 0
        for p in layout.paragraphs {
            out += p.rows.map { "\($0.start + offset):\($0.text)" }
            offset += p.scalars + 1
        }
        return out
    }

    static func check(_ layout: InputLayout, _ text: String, width: Int, _ what: String) {
        let rows = Wrap.rows(text, width: width)
        #expect(globalRows(layout) == rows.map { "\($0.start):\($0.text)" }, "\(what): \(text.debugDescription) at \(width)")
        #expect(layout.rowCount == rows.count && layout.rows(0..<rows.count) == rows.map(\.text), "\(what)")
        let n = text.count
        for cursor in Set([n, max(0, n - 1)] + Array(stride(from: 0, through: n, by: max(1, n / 7)))) {
            let got = layout.cursor(in: text, at: cursor), want = Wrap.cursor(in: text, at: cursor, rows: rows, width: width)
            #expect(got == want, "\(what): cursor \(cursor) in \(text.debugDescription) at \(width)")
        }
    }

    /// Random edits anywhere (scalars inserted and removed, line breaks among them, "\r\n" split
    /// and joined, combining marks joining clusters), now and then another width.
    @Test func editsLaidOutAsAWholeReWrap() {
        for round in 0..<60 {
            var rng = SeededRandom(seed: UInt64(round))
            let cache = InputLayoutCache()
            var width = Int.random(in: 1...24, using: &rng)
            var scalars = Array(Self.randomText(&rng, pieces: Int.random(in: 0...40, using: &rng)).unicodeScalars)
            for step in 0..<40 {
                switch Int.random(in: 0..<10, using: &rng) {
                case 0: width = Int.random(in: 1...24, using: &rng)
                case 1...5:
                    let at = Int.random(in: 0...scalars.count, using: &rng)
                    scalars.insert(contentsOf: Self.randomText(&rng, pieces: Int.random(in: 1...3, using: &rng)).unicodeScalars, at: at)
                case 6...8 where !scalars.isEmpty:
                    let at = Int.random(in: 0..<scalars.count, using: &rng)
                    scalars.removeSubrange(at..<min(scalars.count, at + Int.random(in: 1...6, using: &rng)))
                default:
                    scalars = Array(Self.randomText(&rng, pieces: Int.random(in: 0...40, using: &rng)).unicodeScalars)
                }
                let text = String(String.UnicodeScalarView(scalars))
                Self.check(cache.layout(text, width: width), text, width: width, "round \(round) step \(step)")
            }
        }
    }

    /// Paragraphs longer than the cursor's marks apart (4 KiB): the cursor found from the
    /// nearest mark is where `Wrap.cursor` puts it, with tabs, controls and wide characters before it.
    @Test func cursorsInLongParagraphs() {
        for round in 0..<2 {
            var rng = SeededRandom(seed: UInt64(100 + round))
            let text = String(String.UnicodeScalarView(Self.randomText(&rng, pieces: 6_000).unicodeScalars.map { $0 == "\n" || $0 == "\r" ? " " : $0 }))
            let width = [7, 118][round]
            let layout = InputLayout(text, width: width), rows = Wrap.rows(text, width: width)
            #expect(layout.paragraphs.count == 1 && layout.paragraphs[0].marks.count > 3, "round \(round): \(text.utf8.count) bytes")
            var i = text.startIndex, characters = 0
            while true {
                if characters % 613 == 0 || i == text.endIndex {
                    let got = layout.cursor(in: text, atByte: text.utf8.distance(from: text.startIndex, to: i))
                    #expect(got == Wrap.cursor(in: text, at: characters, rows: rows, width: width), "round \(round): cursor \(characters)")
                }
                guard i < text.endIndex else { break }
                i = text.index(after: i); characters += 1
            }
        }
    }

    /// The app's frames with the cache equal frames laid out afresh, over keys that edit and
    /// move the cursor in a text of many paragraphs.
    @Test func framesWithTheCacheEqualFreshFrames() {
        var rng = SeededRandom(seed: 1)
        let app = ImageOrderTests.app(IdleBackend())
        app.dispatch(.type((0..<60).map { "line \($0) " + Self.randomText(&rng, pieces: Int.random(in: 0...12, using: &rng)) }.joined(separator: "\n")))
        let actions: [Action] = [.type("x"), .type(" "), .type("你"), .type("\u{301}"), .newline, .backspace, .delete, .left, .right,
                                 .home, .end, .up, .down, .killWord, .wordLeft, .wordRight, .killToEnd, .yank]
        for i in 0..<400 {
            app.dispatch(actions.randomElement(using: &rng)!)
            if i % 97 == 0 { app.dispatch(.type(Self.randomText(&rng, pieces: 30))) }
            for (w, h) in [(80, 24), (43, 12)] {
                let cached = renderFrame(app.state, width: w, height: h, cache: app.layoutCache, inputCache: app.inputCache).grid
                #expect(cached == render(app.state, width: w, height: h), "key \(i) at \(w)x\(h)")
            }
        }
    }

    /// A key in a long input (3,000 paragraphs) re-wraps the one or two paragraphs it changed:
    /// typed at the end, in the middle, a line break typed and deleted; moving the cursor re-wraps none.
    @Test func aKeyReWrapsOnlyTheParagraphsItChanged() {
        let app = ImageOrderTests.app(IdleBackend())
        app.dispatch(.type((1...3_000).map { "line \($0): the quick brown fox jumps over the lazy dog, again and again" }.joined(separator: "\n")))
        func wrappedBy(_ a: Action) -> Int {
            let before = app.inputCache.wrapped
            app.dispatch(a)
            _ = renderFrame(app.state, width: 80, height: 24, inputCache: app.inputCache)
            _ = app.cursorPosition(width: 80, height: 24)
            return app.inputCache.wrapped - before
        }
        #expect(wrappedBy(.type("x")) == 3_000, "the first frame lays out every paragraph")
        #expect(wrappedBy(.type("y")) == 1)
        #expect(wrappedBy(.backspace) == 1)
        #expect(wrappedBy(.left) == 0)
        #expect(wrappedBy(.up) == 0)
        for _ in 0..<1_500 { app.dispatch(.up) }
        #expect(wrappedBy(.type("z")) == 1)
        #expect(wrappedBy(.newline) == 2)
        #expect(wrappedBy(.backspace) == 1)
        #expect(wrappedBy(.home) == 0)
        #expect(wrappedBy(.delete) == 1)
    }

    /// Keys in a 389 KB input (a pasted file) with their frames take milliseconds: a generous
    /// bound on 200 of them, against a key cost that grows with the input again (each took
    /// 1.2 s in the debug build while the input was wrapped whole at every frame).
    @Test func keysInALongInputAreQuick() {
        let app = ImageOrderTests.app(IdleBackend())
        var text = "", n = 0
        while text.utf8.count < 389_000 { n += 1; text += "line \(n): the quick brown fox jumps over the lazy dog, again and again \(n)\n" }
        app.dispatch(.type(text))
        func frame() {
            _ = renderFrame(app.state, width: 120, height: 40, cache: app.layoutCache, inputCache: app.inputCache)
            _ = app.cursorPosition(width: 120, height: 40)
        }
        frame()
        let keys: [Action] = [.type("x"), .backspace, .left, .left, .type("y"), .up, .down, .right, .delete, .wordLeft]
        let took = ContinuousClock().measure {
            for i in 0..<200 { app.dispatch(keys[i % keys.count]); frame() }
        }
        #expect(took < .seconds(40), "200 keys took \(took)")
    }
}

/// The naive twin of `InputLayout.cursor`: where the cursor after the first `cursor` characters
/// of `text` is drawn among `rows` (from `rows(text, width:)`), the whole text shown afresh.
extension Wrap {
    static func cursor(in text: String, at cursor: Int, rows: [(text: String, start: Int)], width: Int) -> (row: Int, col: Int) {
        let shown = Array(TerminalText.sanitize(text, tabWidth: 4).unicodeScalars)
        let target = min(TerminalText.sanitize(String(text.prefix(cursor)), tabWidth: 4).unicodeScalars.count, shown.count)
        guard let row = rows.lastIndex(where: { $0.start <= target }) else { return (0, 0) }
        let start = min(rows[row].start, target)
        return (row, min(width, shown[start..<target].reduce(0) { $0 + TextWidth.of($1) }))
    }
}

extension InputLayout {
    /// `cursor(in:atByte:)` for the cursor after the first `cursor` characters.
    func cursor(in text: String, at cursor: Int) -> (row: Int, col: Int) {
        self.cursor(in: text, atByte: text.utf8.distance(from: text.startIndex, to: text.index(text.startIndex, offsetBy: min(cursor, text.count))))
    }
}

import Testing
import TestSupport
@testable import TUI

/// `LineEditor`, which keeps the cursor's place and counts only the clusters an edit touched,
/// against its naive twin below: the same text, cursor and killed text after every one of random
/// edits and moves in texts of flags, ZWJ sequences, combining marks, CR LF, line breaks and words.
struct LineEditorTests {
    static let pieces = ["word", " ", "\t", "\n", "\r", "\r\n", "a", "é", "e", "\u{301}", "\u{200D}", "👩", "💻", "🇫", "🇷", "🇩🇪",
                         "你好", "x y", "\u{1F3FD}", "\u{FE0F}", "क", "\u{94D}", "ष"]

    @Test func editsAsTheNaiveTwin() {
        for round in 0..<300 {
            var rng = SeededRandom(seed: UInt64(round))
            func random(_ n: Int) -> String { (0..<n).map { _ in Self.pieces.randomElement(using: &rng)! }.joined() }
            let start = random(Int.random(in: 0...20, using: &rng))
            let c = Int.random(in: 0...start.count, using: &rng)
            var fast = LineEditor(text: start, cursor: c), naive = NaiveLineEditor(text: start, cursor: c)
            var log: [String] = []
            for _ in 0..<60 {
                let op = Int.random(in: 0..<16, using: &rng)
                let piece = random(Int.random(in: 1...3, using: &rng))
                log.append(op == 0 ? "insert \(piece.debugDescription)" : "op \(op)")
                switch op {
                case 0: fast.insert(piece); naive.insert(piece)
                case 1: fast.deleteBackward(); naive.deleteBackward()
                case 2: fast.deleteForward(); naive.deleteForward()
                case 3: fast.left(); naive.left()
                case 4: fast.right(); naive.right()
                case 5: fast.home(); naive.home()
                case 6: fast.end(); naive.end()
                case 7: fast.killToEnd(); naive.killToEnd()
                case 8: fast.killToStart(); naive.killToStart()
                case 9: fast.yank(); naive.yank()
                case 10: fast.killWord(); naive.killWord()
                case 11: #expect(fast.moveLine(by: -1) == naive.moveLine(by: -1))
                case 12: #expect(fast.moveLine(by: 1) == naive.moveLine(by: 1))
                case 13: fast.wordLeft(); naive.wordLeft()
                case 14: fast.wordRight(); naive.wordRight()
                default: fast.insertAtStart(piece); naive.insertAtStart(piece)
                }
                guard fast.text == naive.text, fast.cursor == naive.cursor, fast.killed == naive.killed else {
                    Issue.record("round \(round): \(start.debugDescription) at \(c), then \(log): \(fast.text.debugDescription) at \(fast.cursor), killed \(fast.killed.debugDescription); the twin \(naive.text.debugDescription) at \(naive.cursor), killed \(naive.killed.debugDescription)")
                    break
                }
                // The kept place is the cursor's: typing there puts the text after `cursor` characters.
                var probe = fast
                probe.insert("|")
                let expected = String(fast.text.prefix(fast.cursor)) + "|" + String(fast.text.dropFirst(fast.cursor))
                #expect(probe.text.unicodeScalars.elementsEqual(expected.unicodeScalars), "round \(round): \(log)")
            }
        }
    }
}

extension LineEditorTests {
    /// Text put before the input may join clusters after it into one (a pictograph before a lone
    /// joiner and another pictograph): the cursor stays at the last cluster boundary not past
    /// its place, never before the text's start; text typed there lands after `cursor` characters.
    @Test func aPrefixThatJoinsTheClustersAfterIt() {
        for (cursor, expected) in [(0, 0), (1, 0), (2, 1), (3, 2)] {
            var e = LineEditor(text: "\u{200D}👩x", cursor: cursor)
            e.insertAtStart("💻")
            #expect(e.text == "💻\u{200D}👩x" && e.cursor == expected, "cursor \(cursor)")
            let expectedText = String(e.text.prefix(e.cursor)) + "|" + String(e.text.dropFirst(e.cursor))
            e.insert("|")
            #expect(e.text.unicodeScalars.elementsEqual(expectedText.unicodeScalars), "cursor \(cursor): \(e.text.debugDescription)")
        }
    }
}

/// The editor's naive twin: every edit counts the clusters from the
/// text's start, every line or word move makes an array of the text's characters.
struct NaiveLineEditor {
    private(set) var text: String
    private(set) var cursor: Int
    /// What the last Ctrl-K, Ctrl-U or Ctrl-W took out, for Ctrl-Y to put back.
    private(set) var killed = ""

    init(text: String = "", cursor: Int? = nil) {
        self.text = text
        self.cursor = min(max(cursor ?? text.count, 0), text.count)
    }

    private var cursorIndex: String.Index { text.index(text.startIndex, offsetBy: min(cursor, text.count)) }

    /// Replaces `text[cut]` by `insert`; the cursor goes after the inserted text, at the last
    /// cluster boundary not past it.
    private mutating func splice(_ cut: Range<String.Index>, _ insert: String) {
        let head = text.unicodeScalars[..<cut.lowerBound].count + insert.unicodeScalars.count
        text = String(text[..<cut.lowerBound]) + insert + String(text[cut.upperBound...])
        cursor = clusters(notPast: head)
    }

    /// The clusters that end at most `head` scalars into the text.
    private func clusters(notPast head: Int) -> Int {
        var scalars = 0, clusters = 0
        for ch in text {
            scalars += ch.unicodeScalars.count
            if scalars > head { break }
            clusters += 1
        }
        return clusters
    }

    mutating func insert(_ s: String) { let i = cursorIndex; splice(i..<i, s) }

    /// Puts `s` before the text, the cursor staying where it was in what followed.
    mutating func insertAtStart(_ s: String) {
        let head = s.unicodeScalars.count + text.unicodeScalars[..<cursorIndex].count
        text = s + text
        cursor = clusters(notPast: head)
    }

    mutating func deleteBackward() {
        guard cursor > 0 else { return }
        let i = cursorIndex
        splice(text.index(before: i)..<i, "")
    }

    mutating func deleteForward() {
        let i = cursorIndex
        guard i < text.endIndex else { return }
        splice(i..<text.index(after: i), "")
    }

    mutating func left() { cursor = max(0, cursor - 1) }
    mutating func right() { cursor = min(text.count, cursor + 1) }
    mutating func home() { cursor = 0 }
    mutating func end() { cursor = text.count }
    mutating func killToEnd() { kill(cursorIndex..<text.endIndex) }
    mutating func killToStart() { kill(text.startIndex..<cursorIndex) }

    /// Inserts what the last kill took out at the cursor (Ctrl-Y, as readline's yank).
    mutating func yank() { insert(killed) }

    private mutating func kill(_ r: Range<String.Index>) {
        guard !r.isEmpty else { return }
        killed = String(text[r])
        splice(r, "")
    }

    /// Deletes the word before the cursor and the blanks (spaces, tabs, line breaks) after it (Ctrl-W).
    mutating func killWord() {
        let end = cursorIndex
        var start = end
        while start > text.startIndex, text[text.index(before: start)].isWhitespace { start = text.index(before: start) }
        while start > text.startIndex, !text[text.index(before: start)].isWhitespace { start = text.index(before: start) }
        kill(start..<end)
    }

    /// Moves the cursor to the line above (`by: -1`) or below (`by: 1`) at the same column in
    /// characters (or that line's end); false, without moving, on the first or last line.
    mutating func moveLine(by delta: Int) -> Bool {
        let chars = Array(text)
        func lineStart(_ i: Int) -> Int { var j = i; while j > 0, chars[j - 1] != "\n" { j -= 1 }; return j }
        func lineEnd(_ i: Int) -> Int { var j = i; while j < chars.count, chars[j] != "\n" { j += 1 }; return j }
        let start = lineStart(cursor), column = cursor - start
        if delta < 0 {
            guard start > 0 else { return false }
            let above = lineStart(start - 1)
            cursor = above + min(column, start - 1 - above)
        } else {
            let end = lineEnd(cursor)
            guard end < chars.count else { return false }
            cursor = end + 1 + min(column, lineEnd(end + 1) - end - 1)
        }
        return true
    }

    /// Moves to the start of the word before the cursor (Alt-B, Ctrl-Left).
    mutating func wordLeft() {
        let chars = Array(text)
        var i = cursor
        while i > 0, chars[i - 1].isWhitespace { i -= 1 }
        while i > 0, !chars[i - 1].isWhitespace { i -= 1 }
        cursor = i
    }

    /// Moves past the end of the word after the cursor (Alt-F, Ctrl-Right).
    mutating func wordRight() {
        let chars = Array(text)
        var i = cursor
        while i < chars.count, chars[i].isWhitespace { i += 1 }
        while i < chars.count, !chars[i].isWhitespace { i += 1 }
        cursor = i
    }

    mutating func replace(with s: String) { text = s; cursor = s.count }
}

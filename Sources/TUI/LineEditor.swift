/// The input's text and cursor, edited in grapheme clusters (what a person sees as one
/// character: a ZWJ family emoji, a flag, a letter with combining marks). The cursor counts
/// clusters from the start and always lies on a cluster boundary, also when inserted text joins
/// the cluster before it (a joiner typed after an emoji) or the one after it (a combining mark).
public struct LineEditor: Sendable, Equatable {
    public private(set) var text: String
    public private(set) var cursor: Int
    /// What the last Ctrl-K, Ctrl-U or Ctrl-W took out, for Ctrl-Y to put back.
    public private(set) var killed = ""

    public init(text: String = "", cursor: Int? = nil) {
        self.text = text
        self.cursor = min(max(cursor ?? text.count, 0), text.count)
    }

    private var cursorIndex: String.Index { text.index(text.startIndex, offsetBy: min(cursor, text.count)) }

    /// Replaces `text[cut]` by `insert`; the cursor goes after the inserted text, at the last
    /// cluster boundary not past it.
    private mutating func splice(_ cut: Range<String.Index>, _ insert: String) {
        let head = text.unicodeScalars[..<cut.lowerBound].count + insert.unicodeScalars.count
        text = String(text[..<cut.lowerBound]) + insert + String(text[cut.upperBound...])
        var scalars = 0, clusters = 0
        for ch in text {
            scalars += ch.unicodeScalars.count
            if scalars > head { break }
            clusters += 1
        }
        cursor = clusters
    }

    public mutating func insert(_ s: String) { let i = cursorIndex; splice(i..<i, s) }

    /// Puts `s` before the text, the cursor staying where it was in what followed.
    public mutating func insertAtStart(_ s: String) {
        let after = text.count - cursor
        text = s + text
        cursor = text.count - after
    }

    public mutating func deleteBackward() {
        guard cursor > 0 else { return }
        let i = cursorIndex
        splice(text.index(before: i)..<i, "")
    }

    public mutating func deleteForward() {
        let i = cursorIndex
        guard i < text.endIndex else { return }
        splice(i..<text.index(after: i), "")
    }

    public mutating func left() { cursor = max(0, cursor - 1) }
    public mutating func right() { cursor = min(text.count, cursor + 1) }
    public mutating func home() { cursor = 0 }
    public mutating func end() { cursor = text.count }
    public mutating func killToEnd() { kill(cursorIndex..<text.endIndex) }
    public mutating func killToStart() { kill(text.startIndex..<cursorIndex) }

    /// Inserts what the last kill took out at the cursor (Ctrl-Y, as readline's yank).
    public mutating func yank() { insert(killed) }

    private mutating func kill(_ r: Range<String.Index>) {
        guard !r.isEmpty else { return }
        killed = String(text[r])
        splice(r, "")
    }

    /// Deletes the word before the cursor and the blanks (spaces, tabs, line breaks) after it (Ctrl-W).
    public mutating func killWord() {
        let end = cursorIndex
        var start = end
        while start > text.startIndex, text[text.index(before: start)].isWhitespace { start = text.index(before: start) }
        while start > text.startIndex, !text[text.index(before: start)].isWhitespace { start = text.index(before: start) }
        kill(start..<end)
    }

    /// Moves the cursor to the line above (`by: -1`) or below (`by: 1`) at the same column in
    /// characters (or that line's end); false, without moving, on the first or last line.
    public mutating func moveLine(by delta: Int) -> Bool {
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
    public mutating func wordLeft() {
        let chars = Array(text)
        var i = cursor
        while i > 0, chars[i - 1].isWhitespace { i -= 1 }
        while i > 0, !chars[i - 1].isWhitespace { i -= 1 }
        cursor = i
    }

    /// Moves past the end of the word after the cursor (Alt-F, Ctrl-Right).
    public mutating func wordRight() {
        let chars = Array(text)
        var i = cursor
        while i < chars.count, chars[i].isWhitespace { i += 1 }
        while i < chars.count, !chars[i].isWhitespace { i += 1 }
        cursor = i
    }

    public mutating func replace(with s: String) { text = s; cursor = s.count }
}

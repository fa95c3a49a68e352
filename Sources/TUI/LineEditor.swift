/// The input's text and cursor, edited in grapheme clusters (what a person sees as one
/// character: a ZWJ family emoji, a flag, a letter with combining marks). The cursor counts
/// clusters from the start and always lies on a cluster boundary, also when inserted text joins
/// the cluster before it (a joiner typed after an emoji) or the one after it (a combining mark).
/// The cursor's place in the text is kept with its count, so that typing, deleting and moving
/// cost what they touch, not the length of the text (a pasted file).
public struct LineEditor: Sendable, Equatable {
    public private(set) var text: String
    public private(set) var cursor: Int
    /// The cursor's place in `text` in UTF-8 bytes.
    public var cursorOffset: Int { text.utf8.distance(from: text.startIndex, to: at) }
    /// Where `cursor` is in `text`.
    private var at: String.Index
    /// What the last Ctrl-K, Ctrl-U or Ctrl-W took out, for Ctrl-Y to put back.
    public private(set) var killed = ""

    public init(text: String = "", cursor: Int? = nil) {
        self.text = text
        self.cursor = min(max(cursor ?? text.count, 0), text.count)
        at = text.index(text.startIndex, offsetBy: self.cursor)
    }

    /// Replaces `text[cut]` by `insert`; the cursor goes after the inserted text, at the last
    /// cluster boundary not past it. `clustersBefore`: the clusters before `cut`, which starts
    /// at a cluster boundary.
    private mutating func splice(_ cut: Range<String.Index>, _ insert: String, clustersBefore: Int) {
        // Whether a cluster ends at a place depends on the text before it and the one scalar
        // after it, so the boundaries before the cut stay; counting resumes at the one before
        // the cut, as the inserted text may join the cluster that ends there.
        let resume = cut.lowerBound > text.startIndex ? text.index(before: cut.lowerBound) : text.startIndex
        let clusters = cut.lowerBound > text.startIndex ? clustersBefore - 1 : 0
        let resumeOffset = text.utf8.distance(from: text.startIndex, to: resume)
        let head = text.utf8.distance(from: text.startIndex, to: cut.lowerBound) + insert.utf8.count
        text.replaceSubrange(cut, with: insert)
        place(notPast: head, countingFrom: text.utf8.index(text.startIndex, offsetBy: resumeOffset), clusters: clusters)
    }

    /// Puts the cursor at the last cluster boundary at most `offset` UTF-8 bytes into the text,
    /// counting on from the boundary `i`, which has `clusters` clusters before it.
    private mutating func place(notPast offset: Int, countingFrom i: String.Index, clusters: Int) {
        var i = i, clusters = clusters
        while i < text.endIndex {
            let next = text.index(after: i)
            if text.utf8.distance(from: text.startIndex, to: next) > offset { break }
            i = next
            clusters += 1
        }
        at = i
        cursor = clusters
    }

    public mutating func insert(_ s: String) { splice(at..<at, s, clustersBefore: cursor) }

    /// Puts `s` before the text, the cursor staying where it was in what followed: at the last
    /// cluster boundary not past that place, as `s` may join the clusters after it into one.
    public mutating func insertAtStart(_ s: String) {
        let offset = s.utf8.count + text.utf8.distance(from: text.startIndex, to: at)
        text = s + text
        place(notPast: offset, countingFrom: text.startIndex, clusters: 0)
    }

    public mutating func deleteBackward() {
        guard cursor > 0 else { return }
        splice(text.index(before: at)..<at, "", clustersBefore: cursor - 1)
    }

    public mutating func deleteForward() {
        guard at < text.endIndex else { return }
        splice(at..<text.index(after: at), "", clustersBefore: cursor)
    }

    public mutating func left() {
        guard cursor > 0 else { return }
        at = text.index(before: at)
        cursor -= 1
    }

    public mutating func right() {
        guard at < text.endIndex else { return }
        at = text.index(after: at)
        cursor += 1
    }

    public mutating func home() { at = text.startIndex; cursor = 0 }
    public mutating func end() { cursor += text[at...].count; at = text.endIndex }
    public mutating func killToEnd() { kill(at..<text.endIndex, clustersBefore: cursor) }
    public mutating func killToStart() { kill(text.startIndex..<at, clustersBefore: 0) }

    /// Inserts what the last kill took out at the cursor (Ctrl-Y, as readline's yank).
    public mutating func yank() { insert(killed) }

    private mutating func kill(_ r: Range<String.Index>, clustersBefore: Int) {
        guard !r.isEmpty else { return }
        killed = String(text[r])
        splice(r, "", clustersBefore: clustersBefore)
    }

    /// The place before the characters ending at `i` for which `take` holds, and how many it passed.
    private func back(from i: String.Index, while take: (Character) -> Bool) -> (String.Index, Int) {
        var j = i, n = 0
        while j > text.startIndex {
            let k = text.index(before: j)
            guard take(text[k]) else { break }
            j = k
            n += 1
        }
        return (j, n)
    }

    /// The place after the characters from `i` for which `take` holds, and how many it passed.
    private func forward(from i: String.Index, while take: (Character) -> Bool) -> (String.Index, Int) {
        var j = i, n = 0
        while j < text.endIndex, take(text[j]) {
            j = text.index(after: j)
            n += 1
        }
        return (j, n)
    }

    /// Deletes the word before the cursor and the blanks (spaces, tabs, line breaks) after it (Ctrl-W).
    public mutating func killWord() {
        let (afterWord, blanks) = back(from: at, while: \.isWhitespace)
        let (start, letters) = back(from: afterWord, while: { !$0.isWhitespace })
        kill(start..<at, clustersBefore: cursor - blanks - letters)
    }

    /// Moves the cursor to the line above (`by: -1`) or below (`by: 1`) at the same column in
    /// characters (or that line's end); false, without moving, on the first or last line.
    public mutating func moveLine(by delta: Int) -> Bool {
        let notBreak: (Character) -> Bool = { $0 != "\n" }
        let (start, column) = back(from: at, while: notBreak)
        if delta < 0 {
            guard start > text.startIndex else { return false }
            let (above, length) = back(from: text.index(before: start), while: notBreak)
            at = text.index(above, offsetBy: min(column, length))
            cursor += min(column, length) - column - 1 - length
        } else {
            let (end, rest) = forward(from: at, while: notBreak)
            guard end < text.endIndex else { return false }
            var n = 0
            at = text.index(after: end)
            while n < column, at < text.endIndex, text[at] != "\n" { at = text.index(after: at); n += 1 }
            cursor += rest + 1 + n
        }
        return true
    }

    /// Moves to the start of the word before the cursor (Alt-B, Ctrl-Left).
    public mutating func wordLeft() {
        let (afterWord, blanks) = back(from: at, while: \.isWhitespace)
        let (start, letters) = back(from: afterWord, while: { !$0.isWhitespace })
        at = start
        cursor -= blanks + letters
    }

    /// Moves past the end of the word after the cursor (Alt-F, Ctrl-Right).
    public mutating func wordRight() {
        let (wordStart, blanks) = forward(from: at, while: \.isWhitespace)
        let (end, letters) = forward(from: wordStart, while: { !$0.isWhitespace })
        at = end
        cursor += blanks + letters
    }

    public mutating func replace(with s: String) { text = s; cursor = s.count; at = s.endIndex }
}

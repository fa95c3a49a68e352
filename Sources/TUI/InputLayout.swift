import ChatAPI
import Foundation

/// The input's text wrapped to a width as `Wrap.rows` wraps it, kept paragraph by paragraph
/// (the text between two line breaks wraps on its own), so that `InputLayoutCache` can re-wrap
/// only the paragraphs an edit touched, and a frame reads only the rows it shows.
struct InputLayout {
    struct Paragraph {
        /// The text's UTF-8 bytes, the line break after it not included.
        var bytes: Int
        /// Unicode scalars as `TerminalText.sanitize` shows it (tabs as 4 spaces).
        var scalars: Int
        /// `Wrap.rows` of this paragraph alone: starts count from its first shown scalar.
        var rows: [(text: String, start: Int)]
        /// Every `Paragraph.stride` bytes or so, a scalar's first byte and the shown scalars
        /// before it, so that the cursor's place is found walking at most that many bytes.
        var marks: [(byte: Int, shown: Int)] = []
        static let stride = 4096

        init(_ text: Substring.UnicodeScalarView, width: Int) {
            var bytes = 0, shown = 0
            for u in text {
                if bytes >= marks.count * Paragraph.stride { marks.append((bytes, shown)) }
                bytes += UTF8.width(u)
                shown += InputLayout.shownCount(u)
            }
            self.bytes = bytes
            scalars = shown
            rows = Wrap.rows(String(Substring(text)), width: width)
        }

        /// The shown scalars before byte `byte` of the paragraph (a scalar's first byte); `start`:
        /// where the paragraph starts in `text`.
        func shown(before byte: Int, from start: String.Index, in text: String) -> Int {
            guard let mark = marks.last(where: { $0.byte <= byte }) else { return 0 }
            let u = text.utf8
            var shown = mark.shown
            for v in text.unicodeScalars[u.index(start, offsetBy: mark.byte)..<u.index(start, offsetBy: byte)] {
                shown += InputLayout.shownCount(v)
            }
            return shown
        }
    }

    let width: Int
    var paragraphs: [Paragraph]

    /// `text` wrapped whole.
    init(_ text: String, width: Int) {
        self.width = width
        paragraphs = InputLayout.paragraphs(of: text.unicodeScalars[...], width: width)
    }

    init(width: Int, paragraphs: [Paragraph]) {
        self.width = width
        self.paragraphs = paragraphs
    }

    /// The paragraphs of `text` (split at every line break, also the one of a "\r\n" cluster), each wrapped.
    static func paragraphs(of text: Substring.UnicodeScalarView, width: Int) -> [Paragraph] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { Paragraph($0, width: width) }
    }

    /// The scalars `TerminalText.sanitize` shows for `u` with tabs as 4 spaces.
    static func shownCount(_ u: Unicode.Scalar) -> Int { TerminalText.shownCount(u, tabWidth: 4) }

    var rowCount: Int { paragraphs.reduce(0) { $0 + $1.rows.count } }

    /// The text of the rows in `range` (of all the rows, first paragraph first).
    func rows(_ range: Range<Int>) -> [String] {
        var out: [String] = [], row = 0
        for p in paragraphs {
            if row >= range.upperBound { break }
            let here = row..<(row + p.rows.count)
            for r in here.clamped(to: range) { out.append(p.rows[r - row].text) }
            row = here.upperBound
        }
        return out
    }

    /// Where the cursor `byte` UTF-8 bytes into `text` (the text laid out; a cluster boundary) is
    /// drawn: the row among all rows, and the cells before it on that row (at most `width`). At a
    /// break, the cursor before the dropped spaces stays at the end of the row, after them it
    /// starts the next row. It reads the scalars of the cursor's paragraph before it, and the
    /// cursor's row.
    func cursor(in text: String, atByte byte: Int) -> (row: Int, col: Int) {
        var start = 0, row = 0
        for (k, p) in paragraphs.enumerated() {
            if byte <= start + p.bytes || k == paragraphs.count - 1 {
                let u = text.utf8, from = min(start, u.count)
                let local = min(max(byte, start), start + p.bytes, u.count) - from
                let target = min(p.shown(before: local, from: u.index(u.startIndex, offsetBy: from), in: text), p.scalars)
                guard let r = p.rows.lastIndex(where: { $0.start <= target }) else { return (row, 0) }
                // The row's shown scalars from its start to the cursor: its text, then the spaces
                // trimmed from its end or dropped at its break.
                var before = target - p.rows[r].start, col = 0
                for u in p.rows[r].text.unicodeScalars where before > 0 { col += TextWidth.of(u); before -= 1 }
                return (row + r, min(width, col + max(before, 0)))
            }
            start += p.bytes + 1
            row += p.rows.count
        }
        return (0, 0)
    }
}

/// The input laid out for the last frame, re-used for the next: for a new text only the
/// paragraphs between the first and the last byte that changed are wrapped again, so a key in a
/// long input (a pasted file) costs the paragraphs it touched, not the whole text.
public final class InputLayoutCache: @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    private var layout: InputLayout?
    /// Paragraphs wrapped (the cost of the updates) so far.
    private(set) var wrapped = 0

    public init() {}

    func layout(_ new: String, width: Int) -> InputLayout {
        lock.withLock {
            guard var l = layout, l.width == width else {
                let fresh = InputLayout(new, width: width)
                wrapped += fresh.paragraphs.count
                text = new; layout = fresh
                return fresh
            }
            var old = text, newText = new
            let (prefix, suffix) = old.withUTF8 { o in newText.withUTF8 { n in InputLayoutCache.common(o, n) } }
            if prefix == old.utf8.count && prefix == newText.utf8.count { return l }
            // The paragraphs holding the first and the last changed byte of the old text.
            let oldBytes = old.utf8.count, changedEnd = oldBytes - suffix
            var start = 0, first = -1, firstStart = 0, last = l.paragraphs.count - 1, lastEnd = oldBytes
            for (i, p) in l.paragraphs.enumerated() {
                if first < 0 && prefix <= start + p.bytes { first = i; firstStart = start }
                if first >= 0 && changedEnd <= start + p.bytes { last = i; lastEnd = start + p.bytes; break }
                start += p.bytes + 1
            }
            if first < 0 { first = last; firstStart = start }
            let delta = newText.utf8.count - oldBytes
            let from = newText.utf8.index(newText.utf8.startIndex, offsetBy: firstStart)
            let to = newText.utf8.index(from, offsetBy: lastEnd + delta - firstStart)
            let fresh = InputLayout.paragraphs(of: newText.unicodeScalars[from..<to], width: width)
            wrapped += fresh.count
            l.paragraphs.replaceSubrange(first...last, with: fresh)
            text = new; layout = l
            return l
        }
    }

    /// The bytes `a` and `b` have in common at their start, and at their end after that.
    static func common(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> (prefix: Int, suffix: Int) {
        let n = min(a.count, b.count)
        guard n > 0, let pa = a.baseAddress, let pb = b.baseAddress else { return (0, 0) }
        if pa == pb && a.count == b.count { return (n, 0) }      // the same storage
        var p = 0
        while p + 256 <= n && memcmp(pa + p, pb + p, 256) == 0 { p += 256 }
        while p < n && a[p] == b[p] { p += 1 }
        var s = 0
        while s + 256 <= n - p && memcmp(pa + a.count - s - 256, pb + b.count - s - 256, 256) == 0 { s += 256 }
        while s < n - p && a[a.count - 1 - s] == b[b.count - 1 - s] { s += 1 }
        return (p, s)
    }
}


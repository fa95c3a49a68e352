import ChatAPI

/// Word wrap by display width: breaks at spaces when it can, inside a word when it must, never
/// inside a wide character; explicit newlines are kept.
public enum Wrap {
    public static func lines(_ text: String, width: Int) -> [String] {
        rows(text, width: width).map(\.text)
    }

    /// The wrapped lines, each with the offset (in Unicode scalars of the text as
    /// `TerminalText.sanitize` shows it, tabs as 4 spaces) where it starts; the spaces dropped at
    /// a break belong to no line. Greedy, word by word: a word (the characters up to and with a
    /// space or a wide character) goes on the line if it fits, else starts the next one, cut into
    /// pieces as wide as a line when it is wider.
    static func rows(_ text: String, width: Int) -> [(text: String, start: Int)] {
        guard width > 0 else { return [] }
        var out: [(text: String, start: Int)] = []
        var offset = 0
        let shown = TerminalText.sanitize(text, tabWidth: 4)
        for paragraph in paragraphs(of: shown) {
            var wrap = ParagraphWrap(paragraph, width: width, offset: offset)
            wrap.run(into: &out)
            offset = wrap.scalar + 1
        }
        return out
    }

    /// `text` split at its line breaks, found byte by byte (a line break is a character of its own).
    static func paragraphs(of text: String) -> [Substring] {
        var out: [Substring] = [], start = text.startIndex
        let u = text.utf8
        var i = u.startIndex
        while let j = u[i...].firstIndex(of: 0x0A) {
            out.append(text[start..<j])
            i = u.index(after: j); start = i
        }
        out.append(text[start...])
        return out
    }

    static func trimmedEnd(_ s: some StringProtocol) -> String {
        var t = String(s)
        while t.last == " " { t.removeLast() }
        return t
    }
}

/// `Wrap.rows` of one paragraph (no line breaks), walking its characters once: words and lines
/// are kept as byte offsets in the text, not copied, and a printable ASCII character before
/// another ASCII one is taken without grapheme breaking (it is a character of its own).
struct ParagraphWrap {
    let text: Substring
    let bytes: [UInt8]
    let width: Int
    /// The walk's place: a character boundary (in bytes), and the scalars before it (from the whole text's start).
    var at = 0, scalar: Int
    var line: Span, word: Span

    /// Characters from byte `start` to `end`, `scalars` scalars and `cells` wide.
    struct Span {
        var start: Int, end: Int, first: Int, scalars = 0, cells = 0, characters = 0
        init(at i: Int, scalar: Int) { start = i; end = i; first = scalar }
        var isEmpty: Bool { characters == 0 }
    }

    init(_ text: Substring, width: Int, offset: Int) {
        self.text = text
        bytes = Array(text.utf8)
        self.width = width
        scalar = offset
        line = Span(at: 0, scalar: offset)
        word = line
    }

    func index(_ byte: Int) -> String.Index { text.utf8.index(text.startIndex, offsetBy: byte) }

    /// The character at byte `i`: where it ends, its scalars, its cells, and whether it is a space.
    func character(at i: Int) -> (end: Int, scalars: Int, cells: Int, space: Bool) {
        let b = bytes[i]
        if b < 0x80 && (i + 1 == bytes.count || bytes[i + 1] < 0x80) { return (i + 1, 1, 1, b == 0x20) }
        let from = index(i), to = text.index(after: from)
        var scalars = 0, cells = 0
        for v in text.unicodeScalars[from..<to] { scalars += 1; cells += TextWidth.of(v) }
        return (i + text.utf8.distance(from: from, to: to), scalars, cells, scalars == 1 && b == 0x20)
    }

    func string(_ s: Span) -> Substring { text[index(s.start)..<index(s.end)] }

    mutating func run(into out: inout [(text: String, start: Int)]) {
        while at < bytes.count {
            let c = character(at: at)
            word.end = c.end; word.scalars += c.scalars; word.cells += c.cells; word.characters += 1
            at = c.end; scalar += c.scalars
            // Break opportunities: after a space, and around wide (CJK) characters.
            if c.space || c.cells >= 2 { flushWord(into: &out) }
        }
        flushWord(into: &out)
        out.append((Wrap.trimmedEnd(string(line)), line.first))
    }

    mutating func flushWord(into out: inout [(text: String, start: Int)]) {
        defer { word = Span(at: at, scalar: scalar) }
        if line.cells + word.cells <= width {
            if line.isEmpty { line = Span(at: word.start, scalar: word.first) }
            line.end = word.end; line.scalars += word.scalars; line.cells += word.cells; line.characters += word.characters
            return
        }
        if !line.isEmpty { out.append((Wrap.trimmedEnd(string(line)), line.first)) }
        // A word wider than a line: pieces as wide as a line (at least one character each).
        var rest = word
        while rest.cells > width {
            var piece = Span(at: rest.start, scalar: rest.first)
            while piece.end < rest.end {
                let c = character(at: piece.end)
                if piece.cells + c.cells > width && !piece.isEmpty { break }
                piece.end = c.end; piece.scalars += c.scalars; piece.cells += c.cells; piece.characters += 1
            }
            out.append((String(string(piece)), piece.first))
            rest.start = piece.end; rest.first += piece.scalars; rest.scalars -= piece.scalars
            rest.cells -= piece.cells; rest.characters -= piece.characters
        }
        // The rest starts the next line, without the spaces it starts with.
        while rest.start < rest.end {
            let c = character(at: rest.start)
            guard c.space else { break }
            rest.start = c.end; rest.first += 1; rest.scalars -= 1; rest.cells -= 1; rest.characters -= 1
        }
        line = rest
    }
}

/// A message body laid out for reading: code between ``` fences keeps its lines and indentation
/// (long lines broken, not re-flowed) in the code role; list items (`- `, `* `, `+ `, `1. `, `1) `)
/// wrap under their text, not under the marker; other paragraphs word-wrap.
public enum MessageLayout {
    public static func lines(_ text: String, width: Int, role: Role = .text) -> [(Role, String)] {
        styledLines(text, width: width, role: role).map { ($0.role, $0.runs.map(\.1).joined()) }
    }

    /// One laid-out line: its role, and its text in runs of one role each (emphasis, strong and
    /// inline code differ from the line's role).
    public struct Line {
        public var role: Role
        public var runs: [(Role, String)]
        init(_ role: Role, _ text: String) { self.role = role; runs = [(role, text)] }
        init(_ role: Role, runs: [(Role, String)]) { self.role = role; self.runs = runs }
    }

    /// As `lines`, with Markdown emphasis (`InlineMarkdown`) in paragraphs and list items;
    /// code blocks, headings and tables keep their text as it is.
    public static func styledLines(_ text: String, width: Int, role: Role = .text) -> [Line] {
        guard width > 0 else { return [] }
        var out: [Line] = []
        func prose(_ s: String, width: Int) -> [[(Role, String)]] {
            guard role == .text else { return Wrap.lines(s, width: width).map { [(role, $0)] } }
            let (plain, roles) = InlineMarkdown.parse(s, base: role)
            return InlineMarkdown.segments(of: Wrap.lines(plain, width: width), in: plain, roles: roles, base: role)
        }
        var inCode = false
        let all = TerminalText.sanitize(text, tabWidth: 4).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var k = 0
        while k < all.count {
            let raw = all[k]
            k += 1
            let trimmed = raw.drop(while: { $0 == " " })
            if !inCode, trimmed.hasPrefix("|") {                  // a table: its rows laid out together
                var rows = [raw]
                while k < all.count, all[k].drop(while: { $0 == " " }).hasPrefix("|") { rows.append(all[k]); k += 1 }
                out += table(rows, width: width, role: role).map { Line($0.0, $0.1) }
                continue
            }
            if !inCode, let h = heading(raw) {
                out += Wrap.lines(h, width: width).map { Line(.title, $0) }
                continue
            }
            if trimmed.hasPrefix("```") {
                inCode.toggle()
                out.append(Line(.dim, String(raw.prefix(width))))
                continue
            }
            if inCode {
                out += hardBreak(raw, width: width).map { Line(.code, $0) }
                continue
            }
            if let m = listMarker(raw), m < width - 4 {
                let body = prose(String(raw.dropFirst(m)), width: width - m)
                let lead = String(raw.prefix(m)), pad = String(repeating: " ", count: m)
                for (i, l) in body.enumerated() { out.append(Line(role, runs: [(role, i == 0 ? lead : pad)] + l)) }
                continue
            }
            out += prose(raw, width: width).map { Line(role, runs: $0) }
        }
        return out
    }

    /// A Markdown heading's text ("## Steps" -> "Steps"), or nil.
    static func heading(_ line: String) -> String? {
        let hashes = line.prefix { $0 == "#" }.count
        guard (1...6).contains(hashes), line.dropFirst(hashes).first == " " else { return nil }
        return String(line.dropFirst(hashes + 1))
    }

    /// Markdown table rows with their columns aligned ("│" between cells, a rule for the
    /// `|---|` row); rows too wide for `width` are cut into pieces like code.
    static func table(_ rows: [String], width: Int, role: Role) -> [(Role, String)] {
        func cells(_ r: String) -> [String] {
            var t = r.trimmingCharacters(in: .whitespaces)
            if t.hasPrefix("|") { t.removeFirst() }
            if t.hasSuffix("|") { t.removeLast() }
            return t.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let parsed = rows.map(cells)
        func isRule(_ c: [String]) -> Bool { !c.isEmpty && c.allSatisfy { !$0.isEmpty && $0.allSatisfy { "-:".contains($0) } } }
        let n = parsed.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: n)
        for c in parsed where !isRule(c) { for (i, x) in c.enumerated() { widths[i] = max(widths[i], TextWidth.of(x)) } }
        var out: [(Role, String)] = []
        for c in parsed {
            let line: String
            if isRule(c) {
                line = widths.map { String(repeating: "─", count: $0 + 2) }.joined(separator: "┼")
            } else {
                line = (0..<n).map { i in
                    let x = i < c.count ? c[i] : ""
                    return " " + x + String(repeating: " ", count: widths[i] - TextWidth.of(x)) + " "
                }.joined(separator: "│")
            }
            out += hardBreak(line, width: width).map { (role, $0) }
        }
        return out
    }

    /// Width of a list item's marker and indentation ("  - ", "12. "), or nil.
    static func listMarker(_ line: String) -> Int? {
        let chars = Array(line)
        var i = 0
        while i < chars.count, chars[i] == " " { i += 1 }
        guard i < chars.count else { return nil }
        if "-*+".contains(chars[i]), i + 1 < chars.count, chars[i + 1] == " " { return i + 2 }
        var j = i
        while j < chars.count, chars[j].isASCII, chars[j].isNumber { j += 1 }
        if j > i, j - i <= 3, j + 1 < chars.count, chars[j] == "." || chars[j] == ")", chars[j + 1] == " " { return j + 2 }
        return nil
    }

    /// A code line cut every `width` cells, wide characters kept whole.
    static func hardBreak(_ line: String, width: Int) -> [String] {
        var out: [String] = [], cur = "", w = 0
        for ch in line {
            let cw = TextWidth.of(character: ch)
            if w + cw > width { out.append(cur); cur = ""; w = 0 }
            cur.append(ch); w += cw
        }
        out.append(cur)
        return out
    }
}

import ChatAPI

/// Word wrap by display width: breaks at spaces when it can, inside a word when it must, never
/// inside a wide character; explicit newlines are kept.
public enum Wrap {
    public static func lines(_ text: String, width: Int) -> [String] {
        rows(text, width: width).map(\.text)
    }

    /// The wrapped lines, each with the offset (in Unicode scalars of the text as
    /// `TerminalText.sanitize` shows it, tabs as 4 spaces) where it starts; the spaces dropped at
    /// a break belong to no line.
    static func rows(_ text: String, width: Int) -> [(text: String, start: Int)] {
        guard width > 0 else { return [] }
        var out: [(text: String, start: Int)] = []
        var offset = 0
        for paragraph in TerminalText.sanitize(text, tabWidth: 4).split(separator: "\n", omittingEmptySubsequences: false) {
            var line = "", lineWidth = 0, lineStart = offset
            var word = "", wordWidth = 0, wordStart = offset
            func flushWord() {
                let wordScalars = word.unicodeScalars.count
                defer { word = ""; wordWidth = 0; wordStart += wordScalars }
                if lineWidth + wordWidth <= width {
                    if line.isEmpty { lineStart = wordStart }
                    line += word; lineWidth += wordWidth
                    return
                }
                if !line.isEmpty { out.append((trimmedEnd(line), lineStart)); line = ""; lineWidth = 0 }
                var w = word[...], start = wordStart, left = wordWidth
                while left > width {     // a word longer than the line
                    var take = "", tw = 0
                    while let c = w.first, tw + TextWidth.of(character: c) <= width { take.append(c); tw += TextWidth.of(character: c); w = w.dropFirst() }
                    if take.isEmpty, let c = w.first { take = String(c); tw = TextWidth.of(character: c); w = w.dropFirst() }
                    out.append((take, start))
                    start += take.unicodeScalars.count; left -= tw
                }
                let kept = w.drop(while: { $0 == " " })
                line = String(kept)
                lineWidth = TextWidth.of(line)
                lineStart = start + (w.unicodeScalars.count - kept.unicodeScalars.count)
            }
            for ch in paragraph {
                word.append(ch); wordWidth += TextWidth.of(character: ch)
                // Break opportunities: after a space, and around wide (CJK) characters.
                if ch == " " || TextWidth.of(character: ch) >= 2 { flushWord() }
            }
            flushWord()
            out.append((trimmedEnd(line), lineStart))
            offset += paragraph.unicodeScalars.count + 1
        }
        return out
    }

    /// Where the cursor after the first `cursor` characters of `text` is drawn among `rows`
    /// (from `rows(text, width:)`): the row, and the cells before it on that row (at most `width`).
    /// At a break, the cursor before the dropped spaces stays at the end of the row, after them
    /// it starts the next row.
    static func cursor(in text: String, at cursor: Int, rows: [(text: String, start: Int)], width: Int) -> (row: Int, col: Int) {
        let shown = Array(TerminalText.sanitize(text, tabWidth: 4).unicodeScalars)
        let target = min(TerminalText.sanitize(String(text.prefix(cursor)), tabWidth: 4).unicodeScalars.count, shown.count)
        guard let row = rows.lastIndex(where: { $0.start <= target }) else { return (0, 0) }
        let start = min(rows[row].start, target)
        return (row, min(width, shown[start..<target].reduce(0) { $0 + TextWidth.of($1) }))
    }

    static func trimmedEnd(_ s: String) -> String {
        var t = s
        while t.last == " " { t.removeLast() }
        return t
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

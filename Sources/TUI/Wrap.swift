import ChatAPI

/// Word wrap by display width: breaks at spaces when it can, inside a word when it must, never
/// inside a wide character; explicit newlines are kept.
public enum Wrap {
    public static func lines(_ text: String, width: Int) -> [String] {
        guard width > 0 else { return [] }
        var out: [String] = []
        for paragraph in TerminalText.sanitize(text, tabWidth: 4).split(separator: "\n", omittingEmptySubsequences: false) {
            var line = "", lineWidth = 0
            var word = "", wordWidth = 0
            func flushWord() {
                if lineWidth + wordWidth <= width {
                    line += word; lineWidth += wordWidth
                } else {
                    if !line.isEmpty { out.append(trimmedEnd(line)); line = ""; lineWidth = 0 }
                    var w = word[...]
                    while TextWidth.of(String(w)) > width {     // a word longer than the line
                        var take = "", tw = 0
                        while let c = w.first, tw + TextWidth.of(character: c) <= width { take.append(c); tw += TextWidth.of(character: c); w = w.dropFirst() }
                        if take.isEmpty { take = String(w.prefix(1)); w = w.dropFirst() }
                        out.append(take)
                    }
                    line = String(w).drop(while: { $0 == " " }).description
                    lineWidth = TextWidth.of(line)
                }
                word = ""; wordWidth = 0
            }
            for ch in paragraph {
                word.append(ch); wordWidth += TextWidth.of(character: ch)
                // Break opportunities: after a space, and around wide (CJK) characters.
                if ch == " " || TextWidth.of(character: ch) >= 2 { flushWord() }
            }
            flushWord()
            out.append(trimmedEnd(line))
        }
        return out
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
        guard width > 0 else { return [] }
        var out: [(Role, String)] = []
        var inCode = false
        for raw in TerminalText.sanitize(text, tabWidth: 4).split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let trimmed = raw.drop(while: { $0 == " " })
            if trimmed.hasPrefix("```") {
                inCode.toggle()
                out.append((.dim, String(raw.prefix(width))))
                continue
            }
            if inCode {
                out += hardBreak(raw, width: width).map { (.code, $0) }
                continue
            }
            if let m = listMarker(raw), m < width - 4 {
                let body = Wrap.lines(String(raw.dropFirst(m)), width: width - m)
                let lead = String(raw.prefix(m)), pad = String(repeating: " ", count: m)
                for (i, l) in body.enumerated() { out.append((role, (i == 0 ? lead : pad) + l)) }
                continue
            }
            out += Wrap.lines(raw, width: width).map { (role, $0) }
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

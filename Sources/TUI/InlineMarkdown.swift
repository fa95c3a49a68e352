/// Markdown emphasis inside a line of an answer: `code`, **strong** (or __strong__) and *em*
/// (or _em_) lose their markers and get roles of their own. Code spans are literal (no emphasis
/// inside); an underscore inside a word (snake_case) and a marker with a space on its inner side
/// ("2 * 3") are text; a marker that is never closed stays as typed.
public enum InlineMarkdown {
    /// The text without its markers, and the role of each of its characters (`base` where
    /// nothing applies).
    public static func parse(_ line: String, base: Role) -> (text: String, roles: [Role]) {
        let c = Array(line)
        var text = "", roles: [Role] = []
        func emit(_ s: ArraySlice<Character>, _ r: Role) { text += String(s); roles += Array(repeating: r, count: s.count) }
        var i = 0, plainFrom = 0
        func flushPlain(to end: Int) { if plainFrom < end { emit(c[plainFrom..<end], base) } }
        while i < c.count {
            if c[i] == "`" {
                let ticks = run(c, i, "`")
                if let close = closing(c, from: i + ticks, marker: "`", count: ticks, code: true) {
                    flushPlain(to: i)
                    var inner = c[(i + ticks)..<close]
                    if inner.count > 2, inner.first == " ", inner.last == " " { inner = inner.dropFirst().dropLast() }
                    emit(inner, .code)
                    i = close + ticks; plainFrom = i
                    continue
                }
                i += ticks; continue
            }
            if c[i] == "*" || c[i] == "_" {
                let m = c[i], n = min(run(c, i, m), 2)
                let opens = i + n < c.count && !c[i + n].isWhitespace
                    && (m == "*" || i == 0 || !isWordCharacter(c[i - 1]))
                if opens, let close = closing(c, from: i + n, marker: m, count: n, code: false) {
                    flushPlain(to: i)
                    let inner = parse(String(c[(i + n)..<close]), base: n == 2 ? .strong : .emphasis)
                    text += inner.text; roles += inner.roles.map { $0 == .text ? (n == 2 ? .strong : .emphasis) : $0 }
                    i = close + n; plainFrom = i
                    continue
                }
                i += run(c, i, m); continue
            }
            i += 1
        }
        flushPlain(to: c.count)
        return (text, roles)
    }

    /// Lines (already wrapped from `text`) cut into runs of one role each, by walking the wrapped
    /// lines through `text` (wrapping only drops spaces where it breaks).
    static func segments(of wrapped: [String], in text: String, roles: [Role], base: Role) -> [[(Role, String)]] {
        let chars = Array(text)
        var k = 0
        return wrapped.map { line in
            let lc = Array(line)
            func matches(_ at: Int) -> Bool { at + lc.count <= chars.count && Array(chars[at..<(at + lc.count)]) == lc }
            var start = k
            while !matches(start), start < chars.count, chars[start] == " " { start += 1 }
            guard matches(start) else { return [(base, line)] }
            k = start + lc.count
            var out: [(Role, String)] = []
            for (j, ch) in lc.enumerated() {
                let r = roles[start + j]
                if let last = out.last, last.0 == r { out[out.count - 1].1.append(ch) } else { out.append((r, String(ch))) }
            }
            return out
        }
    }

    static func run(_ c: [Character], _ i: Int, _ m: Character) -> Int {
        var j = i
        while j < c.count, c[j] == m { j += 1 }
        return j - i
    }

    static func isWordCharacter(_ ch: Character) -> Bool { ch.isLetter || ch.isNumber }

    /// Where the closing run of exactly `count` markers starts, or nil: not right after the
    /// opening, with no space before it, and (for `_`) not followed by a word character.
    static func closing(_ c: [Character], from: Int, marker m: Character, count n: Int, code: Bool) -> Int? {
        var j = from
        while j < c.count {
            if c[j] == m {
                let len = run(c, j, m)
                if code {
                    if len == n { return j }
                } else if len >= n, j > from, !c[j - 1].isWhitespace,
                          m == "*" || j + n >= c.count || !isWordCharacter(c[j + n]) {
                    return j
                }
                j += len; continue
            }
            if !code, c[j] == "`" {                   // a code span inside is skipped whole
                let t = run(c, j, "`")
                if let e = closing(c, from: j + t, marker: "`", count: t, code: true) { j = e + t; continue }
                j += t; continue
            }
            j += 1
        }
        return nil
    }
}

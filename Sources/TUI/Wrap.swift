/// Word wrap by display width: breaks at spaces when it can, inside a word when it must, never
/// inside a wide character; explicit newlines are kept.
public enum Wrap {
    public static func lines(_ text: String, width: Int) -> [String] {
        guard width > 0 else { return [] }
        var out: [String] = []
        for paragraph in Inert.text(text).split(separator: "\n", omittingEmptySubsequences: false) {
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
                if ch == " " || TextWidth.of(character: ch) == 2 { flushWord() }
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

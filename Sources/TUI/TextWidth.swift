/// Terminal display width of text, without the C library's locale-dependent wcwidth:
/// East Asian wide and fullwidth characters and emoji take two cells, combining marks, zero-width
/// joiners and variation selectors none, everything else one (regional indicators one each, as
/// the C library's wcwidth, which ncurses uses to place them). Control characters never reach a
/// width computation: `TerminalText.sanitize` replaces them first.
public enum TextWidth {
    public static func of(_ s: Unicode.Scalar) -> Int {
        let v = s.value
        if v == 0x200B || v == 0x200C || v == 0x200D || v == 0x2060 || (0xFE00...0xFE0F).contains(v) || (0xE0100...0xE01EF).contains(v) {
            return 0
        }
        switch s.properties.generalCategory {
        case .nonspacingMark, .enclosingMark: return 0
        default: break
        }
        return isWide(v) ? 2 : 1
    }

    static func isWide(_ v: UInt32) -> Bool {
        switch v {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
             0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6,
             0x1F300...0x1F64F, 0x1F900...0x1F9FF, 0x1FA70...0x1FAFF, 0x1F680...0x1F6FF,
             0x20000...0x2FFFD, 0x30000...0x3FFFD:
            return true
        case 0x2600...0x27BF:
            return isEmojiPresentation(v)
        default:
            return false
        }
    }

    static func isEmojiPresentation(_ v: UInt32) -> Bool {
        Unicode.Scalar(v)?.properties.isEmojiPresentation ?? false
    }

    /// `s` when it takes at most `width` cells, else its longest start that leaves one cell for "…", and "…".
    public static func truncated(_ s: String, toWidth width: Int) -> String {
        guard of(s) > width else { return s }
        var out = "", w = 0
        for ch in s where w + of(character: ch) <= width - 1 { out.append(ch); w += of(character: ch) }
        return out + "…"
    }

    /// Cells taken by `s`.
    public static func of(_ s: String) -> Int {
        var w = 0
        for ch in s {
            w += of(character: ch)
        }
        return w
    }

    /// Cells taken by one grapheme as a terminal places it: its scalars' widths add up (a ZWJ
    /// sequence or an emoji with a skin tone is drawn as its parts, see `displayUnits`).
    public static func of(character ch: Character) -> Int {
        ch.unicodeScalars.reduce(0) { $0 + of($1) }
    }

    /// A grapheme as the cells it is drawn in: each scalar of non-zero width starts a unit, the
    /// zero-width ones after it (combining marks, variation selectors) stay with it, joiners are
    /// left out. Terminals disagree on joining emoji sequences, but all draw the parts alike, so
    /// the screen and ncurses' idea of it stay in step.
    public static func displayUnits(_ ch: Character) -> [(text: Character, width: Int)] {
        var units: [(String, Int)] = []
        for u in ch.unicodeScalars where u.value != 0x200D {
            let w = of(u)
            if w == 0, !units.isEmpty { units[units.count - 1].0.unicodeScalars.append(u) }
            else if w > 0 { units.append((String(u), w)) }
        }
        return units.map { (Character($0.0), $0.1) }
    }
}

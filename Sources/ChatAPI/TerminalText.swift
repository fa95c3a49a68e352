/// Text from a model, a file or a file name, made safe to write to a terminal: C0 and C1
/// control characters (ESC above all) and DEL are shown as visible symbols instead of being
/// interpreted, and bidirectional controls are dropped, so nothing can move the cursor, change
/// colours or reorder text. Newlines stay; tabs stay, or become `tabWidth` spaces (for a cell
/// grid, which has no tab stops).
public enum TerminalText {
    public static func sanitize(_ s: String, tabWidth: Int? = nil) -> String {
        // Printable ASCII and line breaks (and tabs, when kept) show as they are.
        if s.utf8.allSatisfy({ ($0 >= 0x20 && $0 < 0x7F) || $0 == 0x0A || ($0 == 0x09 && tabWidth == nil) }) { return s }
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            switch u.value {
            case 0x0A: out.append(u)
            case 0x09:
                if let n = tabWidth { out.append(contentsOf: String(repeating: " ", count: n).unicodeScalars) } else { out.append(u) }
            case 0x00...0x1F: out.append(Unicode.Scalar(0x2400 + u.value)!)   // ␀ .. ␟ (␛ for ESC)
            case 0x7F: out.append("\u{2421}")                                  // ␡
            case 0x80...0x9F: out.append("\u{FFFD}")
            case _ where isBidiControl(u): continue
            default: out.append(u)
            }
        }
        return String(out)
    }

    /// How many scalars `sanitize` shows for `u`.
    @inlinable
    public static func shownCount(_ u: Unicode.Scalar, tabWidth: Int? = nil) -> Int {
        if u.value == 0x09 { return tabWidth ?? 1 }
        return isBidiControl(u) ? 0 : 1
    }

    /// The bidirectional controls `sanitize` drops (embeddings, overrides, isolates, marks).
    @inlinable
    public static func isBidiControl(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C: return true
        default: return false
        }
    }

    /// `sanitize` for one line of a listing or a message: line breaks shown as ␤ too.
    public static func line(_ s: String) -> String {
        sanitize(s).replacingOccurrences(of: "\n", with: "\u{2424}")
    }
}

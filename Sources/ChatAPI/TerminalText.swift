/// Text from a model, a file or a file name, made safe to write to a terminal: C0 and C1
/// control characters (ESC above all) and DEL are shown as visible symbols instead of being
/// interpreted. Newlines and tabs stay.
public enum TerminalText {
    public static func sanitize(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            switch u.value {
            case 0x0A, 0x09: out.append(u)
            case 0x00...0x1F: out.append(Unicode.Scalar(0x2400 + u.value)!)   // ␀ .. ␟ (␛ for ESC)
            case 0x7F: out.append("\u{2421}")                                  // ␡
            case 0x80...0x9F: out.append("\u{FFFD}")
            default: out.append(u)
            }
        }
        return String(out)
    }
}

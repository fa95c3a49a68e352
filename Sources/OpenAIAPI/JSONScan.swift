/// One pass over a request body's bytes before Foundation parses it, for what its parser does not
/// refuse: a body of many small values (it builds an object for each: a 62 MB body of `0,0,…`
/// held 3.8 GB), and a comma before a closing bracket (RFC 8259 has none; Foundation takes it).
enum JSONScan {
    struct Findings: Equatable {
        /// Commas and opening brackets outside strings, plus one: at least the values and members
        /// the body holds (counting stops past the limit given).
        var items = 1
        var trailingComma = false
    }

    static func scan(_ bytes: [UInt8], itemLimit: Int) -> Findings {
        var f = Findings()
        var inString = false, escaped = false, afterComma = false
        for b in bytes {
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                continue
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                if afterComma { f.trailingComma = true; return f }
            case UInt8(ascii: ","), UInt8(ascii: "["), UInt8(ascii: "{"):
                f.items += 1
                if f.items > itemLimit { return f }
            case UInt8(ascii: "\""):
                inString = true
            default:
                break
            }
            afterComma = b == UInt8(ascii: ",")
        }
        return f
    }
}

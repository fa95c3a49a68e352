/// Finds a key that one JSON object holds twice. Foundation's readers keep one of the values
/// without a word, so a config.json edited by hand could run with a value its author did not
/// mean. Keys are compared with their escapes decoded, as Swift strings.
enum DuplicateJSONKeys {
    /// Deeper nesting is left to the decoder (a config nests a few levels; hostile input, no deeper).
    static let maxDepth = 512

    /// The path of the first key repeated within one object ("llm_config.hidden_size",
    /// "a[2].b"), or nil: none is, or the text is not JSON (the decoder then says so).
    static func first(in bytes: [UInt8]) -> String? {
        var stack: [Level] = []
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                guard stack.count < maxDepth else { return nil }
                let object = bytes[i] == UInt8(ascii: "{")
                stack.append(Level(keys: object ? [] : nil, expectsKey: object))
                i += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard stack.popLast() != nil else { return nil }
                i += 1
            case UInt8(ascii: ","):
                if stack.last?.keys != nil { stack[stack.count - 1].expectsKey = true } else if !stack.isEmpty { stack[stack.count - 1].index += 1 }
                i += 1
            case UInt8(ascii: "\""):
                guard let (s, end) = string(bytes, from: i) else { return nil }
                i = end
                guard let top = stack.last, let keys = top.keys, top.expectsKey else { continue }
                if keys.contains(s) { return path(stack.dropLast(), then: s) }
                stack[stack.count - 1].keys!.insert(s)
                stack[stack.count - 1].key = s
                stack[stack.count - 1].expectsKey = false
            default:
                i += 1
            }
        }
        return nil
    }

    /// An object (its keys so far, the latest one) or an array (the index of its element).
    struct Level {
        var keys: Set<String>?
        var key = ""
        var expectsKey: Bool
        var index = 0
    }

    /// `key` within the values the enclosing levels are reading: "a[2].b".
    static func path(_ levels: ArraySlice<Level>, then key: String) -> String {
        var p = ""
        for l in levels { p += l.keys == nil ? "[\(l.index)]" : (p.isEmpty ? "" : ".") + l.key }
        return p.isEmpty ? key : p + "." + key
    }

    /// The one-character escapes of JSON and the UTF-16 unit each stands for.
    static let escapes: [UInt8: UInt16] = [UInt8(ascii: "\""): 0x22, UInt8(ascii: "\\"): 0x5C, UInt8(ascii: "/"): 0x2F, UInt8(ascii: "b"): 0x08,
                                           UInt8(ascii: "f"): 0x0C, UInt8(ascii: "n"): 0x0A, UInt8(ascii: "r"): 0x0D, UInt8(ascii: "t"): 0x09]

    /// The JSON string starting at the quote at `start`, decoded, and the index after its closing
    /// quote; nil when it is cut short or holds a bad escape.
    static func string(_ bytes: [UInt8], from start: Int) -> (String, Int)? {
        var units: [UInt16] = []
        var run = start + 1
        var i = run
        func flush(to end: Int) { units += String(decoding: bytes[run..<end], as: UTF8.self).utf16 }
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "\""):
                flush(to: i)
                return (String(decoding: units, as: UTF16.self), i + 1)
            case UInt8(ascii: "\\"):
                flush(to: i)
                guard i + 1 < bytes.count else { return nil }
                switch bytes[i + 1] {
                case UInt8(ascii: "u"):
                    guard i + 6 <= bytes.count, let u = UInt16(String(decoding: bytes[(i + 2)..<(i + 6)], as: UTF8.self), radix: 16) else { return nil }
                    units.append(u)
                    i += 6
                case let c:
                    guard let u = escapes[c] else { return nil }
                    units.append(u)
                    i += 2
                }
                run = i
            default:
                i += 1
            }
        }
        return nil
    }
}

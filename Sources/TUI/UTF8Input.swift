/// Characters and key codes from what curses' `wgetch` returns (a byte of input, or a key code
/// its keypad made of an escape sequence), decoded here rather than by `get_wch`: after an
/// invalid byte, `get_wch` keeps reading to finish a character that never comes, up to 37
/// bytes, an end-of-paste marker included, and drops them all. Here each invalid or cut-short
/// sequence is one U+FFFD (the maximal subparts Unicode and Swift's own decoder replace), and
/// the byte or key that cut it short is read next.
struct UTF8Input {
    enum Raw: Equatable { case byte(UInt8), key(Int32) }
    enum Item: Equatable { case scalar(Unicode.Scalar), key(Int32) }

    /// Items handed back (`unread`), read before anything else.
    private var handedBack: [Item] = []
    /// What ended a sequence cut short, read next.
    private var pending: Raw?

    /// The next character or key. `read(continuing)` gives the next byte or key, nil when none
    /// came in time; `continuing` is true when a character's later bytes are awaited.
    mutating func next(_ read: (_ continuing: Bool) -> Raw?) -> Item? {
        if !handedBack.isEmpty { return handedBack.removeFirst() }
        let first = pending ?? read(false)
        pending = nil
        guard let first else { return nil }
        guard case .byte(let lead) = first else {
            if case .key(let k) = first { return .key(k) }
            return nil
        }
        // Table 3-7 of the Unicode standard: the later bytes' count, and the second byte's range.
        let more: Int, second: ClosedRange<UInt8>
        switch lead {
        case 0x00...0x7F: return .scalar(Unicode.Scalar(lead))
        case 0xC2...0xDF: (more, second) = (1, 0x80...0xBF)
        case 0xE0: (more, second) = (2, 0xA0...0xBF)
        case 0xED: (more, second) = (2, 0x80...0x9F)
        case 0xE1...0xEF: (more, second) = (2, 0x80...0xBF)
        case 0xF0: (more, second) = (3, 0x90...0xBF)
        case 0xF4: (more, second) = (3, 0x80...0x8F)
        case 0xF1...0xF3: (more, second) = (3, 0x80...0xBF)
        default: return .scalar("\u{FFFD}")
        }
        var value = UInt32(lead) & (0x3F >> more)
        for i in 0..<more {
            guard let r = read(true) else { return .scalar("\u{FFFD}") }
            guard case .byte(let b) = r, (i == 0 ? second : 0x80...0xBF).contains(b) else {
                pending = r
                return .scalar("\u{FFFD}")
            }
            value = value << 6 | UInt32(b & 0x3F)
        }
        return .scalar(Unicode.Scalar(value) ?? "\u{FFFD}")
    }

    /// Hands `items` back (read before, in this order): they are the next ones `next` returns.
    mutating func unread(_ items: [Item]) { handedBack = items + handedBack }
}

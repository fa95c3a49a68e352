/// Bytes -> String the way sentencepiece decodes byte pieces: every well-formed UTF-8 sequence is
/// kept, every byte that does not start one becomes U+FFFD (one per byte, unlike Swift's
/// String(decoding:), which replaces maximal subparts).
func utf8Repairing(_ b: [UInt8]) -> String {
    var scalars = String.UnicodeScalarView()
    var i = 0
    while i < b.count {
        let (scalar, len) = decodeOne(b, i)
        scalars.append(scalar ?? "\u{FFFD}")
        i += scalar == nil ? 1 : len
    }
    return String(scalars)
}

/// The well-formed scalar at `i`, or nil. Rejects overlong forms, surrogates and > U+10FFFF.
@inline(__always)
func decodeOne(_ b: [UInt8], _ i: Int) -> (Unicode.Scalar?, Int) {
    let c0 = b[i]
    if c0 < 0x80 { return (Unicode.Scalar(c0), 1) }
    let n: Int, minValue: UInt32
    var v: UInt32
    switch c0 {
    case 0xC2...0xDF: n = 2; v = UInt32(c0 & 0x1F); minValue = 0x80
    case 0xE0...0xEF: n = 3; v = UInt32(c0 & 0x0F); minValue = 0x800
    case 0xF0...0xF4: n = 4; v = UInt32(c0 & 0x07); minValue = 0x10000
    default: return (nil, 1)
    }
    guard i + n <= b.count else { return (nil, 1) }
    for k in 1..<n {
        let c = b[i + k]
        guard c & 0xC0 == 0x80 else { return (nil, 1) }
        v = (v << 6) | UInt32(c & 0x3F)
    }
    guard v >= minValue, let s = Unicode.Scalar(v) else { return (nil, 1) }
    return (s, n)
}

/// How many trailing bytes of `b` are the beginning of a UTF-8 sequence that more bytes could
/// still complete (0 when the text ends on a boundary).
func incompleteUTF8Tail(_ b: [UInt8]) -> Int {
    let maxBack = min(3, b.count)
    for back in 1...max(maxBack, 1) where back <= b.count {
        let c = b[b.count - back]
        if c & 0xC0 == 0x80 { continue }            // continuation byte: look further back
        let need: Int
        switch c {
        case 0xC2...0xDF: need = 2
        case 0xE0...0xEF: need = 3
        case 0xF0...0xF4: need = 4
        default: return 0
        }
        return back < need ? back : 0
    }
    return 0
}

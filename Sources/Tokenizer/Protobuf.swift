/// A minimal protobuf wire-format reader: enough to read SentencePiece's ModelProto.
struct ProtobufReader {
    enum Field {
        case varint(UInt64)
        case fixed32(UInt32)
        case fixed64(UInt64)
        case bytes(ArraySlice<UInt8>)
    }

    struct Malformed: Error {}

    let data: ArraySlice<UInt8>
    var pos: Int

    init(_ data: ArraySlice<UInt8>) {
        self.data = data
        pos = data.startIndex
    }

    var atEnd: Bool { pos >= data.endIndex }

    mutating func varint() throws -> UInt64 {
        var result: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard pos < data.endIndex, shift < 64 else { throw Malformed() }
            let b = data[pos]; pos += 1
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// Next (field number, value).
    mutating func next() throws -> (Int, Field) {
        let key = try varint()
        let number = Int(key >> 3)
        guard number > 0 else { throw Malformed() }
        switch key & 7 {
        case 0: return (number, .varint(try varint()))
        case 1:
            guard data.endIndex - pos >= 8 else { throw Malformed() }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(data[pos + i]) << (8 * UInt64(i)) }
            pos += 8
            return (number, .fixed64(v))
        case 2:
            let n = try varint()
            guard n <= UInt64(data.endIndex - pos) else { throw Malformed() }
            let s = data[pos..<(pos + Int(n))]
            pos += Int(n)
            return (number, .bytes(s))
        case 5:
            guard data.endIndex - pos >= 4 else { throw Malformed() }
            var v: UInt32 = 0
            for i in 0..<4 { v |= UInt32(data[pos + i]) << (8 * UInt32(i)) }
            pos += 4
            return (number, .fixed32(v))
        default:
            throw Malformed()
        }
    }
}

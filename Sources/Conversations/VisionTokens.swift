import ChatAPI
import Foundation

/// Stored vision tokens: "IVT1", a little-endian UInt32 header length, a JSON header (the model
/// and the float count), then the float32 values.
enum VisionTokens {
    struct Header: Codable { var model: ModelIdentity; var count: Int }

    static func encode(_ t: [Float], model: ModelIdentity) throws -> Data {
        let head = try JSONEncoder().encode(Header(model: model, count: t.count))
        var d = Data("IVT1".utf8)
        withUnsafeBytes(of: UInt32(head.count).littleEndian) { d.append(contentsOf: $0) }
        d.append(head)
        t.withUnsafeBytes { d.append(contentsOf: $0) }
        return d
    }

    struct Invalid: Error {}

    static func decode(_ d: Data) throws -> (ModelIdentity, [Float]) {
        guard d.count >= 8, d.prefix(4) == Data("IVT1".utf8) else { throw Invalid() }
        let n = Int(d[4]) | Int(d[5]) << 8 | Int(d[6]) << 16 | Int(d[7]) << 24
        guard n > 0, n < 4096, 8 + n <= d.count else { throw Invalid() }
        let h = try JSONDecoder().decode(Header.self, from: d.subdata(in: 8..<(8 + n)))
        guard h.count > 0, h.count <= Limits.visionFileBytes / 4, d.count == 8 + n + h.count * 4 else { throw Invalid() }
        var t = [Float](repeating: 0, count: h.count)
        _ = t.withUnsafeMutableBytes { d.copyBytes(to: $0, from: (8 + n)..<d.count) }
        // Tokens the encoder made are finite; a file holding NaN or infinities was damaged or made
        // by hand, and is encoded again rather than fed to the model.
        guard t.allSatisfy(\.isFinite) else { throw Invalid() }
        return (h.model, t)
    }
}

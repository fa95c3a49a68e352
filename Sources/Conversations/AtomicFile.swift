import ChatAPI
import Foundation

/// Whole-or-nothing file replacement: a temporary file in the same folder, written, fsynced,
/// renamed over the target, then the folder fsynced so the rename itself is durable.
enum AtomicFile {
    struct IOError: Error { let call: String; let code: Int32 }

    static func write(_ data: Data, to url: URL) throws {
        let dir = url.deletingLastPathComponent().path
        let tmp = dir + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw IOError(call: "open", code: errno) }
        var ok = false
        defer { if !ok { unlink(tmp) } }
        do {
            defer { Glibc.close(fd) }
            try data.withUnsafeBytes { raw in
                var off = 0
                while off < raw.count {
                    let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                    if n < 0 { if errno == EINTR { continue }; throw IOError(call: "write", code: errno) }
                    off += n
                }
            }
            guard fsync(fd) == 0 else { throw IOError(call: "fsync", code: errno) }
        }
        guard rename(tmp, url.path) == 0 else { throw IOError(call: "rename", code: errno) }
        ok = true
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); Glibc.close(dfd) }
    }

    static func reason(_ error: Error) -> String {
        if let e = error as? IOError { return String(cString: strerror(e.code)) + " (\(e.call))" }
        return error.localizedDescription
    }
}

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
        return (h.model, t)
    }
}

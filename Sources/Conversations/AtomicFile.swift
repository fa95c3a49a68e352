import Foundation

/// Whole-or-nothing file replacement: a temporary file in the same folder, written, fsynced,
/// renamed over the target, then the folder fsynced so the rename itself is durable.
enum AtomicFile {
    struct IOError: Error { let call: String; let code: Int32 }

    /// Whether `name` is a temporary file `write` makes (".NAME.tmp-PID-N").
    static func isTemporary(_ name: String) -> Bool {
        guard name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards) else { return false }
        let parts = name[r.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }
    }

    /// Removes temporary files a killed writer left in `dir`. Only for folders whose writers all
    /// hold a lock the caller now holds.
    static func removeTemporaries(in dir: URL) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? [] where isTemporary(name) {
            unlink(dir.appendingPathComponent(name).path)
        }
    }

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
        // Foundation's file errors say only "The operation could not be completed": the system's
        // reason is the underlying error.
        if let cause = (error as NSError).userInfo[NSUnderlyingErrorKey] as? Error, (cause as NSError).domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32((cause as NSError).code)))
        }
        return error.localizedDescription
    }
}

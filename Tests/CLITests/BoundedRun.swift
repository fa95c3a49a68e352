import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs the binary with its output in files and reports the child's own peak RSS (from wait4)
/// and wall time; kills it after `timeout` seconds. Hostile-input tests use it to show a bad
/// file ends quickly and small, not just with the right message.
struct BoundedRun {
    var status: Int32
    var killed: Bool
    var err: String
    var out: String
    var maxRSSBytes: Int
    var seconds: Double

    /// `rawArgs`, when given, replaces `args` byte for byte (for names that are not UTF-8).
    static func run(_ executable: URL, _ args: [String], rawArgs: [[UInt8]]? = nil, timeout: Double = 60) throws -> BoundedRun {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bounded-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outPath = dir.appendingPathComponent("out").path, errPath = dir.appendingPathComponent("err").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let bytes = [Array(executable.path.utf8)] + (rawArgs ?? args.map { Array($0.utf8) })
        let argv: [UnsafeMutablePointer<CChar>?] = bytes.map { b in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: b.count + 1)
            for (i, x) in b.enumerated() { p[i] = CChar(bitPattern: x) }
            p[b.count] = 0
            return p
        } + [nil]
        defer { argv.forEach { $0?.deallocate() } }
        var pid: pid_t = 0
        let start = Date()
        let rc = posix_spawn(&pid, executable.path, &actions, nil, argv, environ)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
        var status: Int32 = 0
        var usage = rusage()
        var killed = false
        // The child's own peak (VmHWM, its address space after exec), sampled while it runs:
        // wait4's ru_maxrss also counts the parent's pages the spawn started on. Until the exec the
        // child shares the test runner's address space (posix_spawn's vfork), whose high-water
        // mark /proc then shows: samples count only once /proc/PID/exe is the executable.
        var peak = 0
        let image = executable.resolvingSymlinksInPath().path
        while true {
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe")) == image,
               let s = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
               let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
               let kb = Int(line.split(separator: " ").dropFirst().first ?? "") { peak = max(peak, kb * 1024) }
            let r = wait4(pid, &status, WNOHANG, &usage)
            if r == pid { break }
            if r < 0 && errno != EINTR { break }
            if !killed && Date().timeIntervalSince(start) > timeout { kill(pid, SIGKILL); killed = true }
            usleep(10_000)
        }
        let seconds = Date().timeIntervalSince(start)
        let exited = (status & 0x7f) == 0
        return BoundedRun(status: exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), killed: killed,
                          err: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
                          out: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                          maxRSSBytes: peak, seconds: seconds)
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Reads a file the user named as a regular file only, and only up to a limit: a FIFO, a device,
/// a socket or a folder is refused before anything is opened for reading, and a file larger than
/// the limit before anything is read. The bytes are read once.
public enum FileInput {
    /// Why a file was not read, as a clause a caller puts after the file's name.
    public enum Problem: Error, Equatable, Sendable {
        case missing
        case danglingLink
        case directory
        case notRegular(kind: String)
        case tooLarge(size: Int, limit: Int)
        case unreadable(String)

        public var reason: String {
            switch self {
            case .missing: return "it does not exist"
            case .danglingLink: return "it is a link to a missing file"
            case .directory: return "it is a folder"
            case .notRegular(let kind): return "it is \(kind), not a regular file"
            case .tooLarge(let size, let limit):
                return "it is \(FileInput.describe(bytes: size)), more than the \(FileInput.describe(bytes: limit)) allowed"
            case .unreadable(let r): return r
            }
        }
    }

    /// The whole file, at most `limit` bytes.
    public static func read(_ path: String, limit: Int) throws(Problem) -> [UInt8] {
        let (fd, size) = try openRegular(path)
        defer { close(fd) }
        guard size <= limit else { throw .tooLarge(size: size, limit: limit) }
        // st_size is a hint (files in /proc claim 0): read until the end, never past the limit.
        var out = [UInt8](repeating: 0, count: min(max(size, 4096), limit) + 1)
        var filled = 0
        while true {
            if filled == out.count {
                guard out.count <= limit else { throw .tooLarge(size: filled, limit: limit) }
                out.append(contentsOf: repeatElement(0, count: min(out.count, limit + 1 - out.count)))
            }
            let n = out.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(String(cString: strerror(errno)))
            }
            if n == 0 { break }
            filled += n
        }
        guard filled <= limit else { throw .tooLarge(size: filled, limit: limit) }
        out.removeSubrange(filled...)
        return out
    }

    /// A descriptor of the regular file at `path` (the caller closes it) and its size. A FIFO,
    /// device, socket or folder is refused without blocking on it.
    public static func openRegular(_ path: String) throws(Problem) -> (fd: Int32, size: Int) {
        let raw = fileSystemPath(path)
        var st = stat()
        guard stat(raw, &st) == 0 else {
            let e = errno
            if e == ENOENT {
                var lst = stat()
                throw lstat(raw, &lst) == 0 ? .danglingLink : .missing
            }
            throw .unreadable(String(cString: strerror(e)))
        }
        try checkKind(st)
        let fd = open(raw, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(String(cString: strerror(errno))) }
        guard fstat(fd, &st) == 0 else {
            let e = errno
            close(fd)
            throw .unreadable(String(cString: strerror(e)))
        }
        do { try checkKind(st) } catch { close(fd); throw error }
        return (fd, Int(st.st_size))
    }

    /// The kind of what is at `path`, or nil when it is a regular file (links followed); `missing`
    /// when nothing is, `unreadable` when it cannot be looked at (a loop of links, a file where
    /// a folder belongs).
    public static func kind(_ path: String) -> Problem? {
        var st = stat()
        guard stat(fileSystemPath(path), &st) == 0 else { return errno == ENOENT ? .missing : .unreadable(String(cString: strerror(errno))) }
        do { try checkKind(st); return nil } catch { return error }
    }

    static func checkKind(_ st: stat) throws(Problem) {
        switch st.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: throw .directory
        case S_IFIFO: throw .notRegular(kind: "a FIFO (named pipe)")
        case S_IFCHR: throw .notRegular(kind: "a character device")
        case S_IFBLK: throw .notRegular(kind: "a block device")
        case S_IFSOCK: throw .notRegular(kind: "a socket")
        default: throw .notRegular(kind: "not a file")
        }
    }

    /// The bytes to hand the system for `path`. A command-line argument that is not valid UTF-8
    /// reaches Swift with U+FFFD in place of the bad bytes; such a path is matched back to the
    /// argument it came from, or to a folder entry `entries(ofFolder:)` listed, so the file is found
    /// under its real name.
    public static func fileSystemPath(_ path: String) -> [CChar] {
        let utf8 = Array(path.utf8CString)
        guard path.unicodeScalars.contains("\u{FFFD}") else { return utf8 }
        if let raw = listedRawPaths.withLock({ $0[path] }) { return raw.map { CChar(bitPattern: $0) } + [0] }
        for i in 0..<Int(CommandLine.argc) {
            guard let arg = CommandLine.unsafeArgv[i] else { continue }
            let bytes = UnsafeBufferPointer(start: arg, count: strlen(arg)).map { UInt8(bitPattern: $0) }
            let repaired = String(decoding: bytes, as: UTF8.self)
            if repaired == path { return bytes.map { CChar(bitPattern: $0) } + [0] }
            if path.hasSuffix("/" + repaired) {
                // A relative argument made absolute: the folder part as given, then the raw argument.
                let head = path.utf8.dropLast(repaired.utf8.count)
                return head.map { CChar(bitPattern: $0) } + bytes.map { CChar(bitPattern: $0) } + [0]
            }
        }
        return utf8
    }

    /// Real bytes of listed paths whose names are not UTF-8, by the path as Swift shows it (two
    /// names that show the same map to nothing: neither can be told apart by its shown path).
    private static let listedRawPaths = Mutex<[String: [UInt8]]>([:])

    /// A folder's entries (not "." and ".."), each as `folder/name` by its real bytes: a name that
    /// is not valid UTF-8 shows U+FFFD for its bad bytes, and `fileSystemPath` maps that path back.
    public static func entries(ofFolder folder: String) throws(Problem) -> [(name: String, path: String)] {
        let rawFolder = fileSystemPath(folder).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        guard let dir = opendir(rawFolder.map { CChar(bitPattern: $0) } + [0]) else {
            let e = errno
            throw e == ENOENT ? .missing : e == ENOTDIR ? .unreadable("it is not a folder") : .unreadable(String(cString: strerror(e)))
        }
        defer { closedir(dir) }
        let base = folder.hasSuffix("/") ? folder : folder + "/"
        let rawBase = rawFolder.last == UInt8(ascii: "/") ? rawFolder : rawFolder + [UInt8(ascii: "/")]
        var out: [(name: String, path: String)] = []
        var raw: [String: [UInt8]?] = [:]
        while let entry = readdir(dir) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if bytes == [UInt8(ascii: ".")] || bytes == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            let name = String(decoding: bytes, as: UTF8.self), shown = base + name, real = rawBase + bytes
            out.append((name, shown))
            // Mapped back when the shown path is not the real one (the name, or the folder's own,
            // not UTF-8); a name with a U+FFFD of its own shows like a repaired one, so neither maps.
            let differs = real != Array(shown.utf8)
            if differs || name.unicodeScalars.contains("\u{FFFD}") { raw[shown] = raw[shown] == nil && differs ? real : .some(nil) }
        }
        listedRawPaths.withLock { table in
            for (shown, bytes) in raw { if let bytes { table[shown] = bytes } else { table[shown] = nil } }
        }
        return out
    }

    /// `path` with a leading `~` as the shell reads it: `~` and `~/...` from $HOME when it is set
    /// (Foundation's expansion takes the account's home from the password database instead, so a
    /// run with another HOME looked in the wrong place), `~user/...` from that account's entry.
    public static func expandingTilde(_ path: String, home: String? = getenv("HOME").map { String(cString: $0) }) -> String {
        guard path.hasPrefix("~") else { return path }
        let rest = path.dropFirst()
        let user = rest.prefix { $0 != "/" }
        let tail = rest.dropFirst(user.count)
        var dir: String?
        if user.isEmpty, let h = home, !h.isEmpty { dir = h }
        else if let entry = user.isEmpty ? getpwuid(getuid()) : getpwnam(String(user)), let d = entry.pointee.pw_dir { dir = String(cString: d) }
        guard var d = dir else { return path }
        if d.hasSuffix("/") && !tail.isEmpty { d.removeLast() }
        return d + tail
    }

    /// "3.0 GB", "256 MB", "812 bytes".
    public static func describe(bytes n: Int) -> String {
        if n >= 1 << 30 {
            let tenths = n / (1 << 30) * 10 + n % (1 << 30) * 10 / (1 << 30)
            return "\(tenths / 10).\(tenths % 10) GB"
        }
        if n >= 1 << 20 { return "\(n >> 20) MB" }
        if n >= 1 << 10 { return "\(n >> 10) KB" }
        return "\(n) bytes"
    }
}

import CSixel
import Foundation

/// What the terminal can show, found before curses starts (the replies would otherwise arrive
/// as keys): sixel from the DA1 reply (parameter 4), the cell size in pixels from TIOCGWINSZ or
/// CSI 16 t. A terminal that does not answer costs one short timeout.
public struct GraphicsSupport: Sendable, Equatable {
    public var mode: GraphicsMode
    public var cellWidth: Int
    public var cellHeight: Int
    /// Why this mode (logged).
    public var reason: String
    /// What the person typed before the replies came (typing ahead while the app starts): read
    /// with them, handed to curses as input (`Terminal`).
    public var typedAhead: [UInt8] = []
}

public enum GraphicsProbe {
    /// `requested`: auto, sixel, blocks or none.
    public static func detect(requested: GraphicsMode?, environment: [String: String] = ProcessInfo.processInfo.environment,
                              timeout: Double = 0.3) -> GraphicsSupport {
        let colour = environment["NO_COLOR"] == nil
        let fallback: GraphicsMode = colour ? .blocks : .none
        if let r = requested, r != .sixel {
            return GraphicsSupport(mode: r, cellWidth: 10, cellHeight: 20, reason: "--graphics \(r.rawValue)")
        }
        let term = environment["TERM"] ?? ""
        let multiplexed = environment["TMUX"] != nil || term.hasPrefix("screen") || term.hasPrefix("tmux")
        if requested == nil && multiplexed {
            return GraphicsSupport(mode: fallback, cellWidth: 10, cellHeight: 20, reason: "inside tmux/screen: no sixel passthrough")
        }
        guard let tty = TTYQuery(timeout: timeout) else {
            return GraphicsSupport(mode: requested ?? fallback, cellWidth: 10, cellHeight: 20, reason: "no /dev/tty to ask")
        }
        defer { tty.close() }
        let da1 = tty.ask("\u{1b}[c", until: "c")
        let sixel = da1.map(hasSixel) ?? false
        if requested == nil && !sixel {
            return GraphicsSupport(mode: fallback, cellWidth: 10, cellHeight: 20,
                                   reason: da1 == nil ? "no DA1 reply" : "DA1 without sixel: \(printable(da1!))",
                                   typedAhead: tty.typedAhead)
        }
        var cell = tty.cellSizeFromWindow()
        var how = "TIOCGWINSZ"
        if cell == nil, let r = tty.ask("\u{1b}[16t", until: "t") { cell = cellSize(fromReply: r); how = "CSI 16 t" }
        if cell == nil { how = "default 10x20" }
        let (w, h) = cell ?? (10, 20)
        return GraphicsSupport(mode: .sixel, cellWidth: w, cellHeight: h,
                               reason: (sixel ? "DA1 has 4: \(printable(da1!))" : "--graphics sixel") + "; cell \(w)x\(h) px from \(how)",
                               typedAhead: tty.typedAhead)
    }

    /// A terminal's reply to a query, `ESC [` then parameter bytes (digits, `;`, `?`, ...) then
    /// `terminator`, found in what was read; the bytes around it are keys typed meanwhile.
    /// `reply` nil: none complete yet (all of `bytes` may still be the start of one).
    public static func splitReply(_ bytes: [UInt8], terminator: UInt8) -> (reply: [UInt8]?, typed: [UInt8]) {
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == 0x1B && bytes[i + 1] == UInt8(ascii: "[") {
                var j = i + 2
                while j < bytes.count && (0x30...0x3F).contains(bytes[j]) { j += 1 }
                if j < bytes.count && bytes[j] == terminator {
                    return (Array(bytes[i...j]), Array(bytes[..<i] + bytes[(j + 1)...]))
                }
            }
            i += 1
        }
        return (nil, bytes)
    }

    /// DA1 reply `ESC [ ? 63 ; 1 ; 2 ; 4 ; ... c`: sixel when a parameter is exactly 4.
    public static func hasSixel(_ reply: String) -> Bool {
        guard let start = reply.firstIndex(of: "?"), let end = reply[start...].firstIndex(of: "c") else { return false }
        return reply[reply.index(after: start)..<end].split(separator: ";").contains("4")
    }

    /// CSI 16 t reply `ESC [ 6 ; height ; width t`.
    public static func cellSize(fromReply r: String) -> (Int, Int)? {
        guard let start = r.range(of: "[6;"), let end = r[start.upperBound...].firstIndex(of: "t") else { return nil }
        let p = r[start.upperBound..<end].split(separator: ";").compactMap { Int($0) }
        guard p.count == 2, p[0] > 0, p[1] > 0, p[0] < 200, p[1] < 200 else { return nil }
        return (p[1], p[0])
    }

    static func printable(_ s: String) -> String { s.replacingOccurrences(of: "\u{1b}", with: "ESC") }
}

/// /dev/tty in raw mode for a few queries, restored on close.
final class TTYQuery {
    let fd: Int32
    var saved = termios()
    let timeout: Double
    /// Bytes read that were no reply: the person's typing.
    private(set) var typedAhead: [UInt8] = []

    init?(timeout: Double) {
        fd = open("/dev/tty", O_RDWR | O_NOCTTY)
        guard fd >= 0 else { return nil }
        self.timeout = timeout
        guard tcgetattr(fd, &saved) == 0 else { Glibc.close(fd); return nil }
        var raw = saved
        cfmakeraw(&raw)
        tcsetattr(fd, TCSANOW, &raw)
    }

    func close() {
        tcsetattr(fd, TCSANOW, &saved)
        Glibc.close(fd)
    }

    /// Writes `query`, reads until its reply (`ESC [ ... terminator`) or the timeout. What else
    /// comes (keys typed before or during the wait) is kept in `typedAhead`, not thrown away.
    func ask(_ query: String, until terminator: Character) -> String? {
        let q = Array(query.utf8)
        guard write(fd, q, q.count) == q.count, let end = terminator.asciiValue else { return nil }
        var read: [UInt8] = []
        defer { typedAhead += GraphicsProbe.splitReply(read, terminator: end).typed }
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            guard poll(&p, 1, ms) > 0 else { break }
            var b = [UInt8](repeating: 0, count: 256)
            let n = Glibc.read(fd, &b, b.count)
            guard n > 0 else { break }
            read += b[0..<n]
            if let reply = GraphicsProbe.splitReply(read, terminator: end).reply { return String(decoding: reply, as: UTF8.self) }
            if read.count > 1 << 16 { break }
        }
        return nil
    }

    func cellSizeFromWindow() -> (Int, Int)? {
        var c: UInt16 = 0, r: UInt16 = 0, xp: UInt16 = 0, yp: UInt16 = 0
        guard shim_window_pixels(fd, &c, &r, &xp, &yp) == 0, c > 0, r > 0, xp > 0, yp > 0 else { return nil }
        let w = Int(xp) / Int(c), h = Int(yp) / Int(r)
        return w > 0 && h > 0 ? (w, h) : nil
    }
}

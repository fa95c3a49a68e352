import CNcursesw
import Foundation

/// The only code that touches the terminal: ncurses set-up, semantic colours, drawing only the
/// cells that changed, keys, and restoring the terminal on every exit path.
public final class Terminal: @unchecked Sendable {
    private var previous: CellGrid?
    private var attrs: [Role: Int32] = [:]
    nonisolated(unsafe) static var active = false

    public init(theme: Theme = .dark) {
        setlocale(LC_ALL, "")
        initscr()
        Terminal.active = true
        raw(); noecho(); keypad(shim_stdscr(), true); nonl()
        shim_set_escdelay(25)
        timeout(30)
        let colour = has_colors() && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        if colour { start_color(); use_default_colors() }
        let codes: [String: Int16] = ["black": Int16(COLOR_BLACK), "red": Int16(COLOR_RED), "green": Int16(COLOR_GREEN),
                                      "yellow": Int16(COLOR_YELLOW), "blue": Int16(COLOR_BLUE), "magenta": Int16(COLOR_MAGENTA),
                                      "cyan": Int16(COLOR_CYAN), "white": Int16(COLOR_WHITE)]
        for (i, role) in Role.allCases.enumerated() {
            let st = theme.style(role)
            var a: Int32 = 0
            if st.bold == true { a |= shim_A_BOLD() }
            if st.dim == true { a |= shim_A_DIM() }
            if st.reverse == true { a |= shim_A_REVERSE() }
            if st.underline == true { a |= shim_A_UNDERLINE() }
            if colour, let fg = st.fg.flatMap({ codes[$0] }) { init_pair(Int16(i + 1), fg, -1); a |= shim_COLOR_PAIR(Int32(i + 1)) }
            attrs[role] = a
        }
        Terminal.installSignalHandlers()
    }

    /// Restores the terminal; safe to call more than once.
    public func close() { Terminal.restore() }

    static func restore() {
        guard active else { return }
        active = false
        endwin()
    }

    static func installSignalHandlers() {
        for sig in [SIGTERM, SIGHUP, SIGQUIT, SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE] {
            signal(sig) { s in
                Terminal.restore()
                signal(s, SIG_DFL)
                raise(s)
            }
        }
        atexit { Terminal.restore() }
    }

    public var size: (width: Int, height: Int) { (Int(shim_COLS()), Int(shim_LINES())) }

    /// Draws `grid`, only the cells that differ from the last frame; puts the cursor at (cx, cy).
    public func draw(_ grid: CellGrid, cursor: (x: Int, y: Int)?) {
        let full = previous == nil || previous!.width != grid.width || previous!.height != grid.height
        if full { erase() }
        for y in 0..<grid.height {
            for x in 0..<grid.width {
                let c = grid[x, y]
                if c.continuation { continue }
                if !full, let p = previous, p[x, y] == c { continue }
                let a = attrs[c.role] ?? 0
                attron(a)
                var w: [wchar_t] = c.char.unicodeScalars.map { wchar_t(bitPattern: $0.value) } + [0]
                _ = mvaddwstr(Int32(y), Int32(x), &w)
                attroff(a)
            }
        }
        previous = grid
        if let (cx, cy) = cursor { move(Int32(cy), Int32(cx)); curs_set(1) } else { curs_set(0) }
        refresh()
    }

    public enum Key: Equatable { case char(String), code(Int32), alt(String), none }

    /// The next key, or `.none` after the 30 ms timeout.
    public func key() -> Key {
        var ch: wint_t = 0
        let r = get_wch(&ch)
        if r == ERR { return .none }
        if r == KEY_CODE_YES { return .code(Int32(ch)) }
        if ch == 27 {                                 // Esc, or Alt + key
            var next: wint_t = 0
            timeout(0)
            let r2 = get_wch(&next)
            timeout(30)
            if r2 == ERR { return .code(27) }
            return .alt(String(UnicodeScalar(UInt32(next)).map(Character.init) ?? " "))
        }
        return .char(String(UnicodeScalar(UInt32(ch)).map(Character.init) ?? " "))
    }
}

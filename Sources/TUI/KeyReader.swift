@preconcurrency import CNcursesw
import Logging

/// Keys from the current curses screen (`Terminal`'s, or a test's `newterm` on a pipe):
/// characters, key codes, Alt and a key, bracketed pastes, the mouse wheel, and the keys typed
/// before curses started.
final class KeyReader {
    let log = Logger(label: "terminal")

    /// Keys typed before curses started (`GraphicsSupport.typedAhead`), handed to curses a part
    /// at a time (its input queue holds fewer than 137): after a part that leaves more, a mark key
    /// asks for the next.
    private var typedAhead: [UInt8]

    init(typedAhead: [UInt8] = []) {
        self.typedAhead = typedAhead
        feedTypedAhead()
    }

    /// The sequences curses' keypad turns into the key codes read here: the bracketed-paste
    /// markers and Ctrl/Alt + Left/Right.
    static func defineKeys() {
        // Pasted text arrives between ESC[200~ and ESC[201~ (bracketed paste, which `Terminal` switches on).
        define_key("\u{1b}[200~", Terminal.pasteStart)
        define_key("\u{1b}[201~", Terminal.pasteEnd)
        for m in ["5", "3"] {                             // xterm's modifier codes: 5 Ctrl, 3 Alt
            for (end, code) in [("D", Terminal.wordLeftKey), ("C", Terminal.wordRightKey)] {
                define_key("\u{1b}[1;\(m)\(end)", 0)           // whatever the terminfo entry calls it
                define_key("\u{1b}[1;\(m)\(end)", code)
            }
        }
    }

    private func feedTypedAhead() {
        guard !typedAhead.isEmpty else { return }
        var cut = min(typedAhead.count, 120)
        if cut < typedAhead.count {
            // Not inside a character or an escape sequence (one starting in the last 8 bytes).
            while cut > 1 && (typedAhead[cut] & 0xC0) == 0x80 { cut -= 1 }
            if let esc = typedAhead[max(0, cut - 8)..<cut].lastIndex(of: 0x1B), esc > 0 { cut = esc }
        }
        let part = typedAhead[..<cut]
        typedAhead.removeFirst(cut)
        if !typedAhead.isEmpty { ungetch(Terminal.typedAheadMark) }
        for b in part.reversed() { ungetch(Int32(b)) }       // the queue is last in, first out
    }

    /// The characters and key codes read so far, decoded.
    private var input = UTF8Input()

    /// The next character or key code from curses, nil when none came in time. A character's
    /// later bytes come in the same write as its first: they are awaited 30 ms even when the
    /// caller waits less (a slow link may still split them).
    private func next() -> UTF8Input.Item? {
        input.next { continuing in
            let delay = wgetdelay(shim_stdscr())
            let longer = continuing && delay >= 0 && delay < 30
            if longer { timeout(30) }
            defer { if longer { timeout(delay) } }
            let r = wgetch(shim_stdscr())
            if r == ERR { return nil }
            return (0...0xFF).contains(r) ? .byte(UInt8(r)) : .key(r)
        }
    }

    /// The next key, waiting up to `ms` milliseconds for one; `.none` when none came.
    func key(waitingMilliseconds ms: Int32) -> Terminal.Key {
        if ms != 30 { timeout(ms) }
        let first = next()
        if ms != 30 { timeout(30) }
        switch first {
        case nil: return .none
        case .key(let code):
            if code == Terminal.typedAheadMark { feedTypedAhead(); return key(waitingMilliseconds: 0) }
            if code == Terminal.pasteStart { return .paste(readPaste()) }
            if code == KEY_MOUSE {
                var e = MEVENT()
                guard getmouse(&e) == OK else { return .none }
                if e.bstate & shim_BUTTON4_PRESSED() != 0 { return .wheel(3) }
                if e.bstate & shim_BUTTON5_PRESSED() != 0 { return .wheel(-3) }
                return .none
            }
            return .code(code)
        case .scalar("\u{1b}"):                    // Esc, or Alt + key
            timeout(0)
            let second = next()
            timeout(30)
            switch second {
            case nil: return .code(27)
            case .key(let code): return code == KEY_BACKSPACE ? .alt("\u{7F}") : .code(code)   // Alt + a key the keypad translated
            case .scalar(let c):
                if c == "[" || c == "O", let key = afterCSI(c) { return key }
                return .alt(String(c))
            }
        case .scalar(let c): return .char(String(c))
        }
    }

    /// What follows `ESC [` or `ESC O` that curses did not take as a key: a cursor key typed ahead
    /// before the app started, in the terminal's other cursor-key mode, then handed back to curses,
    /// or a Home or End key its terminfo entry does not name (its code); or a reply to the graphics
    /// probe that came after its timeout (a DA1 reply `ESC [ ? ... c`, a cell size
    /// `ESC [ 6 ; h ; w t`: dropped, `.none`). Anything else is left to be read (nil).
    private func afterCSI(_ introducer: Unicode.Scalar) -> Terminal.Key? {
        var read: [UTF8Input.Item] = []
        timeout(0)
        defer { timeout(30) }
        while read.count < 32, let item = next() {
            read.append(item)
            guard case .scalar(let c) = item, (0x30...0x3F).contains(c.value) else { break }     // past the parameters
        }
        let scalars = read.compactMap { item -> Unicode.Scalar? in if case .scalar(let c) = item { c } else { nil } }
        let text = String(String.UnicodeScalarView(scalars))
        // (Home and End as `ESC [ 1 ~` / `ESC [ 4 ~` (tmux, screen) or `ESC [ 7 ~` / `ESC [ 8 ~`
        // (rxvt) when the terminfo entry names other sequences, e.g. TERM=xterm-256color in tmux.)
        let codes: [String: Int32] = ["A": KEY_UP, "B": KEY_DOWN, "C": KEY_RIGHT, "D": KEY_LEFT, "H": KEY_HOME, "F": KEY_END,
                                      "1~": KEY_HOME, "7~": KEY_HOME, "4~": KEY_END, "8~": KEY_END]
        if let code = codes[text] { return .code(code) }
        if introducer == "[", scalars.count == read.count,
           (text.hasPrefix("?") && text.hasSuffix("c")) || (text.hasPrefix("6;") && text.hasSuffix("t")) {
            log.notice("a terminal reply after the graphics probe's timeout, dropped: \(text.count) characters")
            return Terminal.Key.none
        }
        input.unread(read)
        return nil
    }

    /// Characters up to the end-of-paste marker (or a pause of a second: a lost marker must not hang).
    private func readPaste() -> String {
        timeout(1000)
        defer { timeout(30) }
        return Terminal.pasted {
            switch next() {
            case nil: nil
            case .key(let code): (isKey: true, value: UInt32(bitPattern: code))
            case .scalar(let c): (isKey: false, value: c.value)
            }
        }
    }
}

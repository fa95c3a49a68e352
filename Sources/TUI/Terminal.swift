@preconcurrency import CNcursesw
import Foundation
import Imaging
import Logging
import Synchronization

/// The only code that touches the terminal: ncurses set-up, semantic colours, drawing only the
/// cells that changed, half-block pixels, sixel images over reserved cells, keys (bracketed
/// paste, mouse wheel), and restoring the terminal on every exit path.
public final class Terminal: @unchecked Sendable {
    private var previous: CellGrid?
    private var attrs: [Role: Int32] = [:]
    private let colour: Bool
    private let graphics: GraphicsSupport
    nonisolated(unsafe) static var active = false
    let log = Logger(label: "terminal")

    /// Colour pairs for half-block pixels, after the roles' pairs.
    private var pixelPairs: [PixelPairKey: Int32] = [:]
    private let firstPixelPair = Int32(Role.allCases.count + 1)
    private var nextPixelPair: Int32
    private let maxPairs: Int32
    private let depth: ColourDepth
    private let keys: KeyReader

    /// Sixel placements on screen now, and encoded images by (id, pixel size).
    private var shown: Set<ImagePlacement> = []
    private var sixelCache: [SixelKey: [UInt8]] = [:]

    static let pasteStart = shim_KEY_MAX() + 1, pasteEnd = shim_KEY_MAX() + 2
    /// Ctrl-Left / Ctrl-Right (and Alt-Left / Alt-Right), which the terminfo entries may not name.
    static let wordLeftKey = shim_KEY_MAX() + 3, wordRightKey = shim_KEY_MAX() + 4
    /// Asks for the next part of the keys typed before curses started (`KeyReader`).
    static let typedAheadMark = shim_KEY_MAX() + 5

    public init(theme: Theme = .dark, graphics: GraphicsSupport) {
        self.graphics = graphics
        setlocale(LC_ALL, "")
        if String(cString: nl_langinfo(nl_item(CODESET))) != "UTF-8" { setlocale(LC_ALL, "C.UTF-8") }
        initscr()
        Terminal.active = true
        raw(); noecho(); keypad(shim_stdscr(), true); nonl()
        if graphics.mode == .sixel { idcok(shim_stdscr(), false) }     // inserting or deleting characters would shift image pixels sideways
        shim_set_escdelay(25)
        timeout(30)
        colour = has_colors() && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
        if colour { start_color(); use_default_colors() }
        depth = colour ? ColourDepth.detect(environment: ProcessInfo.processInfo.environment, colours: Int(COLORS),
                                            rgbCapability: tigetflag("RGB") > 0) : .none
        maxPairs = colour ? min(Int32(COLOR_PAIRS) - 1, 32767) : 0
        nextPixelPair = Int32(Role.allCases.count + 1)
        keys = KeyReader(typedAhead: graphics.typedAhead)
        apply(theme)
        KeyReader.defineKeys()
        mousemask(shim_BUTTON4_PRESSED() | shim_BUTTON5_PRESSED(), nil)
        mouseinterval(0)
        Terminal.emit("\u{1b}[?2004h")
        Terminal.installSignalHandlers()
        log.info("terminal \(COLS)x\(LINES), colours \(COLORS) (pixels: \(depth.rawValue)), pairs \(COLOR_PAIRS), graphics \(graphics.mode.rawValue): \(graphics.reason)")
    }

    /// The roles' colours and attributes from `theme` (at start, and on /theme while running);
    /// the next frame is drawn whole.
    public func apply(_ theme: Theme) {
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
        previous = nil
    }

    /// Restores the terminal; safe to call more than once.
    public func close() { Terminal.restore() }

    static func restore() {
        guard active else { return }
        active = false
        emit("\u{1b}[?2004l")
        endwin()
    }

    static func emit(_ s: String) { emit(Array(s.utf8)) }

    /// Puts `text` on the terminal's clipboard (OSC 52; terminals that do not support it ignore it).
    public func copyToClipboard(_ text: String) { Terminal.emit(Terminal.osc52(text)) }

    /// The OSC 52 sequence that sets the clipboard to `text` (base64, so nothing in it is a control).
    static func osc52(_ text: String) -> [UInt8] {
        Array("\u{1b}]52;c;\(Data(text.utf8).base64EncodedString())\u{07}".utf8)
    }
    static func emit(_ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
            if n <= 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }

    /// A SIGTERM, SIGHUP (the terminal closed) or SIGINT that came: the app saves what it holds
    /// and quits (`takeSignal`), then ends by it. A second one, or any other fatal signal, ends
    /// the process at once, the terminal restored.
    static let pendingSignal = Atomic<Int32>(0)

    static func installSignalHandlers() {
        for sig in [SIGTERM, SIGHUP, SIGINT] {
            signal(sig) { s in
                if Terminal.pendingSignal.exchange(s, ordering: .relaxed) != 0 { Terminal.end(by: s) }
            }
        }
        for sig in [SIGQUIT, SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE] { signal(sig) { s in Terminal.end(by: s) } }
        atexit { Terminal.restore() }
    }

    /// The termination signal that came, if one did (see `pendingSignal`).
    public static func takeSignal() -> Int32? {
        let s = pendingSignal.load(ordering: .relaxed)
        return s == 0 ? nil : s
    }

    /// Ends the process by `signal` as its default action would (status 128 + signal), the
    /// terminal restored first.
    public static func end(by signal: Int32) -> Never {
        restore()
        Glibc.signal(signal, SIG_DFL)
        raise(signal)
        exit(128 + signal)
    }

    public var size: (width: Int, height: Int) { (Int(shim_COLS()), Int(shim_LINES())) }

    /// Draws `grid`, only the cells that differ from the last frame; puts the cursor at (cx, cy);
    /// then draws the sixel images whose cells ncurses may have painted over. `images` gives the
    /// pixels of each placement's image.
    public func draw(_ grid: CellGrid, cursor: (x: Int, y: Int)?, images: (Int) -> RGBImage? = { _ in nil }) {
        let full = previous == nil || previous!.width != grid.width || previous!.height != grid.height
        if full { erase() }
        let now = Set(grid.placements)
        let placementsChanged = now != shown
        var dirtyRows = Set<Int>()
        // ncurses may scroll lines that moved; the terminal scrolls sixel pixels with them, into
        // cells ncurses believes blank. Blank the images first; they are drawn again below.
        if graphics.mode == .sixel, !shown.isEmpty, !full, let p = previous, grid.linesMayMove(from: p) {
            Terminal.emit(Terminal.blanking(shown.map(\.rect)))
            for p in shown { dirtyRows.formUnion(p.rect.y..<(p.rect.y + p.rect.height)) }
            shown = []
        }
        // An image that moved or went away: have ncurses repaint its rows whole, which erases its pixels.
        for p in shown where !now.contains(p) {
            let rows = max(0, p.rect.y)..<min(grid.height, p.rect.y + p.rect.height)
            if !rows.isEmpty { wredrawln(shim_stdscr(), Int32(rows.lowerBound), Int32(rows.count)) }
            dirtyRows.formUnion(rows)
        }
        if full { dirtyRows.formUnion(0..<grid.height) }
        for y in 0..<grid.height {
            for x in 0..<grid.width {
                let c = grid[x, y]
                if c.continuation { continue }
                if !full, let p = previous, p[x, y] == c { continue }
                dirtyRows.insert(y)
                var w: [wchar_t] = c.char.unicodeScalars.map { wchar_t(bitPattern: $0.value) } + [0]
                if let px = c.pixels {
                    // The pair as its own argument: COLOR_PAIR() has room for 255 pairs only.
                    wattr_set(shim_stdscr(), 0, pixelPair(px), nil)
                    _ = mvaddwstr(Int32(y), Int32(x), &w)
                    wattr_set(shim_stdscr(), 0, 0, nil)
                } else {
                    let a = attrs[c.role] ?? 0
                    attron(a)
                    _ = mvaddwstr(Int32(y), Int32(x), &w)
                    attroff(a)
                }
            }
        }
        let pixelsMayHaveMoved = depth == .direct && (full || previous.map { grid.linesMayMove(from: $0, pixelsAlike: true) } ?? true)
        previous = grid
        if let (cx, cy) = cursor { move(Int32(cy), Int32(cx)); curs_set(1) } else { curs_set(0) }
        refresh()
        if depth == .direct {
            // ncurses drew near colours; the exact ones go over every cell it may have touched.
            Terminal.emit(TrueColour.overlay(grid, rows: pixelsMayHaveMoved ? TrueColour.pixelRows(grid) : dirtyRows.sorted()))
        }
        guard graphics.mode == .sixel else { shown = now; return }
        if placementsChanged { logPlacements(grid.placements, images: images) }
        for p in grid.placements {
            let rows = p.rect.y..<(p.rect.y + p.rect.height)
            guard !shown.contains(p) || rows.contains(where: dirtyRows.contains) else { continue }
            guard let image = images(p.imageID) else { continue }
            drawSixel(image, p, gridHeight: grid.height)
        }
        shown = now
        if let (cx, cy) = cursor { move(Int32(cy), Int32(cx)); refresh() }
    }

    /// Writes spaces over the cells of `rects` (text erases image pixels; xterm's ECH does not),
    /// leaving the cursor and attributes as they were: the cells ncurses believes blank become so.
    static func blanking(_ rects: [Rect]) -> [UInt8] {
        var s = "\u{1b}7\u{1b}[0m"
        for r in rects where r.width > 0 {
            for y in r.y..<(r.y + r.height) { s += "\u{1b}[\(y + 1);\(r.x + 1)H" + String(repeating: " ", count: r.width) }
        }
        return Array((s + "\u{1b}8").utf8)
    }

    private func drawSixel(_ image: RGBImage, _ p: ImagePlacement, gridHeight: Int) {
        guard p.rect.y + p.rect.height < gridHeight else { return }     // never touch the last row: no scrolling
        let (w, h) = Sixel.pixelSize(width: image.width, height: image.height, cols: p.rect.width, rows: p.rect.height,
                                     cw: graphics.cellWidth, ch: graphics.cellHeight)
        let key = SixelKey(id: p.imageID, w: w, h: h)
        if sixelCache[key] == nil {
            if sixelCache.count > 32 { sixelCache = [:] }
            sixelCache[key] = Sixel.encode(image.resized(toWidth: w, height: h))
        }
        guard let bytes = sixelCache[key] else { return }
        // Save the cursor, go to the cell, draw, restore: ncurses never learns the cursor moved.
        Terminal.emit(Array("\u{1b}7\u{1b}[\(p.rect.y + 1);\(p.rect.x + 1)H".utf8) + bytes + Array("\u{1b}8".utf8))
        log.debug("sixel image \(p.imageID) at cell \(p.rect.x),\(p.rect.y) size \(p.rect.width)x\(p.rect.height) cells, \(w)x\(h) px, cell \(graphics.cellWidth)x\(graphics.cellHeight) px")
    }

    /// One line per change of what is on screen (the sixel screenshot test reads it).
    private func logPlacements(_ ps: [ImagePlacement], images: (Int) -> RGBImage?) {
        let items = ps.map { p -> String in
            let px = images(p.imageID).map { Sixel.pixelSize(width: $0.width, height: $0.height, cols: p.rect.width, rows: p.rect.height,
                                                             cw: graphics.cellWidth, ch: graphics.cellHeight) } ?? (0, 0)
            return "\(p.imageID)@\(p.rect.x),\(p.rect.y),\(p.rect.width)x\(p.rect.height)=\(px.0)x\(px.1)"
        }
        log.info("sixel placements (cell \(graphics.cellWidth)x\(graphics.cellHeight)): [\(items.joined(separator: " "))]")
    }

    private struct SixelKey: Hashable { var id, w, h: Int }
    private struct PixelPairKey: Hashable { var fg, bg: Int16 }

    /// The colour pair for a half-block cell (0 without colours).
    private func pixelPair(_ p: PixelPair) -> Int16 {
        guard colour else { return 0 }
        let key = PixelPairKey(fg: depth.paletteIndex(p.top, colours: Int(COLORS)), bg: depth.paletteIndex(p.bottom, colours: Int(COLORS)))
        if let n = pixelPairs[key] { return Int16(n) }
        if nextPixelPair > maxPairs {             // out of pairs: start over; cells drawn before keep theirs until redrawn
            pixelPairs = [:]; nextPixelPair = firstPixelPair
        }
        let n = nextPixelPair
        nextPixelPair += 1
        init_pair(Int16(n), key.fg, key.bg)
        pixelPairs[key] = n
        return Int16(n)
    }

    public enum Key: Equatable { case char(String), code(Int32), alt(String), paste(String), wheel(Int), none }

    /// The next key, waiting up to 30 ms for one (`wait: false`: only one already there); `.none`
    /// when none came.
    public func key(wait: Bool = true) -> Key { keys.key(waitingMilliseconds: wait ? 30 : 0) }

    /// The next key, waiting up to `ms` milliseconds for one.
    public func key(waitingMilliseconds ms: Int32) -> Key { keys.key(waitingMilliseconds: ms) }

    /// The text of a paste from `next` (what curses read: a character or a key code; nil after a
    /// pause), up to the end-of-paste marker, at most 1,000,000 characters: keys inside it are
    /// dropped, a carriage return is a line break, and so is CR LF (text from Windows).
    static func pasted(_ next: () -> (isKey: Bool, value: UInt32)?) -> String {
        var out = "", n = 0, afterCR = false
        while n < 1_000_000, let k = next() {
            if k.isKey { if Int32(k.value) == pasteEnd { break }; continue }
            guard let u = UnicodeScalar(k.value) else { continue }
            defer { afterCR = u == "\r" }
            if u == "\n" && afterCR { continue }
            out.unicodeScalars.append(u == "\r" ? "\n" : u); n += 1
        }
        return out
    }
}

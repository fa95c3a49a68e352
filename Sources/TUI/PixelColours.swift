/// How half-block pixels get their colours: the exact 24-bit colour where the terminal has it,
/// else the nearest colour of the palette it has.
public enum ColourDepth: String, Sendable, Equatable {
    case direct, palette256, basic16, basic8, none

    /// 24-bit when `COLORTERM` says truecolor or 24bit, or terminfo has the RGB capability (or
    /// ncurses reports a direct-colour palette); else the palette size ncurses reports.
    public static func detect(environment: [String: String], colours: Int, rgbCapability: Bool) -> ColourDepth {
        guard environment["NO_COLOR"] == nil, colours > 0 else { return .none }
        let colorterm = environment["COLORTERM"]?.lowercased()
        if colorterm == "truecolor" || colorterm == "24bit" || rgbCapability || colours >= 1 << 24 { return .direct }
        return colours >= 256 ? .palette256 : colours >= 16 ? .basic16 : .basic8
    }

    /// The palette colour ncurses is given for `c`. In direct mode ncurses cannot send 24-bit
    /// colours itself (its palette is 256 or 8 colours, or its direct colours need pairs it
    /// cannot hold for every pixel), so it gets a near colour and `TrueColour.overlay` paints the
    /// exact one over it; `colours` is what ncurses reports.
    func paletteIndex(_ c: RGB, colours: Int) -> Int16 {
        switch self {
        case .palette256: return Int16(Palette.xterm256(c))
        case .basic16: return Int16(Palette.basic16(c))
        case .basic8, .none: return Int16(Palette.basic8(c))
        case .direct: return colours == 256 ? Int16(Palette.xterm256(c)) : Int16(Palette.basic8(c))
        }
    }
}

/// 24-bit half-block cells written straight to the terminal after ncurses drew their
/// approximations: SGR 38;2 / 48;2 only, from the grid's own pixel values (nothing from a file
/// or the model reaches these bytes as text).
public enum TrueColour {
    /// The bytes that repaint every half-block cell of `rows` in its exact colours, cursor and
    /// attributes saved and restored around them (DECSC/DECRC); empty when there are none.
    public static func overlay(_ grid: CellGrid, rows: some Sequence<Int>) -> [UInt8] {
        var s = ""
        for y in rows where y >= 0 && y < grid.height {
            var x = 0
            while x < grid.width {
                guard grid[x, y].pixels != nil else { x += 1; continue }
                s += "\u{1b}[\(y + 1);\(x + 1)H"
                while x < grid.width, let p = grid[x, y].pixels {
                    s += "\u{1b}[38;2;\(p.top.r);\(p.top.g);\(p.top.b);48;2;\(p.bottom.r);\(p.bottom.g);\(p.bottom.b)m▀"
                    x += 1
                }
            }
        }
        return s.isEmpty ? [] : Array(("\u{1b}7" + s + "\u{1b}[0m\u{1b}8").utf8)
    }

    /// The rows of `grid` that hold half-block cells.
    public static func pixelRows(_ grid: CellGrid) -> [Int] {
        (0..<grid.height).filter { y in (0..<grid.width).contains { grid[$0, y].pixels != nil } }
    }
}

/// Nearest terminal palette colours.
public enum Palette {
    /// xterm's 256 colours: the 6x6x6 cube (16...231) or the grey ramp (232...255), whichever is nearer.
    public static func xterm256(_ c: RGB) -> Int {
        let levels = [0, 95, 135, 175, 215, 255]
        func nearestLevel(_ v: UInt8) -> Int {
            var best = 0
            for i in 1..<6 where abs(levels[i] - Int(v)) < abs(levels[best] - Int(v)) { best = i }
            return best
        }
        let (r, g, b) = (nearestLevel(c.r), nearestLevel(c.g), nearestLevel(c.b))
        let cube = 16 + 36 * r + 6 * g + b
        let cubeErr = dist(c, levels[r], levels[g], levels[b])
        let avg = (Int(c.r) + Int(c.g) + Int(c.b)) / 3
        let gi = max(0, min(23, (avg - 8 + 5) / 10))
        let grey = 8 + 10 * gi
        return dist(c, grey, grey, grey) < cubeErr ? 232 + gi : cube
    }

    /// The 8 ANSI colours (black, red, green, yellow, blue, magenta, cyan, white).
    public static func basic8(_ c: RGB) -> Int { nearest(c, in: ansi16.prefix(8)) }

    /// The 16 ANSI colours (the 8, then their bright forms), nearest by a weighted distance: a
    /// per-channel threshold turned dark photos black and most others red or yellow.
    public static func basic16(_ c: RGB) -> Int { nearest(c, in: ansi16[...]) }

    /// xterm's default values of the 16 ANSI colours.
    static let ansi16: [(Int, Int, Int)] = [
        (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
        (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
    ]

    static func nearest(_ c: RGB, in palette: ArraySlice<(Int, Int, Int)>) -> Int {
        var best = 0, bestD = Int.max
        for (i, p) in palette.enumerated() {
            // Green weighs most and blue least, roughly as the eye sees differences.
            let dr = Int(c.r) - p.0, dg = Int(c.g) - p.1, db = Int(c.b) - p.2
            let d = 3 * dr * dr + 4 * dg * dg + 2 * db * db
            if d < bestD { best = i; bestD = d }
        }
        return best
    }

    static func dist(_ c: RGB, _ r: Int, _ g: Int, _ b: Int) -> Int {
        let dr = Int(c.r) - r, dg = Int(c.g) - g, db = Int(c.b) - b
        return dr * dr + dg * dg + db * db
    }
}

import ChatAPI

/// What a cell means; themes map roles to colours (the grid never holds raw colours).
public enum Role: String, Sendable, CaseIterable, Codable {
    case text, dim, user, assistant, error, status, border, title, input, selection, phase, code, emphasis, strong
}

/// A screen-sized grid of cells: render functions fill it, a backend diffs it to the terminal,
/// tests read it as text.
public struct CellGrid: Equatable, Sendable {
    public struct Cell: Hashable, Sendable {
        public var char: Character = " "
        public var role: Role = .text
        /// The right half of a two-cell character (drawn by the cell to its left).
        public var continuation = false
        /// A half-block picture cell: `▀` in the top colour over the bottom colour.
        public var pixels: PixelPair?
    }

    public let width: Int
    public let height: Int
    public private(set) var cells: [Cell]
    /// Rectangles where the terminal draws an image itself (sixel); their cells stay blank.
    public var placements: [ImagePlacement] = []

    public init(width: Int, height: Int) {
        self.width = max(width, 0)
        self.height = max(height, 0)
        cells = Array(repeating: Cell(), count: self.width * self.height)
    }

    public subscript(x: Int, y: Int) -> Cell { cells[y * width + x] }

    /// Writes `text` (made inert first) from (x, y), at most `limit` cells; returns the cells
    /// used. A wide character that does not fit whole is not split.
    @discardableResult
    public mutating func put(_ text: String, x: Int, y: Int, role: Role = .text, limit: Int? = nil) -> Int {
        guard y >= 0, y < height, x >= 0 else { return 0 }
        let maxX = min(width, x + (limit ?? width))
        var cx = x
        for ch in TerminalText.sanitize(text, tabWidth: 4) where ch != "\n" {
            let units = TextWidth.displayUnits(ch)
            if cx + units.reduce(0, { $0 + $1.width }) > maxX { break }
            for (c, w) in units {
                cells[y * width + cx] = Cell(char: c, role: role)
                if w == 2 { cells[y * width + cx + 1] = Cell(char: " ", role: role, continuation: true) }
                cx += w
            }
        }
        return cx - x
    }

    public mutating func setPixels(x: Int, y: Int, _ p: PixelPair) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        cells[y * width + x] = Cell(char: "▀", role: .text, pixels: p)
    }

    public mutating func fill(_ r: Rect, char: Character = " ", role: Role = .text) {
        for y in r.y..<min(r.y + r.height, height) { for x in r.x..<min(r.x + r.width, width) {
            cells[y * width + x] = Cell(char: char, role: role)
        } }
    }

    /// Whether a row that changed from `previous` equals some other row of `previous`: the
    /// screen library may then move lines by scrolling the terminal, which carries the pixels
    /// of any image drawn by the terminal itself (sixel) into cells it believes are blank.
    /// `pixelsAlike`: half-block cells count as equal whatever their colours (ncurses holds only
    /// near colours for them in 24-bit mode, so it may take two different ones for the same).
    public func linesMayMove(from previous: CellGrid, pixelsAlike: Bool = false) -> Bool {
        guard previous.width == width, previous.height == height else { return true }
        func row(_ g: CellGrid, _ y: Int) -> ArraySlice<Cell> {
            let r = g.cells[(y * width)..<((y + 1) * width)]
            guard pixelsAlike else { return r }
            return ArraySlice(r.map { $0.pixels == nil ? $0 : Cell(char: "▀", pixels: PixelPair(top: RGB(0, 0, 0), bottom: RGB(0, 0, 0))) })
        }
        var rowsBefore: [ArraySlice<Cell>: [Int]] = [:]
        for y in 0..<height { rowsBefore[row(previous, y), default: []].append(y) }
        for y in 0..<height where row(self, y) != row(previous, y) {
            if let ys = rowsBefore[row(self, y)], ys.contains(where: { $0 != y }) { return true }
        }
        return false
    }

    /// The screen as text, one line per row, trailing blanks kept (for snapshot tests).
    public var text: String {
        (0..<height).map { y in
            String((0..<width).compactMap { x -> Character? in
                let c = cells[y * width + x]
                return c.continuation ? nil : c.char
            })
        }.joined(separator: "\n")
    }
}

public struct Rect: Hashable, Sendable {
    public var x, y, width, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = max(width, 0); self.height = max(height, 0)
    }
}

public struct RGB: Hashable, Sendable {
    public var r, g, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { self.r = r; self.g = g; self.b = b }
}

public struct PixelPair: Hashable, Sendable {
    public var top, bottom: RGB
}

/// An image the terminal draws over a cell rectangle.
public struct ImagePlacement: Hashable, Sendable {
    public var imageID: Int
    public var rect: Rect
}

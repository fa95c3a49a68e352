import ChatAPI
import Foundation
import Imaging
import Testing
@testable import TUI

struct ColourTests {
    @Test func depthFollowsColortermAndTheTerminfoEntry() {
        func d(_ env: [String: String], _ colours: Int, rgb: Bool = false) -> ColourDepth {
            ColourDepth.detect(environment: env, colours: colours, rgbCapability: rgb)
        }
        #expect(d(["COLORTERM": "truecolor"], 256) == .direct && d(["COLORTERM": "24bit"], 8) == .direct)
        #expect(d([:], 256, rgb: true) == .direct && d([:], 1 << 24) == .direct)
        #expect(d(["COLORTERM": "yes"], 256) == .palette256 && d([:], 256) == .palette256)
        #expect(d([:], 16) == .basic16 && d([:], 8) == .basic8)
        #expect(d(["NO_COLOR": "1", "COLORTERM": "truecolor"], 256) == .none && d([:], 0) == .none)
    }

    @Test func fallbackColoursComeFromThePaletteTheTerminalHas() {
        let orange = RGB(250, 140, 20)
        #expect(ColourDepth.palette256.paletteIndex(orange, colours: 256) == Int16(Palette.xterm256(orange)))
        #expect(ColourDepth.basic16.paletteIndex(orange, colours: 16) == Int16(Palette.basic16(orange)))
        #expect(ColourDepth.basic8.paletteIndex(orange, colours: 8) == Int16(Palette.basic8(orange)))
        // Under 24-bit the palette colour is only what ncurses holds until the exact one is painted
        // over it; with a direct-colour terminfo entry only the 8 ANSI numbers mean a colour.
        #expect(ColourDepth.direct.paletteIndex(orange, colours: 256) == Int16(Palette.xterm256(orange)))
        #expect(ColourDepth.direct.paletteIndex(orange, colours: 1 << 24) < 8)
    }

    /// The screen the overlay's bytes paint: cell -> (top, bottom) colour; any byte sequence other
    /// than DECSC, DECRC, CUP, SGR 0, a 24-bit SGR pair and `▀` fails.
    func paint(_ bytes: [UInt8]) throws -> [Int: PixelPair] {
        var s = Substring(String(decoding: bytes, as: UTF8.self))
        var out: [Int: PixelPair] = [:]
        var x = 0, y = 0
        var pen: PixelPair?
        let cup = /^\x1b\[(\d+);(\d+)H/, sgr = /^\x1b\[38;2;(\d+);(\d+);(\d+);48;2;(\d+);(\d+);(\d+)m/
        while !s.isEmpty {
            if s.hasPrefix("\u{1b}7") || s.hasPrefix("\u{1b}8") { s = s.dropFirst(2); continue }
            if s.hasPrefix("\u{1b}[0m") { s = s.dropFirst(4); pen = nil; continue }
            if let m = s.prefixMatch(of: cup) { y = Int(m.1)! - 1; x = Int(m.2)! - 1; s = s[m.range.upperBound...]; continue }
            if let m = s.prefixMatch(of: sgr) {
                let v = [m.1, m.2, m.3, m.4, m.5, m.6].map { UInt8($0)! }
                pen = PixelPair(top: RGB(v[0], v[1], v[2]), bottom: RGB(v[3], v[4], v[5]))
                s = s[m.range.upperBound...]; continue
            }
            if s.first == "▀" { out[y * 1000 + x] = try #require(pen); x += 1; s = s.dropFirst(); continue }
            Issue.record("unexpected bytes: \(s.prefix(12).debugDescription)"); break
        }
        return out
    }

    @Test func trueColourPaintsEveryHalfBlockCellInItsExactColours() throws {
        var s = AppState()
        s.graphics = .blocks
        // Half-blocks are cached by image id: an id of its own, not the cat's.
        let photo = AttachedImage(id: 901, name: "gradient.png", width: 640, height: 427, tiles: 7, tokenCost: 1794,
                                  grid: TileGrid(cols: 3, rows: 2), tiling: TilingOptions(maxTiles: 12), tokensPerTile: 256,
                                  thumbnail: gradient(width: 240, height: 160))
        _ = reduce(&s, .attached(photo))
        _ = reduce(&s, .type("Describe it.")); _ = reduce(&s, .enter)
        let g = render(s, width: 120, height: 30)
        var want: [Int: PixelPair] = [:]
        for y in 0..<g.height { for x in 0..<g.width { if let p = g[x, y].pixels { want[y * 1000 + x] = p } } }
        #expect(want.count > 200)                 // the inline thumbnail and the panel's
        let painted = try paint(TrueColour.overlay(g, rows: TrueColour.pixelRows(g)))
        #expect(painted == want)
        // Colours the 256-colour palette does not have reach the terminal as they are.
        let exact = Set(want.values.flatMap { [$0.top, $0.bottom] })
        #expect(exact.count > 100 && exact.contains { c in [c.r, c.g, c.b].contains { ![0, 95, 135, 175, 215, 255].contains($0) } })
        // The top-left cell is the thumbnail's first two pixels, scaled as the half-blocks are.
        let (x0, y0) = try #require(want.keys.sorted().first.map { ($0 % 1000, $0 / 1000) })
        let cell = try #require(g[x0, y0].pixels)
        #expect(cell.top.r < 40 && cell.top.g < 40 && cell.bottom.g > cell.top.g)
        // Only the rows asked for; nothing when there are no pixels.
        let oneRow = try paint(TrueColour.overlay(g, rows: [y0]))
        #expect(!oneRow.isEmpty && oneRow.keys.allSatisfy { $0 / 1000 == y0 })
        #expect(TrueColour.overlay(CellGrid(width: 10, height: 3), rows: 0..<3).isEmpty)
    }

    @Test func rowsOfOtherColoursCountAsMovableWhenPixelsAreAlike() {
        var before = CellGrid(width: 8, height: 3), after = CellGrid(width: 8, height: 3)
        let red = PixelPair(top: RGB(200, 0, 0), bottom: RGB(200, 0, 0)), blue = PixelPair(top: RGB(0, 0, 200), bottom: RGB(0, 0, 200))
        for x in 0..<4 { before.setPixels(x: x, y: 0, red); after.setPixels(x: x, y: 1, blue) }
        before.put("A", x: 6, y: 0); before.put("B", x: 6, y: 1); before.put("C", x: 6, y: 2)
        after.put("Z", x: 6, y: 0); after.put("A", x: 6, y: 1); after.put("C", x: 6, y: 2)
        #expect(!after.linesMayMove(from: before))
        #expect(after.linesMayMove(from: before, pixelsAlike: true))
    }
}

/// Red rising left to right, green top to bottom: every half-block cell a colour of its own.
func gradient(width: Int, height: Int) -> RGBImage {
    var px = [UInt8](repeating: 0, count: width * height * 3)
    for y in 0..<height { for x in 0..<width {
        let o = (y * width + x) * 3
        px[o] = UInt8(x * 255 / (width - 1)); px[o + 1] = UInt8(y * 255 / (height - 1)); px[o + 2] = 77
    } }
    return RGBImage(width: width, height: height, pixels: px)
}

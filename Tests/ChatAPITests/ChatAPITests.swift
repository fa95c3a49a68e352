import ChatAPI
import Imaging
import Testing

struct TerminalTextTests {
    @Test func controlsBecomeVisibleAndBidiControlsGo() {
        let evil = "ok\u{1b}[2J\u{07}\u{7f}\u{9b}31m\u{202E}gnp.exe\u{2066}x\u{200F}"
        #expect(TerminalText.sanitize(evil) == "ok␛[2J␇␡\u{FFFD}31mgnp.exex")
        #expect(TerminalText.sanitize("a\tb\nc") == "a\tb\nc")
        #expect(TerminalText.sanitize("a\tb\nc", tabWidth: 4) == "a    b\nc")
        #expect(TerminalText.line("a\tb\nc\r\u{1b}") == "a\tb␤c␍␛", "one line: line breaks shown too")
        #expect(TerminalText.sanitize("猫 🐈 é") == "猫 🐈 é")
    }
}

struct TilePlanTests {
    /// The official grid rule through DynamicTiling: a thumbnail tile only when there is more
    /// than one tile, 2 + tiles x tokens per tile prompt positions.
    @Test func gridTilesAndCost() {
        let plan = TilePlan(width: 800, height: 600, tiling: TilingOptions(maxTiles: 6), maxTiles: 6, tokensPerTile: 256)
        let g = DynamicTiling.grid(width: 800, height: 600, options: TilingOptions(maxTiles: 6))
        #expect(plan.grid == TileGrid(cols: g.cols, rows: g.rows) && g.cols * g.rows > 1)
        #expect(plan.tiles == g.cols * g.rows + 1 && plan.tokenCost == 2 + plan.tiles * 256)
        let one = TilePlan(width: 800, height: 600, tiling: TilingOptions(maxTiles: 6), maxTiles: 1, tokensPerTile: 256)
        #expect(one.grid == TileGrid(cols: 1, rows: 1) && one.tiles == 1 && one.tokenCost == 258)
        let image = AttachedImage(id: 1, name: "x.png", width: 800, height: 600, tiles: plan.tiles, tokenCost: plan.tokenCost,
                                  grid: plan.grid, tiling: TilingOptions(maxTiles: 6))
        #expect(image.plan(maxTiles: 1) == one && image.plan(maxTiles: 6) == plan)
    }
}

struct VideoMarkerTests {
    /// A video's question starts with its image lines; the text typed is what follows them.
    @Test func leadingImageLinesAndTheTextAfterThem() {
        let q = "<image>\nFrame1: <image>\nFrame2: <image>\nWhat happens?\nFrame3: <image>"
        #expect(ChatTurn.leadingImageMarkers(q) == [nil, 1, 2])
        #expect(ChatTurn.withoutVideoMarkers(q) == "What happens?\nFrame3: <image>")
        #expect(ChatTurn.withoutVideoMarkers("<image>\nWhat is this?") == nil, "no frame: not a video's question")
        #expect(ChatTurn.leadingImageMarkers("Frame: <image>\nFramex: <image>") == [], "a frame line names its number")
        #expect(ChatTurn.withoutVideoMarkers("Frame1: <image>\n") == "")
    }
}

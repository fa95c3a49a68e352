import ChatAPI
import Testing
@testable import TUI

/// A remote backend that does not know the served model's config cannot tell an image's tiles
/// or token cost (`tokensPerTile == 0`): the app shows its size only, never "0 tiles".
struct HiddenCostTests {
    let hidden = AttachedImage(id: 1, name: "/tmp/cat.png", width: 640, height: 427, tiles: 0, tokenCost: 0, tokensPerTile: 0)
    let known = AttachedImage(id: 2, name: "/tmp/dog.png", width: 640, height: 427, tiles: 7, tokenCost: 1794,
                              grid: TileGrid(cols: 3, rows: 2), tokensPerTile: 256)

    @Test func labelsLeaveOutWhatIsNotKnown() {
        #expect(imageLabel(hidden) == "cat.png 640x427")
        #expect(imageLabel(known) == "dog.png 640x427, 7 tiles, 1794 tokens")
        var s = AppState()
        s.pending = [hidden, known]
        let line = panelLine(s, width: 200)
        #expect(line.contains("1: cat.png 640x427") && !line.contains("0 tiles") && line.contains("7 tiles"))
    }
}

import Imaging

/// An image attached to the session, encoded once and reused by content.
public struct AttachedImage: Sendable, Equatable, Identifiable {
    public let id: Int
    /// The path it was attached from.
    public let name: String
    public let width: Int
    public let height: Int
    public let tiles: Int
    /// Prompt tokens it costs: <img> + tiles x tokens per tile + </img>.
    public let tokenCost: Int
    /// The tile grid (columns x rows); `tiles` adds the thumbnail tile when there is more than one.
    public var grid: TileGrid
    /// The tiling rule it was cut with, and what a tile costs: enough to preview another `maxTiles`.
    public var tiling: TilingOptions
    public var tokensPerTile: Int
    /// A small copy (fits 256 x 256) for the terminal to show.
    public var thumbnail: RGBImage?
    /// SHA-256 of the file's bytes (how a saved conversation stores it).
    public var sha256: String

    public init(id: Int, name: String, width: Int, height: Int, tiles: Int, tokenCost: Int,
                grid: TileGrid? = nil, tiling: TilingOptions = TilingOptions(), tokensPerTile: Int = 256,
                thumbnail: RGBImage? = nil, sha256: String = "") {
        self.id = id; self.name = name; self.width = width; self.height = height; self.tiles = tiles; self.tokenCost = tokenCost
        self.grid = grid ?? TileGrid(cols: tiles, rows: 1)
        self.tiling = tiling; self.tokensPerTile = tokensPerTile; self.thumbnail = thumbnail; self.sha256 = sha256
    }

    /// What this image would cost cut with at most `maxTiles` tiles (shown before re-encoding).
    public func plan(maxTiles: Int) -> TilePlan {
        TilePlan(width: width, height: height, tiling: tiling, maxTiles: maxTiles, tokensPerTile: tokensPerTile)
    }
}

public struct TileGrid: Sendable, Equatable, Codable {
    public var cols: Int, rows: Int
    public init(cols: Int, rows: Int) { self.cols = cols; self.rows = rows }
}

/// The grid, tile count and prompt cost of an image under a tiling rule (the official
/// dynamic_preprocess; a thumbnail tile is added when the grid has more than one tile).
public struct TilePlan: Sendable, Equatable {
    public var grid: TileGrid
    public var tiles: Int
    public var tokenCost: Int

    public init(width: Int, height: Int, tiling: TilingOptions, maxTiles: Int, tokensPerTile: Int) {
        var t = tiling
        if t.maxTiles > 1 || t.minTiles > 1 { t.maxTiles = max(maxTiles, t.minTiles) }
        let g = DynamicTiling.grid(width: width, height: height, options: t)
        grid = TileGrid(cols: g.cols, rows: g.rows)
        tiles = g.cols * g.rows + (t.useThumbnail && g.cols * g.rows != 1 ? 1 : 0)
        tokenCost = 2 + tiles * tokensPerTile
    }
}

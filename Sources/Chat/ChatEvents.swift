import Imaging
import Foundation

/// What a chat backend reports while it works on a turn.
public enum ChatEvent: Sendable, Equatable {
    case phase(ChatPhase)
    /// An image is decoded and encoded (`attachStreaming`).
    case attached(AttachedImage)
    /// Stable text of the answer, in order; the chunks add up to the answer.
    case text(String)
    case finished(TurnStats)
    /// The turn failed; the session stays usable and unchanged.
    case failed(String)
    /// A saved conversation is back in the session: its images as attached now, in order.
    case restored([AttachedImage])
}

public enum ChatPhase: Sendable, Equatable {
    case decodingImage(name: String)
    case encodingImage(layer: Int, of: Int)
    case prefill(done: Int, of: Int)
    case generating
}

public struct TurnStats: Sendable, Equatable {
    public var visionSeconds = 0.0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    /// Seconds from the request to the first generated token.
    public var firstTokenSeconds = 0.0
    public var promptTokens = 0
    public var promptTokenIDs: [Int32] = []
    public var stoppedAtStopToken = false
    /// Prompt positions whose keys and values came from the cache.
    public var reusedTokens = 0
    public var prefilledTokens = 0
    public var generatedTokenIDs: [Int32] = []
    public var interrupted = false
    public var text = ""
    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 ? Double(max(generatedTokenIDs.count - 1, 0)) / decodeSeconds : 0
    }
    public init() {}
}

/// A flag another thread can raise while the session computes (the actor is busy then, so
/// cancelling must not wait in its queue).
public final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false
    public init() {}
    public func raise() { lock.lock(); raised = true; lock.unlock() }
    public func reset() { lock.lock(); raised = false; lock.unlock() }
    public var isRaised: Bool { lock.lock(); defer { lock.unlock() }; return raised }
}

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

/// The API the TUI and the CLI drive; a remote backend can stand in for the local one.
public protocol ChatBackend: AnyObject, Sendable {
    func attach(path: String, maxTiles: Int?) async throws -> AttachedImage
    /// As `attach`, with progress: phase events (decoding, encoding layer k of n over all tiles),
    /// then `.attached`, or `.failed`.
    func attachStreaming(path: String, maxTiles: Int?) async -> AsyncStream<ChatEvent>
    func send(_ question: String, images: [AttachedImage], parameters: SamplingParameters) async -> AsyncStream<ChatEvent>
    /// Prefills what the attached images already determine of the next prompt (while the user
    /// types); returns the positions prefilled.
    func prefillAhead(images: [AttachedImage]) async -> Int
    func regenerate(parameters: SamplingParameters) async -> AsyncStream<ChatEvent>
    func editLast(_ question: String, parameters: SamplingParameters) async -> AsyncStream<ChatEvent>
    func newConversation() async
    func setSystemMessage(_ text: String) async
    /// The conversation as it stands, to save it.
    func snapshot() async -> SessionSnapshot
    /// Replaces the conversation with a saved one: progress events, then `.restored` or `.failed`.
    func restore(_ snapshot: SessionSnapshot) async -> AsyncStream<ChatEvent>
    var modelIdentity: ModelIdentity { get async }
    /// Stops the running work as soon as possible; safe from any thread.
    func cancel()
}

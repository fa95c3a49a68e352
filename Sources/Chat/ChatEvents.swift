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
    public let name: String
    public let width: Int
    public let height: Int
    public let tiles: Int
    /// Prompt tokens it costs: <img> + tiles x tokens per tile + </img>.
    public let tokenCost: Int

    public init(id: Int, name: String, width: Int, height: Int, tiles: Int, tokenCost: Int) {
        self.id = id; self.name = name; self.width = width; self.height = height; self.tiles = tiles; self.tokenCost = tokenCost
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
    /// Stops the running work as soon as possible; safe from any thread.
    func cancel()
}

import ChatAPI

/// One chat completion as a server receives it, after the HTTP layer has parsed and checked
/// the body: the conversation (system, user and assistant messages, images as their bytes),
/// the sampling parameters and the stop strings.
public struct CompletionRequest: Sendable {
    public enum Role: String, Sendable, Equatable { case system, user, assistant }

    public struct Image: Sendable, Equatable {
        /// The encoded file (JPEG, PNG, WebP, ...), as it came in a `data:` URL or an allowed file.
        public var bytes: [UInt8]
        /// How errors name it ("image 2 of message 3").
        public var name: String
        /// Tiles for this image; nil takes the request's, then the model's.
        public var maxTiles: Int?
        public init(bytes: [UInt8], name: String, maxTiles: Int? = nil) {
            self.bytes = bytes; self.name = name; self.maxTiles = maxTiles
        }
    }

    public struct Message: Sendable, Equatable {
        public var role: Role
        public var text: String
        public var images: [Image]
        public init(role: Role, text: String, images: [Image] = []) {
            self.role = role; self.text = text; self.images = images
        }
    }

    public var messages: [Message]
    public var parameters: SamplingParameters
    /// Generation ends before the first of these strings; it is not part of the answer.
    public var stop: [String]
    /// Tiles for images that do not name their own.
    public var maxTiles: Int?

    public init(messages: [Message], parameters: SamplingParameters, stop: [String] = [], maxTiles: Int? = nil) {
        self.messages = messages; self.parameters = parameters; self.stop = stop; self.maxTiles = maxTiles
    }
}

/// Why a completion ended, in the OpenAI API's words.
public enum FinishReason: String, Sendable, Equatable {
    /// A stop token or stop string.
    case stop
    /// `max_tokens` or the end of the context.
    case length
}

public struct CompletionUsage: Sendable, Equatable {
    public var promptTokens: Int
    public var completionTokens: Int
    /// Prompt positions taken from a cache instead of prefilled.
    public var cachedPromptTokens: Int
    public init(promptTokens: Int, completionTokens: Int, cachedPromptTokens: Int = 0) {
        self.promptTokens = promptTokens; self.completionTokens = completionTokens; self.cachedPromptTokens = cachedPromptTokens
    }
}

/// What a completion stream yields: stable text chunks in order (they add up to the answer),
/// then one `finished`.
public enum CompletionEvent: Sendable, Equatable {
    case text(String)
    case finished(FinishReason, CompletionUsage, tokenIDs: [Int32])
}

/// A request the service refuses or cannot finish; the HTTP layer maps each case to a status.
public enum CompletionError: Error, Equatable, Sendable {
    /// 400: a value the request got wrong (the message names it).
    case invalidRequest(String)
    /// 400: an image that does not decode, or is too large.
    case badImage(String)
    /// 400: prompt and answer do not fit the context.
    case contextExceeded(String)
    /// 429: the queue is full.
    case overloaded(String)
    /// 500: the engine failed.
    case engineFailure(String)

    public var message: String {
        switch self {
        case .invalidRequest(let s), .badImage(let s), .contextExceeded(let s), .overloaded(let s), .engineFailure(let s): return s
        }
    }
}

/// Counters a server exports (queue depth, work in progress).
public struct ServiceStatus: Sendable, Equatable {
    /// Requests admitted but not yet prefilled.
    public var queued: Int
    /// Requests being prefilled or decoded.
    public var active: Int
    /// The most requests one decode step has run together so far.
    public var largestBatch: Int
    /// Tokens generated so far for all requests: finished, cut off, or cancelled (their client
    /// went away), as each was generated.
    public var generatedTokens: Int
    public init(queued: Int, active: Int, largestBatch: Int = 0, generatedTokens: Int = 0) {
        self.queued = queued; self.active = active; self.largestBatch = largestBatch; self.generatedTokens = generatedTokens
    }
}

/// An engine that answers completions, many at once. Ending the consumption of a stream
/// (the task iterating it cancelled, or the stream dropped) cancels that request at once and
/// frees its place.
public protocol CompletionService: AnyObject, Sendable {
    /// The name `/v1/models` lists and responses carry.
    var modelName: String { get }
    func complete(_ request: CompletionRequest) -> AsyncThrowingStream<CompletionEvent, any Error>
    func status() async -> ServiceStatus
    /// Calls `observer` with each count of tokens the service generates, as they are generated
    /// and before their text is streamed (for requests finished, cut off or cancelled alike), so
    /// that a counter is up to date whenever it is read, not only when `status` is asked.
    func observeGeneratedTokens(_ observer: @escaping @Sendable (Int) -> Void)
    /// Why a request coming now would be refused as overloaded (nil: it would be taken), so that
    /// one can be refused from its head, before its body is read (it may still be refused when it
    /// comes: others may fill the queue meanwhile).
    func admissionRefusal() -> String?
    /// What the service would refuse `request` for, found without running it (its sampling
    /// values, the shape of its conversation, the number and kind of its images), so that a
    /// request that can never be answered gets its own error, not `overloaded`, when the queue is
    /// full. Nil when nothing is found; running the request may still refuse it (an image that
    /// does not decode, more tiles than allowed, a prompt over the context).
    func problem(with request: CompletionRequest) -> CompletionError?
}

extension CompletionService {
    public func admissionRefusal() -> String? { nil }
    public func problem(with request: CompletionRequest) -> CompletionError? { nil }
}

extension Duration {
    /// The duration in seconds.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

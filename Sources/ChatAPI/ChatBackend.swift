/// The API the TUI and the CLI drive; a remote backend can stand in for the local one.
public protocol ChatBackend: AnyObject, Sendable {
    func attach(path: String, maxTiles: Int?) async throws -> AttachedImage
    /// As `attach`, with progress: phase events (decoding, encoding layer k of n over all tiles),
    /// then `.attached`, or `.failed`.
    func attachStreaming(path: String, maxTiles: Int?) async -> AsyncStream<ChatEvent>
    /// A turn: `question` as the model is asked it (a video's `FrameK: <image>` lines included),
    /// `typed` as the user wrote it (what the conversation keeps to show, title and export).
    func send(_ question: String, typed: String, images: [AttachedImage], parameters: SamplingParameters) async -> AsyncStream<ChatEvent>
    /// Prefills what the attached images already determine of the next prompt (while the user
    /// types); returns the positions prefilled.
    func prefillAhead(images: [AttachedImage]) async -> Int
    func regenerate(parameters: SamplingParameters) async -> AsyncStream<ChatEvent>
    func editLast(_ question: String, typed: String, parameters: SamplingParameters) async -> AsyncStream<ChatEvent>
    func newConversation() async
    /// Drops attached images the next message will no longer show (detached, or replaced by a
    /// re-cut), with their vision tokens; an image a turn of the conversation shows stays.
    func release(imageIDs: [Int]) async
    func setSystemMessage(_ text: String) async
    /// The conversation as it stands, to save it.
    func snapshot() async -> SessionSnapshot
    /// Replaces the conversation with a saved one: progress events, then `.restored` or `.failed`.
    func restore(_ snapshot: SessionSnapshot) async -> AsyncStream<ChatEvent>
    var modelIdentity: ModelIdentity { get async }
    /// The system message a conversation has when none was set (the chat template's own; a
    /// remote backend's configured one).
    var defaultSystemMessage: String { get async }
    /// Stops the running work as soon as possible; safe from any thread.
    func cancel()
}

extension ChatBackend {
    public var defaultSystemMessage: String { get async { "" } }

    /// A turn whose question is what the user typed.
    public func send(_ question: String, images: [AttachedImage], parameters: SamplingParameters) async -> AsyncStream<ChatEvent> {
        await send(question, typed: question, images: images, parameters: parameters)
    }

    public func editLast(_ question: String, parameters: SamplingParameters) async -> AsyncStream<ChatEvent> {
        await editLast(question, typed: question, parameters: parameters)
    }
}

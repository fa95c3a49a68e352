/// What one turn cost and produced.
public struct TurnStats: Sendable, Equatable {
    /// Seconds spent decoding, tiling and encoding the images this turn shows for the first time
    /// in the conversation (at attach time, before the turn; 0 for images shown before).
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
    /// Tokens generated as a server counted them, when their ids are not known (a remote backend).
    public var countedTokens: Int?
    public var generatedTokens: Int { countedTokens ?? generatedTokenIDs.count }
    public var interrupted = false
    public var text = ""
    public var decodeTokensPerSecond: Double {
        decodeSeconds > 0 ? Double(max(generatedTokens - 1, 0)) / decodeSeconds : 0
    }
    public init() {}
}

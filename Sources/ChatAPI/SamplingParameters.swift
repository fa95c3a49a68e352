/// How the next token is chosen. `temperature == 0` is greedy decoding.
public struct SamplingParameters: Sendable, Equatable, Codable {
    public var temperature: Float = 0
    /// 0 keeps every token.
    public var topK: Int = 0
    /// 1 keeps every token.
    public var topP: Float = 1
    /// 1 disables the penalty.
    public var repetitionPenalty: Float = 1
    public var seed: UInt64 = 0
    public var maxNewTokens: Int = 1024

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1,
                seed: UInt64 = 0, maxNewTokens: Int = 1024) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
        self.maxNewTokens = maxNewTokens
    }

    /// A message naming the first invalid value, or nil.
    public var problem: String? {
        if !(temperature >= 0) || !temperature.isFinite { return "temperature must be 0 (greedy) or positive" }
        if topK < 0 { return "top-k must be 0 (off) or positive" }
        if !(topP > 0 && topP <= 1) { return "top-p must be in (0, 1]" }
        if !(repetitionPenalty > 0) || !repetitionPenalty.isFinite { return "repetition penalty must be positive" }
        if maxNewTokens < 1 { return "max new tokens must be at least 1" }
        return nil
    }
}

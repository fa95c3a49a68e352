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
    /// The stop tokens are not taken before this many new tokens (vLLM's `min_tokens`).
    public var minNewTokens: Int = 0

    /// The highest temperature the app's `/set` and the command line take.
    public static let highestTemperature: Float = 5

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1,
                seed: UInt64 = 0, maxNewTokens: Int = 1024, minNewTokens: Int = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
        self.maxNewTokens = maxNewTokens
        self.minNewTokens = minNewTokens
    }

    enum CodingKeys: String, CodingKey { case temperature, topK, topP, repetitionPenalty, seed, maxNewTokens, minNewTokens }

    /// Files written before `minNewTokens` existed have none: 0.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        temperature = try c.decode(Float.self, forKey: .temperature)
        topK = try c.decode(Int.self, forKey: .topK)
        topP = try c.decode(Float.self, forKey: .topP)
        repetitionPenalty = try c.decode(Float.self, forKey: .repetitionPenalty)
        seed = try c.decode(UInt64.self, forKey: .seed)
        maxNewTokens = try c.decode(Int.self, forKey: .maxNewTokens)
        minNewTokens = try c.decodeIfPresent(Int.self, forKey: .minNewTokens) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(temperature, forKey: .temperature)
        try c.encode(topK, forKey: .topK)
        try c.encode(topP, forKey: .topP)
        try c.encode(repetitionPenalty, forKey: .repetitionPenalty)
        try c.encode(seed, forKey: .seed)
        try c.encode(maxNewTokens, forKey: .maxNewTokens)
        if minNewTokens != 0 { try c.encode(minNewTokens, forKey: .minNewTokens) }
    }

    /// A message naming the first invalid value, or nil.
    public var problem: String? {
        if !(temperature >= 0) || !temperature.isFinite { return "temperature must be a finite number, 0 (greedy) or more" }
        if topK < 0 { return "top-k must be 0 (off) or positive" }
        if !(topP > 0 && topP <= 1) { return "top-p must be in (0, 1]" }
        if !(repetitionPenalty > 0) || !repetitionPenalty.isFinite { return "repetition penalty must be positive" }
        if maxNewTokens < 1 { return "max new tokens must be at least 1" }
        if minNewTokens < 0 || minNewTokens > maxNewTokens { return "min new tokens must be from 0 to max new tokens (\(maxNewTokens))" }
        return nil
    }
}

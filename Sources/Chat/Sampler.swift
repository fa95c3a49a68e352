import ChatAPI
import Foundation

/// Picks tokens from logits as transformers' generate() orders its processors: repetition
/// penalty over every id seen (prompt included), then temperature, top-k, top-p, then a draw.
/// The draw uses our own seeded generator, so sampled text is reproducible here but not equal
/// to PyTorch's; greedy decoding is exact.
public struct Sampler: Sendable {
    public var parameters: SamplingParameters
    private var rng: SplitMix64
    /// Logits being processed (reused across tokens).
    private var work: [Float] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = SplitMix64(seed: parameters.seed)
    }

    public mutating func next(logits: [Float], seen: [Int32], excluding: Set<Int32> = []) -> Int32 {
        logits.withUnsafeBufferPointer { next(logits: $0, seen: seen, excluding: excluding) }
    }

    /// The next token for `logits`; `seen` is every id so far (prompt included); never one of
    /// `excluding` (their logits taken as -inf first, as transformers' min-new-tokens processor
    /// does). Greedy decoding without a penalty or exclusions reads the logits in place.
    public mutating func next(logits: UnsafeBufferPointer<Float>, seen: [Int32], excluding: Set<Int32> = []) -> Int32 {
        let p = parameters
        if p.repetitionPenalty == 1 && p.temperature == 0 && excluding.isEmpty { return Int32(argmax(logits)) }
        if work.count != logits.count { work = [Float](repeating: 0, count: logits.count) }
        work.withUnsafeMutableBufferPointer { $0.baseAddress!.update(from: logits.baseAddress!, count: logits.count) }
        var l: [Float] = []
        swap(&l, &work)              // uniquely held: processed in place
        defer { swap(&l, &work) }
        for id in excluding where id >= 0 && Int(id) < l.count { l[Int(id)] = -.infinity }
        if p.repetitionPenalty != 1 {
            for id in Set(seen) where id >= 0 && Int(id) < l.count {
                let v = l[Int(id)]
                l[Int(id)] = v < 0 ? v * p.repetitionPenalty : v / p.repetitionPenalty
            }
        }
        if p.temperature == 0 { return Int32(argmax(l)) }
        // Past float's range the softmax is NaN; so small a temperature leaves the greedy token.
        let best = argmax(l)
        if !(l[best] / p.temperature).isFinite { return Int32(best) }
        for i in l.indices { l[i] /= p.temperature }
        var order = l.indices.sorted { l[$0] > l[$1] }
        if p.topK > 0 && p.topK < order.count { order = Array(order.prefix(p.topK)) }
        // Softmax over the survivors.
        let m = l[order[0]]
        var probs = order.map { Double(exp(l[$0] - m)) }
        var sum = probs.reduce(0, +)
        if p.topP < 1 {
            // Keep the smallest prefix whose mass reaches top_p (at least one token).
            var acc = 0.0, keep = 0
            for (k, q) in probs.enumerated() {
                keep = k + 1
                acc += q / sum
                if acc >= Double(p.topP) { break }
            }
            order = Array(order.prefix(keep)); probs = Array(probs.prefix(keep))
            sum = probs.reduce(0, +)
        }
        let u = Double(rng.next() >> 11) / Double(1 << 53) * sum
        var acc = 0.0
        for (k, q) in probs.enumerated() {
            acc += q
            if u < acc { return Int32(order[k]) }
        }
        return Int32(order[probs.lastIndex { $0 > 0 } ?? 0])     // rounding left u past the sum
    }
}

/// Index of the largest value (the first one on ties, as torch.argmax).
public func argmax(_ x: [Float]) -> Int { x.withUnsafeBufferPointer(argmax) }

public func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    for i in x.indices where x[i] > x[best] { best = i }
    return best
}

/// SplitMix64: small, fast, and the same sequence on every platform.
struct SplitMix64: Sendable {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

import ChatAPI
import Foundation
import Tokenizer

/// The per-token rules of one answer, shared by every decoding loop (`ChatEngine.decode` and a
/// serving scheduler's batched steps): samples the next id from the logits after the sequence,
/// ends the answer at a stop token, a stop string, `maxNewTokens` or the end of the context, and
/// turns the ids into stable text, holding back what could still become a stop string.
public struct TokenStepper: Sendable {
    /// Why an answer ended.
    public enum Finish: Sendable, Equatable {
        /// A stop token (not part of the answer).
        case stopToken
        /// A stop string: it and everything after it are dropped.
        case stopString
        /// `maxNewTokens` or the end of the context.
        case length
    }

    /// What one `step` did.
    public struct Step: Sendable, Equatable {
        /// The id taken, nil at a stop token; the next one to feed the model when the answer goes on.
        public var token: Int32?
        /// Text to stream now (often empty).
        public var text: String
        /// Set once the answer has ended.
        public var finish: Finish?
    }

    /// The answer's ids (without the stop token).
    public private(set) var tokenIDs: [Int32] = []
    /// Set once the answer has ended; `step` must not be called then.
    public private(set) var finish: Finish?

    private var sampler: Sampler
    private var detokenizer: any Detokenizer
    /// Every id so far, prompt included (the repetition penalty's).
    private var seen: [Int32]
    private let stopIDs: Set<Int32>
    /// Up to this many ids the stop tokens are not taken and no stop string counts.
    private let minNewTokens: Int
    private let stops: [String]
    /// Characters held back: one fewer than the longest stop string.
    private let hold: Int
    private let maxNewTokens: Int
    private let contextLength: Int
    /// Stable text not streamed yet, as it could begin a stop string.
    private var held = ""

    /// `prompt`: the ids before the answer. `stop`: strings that end the answer (empty ones ignored).
    public init(parameters: SamplingParameters, prompt: [Int32], tokenizer: any Tokenizer, stopIDs: Set<Int32>,
                contextLength: Int, stop: [String] = []) {
        sampler = Sampler(parameters)
        detokenizer = tokenizer.makeDetokenizer()
        seen = prompt
        let reserve = max(0, min(parameters.maxNewTokens, contextLength - prompt.count))
        seen.reserveCapacity(prompt.count + reserve)
        tokenIDs.reserveCapacity(reserve)
        self.stopIDs = stopIDs
        stops = stop.filter { !$0.isEmpty }
        hold = max(0, (stops.map(\.count).max() ?? 0) - 1)
        maxNewTokens = parameters.maxNewTokens
        minNewTokens = parameters.minNewTokens
        self.contextLength = contextLength
        if maxNewTokens < 1 { finish = .length }
    }

    /// Takes the next id from `logits` (those after the prompt and the ids taken so far; `cached`
    /// of these positions are in the model's cache) and applies the rules.
    public mutating func step(logits: UnsafeBufferPointer<Float>, cached: Int) -> Step {
        precondition(finish == nil, "the answer has ended")
        let next = sampler.next(logits: logits, seen: seen, excluding: tokenIDs.count < minNewTokens ? stopIDs : [])
        if stopIDs.contains(next) {
            finish = .stopToken
            return Step(token: nil, text: "", finish: finish)
        }
        tokenIDs.append(next)
        seen.append(next)
        let (text, stopped) = release(detokenizer.append(next), final: false, search: tokenIDs.count > minNewTokens)
        if stopped { finish = .stopString }
        else if tokenIDs.count >= maxNewTokens || cached + 1 >= contextLength { finish = .length }
        return Step(token: next, text: text, finish: finish)
    }

    /// The text still to stream once the answer has ended, however it ended (the caller may end
    /// it early): the detokenizer's rest and what was held back, cut at a stop string; nothing
    /// after a stop string.
    public mutating func end() -> String {
        if finish == .stopString { return "" }
        return release(detokenizer.finish(), final: true).text
    }

    /// Adds stable text; returns what can no longer be part of a stop string, and whether one
    /// appeared (the text before it returned, the rest dropped). Without `search` (the ids up to
    /// `minNewTokens`, as vLLM) no stop string counts and all of it is returned.
    private mutating func release(_ chunk: String, final: Bool, search: Bool = true) -> (text: String, stopped: Bool) {
        if stops.isEmpty { return (chunk, false) }
        if !search { defer { held = "" }; return (held + chunk, false) }
        held += chunk
        if let cut = stops.compactMap({ held.range(of: $0)?.lowerBound }).min() {
            let before = String(held[..<cut])
            held = ""
            return (before, true)
        }
        let keep = final ? 0 : hold
        let n = held.count - keep
        guard n > 0 else { return ("", false) }
        let out = String(held.prefix(n))
        held = String(held.dropFirst(n))
        return (out, false)
    }
}

import Checkpoint
import Foundation
import Model
import Tokenizer

public enum ChatError: LocalizedError, Equatable {
    case emptyPrompt
    case promptTooLong(tokens: Int, context: Int)
    case invalidParameters(String)
    case badHistory(String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .emptyPrompt: return "The prompt is empty: type a question."
        case .promptTooLong(let n, let c):
            return "The prompt is \(n) tokens, but the context holds \(c) (\(n - c + 1) too many, leaving no room to answer). "
                + "Shorten the history or the question, or raise the context size."
        case .invalidParameters(let s): return "Invalid sampling parameters: \(s)."
        case .badHistory(let p, let r): return "\(p) is not a valid history: \(r)."
        }
    }
}

/// Seconds spent per phase and the resulting speeds.
public struct GenerationTimings: Sendable, Codable, Equatable {
    public var load: Double = 0
    public var prefill: Double = 0
    public var decode: Double = 0
    public var promptTokens: Int = 0
    public var generatedTokens: Int = 0

    public var prefillTokensPerSecond: Double { prefill > 0 ? Double(promptTokens) / prefill : 0 }
    /// Tokens after the first (the first comes out of prefill) over decode time.
    public var decodeTokensPerSecond: Double { decode > 0 ? Double(max(generatedTokens - 1, 0)) / decode : 0 }
}

public struct GenerationResult: Sendable {
    /// The response as the official chat() returns it.
    public var text: String
    /// Generated ids without the stop token.
    public var tokenIDs: [Int32]
    public var promptTokenIDs: [Int32]
    public var stoppedAtStopToken: Bool
    public var timings: GenerationTimings
}

/// A loaded model ready to answer: the language model, its tokenizer and configuration.
public final class ChatEngine: @unchecked Sendable {
    public let configuration: ModelConfiguration
    public let model: InternLM2
    public let tokenizer: InternLM2Tokenizer
    public let folder: URL
    public var contextLength: Int
    public let loadSeconds: Double

    /// Loads config.json, the weights (memory-mapped, validated) and the tokenizer of `folder`.
    public init(folder: URL, contextLength: Int = 8192) throws {
        let start = Date()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError.folderMissing(folder.path)
        }
        configuration = try ModelConfiguration.load(from: folder.appendingPathComponent("config.json"))
        let weights = try CheckpointWeights(folder: folder, config: configuration)
        model = try InternLM2(weights: weights, config: configuration.llmConfig)
        tokenizer = try InternLM2Tokenizer(folder: folder)
        guard tokenizer.vocabularySize <= configuration.llmConfig.vocabSize else {
            throw CheckpointError.malformedConfig(folder.appendingPathComponent("config.json").path,
                reason: "the tokenizer has \(tokenizer.vocabularySize) ids but llm_config.vocab_size is \(configuration.llmConfig.vocabSize)")
        }
        guard tokenizer.tokenID("<|im_end|>") != nil else {
            throw TokenizerError.badConfig(folder.appendingPathComponent("tokenizer_config.json").path,
                                           reason: "it does not define <|im_end|>")
        }
        self.folder = folder
        self.contextLength = contextLength
        loadSeconds = Date().timeIntervalSince(start)
    }

    public var stopIDs: Set<Int32> { [tokenizer.tokenID("<|im_end|>")!, tokenizer.eosID] }

    /// Prompt ids for a chat turn, checked against the context.
    public func promptIDs(template: ChatTemplate, history: [(String, String)], question: String) throws -> [Int32] {
        guard !question.isEmpty else { throw ChatError.emptyPrompt }
        let ids = tokenizer.encode(template.prompt(history: history, question: question))
        guard ids.count < contextLength else { throw ChatError.promptTooLong(tokens: ids.count, context: contextLength) }
        return ids
    }

    /// Prefills `prompt` and decodes until a stop token, `maxNewTokens` or the context end.
    /// `onText` receives stable text as it appears; `shouldStop` is polled every token.
    public func generate(prompt: [Int32], parameters: SamplingParameters,
                         onText: (String) -> Void = { _ in },
                         shouldStop: () -> Bool = { false }) throws -> GenerationResult {
        if let p = parameters.problem { throw ChatError.invalidParameters(p) }
        guard prompt.count < contextLength else { throw ChatError.promptTooLong(tokens: prompt.count, context: contextLength) }
        var timings = GenerationTimings(load: loadSeconds, promptTokens: prompt.count)
        var sampler = Sampler(parameters)
        var detok = StreamingDetokenizer(tokenizer: tokenizer)
        let cache = model.makeCache(initialCapacity: min(contextLength, prompt.count + parameters.maxNewTokens))
        let stops = stopIDs
        var seen = prompt
        var out: [Int32] = []
        var stopped = false

        let t0 = Date()
        var logits = model.forward(prompt, cache: cache)
        timings.prefill = Date().timeIntervalSince(t0)
        let t1 = Date()
        while out.count < parameters.maxNewTokens && !shouldStop() {
            let next = sampler.next(logits: logits, seen: seen)
            if stops.contains(next) { stopped = true; break }
            out.append(next)
            seen.append(next)
            let text = detok.append(next)
            if !text.isEmpty { onText(text) }
            if out.count >= parameters.maxNewTokens || cache.count + 1 >= contextLength { break }
            logits = model.forward([next], cache: cache)
        }
        let rest = detok.finish()
        if !rest.isEmpty { onText(rest) }
        timings.decode = Date().timeIntervalSince(t1)
        timings.generatedTokens = out.count
        return GenerationResult(text: tokenizer.chatResponse(out), tokenIDs: out, promptTokenIDs: prompt,
                                stoppedAtStopToken: stopped, timings: timings)
    }
}

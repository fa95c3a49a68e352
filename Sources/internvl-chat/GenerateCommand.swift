import ArgumentParser
import Chat
import Foundation

/// Shared by `generate` and `chat`.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Stop after this many new tokens.") var maxNewTokens = 1024
    @Option(help: "Sampling temperature; 0 is greedy decoding.") var temperature: Float = 0
    @Option(help: "Keep only the K most likely tokens (0: all).") var topK = 0
    @Option(help: "Keep the smallest set of tokens whose probability reaches P (1: all).") var topP: Float = 1
    @Option(help: "Penalise tokens already present (1: off).") var repetitionPenalty: Float = 1
    @Option(help: "Seed of the sampler's random generator.") var seed: UInt64 = 0
    @Option(help: "Context size in tokens, prompt and answer together.") var context = 8192

    var parameters: SamplingParameters {
        SamplingParameters(temperature: temperature, topK: topK, topP: topP, repetitionPenalty: repetitionPenalty,
                           seed: seed, maxNewTokens: maxNewTokens)
    }

    func validate() throws {
        if let p = parameters.problem { throw ValidationError(p) }
        if context < 16 { throw ValidationError("--context must be at least 16 tokens") }
    }
}

/// Images for a prompt.
struct ImageOptions: ParsableArguments {
    @Option(help: "An image for the prompt (repeatable, in <image> placeholder order; without placeholders the images go before the question).")
    var image: [String] = []
    @Option(help: "Most tiles per image (default: max_dynamic_patch of config.json).") var maxTiles: Int?

    func validate() throws {
        if let m = maxTiles, m < 1 || m > 40 { throw ValidationError("--max-tiles must be between 1 and 40") }
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Answer one prompt and exit (streams the answer, or prints JSON with --json).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "System message (default: the model's own).") var system: String?
    @Option(help: "JSON file: an array of [question, answer] pairs, as the official chat(history=...).")
    var history: String?
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup var imageOptions: ImageOptions
    @Flag(help: "Print one JSON object: text, token_ids, prompt_token_ids, tiles, timings.") var json = false
    @Argument(help: "The question.") var prompt: String

    func run() throws {
        try reportingErrors {
            let engine = try ChatEngine(folder: try modelOptions.locate(), contextLength: sampling.context)
            let pairs = try history.map(Self.readHistory) ?? []
            let template = ChatTemplate(systemMessage: system ?? ChatTemplate.defaultSystemMessage)
            let v0 = Date()
            let images = try imageOptions.image.map { try engine.prepareImage(path: $0, maxTiles: imageOptions.maxTiles) }
            let ids = try engine.promptIDs(template: template, history: pairs, question: prompt, tileCounts: images.map(\.tiles))
            let tokens = images.flatMap { engine.encodeImage($0) }
            let visionSeconds = Date().timeIntervalSince(v0)
            let result = try engine.generate(prompt: ids, imageTokens: tokens, parameters: sampling.parameters,
                                             onText: { if !json { Output.write($0) } })
            if json {
                Output.write(try Self.encode(result, tiles: images.map(\.tiles), visionSeconds: visionSeconds) + "\n")
            } else {
                Output.write("\n")
            }
        }
    }

    static func readHistory(_ path: String) throws -> [(String, String)] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ChatError.badHistory(path, reason: "the file cannot be read")
        }
        guard let arr = try? JSONSerialization.jsonObject(with: data) as? [Any] else {
            throw ChatError.badHistory(path, reason: "expected a JSON array of [question, answer] pairs")
        }
        return try arr.enumerated().map { i, e in
            guard let pair = e as? [Any], pair.count == 2, let q = pair[0] as? String, let a = pair[1] as? String else {
                throw ChatError.badHistory(path, reason: "entry \(i) is not a [question, answer] pair of strings")
            }
            return (q, a)
        }
    }

    struct JSONResult: Encodable {
        struct Timings: Encodable {
            var load_s, vision_s, prefill_s, decode_s, prefill_tok_s, decode_tok_s: Double
            var prompt_tokens, generated_tokens: Int
        }
        var text: String
        var token_ids: [Int32]
        var prompt_token_ids: [Int32]
        var tiles: [Int]
        var stopped_at_stop_token: Bool
        var timings: Timings
    }

    static func encode(_ r: GenerationResult, tiles: [Int], visionSeconds: Double) throws -> String {
        let t = r.timings
        let j = JSONResult(text: r.text, token_ids: r.tokenIDs, prompt_token_ids: r.promptTokenIDs, tiles: tiles,
                           stopped_at_stop_token: r.stoppedAtStopToken,
                           timings: .init(load_s: t.load, vision_s: visionSeconds, prefill_s: t.prefill, decode_s: t.decode,
                                          prefill_tok_s: t.prefillTokensPerSecond, decode_tok_s: t.decodeTokensPerSecond,
                                          prompt_tokens: t.promptTokens, generated_tokens: t.generatedTokens))
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try enc.encode(j), as: UTF8.self)
    }
}

import ChatAPI
import Checkpoint
import Foundation
import Imaging
import Kernels
import Model
import Tokenizer

public enum ChatError: LocalizedError, Equatable {
    case emptyPrompt
    case promptTooLong(tokens: Int, context: Int)
    case invalidParameters(String)
    case badHistory(String, reason: String)
    case imagePlaceholders(images: Int, placeholders: Int)
    case contextBudget(tokens: Int, context: Int, images: [String])
    case unknownTemplate(String, known: [String])

    public var errorDescription: String? {
        switch self {
        case .emptyPrompt: return "The prompt is empty: type a question."
        case .promptTooLong(let n, let c):
            return "The prompt is \(n) tokens, but the context holds \(c) (\(n - c + 1) too many, leaving no room to answer). "
                + "Shorten the history or the question, or raise the context size."
        case .invalidParameters(let s): return "Invalid sampling parameters: \(s)."
        case .badHistory(let p, let r): return "\(p) is not a valid history: \(r)."
        case .contextBudget(let n, let c, let imgs):
            var s = "This turn needs \(n) tokens but the context holds \(c): \(n - c + 1) too many, leaving room for no answer."
            if !imgs.isEmpty { s += " Images in the conversation: " + imgs.joined(separator: "; ") + "." }
            return s + " Start a new conversation, use fewer tiles per image, or raise the context size."
        case .unknownTemplate(let n, let known):
            return "config.json names the chat template \"\(n)\", which this engine does not know (it knows \(known.joined(separator: ", ")))."
        case .imagePlaceholders(let i, let p):
            return "\(i) image(s) but only \(p) <image> placeholder(s) in the conversation: add one <image> per image, or none to let them be placed before the question."
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
    public let model: any LanguageModel
    public let vision: any VisionEncoder
    public let tokenizer: any Tokenizer
    /// The conversation template config.json names.
    public let template: ChatTemplate
    /// The ids that end an answer (the template's stop tokens and EOS).
    public let stopIDs: Set<Int32>
    public let folder: URL
    public var contextLength: Int
    public let loadSeconds: Double

    /// Loads config.json, the weights (memory-mapped, validated) and the tokenizer of `folder`.
    /// `weights`: quantize the language model's layer matrices at load (int8 or q4), through
    /// the quantized-weight cache when one is given.
    /// `moveWeights`: bf16 layer weights copied out of the mapped file into huge-page memory
    /// (faster decoding, a second or so more to load).
    public init(folder: URL, contextLength: Int = 8192, weights quantization: Quantization? = nil, cache: QuantCache? = nil,
                moveWeights: Bool = false) throws {
        let start = Date()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError.folderMissing(folder.path)
        }
        configuration = try ModelConfiguration.load(from: folder.appendingPathComponent("config.json"))
        configSHA256 = ContentHash.sha256((try? Data(contentsOf: folder.appendingPathComponent("config.json"))) ?? Data())
        let networks = try ModelFamily.load(try CheckpointWeights(folder: folder), config: configuration)
        model = networks.language
        vision = networks.vision
        template = try ChatTemplate.named(configuration.template)
        tokenizer = try Self.tokenizer(for: configuration, folder: folder)
        guard tokenizer.vocabularySize <= configuration.llmConfig.vocabSize else {
            throw CheckpointError.malformedConfig(folder.appendingPathComponent("config.json").path,
                reason: "the tokenizer has \(tokenizer.vocabularySize) ids but llm_config.vocab_size is \(configuration.llmConfig.vocabSize)")
        }
        if let missing = template.missingStopToken(in: tokenizer) {
            throw TokenizerError.badConfig(folder.appendingPathComponent("tokenizer_config.json").path,
                                           reason: "it does not define \(missing)")
        }
        stopIDs = template.stopIDs(tokenizer)
        self.folder = folder
        self.contextLength = contextLength
        if let q = quantization {
            if let cache { try cache.quantize(model, as: q, folder: folder, configSHA256: configSHA256) }
            else { model.quantize(as: q) }
        } else if moveWeights {
            model.moveToHugePages()
        }
        loadSeconds = Date().timeIntervalSince(start)
    }

    /// The model folder, its config.json's hash and the weight format.
    public var identity: ModelIdentity {
        ModelIdentity(name: folder.lastPathComponent, configSHA256: configSHA256, weightFormat: weightFormat)
    }
    private let configSHA256: String

    /// How the language model's weights are held in memory ("bf16", "f16", "f32").
    public var weightFormat: String { model.weightFormat }

    /// The tokenizer of `config`'s language-model family, from `folder`.
    static func tokenizer(for config: ModelConfiguration, folder: URL) throws -> any Tokenizer {
        switch config.llmConfig.architecture {
        case .internLM2, nil: return try InternLM2Tokenizer(folder: folder)
        }
    }

    /// Tiling from config.json (tile size, min/max tiles, thumbnail); `maxTiles` overrides
    /// max_dynamic_patch. With dynamic_image_size false every image is one tile.
    public func tilingOptions(maxTiles: Int? = nil) -> TilingOptions {
        let c = configuration
        if !c.dynamicImageSize { return TilingOptions(tileSize: c.imageSize, minTiles: 1, maxTiles: 1, useThumbnail: false) }
        let mx = max(maxTiles ?? c.maxDynamicPatch, c.minDynamicPatch)
        return TilingOptions(tileSize: c.imageSize, minTiles: c.minDynamicPatch, maxTiles: mx, useThumbnail: c.useThumbnail)
    }

    /// Decodes, tiles and normalises an image file.
    public func prepareImage(path: String, maxTiles: Int? = nil) throws -> PreparedImage {
        try ImagePreprocessor.prepare(path: path, options: tilingOptions(maxTiles: maxTiles))
    }

    /// Vision tokens `[tiles * tokensPerTile, hidden]` of a prepared image.
    public func encodeImage(_ image: PreparedImage, progress: (Int, Int) -> Void = { _, _ in }) -> [Float] {
        vision.encode(pixels: image.pixels, tiles: image.tiles, progress: progress)
    }

    /// Prompt ids for a chat turn, checked against the context. `tileCounts` lists the images
    /// of the conversation in placeholder order (history first); when the conversation has no
    /// placeholder they are put before the question.
    public func promptIDs(template: ChatTemplate, history: [(String, String)], question: String,
                          tileCounts: [Int] = []) throws -> [Int32] {
        guard !question.isEmpty else { throw ChatError.emptyPrompt }
        let q = ImagePrompt.withPlaceholders(question: question, history: history, imageCount: tileCounts.count)
        let text = try ImagePrompt.expand(template.prompt(history: history, question: q), tileCounts: tileCounts,
                                          tokensPerTile: vision.tokensPerTile)
        let ids = tokenizer.encode(text)
        guard ids.count < contextLength else { throw ChatError.promptTooLong(tokens: ids.count, context: contextLength) }
        return ids
    }

    /// Prefills `prompt` and decodes until a stop token, `maxNewTokens` or the context end.
    /// `onText` receives stable text as it appears; `shouldStop` is polled every token.
    public func generate(prompt: [Int32], imageTokens: [Float] = [], parameters: SamplingParameters,
                         onText: (String) -> Void = { _ in },
                         shouldStop: () -> Bool = { false }) throws -> GenerationResult {
        if let p = parameters.problem { throw ChatError.invalidParameters(p) }
        guard prompt.count < contextLength else { throw ChatError.promptTooLong(tokens: prompt.count, context: contextLength) }
        var timings = GenerationTimings(load: loadSeconds, promptTokens: prompt.count)
        var sampler = Sampler(parameters)
        var detok = tokenizer.makeDetokenizer()
        let cache = model.makeCache(initialCapacity: min(contextLength, prompt.count + parameters.maxNewTokens))
        let stops = stopIDs
        var seen = prompt
        var out: [Int32] = []
        var stopped = false

        let t0 = Date()
        let embeddings = try promptEmbeddings(prompt, imageTokens: imageTokens)
        var logits = Array(model.forward(embeddings: embeddings.data, count: prompt.count, cache: cache))
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

    /// Token embeddings of `prompt` with the `<IMG_CONTEXT>` rows replaced, in order, by the
    /// vision tokens (InternVLChatModel.generate).
    public func promptEmbeddings(_ prompt: [Int32], imageTokens: [Float]) throws -> FloatBuffer {
        let h = model.hidden
        let x = FloatBuffer(count: prompt.count * h)
        model.embed(prompt, into: x.data)
        let ctx = tokenizer.tokenID("<IMG_CONTEXT>")
        let slots = prompt.indices.filter { prompt[$0] == ctx }
        guard slots.count * h == imageTokens.count else {
            throw ChatError.imagePlaceholders(images: imageTokens.count / max(h, 1), placeholders: slots.count)
        }
        imageTokens.withUnsafeBufferPointer { src in
            for (k, p) in slots.enumerated() { (x.data + p * h).update(from: src.baseAddress! + k * h, count: h) }
        }
        return x
    }
}

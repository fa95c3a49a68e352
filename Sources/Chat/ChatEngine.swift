import ChatAPI
import Checkpoint
import FileInput
import Foundation
import Imaging
import Kernels
import Model
import Tokenizer

public struct GenerationResult: Sendable {
    /// The response as the official chat() returns it.
    public var text: String
    /// Generated ids without the stop token.
    public var tokenIDs: [Int32]
    public var promptTokenIDs: [Int32]
    public var stoppedAtStopToken: Bool
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
        configSHA256 = ContentHash.sha256(Data((try? FileInput.read(folder.appendingPathComponent("config.json").path,
                                                                     limit: ModelConfiguration.maxFileBytes)) ?? []))
        template = try ChatTemplate.named(configuration.template)        // before any weight is read
        let networks = try ModelFamily.load(try CheckpointWeights(folder: folder), config: configuration)
        model = networks.language
        vision = networks.vision
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
        ModelIdentity(name: ModelLocator.displayName(folder), configSHA256: configSHA256, weightFormat: weightFormat)
    }
    private let configSHA256: String

    /// How the language model's weights are held in memory ("bf16", "f16", "f32").
    public var weightFormat: String { model.weightFormat }

    /// The tokenizer of `config`'s language-model family, from `folder`.
    public static func tokenizer(for config: ModelConfiguration, folder: URL) throws -> any Tokenizer {
        switch config.llmConfig.architecture {
        case .internLM2, nil: return try InternLM2Tokenizer(folder: folder)
        case .qwen2: return try ByteLevelBPETokenizer(folder: folder)
        case .phi3: return try Phi3Tokenizer(folder: folder)
        }
    }

    /// Tiling from config.json (tile size, min/max tiles, thumbnail); `maxTiles` overrides
    /// max_dynamic_patch. With dynamic_image_size false every image is one tile.
    public func tilingOptions(maxTiles: Int? = nil) -> TilingOptions {
        let c = configuration
        if !c.dynamicImageSize { return TilingOptions(tileSize: c.imageSize, minTiles: 1, maxTiles: 1, useThumbnail: false) }
        let mx = min(max(maxTiles ?? c.maxDynamicPatch, c.minDynamicPatch), DynamicTiling.tileCountLimit.upperBound)
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

    /// As `encodeImage`, a tile at a time so that `shouldStop` can end it quickly; nil when stopped.
    public func encodeImage(_ image: PreparedImage, shouldStop: () -> Bool, progress: (Int, Int) -> Void) -> [Float]? {
        vision.encodeCancellable(pixels: image.pixels, tiles: image.tiles, shouldStop: shouldStop, progress: progress)
    }

    /// Vision tokens per image tile.
    public var tokensPerTile: Int { vision.tokensPerTile }

    /// Floats of the vision tokens of an image of `tiles` tiles.
    public func visionTokenFloats(tiles: Int) -> Int { tiles * vision.tokensPerTile * model.hidden }

    /// An empty KV cache for a conversation.
    public func makeCache() -> KVCache { model.makeCache() }

    /// True when a prompt this long must be prefilled whole, reusing nothing cached.
    public func prefillsWhole(promptLength: Int) -> Bool { model.prefillsWhole(promptLength: promptLength) }

    /// Builds prompts for this engine's tokenizer, vision encoder and context.
    public var promptBuilder: PromptBuilder {
        PromptBuilder(tokenizer: tokenizer, tokensPerTile: vision.tokensPerTile, contextLength: contextLength)
    }

    /// Prompt ids for a chat turn, checked against the context. `tileCounts` lists the images
    /// of the conversation in placeholder order (history first); when the conversation has no
    /// placeholder they are put before the question.
    public func promptIDs(template: ChatTemplate, history: [(String, String)], question: String,
                          tileCounts: [Int] = []) throws -> [Int32] {
        try promptBuilder.build(template: template, history: history, question: question,
                                images: tileCounts.map { PromptImage(key: 0, tiles: $0) }).ids
    }

    /// Prefills `prompt` from nothing and decodes until a stop token, `maxNewTokens` or the
    /// context end (the session's loop on a fresh cache). `imageTokens` are the vision tokens of
    /// the prompt's image slots, in order. `onText` receives stable text as it appears;
    /// `shouldStop` is polled every token. `leadingPadding`: the prompt as one of a left-padded
    /// batch (`KVCache.leadingPadding`).
    public func generate(prompt ids: [Int32], imageTokens: [Float] = [], parameters: SamplingParameters,
                         leadingPadding: Int = 0, onText: (String) -> Void = { _ in },
                         shouldStop: () -> Bool = { false }) throws -> GenerationResult {
        if let p = parameters.problem { throw ChatError.invalidParameters(p) }
        guard ids.count < contextLength else { throw ChatError.promptTooLong(tokens: ids.count, context: contextLength) }
        let prompt = try self.prompt(ids: ids, imageRows: imageTokens.count / max(model.hidden, 1))
        let cache = model.makeCache(initialCapacity: min(contextLength, ids.count + parameters.maxNewTokens))
        cache.leadingPadding = leadingPadding
        let logits = prefill(prompt, images: [imageTokens], upTo: ids.count, cache: cache, logits: .last)!
        let d = decode(after: logits, prompt: ids, cache: cache, parameters: parameters, shouldStop: shouldStop, onText: onText)
        return GenerationResult(text: d.text, tokenIDs: d.tokenIDs, promptTokenIDs: ids, stoppedAtStopToken: d.stoppedAtStopToken)
    }

    /// A `Prompt` for ids made elsewhere: every `<IMG_CONTEXT>` an image slot, which must be
    /// exactly `imageRows` many.
    func prompt(ids: [Int32], imageRows: Int) throws -> Prompt {
        let ctx = tokenizer.tokenID("<IMG_CONTEXT>")
        let slots = ids.indices.filter { ids[$0] == ctx }
        guard slots.count == imageRows else { throw ChatError.imagePlaceholders(images: imageRows, placeholders: slots.count) }
        return Prompt(ids: ids, signatures: ids.map { UInt64(UInt32(bitPattern: $0)) }, imageSlots: slots)
    }

    /// Makes `cache`, which holds `prompt`'s first `cache.count` positions, hold positions
    /// `..<upTo`, in one forward call (chunked inside it). Only the new positions are embedded:
    /// token rows from the model, image slots from `images` (the vision tokens of the prompt's
    /// images in slot order, as one or more arrays). Returns the logits wanted (valid until the
    /// next forward call), or nil when `shouldStop` ended it (the cache then as before).
    /// `progress(done)` counts positions of this call.
    public func prefill(_ prompt: Prompt, images: [[Float]], upTo: Int, cache: KVCache, logits wanted: LogitsWanted,
                        shouldStop: () -> Bool = { false }, progress: (Int) -> Void = { _ in }) -> UnsafeBufferPointer<Float>? {
        let start = cache.count, n = upTo - start, h = model.hidden
        precondition(n > 0 && upTo <= prompt.count, "nothing to prefill")
        let x = FloatBuffer(count: n * h)
        model.embed(Array(prompt.ids[start..<upTo]), into: x.data)
        // Slot k's row: the k-th vision token over `images` concatenated.
        var slot = prompt.imageSlots.partitionPoint { $0 < start }
        var part = 0, row = slot
        while part < images.count && row >= images[part].count / h { row -= images[part].count / h; part += 1 }
        while slot < prompt.imageSlots.count, prompt.imageSlots[slot] < upTo {
            images[part].withUnsafeBufferPointer { src in
                (x.data + (prompt.imageSlots[slot] - start) * h).update(from: src.baseAddress! + row * h, count: h)
            }
            slot += 1; row += 1
            while part < images.count && row >= images[part].count / h { row -= images[part].count / h; part += 1 }
        }
        let out = model.forward(embeddings: x.data, count: n, cache: cache, logits: wanted, shouldStop: shouldStop,
                                progress: progress)
        return cache.count == upTo ? out : nil
    }

    /// What one decoding run produced.
    public struct Decoded: Sendable {
        /// Generated ids without the stop token.
        public var tokenIDs: [Int32] = []
        /// The answer as the official chat() returns it.
        public var text = ""
        public var stoppedAtStopToken = false
        /// Ended by `shouldStop` (before the stop token or the length limit).
        public var interrupted = false
    }

    /// The token loop of one conversation: from the logits after `prompt` (which `cache` holds),
    /// takes tokens by `TokenStepper`'s rules, streams text and steps the model until a stop token,
    /// `maxNewTokens`, the end of the context or `shouldStop` (polled before every token and between the layers of every
    /// step). `onToken(count)` runs after each new token is taken (before its text). Every token
    /// but the last is in the cache at the end. One embedding row and the model's logits are
    /// reused across steps: nothing is allocated per token but the id lists' growth.
    public func decode(after first: UnsafeBufferPointer<Float>, prompt: [Int32], cache: KVCache, parameters: SamplingParameters,
                       shouldStop: () -> Bool = { false }, onToken: (Int) -> Void = { _ in },
                       onText: (String) -> Void) -> Decoded {
        var stepper = tokenStepper(parameters: parameters, prompt: prompt)
        var d = Decoded(), logits = first
        let row = FloatBuffer(count: model.hidden)
        var one: [Int32] = [0]
        while stepper.finish == nil {
            if shouldStop() { d.interrupted = true; break }
            let s = stepper.step(logits: logits, cached: cache.count)
            guard let next = s.token else { d.stoppedAtStopToken = true; break }
            onToken(stepper.tokenIDs.count)
            if !s.text.isEmpty { onText(s.text) }
            if s.finish != nil { break }
            one[0] = next
            model.embed(one, into: row.data)
            logits = model.forward(embeddings: row.data, count: 1, cache: cache, logits: .last, shouldStop: shouldStop,
                                   progress: { _ in })
            if logits.isEmpty { d.interrupted = true; break }     // stopped inside the step
        }
        let rest = stepper.end()
        if !rest.isEmpty { onText(rest) }
        d.tokenIDs = stepper.tokenIDs
        d.text = tokenizer.chatResponse(d.tokenIDs)
        return d
    }

    /// The per-token rules of an answer after `prompt` on this engine (its stop tokens, tokenizer and
    /// context), with `stop` strings ending it too.
    public func tokenStepper(parameters: SamplingParameters, prompt: [Int32], stop: [String] = []) -> TokenStepper {
        TokenStepper(parameters: parameters, prompt: prompt, tokenizer: tokenizer, stopIDs: stopIDs,
                     contextLength: contextLength, stop: stop)
    }

    /// Token embeddings of `prompt` with the `<IMG_CONTEXT>` rows replaced, in order, by the
    /// vision tokens (InternVLChatModel.generate): what `prefill` feeds the model from an empty cache.
    public func promptEmbeddings(_ ids: [Int32], imageTokens: [Float]) throws -> FloatBuffer {
        let h = model.hidden
        let prompt = try self.prompt(ids: ids, imageRows: imageTokens.count / max(h, 1))
        let x = FloatBuffer(count: ids.count * h)
        model.embed(ids, into: x.data)
        imageTokens.withUnsafeBufferPointer { src in
            for (k, p) in prompt.imageSlots.enumerated() { (x.data + p * h).update(from: src.baseAddress! + k * h, count: h) }
        }
        return x
    }
}

extension Array {
    /// The first index whose element does not satisfy `before` (the array partitioned by it).
    func partitionPoint(_ before: (Element) -> Bool) -> Int {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if before(self[mid]) { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

import Checkpoint
import Kernels

/// Which logits a forward call returns.
public enum LogitsWanted: Sendable { case last, all, none }

/// A decoder-only language model the engine runs: token embeddings in, logits out, keys and
/// values kept in a `KVCache`. `DecoderModel` implements it for the families `DecoderFamily`
/// names (InternLM2, Qwen2), owning their forward and weights in memory; `ModelFamily` picks the family from
/// config.json's `llm_config.architectures`.
public protocol LanguageModel: AnyObject, Sendable {
    var hidden: Int { get }
    var vocabSize: Int { get }
    /// Prefill runs this many positions at a time (bounds activation memory).
    var prefillChunk: Int { get set }
    /// How new KV caches store keys and values.
    var kvPrecision: KVPrecision { get set }

    /// A cache in `precision` (nil: `kvPrecision`).
    func makeCache(initialCapacity: Int, precision: KVPrecision?) -> KVCache
    /// Embedding rows for `ids` into `out` (`[ids.count, hidden]`).
    func embed(_ ids: [Int32], into out: UnsafeMutablePointer<Float>)
    /// Runs `count` input embeddings (`[count, hidden]`, overwritten) after what `cache` holds,
    /// appending their keys and values. Returns the logits wanted, or `[]` when `shouldStop`
    /// (polled between layers) answered true, the cache then keeping only what it held before.
    /// `progress` gets the positions done so far. Logits are written into model-owned storage
    /// and valid until the next call.
    func forward(embeddings: UnsafeMutablePointer<Float>, count: Int, cache: KVCache, logits: LogitsWanted,
                 shouldStop: () -> Bool, progress: (Int) -> Void) -> UnsafeBufferPointer<Float>
    /// Batched decoding: one new position for each of several sequences. Row k of `embeddings`
    /// (`[caches.count, hidden]`, overwritten) goes after what `caches[k]` holds (distinct caches,
    /// any lengths). The layer products run once for all rows (the multi-row kernels read the
    /// weights once per step), attention per sequence over its own cache. Returns the logits
    /// `[caches.count, vocab]` in model-owned storage, valid until the next call; up to
    /// `multiRowMaxRows` sequences each row's logits are the bits `forward` gives that row alone.
    func forwardBatch(embeddings: UnsafeMutablePointer<Float>, caches: [KVCache]) -> UnsafeBufferPointer<Float>
    /// True when a prompt this long must be prefilled whole, nothing cached reused (a position
    /// encoding that depends on the call's length, as dynamic NTK RoPE past its limit).
    func prefillsWhole(promptLength: Int) -> Bool
    /// The last decoder layer's output and the logits of every position of `ids` from an empty
    /// cache (quantization quality measurements).
    func hiddenAndLogits(_ ids: [Int32]) -> (hidden: [Float], logits: [Float])

    /// "bf16" (as stored), or "int8" / "q4" once quantized.
    var weightFormat: String { get }
    /// Bytes of weights read per decoded token.
    var weightBytesPerToken: Int { get }
    /// Multiply-adds x 2 of one prefill of `n` tokens.
    func prefillFLOPs(_ n: Int) -> Double
    /// The format `quantize(as:)` was called with.
    var quantizedAs: Quantization? { get }
    /// Memory the quantized (or moved) matrices live in.
    var quantizedStorage: QuantStorage? { get }
    /// Bytes `quantize(as:)` needs.
    func quantizedBytes(_ q: Quantization) -> Int
    /// Replaces the layer matrices with `q` versions, taken from `storage` when given.
    func quantize(as q: Quantization, storage: QuantStorage?)
    /// Copies the stored matrices out of the mapped checkpoint into huge-page memory.
    func moveToHugePages()
}

extension LanguageModel {
    public func makeCache(initialCapacity: Int = 256) -> KVCache { makeCache(initialCapacity: initialCapacity, precision: nil) }
    public func makeCache(precision: KVPrecision) -> KVCache { makeCache(initialCapacity: 256, precision: precision) }
    public func quantize(as q: Quantization) { quantize(as: q, storage: nil) }

    public func forward(embeddings: UnsafeMutablePointer<Float>, count: Int, cache: KVCache,
                        logits: LogitsWanted = .last) -> UnsafeBufferPointer<Float> {
        forward(embeddings: embeddings, count: count, cache: cache, logits: logits, shouldStop: { false }, progress: { _ in })
    }

    /// Runs token ids through the model after what `cache` holds; returns a copy of the logits.
    public func forward(_ ids: [Int32], cache: KVCache, logits: LogitsWanted = .last) -> [Float] {
        precondition(ids.allSatisfy { $0 >= 0 && Int($0) < vocabSize }, "token id out of range")
        let x = FloatBuffer(count: ids.count * hidden)
        embed(ids, into: x.data)
        return Array(forward(embeddings: x.data, count: ids.count, cache: cache, logits: logits,
                             shouldStop: { false }, progress: { _ in }))
    }
}

/// The vision side of a multimodal checkpoint: image tiles in, vision tokens in the language
/// model's embedding space out (encoder and projector together).
public protocol VisionEncoder: AnyObject, Sendable {
    /// Tile side in pixels.
    var tileSize: Int { get }
    /// Vision tokens per tile.
    var tokensPerTile: Int { get }
    /// Width of a vision token (the language model's hidden size).
    var outputSize: Int { get }
    /// Vision tokens `[tiles * tokensPerTile, outputSize]` of normalised pixels
    /// `[tiles, 3, tileSize, tileSize]`, all tiles as one batch. `progress(done, total)`.
    func encode(pixels: [Float], tiles: Int, progress: (Int, Int) -> Void) -> [Float]
    /// As `encode`, a tile at a time so that `shouldStop` (polled often) can end it quickly;
    /// nil when stopped.
    func encodeCancellable(pixels: [Float], tiles: Int, shouldStop: () -> Bool, progress: (Int, Int) -> Void) -> [Float]?
    /// Multiply-adds x 2 of one tile.
    var flopsPerTile: Double { get }
}

extension VisionEncoder {
    public func encode(pixels: [Float], tiles: Int) -> [Float] { encode(pixels: pixels, tiles: tiles, progress: { _, _ in }) }
}

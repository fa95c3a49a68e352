import Checkpoint
import Foundation
import Kernels

/// The pre-norm decoder the InternVL language models share (InternLM2ForCausalLM,
/// Qwen2ForCausalLM, Phi3ForCausalLM): RMSNorm, grouped-query attention with RoPE, a SiLU-gated MLP. A family
/// (`DecoderFamily`, one file each) names the tensors and says how queries, keys and values are
/// packed; inference only.
///
/// Weights are views into the memory-mapped checkpoint in their stored dtype; only the small
/// norm vectors and biases are converted to Float. Activations are Float.
public final class DecoderModel: LanguageModel, @unchecked Sendable {
    /// One decoder layer.
    struct Layer {
        let attentionNorm: [Float]      // [hidden]
        let wqkv: WeightMatrix          // [(heads + 2 kv) * headDim, hidden], packed as `family.qkv` says
        let qkvBias: [Float]?           // [(heads + 2 kv) * headDim], in wqkv's row order
        let wo: WeightMatrix            // [hidden, heads * headDim]
        let ffnNorm: [Float]            // [hidden]
        let w1: WeightMatrix            // [ffn, hidden]  gate
        let w3: WeightMatrix            // [ffn, hidden]  up
        let w2: WeightMatrix            // [hidden, ffn]  down
    }

    public let config: LLMConfiguration
    public let family: DecoderFamily
    let embeddings: WeightMatrix        // [vocab, hidden]
    private(set) var layers: [Layer]
    let norm: [Float]                   // [hidden]
    private(set) var output: WeightMatrix   // [vocab, hidden]
    /// "bf16" (as stored), or "int8" / "q4" once the layer matrices are quantized.
    public var weightFormat: String { quantizedAs?.rawValue ?? output.dtype.rawValue.lowercased() }
    /// The format `quantize(as:)` was called with.
    public private(set) var quantizedAs: Quantization?
    /// Memory the quantized matrices live in.
    private var quantStorage: QuantStorage?
    public var quantizedStorage: QuantStorage? { quantStorage }
    /// Prefill is processed this many positions at a time to bound activation memory (about
    /// 400 MB at 2,048 on the real model). Every chunk converts all weights to Float for its
    /// GEMMs again: 512 was measured 8% slower than 2,048 on a 2,048-token prompt.
    public var prefillChunk = 2048
    /// How new KV caches store keys and values (float16 unless asked otherwise).
    public var kvPrecision: KVPrecision = .float16
    private let scratch = Scratch()
    // Keeps the mapped files alive as long as the views into them.
    private let weights: CheckpointWeights
    /// Queries, keys and values of families that store them apart, joined into one matrix per
    /// layer (one product instead of three).
    private let joinedQKV: QuantStorage?

    public var hidden: Int { config.hiddenSize }
    public var vocabSize: Int { config.vocabSize }

    /// The tensors a `family` decoder with `l` needs, named as stored under `prefix`, with their shapes.
    public static func expectedTensors(_ l: LLMConfiguration, family: DecoderFamily, prefix: String) -> [String: [Int]] {
        let lh = l.hiddenSize, hd = l.headDim, kv = l.numKeyValueHeads, h = l.numAttentionHeads
        let n = family.names
        var s: [String: [Int]] = [:]
        s[prefix + n.embeddings] = [l.vocabSize, lh]
        for i in 0..<l.numHiddenLayers {
            let b = prefix + "\(n.layers)\(i)."
            s[b + n.attentionNorm] = [lh]
            switch n.qkv {
            case .fusedGroupedByKV(let w), .fused(let w):
                s[b + w] = [(h + 2 * kv) * hd, lh]
            case .separate(let q, let k, let v, let bias):
                s[b + q + ".weight"] = [h * hd, lh]
                s[b + k + ".weight"] = [kv * hd, lh]
                s[b + v + ".weight"] = [kv * hd, lh]
                if bias {
                    s[b + q + ".bias"] = [h * hd]
                    s[b + k + ".bias"] = [kv * hd]
                    s[b + v + ".bias"] = [kv * hd]
                }
            }
            s[b + n.attentionOutput] = [lh, h * hd]
            s[b + n.ffnNorm] = [lh]
            switch n.gateUp {
            case .separate(let gate, let up):
                s[b + gate] = [l.intermediateSize, lh]
                s[b + up] = [l.intermediateSize, lh]
            case .fused(let w):
                s[b + w] = [2 * l.intermediateSize, lh]
            }
            s[b + n.down] = [lh, l.intermediateSize]
        }
        s[prefix + n.finalNorm] = [lh]
        if l.tieWordEmbeddings != true { s[prefix + n.output] = [l.vocabSize, lh] }
        return s
    }

    /// The model from `weights`' tensors named under `prefix` (checked against `expectedTensors`).
    public init(weights: CheckpointWeights, config: LLMConfiguration, family: DecoderFamily,
                prefix: String = "language_model.") throws {
        self.weights = weights
        self.config = config
        self.family = family
        func t(_ name: String) throws -> Tensor {
            guard let x = weights.tensor(prefix + name) else {
                throw CheckpointError.missingTensor(prefix + name, file: "the checkpoint")
            }
            return x
        }
        let n = family.names
        embeddings = try t(n.embeddings).matrix
        var joined: QuantStorage?
        var qkvs: [(WeightMatrix, [Float]?)] = []
        switch n.qkv {
        case .fusedGroupedByKV(let w), .fused(let w):
            qkvs = try (0..<config.numHiddenLayers).map { (try t("\(n.layers)\($0).\(w)").matrix, nil) }
        case .separate(let q, let k, let v, let bias):
            let parts = try (0..<config.numHiddenLayers).map { i in
                try [q, k, v].map { try t("\(n.layers)\(i).\($0).weight").matrix }
            }
            let dtype = parts[0][0].dtype
            let perLayer = parts[0].reduce(0) { $0 + $1.storageBytes }
            guard parts.allSatisfy({ $0.allSatisfy { $0.dtype == dtype } }) else {
                throw CheckpointError.unsupportedModel("the checkpoint's q/k/v projections (mixed dtypes)", architectures: config.architectures)
            }
            let storage = QuantStorage(bytes: perLayer * parts.count)
            for (i, mats) in parts.enumerated() {
                var dst = storage.base + i * perLayer
                for m in mats { dst.copyMemory(from: m.base, byteCount: m.storageBytes); dst += m.storageBytes }
            }
            joined = storage
            qkvs = try parts.enumerated().map { i, mats in
                let m = WeightMatrix(base: UnsafeRawPointer(storage.base + i * perLayer), dtype: dtype,
                                     rows: mats.reduce(0) { $0 + $1.rows }, cols: config.hiddenSize)
                let b = bias ? try [q, k, v].flatMap { try t("\(n.layers)\(i).\($0).bias").floats() } : nil
                return (m, b)
            }
        }
        joinedQKV = joined
        layers = try (0..<config.numHiddenLayers).map { i in
            let p = "\(n.layers)\(i)."
            let gate: WeightMatrix, up: WeightMatrix
            switch n.gateUp {
            case .separate(let g, let u):
                gate = try t(p + g).matrix; up = try t(p + u).matrix
            case .fused(let w):
                let m = try t(p + w).matrix, f = config.intermediateSize
                gate = WeightMatrix(base: m.base, dtype: m.dtype, rows: f, cols: m.cols)
                up = WeightMatrix(base: m.base + f * m.cols * m.dtype.size, dtype: m.dtype, rows: f, cols: m.cols)
            }
            return Layer(attentionNorm: try t(p + n.attentionNorm).floats(),
                         wqkv: qkvs[i].0, qkvBias: qkvs[i].1,
                         wo: try t(p + n.attentionOutput).matrix,
                         ffnNorm: try t(p + n.ffnNorm).floats(),
                         w1: gate,
                         w3: up,
                         w2: try t(p + n.down).matrix)
        }
        norm = try t(n.finalNorm).floats()
        output = config.tieWordEmbeddings == true ? embeddings : try t(n.output).matrix
    }

    /// The matrices `quantize` replaces, in its layout order, with the format each gets: the
    /// layers' in the chosen one, the output head in int8 (OCR-like answers suffer first from a
    /// coarse head, so it never goes below 8 bits).
    /// A matrix whose rows are not a multiple of 32 long (only in tiny test models) stays as stored.
    func quantizationPlan(_ q: Quantization) -> [(WeightMatrix, Quantization?)] {
        let all = layers.flatMap { [$0.wqkv, $0.wo, $0.w1, $0.w3, $0.w2] }.map { ($0, q) } + [(output, Quantization.q8)]
        return all.map { ($0.0, $0.0.cols % 32 == 0 ? $0.1 : nil) }
    }

    /// Copies the decoder layers' matrices and the output head, as stored (bf16), out of the
    /// memory-mapped checkpoint into huge-page memory, releasing the mapped pages as it goes: the
    /// decode step streams them once per token, and 4 KiB page-cache pages cost it ~25% of the
    /// bandwidth in TLB misses. Resident memory stays the size of the weights. Their rows go in
    /// groups of four (`RowLayout.groupsOfFour`, where the columns allow), the layout in which
    /// one core streams them fastest.
    public func moveToHugePages() {
        guard quantStorage == nil else { return }
        let mats = layers.flatMap { [$0.wqkv, $0.wo, $0.w1, $0.w3, $0.w2] } + [output]
        var offsets: [Int] = [], total = 0
        for m in mats { offsets.append(total); total += (m.storageBytes + 63) & ~63 }
        let storage = QuantStorage(bytes: total)
        var moved: [WeightMatrix] = []
        for (i, m) in mats.enumerated() {
            let dst = storage.base + offsets[i]
            prefault(m.base, m.storageBytes)
            if m.canGroupRowsInFours {
                moved.append(m.packedInFours(into: dst))
            } else {
                dst.copyMemory(from: m.base, byteCount: m.storageBytes)
                moved.append(WeightMatrix(base: UnsafeRawPointer(dst), dtype: m.dtype, rows: m.rows, cols: m.cols))
            }
            releaseMappedPages(m.base, m.storageBytes)
        }
        rebind(moved)
        quantStorage = storage
    }

    /// Sets the layers' matrices and the output head from `m`, in `quantizationPlan`'s order.
    private func rebind(_ m: [WeightMatrix]) {
        for l in layers.indices {
            let old = layers[l], k = 5 * l
            layers[l] = Layer(attentionNorm: old.attentionNorm, wqkv: m[k], qkvBias: old.qkvBias, wo: m[k + 1], ffnNorm: old.ffnNorm,
                              w1: m[k + 2], w3: m[k + 3], w2: m[k + 4])
        }
        output = m[5 * layers.count]
    }

    /// Maps a range's pages in one call (MADV_POPULATE_READ, Linux 5.14+) instead of one fault
    /// per 4 KiB page; harmless where unsupported.
    func prefault(_ p: UnsafeRawPointer, _ n: Int) {
        let page = Int(getpagesize())
        let start = Int(bitPattern: p) & ~(page - 1)
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), Int(bitPattern: p) + n - start, 22 /* MADV_POPULATE_READ */)
    }

    /// Drops the whole pages of a mapped range from this process's resident set (the file stays
    /// in the page cache).
    func releaseMappedPages(_ p: UnsafeRawPointer, _ n: Int) {
        let page = Int(getpagesize())
        let start = (Int(bitPattern: p) + page - 1) & ~(page - 1), end = (Int(bitPattern: p) + n) & ~(page - 1)
        if end > start { _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED) }
    }

    /// Bytes `quantize(as:)` needs.
    public func quantizedBytes(_ q: Quantization) -> Int {
        quantizationPlan(q).reduce(0) { sum, item in
            sum + (item.1.map { WeightMatrix.quantizedBytes(rows: item.0.rows, cols: item.0.cols, $0) } ?? 0)
        }
    }

    /// Replaces every decoder layer's matrices with `q` versions (the embeddings and the output
    /// head stay as stored). With `storage` given (a cache file already holding them, in
    /// `quantizedBytes` bytes), the matrices are taken from it as they are; otherwise they are
    /// computed into new memory, matrices in parallel. Whether int8 goes in panels is decided once,
    /// on the calling thread (its instruction-set cap, which the parallel workers do not share).
    public func quantize(as q: Quantization, storage given: QuantStorage? = nil) {
        let plan = quantizationPlan(q), panels = int8InPanels
        let mats = plan.map(\.0), kinds = plan.map(\.1)
        var offsets: [Int] = [], total = 0
        for (m, k) in plan { offsets.append(total); total += k.map { WeightMatrix.quantizedBytes(rows: m.rows, cols: m.cols, $0, panels: panels) } ?? 0 }
        let storage = given ?? QuantStorage(bytes: total)
        precondition(storage.count >= total, "the quantized weights do not fit their storage")
        let results = UnsafeMutableBufferPointer<WeightMatrix>.allocate(capacity: mats.count)
        defer { results.deallocate() }
        let base = storage.base
        if given != nil {
            for (i, m) in mats.enumerated() {
                results.baseAddress!.advanced(by: i).initialize(to: kinds[i].map {
                    WeightMatrix(quantized: $0, base: UnsafeRawPointer(base + offsets[i]), rows: m.rows, cols: m.cols,
                                 layout: $0 == .q8 && panels ? .int8Panels : .rowMajor)
                } ?? m)
            }
        } else {
            let out = SendablePointer(results.baseAddress!), dst = SendablePointer(base), offs = offsets
            DispatchQueue.concurrentPerform(iterations: mats.count) { i in
                out.p.advanced(by: i).initialize(to: kinds[i].map { mats[i].quantized(as: $0, into: dst.p + offs[i], panels: panels) } ?? mats[i])
            }
        }
        rebind(Array(results))
        for (m, kind) in zip(mats, kinds) where kind != nil { releaseMappedPages(m.base, m.storageBytes) }
        quantStorage = storage
        quantizedAs = q
    }

    /// A cache in `precision` (default: the model's `kvPrecision`).
    public func makeCache(initialCapacity: Int = 256, precision: KVPrecision? = nil) -> KVCache {
        KVCache(layers: config.numHiddenLayers, kvHeads: config.numKeyValueHeads, headDim: config.headDim,
                precision: precision ?? kvPrecision, initialCapacity: initialCapacity)
    }

    /// Bytes of language-model weights read per decoded token (every matrix once).
    public var weightBytesPerToken: Int {
        let mats = layers.flatMap { [$0.wqkv, $0.wo, $0.w1, $0.w3, $0.w2] } + [output]
        return mats.reduce(0) { $0 + $1.storageBytes } + hidden * embeddings.dtype.size
    }

    /// Embedding rows for `ids` into `out` ([ids.count, hidden]).
    public func embed(_ ids: [Int32], into out: UnsafeMutablePointer<Float>) {
        for (i, id) in ids.enumerated() {
            embeddings.convertRows(Int(id), Int(id) + 1, into: out + i * hidden)
        }
    }

    /// Runs `t` input embeddings (`[t, hidden]`, overwritten) through the model, appending their
    /// keys and values to `cache`. Returns logits `[vocab]` of the last position, `[t, vocab]`
    /// of all, or nothing.
    ///
    /// RoPE follows InternLM2DynamicNTKScalingRotaryEmbedding: the base is chosen from the
    /// sequence length at this call (cache + t), and cached keys keep the rotation they got,
    /// exactly as the official generate() with its cache behaves.
    ///
    /// `shouldStop` is polled before every layer of every chunk; when it answers true the call
    /// returns `[]` and the cache keeps only what it held before the call. `progress` gets the
    /// positions done so far, counted in layers (after every layer of every chunk).
    public func forward(embeddings x: UnsafeMutablePointer<Float>, count t: Int, cache: KVCache,
                        logits: LogitsWanted = .last, shouldStop: () -> Bool = { false },
                        progress: (Int) -> Void = { _ in }) -> UnsafeBufferPointer<Float> {
        guard t > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        scratch.dropLargeLogits(keeping: vocabSize)
        // A prompt's buffers (~300 MB at 2,048 positions) go back after it: decode steps need a
        // row's worth, and the image that often comes next would otherwise be encoded on top.
        defer { if t > 1 { scratch.release() } }
        let past = cache.count
        let total = past + t
        cache.reserve(total)
        let rope = ropeTables(positions: past..<total, callLength: total + cache.leadingPadding)
        var start = 0
        while start < t {
            let n = min(prefillChunk, t - start)
            for (l, layer) in layers.enumerated() {
                if shouldStop() { return UnsafeBufferPointer(start: nil, count: 0) }
                step(layer, l, x + start * hidden, n, [Segment(cache: cache, rows: 0..<n, position: past + start, rope: rope, ropeRow: start)])
                progress(start + n * (l + 1) / layers.count)      // positions, counted by layers done
            }
            start += n
        }
        cache.advance(by: t)
        switch logits {
        case .none: return UnsafeBufferPointer(start: nil, count: 0)
        case .last: return project(x + (t - 1) * hidden, 1)
        case .all: return project(x, t)
        }
    }

    public func forwardBatch(embeddings x: UnsafeMutablePointer<Float>, caches: [KVCache]) -> UnsafeBufferPointer<Float> {
        let b = caches.count
        guard b > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
        precondition(Set(caches.map(ObjectIdentifier.init)).count == b, "one cache per sequence")
        scratch.dropLargeLogits(keeping: b * vocabSize)
        let segments = caches.enumerated().map { k, cache -> Segment in
            cache.reserve(cache.count + 1)
            return Segment(cache: cache, rows: k..<(k + 1), position: cache.count,
                           rope: ropeTables(positions: cache.count..<(cache.count + 1), callLength: cache.count + 1 + cache.leadingPadding), ropeRow: 0)
        }
        for (l, layer) in layers.enumerated() { step(layer, l, x, b, segments) }
        for cache in caches { cache.advance(by: 1) }
        return project(x, b, batch: true)
    }

    /// The last decoder layer's output `[t, hidden]` and the logits `[t, vocab]` of every position
    /// of `ids` from an empty cache (the quantization quality measurement).
    public func hiddenAndLogits(_ ids: [Int32]) -> (hidden: [Float], logits: [Float]) {
        let x = FloatBuffer(count: ids.count * hidden)
        embed(ids, into: x.data)
        let cache = makeCache(initialCapacity: ids.count)
        _ = forward(embeddings: x.data, count: ids.count, cache: cache, logits: .none)
        let h = Array(UnsafeBufferPointer(start: x.data, count: ids.count * hidden))
        return (h, Array(project(x.data, ids.count)))
    }

    /// Final RMSNorm and the output head for `n` rows, into the scratch's logits (valid until
    /// the next forward call). `batch`: one row of each of several sequences (`matmul`'s
    /// sameBitsAsAlone).
    private func project(_ h: UnsafeMutablePointer<Float>, _ n: Int, batch: Bool = false) -> UnsafeBufferPointer<Float> {
        let xn = scratch.buffer(.norm, n * hidden)
        norm.withUnsafeBufferPointer { rmsNorm(h, $0.baseAddress!, xn, n: hidden, t: n, eps: Float(config.rmsNormEps)) }
        let out = scratch.buffer(.logits, n * vocabSize)
        matmul(output, xn, n, out, scratch: &scratch.weightBlock, sameBitsAsAlone: batch)
        return UnsafeBufferPointer(start: out, count: n * vocabSize)
    }

    /// A prompt whose length changes the RoPE of every position (dynamic NTK past
    /// max_position_embeddings, Phi-3's long factors past original_max_position_embeddings) is
    /// computed whole, as the official generate() does, never on top of a cached prefix.
    public func prefillsWhole(promptLength: Int) -> Bool {
        guard let rs = config.ropeScaling else { return false }
        if rs.type == "dynamic" { return promptLength > config.maxPositionEmbeddings }
        if rs.isLongRope, let o = config.originalMaxPositionEmbeddings { return promptLength > o }
        return false
    }

    /// Every layer matrix once per token, plus causal attention (QK^T and PV over n^2 / 2
    /// pairs); the output head only for the last token.
    public func prefillFLOPs(_ n: Int) -> Double {
        let c = config
        let perToken = Double(c.numHiddenLayers) * Double(c.hiddenSize) *
            Double((c.numAttentionHeads + 2 * c.numKeyValueHeads) * c.headDim + c.hiddenSize + 3 * c.intermediateSize)
        let attention = Double(c.numHiddenLayers) * 2 * Double(n) * Double(n) / 2 * Double(c.hiddenSize)
        return 2 * (perToken * Double(n) + attention + Double(c.vocabSize * c.hiddenSize))
    }

    /// Rows of one forward call that belong to one sequence: they go into `cache` at `position`
    /// on, rotated by rows `ropeRow...` of `rope`.
    struct Segment {
        let cache: KVCache
        let rows: Range<Int>
        let position: Int
        let rope: RopeTables
        let ropeRow: Int
    }

    /// One decoder layer over `n` rows of `h`: the products once for all rows, attention per
    /// segment (one prompt's rows, or one row of each sequence of a batch).
    private func step(_ layer: Layer, _ l: Int, _ h: UnsafeMutablePointer<Float>, _ n: Int, _ segments: [Segment]) {
        let batch = segments.count > 1                            // one row of each sequence: matmul's sameBitsAsAlone
        let c = config
        let heads = c.numAttentionHeads, kvHeads = c.numKeyValueHeads, hd = c.headDim
        let groups = heads / kvHeads
        let eps = Float(c.rmsNormEps)
        let qkvRows = (heads + 2 * kvHeads) * hd
        let xn = scratch.buffer(.norm, n * hidden)                 // [n, hidden]
        let qkv = scratch.buffer(.qkv, n * qkvRows)                // [n, (heads + 2 kv) * hd]
        let q = scratch.buffer(.query, n * heads * hd)             // [n, heads * hd]
        let attn = scratch.buffer(.attention, n * heads * hd)      // [n, heads * hd]
        let o = scratch.buffer(.output, n * hidden)                // [n, hidden]

        // attention_norm -> wqkv
        layer.attentionNorm.withUnsafeBufferPointer { rmsNorm(h, $0.baseAddress!, xn, n: hidden, t: n, eps: eps) }
        matmul(layer.wqkv, xn, n, qkv, scratch: &scratch.weightBlock, sameBitsAsAlone: batch)
        if let bias = layer.qkvBias {
            bias.withUnsafeBufferPointer { b in
                for i in 0..<n { for j in 0..<qkvRows { qkv[i * qkvRows + j] += b[j] } }
            }
        }

        let kRows = scratch.buffer(.keys, n * kvHeads * hd), vRows = scratch.buffer(.values, n * kvHeads * hd)
        let grouped = family.names.qkv.isGroupedByKV
        for s in segments {
            for i in s.rows {
                let src = qkv + i * qkvRows
                if grouped {
                    // 'b q (h gs d) -> b q h gs d', gs = groups + 2: per kv head g, `groups`
                    // queries, then its key, then its value. Query head g * groups + j reads kv head g.
                    for g in 0..<kvHeads {
                        let block = src + g * (groups + 2) * hd
                        (q + i * heads * hd + g * groups * hd).update(from: block, count: groups * hd)
                        (kRows + (i * kvHeads + g) * hd).update(from: block + groups * hd, count: hd)
                        (vRows + (i * kvHeads + g) * hd).update(from: block + (groups + 1) * hd, count: hd)
                    }
                } else {
                    // All queries, then all keys, then all values.
                    (q + i * heads * hd).update(from: src, count: heads * hd)
                    (kRows + i * kvHeads * hd).update(from: src + heads * hd, count: kvHeads * hd)
                    (vRows + i * kvHeads * hd).update(from: src + (heads + kvHeads) * hd, count: kvHeads * hd)
                }
                let r = s.ropeRow + i - s.rows.lowerBound
                applyRoPE(q + i * heads * hd, heads: heads, dim: hd, stride: hd, cos: s.rope.cos(r), sin: s.rope.sin(r))
                applyRoPE(kRows + i * kvHeads * hd, heads: kvHeads, dim: hd, stride: hd, cos: s.rope.cos(r), sin: s.rope.sin(r))
            }
            let i0 = s.rows.lowerBound
            s.cache.store(l, at: s.position, keys: kRows + i0 * kvHeads * hd, values: vRows + i0 * kvHeads * hd, count: s.rows.count)
            causalAttention(q: q + i0 * heads * hd, kv: s.cache.rows(l), out: attn + i0 * heads * hd, t: s.rows.count,
                            past: s.position, heads: heads, kvHeads: kvHeads, dim: hd,
                            scores: &scratch.scores, kvFloats: &scratch.kvFloats)
        }
        matmul(layer.wo, attn, n, o, scratch: &scratch.weightBlock, sameBitsAsAlone: batch)
        for i in 0..<(n * hidden) { h[i] += o[i] }

        // ffn_norm -> w2(silu(w1 x) * w3 x)
        let ffn = c.intermediateSize
        let gate = scratch.buffer(.gate, n * ffn), up = scratch.buffer(.up, n * ffn)
        layer.ffnNorm.withUnsafeBufferPointer { rmsNorm(h, $0.baseAddress!, xn, n: hidden, t: n, eps: eps) }
        matmul(layer.w1, xn, n, gate, scratch: &scratch.weightBlock, sameBitsAsAlone: batch)
        matmul(layer.w3, xn, n, up, scratch: &scratch.weightBlock, sameBitsAsAlone: batch)
        let g = SendablePointer(gate), u = SendablePointer(up)
        forEachRowRange(n) { r in siluMul(g.p + r.lowerBound * ffn, u.p + r.lowerBound * ffn, n: r.count * ffn) }
        matmul(layer.w2, gate, n, o, scratch: &scratch.weightBlock, sameBitsAsAlone: batch)
        for i in 0..<(n * hidden) { h[i] += o[i] }
    }

    /// cos/sin rows `[position, headDim / 2]` for one forward call.
    struct RopeTables {
        let half: Int
        let cosv: FloatBuffer, sinv: FloatBuffer
        func cos(_ i: Int) -> UnsafePointer<Float> { UnsafePointer(cosv.data + i * half) }
        func sin(_ i: Int) -> UnsafePointer<Float> { UnsafePointer(sinv.data + i * half) }
    }

    /// Inverse frequencies for a call whose sequence length is `callLength`
    /// (InternLM2RotaryEmbedding and its dynamic NTK / linear variants; Qwen2's is the plain one;
    /// Phi3SuScaledRotaryEmbedding divides by the long factors when `callLength` is past
    /// original_max_position_embeddings, by the short ones otherwise).
    func inverseFrequencies(callLength: Int) -> [Float] {
        let d = config.headDim
        var base = config.ropeTheta
        if let rs = config.ropeScaling, rs.type == "dynamic", let factor = rs.factor, callLength > config.maxPositionEmbeddings {
            let ratio = factor * Double(callLength) / Double(config.maxPositionEmbeddings) - (factor - 1)
            base *= pow(ratio, Double(d) / Double(d - 2))
        }
        // As torch: float32 exponent (arange / dim), float32 power, float32 reciprocal.
        let powers = (0..<(d / 2)).map { i in Float(pow(base, Double(Float(2 * i) / Float(d)))) }
        if let rs = config.ropeScaling, rs.isLongRope, let short = rs.shortFactor, let long = rs.longFactor {
            let useLong = callLength > (config.originalMaxPositionEmbeddings ?? config.maxPositionEmbeddings)
            let ext = useLong ? long : short
            return (0..<(d / 2)).map { i in 1 / (Float(ext[i]) * powers[i]) }
        }
        return powers.map { 1 / $0 }
    }

    /// Phi-3's cos/sin multiplier: sqrt(1 + ln(max / original) / ln(original)) when
    /// max_position_embeddings exceeds original_max_position_embeddings, else 1.
    var ropeMagnitude: Float {
        guard let rs = config.ropeScaling, rs.isLongRope, let o = config.originalMaxPositionEmbeddings else { return 1 }
        let scale = Double(config.maxPositionEmbeddings) / Double(o)
        return scale <= 1 ? 1 : Float((1 + Foundation.log(scale) / Foundation.log(Double(o))).squareRoot())
    }

    func ropeTables(positions: Range<Int>, callLength: Int) -> RopeTables {
        let half = config.headDim / 2
        let inv = inverseFrequencies(callLength: callLength)
        var linear: Float = 1
        if let rs = config.ropeScaling, rs.type == "linear", let f = rs.factor { linear = Float(f) }
        let m = ropeMagnitude
        let c = FloatBuffer(count: positions.count * half), s = FloatBuffer(count: positions.count * half)
        for (k, p) in positions.enumerated() {
            let tpos = Float(p) / linear
            for i in 0..<half {
                let angle = Double(tpos * inv[i])      // float32 product, as torch's einsum
                c[k * half + i] = Float(Foundation.cos(angle)) * m
                s[k * half + i] = Float(Foundation.sin(angle)) * m
            }
        }
        return RopeTables(half: half, cosv: c, sinv: s)
    }
}

/// Reusable activation buffers, grown on demand: no allocation per decoded token.
final class Scratch: @unchecked Sendable {
    enum Slot: Int, CaseIterable { case norm, qkv, query, keys, values, attention, output, gate, up, logits }
    private var buffers: [FloatBuffer?] = Array(repeating: nil, count: Slot.allCases.count)
    var weightBlock: [Float] = []
    var scores: [Float] = []
    var kvFloats: [Float] = []

    /// Frees every buffer but the logits (which the caller reads after the forward call).
    func release() {
        for slot in Slot.allCases where slot != .logits { buffers[slot.rawValue] = nil }
        weightBlock = []; scores = []; kvFloats = []
    }

    /// Frees the logits buffer when it outgrew one row of `vocab` (an all-positions call).
    func dropLargeLogits(keeping vocab: Int) {
        if let b = buffers[Slot.logits.rawValue], b.count > vocab { buffers[Slot.logits.rawValue] = nil }
    }

    func buffer(_ slot: Slot, _ n: Int) -> UnsafeMutablePointer<Float> {
        if let b = buffers[slot.rawValue], b.count >= n { return b.data }
        let b = FloatBuffer(count: n)
        buffers[slot.rawValue] = b
        return b.data
    }
}

/// A pointer handed to concurrentPerform's workers, each writing its own slot.

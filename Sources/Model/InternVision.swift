import Checkpoint
import Foundation
import Kernels

/// InternVisionModel (internvl_chat/internvl/model/internvl_chat/modeling_intern_vit.py) followed
/// by InternVLChatModel.extract_feature: pixel shuffle and the `mlp1` projector. Inference only;
/// tiles of one image go through the encoder as one batch.
public final class InternVision: VisionEncoder, @unchecked Sendable {
    /// One InternVisionEncoderLayer (pre-norm, layer scale, bidirectional attention).
    struct Layer {
        let norm1w: [Float], norm1b: [Float]
        let qkv: WeightMatrix, qkvBias: [Float]   // [3 hidden, hidden]: q | k | v, heads contiguous
        let proj: WeightMatrix, projBias: [Float]
        let ls1: [Float], ls2: [Float]
        let norm2w: [Float], norm2b: [Float]
        let fc1: WeightMatrix, fc1Bias: [Float]
        let fc2: WeightMatrix, fc2Bias: [Float]
    }

    public let config: ModelConfiguration
    let patchWeight: WeightMatrix      // [hidden, 3 * patch * patch] (conv kernel flattened c, y, x)
    let patchBias: [Float]
    let classEmbedding: [Float]        // [hidden]
    let positionEmbedding: [Float]     // [1 + patches, hidden]
    let layers: [Layer]
    /// Encoder layers actually run: select_layer -1 needs all, -k stops k - 1 layers early.
    let layersToRun: Int
    public var layersToRunCount: Int { layersToRun }
    // mlp1: LayerNorm(4 h) -> Linear(4 h -> llm) -> GELU -> Linear(llm -> llm)
    let mlpNormW: [Float], mlpNormB: [Float]
    let mlp1: WeightMatrix, mlp1Bias: [Float]
    let mlp2: WeightMatrix, mlp2Bias: [Float]
    private let weights: CheckpointWeights
    private var weightBlock: [Float] = []
    private var scores: [Float] = []

    public var hidden: Int { config.visionConfig.hiddenSize }
    public var tileSize: Int { config.imageSize }
    public var patchesPerSide: Int { config.imageSize / config.visionConfig.patchSize }
    /// Vision tokens per tile after pixel shuffle (num_image_token).
    public var tokensPerTile: Int { config.tokensPerTile }
    public var outputSize: Int { config.llmConfig.hiddenSize }

    /// The tensors InternViT and the `mlp1` projector need for `c`, with their shapes.
    public static func expectedTensors(_ c: ModelConfiguration) -> [String: [Int]] {
        let v = c.visionConfig, lh = c.llmConfig.hiddenSize
        let vh = v.hiddenSize, p = v.patchSize, grid = v.imageSize / v.patchSize
        var s: [String: [Int]] = [
            "vision_model.embeddings.class_embedding": [1, 1, vh],
            "vision_model.embeddings.patch_embedding.weight": [vh, v.numChannels ?? 3, p, p],
            "vision_model.embeddings.patch_embedding.bias": [vh],
            "vision_model.embeddings.position_embedding": [1, grid * grid + 1, vh],
        ]
        for i in 0..<v.numHiddenLayers {
            let b = "vision_model.encoder.layers.\(i)."
            for n in ["norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias", "ls1", "ls2", "attn.proj.bias", "mlp.fc2.bias"] {
                s[b + n] = [vh]
            }
            s[b + "attn.qkv.weight"] = [3 * vh, vh]
            if v.qkvBias { s[b + "attn.qkv.bias"] = [3 * vh] }
            s[b + "attn.proj.weight"] = [vh, vh]
            s[b + "mlp.fc1.weight"] = [v.intermediateSize, vh]
            s[b + "mlp.fc1.bias"] = [v.intermediateSize]
            s[b + "mlp.fc2.weight"] = [vh, v.intermediateSize]
            if v.qkNormalization {
                s[b + "attn.q_norm.weight"] = [vh]
                s[b + "attn.k_norm.weight"] = [vh]
            }
        }
        let scale = Int((1 / c.downsampleRatio).rounded())
        let ps = scale * scale * vh
        s["mlp1.0.weight"] = [ps]; s["mlp1.0.bias"] = [ps]
        s["mlp1.1.weight"] = [lh, ps]; s["mlp1.1.bias"] = [lh]
        s["mlp1.3.weight"] = [lh, lh]; s["mlp1.3.bias"] = [lh]
        return s
    }

    /// Patch embedding, every encoder layer run (projections, MLP, attention over all token
    /// pairs), and mlp1 on the pixel-shuffled tokens.
    public var flopsPerTile: Double {
        let c = config.visionConfig
        let n = Double(patchesPerSide * patchesPerSide + 1), h = Double(c.hiddenSize), f = Double(c.intermediateSize)
        let layer = n * (3 * h * h + h * h + 2 * h * f) + 2 * n * n * h
        let embed = (n - 1) * h * Double(3 * c.patchSize * c.patchSize)
        let l = Double(outputSize), t = Double(tokensPerTile)
        let mlp = t * (4 * h * l + l * l)
        return 2 * (Double(layersToRun) * layer + embed + mlp)
    }

    public init(weights: CheckpointWeights, config: ModelConfiguration) throws {
        self.weights = weights
        self.config = config
        let v = config.visionConfig
        let file = "config.json"
        func bad(_ s: String) -> CheckpointError { .malformedConfig(file, reason: s) }
        guard v.normType == "layer_norm" else { throw bad("vision_config.norm_type \(v.normType) is not supported (layer_norm)") }
        guard !v.qkNormalization else { throw bad("vision_config.qk_normalization true is not supported") }
        guard config.imageSize == v.imageSize else {
            throw bad("force_image_size \(config.imageSize) differs from vision_config.image_size \(v.imageSize); resampled position embeddings are not supported")
        }
        let scale = Int((1 / config.downsampleRatio).rounded()), grid = v.imageSize / v.patchSize
        guard abs(1 / Double(scale) - config.downsampleRatio) < 1e-9, grid % scale == 0 else {
            throw bad("downsample_ratio \(config.downsampleRatio) does not divide the \(grid)x\(grid) patch grid")
        }
        let n = v.numHiddenLayers
        guard config.selectLayer >= -(n + 1) && config.selectLayer <= n else {
            throw bad("select_layer \(config.selectLayer) is outside the \(n + 1) hidden states")
        }
        layersToRun = config.selectLayer < 0 ? n + 1 + config.selectLayer : config.selectLayer
        func t(_ name: String) throws -> Tensor {
            guard let x = weights.tensor(name) else { throw CheckpointError.missingTensor(name, file: "the checkpoint") }
            return x
        }
        let e = "vision_model.embeddings."
        patchWeight = try t(e + "patch_embedding.weight").matrix.reshaped(rows: v.hiddenSize)
        patchBias = try t(e + "patch_embedding.bias").floats()
        classEmbedding = try t(e + "class_embedding").floats()
        positionEmbedding = try t(e + "position_embedding").floats()
        layers = try (0..<n).map { i in
            let p = "vision_model.encoder.layers.\(i)."
            return Layer(norm1w: try t(p + "norm1.weight").floats(), norm1b: try t(p + "norm1.bias").floats(),
                         qkv: try t(p + "attn.qkv.weight").matrix,
                         qkvBias: v.qkvBias ? try t(p + "attn.qkv.bias").floats() : [Float](repeating: 0, count: 3 * v.hiddenSize),
                         proj: try t(p + "attn.proj.weight").matrix, projBias: try t(p + "attn.proj.bias").floats(),
                         ls1: try t(p + "ls1").floats(), ls2: try t(p + "ls2").floats(),
                         norm2w: try t(p + "norm2.weight").floats(), norm2b: try t(p + "norm2.bias").floats(),
                         fc1: try t(p + "mlp.fc1.weight").matrix, fc1Bias: try t(p + "mlp.fc1.bias").floats(),
                         fc2: try t(p + "mlp.fc2.weight").matrix, fc2Bias: try t(p + "mlp.fc2.bias").floats())
        }
        mlpNormW = try t("mlp1.0.weight").floats(); mlpNormB = try t("mlp1.0.bias").floats()
        mlp1 = try t("mlp1.1.weight").matrix; mlp1Bias = try t("mlp1.1.bias").floats()
        mlp2 = try t("mlp1.3.weight").matrix; mlp2Bias = try t("mlp1.3.bias").floats()
    }

    /// Vision tokens for `tiles` tiles of normalised pixels `[tiles, 3, S, S]`:
    /// `[tiles * tokensPerTile, llm hidden]`, tile by tile. `progress(k)` after each tile's
    /// share of work is done (the batch runs layer by layer, so it reports per layer).
    public func encode(pixels: [Float], tiles: Int, progress: (Int, Int) -> Void = { _, _ in }) -> [Float] {
        let features = encoderStates(pixels: pixels, tiles: tiles, progress: progress)
        return project(features, tiles: tiles)
    }

    /// As `encode`, one tile at a time so that `shouldStop` (polled between the steps of every
    /// layer) can end it quickly; nil when stopped. `progress(done, total)` counts layer-tiles.
    public func encodeCancellable(pixels: [Float], tiles: Int, shouldStop: () -> Bool,
                                  progress: (Int, Int) -> Void = { _, _ in }) -> [Float]? {
        let per = 3 * tileSize * tileSize
        var out: [Float] = []
        out.reserveCapacity(tiles * tokensPerTile * outputSize)
        for t in 0..<tiles {
            let tile = Array(pixels[(t * per)..<((t + 1) * per)])
            guard let states = encoderStates(pixels: tile, tiles: 1, shouldStop: shouldStop, progress: { l, n in
                progress(t * n + l, tiles * n)
            }) else { return nil }
            if shouldStop() { return nil }
            out += project(states, tiles: 1)
        }
        return out
    }

    /// The selected hidden state `[tiles, 1 + patches, hidden]` (before pixel shuffle).
    public func encoderStates(pixels: [Float], tiles: Int, progress: (Int, Int) -> Void = { _, _ in }) -> [Float] {
        encoderStates(pixels: pixels, tiles: tiles, shouldStop: { false }, progress: progress)!
    }

    func encoderStates(pixels: [Float], tiles: Int, shouldStop: () -> Bool, progress: (Int, Int) -> Void) -> [Float]? {
        let h = hidden, g = patchesPerSide, p = config.visionConfig.patchSize, s = tileSize
        let n = 1 + g * g
        precondition(pixels.count == tiles * 3 * s * s, "pixel tensor does not match \(tiles) tiles of \(s)x\(s)")
        var x = [Float](repeating: 0, count: tiles * n * h)
        // Patch embedding: im2col rows [c, ky, kx] per patch, then one GEMM for all tiles.
        let k = 3 * p * p
        var cols = [Float](repeating: 0, count: tiles * g * g * k)
        for t in 0..<tiles { for py in 0..<g { for px in 0..<g {
            let row = ((t * g + py) * g + px) * k
            for c in 0..<3 { for ky in 0..<p { for kx in 0..<p {
                cols[row + (c * p + ky) * p + kx] = pixels[((t * 3 + c) * s + py * p + ky) * s + px * p + kx]
            } } }
        } } }
        var patches = [Float](repeating: 0, count: tiles * g * g * h)
        matmul(patchWeight, cols, tiles * g * g, &patches, scratch: &weightBlock, rowsPerCore: true)
        for t in 0..<tiles {
            for i in 0..<h { x[(t * n) * h + i] = classEmbedding[i] + positionEmbedding[i] }
            for q in 0..<(g * g) {
                let dst = (t * n + 1 + q) * h, src = (t * g * g + q) * h, pos = (1 + q) * h
                for i in 0..<h { x[dst + i] = patches[src + i] + patchBias[i] + positionEmbedding[pos + i] }
            }
        }
        let activations = Activations(rows: tiles * n, hidden: h, ffn: config.visionConfig.intermediateSize)
        let finished = x.withUnsafeMutableBufferPointer { xb -> Bool in
            for (l, layer) in layers.prefix(layersToRun).enumerated() {
                if !step(layer, xb.baseAddress!, activations, tiles: tiles, n: n, shouldStop: shouldStop) { return false }
                progress(l + 1, layersToRun)
            }
            return true
        }
        return finished ? x : nil
    }

    /// Activations of one encoder layer, allocated once per encode and reused by every layer.
    /// Buffers whose lives do not overlap share memory (peak RSS counts): the normed input and
    /// the attention output (`xn` is consumed by the qkv product before attention writes), the
    /// qkv rows and the MLP's hidden rows (qkv is consumed by attention before fc1 writes).
    final class Activations {
        let xn, wide, o: FloatBuffer
        var att: FloatBuffer { xn }
        var qkv: FloatBuffer { wide }
        var mid: FloatBuffer { wide }
        init(rows: Int, hidden h: Int, ffn: Int) {
            xn = FloatBuffer(count: rows * h); wide = FloatBuffer(count: rows * max(3 * h, ffn)); o = FloatBuffer(count: rows * h)
        }
    }

    /// One InternVisionEncoderLayer over all tiles; false when `shouldStop` ended it early. The
    /// element-wise steps (norms, biases, GELU, residuals) go over both cores, rows split.
    private func step(_ L: Layer, _ xp: UnsafeMutablePointer<Float>, _ a: Activations, tiles: Int, n: Int,
                      shouldStop: () -> Bool) -> Bool {
        let h = hidden, rows = tiles * n
        let heads = config.visionConfig.numAttentionHeads, ffn = config.visionConfig.intermediateSize
        let eps = Float(config.visionConfig.layerNormEps)
        let x = SendablePointer(xp), xn = SendablePointer(a.xn.data), qkv = SendablePointer(a.qkv.data)
        let o = SendablePointer(a.o.data), mid = SendablePointer(a.mid.data)
        func rowsOf(_ r: Range<Int>, _ p: SendablePointer<UnsafeMutablePointer<Float>>, _ width: Int) -> UnsafeMutablePointer<Float> {
            p.p + r.lowerBound * width
        }
        if shouldStop() { return false }
        forEachRowRange(rows) { r in layerNorm(rowsOf(r, x, h), L.norm1w, L.norm1b, rowsOf(r, xn, h), n: h, t: r.count, eps: eps) }
        matmul(L.qkv, a.xn.data, rows, a.qkv.data, scratch: &weightBlock, rowsPerCore: true)
        if shouldStop() { return false }
        forEachRowRange(rows) { r in addBias(rowsOf(r, qkv, 3 * h), L.qkvBias, n: 3 * h, t: r.count) }
        for t in 0..<tiles {
            let base = a.qkv.data + t * n * 3 * h
            fullAttention(q: base, k: base + h, v: base + 2 * h, stride: 3 * h, out: a.att.data + t * n * h,
                          n: n, heads: heads, dim: h / heads, scores: &scores)
        }
        if shouldStop() { return false }
        matmul(L.proj, a.att.data, rows, a.o.data, scratch: &weightBlock, rowsPerCore: true)
        forEachRowRange(rows) { r in
            scaledResidual(rowsOf(r, x, h), rowsOf(r, o, h), bias: L.projBias, ls: L.ls1, n: h, t: r.count)
            layerNorm(rowsOf(r, x, h), L.norm2w, L.norm2b, rowsOf(r, xn, h), n: h, t: r.count, eps: eps)
        }
        if shouldStop() { return false }
        matmul(L.fc1, a.xn.data, rows, a.mid.data, scratch: &weightBlock, rowsPerCore: true)
        forEachRowRange(rows) { r in biasGelu(rowsOf(r, mid, ffn), L.fc1Bias, n: ffn, t: r.count) }
        if shouldStop() { return false }
        matmul(L.fc2, a.mid.data, rows, a.o.data, scratch: &weightBlock, rowsPerCore: true)
        forEachRowRange(rows) { r in scaledResidual(rowsOf(r, x, h), rowsOf(r, o, h), bias: L.fc2Bias, ls: L.ls2, n: h, t: r.count) }
        return true
    }

    /// Drop the class token, pixel-shuffle by the downsample ratio, then mlp1.
    /// Output token (i, j) concatenates grid positions (2i, 2j), (2i, 2j+1), (2i+1, 2j),
    /// (2i+1, 2j+1); ps_version v2 orders tokens row-major by (i, j), v1 transposed (j, i).
    public func project(_ states: [Float], tiles: Int) -> [Float] {
        let h = hidden, g = patchesPerSide, n = 1 + g * g
        let sc = Int((1 / config.downsampleRatio).rounded()), m = g / sc, c = sc * sc * h
        let perTile = m * m, rows = tiles * perTile
        var shuffled = [Float](repeating: 0, count: rows * c)
        for t in 0..<tiles { for i in 0..<m { for j in 0..<m {
            let token = config.psVersion == "v1" ? j * m + i : i * m + j
            var dst = (t * perTile + token) * c
            for dy in 0..<sc { for dx in 0..<sc {
                let src = (t * n + 1 + (i * sc + dy) * g + (j * sc + dx)) * h
                for e in 0..<h { shuffled[dst + e] = states[src + e] }
                dst += h
            } }
        } } }
        var normed = [Float](repeating: 0, count: rows * c)
        layerNorm(shuffled, mlpNormW, mlpNormB, &normed, n: c, t: rows, eps: 1e-5)
        let out = outputSize
        var mid = [Float](repeating: 0, count: rows * out)
        matmul(mlp1, normed, rows, &mid, scratch: &weightBlock, rowsPerCore: true)
        biasGelu(&mid, mlp1Bias, n: out, t: rows)
        var result = [Float](repeating: 0, count: rows * out)
        matmul(mlp2, mid, rows, &result, scratch: &weightBlock, rowsPerCore: true)
        addBias(&result, mlp2Bias, n: out, t: rows)
        return result
    }
}

import Foundation

/// The ranges config.json values must fall in, checked before anything is sized from them.
/// Upper bounds are far above any InternVL chat model (the real 2B model's value is in the
/// comment) and low enough that a hostile value cannot make the loader allocate or loop
/// without end. docs/cli.md lists them.
public enum ConfigurationLimits {
    public static let llmHiddenSize = 1...65_536            // 2048
    public static let llmLayers = 1...512                    // 24
    public static let llmHeads = 1...1_024                   // 16
    public static let llmIntermediateSize = 1...262_144      // 8192
    public static let vocabSize = 1...1_048_576              // 92553
    public static let maxPositionEmbeddings = 1...4_194_304  // 32768
    public static let headDim = 2...1_024                    // 128
    public static let ropeTheta = 1.0...1e12                 // 1e6 (exclusive of 1)
    public static let ropeScalingFactor = 1.0...1_024.0      // 2.0
    public static let eps = 0.0...0.1                        // 1e-5, 1e-6 (exclusive of 0)
    public static let visionHiddenSize = 1...16_384          // 1024
    public static let visionLayers = 1...256                 // 24
    public static let visionHeads = 1...1_024                // 16
    public static let visionIntermediateSize = 1...65_536    // 4096
    public static let imageSize = 1...4_096                  // 448
    public static let dynamicPatches = 1...40                // 1...12 (as --max-tiles)
}

extension ModelConfiguration {
    /// Every value the engine uses, for sign, range and consistency; the message names the key
    /// and the allowed range.
    func validate(path: String) throws {
        let l = llmConfig, v = visionConfig
        func bad(_ s: String) -> CheckpointError { .malformedConfig(path, reason: s) }
        func check(_ key: String, _ x: Int, _ r: ClosedRange<Int>) throws {
            guard r.contains(x) else { throw bad("\(key) must be between \(r.lowerBound) and \(r.upperBound), got \(x)") }
        }
        func check(_ key: String, _ x: Double, above lo: Double, upTo hi: Double) throws {
            guard x.isFinite, x > lo, x <= hi else { throw bad("\(key) must be above \(lo) and at most \(hi), got \(x)") }
        }
        typealias L = ConfigurationLimits

        if !["v1", "v2"].contains(psVersion) { throw bad("ps_version must be v1 or v2, got \(psVersion)") }

        try check("llm_config.hidden_size", l.hiddenSize, L.llmHiddenSize)
        try check("llm_config.num_hidden_layers", l.numHiddenLayers, L.llmLayers)
        try check("llm_config.num_attention_heads", l.numAttentionHeads, L.llmHeads)
        try check("llm_config.num_key_value_heads", l.numKeyValueHeads, 1...l.numAttentionHeads)
        try check("llm_config.intermediate_size", l.intermediateSize, L.llmIntermediateSize)
        try check("llm_config.vocab_size", l.vocabSize, L.vocabSize)
        try check("llm_config.max_position_embeddings", l.maxPositionEmbeddings, L.maxPositionEmbeddings)
        if l.hiddenSize % l.numAttentionHeads != 0 {
            throw bad("llm_config.hidden_size \(l.hiddenSize) is not divisible by llm_config.num_attention_heads \(l.numAttentionHeads)")
        }
        if l.numAttentionHeads % l.numKeyValueHeads != 0 {
            throw bad("llm_config.num_attention_heads \(l.numAttentionHeads) is not a multiple of llm_config.num_key_value_heads \(l.numKeyValueHeads)")
        }
        try check("llm_config.hidden_size / num_attention_heads (the head size)", l.headDim, L.headDim)
        if l.headDim % 2 != 0 { throw bad("the attention head size \(l.headDim) must be even for RoPE") }
        try check("llm_config.rms_norm_eps", l.rmsNormEps, above: L.eps.lowerBound, upTo: L.eps.upperBound)
        try check("llm_config.rope_theta", l.ropeTheta, above: L.ropeTheta.lowerBound, upTo: L.ropeTheta.upperBound)
        if let rs = l.ropeScaling {
            switch rs.type {
            case "dynamic", "linear":
                guard let f = rs.factor, f.isFinite, L.ropeScalingFactor.contains(f) else {
                    throw bad("llm_config.rope_scaling.factor must be between 1 and \(Int(L.ropeScalingFactor.upperBound)), got \(rs.factor.map { "\($0)" } ?? "none")")
                }
            case "su", "longrope":
                for (key, f) in [("short_factor", rs.shortFactor), ("long_factor", rs.longFactor)] {
                    guard let f, f.count == l.headDim / 2, f.allSatisfy({ $0.isFinite && $0 > 0 && $0 <= 1e6 }) else {
                        throw bad("llm_config.rope_scaling.\(key) must be \(l.headDim / 2) positive numbers (head size / 2)")
                    }
                }
                guard let o = l.originalMaxPositionEmbeddings, (1...l.maxPositionEmbeddings).contains(o) else {
                    throw bad("llm_config.original_max_position_embeddings must be from 1 to max_position_embeddings \(l.maxPositionEmbeddings) with rope_scaling \(rs.type)")
                }
            default:
                throw bad("llm_config.rope_scaling.type \"\(rs.type)\" is not supported (dynamic, linear, su or longrope)")
            }
        }
        if let act = l.hiddenAct, act != "silu" {
            throw bad("llm_config.hidden_act \"\(act)\" is not supported (silu)")
        }
        if l.architecture == .internLM2, l.bias == true {
            throw bad("llm_config.bias true (biases on InternLM2's attention) is not supported")
        }
        if l.architecture == .qwen2, l.useSlidingWindow == true, let w = l.slidingWindow, w < l.maxPositionEmbeddings {
            throw bad("llm_config.use_sliding_window with sliding_window \(w) below max_position_embeddings \(l.maxPositionEmbeddings) is not supported")
        }
        if l.architecture == .phi3, let w = l.slidingWindow, w < l.maxPositionEmbeddings {
            throw bad("llm_config.sliding_window \(w) below max_position_embeddings \(l.maxPositionEmbeddings) is not supported (Phi-3 4k checkpoints; the InternVL ones use 128k Phi-3)")
        }
        for (key, id) in [("llm_config.bos_token_id", l.bosTokenId), ("llm_config.eos_token_id", l.eosTokenId)] {
            if let id, !(0..<l.vocabSize).contains(id) {
                throw bad("\(key) must be a token id from 0 to \(l.vocabSize - 1) (vocab_size - 1), got \(id)")
            }
        }

        try check("vision_config.hidden_size", v.hiddenSize, L.visionHiddenSize)
        try check("vision_config.num_hidden_layers", v.numHiddenLayers, L.visionLayers)
        try check("vision_config.num_attention_heads", v.numAttentionHeads, L.visionHeads)
        try check("vision_config.intermediate_size", v.intermediateSize, L.visionIntermediateSize)
        try check("vision_config.image_size", v.imageSize, L.imageSize)
        try check("vision_config.patch_size", v.patchSize, 1...v.imageSize)
        if v.hiddenSize % v.numAttentionHeads != 0 {
            throw bad("vision_config.hidden_size \(v.hiddenSize) is not divisible by vision_config.num_attention_heads \(v.numAttentionHeads)")
        }
        if v.imageSize % v.patchSize != 0 {
            throw bad("vision_config.image_size \(v.imageSize) is not a multiple of vision_config.patch_size \(v.patchSize)")
        }
        if v.normType != "layer_norm" { throw bad("vision_config.norm_type \(v.normType) is not supported (layer_norm)") }
        if v.qkNormalization { throw bad("vision_config.qk_normalization true is not supported") }
        if let act = v.hiddenAct, act != "gelu" {
            throw bad("vision_config.hidden_act \"\(act)\" is not supported (gelu)")
        }
        if let c = v.numChannels, c != 3 { throw bad("vision_config.num_channels must be 3 (RGB), got \(c)") }
        try check("vision_config.layer_norm_eps", v.layerNormEps, above: L.eps.lowerBound, upTo: L.eps.upperBound)
        if let f = forceImageSize { try check("force_image_size", f, L.imageSize) }

        let grid = v.imageSize / v.patchSize
        guard downsampleRatio.isFinite, downsampleRatio > 0, downsampleRatio <= 1 else {
            throw bad("downsample_ratio must be above 0 and at most 1, got \(downsampleRatio)")
        }
        guard downsampleRatio >= 1 / Double(grid) else {
            throw bad("downsample_ratio must be at least 1/\(grid) (one token per \(grid)x\(grid) patch grid), got \(downsampleRatio)")
        }
        let scale = Int((1 / downsampleRatio).rounded())
        guard abs(1 / Double(scale) - downsampleRatio) < 1e-9, grid % scale == 0 else {
            throw bad("downsample_ratio \(downsampleRatio) must be 1/k for a k dividing the \(grid)x\(grid) patch grid (0.5 for 448/14)")
        }
        let n = v.numHiddenLayers
        try check("select_layer", selectLayer, -(n + 1)...n)
        try check("min_dynamic_patch", minDynamicPatch, L.dynamicPatches)
        guard maxDynamicPatch >= minDynamicPatch else {
            throw bad("max_dynamic_patch (\(maxDynamicPatch)) is below min_dynamic_patch (\(minDynamicPatch))")
        }
        try check("max_dynamic_patch", maxDynamicPatch, minDynamicPatch...L.dynamicPatches.upperBound)
    }

    /// 1 / `downsample_ratio`: how many patches per side fold into one vision token (valid after `validate`).
    public var downsampleScale: Int { Int((1 / downsampleRatio).rounded()) }
}

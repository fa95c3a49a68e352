import Foundation

/// `config.json` of an InternVL chat checkpoint (InternVLChatConfig), every key the engine uses.
public struct ModelConfiguration: Codable, Sendable, Equatable {
    public var template: String
    public var downsampleRatio: Double
    public var psVersion: String
    public var selectLayer: Int
    public var forceImageSize: Int?
    public var maxDynamicPatch: Int
    public var minDynamicPatch: Int
    public var useThumbnail: Bool
    public var dynamicImageSize: Bool
    public var visionConfig: VisionConfiguration
    public var llmConfig: LLMConfiguration

    enum CodingKeys: String, CodingKey {
        case template
        case downsampleRatio = "downsample_ratio"
        case psVersion = "ps_version"
        case selectLayer = "select_layer"
        case forceImageSize = "force_image_size"
        case maxDynamicPatch = "max_dynamic_patch"
        case minDynamicPatch = "min_dynamic_patch"
        case useThumbnail = "use_thumbnail"
        case dynamicImageSize = "dynamic_image_size"
        case visionConfig = "vision_config"
        case llmConfig = "llm_config"
    }

    /// Tile side in pixels: `force_image_size`, else the vision tower's `image_size`.
    public var imageSize: Int { forceImageSize ?? visionConfig.imageSize }
}

/// `vision_config` (InternVisionConfig).
public struct VisionConfiguration: Codable, Sendable, Equatable {
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var intermediateSize: Int
    public var patchSize: Int
    public var imageSize: Int
    public var layerNormEps: Double
    public var qkvBias: Bool
    public var qkNormalization: Bool
    public var normType: String
    public var numChannels: Int?

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size"
        case patchSize = "patch_size"
        case imageSize = "image_size"
        case layerNormEps = "layer_norm_eps"
        case qkvBias = "qkv_bias"
        case qkNormalization = "qk_normalization"
        case normType = "norm_type"
        case numChannels = "num_channels"
    }
}

/// `llm_config` (InternLM2Config).
public struct LLMConfiguration: Codable, Sendable, Equatable {
    public struct RopeScaling: Codable, Sendable, Equatable {
        public var type: String
        public var factor: Double
    }

    public var architectures: [String]
    public var hiddenSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var intermediateSize: Int
    public var vocabSize: Int
    public var rmsNormEps: Double
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool?
    public var bosTokenId: Int?
    public var eosTokenId: Int?

    enum CodingKeys: String, CodingKey {
        case architectures
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case intermediateSize = "intermediate_size"
        case vocabSize = "vocab_size"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case maxPositionEmbeddings = "max_position_embeddings"
        case tieWordEmbeddings = "tie_word_embeddings"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
    }

    public var headDim: Int { hiddenSize / numAttentionHeads }
}

extension ModelConfiguration {
    public static let supportedArchitectures = ["InternLM2ForCausalLM"]

    /// Reads and checks `config.json`; every failure names the file and the key.
    public static func load(from url: URL) throws -> ModelConfiguration {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else {
            throw CheckpointError.fileMissing(path, what: "config.json")
        }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw CheckpointError.unreadable(path, reason: error.localizedDescription)
        }
        let config: ModelConfiguration
        do {
            config = try JSONDecoder().decode(ModelConfiguration.self, from: data)
        } catch let e as DecodingError {
            throw CheckpointError.malformedConfig(path, reason: describe(e))
        } catch {
            throw CheckpointError.malformedConfig(path, reason: "not JSON")
        }
        guard config.llmConfig.architectures.contains(where: supportedArchitectures.contains) else {
            throw CheckpointError.unsupportedModel(path, architectures: config.llmConfig.architectures)
        }
        try config.validate(path: path)
        return config
    }

    func validate(path: String) throws {
        let l = llmConfig, v = visionConfig
        func bad(_ s: String) -> CheckpointError { .malformedConfig(path, reason: s) }
        let positive = [("llm_config.hidden_size", l.hiddenSize), ("llm_config.num_hidden_layers", l.numHiddenLayers),
                        ("llm_config.num_attention_heads", l.numAttentionHeads),
                        ("llm_config.num_key_value_heads", l.numKeyValueHeads),
                        ("llm_config.intermediate_size", l.intermediateSize), ("llm_config.vocab_size", l.vocabSize),
                        ("llm_config.max_position_embeddings", l.maxPositionEmbeddings),
                        ("vision_config.hidden_size", v.hiddenSize), ("vision_config.num_attention_heads", v.numAttentionHeads),
                        ("vision_config.patch_size", v.patchSize), ("vision_config.image_size", v.imageSize)]
        for (k, x) in positive where x <= 0 { throw bad("\(k) must be positive, got \(x)") }
        if l.hiddenSize % l.numAttentionHeads != 0 { throw bad("llm_config.hidden_size is not divisible by num_attention_heads") }
        if l.numAttentionHeads % l.numKeyValueHeads != 0 {
            throw bad("llm_config.num_attention_heads is not a multiple of num_key_value_heads")
        }
        if l.headDim % 2 != 0 { throw bad("the attention head size must be even for RoPE") }
        if let rs = l.ropeScaling, !["dynamic", "linear"].contains(rs.type) {
            throw bad("llm_config.rope_scaling.type \"\(rs.type)\" is not supported (dynamic or linear)")
        }
        if template != "internlm2-chat" { throw bad("template \"\(template)\" is not supported (internlm2-chat)") }
        if !["v1", "v2"].contains(psVersion) { throw bad("ps_version must be v1 or v2, got \(psVersion)") }
        if minDynamicPatch < 1 || maxDynamicPatch < minDynamicPatch {
            throw bad("min_dynamic_patch/max_dynamic_patch must satisfy 1 <= min <= max")
        }
        if v.imageSize % v.patchSize != 0 { throw bad("vision_config.image_size is not a multiple of patch_size") }
    }
}

/// "missing key llm_config.hidden_size", "llm_config.rope_theta: expected a number" ...
func describe(_ e: DecodingError) -> String {
    func path(_ p: [CodingKey]) -> String { p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".") }
    switch e {
    case .keyNotFound(let k, let ctx):
        let p = path(ctx.codingPath + [k])
        return "missing key \(p)"
    case .typeMismatch(let t, let ctx):
        return "\(path(ctx.codingPath)): expected \(t)"
    case .valueNotFound(let t, let ctx):
        return "\(path(ctx.codingPath)): expected \(t), found null"
    case .dataCorrupted(let ctx):
        return ctx.codingPath.isEmpty ? "not valid JSON" : "\(path(ctx.codingPath)): \(ctx.debugDescription)"
    @unknown default:
        return "unreadable"
    }
}

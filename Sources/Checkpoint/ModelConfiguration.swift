import FileInput
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

    /// Vision tokens per tile after pixel shuffle (num_image_token).
    public var tokensPerTile: Int {
        let side = imageSize / visionConfig.patchSize, s = Int((1 / downsampleRatio).rounded())
        return (side / s) * (side / s)
    }
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
    /// The MLP's activation (InternViT: exact GELU).
    public var hiddenAct: String?

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
        case hiddenAct = "hidden_act"
    }
}

/// `llm_config` (InternLM2Config, Qwen2Config, Phi3Config: the keys they share).
public struct LLMConfiguration: Codable, Sendable, Equatable {
    /// `rope_scaling`: InternLM2's `dynamic` / `linear` with a `factor`, or Phi-3's `su` /
    /// `longrope` with per-frequency `short_factor` and `long_factor`.
    public struct RopeScaling: Codable, Sendable, Equatable {
        public var type: String
        public var factor: Double?
        public var shortFactor: [Double]?
        public var longFactor: [Double]?

        enum CodingKeys: String, CodingKey {
            case type, factor
            case shortFactor = "short_factor"
            case longFactor = "long_factor"
        }

        /// Phi-3's long-context scaling, whose factors are chosen by the sequence length.
        public var isLongRope: Bool { type == "su" || type == "longrope" }
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
    /// Phi-3: the context length trained without scaling; longer sequences take the long factors.
    public var originalMaxPositionEmbeddings: Int?
    /// Phi-3: the attention window of its eager attention (keys further back are masked).
    public var slidingWindow: Int?
    public var tieWordEmbeddings: Bool?
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    /// The MLP's activation (every family here: SiLU).
    public var hiddenAct: String?
    /// InternLM2: biases on the attention projections (no InternVL checkpoint has them).
    public var bias: Bool?
    /// Qwen2: whether attention is windowed to `sliding_window` (off in every InternVL checkpoint).
    public var useSlidingWindow: Bool?

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
        case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        case slidingWindow = "sliding_window"
        case tieWordEmbeddings = "tie_word_embeddings"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case hiddenAct = "hidden_act"
        case bias
        case useSlidingWindow = "use_sliding_window"
    }

    public var headDim: Int { hiddenSize / numAttentionHeads }

    /// The first of `architectures` this engine knows (nil: none; `load` refuses such a file).
    public var architecture: LLMArchitecture? { architectures.lazy.compactMap(LLMArchitecture.init(rawValue:)).first }
}

/// The language-model architectures config.json may name in `llm_config.architectures`, each run
/// by one model family in the Model target. A new family adds its case here and its file there.
public enum LLMArchitecture: String, CaseIterable, Sendable {
    case internLM2 = "InternLM2ForCausalLM"
    case qwen2 = "Qwen2ForCausalLM"
    case phi3 = "Phi3ForCausalLM"
}

extension ModelConfiguration {
    public static var supportedArchitectures: [String] { LLMArchitecture.allCases.map(\.rawValue) }
    /// config.json files larger than this are refused before they are read (the real one is 2 KB).
    public static let maxFileBytes = 16 << 20

    /// Reads and checks `config.json`; every failure names the file and the key.
    public static func load(from url: URL) throws -> ModelConfiguration {
        let path = url.path
        let data: Data
        do { data = Data(try FileInput.read(path, limit: maxFileBytes)) } catch {
            if error == .missing { throw CheckpointError.fileMissing(path, what: "config.json") }
            throw CheckpointError.unreadable(path, reason: error.reason)
        }
        if let key = DuplicateJSONKeys.first(in: [UInt8](data)) {
            throw CheckpointError.malformedConfig(path, reason: "the key \(key) is written twice (a reader keeps one of the values, which one depends on the reader)")
        }
        let config: ModelConfiguration
        do {
            config = try JSONDecoder().decode(ModelConfiguration.self, from: data)
        } catch let e as DecodingError {
            throw CheckpointError.malformedConfig(path, reason: nonInteger(in: data) ?? describe(e))
        } catch {
            throw CheckpointError.malformedConfig(path, reason: "not JSON")
        }
        guard config.llmConfig.architecture != nil else {
            throw CheckpointError.unsupportedModel(path, architectures: config.llmConfig.architectures)
        }
        try config.validate(path: path)
        return config
    }
}

/// Foundation's decoder reports a number that is not an integer where one is expected (2.5,
/// 1e30) as "not valid JSON" without the key; this names it.
func nonInteger(in data: Data) -> String? {
    guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
    let keys: [(String?, [String])] = [
        (nil, ["select_layer", "force_image_size", "max_dynamic_patch", "min_dynamic_patch"]),
        ("llm_config", ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
                        "vocab_size", "max_position_embeddings", "bos_token_id", "eos_token_id"]),
        ("vision_config", ["hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "patch_size",
                           "image_size", "num_channels"]),
    ]
    for (section, names) in keys {
        guard let dict = section.map({ obj[$0] as? [String: Any] }) ?? obj else { continue }
        for name in names {
            guard let v = dict[name], v is NSNumber, !(v is Bool), (v as? Int) == nil else { continue }
            let key = section.map { $0 + "." + name } ?? name
            return "\(key) must be an integer, got \(v)"
        }
    }
    return nil
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

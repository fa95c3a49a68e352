import Checkpoint
import Foundation

/// The networks of one checkpoint: a language model and the vision encoder (with its projector)
/// that feeds it.
public struct LoadedNetworks: Sendable {
    public let language: any LanguageModel
    public let vision: any VisionEncoder
}

/// Which model family runs a checkpoint, keyed by config.json's `llm_config.architectures`
/// (`LLMArchitecture`). A decoder family differing only in tensor names and q/k/v packing is a
/// `DecoderFamily` case; another architecture adds its file beside DecoderModel.swift.
public enum ModelFamily {
    /// The tensors the checkpoint for `config` must hold, with their shapes.
    public static func expectedTensors(_ config: ModelConfiguration) throws -> [String: [Int]] {
        var s = InternVision.expectedTensors(config)
        let family = DecoderFamily(try architecture(config))
        s.merge(DecoderModel.expectedTensors(config.llmConfig, family: family, prefix: "language_model.")) { $1 }
        return s
    }

    /// The checkpoint's networks over `weights`, which are checked against `expectedTensors` first.
    public static func load(_ weights: CheckpointWeights, config: ModelConfiguration) throws -> LoadedNetworks {
        try weights.check(expected: expectedTensors(config))
        let language = try DecoderModel(weights: weights, config: config.llmConfig, family: DecoderFamily(try architecture(config)))
        return LoadedNetworks(language: language, vision: try InternVision(weights: weights, config: config))
    }

    static func architecture(_ config: ModelConfiguration) throws -> LLMArchitecture {
        guard let a = config.llmConfig.architecture else {
            throw CheckpointError.unsupportedModel("config.json", architectures: config.llmConfig.architectures)
        }
        return a
    }
}

extension CheckpointWeights {
    /// The weights of `folder`, checked against the tensors `config`'s model family needs.
    public convenience init(folder: URL, config: ModelConfiguration) throws {
        try self.init(folder: folder)
        try check(expected: ModelFamily.expectedTensors(config))
    }
}

import ChatAPI
import Imaging

/// What an image costs the remote model, computed here because an OpenAI-compatible server does
/// not say: its tiling rule (InternVL's dynamic tiling) and the tokens a tile becomes. Known when
/// the model's config is given (`--model` beside `--endpoint`) or the served model's name is one
/// we know; otherwise tiles and token costs are hidden.
public struct ImageCosting: Sendable, Equatable {
    /// The rule with the config's default most tiles (`max_dynamic_patch`).
    public var tiling: TilingOptions
    public var tokensPerTile: Int

    public init(tiling: TilingOptions, tokensPerTile: Int) {
        self.tiling = tiling; self.tokensPerTile = tokensPerTile
    }

    /// The rule for an image attached with at most `maxTiles` tiles (nil: the config's).
    public func tiling(maxTiles: Int?) -> TilingOptions {
        var t = tiling
        if t.maxTiles > 1 || t.minTiles > 1, let m = maxTiles { t.maxTiles = max(m, t.minTiles) }
        return t
    }

    /// Mini-InternVL-Chat-2B-V1-5's config.json: 448-pixel tiles, 1 to 12 of them plus a
    /// thumbnail, (448 / 14)^2 x 0.5^2 = 256 tokens a tile.
    public static let miniInternVL2B = ImageCosting(tiling: TilingOptions(tileSize: 448, minTiles: 1, maxTiles: 12, useThumbnail: true),
                                                    tokensPerTile: 256)

    /// The costing of a served model known by name (`OpenGVLab/Mini-InternVL-Chat-2B-V1-5`, or a
    /// path ending in that folder name, as vLLM and LMDeploy report what they were started with).
    public static func known(modelName: String) -> ImageCosting? {
        let last = modelName.split(separator: "/").last.map { String($0).lowercased() } ?? ""
        return last == "mini-internvl-chat-2b-v1-5" ? miniInternVL2B : nil
    }
}

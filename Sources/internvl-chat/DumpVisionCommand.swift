import ArgumentParser
import Chat
import ChatAPI
import Conversations
import Foundation
import Imaging

/// Developer tool for parity checks against PyTorch: writes what the vision path computes for
/// one image, as raw little-endian float32 files plus a JSON description.
struct DumpVisionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-vision",
        abstract: "Write the preprocessed pixels and the vision tokens of one image to files (for parity checks).",
        discussion: """
        OUT.pixels.f32: [tiles, 3, S, S] float32, the tensor load_image() gives.
        OUT.tokens.f32: [tiles * tokens_per_tile, llm_hidden] float32, extract_feature()'s output.
        OUT.json: shapes, tile grid, tiles.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Most tiles (default: max_dynamic_patch).") var maxTiles: Int?
    @Option(help: "Output path prefix.") var out: String
    @Flag(help: "Replace existing output files (without it, the command stops with an error and writes nothing).") var force = false
    @Argument(help: "The image.") var image: String

    func validate() throws {
        if let problem = DynamicTiling.checkMaxTiles(maxTiles, option: "--max-tiles") { throw ValidationError(problem) }
    }

    func run() throws {
        try reportingErrors {
            let (pixelsFile, tokensFile, metaFile) = (URL(fileURLWithPath: out + ".pixels.f32"), URL(fileURLWithPath: out + ".tokens.f32"),
                                                      URL(fileURLWithPath: out + ".json"))
            // As export: checked before the work, each file written whole or not at all.
            for url in [pixelsFile, tokensFile, metaFile] { try OutputFile.refuseExisting(url, overwrite: force) }
            let engine = try ChatEngine(folder: try modelOptions.locate())
            let p = try engine.prepareImage(path: image, maxTiles: maxTiles)
            let tokens = engine.encodeImage(p)
            try OutputFile.write(p.pixels.withUnsafeBufferPointer { Data(buffer: $0) }, to: pixelsFile)
            try OutputFile.write(tokens.withUnsafeBufferPointer { Data(buffer: $0) }, to: tokensFile)
            let meta: [String: Any] = [
                "image": image, "width": p.width, "height": p.height, "grid": [p.grid.cols, p.grid.rows],
                "tiles": p.tiles, "pixels_shape": [p.tiles, 3, p.tileSize, p.tileSize],
                "tokens_shape": [p.tiles * engine.vision.tokensPerTile, engine.vision.outputSize],
            ]
            try OutputFile.write(try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys, .prettyPrinted]), to: metaFile)
            let shown = TerminalText.line(out)
            Output.write("wrote \(shown).pixels.f32, \(shown).tokens.f32, \(shown).json\n")
        }
    }
}

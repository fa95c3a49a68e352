import ArgumentParser
import Chat
import ChatAPI
import Foundation

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
    @Argument(help: "The image.") var image: String

    func run() throws {
        try reportingErrors {
            let engine = try ChatEngine(folder: try modelOptions.locate())
            let p = try engine.prepareImage(path: image, maxTiles: maxTiles)
            let tokens = engine.encodeImage(p)
            try write(p.pixels, to: out + ".pixels.f32")
            try write(tokens, to: out + ".tokens.f32")
            let meta: [String: Any] = [
                "image": image, "width": p.width, "height": p.height, "grid": [p.grid.cols, p.grid.rows],
                "tiles": p.tiles, "pixels_shape": [p.tiles, 3, p.tileSize, p.tileSize],
                "tokens_shape": [p.tiles * engine.vision.tokensPerTile, engine.vision.outputSize],
            ]
            try JSONSerialization.data(withJSONObject: meta, options: [.sortedKeys, .prettyPrinted])
                .write(to: URL(fileURLWithPath: out + ".json"))
            let shown = TerminalText.line(out)
            Output.write("wrote \(shown).pixels.f32, \(shown).tokens.f32, \(shown).json\n")
        }
    }

    func write(_ values: [Float], to path: String) throws {
        let data = values.withUnsafeBufferPointer { Data(buffer: $0) }
        do { try data.write(to: URL(fileURLWithPath: path)) } catch {
            throw ValidationError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}

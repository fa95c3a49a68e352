import Checkpoint
import Foundation
import Imaging
import Testing
import TestSupport
@testable import Model

/// Preprocessing and InternViT + pixel shuffle + mlp1 against Tests/reference/vision_ref.py
/// (tiny-a: ps_version v1; tiny-b: v2; tiny-c: select_layer -2 of 3 layers).
struct InternVisionReferenceTests {
    static func floats(_ url: URL) throws -> [Float] {
        let d = try Data(contentsOf: url)
        return d.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    static let images = ["photo-chelsea.png", "photo-camera.png", "jpeg-base-420-67x45.jpg", "photo-rocket.jpg"]

    @Test(arguments: TestData.tinyModels)
    func pixelsAndVisionTokensMatchReference(model name: String) throws {
        let dir = TestData.url(name)
        let config = try ModelConfiguration.load(from: dir.appendingPathComponent("config.json"))
        let vision = try InternVision(weights: try CheckpointWeights(folder: dir, config: config), config: config)
        let options = TilingOptions(tileSize: config.imageSize, minTiles: config.minDynamicPatch,
                                    maxTiles: config.maxDynamicPatch, useThumbnail: config.useThumbnail)
        for image in Self.images {
            let prepared = try ImagePreprocessor.prepare(path: TestData.url("images/" + image).path, options: options)
            let wantPixels = try Self.floats(dir.appendingPathComponent("vision-\(image).pixels.f32"))
            #expect(prepared.pixels.count == wantPixels.count, "\(name) \(image): tile count")
            let pixelErr = zip(prepared.pixels, wantPixels).map { abs($0 - $1) }.max() ?? 1
            #expect(pixelErr <= 1e-6, "\(name) \(image): pixel error \(pixelErr)")
            let tokens = vision.encode(pixels: prepared.pixels, tiles: prepared.tiles)
            let want = try Self.floats(dir.appendingPathComponent("vision-\(image).tokens.f32"))
            #expect(tokens.count == want.count && tokens.count == prepared.tiles * vision.tokensPerTile * vision.outputSize)
            let num = zip(tokens, want).map { abs(Double($0) - Double($1)) }.max() ?? 1
            let den = want.map { abs(Double($0)) }.max() ?? 1
            #expect(num / den < 1e-4, "\(name) \(image): vision tokens relative error \(num / den)")
        }
    }
}

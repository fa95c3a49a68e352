/// One image made ready for the vision encoder, as the model card's load_image does:
/// decode, dynamic tiles (+ thumbnail), then ToTensor and ImageNet Normalize in float32.
public struct PreparedImage: Sendable {
    public let width: Int
    public let height: Int
    public let grid: (cols: Int, rows: Int)
    public let tiles: Int
    public let tileSize: Int
    /// `[tiles, 3, tileSize, tileSize]`, channel planes, rows top to bottom.
    public let pixels: [Float]
}

public enum ImagePreprocessor {
    public static let mean: [Float] = [0.485, 0.456, 0.406]
    public static let std: [Float] = [0.229, 0.224, 0.225]

    public static func prepare(path: String, options: TilingOptions) throws -> PreparedImage {
        prepare(try ImageDecoder.decode(path: path), options: options)
    }

    public static func prepare(_ image: RGBImage, options: TilingOptions) -> PreparedImage {
        let tiles = DynamicTiling.tiles(of: image, options: options)
        let s = options.tileSize
        var px = [Float](repeating: 0, count: tiles.count * 3 * s * s)
        for (t, tile) in tiles.enumerated() {
            for i in 0..<(s * s) {
                for c in 0..<3 {
                    // torchvision: img.float().div(255), then (x - mean) / std, all in float32.
                    px[(t * 3 + c) * s * s + i] = (Float(tile.pixels[i * 3 + c]) / 255 - mean[c]) / std[c]
                }
            }
        }
        return PreparedImage(width: image.width, height: image.height,
                             grid: DynamicTiling.grid(width: image.width, height: image.height, options: options),
                             tiles: tiles.count, tileSize: s, pixels: px)
    }
}

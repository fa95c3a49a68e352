/// An 8-bit RGB image, rows top to bottom, pixels interleaved `R G B`.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "pixel buffer does not match the size")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The rectangle at (x, y) of size w x h (Pillow's crop within bounds).
    public func crop(x: Int, y: Int, width w: Int, height h: Int) -> RGBImage {
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for r in 0..<h {
            let src = ((y + r) * width + x) * 3
            out.replaceSubrange((r * w * 3)..<((r + 1) * w * 3), with: pixels[src..<(src + w * 3)])
        }
        return RGBImage(width: w, height: h, pixels: out)
    }
}

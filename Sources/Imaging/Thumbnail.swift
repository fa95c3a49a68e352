extension RGBImage {
    /// A copy that fits `side` x `side`, aspect kept (never enlarged): averaged down by an integer
    /// factor first, then Pillow's bicubic for the last step, so a 24-megapixel photo costs
    /// milliseconds rather than a full-width bicubic pass.
    public func thumbnail(fitting side: Int) -> RGBImage {
        let scale = min(1, Double(side) / Double(max(width, height)))
        let w = max(1, Int((Double(width) * scale).rounded())), h = max(1, Int((Double(height) * scale).rounded()))
        return resized(toWidth: w, height: h)
    }

    /// Exactly `w` x `h`: box-averaged by the largest integer factor that keeps at least twice
    /// the target, then bicubic.
    public func resized(toWidth w: Int, height h: Int) -> RGBImage {
        let f = max(1, min(width / max(2 * w, 1), height / max(2 * h, 1)))
        let reduced = f > 1 ? boxReduced(by: f) : self
        return PillowResize.resize(reduced, width: w, height: h)
    }

    /// Each `f` x `f` block averaged into one pixel (edge pixels beyond a whole block dropped).
    func boxReduced(by f: Int) -> RGBImage {
        let ow = width / f, oh = height / f
        var out = [UInt8](repeating: 0, count: ow * oh * 3)
        var acc = [Int](repeating: 0, count: ow * 3)
        let area = f * f
        pixels.withUnsafeBufferPointer { src in
            for oy in 0..<oh {
                for i in acc.indices { acc[i] = 0 }
                for y in (oy * f)..<(oy * f + f) {
                    let row = y * width * 3
                    for ox in 0..<ow {
                        var r = 0, g = 0, b = 0
                        var p = row + ox * f * 3
                        for _ in 0..<f { r += Int(src[p]); g += Int(src[p + 1]); b += Int(src[p + 2]); p += 3 }
                        acc[ox * 3] += r; acc[ox * 3 + 1] += g; acc[ox * 3 + 2] += b
                    }
                }
                for i in 0..<(ow * 3) { out[oy * ow * 3 + i] = UInt8((acc[i] + area / 2) / area) }
            }
        }
        return RGBImage(width: ow, height: oh, pixels: out)
    }
}

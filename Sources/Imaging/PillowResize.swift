import Foundation

/// `Image.resize(size, Image.BICUBIC)` of Pillow (13) for 8-bit RGB, reproduced bit for bit:
/// the convolution coefficients of precompute_coeffs (support 2 x scale when shrinking, which
/// is Pillow's antialiasing), normalised and rounded to 22-bit fixed point, a horizontal pass
/// over the rows the vertical pass needs, then a vertical pass, each rounding to 8 bits.
public enum PillowResize {
    static let precisionBits = 32 - 8 - 2

    /// Pillow's bicubic kernel (a = -0.5).
    static func bicubic(_ v: Double) -> Double {
        let a = -0.5
        let x = abs(v)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// Per output pixel: first input index, count, and `ksize` fixed-point weights.
    struct Coefficients {
        var ksize: Int
        var bounds: [(min: Int, count: Int)]
        var weights: [Int32]
    }

    static func coefficients(inSize: Int, outSize: Int) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 2.0 * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var bounds: [(Int, Int)] = []
        bounds.reserveCapacity(outSize)
        var weights = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            let ss = 1.0 / filterScale
            // Pillow truncates toward zero after adding 0.5 (C's (int) cast).
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var ww = 0.0
            for x in 0..<xmax {
                let w = bicubic((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<ksize {
                var w = x < xmax ? k[x] : 0
                if x < xmax && ww != 0 { w /= ww }
                let f = w * Double(1 << precisionBits)
                weights[xx * ksize + x] = Int32(w < 0 ? (-0.5 + f).rounded(.towardZero) : (0.5 + f).rounded(.towardZero))
            }
            bounds.append((xmin, max(xmax, 0)))
        }
        return Coefficients(ksize: ksize, bounds: bounds.map { (min: $0.0, count: $0.1) }, weights: weights)
    }

    @inline(__always)
    static func clip8(_ v: Int32) -> UInt8 {
        let s = v >> Int32(precisionBits)      // arithmetic shift: floor, as Pillow's lookup
        return s < 0 ? 0 : (s > 255 ? 255 : UInt8(s))
    }

    /// The resized image. Same size returns the input unchanged (Pillow returns a copy).
    ///
    /// Pass order as Pillow 13.0 (ImagingResampleInner): horizontal first over only the source
    /// rows the vertical pass reads, except when the height loses more than twice as many
    /// pixels as the width, where the vertical pass runs first. Pillow 12 and older always went
    /// horizontal first; the two orders differ by at most 1 in some values.
    public static func resize(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        precondition(width > 0 && height > 0)
        if width == image.width && height == image.height { return image }
        let needH = width != image.width, needV = height != image.height
        let vert = coefficients(inSize: image.height, outSize: height)
        let dh = image.height - height, dw = image.width - width
        let horizontalFirst = !(dh > 0 && dh > dw * 2)
        if horizontalFirst {
            var pixels = image.pixels
            var bounds = vert.bounds
            if needH {
                let first = vert.bounds[0].min
                let last = vert.bounds[height - 1].min + vert.bounds[height - 1].count
                for i in bounds.indices { bounds[i].min -= first }
                pixels = horizontalPass(image.pixels, inWidth: image.width, rows: first..<last, width: width)
            }
            if !needV { return RGBImage(width: width, height: height, pixels: pixels) }
            return RGBImage(width: width, height: height,
                            pixels: verticalPass(pixels, width: width, coefficients: vert, bounds: bounds, height: height))
        }
        let tall = verticalPass(image.pixels, width: image.width, coefficients: vert, bounds: vert.bounds, height: height)
        if !needH { return RGBImage(width: width, height: height, pixels: tall) }
        return RGBImage(width: width, height: height,
                        pixels: horizontalPass(tall, inWidth: image.width, rows: 0..<height, width: width))
    }

    /// Rows `rows` of `src` (`inWidth` wide) resampled to `width` columns.
    static func horizontalPass(_ src: [UInt8], inWidth: Int, rows: Range<Int>, width: Int) -> [UInt8] {
        let c = coefficients(inSize: inWidth, outSize: width)
        var out = [UInt8](repeating: 0, count: width * rows.count * 3)
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { t in
                c.weights.withUnsafeBufferPointer { kk in
                    for (yy, y) in rows.enumerated() {
                        let row = s.baseAddress! + y * inWidth * 3
                        let dst = t.baseAddress! + yy * width * 3
                        for xx in 0..<width {
                            let (xmin, n) = c.bounds[xx]
                            let k = kk.baseAddress! + xx * c.ksize
                            var s0: Int32 = 1 << Int32(precisionBits - 1), s1 = s0, s2 = s0
                            let first = row + xmin &* 3
                            for x in 0..<n {
                                let p = first + x &* 3
                                s0 &+= Int32(p[0]) &* k[x]
                                s1 &+= Int32(p[1]) &* k[x]
                                s2 &+= Int32(p[2]) &* k[x]
                            }
                            dst[xx * 3] = clip8(s0); dst[xx * 3 + 1] = clip8(s1); dst[xx * 3 + 2] = clip8(s2)
                        }
                    }
                }
            }
        }
        return out
    }

    /// `src` (`width` wide) resampled to `height` rows; `bounds` index rows of `src`.
    static func verticalPass(_ src: [UInt8], width: Int, coefficients c: Coefficients,
                             bounds: [(min: Int, count: Int)], height: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let stride = width * 3
        src.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                c.weights.withUnsafeBufferPointer { kk in
                    for yy in 0..<height {
                        let (ymin, n) = bounds[yy]
                        let k = kk.baseAddress! + yy * c.ksize
                        let dst = o.baseAddress! + yy * stride
                        let base = s.baseAddress! + ymin * stride
                        for xx in 0..<stride {
                            var acc: Int32 = 1 << Int32(precisionBits - 1)
                            for y in 0..<n { acc &+= Int32(base[y &* stride &+ xx]) &* k[y] }
                            dst[xx] = clip8(acc)
                        }
                    }
                }
            }
        }
        return out
    }
}

import CSixel
import Foundation
import Imaging

/// Sixel encoding with libsixel: an RGB image to the bytes a terminal draws.
public enum Sixel {
    final class Sink { var bytes: [UInt8] = [] }

    /// The DCS sequence for `image` (256-colour palette), or nil if libsixel fails.
    public static func encode(_ image: RGBImage) -> [UInt8]? {
        let sink = Sink()
        var output: OpaquePointer?
        guard shim_SIXEL_FAILED(sixel_output_new(&output, { data, size, priv in
            let s = Unmanaged<Sink>.fromOpaque(priv!).takeUnretainedValue()
            data!.withMemoryRebound(to: UInt8.self, capacity: Int(size)) {
                s.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: Int(size)))
            }
            return size
        }, Unmanaged.passUnretained(sink).toOpaque(), nil)) == 0 else { return nil }
        defer { sixel_output_unref(output) }
        var dither: OpaquePointer?
        guard shim_SIXEL_FAILED(sixel_dither_new(&dither, 256, nil)) == 0 else { return nil }
        defer { sixel_dither_unref(dither) }
        var px = image.pixels
        guard shim_SIXEL_FAILED(sixel_dither_initialize(dither, &px, Int32(image.width), Int32(image.height),
                                                        Int32(SIXEL_PIXELFORMAT_RGB888), SIXEL_LARGE_AUTO,
                                                        SIXEL_REP_AUTO, SIXEL_QUALITY_AUTO)) == 0,
              shim_SIXEL_FAILED(sixel_encode(&px, Int32(image.width), Int32(image.height), 3, dither, output)) == 0
        else { return nil }
        return sink.bytes
    }

    /// Pixel size for an image fitted into `cols` x `rows` cells of `cw` x `ch` pixels: aspect kept,
    /// height a multiple of 6 (a sixel band) so nothing spills below the rectangle.
    public static func pixelSize(width: Int, height: Int, cols: Int, rows: Int, cw: Int, ch: Int) -> (Int, Int) {
        let bw = cols * cw, bh = rows * ch
        let scale = min(Double(bw) / Double(width), Double(bh) / Double(height))
        let w = max(1, min(bw, Int(Double(width) * scale)))
        var h = max(6, min(bh, Int(Double(height) * scale)))
        h -= h % 6
        return (w, max(h, 6))
    }
}

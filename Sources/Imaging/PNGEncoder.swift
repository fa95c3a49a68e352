import CSpng
import Foundation

/// Lossless PNG encoding through libspng: a video frame kept as an image file that decodes back
/// to the same RGB bytes (attached and saved like any image).
public enum PNGEncoder {
    public static func encode(_ image: RGBImage) -> [UInt8]? {
        guard let ctx = spng_ctx_new(Int32(SPNG_CTX_ENCODER.rawValue)) else { return nil }
        defer { spng_ctx_free(ctx) }
        guard spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1) == 0 else { return nil }
        var ihdr = spng_ihdr()
        ihdr.width = UInt32(image.width)
        ihdr.height = UInt32(image.height)
        ihdr.bit_depth = 8
        ihdr.color_type = UInt8(SPNG_COLOR_TYPE_TRUECOLOR.rawValue)
        guard spng_set_ihdr(ctx, &ihdr) == 0 else { return nil }
        let rc = image.pixels.withUnsafeBytes {
            spng_encode_image(ctx, $0.baseAddress, $0.count, Int32(SPNG_FMT_PNG.rawValue), Int32(SPNG_ENCODE_FINALIZE.rawValue))
        }
        guard rc == 0 else { return nil }
        var size = 0, err: Int32 = 0
        guard let buf = spng_get_png_buffer(ctx, &size, &err), err == 0 else { return nil }
        defer { free(buf) }
        return Array(UnsafeRawBufferPointer(start: buf, count: size).bindMemory(to: UInt8.self))
    }
}

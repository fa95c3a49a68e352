import CSpng
import CTurboJPEG
import CWebP
import FileInput
import Foundation

/// Decodes a file to 8-bit RGB exactly as `PIL.Image.open(path).convert("RGB")` does:
/// - the format comes from the bytes, not the name;
/// - alpha is dropped without compositing, transparency (tRNS) is ignored;
/// - EXIF orientation is not applied;
/// - 16-bit RGB(A) and grey+alpha keep the high byte; 16-bit grey is clipped to 255, as Pillow's
///   I;16 -> RGB conversion does;
/// - CMYK JPEGs and animated WebP are refused;
/// - WebP is decoded to RGBA by libwebp (as Pillow's WebPAnimDecoder does for a still image) and
///   alpha dropped.
/// Images above `maxPixels` are refused from their header, before any pixel memory exists.
public enum ImageDecoder {
    /// Pillow's DecompressionBombError threshold (2 x Image.MAX_IMAGE_PIXELS).
    public static let maxPixels = 178_956_970

    public enum Format: String, Sendable { case jpeg, png, webp }

    public static func format(of bytes: [UInt8]) -> Format? {
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        if bytes.count >= 8, bytes.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if bytes.count >= 12, bytes.prefix(4).elementsEqual(Array("RIFF".utf8)), bytes[8..<12].elementsEqual(Array("WEBP".utf8)) {
            return .webp
        }
        return nil
    }

    /// Image files larger than this are refused before they are read (a 12-megapixel photo is
    /// 3-20 MB; a PNG at `maxPixels` can be larger, but not this large in practice).
    public static let maxFileBytes = 256 << 20

    /// The bytes of the image file at `path`, read once; refuses what is not a regular file and
    /// files above `maxFileBytes` before reading.
    public static func readFile(path: String, limit: Int = ImageDecoder.maxFileBytes) throws -> [UInt8] {
        do { return try FileInput.read(path, limit: limit) } catch {
            switch error {
            case .missing: throw ImagingError.notFound(path)
            case .directory: throw ImagingError.isDirectory(path)
            default: throw ImagingError.unreadable(path, reason: error.reason)
            }
        }
    }

    /// Reads and decodes the file at `path`.
    public static func decode(path: String, maxPixels: Int = ImageDecoder.maxPixels) throws -> RGBImage {
        try decode(bytes: readFile(path: path), name: path, maxPixels: maxPixels)
    }

    /// Decodes bytes; `name` is used in error messages.
    public static func decode(bytes: [UInt8], name: String, maxPixels: Int = ImageDecoder.maxPixels) throws -> RGBImage {
        guard !bytes.isEmpty else { throw ImagingError.empty(name) }
        switch format(of: bytes) {
        case .jpeg: return try decodeJPEG(bytes, name, maxPixels)
        case .png: return try decodePNG(bytes, name, maxPixels)
        case .webp: return try decodeWebP(bytes, name, maxPixels)
        case nil: throw ImagingError.unknownFormat(name)
        }
    }

    static func checkSize(_ w: Int, _ h: Int, _ name: String, _ maxPixels: Int) throws {
        guard w > 0, h > 0 else { throw ImagingError.corrupt(name, reason: "the header gives a size of \(w)x\(h)") }
        let (pixels, overflow) = w.multipliedReportingOverflow(by: h)
        guard !overflow, pixels <= maxPixels else { throw ImagingError.tooLarge(name, width: w, height: h, limit: maxPixels) }
    }

    static func decodeJPEG(_ bytes: [UInt8], _ name: String, _ maxPixels: Int) throws -> RGBImage {
        guard let handle = tjInitDecompress() else { throw ImagingError.unsupported(name, reason: "TurboJPEG failed to start") }
        defer { tjDestroy(handle) }
        var w: Int32 = 0, h: Int32 = 0, subsamp: Int32 = 0, colorspace: Int32 = 0
        let headerOK = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt(bytes.count), &w, &h, &subsamp, &colorspace)
        }
        guard headerOK == 0 else { throw ImagingError.corrupt(name, reason: tjError(handle)) }
        if colorspace == TJCS_CMYK.rawValue || colorspace == TJCS_YCCK.rawValue {
            throw ImagingError.unsupported(name, reason: "CMYK JPEGs are not supported; save it as RGB")
        }
        try checkSize(Int(w), Int(h), name, maxPixels)
        var out = [UInt8](repeating: 0, count: Int(w) * Int(h) * 3)
        // Flags 0: accurate integer IDCT and fancy upsampling, libjpeg's defaults, as Pillow.
        let rc = bytes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, src.baseAddress, UInt(bytes.count), dst.baseAddress, w, 0, h, TJPF_RGB.rawValue, 0)
            }
        }
        // Any warning (a premature end above all) is an error: Pillow refuses truncated files.
        guard rc == 0 else { throw ImagingError.corrupt(name, reason: tjError(handle)) }
        return RGBImage(width: Int(w), height: Int(h), pixels: out)
    }

    static func decodeWebP(_ bytes: [UInt8], _ name: String, _ maxPixels: Int) throws -> RGBImage {
        var features = WebPBitstreamFeatures()
        let status = bytes.withUnsafeBufferPointer { WebPGetFeaturesInternal($0.baseAddress, $0.count, &features, WEBP_DECODER_ABI_VERSION) }
        guard status == VP8_STATUS_OK else { throw ImagingError.corrupt(name, reason: "WebP header status \(status.rawValue)") }
        if features.has_animation != 0 { throw ImagingError.unsupported(name, reason: "animated WebP is not supported; use one frame as PNG") }
        let w = Int(features.width), h = Int(features.height)
        try checkSize(w, h, name, maxPixels)
        var rgba = [UInt8](repeating: 0, count: w * h * 4)
        let ok = bytes.withUnsafeBufferPointer { src in
            rgba.withUnsafeMutableBufferPointer { dst in
                WebPDecodeRGBAInto(src.baseAddress, src.count, dst.baseAddress, dst.count, Int32(w * 4)) != nil
            }
        }
        guard ok else { throw ImagingError.corrupt(name, reason: "libwebp could not decode it") }
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) { out[i * 3] = rgba[i * 4]; out[i * 3 + 1] = rgba[i * 4 + 1]; out[i * 3 + 2] = rgba[i * 4 + 2] }
        return RGBImage(width: w, height: h, pixels: out)
    }

    /// The first column and the column step of an Adam7 pass (0-6).
    static func adam7Columns(pass: Int) -> (first: Int, step: Int) {
        [(0, 8), (4, 8), (0, 4), (2, 4), (0, 2), (1, 2), (0, 1)][pass]
    }

    static func tjError(_ handle: tjhandle) -> String {
        String(cString: tjGetErrorStr2(handle)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func decodePNG(_ bytes: [UInt8], _ name: String, _ maxPixels: Int) throws -> RGBImage {
        // The size from the IHDR chunk itself first: libspng refuses a huge one as corrupt
        // ("arithmetic overflow") before it would tell the size.
        if bytes.count >= 24, bytes[12..<16].elementsEqual("IHDR".utf8) {
            let be = { (i: Int) in bytes[i..<i + 4].reduce(0) { $0 << 8 | Int($1) } }
            try checkSize(be(16), be(20), name, maxPixels)
        }
        guard let ctx = spng_ctx_new(0) else { throw ImagingError.unsupported(name, reason: "libspng failed to start") }
        defer { spng_ctx_free(ctx) }
        func fail(_ rc: Int32) -> ImagingError { .corrupt(name, reason: String(cString: spng_strerror(rc))) }
        var rc = bytes.withUnsafeBufferPointer { spng_set_png_buffer(ctx, $0.baseAddress, $0.count) }
        guard rc == 0 else { throw fail(rc) }
        spng_set_image_limits(ctx, 1 << 30, 1 << 30)
        var ihdr = spng_ihdr()
        rc = spng_get_ihdr(ctx, &ihdr)
        guard rc == 0 else { throw fail(rc) }
        let w = Int(ihdr.width), h = Int(ihdr.height)
        try checkSize(w, h, name, maxPixels)
        let n = w * h
        var out = [UInt8](repeating: 0, count: n * 3)
        if ihdr.bit_depth == 16 {
            // Row by row in host-endian 16-bit RGBA (a whole image of it would be 8 bytes a pixel
            // beside the 3 kept), then Pillow's rules: grey clips, the others take the high byte.
            // An interlaced image's row comes once per pass, holding that pass's pixels in their
            // columns.
            rc = spng_decode_image(ctx, nil, 0, Int32(SPNG_FMT_RGBA16.rawValue), Int32(SPNG_DECODE_PROGRESSIVE.rawValue))
            guard rc == 0 else { throw fail(rc) }
            let grey = ihdr.color_type == UInt8(SPNG_COLOR_TYPE_GRAYSCALE.rawValue)
            let adam7 = ihdr.interlace_method != 0
            var wide = [UInt16](repeating: 0, count: w * 4)
            var info = spng_row_info()
            while true {
                rc = spng_get_row_info(ctx, &info)
                if rc == Int32(SPNG_EOI.rawValue) { break }
                guard rc == 0 else { throw fail(rc) }
                rc = wide.withUnsafeMutableBytes { spng_decode_row(ctx, $0.baseAddress, $0.count) }
                guard rc == 0 || rc == Int32(SPNG_EOI.rawValue) else { throw fail(rc) }
                let (first, step) = adam7 ? Self.adam7Columns(pass: Int(info.pass)) : (0, 1)
                let base = Int(info.row_num) * w * 3
                for x in stride(from: first, to: w, by: step) {
                    for c in 0..<3 {
                        let v = wide[x * 4 + c]
                        out[base + x * 3 + c] = grey ? UInt8(min(v, 255)) : UInt8(v >> 8)
                    }
                }
                if rc != 0 { break }
            }
        } else {
            // Palette, grey of 1-8 bits (scaled), RGB; alpha and tRNS dropped.
            rc = out.withUnsafeMutableBytes { spng_decode_image(ctx, $0.baseAddress, $0.count, Int32(SPNG_FMT_RGB8.rawValue), 0) }
            guard rc == 0 else { throw fail(rc) }
        }
        return RGBImage(width: w, height: h, pixels: out)
    }
}

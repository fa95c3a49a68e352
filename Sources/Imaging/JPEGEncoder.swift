import CTurboJPEG

/// JPEG encoding through TurboJPEG (benchmarks and tests make their inputs with it).
public enum JPEGEncoder {
    public static func encode(_ image: RGBImage, quality: Int = 90) -> [UInt8]? {
        guard let h = tjInitCompress() else { return nil }
        defer { tjDestroy(h) }
        var buf: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let rc = image.pixels.withUnsafeBufferPointer {
            tjCompress2(h, $0.baseAddress, Int32(image.width), 0, Int32(image.height), TJPF_RGB.rawValue, &buf, &size,
                        Int32(TJSAMP_420.rawValue), Int32(quality), 0)
        }
        defer { tjFree(buf) }
        guard rc == 0, let b = buf else { return nil }
        return Array(UnsafeBufferPointer(start: b, count: Int(size)))
    }
}

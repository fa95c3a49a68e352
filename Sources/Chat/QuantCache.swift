import Crypto
import FileInput
import Foundation
import Kernels
import Model

/// Quantized language-model weights kept between runs, so the second start with `--weights
/// int8|q4` maps them instead of quantizing 1.8 B weights again.
///
/// One file per checkpoint and format: `<dir>/<fingerprint>-<format>.bin`, where the fingerprint
/// is a SHA-256 of config.json and, for every safetensors file, its name, size, header and 16
/// samples of 4 KB spread over it. The file is a 4 KiB header (`IVQW`, version, format, payload
/// length, fingerprint, a 64-bit sum of the payload) followed by the payload, mapped read-only,
/// checked, and copied into huge-page memory.
/// A file whose header or sum does not match is rebuilt.
public final class QuantCache: @unchecked Sendable {
    public let directory: URL
    public private(set) var lastEvent = ""

    public init(directory: URL) { self.directory = directory }

    /// `$INTERNVL_CHAT_CACHE`, else `$XDG_CACHE_HOME/internvl-chat/quantized` (`~/.cache/...`).
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let p = environment["INTERNVL_CHAT_CACHE"], !p.isEmpty { return URL(fileURLWithPath: p) }
        let base = environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() as NSString).appendingPathComponent(".cache")
        return URL(fileURLWithPath: base).appendingPathComponent("internvl-chat/quantized")
    }

    static let headerSize = 4096
    static let magic = Array("IVQW".utf8)
    static let version: UInt32 = 5      // 2: the output head in int8 after the layers; 3: q4 blocks grouped by four; 4: q4 super-groups of 32; 5: q4 column groups

    /// The cache file for `folder`'s checkpoint in format `q`.
    public func file(for folder: URL, configSHA256: String, _ q: Quantization) throws -> URL {
        url(try Self.fingerprint(folder, configSHA256: configSHA256), q)
    }

    func url(_ fingerprint: String, _ q: Quantization) -> URL {
        directory.appendingPathComponent("\(fingerprint.prefix(32))-\(q.storageTag).bin")
    }

    /// Quantizes `model` as `q`: from the cache file when it is valid, else computed and written.
    public func quantize(_ model: any LanguageModel, as q: Quantization, folder: URL, configSHA256: String) throws {
        let fp = try Self.fingerprint(folder, configSHA256: configSHA256)
        let url = self.url(fp, q)
        let need = model.quantizedBytes(q)
        if let storage = Self.map(url, format: q, length: need, fingerprint: fp) {
            model.quantize(as: q, storage: storage)
            lastEvent = "mapped \(url.path)"
            return
        }
        let existed = FileManager.default.fileExists(atPath: url.path)
        model.quantize(as: q)
        lastEvent = (existed ? "rebuilt (invalid or stale) " : "built ") + url.path
        do { try write(model, q, to: url, fingerprint: fp, length: need) } catch {
            lastEvent += " (not saved: \(error.localizedDescription))"
        }
    }

    /// SHA-256 (hex) of config.json's hash and, per safetensors file in name order, name, size,
    /// header and 16 samples of 4 KB. A name ending in .safetensors that is not a regular file (a
    /// FIFO, device, socket or folder) counts by its name and kind and is never opened for reading.
    public static func fingerprint(_ folder: URL, configSHA256: String) throws -> String {
        var h = SHA256()
        h.update(data: Data(configSHA256.utf8))
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".safetensors") }.sorted()
        for name in files {
            let fd: Int32, size: Int
            do {
                (fd, size) = try FileInput.openRegular(folder.appendingPathComponent(name).path)
            } catch {
                h.update(data: Data("\(name)/\(error.reason)".utf8))
                continue
            }
            defer { close(fd) }
            func bytes(at offset: Int, _ count: Int) -> [UInt8] {
                var out = [UInt8](repeating: 0, count: max(0, min(count, size - offset)))
                var filled = 0
                while filled < out.count {
                    let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + filled, $0.count - filled, off_t(offset + filled)) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    filled += n
                }
                return Array(out.prefix(filled))
            }
            h.update(data: Data("\(name)/\(size)".utf8))
            let head = bytes(at: 0, 8)
            if head.count == 8 {
                let n = head.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
                h.update(data: head)
                h.update(data: bytes(at: 8, Int(min(n, 100 << 20))))
            }
            for k in 0..<16 where size > 4096 {
                h.update(data: bytes(at: (size - 4096) / 15 * k, 4096))
            }
        }
        return h.finalize().map { String(format: "%02x", $0) }.joined()
    }

    static func header(format q: Quantization, length: Int, fingerprint: String, sum: UInt64) -> [UInt8] {
        var b = magic
        withUnsafeBytes(of: version.littleEndian) { b += $0 }
        withUnsafeBytes(of: UInt64(length).littleEndian) { b += $0 }
        withUnsafeBytes(of: sum.littleEndian) { b += $0 }
        let tag = Array(q.storageTag.utf8).prefix(8)
        b += tag + [UInt8](repeating: 0, count: 8 - tag.count)
        b += Array(fingerprint.utf8)
        return b + [UInt8](repeating: 0, count: headerSize - b.count)
    }

    /// The payload of a valid cache file, mapped; nil when missing, short, stale or corrupt.
    static func map(_ url: URL, format q: Quantization, length: Int, fingerprint: String) -> QuantStorage? {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, Int(st.st_size) == headerSize + length else { return nil }
        guard let p = mmap(nil, Int(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else { return nil }
        let total = Int(st.st_size)
        let head = [UInt8](UnsafeRawBufferPointer(start: p, count: headerSize))
        let sum = UnsafeRawPointer(p + 16).loadUnaligned(as: UInt64.self)
        let expected = Self.header(format: q, length: length, fingerprint: fingerprint, sum: UInt64(littleEndian: sum))
        guard head == expected, ThreadPool.shared.read(UnsafeRawPointer(p + headerSize), length) == UInt64(littleEndian: sum) else {
            munmap(p, total); return nil
        }
        // Copied into huge-page memory: page-cache pages are 4 KiB, and decoding streams these
        // bytes once per token.
        let storage = QuantStorage(copying: UnsafeRawPointer(p + headerSize), bytes: length)
        munmap(p, total)
        return storage
    }

    func write(_ model: any LanguageModel, _ q: Quantization, to url: URL, fingerprint: String, length: Int) throws {
        guard let storage = model.quantizedStorage else { return }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let sum = ThreadPool.shared.read(UnsafeRawPointer(storage.base), length)
        let tmp = url.path + ".tmp-\(getpid())"
        _ = FileManager.default.createFile(atPath: tmp, contents: nil)     // a failure shows as no handle below
        guard let fh = FileHandle(forWritingAtPath: tmp) else { throw CocoaError(.fileWriteNoPermission) }
        do {
            try fh.write(contentsOf: Data(Self.header(format: q, length: length, fingerprint: fingerprint, sum: sum)))
            try fh.write(contentsOf: Data(bytesNoCopy: storage.base, count: length, deallocator: .none))
            try fh.synchronize()
            try fh.close()
            guard rename(tmp, url.path) == 0 else { throw CocoaError(.fileWriteUnknown) }
        } catch {
            unlink(tmp); throw error
        }
    }
}

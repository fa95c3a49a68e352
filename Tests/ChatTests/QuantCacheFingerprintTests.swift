import Foundation
import Testing
import TestSupport
@testable import Chat

/// The quantized-weights cache names its files by a fingerprint of the model folder's
/// *.safetensors files; a FIFO or device under such a name is neither opened for reading nor
/// read endlessly, and a regular shard's fingerprint follows its bytes.
struct QuantCacheFingerprintTests {
    static func folder() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fingerprint-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestData.url("tiny-b/model-00003-of-00003.safetensors"), to: dir.appendingPathComponent("model.safetensors"))
        return dir
    }

    /// Runs `fingerprint` on a thread of its own: nil when it has not returned within 10 s.
    static func fingerprintWithin10s(_ dir: URL) -> Result<String, Error>? {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        Thread.detachNewThread {
            box.set(Result { try QuantCache.fingerprint(dir, configSHA256: "c") })
            done.signal()
        }
        return done.wait(timeout: .now() + 10) == .success ? box.get() : nil
    }

    final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: Result<String, Error>?
        func set(_ v: Result<String, Error>) { lock.withLock { value = v } }
        func get() -> Result<String, Error>? { lock.withLock { value } }
    }

    @Test func aFIFONamedLikeAShardIsNotOpened() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = try QuantCache.fingerprint(dir, configSHA256: "c")
        let fifo = dir.appendingPathComponent("extra.safetensors").path
        #expect(mkfifo(fifo, 0o644) == 0)
        let got = Self.fingerprintWithin10s(dir)
        if got == nil {     // blocked in open(2) waiting for a writer: give it one so the thread ends
            let w = open(fifo, O_WRONLY | O_NONBLOCK)
            if w >= 0 { close(w) }
        }
        let fp = try #require(got, "fingerprint blocked on a FIFO named extra.safetensors").get()
        #expect(fp != plain, "the FIFO counts by its name and kind")
    }

    @Test(arguments: ["/dev/zero", "/dev/urandom"])
    func aDeviceNamedLikeAShardIsNotRead(device: String) throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent("z.safetensors").path, withDestinationPath: device)
        let got = try #require(Self.fingerprintWithin10s(dir), "fingerprint kept reading \(device)")
        #expect(throws: Never.self) { try got.get() }
    }

    @Test func aShardsBytesChangeItsFingerprint() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = try QuantCache.fingerprint(dir, configSHA256: "c")
        #expect(try QuantCache.fingerprint(dir, configSHA256: "c") == a)
        #expect(try QuantCache.fingerprint(dir, configSHA256: "d") != a)
        let url = dir.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: url)
        data[(data.count - 4096) / 15 * 15 + 1] ^= 0x5A      // inside the last 4 KB sample
        try data.write(to: url)
        #expect(try QuantCache.fingerprint(dir, configSHA256: "c") != a)
    }
}

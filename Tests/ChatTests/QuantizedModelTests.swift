import CKernels
import Foundation
import Kernels
import Model
import Testing
import TestSupport
@testable import Chat

/// int8 / q4 weights on a tiny model: close to bf16, identical with and without the cache, and a
/// corrupt or stale cache file is detected and rebuilt.
struct QuantizedModelTests {
    static func logits(_ e: ChatEngine, _ ids: [Int32]) -> [Float] { e.model.forward(ids, cache: e.model.makeCache(), logits: .last) }

    /// With int8 or q4 weights a prompt longer than `multiRowMaxRows` tokens goes through the
    /// integer GEMM (AVX-512 VNNI tiles, AVX-VNNI ones for int8, or the AVX2 ones: each level the
    /// CPU has, level 1 with and without AVX-VNNI, the engine loaded at that level, as int8 is
    /// stored for the VNNI tiles), whose activations are quantized as a decode
    /// step's: its logits agree with feeding the same tokens one at a time (matrix-vector products)
    /// and stay within the format's bound of bf16. The two sum the same integer products in another
    /// float order, so an activation lying within a rounding of an int8 step boundary can round the
    /// other way in the next product, and the difference follows to the end. So: twelve prompts
    /// with no common prefix (a flip early in a shared prefix would move them all), every one
    /// within 0.03 of the largest logit, and at least half within 1e-6 (a wrong row, scale or
    /// block would move all of them). Measured in session 6: int8 12 of 12 within 1e-6, q4 7 (its
    /// decode takes the nibbles' offset off in float, so it rounds a little differently; its
    /// products stay within 6e-8 of the sum of the terms' magnitudes); the rest 3.5e-6 to 1.2e-2.
    @Test(.enabled(if: integerGEMMAvailable, "needs AVX2"), arguments: [Quantization.q8, .q4])
    func promptGEMMAgreesWithDecodingStepByStep(q: Quantization) throws {
        for level in Int32(1)...min(ck_isa(), 2) {
            ck_set_isa_limit(level)
            defer { ck_set_isa_limit(Int32.max) }
            try promptGEMMAgreesWithDecodingStepByStep(q: q, level: level)
            if level == 1 && ck_avx_vnni() != 0 {          // and as a CPU with AVX2 alone
                ck_set_avx_vnni_limit(0)
                defer { ck_set_avx_vnni_limit(1) }
                try promptGEMMAgreesWithDecodingStepByStep(q: q, level: level)
            }
        }
    }

    func promptGEMMAgreesWithDecodingStepByStep(q: Quantization, level: Int32) throws {
        let folder = TestData.url("tiny-b")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("quant-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let e = try ChatEngine(folder: folder, weights: q, cache: QuantCache(directory: dir))
        var errors: [Float] = [], prompt: [Float] = [], ids: [Int32] = []
        for (n, mul) in [37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83].enumerated() {
            ids = [1] + (0..<(multiRowMaxRows(q) + n % 10)).map { Int32(250 + n * 7 + ($0 * mul) % 900) }
            prompt = e.model.forward(ids, cache: e.model.makeCache(), logits: .last)
            let cache = e.model.makeCache()
            var stepped: [Float] = []
            for id in ids { stepped = e.model.forward([id], cache: cache, logits: .last) }
            errors.append(zip(prompt, stepped).map { abs($0 - $1) }.max()! / stepped.map(abs).max()!)
        }
        #expect(errors.allSatisfy { $0 < 0.03 }, "\(q) ISA level \(level), prompt vs step by step: \(errors)")
        #expect(errors.filter { $0 < 1e-6 }.count >= 6, "\(q) ISA level \(level), prompt vs step by step: \(errors)")
        let dense = try ChatEngine(folder: folder)
        let want = Self.logits(dense, ids)
        let errDense = zip(prompt, want).map { abs($0 - $1) }.max()! / want.map(abs).max()!
        #expect(errDense < (q == .q8 ? 0.05 : 0.3), "\(q) ISA level \(level), prompt GEMM vs bf16: \(errDense)")
    }

    @Test(arguments: [Quantization.q8, .q4])
    func quantizedWeightsStayCloseAndTheCacheRoundTrips(q: Quantization) throws {
        let folder = TestData.url("tiny-b")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("quant-\(UUID())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ids: [Int32] = [1, 333, 444, 555, 666, 777, 888, 999, 1000]
        let dense = try ChatEngine(folder: folder)
        let want = Self.logits(dense, ids)

        let cache = QuantCache(directory: dir)
        let built = try ChatEngine(folder: folder, weights: q, cache: cache)
        #expect(cache.lastEvent.hasPrefix("built "), "\(cache.lastEvent)")
        #expect(built.weightFormat == q.rawValue && built.identity.weightFormat == q.rawValue)
        let got = Self.logits(built, ids)
        let scale = want.map(abs).max()!
        let err = zip(got, want).map { abs($0 - $1) }.max()! / scale
        #expect(err < (q == .q8 ? 0.05 : 0.3), "\(q): max logit error \(err) of the largest")
        // The tiny model is mostly its output head, int8 in both formats: about half the bf16 bytes.
        #expect(built.model.weightBytesPerToken < dense.model.weightBytesPerToken * 6 / 10)

        // Second start: the file is mapped, and the model computes exactly the same.
        let mapped = try ChatEngine(folder: folder, weights: q, cache: cache)
        #expect(cache.lastEvent.hasPrefix("mapped "), "\(cache.lastEvent)")
        #expect(Self.logits(mapped, ids) == got)

        // A flipped byte in the payload, a truncated file, a file of another version: rebuilt.
        let file = try cache.file(for: folder, configSHA256: dense.identity.configSHA256, q)
        var data = try Data(contentsOf: file)
        data[data.count - 100] ^= 0x5A
        try data.write(to: file)
        _ = try ChatEngine(folder: folder, weights: q, cache: cache)
        #expect(cache.lastEvent.hasPrefix("rebuilt "), "corrupt: \(cache.lastEvent)")
        try Data(try Data(contentsOf: file).prefix(5000)).write(to: file)
        let again = try ChatEngine(folder: folder, weights: q, cache: cache)
        #expect(cache.lastEvent.hasPrefix("rebuilt "), "truncated: \(cache.lastEvent)")
        #expect(Self.logits(again, ids) == got)
        data = try Data(contentsOf: file)
        data[4] = 99                                                     // header version
        try data.write(to: file)
        _ = try ChatEngine(folder: folder, weights: q, cache: cache)
        #expect(cache.lastEvent.hasPrefix("rebuilt "), "other version: \(cache.lastEvent)")
        _ = try ChatEngine(folder: folder, weights: q, cache: cache)
        #expect(cache.lastEvent.hasPrefix("mapped "))
    }
}

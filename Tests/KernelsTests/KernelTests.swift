import CKernels
import Foundation
import Testing
import TestSupport
@testable import Kernels

/// Each kernel against a naive loop in Double.
struct KernelTests {
    static func randomFloats(_ n: Int, _ rng: inout SeededRandom, scale: Float = 1) -> [Float] {
        (0..<n).map { _ in Float.random(in: -scale...scale, using: &rng) }
    }

    /// A matrix stored as `dtype`, plus the Float values it really holds.
    static func matrix(_ rows: Int, _ cols: Int, _ dtype: DType, _ rng: inout SeededRandom) -> (storage: [UInt8], values: [Float]) {
        let v = randomFloats(rows * cols, &rng)
        var bytes: [UInt8] = [], exact: [Float] = []
        for x in v {
            switch dtype {
            case .bf16:
                let b = floatToBF16(x); bytes += [UInt8(b & 0xFF), UInt8(b >> 8)]; exact.append(bf16ToFloat(b))
            case .f16:
                let h = Float16(x); let b = h.bitPattern; bytes += [UInt8(b & 0xFF), UInt8(b >> 8)]; exact.append(Float(h))
            case .f32:
                withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes += $0 }; exact.append(x)
            }
        }
        return (bytes, exact)
    }

    /// bf16 rows (as stored) laid out in groups of four (`WeightMatrix.packedInFours`).
    static func inFours(_ storage: [UInt8], rows: Int, cols: Int) -> [UInt8] {
        var packed = [UInt8](repeating: 0, count: storage.count)
        storage.withUnsafeBytes { src in
            packed.withUnsafeMutableBytes { dst in
                _ = WeightMatrix(base: src.baseAddress!, dtype: .bf16, rows: rows, cols: cols).packedInFours(into: dst.baseAddress!)
            }
        }
        return packed
    }

    static func naive(_ w: [Float], _ x: [Float], rows: Int, cols: Int, t: Int) -> [Double] {
        var y = [Double](repeating: 0, count: t * rows)
        for i in 0..<t { for r in 0..<rows {
            var s = 0.0
            for c in 0..<cols { s += Double(w[r * cols + c]) * Double(x[i * cols + c]) }
            y[i * rows + r] = s
        } }
        return y
    }

    /// max |a - b|; infinite when any value is NaN (a row a kernel never wrote: `max()` alone
    /// would pass over it) or the counts differ.
    static func maxError(_ a: [Float], _ b: [Double]) -> Double {
        guard a.count == b.count else { return .infinity }
        let d = zip(a, b).map { abs(Double($0) - $1) }
        return d.contains { $0.isNaN } ? .infinity : d.max() ?? 0
    }

    /// The bandwidth probe's read, plain and prefetching (the kernels' prefetch distance ahead),
    /// sums every byte once: random bytes, lengths with tails past the 128-byte loop, on one
    /// thread and on two. The reference adds what the AVX2 loop adds: each thread's share in
    /// little-endian 64-bit lanes over its full 128-byte blocks, then the rest byte by byte.
    @Test(arguments: [1, 2])
    func poolReadSumsEveryByteWithAndWithoutPrefetch(threads: Int) {
        let pool = ThreadPool(threads: threads)
        var rng = SeededRandom(seed: 20)
        for n in [0, 1, 127, 128, 4096 + 37, 300_001] {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let buf = UnsafeMutableRawPointer.allocate(byteCount: max(n, 1), alignment: 64)
            defer { buf.deallocate() }
            buf.copyMemory(from: bytes, byteCount: n)
            var expected: UInt64 = 0
            let share = (n / threads) & ~127
            for t in 0..<threads {
                let start = share * t, len = t == threads - 1 ? n - start : share, body = len / 128 * 128
                for i in stride(from: 0, to: body, by: 8) {
                    for k in 0..<8 { expected &+= UInt64(bytes[start + i + k]) << (8 * k) }
                }
                for i in body..<len { expected &+= UInt64(bytes[start + i]) }
            }
            let plain = pool.read(UnsafeRawPointer(buf), n)
            #expect(pool.read(UnsafeRawPointer(buf), n, prefetching: true) == plain, "\(n) bytes")
            if ck_has_avx2() != 0 { #expect(plain == expected, "\(n) bytes") }
        }
    }

    /// The FMA probe bench --kernels reports counts the multiply-adds of its level's vectors.
    @Test func fmaProbeCountsItsMultiplyAdds() {
        for level in QuantizedKernelTests.isaLevels {
            let lanes: Double = level >= 2 ? 16 : (level == 1 ? 8 : 1)
            #expect(QuantizedKernelTests.atISA(level) { ck_fma_probe(1000, 1) } == 1000 * 12 * lanes, "ISA level \(level)")
        }
        #expect(MachineProbe.fmaPeakGMACs() > 0.1)
    }

    /// OpenBLAS runs kernels that use this CPU's AVX2 and FMA when it has them (a build for many
    /// CPUs falls back to SSE3 ones on models it does not know; cpu.c chooses again), and ones
    /// without AVX-512 when the instruction set is capped at AVX2. The products themselves are
    /// checked against loops in matmulMatchesNaiveLoop.
    @Test func blasKernelsUseTheVectorUnitsTheCPUHas() throws {
        let core = try #require(MachineProbe.blasCore, "this BLAS does not name its kernels")
        let name = String(core.prefix { $0 != " " }).lowercased()
        if ck_isa() >= 1 { #expect(["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"].contains(name), "\(core)") }
        if ProcessInfo.processInfo.environment["INTERNVL_CHAT_ISA"] == "avx2" { #expect(name == "haswell" || name == "zen", "\(core)") }
        #expect(core.hasSuffix(" (set by OPENBLAS_CORETYPE)") == (ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil), "\(core)")
    }

    /// The vision encoder's bidirectional attention against a Double loop at every ISA level (at
    /// level 3 with dim a multiple of 32 on AMX tiles, every operand split into two bf16; else
    /// OpenBLAS): each output within 1e-4 of the largest |v| of its head. Token counts leave keys
    /// after the last run of 64 (the tiles' rows) and columns past the last 32.
    @Test(arguments: [(70, 32), (129, 64), (1025, 64), (64, 48)])
    func fullAttentionMatchesNaiveLoop(n: Int, dim: Int) {
        let heads = 3, stride = 3 * heads * dim
        var rng = SeededRandom(seed: UInt64(n * 13 + dim))
        let qkv = Self.randomFloats(n * stride, &rng, scale: 3)
        let scale = 1 / Double(dim).squareRoot()
        var exact = [Double](repeating: 0, count: n * heads * dim)
        var vmax = [Double](repeating: 0, count: heads)
        for h in 0..<heads {
            let (qo, ko, vo) = (h * dim, heads * dim + h * dim, 2 * heads * dim + h * dim)
            for j in 0..<n { for d in 0..<dim { vmax[h] = max(vmax[h], abs(Double(qkv[j * stride + vo + d]))) } }
            for i in 0..<n {
                var s = [Double](repeating: 0, count: n)
                for j in 0..<n {
                    var dot = 0.0
                    for d in 0..<dim { dot += Double(qkv[i * stride + qo + d]) * Double(qkv[j * stride + ko + d]) }
                    s[j] = dot * scale
                }
                let top = s.max()!
                let e = s.map { Foundation.exp($0 - top) }, sum = e.reduce(0, +)
                for d in 0..<dim {
                    var o = 0.0
                    for j in 0..<n { o += e[j] / sum * Double(qkv[j * stride + vo + d]) }
                    exact[i * heads * dim + h * dim + d] = o
                }
            }
        }
        for level in QuantizedKernelTests.isaLevels {
            var out = [Float](repeating: .nan, count: n * heads * dim)
            var scores: [Float] = []
            QuantizedKernelTests.atISA(level) {
                qkv.withUnsafeBufferPointer { b in
                    fullAttention(q: b.baseAddress!, k: b.baseAddress! + heads * dim, v: b.baseAddress! + 2 * heads * dim, stride: stride,
                                  out: &out, n: n, heads: heads, dim: dim, scores: &scores)
                }
            }
            let far = out.indices.filter { i in !(abs(Double(out[i]) - exact[i]) <= 1e-4 * vmax[(i % (heads * dim)) / dim]) }.count
            let worst = out.indices.map { i in abs(Double(out[i]) - exact[i]) / vmax[(i % (heads * dim)) / dim] }.max()!
            #expect(far == 0, "n \(n), dim \(dim), ISA level \(level): \(far) outputs far from the exact attention (worst \(worst))")
        }
    }

    @Test func bf16RoundsToNearestEven() {
        #expect(floatToBF16(1.0) == 0x3F80)
        #expect(bf16ToFloat(floatToBF16(3.140625)) == 3.140625)
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
        #expect(floatToBF16(1 + 1.0 / 256) == 0x3F80)
        #expect(floatToBF16(1 + 3.0 / 256) == 0x3F82)
    }

    /// Every type, and with the rows in one OpenBLAS call per core (the vision encoder's way; odd
    /// row counts leave parts of different sizes).
    @Test(arguments: [(1, 1, 1), (7, 13, 1), (33, 64, 1), (5, 100, 3), (300, 37, 17), (1100, 1000, 4), (70, 96, 1031)])
    func matmulMatchesNaiveLoop(rows: Int, cols: Int, t: Int) {
        for dtype in DType.allCases { for rowsPerCore in [false, true] {
            var rng = SeededRandom(seed: UInt64(rows * 1000 + cols * 10 + t))
            let (storage, values) = Self.matrix(rows, cols, dtype, &rng)
            let x = Self.randomFloats(t * cols, &rng)
            var y = [Float](repeating: .nan, count: t * rows)
            var scratch: [Float] = []
            storage.withUnsafeBytes { raw in
                let w = WeightMatrix(base: raw.baseAddress!, dtype: dtype, rows: rows, cols: cols)
                matmul(w, x, t, &y, scratch: &scratch, rowsPerCore: rowsPerCore)
            }
            let err = Self.maxError(y, Self.naive(values, x, rows: rows, cols: cols, t: t))
            #expect(err < 1e-4 * Double(cols).squareRoot(), "\(dtype) \(rows)x\(cols) t=\(t) rowsPerCore \(rowsPerCore): \(err)")
        } }
    }

    /// Prompt (t > 1, SGEMMs) and decode (t == 1, the C kernel over the pool, at every ISA level)
    /// against a Double loop, with float32 and float16 KV storage (the loop reads the float16
    /// values as stored), laid out position by position and head by head (the KV cache's layout,
    /// with room for more positions after each head's run); dims 8, 40 and 128 take the AVX2
    /// path, 64 and 128 the AVX-512 one (query heads two at a time, three per kv head here, so
    /// one pair and one single), 12 the portable one; 600 rows go through three causal blocks.
    /// Short prompts (t up to 64) take the column kernel: 3 x t queries per kv head fill whole
    /// score tiles, part of one, or several, and leave value tiles with a remainder.
    @Test(arguments: [(4, 5, 8), (1, 0, 8), (1, 37, 8), (1, 300, 128), (3, 0, 128), (1, 41, 12), (1, 6, 40), (600, 9, 16),
                      (1, 1029, 64), (2, 70, 64), (5, 70, 64), (64, 40, 16), (65, 3, 8), (24, 200, 40), (16, 101, 128)],
          KVPrecision.allCases)
    func attentionMatchesNaiveLoop(shape: (t: Int, past: Int, dim: Int), kv: KVPrecision) {
        checkAttention(t: shape.t, past: shape.past, dim: shape.dim, kv: kv, spike: false)
    }

    /// Scores far apart, as softmax's maximum must handle them. The newest key scores far above
    /// every other key for the first new position's first query head in each group (about 200 above
    /// the others, scaled as the kernels scale): only the last new position sees it, so no other position's softmax
    /// may take it as its maximum (the first position's would come out as a uniform average). The
    /// two last cached keys do the same for the second query head, and every position sees them:
    /// a maximum that missed them would overflow the sum. Shapes put these keys at the end of a
    /// score tile and in a block's last single keys, the two cached ones in a tile that reaches
    /// the new positions, for both vector kernels (dims 64 and 128; 8 and 40) and the GEMMs.
    @Test(arguments: [(6, 38, 64), (5, 39, 64), (24, 2002, 128), (2, 2, 8), (3, 1, 8), (9, 67, 40), (80, 5, 64)],
          KVPrecision.allCases)
    func aMaskedKeyNeverSetsTheSoftmaxMaximum(shape: (t: Int, past: Int, dim: Int), kv: KVPrecision) {
        checkAttention(t: shape.t, past: shape.past, dim: shape.dim, kv: kv, spike: true)
    }

    private func checkAttention(t: Int, past: Int, dim: Int, kv: KVPrecision, spike: Bool) {
        var rng = SeededRandom(seed: UInt64(5 + t * 100 + past + dim))
        let heads = 6, kvHeads = 2, total = past + t
        let q = Self.randomFloats(t * heads * dim, &rng)
        var k = Self.randomFloats(total * kvHeads * dim, &rng), v = Self.randomFloats(total * kvHeads * dim, &rng)
        if spike {
            let groups = heads / kvHeads, lift = 600 / Float(dim).squareRoot()
            for g in 0..<kvHeads { for e in 0..<dim {
                k[((total - 1) * kvHeads + g) * dim + e] = lift * q[g * groups * dim + e]
                for j in max(0, past - 2)..<past { k[(j * kvHeads + g) * dim + e] = lift * q[(g * groups + 1) * dim + e] }
            } }
        }
        if kv == .float16 {      // the values float16 can hold, so that both storages mean the same
            k = k.map { ck_fp16_to_fp32(ck_fp32_to_fp16($0)) }; v = v.map { ck_fp16_to_fp32(ck_fp32_to_fp16($0)) }
        }
        // Head by head, with 3 unused positions after each head's run.
        let capacity = total + 3
        func headMajor(_ a: [Float]) -> [Float] {
            var out = [Float](repeating: .nan, count: kvHeads * capacity * dim)
            for j in 0..<total { for g in 0..<kvHeads { for e in 0..<dim {
                out[(g * capacity + j) * dim + e] = a[(j * kvHeads + g) * dim + e]
            } } }
            return out
        }
        var outs: [(String, [Float])] = []
        for headByHead in [false, true] {
            let ks = headByHead ? headMajor(k) : k, vs = headByHead ? headMajor(v) : v
            var k16 = [UInt16](repeating: 0, count: ks.count), v16 = k16
            ck_f32_to_f16(ks, &k16, ks.count); ck_f32_to_f16(vs, &v16, vs.count)
            let pos = headByHead ? dim : kvHeads * dim, head = headByHead ? capacity * dim : dim
            var byLevel: [Int32: [Float]] = [:]
            for level in QuantizedKernelTests.isaLevels {
                var out = [Float](repeating: .nan, count: t * heads * dim)
                var scores: [Float] = [], floats: [Float] = []
                QuantizedKernelTests.atISA(level) {
                    ks.withUnsafeBytes { kf in vs.withUnsafeBytes { vf in k16.withUnsafeBytes { kh in v16.withUnsafeBytes { vh in
                        let rows = kv == .float16
                            ? KVRows(keys: kh.baseAddress!, values: vh.baseAddress!, precision: kv, positionStride: pos, headStride: head)
                            : KVRows(keys: kf.baseAddress!, values: vf.baseAddress!, precision: kv, positionStride: pos, headStride: head)
                        causalAttention(q: q, kv: rows, out: &out, t: t, past: past, heads: heads, kvHeads: kvHeads, dim: dim,
                                        scores: &scores, kvFloats: &floats)
                    } } } }
                }
                outs.append(("\(headByHead ? "head-major" : "position-major"), ISA level \(level)", out))
                byLevel[level] = out
            }
            // The short-prompt kernels take the same steps in AVX2 and AVX-512 registers.
            if t > 1, t <= 64, dim % 16 == 0, let avx2 = byLevel[1], let avx512 = byLevel[2] {
                #expect(avx2.map(\.bitPattern) == avx512.map(\.bitPattern), "t=\(t) past=\(past) dim=\(dim) \(kv)")
            }
        }
        var want = [Double](repeating: 0, count: t * heads * dim)
        for i in 0..<t { for h in 0..<heads {
            let g = h / (heads / kvHeads)
            var s = (0...(past + i)).map { j -> Double in
                var d = 0.0
                for e in 0..<dim { d += Double(q[(i * heads + h) * dim + e]) * Double(k[(j * kvHeads + g) * dim + e]) }
                return d / Double(dim).squareRoot()
            }
            let m = s.max()!; s = s.map { exp($0 - m) }; let z = s.reduce(0, +)
            for e in 0..<dim {
                want[(i * heads + h) * dim + e] = s.enumerated().reduce(0.0) { $0 + $1.element / z * Double(v[($1.offset * kvHeads + g) * dim + e]) }
            }
        } }
        for (what, out) in outs {
            #expect(Self.maxError(out, want) < 1e-5, "t=\(t) past=\(past) dim=\(dim) \(kv)\(spike ? " spike" : ""), \(what)")
        }
    }

    /// The KV cache's conversions against the scalar float16 routines (themselves checked against
    /// Swift's Float16): every float16 value widened, and floats of every range narrowed (ties,
    /// subnormals, overflow to infinity, NaN), with lengths that leave a tail.
    @Test func float16RowConversionsMatchScalar() {
        let all = (0...0xFFFF).map { UInt16($0) }
        var wide = [Float](repeating: 0, count: all.count)
        ck_f16_to_f32(all, &wide, all.count)
        #expect(zip(all, wide).allSatisfy { h, f in
            let want = ck_fp16_to_fp32(h)
            return want.isNaN ? f.isNaN : f.bitPattern == want.bitPattern
        })
        var rng = SeededRandom(seed: 16)
        var xs: [Float] = [0, -0, 1, 1 + 1.0 / 2048, 1 + 3.0 / 2048, 65504, 65520, 1e6, -1e6, .infinity, -.infinity,
                           6e-8, 3e-8, 1e-5, -1e-7]
        for _ in 0..<5000 { xs.append(Float.random(in: -1...1, using: &rng) * pow(2, Float(Int.random(in: -26...17, using: &rng)))) }
        var narrow = [UInt16](repeating: 0, count: xs.count)
        ck_f32_to_f16(xs, &narrow, xs.count)
        #expect(zip(xs, narrow).allSatisfy { ck_fp32_to_fp16($0) == $1 })
        let nan = [Float](repeating: .nan, count: 9)
        var nanOut = [UInt16](repeating: 0, count: 9)
        ck_f32_to_f16(nan, &nanOut, 9)
        #expect(nanOut.allSatisfy { ck_fp16_to_fp32($0).isNaN })
    }

    @Test func normsRopeAndActivations() {
        var rng = SeededRandom(seed: 9)
        let n = 24, x = Self.randomFloats(2 * n, &rng), w = Self.randomFloats(n, &rng)
        var out = [Float](repeating: 0, count: 2 * n)
        rmsNorm(x, w, &out, n: n, t: 2, eps: 1e-5)
        for r in 0..<2 {
            let ms = (0..<n).map { Double(x[r * n + $0] * x[r * n + $0]) }.reduce(0, +) / Double(n)
            for i in 0..<n {
                #expect(abs(Double(out[r * n + i]) - Double(x[r * n + i]) / (ms + 1e-5).squareRoot() * Double(w[i])) < 1e-5)
            }
        }
        // RoPE: pairs (i, i + half) rotate by the angle; norms are kept.
        var v = Self.randomFloats(8, &rng)
        let orig = v
        let angles: [Float] = [0.1, 1.0, 2.5, -0.7]
        let c = angles.map { Float(cos(Double($0))) }, s = angles.map { Float(sin(Double($0))) }
        applyRoPE(&v, heads: 1, dim: 8, stride: 8, cos: c, sin: s)
        for i in 0..<4 {
            #expect(abs(v[i] - (orig[i] * c[i] - orig[i + 4] * s[i])) < 1e-6)
            #expect(abs(v[i + 4] - (orig[i + 4] * c[i] + orig[i] * s[i])) < 1e-6)
        }
        var a: [Float] = [1, -2, 0.5], b: [Float] = [2, 3, -1]
        siluMul(&a, b, n: 3)
        let silu = { (g: Double) in g / (1 + exp(-g)) }
        #expect(abs(Double(a[0]) - silu(1) * 2) < 1e-6 && abs(Double(a[1]) - silu(-2) * 3) < 1e-6)
    }

    /// SwiGLU's gate (CKernels: AVX2 with its own exp, and portable) against a Double loop at every
    /// ISA level: gates from -100 to 100 (exp(-g) past float's range at the low end), a length
    /// that leaves a tail after the eight-wide steps, within 1e-6 relative (1e-30 absolute near 0).
    @Test func siluMulMatchesDoubleLoop() {
        var rng = SeededRandom(seed: 61)
        let n = 1003
        let gates: [Float] = (0..<n).map { i in i % 5 == 0 ? Float.random(in: -100...100, using: &rng) : Float.random(in: -12...12, using: &rng) }
        let b = Self.randomFloats(n, &rng, scale: 3)
        for level in QuantizedKernelTests.isaLevels {
            var a = gates
            QuantizedKernelTests.atISA(level) { siluMul(&a, b, n: n) }
            for i in 0..<n {
                let g = Double(gates[i]), want = g / (1 + exp(-g)) * Double(b[i])
                #expect(abs(Double(a[i]) - want) <= max(1e-6 * abs(want), 1e-30), "gate \(gates[i]), ISA level \(level)")
            }
        }
    }

    /// GELU (CKernels: erfc by a fit, AVX2 and portable) against Double's erf, over the range
    /// that matters, both tails, signed zeros and a length that leaves a tail; LayerNorm, the fused
    /// bias + GELU and the layer-scaled residual against Double loops. Every ISA level.
    @Test func geluAndLayerNormMatchDouble() {
        var rng = SeededRandom(seed: 21)
        var xs: [Float] = [0, -0, 1, -1, 1e-6, -1e-6, 5, -5, 9, -9, 14, -14, 40, -40]
        for _ in 0..<4000 { xs.append(Float.random(in: -12...12, using: &rng)) }
        for _ in 0..<989 { xs.append(Float.random(in: -0.5...0.5, using: &rng)) }
        let rows = 3, n = 1000
        let x = Self.randomFloats(rows * n, &rng, scale: 4).enumerated().map { $0.element + Float($0.offset % 7) }
        let w = Self.randomFloats(n, &rng), b = Self.randomFloats(n, &rng)
        for level in QuantizedKernelTests.isaLevels {
            var g = xs
            QuantizedKernelTests.atISA(level) { gelu(&g, n: g.count) }
            for (v, got) in zip(xs, g) {
                let d = Double(v), want = 0.5 * d * (1 + erf(d / 2.0.squareRoot()))
                #expect(abs(Double(got) - want) <= 2e-6 * abs(want) + 1e-7, "gelu(\(v)) = \(got), want \(want), ISA \(level)")
            }
            var out = [Float](repeating: .nan, count: rows * n)
            QuantizedKernelTests.atISA(level) { layerNorm(x, w, b, &out, n: n, t: rows, eps: 1e-6) }
            for r in 0..<rows {
                let row = (0..<n).map { Double(x[r * n + $0]) }
                let mean = row.reduce(0, +) / Double(n)
                let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
                let err = (0..<n).map { i in
                    abs(Double(out[r * n + i]) - ((row[i] - mean) / (variance + 1e-6).squareRoot() * Double(w[i]) + Double(b[i])))
                }.max()!
                #expect(err < 1e-5, "layerNorm row \(r), ISA \(level): \(err)")
            }
            // The fused steps: GELU(x + bias) and x + ls * (o + bias), rows of 1000 (a tail of 0).
            let xb = Self.randomFloats(rows * n, &rng, scale: 5), bias = Self.randomFloats(n, &rng), ls = Self.randomFloats(n, &rng)
            var fused = xb
            QuantizedKernelTests.atISA(level) { biasGelu(&fused, bias, n: n, t: rows) }
            for i in 0..<(rows * n) {
                let d = Double(xb[i] + bias[i % n]), want = 0.5 * d * (1 + erf(d / 2.0.squareRoot()))
                #expect(abs(Double(fused[i]) - want) <= 2e-6 * abs(want) + 1e-7, "biasGelu \(i), ISA \(level)")
            }
            var res = x
            QuantizedKernelTests.atISA(level) { scaledResidual(&res, xb, bias: bias, ls: ls, n: n, t: rows) }
            let resErr = (0..<(rows * n)).map { i in
                abs(Double(res[i]) - (Double(x[i]) + Double(ls[i % n]) * (Double(xb[i]) + Double(bias[i % n]))))
            }.max()!
            #expect(resErr < 1e-5, "scaledResidual, ISA \(level): \(resErr)")
        }
    }

    /// The attention softmax (CKernels, AVX2 exp) against a Double loop, including large inputs,
    /// lengths around the vector width and the causal masking of ck_softmax_rows.
    @Test func softmaxMatchesNaiveLoop() {
        var rng = SeededRandom(seed: 11)
        for n in [1, 3, 7, 8, 9, 31, 64, 1025] {
            var x = Self.randomFloats(n, &rng, scale: 30)
            if n == 3 { x = [1000, 1001, 999] }
            let m = x.map(Double.init).max()!
            let e = x.map { exp(Double($0) - m) }, sum = e.reduce(0, +)
            ck_softmax_row(&x, Int32(n))
            for i in 0..<n { #expect(abs(Double(x[i]) - e[i] / sum) <= 1e-6 * max(1, e[i] / sum * 10), "n \(n) i \(i)") }
        }
        // Causal rows: row i keeps its first base + i + 1 values, the rest become 0.
        var s = [Float](repeating: 1, count: 3 * 5)
        ck_softmax_rows(&s, 3, 5, 5, 1)
        #expect(Array(s[0..<5]) == [0.5, 0.5, 0, 0, 0])
        #expect(abs(s[5] - 1.0 / 3) < 1e-7 && s[8] == 0 && s[9] == 0)
        #expect(s[10..<14].allSatisfy { abs($0 - 0.25) < 1e-7 } && s[14] == 0)
    }
}

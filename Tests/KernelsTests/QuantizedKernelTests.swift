import CKernels
import Foundation
import Testing
import TestSupport
@testable import Kernels

/// The decode kernels of CKernels: the pooled bf16 product against a naive Double loop, and the
/// int8 / 4-bit products bit for bit against their dequantize-then-multiply references.
struct QuantizedKernelTests {
    static let shapes = [(1, 32), (7, 64), (33, 96), (9, 160), (5, 224), (300, 512), (2048, 2048), (257, 8192), (3, 2240)]

    /// Every instruction-set level this CPU has (0 portable, 1 AVX2, 2 AVX-512 VNNI, 3 AVX-512 VNNI
    /// + BF16), so that each variant of a kernel meets the same twin.
    static var isaLevels: [Int32] { Array(0...ck_isa()) }

    /// Runs `body` with this thread's kernels (and the pool jobs it starts) capped at `level`.
    static func atISA<T>(_ level: Int32, _ body: () -> T) -> T {
        ck_set_isa_limit(level)
        defer { ck_set_isa_limit(Int32.max) }
        return body()
    }

    /// An instruction-set level, and at level 1 whether the int8 and q4 kernels may use AVX-VNNI.
    struct ISAVariant: CustomStringConvertible {
        let level: Int32, avxVNNI: Bool
        var description: String { level == 1 ? (avxVNNI ? "1 (AVX-VNNI)" : "1 (AVX2 alone)") : "\(level)" }
    }

    /// Whether this CPU's level 1 runs the AVX-VNNI kernels (and INTERNVL_CHAT_ISA allows them).
    static var hasAVXVNNI: Bool { atISA(1) { ck_avx_vnni() != 0 } }

    /// `isaLevels`, with level 1 twice where the CPU has AVX-VNNI: with it and without it (as a
    /// CPU with AVX2 alone), so that both kernels of the int8 and q4 products meet their twin.
    static var integerVariants: [ISAVariant] {
        isaLevels.flatMap { level in
            level == 1 && hasAVXVNNI ? [ISAVariant(level: 1, avxVNNI: true), ISAVariant(level: 1, avxVNNI: false)]
                : [ISAVariant(level: level, avxVNNI: level == 1 && hasAVXVNNI)]
        }
    }

    static func atISA<T>(_ v: ISAVariant, _ body: () -> T) -> T {
        ck_set_avx_vnni_limit(v.avxVNNI ? 1 : 0)
        defer { ck_set_avx_vnni_limit(1) }
        return atISA(v.level) {
            #expect((ck_avx_vnni() != 0) == v.avxVNNI, "ISA level \(v)")
            return body()
        }
    }

    @Test(arguments: shapes)
    func bf16MatvecWithAllThreadsMatchesNaiveLoop(rows: Int, cols: Int) {
        var rng = SeededRandom(seed: UInt64(rows * 7 + cols))
        let (storage, values) = KernelTests.matrix(rows, cols, .bf16, &rng)
        let x = KernelTests.randomFloats(cols, &rng)
        let want = KernelTests.naive(values, x, rows: rows, cols: cols, t: 1)
        for level in Self.isaLevels { for threads in [1, 2, 3] {
            let pool = ThreadPool(threads: threads)
            var y = [Float](repeating: .nan, count: rows)
            Self.atISA(level) {
                storage.withUnsafeBytes { raw in
                    matvec(WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols), x, &y, pool: pool)
                }
            }
            let scale = want.map(abs).max()! + 1e-30
            #expect(KernelTests.maxError(y, want) / scale < 1e-5, "\(rows)x\(cols), \(threads) threads, ISA level \(level)")
        } }
    }

    /// The same product with the rows in groups of four (the language model's decode layout):
    /// row counts that leave 1-3 rows after the last group, matrices wider than one column block
    /// of 2,048 (with a narrower last block), every level, 1-3 threads.
    @Test(arguments: [(1, 32), (4, 64), (7, 64), (33, 96), (9, 160), (302, 512), (2048, 2048), (259, 8192), (70, 2112), (3, 4128)])
    func bf16MatvecOnRowsInFoursMatchesNaiveLoop(rows: Int, cols: Int) {
        var rng = SeededRandom(seed: UInt64(rows * 11 + cols))
        let (storage, values) = KernelTests.matrix(rows, cols, .bf16, &rng)
        let x = KernelTests.randomFloats(cols, &rng)
        let want = KernelTests.naive(values, x, rows: rows, cols: cols, t: 1)
        var packed = [UInt8](repeating: 0, count: storage.count)
        storage.withUnsafeBytes { src in
            packed.withUnsafeMutableBytes { dst in
                let w = WeightMatrix(base: src.baseAddress!, dtype: .bf16, rows: rows, cols: cols).packedInFours(into: dst.baseAddress!)
                #expect(w.layout == .groupsOfFour)
            }
        }
        #expect(packed != storage || rows < 4)
        for level in Self.isaLevels { for threads in [1, 2, 3] {
            let pool = ThreadPool(threads: threads)
            var y = [Float](repeating: .nan, count: rows)
            Self.atISA(level) {
                packed.withUnsafeBytes { raw in
                    matvec(WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols, layout: .groupsOfFour), x, &y, pool: pool)
                }
            }
            let scale = want.map(abs).max()! + 1e-30
            #expect(KernelTests.maxError(y, want) / scale < 1e-5, "\(rows)x\(cols), \(threads) threads, ISA level \(level)")
        } }
    }

    /// Rows in groups of four with one non-zero weight each (a power of two, either sign) at a
    /// column that moves across the column blocks: every level must return w * x exactly, for x
    /// with all 24 bits of its mantissa set at random. A weight read from the wrong column or
    /// block, or an x rounded on the way (say to two bf16 halves, 2.3e-5 off at worst, which the
    /// 1e-5 bound of the random test above can let pass), changes the result's bits.
    @Test func bf16RowsInFoursKeepAllOfXsBits() {
        let rows = 66, cols = 4160
        var rng = SeededRandom(seed: 45)
        let x: [Float] = (0..<cols).map { _ in
            Float(sign: Bool.random(using: &rng) ? .minus : .plus, exponent: Int.random(in: -20...20, using: &rng),
                  significand: Float(bitPattern: 0x3F80_0000 | UInt32.random(in: 0..<(1 << 23), using: &rng)))
        }
        var storage = [UInt8](repeating: 0, count: rows * cols * 2), want = [Float](repeating: 0, count: rows)
        for r in 0..<rows {
            let c = (r * 637 + 5) % cols, w = Float(sign: r % 3 == 0 ? .minus : .plus, exponent: r % 7 - 3, significand: 1)
            let b = floatToBF16(w)
            storage[2 * (r * cols + c)] = UInt8(b & 0xFF); storage[2 * (r * cols + c) + 1] = UInt8(b >> 8)
            want[r] = w * x[c]
        }
        let packed = KernelTests.inFours(storage, rows: rows, cols: cols)
        for level in Self.isaLevels { for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            var y = [Float](repeating: .nan, count: rows)
            Self.atISA(level) {
                packed.withUnsafeBytes { raw in
                    matvec(WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols, layout: .groupsOfFour), x, &y, pool: pool)
                }
            }
            #expect(y.map(\.bitPattern) == want.map(\.bitPattern), "\(threads) threads, ISA level \(level)")
        } }
    }

    /// Rows of a matrix in groups of four convert (GEMM's weight blocks, single values) to the
    /// floats of the row-major original exactly, for ranges that start and end inside groups.
    @Test(arguments: [96, 4160])
    func rowsInFoursConvertToTheOriginalRows(cols: Int) {
        let rows = 23
        var rng = SeededRandom(seed: 44)
        let (storage, values) = KernelTests.matrix(rows, cols, .bf16, &rng)
        let packed = KernelTests.inFours(storage, rows: rows, cols: cols)
        packed.withUnsafeBytes { raw in
            let w = WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols, layout: .groupsOfFour)
            for level in Self.isaLevels {
                for (r0, r1) in [(0, rows), (0, 4), (1, 3), (2, 11), (5, 23), (20, 23), (21, 22)] {
                    var got = [Float](repeating: .nan, count: (r1 - r0) * cols)
                    Self.atISA(level) { got.withUnsafeMutableBufferPointer { w.convertRows(r0, r1, into: $0.baseAddress!) } }
                    #expect(got == Array(values[(r0 * cols)..<(r1 * cols)]), "rows \(r0)..<\(r1), ISA level \(level)")
                }
            }
            #expect(w.value(13, 77) == values[13 * cols + 77])
            #expect(w.value(22, cols - 1) == values[22 * cols + cols - 1])
            #expect(w.value(5, cols / 2 + 3) == values[5 * cols + cols / 2 + 3])
        }
    }

    /// Quantizes a random bf16 matrix, runs the pooled kernel, and compares every row with the
    /// reference dot product of CKernels (same integer sums, same float order).
    @Test(arguments: shapes)
    func quantizedMatvecEqualsItsReferenceBitForBit(rows: Int, cols: Int) {
        var rng = SeededRandom(seed: UInt64(rows * 13 + cols))
        let (storage, values) = KernelTests.matrix(rows, cols, .bf16, &rng)
        let x = KernelTests.randomFloats(cols, &rng, scale: 3)
        let exact = KernelTests.naive(values, x, rows: rows, cols: cols, t: 1)
        var xq = [ck_block_q8](repeating: ck_block_q8(), count: cols / 32)
        ck_quantize_q8_blocks(x, &xq, Int32(cols))
        storage.withUnsafeBytes { raw in
            let dense = WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols)
            for q in Quantization.allCases {
                let store = QuantStorage(bytes: WeightMatrix.quantizedBytes(rows: rows, cols: cols, q, panels: false))
                let w = dense.quantized(as: q, into: store.base, panels: false)
                for level in Self.integerVariants { for threads in [1, 2] {
                    var y = [Float](repeating: .nan, count: rows)
                    Self.atISA(level) { matvec(w, x, &y, pool: ThreadPool(threads: threads)) }
                    var ref = [Float](repeating: 0, count: rows)
                    for r in 0..<rows {
                        switch q {
                        case .q8:
                            ref[r] = ck_dot_q8_ref(w.base.assumingMemoryBound(to: Int8.self) + r * cols,
                                                   (w.base + rows * cols).assumingMemoryBound(to: Float.self)[r], xq, Int32(cols))
                        case .q4:
                            ref[r] = ck_dot_q4_ref(w.base.assumingMemoryBound(to: UInt8.self), Int32(rows), Int32(r), xq, Int32(cols))
                        }
                    }
                    #expect(y.map(\.bitPattern) == ref.map(\.bitPattern), "\(q) \(rows)x\(cols), \(threads) threads, ISA level \(level)")
                } }
                // And the reference is a faithful product: close to the exact one (quantization error only).
                var y = [Float](repeating: 0, count: rows)
                matvec(w, x, &y)
                let scale = exact.map(abs).max()! + 1e-30
                let bound = q == .q8 ? 0.03 : 0.25
                #expect(KernelTests.maxError(y, exact) / scale < bound, "\(q) \(rows)x\(cols) error")
            }
        }
    }

    /// GEMM's weight blocks: the vector dequantizers equal the portable ones bit for bit (the same
    /// one multiplication per value), and those equal value x scale read from the stored bytes.
    @Test(arguments: [(5, 224), (3, 8192), (2, 32), (3, 2240)])
    func dequantizedBlocksMatchAtEveryLevel(rows: Int, cols: Int) {
        var rng = SeededRandom(seed: UInt64(rows * 3 + cols))
        let (storage, _) = KernelTests.matrix(rows, cols, .bf16, &rng)
        storage.withUnsafeBytes { raw in
            let dense = WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols)
            for q in Quantization.allCases {
                let store = QuantStorage(bytes: WeightMatrix.quantizedBytes(rows: rows, cols: cols, q, panels: false))
                let w = dense.quantized(as: q, into: store.base, panels: false)
                var want = [Float](repeating: 0, count: rows * cols)
                for r in 0..<rows { for c in 0..<cols {
                    switch q {
                    case .q8:
                        let v = w.base.assumingMemoryBound(to: Int8.self)[r * cols + c]
                        want[r * cols + c] = Float(v) * (w.base + rows * cols).assumingMemoryBound(to: Float.self)[r]
                    case .q4:
                        let bytes = w.base.assumingMemoryBound(to: UInt8.self)
                        let b = c / 32, i = c % 32, nb = cols / 32
                        // column groups of 32 blocks, all rows' group 0 first; a row's group: its
                        // blocks' scales, then 16 bytes per block (low nibble i, high i + 16)
                        let g = b / 32, inGroup = min(32, nb - g * 32)
                        let at = g * rows * 576 + r * inGroup * 18
                        let byte = bytes[at + 2 * inGroup + 16 * (b % 32) + i % 16]
                        let nibble = i < 16 ? byte & 0x0F : byte >> 4
                        let d = Float(Float16(bitPattern: UInt16(bytes[at + 2 * (b % 32)]) | UInt16(bytes[at + 2 * (b % 32) + 1]) << 8))
                        #expect(d == ck_q4_block_scale(bytes, Int32(rows), Int32(cols), Int32(r), Int32(b)))
                        want[r * cols + c] = Float(Int(nibble) - 8) * d
                    }
                } }
                for level in Self.isaLevels {
                    var got = [Float](repeating: .nan, count: rows * cols)
                    Self.atISA(level) { got.withUnsafeMutableBufferPointer { w.convertRows(0, rows, into: $0.baseAddress!) } }
                    #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "\(q) \(rows)x\(cols), ISA level \(level)")
                }
                if q == .q8 {           // the same matrix in panels reads back the same values
                    let inPanels = QuantStorage(bytes: WeightMatrix.quantizedBytes(rows: rows, cols: cols, q, panels: true))
                    let p = dense.quantized(as: q, into: inPanels.base, panels: true)
                    #expect(p.layout == .int8Panels)
                    var got = [Float](repeating: .nan, count: rows * cols)
                    got.withUnsafeMutableBufferPointer { p.convertRows(0, rows, into: $0.baseAddress!) }
                    #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "int8 panels \(rows)x\(cols)")
                }
            }
        }
    }

    /// Activations to int8 blocks: every level gives the same bytes and scales as the portable
    /// loop, and each value is within half a step of its original (a block of zeros included).
    @Test func activationBlocksAreTheSameAtEveryLevel() {
        var rng = SeededRandom(seed: 9)
        var x = KernelTests.randomFloats(8192, &rng, scale: 3)
        for i in 64..<96 { x[i] = 0 }
        x[200] = 1e-30; x[300] = -5e4
        func blocks() -> [ck_block_q8] {
            var out = [ck_block_q8](repeating: ck_block_q8(), count: x.count / 32)
            ck_quantize_q8_blocks(x, &out, Int32(x.count))
            return out
        }
        let portable = Self.atISA(0) { blocks() }
        for b in portable.indices {
            let q = withUnsafeBytes(of: portable[b].qs) { Array($0.bindMemory(to: Int8.self)) }
            for i in 0..<32 { #expect(abs(Float(q[i]) * portable[b].d - x[b * 32 + i]) <= portable[b].d / 2 * 1.0001 + 1e-30) }
        }
        for level in Self.isaLevels.dropFirst() {
            let got = Self.atISA(level) { blocks() }
            for b in portable.indices {
                let same = got[b].d == portable[b].d && withUnsafeBytes(of: got[b].qs) { g in withUnsafeBytes(of: portable[b].qs) { g.elementsEqual($0) } }
                #expect(same, "block \(b), ISA level \(level)")
            }
        }
    }

    /// The integer GEMM of prompts (AVX-512 VNNI; int8 also AVX-VNNI), int8 and q4 weights: every output bit for
    /// bit equal to its reference (integer block sums, one fmaf per block; int8: the row scale at
    /// the end, q4: weight x activation scale per block), for row counts that leave 1-5 rows after
    /// the tiles of six, weight rows that leave a partial panel of 32, 1-3 threads; through
    /// `matmul` (packing in blocks) as well, and close to the exact product.
    @Test(.enabled(if: ck_q8_gemm_available() != 0, "needs AVX-512 VNNI or AVX-VNNI"),
          arguments: [(1, 32, 32), (13, 37, 96), (6, 64, 2048), (40, 100, 256), (35, 1000, 160), (101, 70, 64), (100, 40, 2240), (140, 40, 256),
                      (24, 45, 1024), (7, 83, 3072), (9, 83, 256)], Quantization.allCases)
    func integerGEMMEqualsItsReferenceBitForBit(shape: (m: Int, n: Int, k: Int), q: Quantization) {
        let (m, n, k) = shape
        var rng = SeededRandom(seed: UInt64(m * 31 + n * 7 + k))
        let (storage, _) = KernelTests.matrix(n, k, .bf16, &rng)
        let x = KernelTests.randomFloats(m * k, &rng)
        var stored = [UInt8](repeating: 0, count: WeightMatrix.quantizedBytes(rows: n, cols: k, q, panels: false))
        storage.withUnsafeBytes { raw in
            stored.withUnsafeMutableBytes { _ = WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: n, cols: k).quantized(as: q, into: $0.baseAddress!, panels: false) }
        }
        var xq = [ck_block_q8](repeating: ck_block_q8(), count: m * k / 32)
        ck_quantize_q8_blocks(x, &xq, Int32(m * k))
        // q4 panels have tiles with AVX-512 VNNI only (at level 1 with AVX-VNNI only int8 goes in panels).
        if q == .q4 && ck_isa() < 2 { return }
        stored.withUnsafeBytes { raw in
            let bytes = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let scales = (raw.baseAddress! + n * k).assumingMemoryBound(to: Float.self)
            var want = [Float](repeating: 0, count: m * n)
            xq.withUnsafeBufferPointer { xb in
                for i in 0..<m { for j in 0..<n {
                    let xrow = xb.baseAddress! + i * k / 32
                    want[i * n + j] = q == .q8
                        ? ck_q8_gemm_ref(UnsafeRawPointer(bytes + j * k).assumingMemoryBound(to: Int8.self), scales[j], xrow, Int32(k))
                        : ck_q4_gemm_ref(bytes, Int32(n), Int32(j), xrow, Int32(k))
                } }
            }
            let size = q == .q8 ? ck_q8_gemm_packed_bytes(Int32(n), Int32(k)) : ck_q4_gemm_packed_bytes(Int32(n), Int32(k))
            var packed = [UInt8](repeating: 0, count: Int(size))
            if q == .q8 { ck_q8_gemm_pack(UnsafeRawPointer(bytes).assumingMemoryBound(to: Int8.self), Int32(n), Int32(k), &packed) }
            else {
                ck_q4_gemm_pack(bytes, Int32(n), Int32(k), 0, Int32(n), &packed)
                // A block of rows from row 32 (as matmul packs big matrices): the whole pack's panels from the second on.
                if n > 32 {
                    var part = [UInt8](repeating: 0, count: Int(ck_q4_gemm_packed_bytes(Int32(n - 32), Int32(k))))
                    ck_q4_gemm_pack(bytes, Int32(n), Int32(k), 32, Int32(n), &part)
                    #expect(part == Array(packed[(32 * k / 32 * 36)...]), "q4 rows 32..<\(n) of \(n)x\(k)")
                }
            }
            for threads in [1, 2, 3] {
                var c = [Float](repeating: .nan, count: m * n)
                let pool = ThreadPool(threads: threads)
                withExtendedLifetime(pool) {
                    ck_pool_q8_gemm(pool.raw, packed, q == .q8 ? scales : nil, xq, &c, Int32(m), Int32(n), Int32(k), Int32(n))
                }
                #expect(c == want, "\(q) \(m)x\(n)x\(k), \(threads) threads")
                // int8 panels at every other level that stores them: AVX-512 with VNNI, and level 1
                // with AVX-VNNI (its 256-bit tiles).
                if q == .q8 {
                    for level in Self.integerVariants where level.level < ck_isa() && Self.atISA(level, { ck_q8_gemm_available() != 0 }) {
                        var d = [Float](repeating: .nan, count: m * n)
                        Self.atISA(level) {
                            withExtendedLifetime(pool) { ck_pool_q8_gemm(pool.raw, packed, scales, xq, &d, Int32(m), Int32(n), Int32(k), Int32(n)) }
                        }
                        #expect(d == want, "int8 panels \(m)x\(n)x\(k), ISA level \(level), \(threads) threads")
                    }
                }
                if q == .q4 {      // packed panel by panel in the threads (the vector packer when k is whole groups of 1,024)
                    var d = [Float](repeating: .nan, count: m * n)
                    withExtendedLifetime(pool) { ck_pool_q4_gemm(pool.raw, bytes, xq, &d, Int32(m), Int32(n), Int32(k), Int32(n)) }
                    #expect(d == want, "q4 packed in the threads, \(m)x\(n)x\(k), \(threads) threads")
                    if threads == 1 {        // below VNNI the same call is the reference's
                        var e = [Float](repeating: .nan, count: m * n)
                        QuantizedKernelTests.atISA(1) { ck_pool_q4_gemm(pool.raw, bytes, xq, &e, Int32(m), Int32(n), Int32(k), Int32(n)) }
                        #expect(e == want, "q4 GEMM below VNNI, \(m)x\(n)x\(k)")
                    }
                }
            }
            // Shorter prompts go through the multi-row products: each row as a product alone.
            if m > 1 && m <= multiRowMaxRows(q) {
                let w = WeightMatrix(quantized: q, base: raw.baseAddress!, rows: n, cols: k)
                var y = [Float](repeating: .nan, count: m * n), scratch: [Float] = []
                matmul(w, x, m, &y, scratch: &scratch)
                for i in 0..<m {
                    var row = [Float](repeating: .nan, count: n)
                    Array(x[(i * k)..<((i + 1) * k)]).withUnsafeBufferPointer { matvec(w, $0.baseAddress!, &row) }
                    #expect(Array(y[(i * n)..<((i + 1) * n)]) == row, "row \(i) of \(q) \(m)x\(n)x\(k)")
                }
            }
            // Through matmul, which packs in blocks (prompts longer than multiRowMaxRows).
            if m > multiRowMaxRows(q) {
                let w = WeightMatrix(quantized: q, base: raw.baseAddress!, rows: n, cols: k)
                var y = [Float](repeating: .nan, count: m * n), scratch: [Float] = []
                matmul(w, x, m, &y, scratch: &scratch)
                #expect(y == want, "matmul \(q) \(m)x\(n)x\(k)")
                // and within 3% of the largest exact output of the dequantized weights
                var deq = [Float](repeating: 0, count: n * k)
                deq.withUnsafeMutableBufferPointer { w.convertRows(0, n, into: $0.baseAddress!) }
                let exact = KernelTests.naive(deq, x, rows: n, cols: k, t: m)
                #expect(KernelTests.maxError(y, exact) / exact.map(abs).max()! < 0.03)
            }
        }
    }

    /// The integer GEMM straight from stored weights (int8 in rows, q4), each thread packing the
    /// panels it takes: at every instruction-set level (AVX2: int16 tiles of three activation rows x
    /// 16 weight rows) every output bit for bit its reference, for row counts that leave one or two
    /// rows after the tiles of three, weight rows that leave a half panel or less, column counts of
    /// whole and partial q4 groups, 1-3 threads; and with the int16 sums at their bounds: every
    /// activation +-127 against weights all at one extreme (int8 +-127, q4 nibbles 0 or 15).
    @Test(arguments: [(1, 16, 32), (2, 17, 64), (3, 33, 96), (4, 48, 1024), (5, 70, 2048), (8, 31, 160), (24, 45, 1024), (7, 83, 3072), (41, 64, 256)],
          Quantization.allCases)
    func integerGEMMFromStoredWeightsEqualsItsReferenceBitForBit(shape: (m: Int, n: Int, k: Int), q: Quantization) {
        let (m, n, k) = shape
        var rng = SeededRandom(seed: UInt64(m * 131 + n * 17 + k))
        let (storage, _) = KernelTests.matrix(n, k, .bf16, &rng)
        var stored = [UInt8](repeating: 0, count: WeightMatrix.quantizedBytes(rows: n, cols: k, q, panels: false))
        storage.withUnsafeBytes { raw in
            stored.withUnsafeMutableBytes { _ = WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: n, cols: k).quantized(as: q, into: $0.baseAddress!, panels: false) }
        }
        var extreme = stored
        if q == .q8 { for i in 0..<(n * k) { extreme[i] = UInt8(bitPattern: (i / k) % 2 == 0 ? 127 : -127) } }
        else {      // nibbles all 0 (a block of +1s: scale -1/8) or all but the first 15 (+1, then -1s)
            for r in 0..<n {
                let row = (0..<k).map { c -> Float in r % 2 == 0 || c % 32 == 0 ? 1 : -1 }
                ck_quantize_row_q4(row, &extreme, Int32(n), Int32(r), Int32(k))
            }
        }
        let x = KernelTests.randomFloats(m * k, &rng)
        var xExtreme = x
        for i in 0..<(m * k) { xExtreme[i] = ((i / 32 + i / k) % 2 == 0) == (i % 7 != 0) ? 1 : -1 }
        for (weights, name) in [(stored, "random"), (extreme, "extreme")] {
            for activations in [x, xExtreme] where name == "extreme" || activations == x {
                var xq = [ck_block_q8](repeating: ck_block_q8(), count: m * k / 32)
                ck_quantize_q8_blocks(activations, &xq, Int32(m * k))
                weights.withUnsafeBytes { raw in
                    let bytes = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
                    let rows8 = UnsafeRawPointer(bytes).assumingMemoryBound(to: Int8.self)
                    let scales = (raw.baseAddress! + n * k).assumingMemoryBound(to: Float.self)
                    var want = [Float](repeating: 0, count: m * n)
                    xq.withUnsafeBufferPointer { xb in
                        for i in 0..<m { for j in 0..<n {
                            let xrow = xb.baseAddress! + i * k / 32
                            want[i * n + j] = q == .q8 ? ck_q8_gemm_ref(rows8 + j * k, scales[j], xrow, Int32(k))
                                                       : ck_q4_gemm_ref(bytes, Int32(n), Int32(j), xrow, Int32(k))
                        } }
                    }
                    for level in Self.isaLevels { for threads in [1, 2, 3] {
                        let pool = ThreadPool(threads: threads)
                        var c = [Float](repeating: .nan, count: m * n)
                        Self.atISA(level) {
                            withExtendedLifetime(pool) {
                                if q == .q8 { ck_pool_q8_gemm_rows(pool.raw, rows8, scales, xq, &c, Int32(m), Int32(n), Int32(k), Int32(n)) }
                                else { ck_pool_q4_gemm(pool.raw, bytes, xq, &c, Int32(m), Int32(n), Int32(k), Int32(n)) }
                            }
                        }
                        #expect(c == want, "\(q) \(name) \(m)x\(n)x\(k), ISA level \(level), \(threads) threads")
                    } }
                }
            }
        }
    }

    @Test func quantizersRoundTrip() {
        var rng = SeededRandom(seed: 5)
        let x = KernelTests.randomFloats(256, &rng, scale: 2)
        // q8 rows: every value within half a step of its original.
        var q = [Int8](repeating: 0, count: 256); var scale: Float = 0
        ck_quantize_row_q8(x, &q, &scale, 256)
        #expect(scale == x.map(abs).max()! / 127)
        for i in 0..<256 { #expect(abs(Float(q[i]) * scale - x[i]) <= scale / 2 * 1.0001) }
        // q4 blocks: values (v - 8) x d with d = -(the largest-magnitude value) / 8, so that value is
        // exact, values on its side are within half a step, and those on the other side beyond -7|d|
        // are clamped (at most one step off), as llama.cpp's q4_0.
        var row = [UInt8](repeating: 0, count: 8 * 18)
        ck_quantize_row_q4(x, &row, 1, 0, 256)
        let w = row.withUnsafeBytes { WeightMatrix(quantized: .q4, base: $0.baseAddress!, rows: 1, cols: 256).dequantizedRow(0) }
        for b in 0..<8 {
            let d = abs(ck_q4_block_scale(row, 1, 256, 0, Int32(b)))
            for i in 0..<32 {
                let v = x[b * 32 + i], inRange = abs(v) <= 7 * d
                #expect(abs(w[b * 32 + i] - v) <= (inRange ? d * 0.5 : d) * 1.001 + 1e-6, "block \(b)")
            }
        }
        // float16 conversions agree with Swift's Float16 on every bit pattern's round trip.
        for bits in stride(from: 0, to: 65536, by: 7) {
            let h = UInt16(bits), f = ck_fp16_to_fp32(h)
            if f.isNaN { continue }
            #expect(f == Float(Float16(bitPattern: h)) && ck_fp32_to_fp16(f) == h)
        }
        for _ in 0..<2000 { let v = Float.random(in: -70000...70000, using: &rng); #expect(ck_fp32_to_fp16(v) == Float16(v).bitPattern) }
    }
}

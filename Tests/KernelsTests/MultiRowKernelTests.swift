import CKernels
import Foundation
import Testing
import TestSupport
@testable import Kernels

/// The multi-row products (short prompts, batched decoding): every activation row's result is the
/// bits of the one-row product for that row alone, and for the integer formats the bits of the
/// per-row reference; at every instruction-set level (level 1 with and without AVX-VNNI where the
/// CPU has it), on 1-3 threads, for shapes with rows left
/// after the last group of four (int8 panels: of 32), several column blocks or groups, and a
/// narrower last group. int8 is tested in rows and in the GEMM's panels.
struct MultiRowKernelTests {
    static let shapes = [(7, 64), (33, 96), (300, 512), (70, 2112), (259, 8192), (5, 2240)]

    enum Format: CaseIterable { case bf16, bf16InFours, q8, q8Panels, q4 }

    @Test(arguments: shapes, [2, 3, 4, 5, 7, 24])
    func everyRowIsItsOwnDecodeProduct(shape: (rows: Int, cols: Int), t: Int) {
        let (rows, cols) = shape
        var rng = SeededRandom(seed: UInt64(rows * 31 + cols + t))
        let (storage, values) = KernelTests.matrix(rows, cols, .bf16, &rng)
        let x = KernelTests.randomFloats(t * cols, &rng, scale: 2)
        let packed = KernelTests.inFours(storage, rows: rows, cols: cols)
        for format in Format.allCases {
            let quantization: Quantization? = format == .q8 || format == .q8Panels ? .q8 : (format == .q4 ? .q4 : nil)
            let panels = format == .q8Panels
            let store = QuantStorage(bytes: quantization.map { WeightMatrix.quantizedBytes(rows: rows, cols: cols, $0, panels: panels) } ?? 1)
            let rowsStore = QuantStorage(bytes: WeightMatrix.quantizedBytes(rows: rows, cols: cols, .q8, panels: false))
            let bytes = format == .bf16InFours ? packed : storage
            bytes.withUnsafeBytes { raw in
                var w = WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols,
                                     layout: format == .bf16InFours ? .groupsOfFour : .rowMajor)
                var inRows = w
                if let q = quantization {
                    let dense = WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols)
                    w = dense.quantized(as: q, into: store.base, panels: panels)
                    inRows = panels ? dense.quantized(as: q, into: rowsStore.base, panels: false) : w
                }
                #expect(w.layout == (panels ? .int8Panels : (format == .bf16InFours ? .groupsOfFour : .rowMajor)))
                let reference = Self.reference(inRows, format, x, t: t, values: values)
                for level in QuantizedKernelTests.integerVariants { for threads in [1, 2, 3] {
                    let pool = ThreadPool(threads: threads)
                    var y = [Float](repeating: .nan, count: t * rows)
                    var one = [Float](repeating: .nan, count: t * rows)
                    QuantizedKernelTests.atISA(level) {
                        matrows(w, x, t, &y, pool: pool)
                        for m in 0..<t {
                            x.withUnsafeBufferPointer { xb in
                                one.withUnsafeMutableBufferPointer { ob in
                                    matvec(w, xb.baseAddress! + m * cols, ob.baseAddress! + m * rows, pool: pool)
                                }
                            }
                        }
                    }
                    let label = "\(format) \(rows)x\(cols) t=\(t), \(threads) threads, ISA level \(level)"
                    #expect(Self.differing(y, one) == 0, "\(label): outputs that are not the one-row product's bits")
                    switch reference {
                    case .bits(let ref): #expect(Self.differing(y, ref) == 0, "\(label): outputs that are not the reference's bits")
                    case .close(let exact):
                        let scale = exact.map(abs).max()! + 1e-30
                        #expect(KernelTests.maxError(y, exact) / scale < 1e-5, "\(label): far from the naive product")
                    }
                } }
            }
        }
    }

    /// A prompt's rows against bf16 weights, in rows or in groups of four (`sameBitsAsAlone: false`): at ISA
    /// level 3 the AMX tiles, each output within 2^-16 of the sum of its products' magnitudes
    /// (each activation is split into two bf16: what is left is at most 2^-18 of it), and not
    /// the one-row product's bits wherever a run of 64 rows went through the tiles; with AVX-512 and
    /// no tiles, rows in groups of four in fours of activation rows (`bf16x4_rows4p_avx512`),
    /// within the same bound and not the one-row bits wherever the pool ran them (several
    /// threads, rows past its single-thread size); else the one-row product's bits (the same
    /// kernels as batched decoding). Rows in whole runs of 64 (128, 192) go through the tiles alone.
    @Test(arguments: shapes + [(128, 2112), (192, 96)], [2, 5, 6, 7, 17, 40])
    func promptRowsOnTilesAreTheProductToFloatRounding(shape: (rows: Int, cols: Int), t: Int) {
        let (rows, cols) = shape
        var rng = SeededRandom(seed: UInt64(rows * 17 + cols + t))
        let (storage, values) = KernelTests.matrix(rows, cols, .bf16, &rng)
        let x = KernelTests.randomFloats(t * cols, &rng, scale: 2)
        let exact = KernelTests.naive(values, x, rows: rows, cols: cols, t: t)
        let magnitude = KernelTests.naive(values.map(abs), x.map(abs), rows: rows, cols: cols, t: t)
        let packed = KernelTests.inFours(storage, rows: rows, cols: cols)
        for inFours in [false, true] { (inFours ? packed : storage).withUnsafeBytes { raw in
            let w = WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols, layout: inFours ? .groupsOfFour : .rowMajor)
            for level in QuantizedKernelTests.isaLevels { for threads in [1, 2, 3] {
                let pool = ThreadPool(threads: threads)
                var y = [Float](repeating: .nan, count: t * rows)
                var alone = [Float](repeating: .nan, count: t * rows)
                QuantizedKernelTests.atISA(level) {
                    matrows(w, x, t, &y, pool: pool, sameBitsAsAlone: false)
                    matrows(w, x, t, &alone, pool: pool)
                }
                let label = "\(inFours ? "in fours" : "in rows") \(rows)x\(cols) t=\(t), \(threads) threads, ISA level \(level)"
                let far = zip(y.indices, y).filter { i, v in !(abs(Double(v) - exact[i]) <= 0x1p-16 * magnitude[i]) }.count
                #expect(far == 0, "\(label): \(far) outputs far from the exact product")
                let tiled = level >= 3 && cols % 32 == 0 && rows >= 64
                let pooled = threads >= 2 && rows >= max(8, 32768 / (2 * cols))
                let fours = !tiled && inFours && level >= 2 && pooled && t >= 4
                if tiled { #expect(Self.differing(y, alone) > 0, "\(label): the tiles did not run") }
                else if fours { #expect(Self.differing(y, alone) > 0, "\(label): the rows in fours did not run") }
                else { #expect(Self.differing(y, alone) == 0, "\(label): outputs that are not the one-row product's bits") }
            } }
        } }
    }

    enum Reference { case bits([Float]), close([Double]) }

    /// How many outputs differ in their bits (a NaN never written counts).
    static func differing(_ a: [Float], _ b: [Float]) -> Int {
        a.count != b.count ? max(a.count, b.count) : zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count
    }

    /// The naive twin: for bf16 the Double product of the stored values; for int8 and q4 the
    /// per-row reference dot products over each row's own activation blocks (int8 panels: the
    /// integer GEMM's reference, one fmaf per block, on the same int8 rows).
    static func reference(_ w: WeightMatrix, _ format: Format, _ x: [Float], t: Int, values: [Float]) -> Reference {
        let (rows, cols) = (w.rows, w.cols)
        switch format {
        case .bf16, .bf16InFours:
            return .close(KernelTests.naive(values, x, rows: rows, cols: cols, t: t))
        case .q8, .q8Panels, .q4:
            var out = [Float](repeating: 0, count: t * rows)
            for m in 0..<t {
                var xq = [ck_block_q8](repeating: ck_block_q8(), count: cols / 32)
                Array(x[(m * cols)..<((m + 1) * cols)]).withUnsafeBufferPointer { ck_quantize_q8_blocks($0.baseAddress!, &xq, Int32(cols)) }
                for r in 0..<rows {
                    if format == .q4 {
                        out[m * rows + r] = ck_dot_q4_ref(w.base.assumingMemoryBound(to: UInt8.self), Int32(rows), Int32(r), xq, Int32(cols))
                        continue
                    }
                    // int8 rows: rows x cols int8, then a float scale per row (q4 has no such scales).
                    let int8Row = w.base.assumingMemoryBound(to: Int8.self) + r * cols
                    let scale = (w.base + rows * cols).assumingMemoryBound(to: Float.self)[r]
                    out[m * rows + r] = format == .q8 ? ck_dot_q8_ref(int8Row, scale, xq, Int32(cols))
                                                     : ck_q8_gemm_ref(int8Row, scale, xq, Int32(cols))
                }
            }
            return .bits(out)
        }
    }
}

import CKernels
import Foundation
import COpenBLAS

/// y[r] = sum_c W[r, c] * x[c] for one vector: the decode step's kernel. Streams W once with
/// every thread of `pool`: bf16 converted in registers; int8 and 4-bit weights multiplied with x
/// quantized to int8 blocks of 32 (integer dot products, CKernels).
/// - x: [W.cols], y: [W.rows]
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                   pool: ThreadPool = .shared) {
    matrows(w, x, 1, y, pool: pool)
}

/// Y = X W^T for a few rows (a short prompt, or one token of each of several sequences): the
/// multi-row products of CKernels, which read the weights once for all `t` rows; each row's result
/// is the bits `matvec` gives for it alone. With `sameBitsAsAlone` false (a prompt's rows) bf16
/// weights may go through AMX tiles instead (`onTiles`): within about float rounding of the exact
/// product, not `matvec`'s bits. Types without a pooled kernel (f16,
/// f32) go row by row.
/// - x: [t, W.cols], y: [t, W.rows]
public func matrows(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ t: Int, _ y: UnsafeMutablePointer<Float>,
                    pool: ThreadPool = .shared, sameBitsAsAlone: Bool = true) {
    let (rows, cols) = (Int32(w.rows), Int32(w.cols))
    if let q = w.quantization {
        withQ8Blocks(x, t * w.cols) { xq in
            switch q {
            case .q8 where w.layout == .int8Panels:
                ck_pool_q8_gemm(pool.raw, w.base.assumingMemoryBound(to: UInt8.self), w.int8Scales, xq, y, Int32(t), rows, cols, rows)
            case .q8:
                ck_pool_matrows_q8(pool.raw, w.base.assumingMemoryBound(to: Int8.self), w.int8Scales, xq, y, Int32(t), rows, cols)
            case .q4:
                ck_pool_matrows_q4(pool.raw, w.base.assumingMemoryBound(to: UInt8.self), xq, y, Int32(t), rows, cols)
            }
        }
        return
    }
    if w.layout == .groupsOfFour {
        let wb = w.base.assumingMemoryBound(to: UInt16.self)
        if sameBitsAsAlone { ck_pool_matrows_bf16_rows4(pool.raw, wb, x, y, Int32(t), rows, cols) }
        else { ck_pool_prompt_bf16_rows4(pool.raw, wb, x, y, Int32(t), rows, cols) }
        return
    }
    if w.dtype == .bf16 {
        let wb = w.base.assumingMemoryBound(to: UInt16.self)
        if sameBitsAsAlone { ck_pool_matrows_bf16(pool.raw, wb, x, y, Int32(t), rows, cols) }
        else { ck_pool_prompt_bf16(pool.raw, wb, x, y, Int32(t), rows, cols) }
        return
    }
    for i in 0..<t { matvecRows(w, x + i * w.cols, y + i * w.rows, 0, w.rows) }
}

/// The rows r0..<r1 of `matvec` for the types without a pooled kernel (f16, f32), on the calling
/// thread.
public func matvecRows(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                       _ r0: Int, _ r1: Int) {
    let n = w.cols
    var row = [Float](repeating: 0, count: n)
    row.withUnsafeMutableBufferPointer { f in
        for r in r0..<r1 {
            w.convertRows(r, r + 1, into: f.baseAddress!)
            var s: Float = 0
            for c in 0..<n { s += f[c] * x[c] }
            y[r] = s
        }
    }
}

/// Y = X W^T for a batch of rows: the prefill's kernel. `sameBitsAsAlone`: the rows are one token
/// of each of several sequences (batched decoding), each of which must get the bits its own decode
/// step would (`matrows`).
/// - x: [t, W.cols] row-major; y: [t, W.rows] row-major.
/// One vector goes through `matvec`; more go through OpenBLAS sgemm on blocks of W converted to
/// Float in a reusable buffer, so no full Float copy of the weights ever exists. `rowsPerCore`:
/// the float path's rows go in one single-threaded OpenBLAS call per core (`sgemmRowsSplit`).
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ t: Int, _ y: UnsafeMutablePointer<Float>,
                   scratch: inout [Float], rowsPerCore: Bool = false, sameBitsAsAlone: Bool = false) {
    if t == 1 { matvec(w, x, y); return }
    if t <= multiRowMaxRows(w) || w.layout == .int8Panels { matrows(w, x, t, y, sameBitsAsAlone: sameBitsAsAlone); return }
    if onTiles(w) && !sameBitsAsAlone {
        // The tiles outrun the float GEMM at every length: longer prompts go in slices, the
        // weights read once per slice.
        let slice = multiRowMaxRows(w)
        for r in stride(from: 0, to: t, by: slice) {
            matrows(w, x + r * w.cols, min(slice, t - r), y + r * w.rows, sameBitsAsAlone: false)
        }
        return
    }
    if let q = w.quantization, integerGEMMAvailable {
        int8Matmul(w, q, x, t, y)
        return
    }
    let blockRows = max(1, min(w.rows, gemmBlockFloats / max(w.cols, 1)))
    if scratch.count < blockRows * w.cols { scratch = [Float](repeating: 0, count: blockRows * w.cols) }
    scratch.withUnsafeMutableBufferPointer { buf in
        let tmp = buf.baseAddress!
        var r0 = 0
        while r0 < w.rows {
            let r1 = min(w.rows, r0 + blockRows)
            let wb: UnsafePointer<Float>
            if w.dtype == .f32 && w.quantization == nil && w.layout == .rowMajor {
                wb = w.base.assumingMemoryBound(to: Float.self) + r0 * w.cols
            } else {
                w.convertRows(r0, r1, into: tmp)
                wb = UnsafePointer(tmp)
            }
            sgemmRowsSplit(x, t, wb, r0, r1, cols: w.cols, y, ldy: w.rows, parts: rowsPerCore ? ThreadPool.shared.threads : 1)
            r0 = r1
        }
    }
}

/// y[:, r0..<r1] (row stride ldy) = X[t, cols] * B^T for a weight block B = [r1 - r0, cols] through
/// OpenBLAS: with `parts` > 1 the rows of X go in that many parts at once, each an OpenBLAS call
/// on one thread, else one call that OpenBLAS threads itself. After a threaded call OpenBLAS's
/// worker spins on its core for ~0.1 s, which in the vision encoder overlapped the attention
/// heads running on both cores; the encoder asks for parts (bench, 7-tile batch, same-run pairs:
/// 4.21-4.28 -> 4.01-4.04 s per tile). Prompts gained nothing (2,048 rows: 56.6-59.8 -> 56.4-57.8
/// tok/s; 256 rows: 47-52 -> 46-47), so they keep OpenBLAS's threads.
func sgemmRowsSplit(_ x: UnsafePointer<Float>, _ t: Int, _ b: UnsafePointer<Float>, _ r0: Int, _ r1: Int, cols: Int,
                    _ y: UnsafeMutablePointer<Float>, ldy: Int, parts: Int) {
    let parts = min(parts, t)
    if parts <= 1 { sgemmNT(m: t, n: r1 - r0, k: cols, a: x, lda: cols, b: b, ldb: cols, c: y + r0, ldc: ldy); return }
    let xs = SendablePointer(x), bs = SendablePointer(b), ys = SendablePointer(y)
    singleThreadedBLAS.enter()
    defer { singleThreadedBLAS.leave() }
    DispatchQueue.concurrentPerform(iterations: parts) { k in
        let a0 = t * k / parts, a1 = t * (k + 1) / parts
        sgemmNT(m: a1 - a0, n: r1 - r0, k: cols, a: xs.p + a0 * cols, lda: cols, b: bs.p, ldb: cols, c: ys.p + a0 * ldy + r0, ldc: ldy)
    }
}


/// Prompts of up to this many rows go through `matrows` (the weights read once, each row as a
/// decode step computes it); longer ones through the GEMMs. Measured on the real-size model
/// (bench prefill tok/s at 8-128 rows, matrows against the GEMM path, docs/benchmarks.md, one
/// run): bf16 matrows led at every length to 128 (49.9 / 37.5 at 128 with AVX-512, 40.9 / 41.2
/// with AVX2); q4 too (93.7 / 89.5, 53.8 / 43.0); int8 led the VNNI GEMM to 48 rows (49.3 /
/// 41.2) and lost from 64 (28.0 / 35.1), and the AVX2 float path to 96 (28.3 / 20.0), not at 128
/// (25.9 / 36.2). On an Intel Xeon whose OpenBLAS runs its SkylakeX or Haswell kernels (150-300
/// GFLOP/s) the GEMMs took bf16's AVX2 path over from 96 rows (matrows / GEMM 27.5 / 28.7 tok/s at
/// 96, 25.7 / 33.2 at 128), its AVX-512 path at about 128 (42.1 / 46.6); the q4 and int8 lines held.
/// Since the q4 GEMM packs its panels in the threads that run them (`ck_pool_q4_gemm`; before, one
/// thread packed the whole matrix first), with VNNI it leads matrows from 6 rows (Intel Xeon: 59.8 /
/// 57.4 at 6, 104.3 / 62.3 at 24, 126.0 / 70.4 at 64) and trails at 2-4 (26.2 / 36.4 at 2).
/// With AVX2 and no VNNI, int8 and q4 prompts have the AVX2 integer GEMM (`integerGEMMAvailable`):
/// on the Intel Xeon at `INTERNVL_CHAT_ISA=avx2`, two rounds, matrows / GEMM tok/s, int8 43.8-49.3
/// / 39.8-39.9 at 8 rows, 44.6-48.5 / 47.1-47.4 at 12, 42.0-47.9 / 50.8-55.7 at 16; q4 48.3-53.1 /
/// 47.2-52.7 at 6, 44.8-54.0 / 57.1-59.5 at 8, 51.0-56.1 / 73.4-73.9 at 12.
/// With AMX bf16 tiles (`onTiles`) a bf16 prompt of any length goes through `matrows` in slices of
/// this many rows (bf16 prefill tok/s at 128 / 512 / 2,048 rows with slices of 64: 223.5 / 219.3 /
/// 192.4; 128: 246.5 / 251.5 / 193.1; 256: 199.8 / 197.8 / 168.8; the float GEMM 57-79).
/// With AVX-512 and no tiles a bf16 prompt against weights in groups of four goes in rows of four
/// (`bf16x4_rows4p_avx512`), which on a Zen 5 (Cooperlake SGEMM, ~400 GFLOP/s) led the GEMM to 256
/// rows (prefill tok/s 95-114 / 68-78 at 160, 100-102 / 87-91 at 256) and matched it at 512-1,024
/// (97.6 / 97.2, 104.0 / 100.9): those go through `matrows` up to 256 rows (with two or more pool
/// threads: one thread runs each row alone; not with `INTERNVL_CHAT_PROMPT_FOURS=0`).
/// `INTERNVL_CHAT_MATROWS_MAX` overrides it (how the crossover is measured).
public func multiRowMaxRows(_ w: WeightMatrix) -> Int {
    if w.quantization == nil && w.dtype != .bf16 { return 1 }
    if w.quantization == nil && w.layout == .groupsOfFour && matrowsOverride == nil && ck_isa() == 2
        && ck_prompt_rows_in_fours() != 0 && ThreadPool.shared.threads >= 2 { return 256 }
    return multiRowMaxRows(w.quantization)
}

/// `multiRowMaxRows` for weights in a format (nil: bf16).
public func multiRowMaxRows(_ q: Quantization?) -> Int {
    if let n = matrowsOverride { return n }
    switch q {
    case .q8?: return int8GEMMAvailable ? 48 : (integerGEMMAvailable ? 11 : 96)
    case .q4?: return ck_isa() >= 2 ? 5 : (integerGEMMAvailable ? 6 : 128)
    case nil: return ck_isa() >= 2 ? 128 : 96
    }
}

let matrowsOverride: Int? = ProcessInfo.processInfo.environment["INTERNVL_CHAT_MATROWS_MAX"].flatMap { Int($0) }

/// Whether a prompt's bf16 rows go through AMX bf16 tiles (ISA level 3: AVX-512 with AMX, allowed
/// by the OS; `INTERNVL_CHAT_ISA=avx512` caps it off).
public var amxTilesAvailable: Bool { ck_isa() >= 3 }

/// Whether a prompt's (or an image's) rows against `w` go through the AMX tiles: bf16 weights, in
/// groups of four or in rows, of a shape the tiles take (`ck_prompt_on_tiles`).
func onTiles(_ w: WeightMatrix) -> Bool {
    w.quantization == nil && w.dtype == .bf16 && (w.layout == .groupsOfFour || w.layout == .rowMajor)
        && ck_prompt_on_tiles(Int32(w.rows), Int32(w.cols)) != 0
}

/// Whether this CPU has the VNNI integer GEMM (AVX-512 VNNI, or AVX-VNNI for int8; capped by
/// `INTERNVL_CHAT_ISA`), whose panels the language model's int8 matrices are stored in.
public var int8GEMMAvailable: Bool { ck_q8_gemm_available() != 0 }

/// Whether prompts with int8 or q4 weights go through an integer GEMM: VNNI tiles, or with AVX2 the
/// int16 tiles (`ck_pool_q8_gemm_rows`, `ck_pool_q4_gemm`).
public var integerGEMMAvailable: Bool { ck_isa() >= 1 }

/// Y = X W^T for int8 or q4 weights: X's rows quantized to int8 blocks of 32 exactly as a decode
/// step quantizes its vector, integer products summed block by block (CKernels). The weights are
/// packed panel by panel by the pool threads that run them (`ck_pool_q4_gemm`,
/// `ck_pool_q8_gemm_rows`: VNNI or AVX2 panels by the CPU), so they come from memory once.
func int8Matmul(_ w: WeightMatrix, _ q: Quantization, _ x: UnsafePointer<Float>, _ t: Int, _ y: UnsafeMutablePointer<Float>) {
    let k = w.cols, base = w.base.assumingMemoryBound(to: UInt8.self)
    withQ8Blocks(x, t * k) { xq in
        if q == .q4 {
            ck_pool_q4_gemm(ThreadPool.shared.raw, base, xq, y, Int32(t), Int32(w.rows), Int32(k), Int32(w.rows))
        } else {
            ck_pool_q8_gemm_rows(ThreadPool.shared.raw, UnsafeRawPointer(base).assumingMemoryBound(to: Int8.self), w.int8Scales,
                                 xq, y, Int32(t), Int32(w.rows), Int32(k), Int32(w.rows))
        }
    }
}

/// Floats of converted weights per SGEMM call (64 MiB): every call packs the activations again,
/// so a whole vision matrix (at most 4M floats) goes in one call and the language model's in one
/// to four; 1M (4 MiB) blocks were measured 7% slower on vision and 4% on a 2,048-token prefill.
/// `INTERNVL_CHAT_GEMM_BLOCK` overrides it (benchmarks).
let gemmBlockFloats: Int = {
    if let v = ProcessInfo.processInfo.environment["INTERNVL_CHAT_GEMM_BLOCK"], let n = Int(v), n > 0 { return n }
    return 1 << 24
}()

/// C[m, n] = A[m, k] * B[n, k]^T (+ C if accumulate), all Float with explicit leading dimensions.
public func sgemmNT(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                    c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, accumulate: Bool = false) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), alpha,
                a, Int32(lda), b, Int32(ldb), accumulate ? 1 : 0, c, Int32(ldc))
}

/// C[m, n] = A[m, k] * B[k, n], all Float with explicit leading dimensions.
public func sgemmNN(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                    c: UnsafeMutablePointer<Float>, ldc: Int) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                a, Int32(lda), b, Int32(ldb), 0, c, Int32(ldc))
}


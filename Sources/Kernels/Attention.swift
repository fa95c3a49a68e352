import CKernels
import COpenBLAS
import Dispatch
import Foundation

/// How the KV cache stores keys and values.
public enum KVPrecision: String, Sendable, CaseIterable {
    case float16 = "f16", float32 = "f32"
    public var size: Int { self == .float16 ? 2 : 4 }
}

/// One layer's cached keys and values from position 0 in `precision`: element d of kv head g at
/// position j is at `j * positionStride + g * headStride + d` (in elements).
public struct KVRows {
    public let keys: UnsafeRawPointer
    public let values: UnsafeRawPointer
    public let precision: KVPrecision
    public let positionStride: Int
    public let headStride: Int
    public init(keys: UnsafeRawPointer, values: UnsafeRawPointer, precision: KVPrecision, positionStride: Int, headStride: Int) {
        self.keys = keys; self.values = values; self.precision = precision
        self.positionStride = positionStride; self.headStride = headStride
    }

    /// Rows of `kvHeads * dim` values, one position after another.
    public static func positionMajor(keys: UnsafeRawPointer, values: UnsafeRawPointer, precision: KVPrecision,
                                     kvHeads: Int, dim: Int) -> KVRows {
        KVRows(keys: keys, values: values, precision: precision, positionStride: kvHeads * dim, headStride: dim)
    }
}

/// Causal grouped-query attention of `t` new positions against a cache holding `past + t` keys.
///
/// - q:   [t, heads * dim]            queries of the new positions (already rotated)
/// - kv:  past + t positions x kvHeads of dim values (any strides) cached keys / values, the new
///        ones last
/// - out: [t, heads * dim]
/// Query head h reads kv head h / (heads / kvHeads) (repeat_kv). Scores are scaled by
/// 1/sqrt(dim); position i may see keys 0...past+i. `scores` is scratch of t * (past + t);
/// `kvFloats` holds float16 keys and values widened for the GEMMs of a prompt (t > 1); the
/// decode step (t == 1) reads the stored form directly.
public func causalAttention(q: UnsafePointer<Float>, kv: KVRows, out: UnsafeMutablePointer<Float>, t: Int, past: Int,
                            heads: Int, kvHeads: Int, dim: Int, scores: inout [Float], kvFloats: inout [Float]) {
    let total = past + t
    if t == 1 {      // the decode step: heads over the pool's threads, no GEMM with one row
        ck_pool_attention_decode(ThreadPool.shared.raw, q, kv.keys, kv.values, kv.precision == .float16 ? 1 : 0, out,
                                 Int32(total), Int32(heads), Int32(kvHeads), Int32(dim), kv.positionStride, kv.headStride,
                                 1 / Float(dim).squareRoot())
        return
    }
    if t <= shortAttentionMaxRows {      // a short prompt: the cache read once per kv head, no GEMM
        ck_pool_attention_rows(ThreadPool.shared.raw, q, kv.keys, kv.values, kv.precision == .float16 ? 1 : 0, out,
                               Int32(t), Int32(past), Int32(heads), Int32(kvHeads), Int32(dim), kv.positionStride, kv.headStride,
                               1 / Float(dim).squareRoot())
        return
    }
    switch kv.precision {
    case .float32:
        prefillAttention(q: q, k: kv.keys.assumingMemoryBound(to: Float.self), v: kv.values.assumingMemoryBound(to: Float.self),
                         positionStride: kv.positionStride, headStride: kv.headStride,
                         out: out, t: t, past: past, heads: heads, kvHeads: kvHeads, dim: dim, scores: &scores)
    case .float16:
        // Widened into one reusable buffer, kv head by kv head ([kvHeads, total, dim]).
        let n = total * kvHeads * dim
        if kvFloats.count < 2 * n { kvFloats = [Float](repeating: 0, count: 2 * n) }
        kvFloats.withUnsafeMutableBufferPointer { f in
            let k = f.baseAddress!, v = k + n
            let keys = kv.keys.assumingMemoryBound(to: UInt16.self), values = kv.values.assumingMemoryBound(to: UInt16.self)
            func widen(_ src: Int, _ dst: Int, _ count: Int) {
                ck_f16_to_f32(keys + src, k + dst, count)
                ck_f16_to_f32(values + src, v + dst, count)
            }
            for g in 0..<kvHeads {
                if kv.positionStride == dim {            // stored head by head: one run per head
                    widen(g * kv.headStride, g * total * dim, total * dim)
                } else {
                    for j in 0..<total { widen(j * kv.positionStride + g * kv.headStride, (g * total + j) * dim, dim) }
                }
            }
            prefillAttention(q: q, k: k, v: v, positionStride: dim, headStride: total * dim,
                             out: out, t: t, past: past, heads: heads, kvHeads: kvHeads, dim: dim, scores: &scores)
        }
    }
}

/// Prompts of up to this many new positions take `ck_pool_attention_rows`; longer ones the GEMMs.
let shortAttentionMaxRows = 64

/// `causalAttention` over float32 keys and values.
public func causalAttention(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                            out: UnsafeMutablePointer<Float>, t: Int, past: Int,
                            heads: Int, kvHeads: Int, dim: Int, scores: inout [Float]) {
    var unused: [Float] = []
    causalAttention(q: q, kv: .positionMajor(keys: UnsafeRawPointer(k), values: UnsafeRawPointer(v), precision: .float32,
                                            kvHeads: kvHeads, dim: dim), out: out,
                    t: t, past: past, heads: heads, kvHeads: kvHeads, dim: dim, scores: &scores, kvFloats: &unused)
}

/// Rows of a prompt's queries per causal block: a block of rows needs only the keys up to its last
/// row, so the products skip the masked upper triangle (about 44% of them at 2,048 rows).
let causalBlockRows = 256

/// A prompt's attention by two SGEMMs per head and block of rows around a row softmax, heads over
/// the cores.
private func prefillAttention(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                              positionStride: Int, headStride: Int,
                              out: UnsafeMutablePointer<Float>, t: Int, past: Int,
                              heads: Int, kvHeads: Int, dim: Int, scores: inout [Float]) {
    let total = past + t
    let groups = heads / kvHeads
    let qStride = heads * dim
    let scale = 1 / Float(dim).squareRoot()
    let block = min(t, causalBlockRows)
    let (q, k, v, out) = (SendablePointer(q), SendablePointer(k), SendablePointer(v), SendablePointer(out))
    forEachHead(heads, scoresPerHead: block * total, scores: &scores) { h, s in
        let g = h / groups
        var i0 = 0
        while i0 < t {
            let rows = min(block, t - i0), visible = past + i0 + rows
            // S[rows, visible] = scale * Q_h[i0 ..< i0 + rows] K_g[0 ..< visible]^T
            sgemmNT(m: rows, n: visible, k: dim, a: q.p + i0 * qStride + h * dim, lda: qStride, b: k.p + g * headStride,
                    ldb: positionStride, c: s, ldc: visible, alpha: scale)
            // Row i0 + j sees keys 0...past + i0 + j.
            ck_softmax_rows(s, Int32(rows), Int32(visible), Int32(visible), Int32(past + i0))
            // O_h[i0 ..< i0 + rows, dim] = S V_g[0 ..< visible]
            sgemmNN(m: rows, n: dim, k: visible, a: s, lda: visible, b: v.p + g * headStride, ldb: positionStride,
                    c: out.p + i0 * qStride + h * dim, ldc: qStride)
            i0 += rows
        }
    }
}

/// A pointer (or closure) handed to the worker threads of one parallel step, which own disjoint
/// parts of what it points to.
public struct SendablePointer<P>: @unchecked Sendable { public let p: P; public init(_ p: P) { self.p = p } }

/// OpenBLAS runs single-threaded while any caller is inside: the first to enter saves the thread
/// count and the last to leave restores it, so concurrent or nested callers cannot leave it at 1.
final class SingleThreadedBLAS: @unchecked Sendable {
    private let lock = NSLock()
    private var depth = 0
    private var saved: Int32 = 1

    func enter() {
        lock.lock(); defer { lock.unlock() }
        if depth == 0 { saved = openblas_get_num_threads(); openblas_set_num_threads(1) }
        depth += 1
    }

    func leave() {
        lock.lock(); defer { lock.unlock() }
        depth -= 1
        if depth == 0 { openblas_set_num_threads(saved) }
    }
}

let singleThreadedBLAS = SingleThreadedBLAS()

/// Runs `body(head, scores)` for every head, the heads split over the cores, each core with its
/// own `scoresPerHead` floats of `scores` and OpenBLAS single-threaded inside: the attention
/// GEMMs (k = the head dim) are too small for OpenBLAS to split (measured 1025x1025x64: 92
/// GFLOP/s on two threads, 91 on one), while two heads at once use both cores. Softmax runs in
/// parallel too.
func forEachHead(_ heads: Int, scoresPerHead: Int, scores: inout [Float],
                 _ body: (Int, UnsafeMutablePointer<Float>) -> Void) {
    let workers = max(1, min(heads, ThreadPool.shared.threads))
    if scores.count < workers * scoresPerHead { scores = [Float](repeating: 0, count: workers * scoresPerHead) }
    scores.withUnsafeMutableBufferPointer { buf in
        let base = SendablePointer(buf.baseAddress!)
        if workers == 1 {
            for h in 0..<heads { body(h, base.p) }
            return
        }
        singleThreadedBLAS.enter()
        defer { singleThreadedBLAS.leave() }
        withoutActuallyEscaping(body) { body in
            let work = SendablePointer(body)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                for h in stride(from: w, to: heads, by: workers) { work.p(h, base.p + w * scoresPerHead) }
            }
        }
    }
}

/// Bidirectional multi-head attention over `n` tokens (the vision encoder's), heads over the cores.
/// q, k, v: rows of `stride` floats, head h at columns h*dim ..< (h+1)*dim of each;
/// out: [n, heads * dim]. Scores scaled by 1/sqrt(dim). `scores` is scratch (n * n per core).
/// With AMX tiles (`amxTilesAvailable`, dim a multiple of 32) each head's two products run on them
/// (`ck_attention_head_amx`: every operand split into two bf16), else through OpenBLAS.
public func fullAttention(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, stride: Int,
                          out: UnsafeMutablePointer<Float>, n: Int, heads: Int, dim: Int, scores: inout [Float]) {
    let scale = 1 / Float(dim).squareRoot()
    let (q, k, v, out) = (SendablePointer(q), SendablePointer(k), SendablePointer(v), SendablePointer(out))
    if amxTilesAvailable && dim % 32 == 0 {
        forEachHead(heads, scoresPerHead: n * n, scores: &scores) { h, s in
            ck_attention_head_amx(q.p + h * dim, k.p + h * dim, v.p + h * dim, stride, out.p + h * dim, heads * dim,
                                  Int32(n), Int32(dim), scale, s)
        }
        return
    }
    forEachHead(heads, scoresPerHead: n * n, scores: &scores) { h, s in
        sgemmNT(m: n, n: n, k: dim, a: q.p + h * dim, lda: stride, b: k.p + h * dim, ldb: stride, c: s, ldc: n, alpha: scale)
        ck_softmax_rows(s, Int32(n), Int32(n), Int32(n), -1)
        sgemmNN(m: n, n: dim, k: n, a: s, lda: n, b: v.p + h * dim, ldb: stride, c: out.p + h * dim, ldc: heads * dim)
    }
}

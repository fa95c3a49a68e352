import CKernels

/// Causal grouped-query attention of `t` new positions against a cache holding `past + t` keys.
///
/// - q:   [t, heads * dim]            queries of the new positions (already rotated)
/// - k,v: [past + t, kvHeads * dim]   cached keys / values, the new ones appended last
/// - out: [t, heads * dim]
/// Query head h reads kv head h / (heads / kvHeads) (repeat_kv). Scores are scaled by
/// 1/sqrt(dim); position i may see keys 0...past+i. `scores` is scratch of t * (past + t).
public func causalAttention(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                            out: UnsafeMutablePointer<Float>, t: Int, past: Int,
                            heads: Int, kvHeads: Int, dim: Int, scores: inout [Float]) {
    let total = past + t
    let groups = heads / kvHeads
    let qStride = heads * dim, kvStride = kvHeads * dim
    if t == 1 {      // the decode step: heads over the pool's threads, no GEMM with one row
        ck_pool_attention_decode(ThreadPool.shared.raw, q, k, v, out, Int32(total), Int32(heads), Int32(kvHeads), Int32(dim),
                                 Int32(kvStride), 1 / Float(dim).squareRoot())
        return
    }
    if scores.count < t * total { scores = [Float](repeating: 0, count: t * total) }
    let scale = 1 / Float(dim).squareRoot()
    scores.withUnsafeMutableBufferPointer { sbuf in
        let s = sbuf.baseAddress!
        for h in 0..<heads {
            let g = h / groups
            // S[t, total] = scale * Q_h K_g^T
            sgemmNT(m: t, n: total, k: dim, a: q + h * dim, lda: qStride, b: k + g * dim, ldb: kvStride,
                    c: s, ldc: total, alpha: scale)
            // Row i sees keys 0...past+i.
            ck_softmax_rows(s, Int32(t), Int32(total), Int32(total), Int32(past))
            // O_h[t, dim] = S V_g
            sgemmNN(m: t, n: dim, k: total, a: s, lda: total, b: v + g * dim, ldb: kvStride,
                    c: out + h * dim, ldc: qStride)
        }
    }
}

/// Bidirectional multi-head attention over `n` tokens (the vision encoder's).
/// q, k, v: rows of `stride` floats, head h at columns h*dim ..< (h+1)*dim of each;
/// out: [n, heads * dim]. Scores scaled by 1/sqrt(dim). `scores` is scratch of n * n.
public func fullAttention(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, stride: Int,
                          out: UnsafeMutablePointer<Float>, n: Int, heads: Int, dim: Int, scores: inout [Float]) {
    if scores.count < n * n { scores = [Float](repeating: 0, count: n * n) }
    let scale = 1 / Float(dim).squareRoot()
    scores.withUnsafeMutableBufferPointer { sbuf in
        let s = sbuf.baseAddress!
        for h in 0..<heads {
            sgemmNT(m: n, n: n, k: dim, a: q + h * dim, lda: stride, b: k + h * dim, ldb: stride, c: s, ldc: n, alpha: scale)
            ck_softmax_rows(s, Int32(n), Int32(n), Int32(n), -1)
            sgemmNN(m: n, n: dim, k: n, a: s, lda: n, b: v + h * dim, ldb: stride, c: out + h * dim, ldc: heads * dim)
        }
    }
}

import COpenBLAS

/// y[r] = sum_c W[r, c] * x[c] for one vector: the decode step's kernel. Streams W once,
/// converting bf16 to Float in SIMD registers.
/// - x: [W.cols], y: [W.rows]
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
    matvecRows(w, x, y, 0, w.rows)
}

/// The rows r0..<r1 of `matvec` (so that callers can split the work).
public func matvecRows(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                       _ r0: Int, _ r1: Int) {
    let n = w.cols
    switch w.dtype {
    case .bf16:
        let base = w.base.assumingMemoryBound(to: UInt16.self)
        let n16 = n & ~15
        for r in r0..<r1 {
            let row = base + r * n
            var acc0 = SIMD8<Float>(repeating: 0)
            var acc1 = SIMD8<Float>(repeating: 0)
            var c = 0
            while c < n16 {
                let raw = UnsafeRawPointer(row + c)
                let b0 = raw.loadUnaligned(as: SIMD8<UInt16>.self)
                let b1 = raw.loadUnaligned(fromByteOffset: 16, as: SIMD8<UInt16>.self)
                let f0 = unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: b0) &<< 16, to: SIMD8<Float>.self)
                let f1 = unsafeBitCast(SIMD8<UInt32>(truncatingIfNeeded: b1) &<< 16, to: SIMD8<Float>.self)
                let x0 = UnsafeRawPointer(x + c).loadUnaligned(as: SIMD8<Float>.self)
                let x1 = UnsafeRawPointer(x + c + 8).loadUnaligned(as: SIMD8<Float>.self)
                acc0 += f0 * x0
                acc1 += f1 * x1
                c += 16
            }
            var s = (acc0 + acc1).sum()
            while c < n { s += bf16ToFloat(row[c]) * x[c]; c += 1 }
            y[r] = s
        }
    case .f16, .f32:
        for r in r0..<r1 {
            var s: Float = 0
            for c in 0..<n { s += w.value(r, c) * x[c] }
            y[r] = s
        }
    }
}

/// Y = X W^T for a batch of rows: the prefill's kernel.
/// - x: [t, W.cols] row-major; y: [t, W.rows] row-major.
/// One vector goes through `matvec`; more go through OpenBLAS sgemm on blocks of W converted to
/// Float in a reusable buffer, so no full Float copy of the weights ever exists.
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ t: Int, _ y: UnsafeMutablePointer<Float>,
                   scratch: inout [Float]) {
    if t == 1 { matvec(w, x, y); return }
    let blockRows = max(1, min(w.rows, (1 << 20) / max(w.cols, 1)))   // ~4 MB of Float per block
    if scratch.count < blockRows * w.cols { scratch = [Float](repeating: 0, count: blockRows * w.cols) }
    scratch.withUnsafeMutableBufferPointer { buf in
        let tmp = buf.baseAddress!
        var r0 = 0
        while r0 < w.rows {
            let r1 = min(w.rows, r0 + blockRows)
            let wb: UnsafePointer<Float>
            if w.dtype == .f32 {
                wb = w.base.assumingMemoryBound(to: Float.self) + r0 * w.cols
            } else {
                w.convertRows(r0, r1, into: tmp)
                wb = UnsafePointer(tmp)
            }
            // C[t, r1-r0] (ldc = rows) = X[t, cols] * B^T, B = block [r1-r0, cols]
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                        Int32(t), Int32(r1 - r0), Int32(w.cols), 1,
                        x, Int32(w.cols), wb, Int32(w.cols), 0, y + r0, Int32(w.rows))
            r0 = r1
        }
    }
}

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

/// Sets the number of OpenBLAS worker threads.
public func setBLASThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

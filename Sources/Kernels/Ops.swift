import CKernels
import Dispatch
import Foundation

/// out = x / sqrt(mean(x^2) + eps) * w, for `t` rows of `n` (InternLM2RMSNorm, in Float).
public func rmsNorm(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                    n: Int, t: Int = 1, eps: Float) {
    for row in 0..<t {
        let xr = x + row * n, o = out + row * n
        var ss: Float = 0
        for i in 0..<n { ss += xr[i] * xr[i] }
        let inv = 1 / (ss / Float(n) + eps).squareRoot()
        for i in 0..<n { o[i] = xr[i] * inv * w[i] }
    }
}

/// a[i] = silu(a[i]) * b[i] (SwiGLU's gate), over `n` elements.
public func siluMul(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, n: Int) {
    ck_silu_mul(a, b, n)
}

/// Rotate-half RoPE on `heads` vectors of size `dim` at `pos`: pairs dimension i with i + dim/2.
/// cos/sin: [dim/2] for this position.
public func applyRoPE(_ x: UnsafeMutablePointer<Float>, heads: Int, dim: Int, stride: Int,
                      cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
    let half = dim / 2
    for h in 0..<heads {
        let v = x + h * stride
        for i in 0..<half {
            let a = v[i], b = v[i + half]
            v[i] = a * cos[i] - b * sin[i]
            v[i + half] = b * cos[i] + a * sin[i]
        }
    }
}

/// out = (x - mean) / sqrt(var + eps) * w + b over rows of `n` (torch.nn.LayerNorm, biased variance).
public func layerNorm(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                      _ out: UnsafeMutablePointer<Float>, n: Int, t: Int, eps: Float) {
    ck_layer_norm(x, w, b, out, Int32(n), Int32(t), eps)
}

/// Exact GELU, 0.5 x (1 + erf(x / sqrt 2)) (torch's default, not the tanh approximation), with
/// erf from a fit good to about 1e-6 relative (CKernels).
public func gelu(_ x: UnsafeMutablePointer<Float>, n: Int) {
    ck_gelu(x, n)
}

/// x[r, c] += bias[c] for `t` rows of `n`.
public func addBias(_ x: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, n: Int, t: Int) {
    for r in 0..<t { let row = x + r * n; for c in 0..<n { row[c] += bias[c] } }
}

/// x = GELU(x + bias) over `t` rows of `n` (the MLP's first bias and activation, one pass).
public func biasGelu(_ x: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, n: Int, t: Int) {
    ck_bias_gelu(x, bias, Int32(n), Int32(t))
}

/// x += ls * (o + bias) over `t` rows of `n` (a layer-scaled residual with the projection's bias).
public func scaledResidual(_ x: UnsafeMutablePointer<Float>, _ o: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                           ls: UnsafePointer<Float>, n: Int, t: Int) {
    ck_scaled_residual(x, o, bias, ls, Int32(n), Int32(t))
}

/// Runs `body` on `0..<t` cut into one contiguous range per core (inline below `minRows` rows a
/// core): element-wise steps between GEMMs would otherwise leave the second core idle.
public func forEachRowRange(_ t: Int, minRows: Int = 64, _ body: (Range<Int>) -> Void) {
    let workers = min(ThreadPool.shared.threads, max(1, t / minRows))
    if workers <= 1 { body(0..<t); return }
    withoutActuallyEscaping(body) { body in
        let work = SendablePointer(body)
        DispatchQueue.concurrentPerform(iterations: workers) { w in work.p(t * w / workers ..< t * (w + 1) / workers) }
    }
}

/// A read-only view of a row-major matrix `[rows, cols]` in its stored type (usually bf16 inside a
/// memory-mapped checkpoint). `y = W x` means `y[r] = sum_c W[r, c] * x[c]` (PyTorch's Linear).
public struct WeightMatrix: @unchecked Sendable {
    public let base: UnsafeRawPointer
    public let dtype: DType
    public let rows: Int
    public let cols: Int

    public init(base: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int) {
        self.base = base
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
    }

    /// Element (r, c) as Float (slow path: tests, embedding lookups).
    @inline(__always)
    public func value(_ r: Int, _ c: Int) -> Float {
        let i = r * cols + c
        switch dtype {
        case .bf16: return bf16ToFloat(base.load(fromByteOffset: 2 * i, as: UInt16.self))
        case .f16: return Float(base.load(fromByteOffset: 2 * i, as: Float16.self))
        case .f32: return base.load(fromByteOffset: 4 * i, as: Float.self)
        }
    }

    /// Converts rows `r0..<r1` into `out` (row-major, `cols` floats per row).
    public func convertRows(_ r0: Int, _ r1: Int, into out: UnsafeMutablePointer<Float>) {
        let n = (r1 - r0) * cols
        let start = r0 * cols
        switch dtype {
        case .bf16:
            let src = base.assumingMemoryBound(to: UInt16.self) + start
            let o = UnsafeMutableRawPointer(out).assumingMemoryBound(to: UInt32.self)
            for i in 0..<n { o[i] = UInt32(src[i]) << 16 }
        case .f16:
            let src = base.assumingMemoryBound(to: Float16.self) + start
            for i in 0..<n { out[i] = Float(src[i]) }
        case .f32:
            out.update(from: base.assumingMemoryBound(to: Float.self) + start, count: n)
        }
    }

    /// The whole matrix as Float (only for small tensors: norms, biases, tests).
    public func toFloats() -> [Float] {
        var a = [Float](repeating: 0, count: rows * cols)
        a.withUnsafeMutableBufferPointer { convertRows(0, rows, into: $0.baseAddress!) }
        return a
    }
}

extension WeightMatrix {
    /// The same bytes seen as `[rows, count / rows]` (a conv kernel as a matrix).
    public func reshaped(rows newRows: Int) -> WeightMatrix {
        WeightMatrix(base: base, dtype: dtype, rows: newRows, cols: rows * cols / newRows)
    }
}

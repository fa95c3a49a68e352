import CKernels

/// A read-only view of a row-major matrix `[rows, cols]` in its stored type (usually bf16 inside a
/// memory-mapped checkpoint). `y = W x` means `y[r] = sum_c W[r, c] * x[c]` (PyTorch's Linear).
public struct WeightMatrix: @unchecked Sendable {
    public let base: UnsafeRawPointer
    /// The checkpoint's element type (for a quantized matrix: the type it was made from).
    public let dtype: DType
    public let rows: Int
    public let cols: Int
    /// Set when `base` holds quantized weights (Quantized.swift for the layouts).
    public let quantization: Quantization?

    public init(base: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int) {
        self.base = base
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
        quantization = nil
    }

    public init(quantized q: Quantization, base: UnsafeRawPointer, rows: Int, cols: Int) {
        self.base = base
        dtype = .bf16
        self.rows = rows
        self.cols = cols
        quantization = q
    }

    /// Element (r, c) as Float (slow path: tests, embedding lookups).
    @inline(__always)
    public func value(_ r: Int, _ c: Int) -> Float {
        if quantization != nil { return dequantizedRow(r)[c] }
        let i = r * cols + c
        switch dtype {
        case .bf16: return bf16ToFloat(base.load(fromByteOffset: 2 * i, as: UInt16.self))
        case .f16: return Float(base.load(fromByteOffset: 2 * i, as: Float16.self))
        case .f32: return base.load(fromByteOffset: 4 * i, as: Float.self)
        }
    }

    /// Converts rows `r0..<r1` into `out` (row-major, `cols` floats per row).
    public func convertRows(_ r0: Int, _ r1: Int, into out: UnsafeMutablePointer<Float>) {
        if let q = quantization {
            dequantizeRows(q, r0, r1, out)
            return
        }
        let n = (r1 - r0) * cols
        let start = r0 * cols
        switch dtype {
        case .bf16:
            ck_convert_bf16(base.assumingMemoryBound(to: UInt16.self) + start, out, n)
        case .f16:
            let src = base.assumingMemoryBound(to: Float16.self) + start
            for i in 0..<n { out[i] = Float(src[i]) }
        case .f32:
            out.update(from: base.assumingMemoryBound(to: Float.self) + start, count: n)
        }
    }

    /// Rows r0..<r1 of a quantized matrix as Float: q8 value x row scale, q4 (nibble - 8) x block
    /// scale (CKernels; the test twin reads the stored bytes itself).
    func dequantizeRows(_ q: Quantization, _ r0: Int, _ r1: Int, _ out: UnsafeMutablePointer<Float>) {
        switch q {
        case .q8:
            ck_dequantize_q8(base.assumingMemoryBound(to: Int8.self), (base + rows * cols).assumingMemoryBound(to: Float.self),
                             Int32(cols), Int32(r0), Int32(r1), out)
        case .q4:
            ck_dequantize_q4(base.assumingMemoryBound(to: UInt8.self), Int32(cols), Int32(r0), Int32(r1), out)
        }
    }

    func dequantizedRow(_ r: Int) -> [Float] {
        var a = [Float](repeating: 0, count: cols)
        a.withUnsafeMutableBufferPointer { convertRows(r, r + 1, into: $0.baseAddress!) }
        return a
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

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
    /// How the rows lie in memory (quantized: `.rowMajor`, or `.int8Panels` for int8).
    public let layout: RowLayout

    public init(base: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int, layout: RowLayout = .rowMajor) {
        precondition(layout == .rowMajor || (dtype == .bf16 && cols % 32 == 0), "rows in groups of four are bf16, 32-column chunks")
        self.base = base
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
        self.layout = layout
        quantization = nil
    }

    public init(quantized q: Quantization, base: UnsafeRawPointer, rows: Int, cols: Int, layout: RowLayout = .rowMajor) {
        precondition(layout == .rowMajor || (layout == .int8Panels && q == .q8), "only int8 goes in panels")
        self.base = base
        dtype = .bf16
        self.rows = rows
        self.cols = cols
        self.layout = layout
        quantization = q
    }

    /// Element (r, c) as Float (slow path: tests, embedding lookups).
    @inline(__always)
    public func value(_ r: Int, _ c: Int) -> Float {
        if quantization != nil || layout != .rowMajor { return dequantizedRow(r)[c] }
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
        if layout == .groupsOfFour {
            ck_convert_bf16_rows4(base.assumingMemoryBound(to: UInt16.self), Int32(rows), Int32(cols), Int32(r0), Int32(r1), out)
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
        case .q8 where layout == .int8Panels:
            ck_dequantize_q8_panels(base.assumingMemoryBound(to: UInt8.self), int8Scales, Int32(cols), Int32(r0), Int32(r1), out)
        case .q8:
            ck_dequantize_q8(base.assumingMemoryBound(to: Int8.self), int8Scales, Int32(cols), Int32(r0), Int32(r1), out)
        case .q4:
            ck_dequantize_q4(base.assumingMemoryBound(to: UInt8.self), Int32(rows), Int32(cols), Int32(r0), Int32(r1), out)
        }
    }

    /// An int8 matrix's row scales (after its rows, or after its panels).
    var int8Scales: UnsafePointer<Float> {
        (base + Self.int8WeightBytes(rows: rows, cols: cols, panels: layout == .int8Panels)).assumingMemoryBound(to: Float.self)
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

/// The order of a dense matrix's rows in memory.
public enum RowLayout: Sendable {
    /// One row after another, as in the checkpoint.
    case rowMajor
    /// bf16 only, the decode layout of the language model's matrices: for each group of four rows
    /// and each chunk of 32 columns, the four rows' 32 values one after another (256 bytes), so
    /// that the product streams one run of memory into four dot products and loads each
    /// activation once for four rows. A matrix wider than 2,048 columns (the MLP's w2) has this
    /// for each block of 2,048 columns in turn, so that a block's activations stay in L1 while its
    /// weights stream; rows after the last full group stay whole, one after another, at the end.
    /// `cols` a multiple of 32.
    case groupsOfFour
    /// int8 only: the integer GEMM's panels of 32 rows (ck_q8_gemm_pack: per four columns the 32
    /// rows' four bytes, as w + 128), rows padded to a multiple of 32, then the row scales. Every
    /// product, one activation row or many, is `ck_pool_q8_gemm` (`int8InPanels`).
    case int8Panels
}

extension WeightMatrix {
    /// The same bytes seen as `[rows, count / rows]` (a conv kernel as a matrix).
    public func reshaped(rows newRows: Int) -> WeightMatrix {
        precondition(layout == .rowMajor && quantization == nil, "only a dense row-major matrix can be reshaped")
        return WeightMatrix(base: base, dtype: dtype, rows: newRows, cols: rows * cols / newRows)
    }

    /// Whether `packedInFours(into:)` applies: a dense row-major bf16 matrix of 32-column chunks.
    public var canGroupRowsInFours: Bool {
        quantization == nil && layout == .rowMajor && dtype == .bf16 && cols % 32 == 0
    }

    /// This matrix copied into `dst` (`storageBytes` long) with its rows in groups of four.
    public func packedInFours(into dst: UnsafeMutableRawPointer) -> WeightMatrix {
        precondition(canGroupRowsInFours)
        ck_pack_bf16_rows4(base.assumingMemoryBound(to: UInt16.self), dst.assumingMemoryBound(to: UInt16.self), Int32(rows), Int32(cols))
        return WeightMatrix(base: UnsafeRawPointer(dst), dtype: .bf16, rows: rows, cols: cols, layout: .groupsOfFour)
    }
}

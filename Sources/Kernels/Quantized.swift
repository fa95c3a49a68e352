import CKernels
import Foundation

/// In-memory formats of a weight matrix besides the checkpoint's dense types.
public enum Quantization: String, Sendable, CaseIterable {
    /// int8, one Float scale per row (`scales`).
    case q8 = "int8"
    /// Blocks of 32: a float16 scale and 32 four-bit values (18 bytes, 4.5 bits per weight), in
    /// column groups of 32 blocks, all rows' group 0, then group 1, ... (ckernels.h has the layout).
    case q4

    /// The name of the stored form (cache files): int8 in GEMM panels is "int8p".
    public var storageTag: String { self == .q8 && int8InPanels ? "int8p" : rawValue }

    /// Bytes of one row of `cols` weights (scales included).
    public func rowBytes(_ cols: Int) -> Int {
        switch self {
        case .q8: return cols + 4
        case .q4: return cols / 32 * 18
        }
    }
}

/// Memory that quantized weights live in: allocated here, or a mapped cache file.
public final class QuantStorage: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let count: Int
    private let release: () -> Void

    /// Anonymous memory, 2 MiB aligned and marked for transparent huge pages: the decode kernels
    /// stream it with far fewer TLB misses than 4 KiB pages.
    public init(bytes: Int) {
        count = bytes
        let size = max(bytes, 1)
        let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 2 << 20)
        _ = madvise(p, (size + (2 << 20) - 1) & ~((2 << 20) - 1), MADV_HUGEPAGE)
        base = p
        release = { p.deallocate() }
    }

    /// A copy of `bytes` bytes at `source` in huge-page memory (a mapped cache file's payload).
    public convenience init(copying source: UnsafeRawPointer, bytes: Int) {
        self.init(bytes: bytes)
        base.copyMemory(from: source, byteCount: bytes)
    }

    public init(base: UnsafeMutableRawPointer, count: Int, release: @escaping () -> Void) {
        self.base = base; self.count = count; self.release = release
    }

    deinit { release() }
}

/// Whether new int8 matrices are stored in the integer GEMM's panels (`RowLayout.int8Panels`):
/// with AVX-512 VNNI or AVX-VNNI (as `INTERNVL_CHAT_ISA` allows), where one product of up to six
/// activation rows costs little more than one row's, so batched decoding and short prompts read and
/// multiply the weights once. Without VNNI int8 stays in rows, whose AVX2 kernel is the faster there.
public var int8InPanels: Bool { ck_q8_gemm_available() != 0 }

extension WeightMatrix {
    /// Bytes this matrix occupies as stored (what one matrix-vector product reads).
    public var storageBytes: Int {
        if let q = quantization { return Self.quantizedBytes(rows: rows, cols: cols, q, panels: layout == .int8Panels) }
        return rows * cols * dtype.size
    }

    /// Bytes `quantized(as:)` writes (int8 in panels: the panels, rows padded to 32, then the row
    /// scales).
    public static func quantizedBytes(rows: Int, cols: Int, _ q: Quantization, panels: Bool = int8InPanels) -> Int {
        q == .q8 ? int8WeightBytes(rows: rows, cols: cols, panels: panels) + 4 * rows : rows * q.rowBytes(cols)
    }

    /// Bytes of an int8 matrix's weights before its row scales: its rows, or its panels (rows
    /// padded to 32).
    static func int8WeightBytes(rows: Int, cols: Int, panels: Bool) -> Int {
        panels ? Int(ck_q8_gemm_packed_bytes(Int32(rows), Int32(cols))) : rows * cols
    }

    /// This matrix quantized into `dst` (`quantizedBytes` long): q8 is the int8 rows (or their
    /// panels, `int8InPanels`) then the Float row scales; q4 in column groups of 32 blocks, each
    /// group of all rows in turn (ckernels.h). `cols` must be a multiple of 32.
    public func quantized(as q: Quantization, into dst: UnsafeMutableRawPointer, panels inPanels: Bool = int8InPanels) -> WeightMatrix {
        precondition(cols % 32 == 0, "quantized rows must be a multiple of 32 long")
        let panels = q == .q8 && inPanels
        var row = [Float](repeating: 0, count: cols)
        row.withUnsafeMutableBufferPointer { buf in
            let f = buf.baseAddress!
            switch q {
            case .q8:
                let packed = Self.int8WeightBytes(rows: rows, cols: cols, panels: panels)
                let ints = panels ? UnsafeMutablePointer<Int8>.allocate(capacity: rows * cols) : dst.assumingMemoryBound(to: Int8.self)
                let scales = (dst + packed).assumingMemoryBound(to: Float.self)
                for r in 0..<rows {
                    convertRows(r, r + 1, into: f)
                    ck_quantize_row_q8(f, ints + r * cols, scales + r, Int32(cols))
                }
                if panels {
                    ck_q8_gemm_pack(ints, Int32(rows), Int32(cols), dst.assumingMemoryBound(to: UInt8.self))
                    ints.deallocate()
                }
            case .q4:
                let bytes = dst.assumingMemoryBound(to: UInt8.self)
                for r in 0..<rows {
                    convertRows(r, r + 1, into: f)
                    ck_quantize_row_q4(f, bytes, Int32(rows), Int32(r), Int32(cols))
                }
            }
        }
        return WeightMatrix(quantized: q, base: UnsafeRawPointer(dst), rows: rows, cols: cols, layout: panels ? .int8Panels : .rowMajor)
    }
}

/// Activations quantized to int8 blocks of 32 (for the integer kernels).
@inline(__always)
func withQ8Blocks<R>(_ x: UnsafePointer<Float>, _ n: Int, _ body: (UnsafePointer<ck_block_q8>) -> R) -> R {
    withUnsafeTemporaryAllocation(of: ck_block_q8.self, capacity: n / 32) { buf in
        ck_quantize_q8_blocks(x, buf.baseAddress!, Int32(n))
        return body(UnsafePointer(buf.baseAddress!))
    }
}

/// Element types a checkpoint may store. Weights stay in their stored type in memory; kernels
/// convert to Float in registers (matrix-vector) or one block at a time (GEMM).
public enum DType: String, Sendable, CaseIterable {
    case bf16 = "BF16"
    case f16 = "F16"
    case f32 = "F32"

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .bf16, .f16: return 2
        case .f32: return 4
        }
    }
}

@inline(__always)
public func bf16ToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// Round to nearest even, as torch does when casting float32 to bfloat16.
@inline(__always)
public func floatToBF16(_ x: Float) -> UInt16 {
    let u = x.bitPattern
    if x.isNaN { return 0x7FC0 }
    let rounded = u &+ 0x7FFF &+ ((u >> 16) & 1)
    return UInt16(truncatingIfNeeded: rounded >> 16)
}

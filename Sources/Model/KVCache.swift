import CKernels
import Kernels

/// Keys and values of every position processed so far, per layer, in float16 (the default: half
/// the memory and half the bytes each decode step's attention reads) or float32. Each layer keeps
/// its keys (and its values) kv head by kv head, `[kvHeads, capacity, headDim]`, so that the
/// decode step reads each head's cache as one contiguous run (position by position, with all
/// heads in a row, a head's 256 bytes every 2 KiB ran at half the speed). Rows are written as
/// float32 and rounded once on the way in; attention reads them back in their stored form.
/// Grows by doubling; `truncate` forgets a suffix (edit, regenerate) without touching what stays.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let kvHeads: Int
    public let headDim: Int
    public let precision: KVPrecision
    public private(set) var capacity: Int
    /// Positions held.
    public private(set) var count = 0
    /// Pad positions before this sequence in a left-padded batch (the official batch_chat): they
    /// are masked and not stored, but the rotary embedding counts them in the sequence length
    /// from which dynamic NTK scaling picks its base.
    public var leadingPadding = 0
    private var keys: [UnsafeMutableRawPointer]
    private var values: [UnsafeMutableRawPointer]

    /// Values per position over the kv heads of one layer.
    public var rowSize: Int { kvHeads * headDim }

    public init(layers: Int, kvHeads: Int, headDim: Int, precision: KVPrecision = .float16, initialCapacity: Int = 256) {
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.precision = precision
        capacity = max(1, initialCapacity)
        let bytes = capacity * kvHeads * headDim * precision.size
        keys = (0..<layers).map { _ in .allocate(byteCount: bytes, alignment: 64) }
        values = (0..<layers).map { _ in .allocate(byteCount: bytes, alignment: 64) }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Makes room for `n` positions in all (each head's run moves to its place in the larger block).
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        var newCap = capacity
        while newCap < n { newCap *= 2 }
        let headBytes = headDim * precision.size
        for l in 0..<layers {
            for isKey in [true, false] {
                let old = isKey ? keys[l] : values[l]
                let p = UnsafeMutableRawPointer.allocate(byteCount: newCap * kvHeads * headBytes, alignment: 64)
                for g in 0..<kvHeads {
                    (p + g * newCap * headBytes).copyMemory(from: old + g * capacity * headBytes, byteCount: count * headBytes)
                }
                old.deallocate()
                if isKey { keys[l] = p } else { values[l] = p }
            }
        }
        capacity = newCap
    }

    /// Layer `layer`'s keys and values from position 0, in the stored precision.
    func rows(_ layer: Int) -> KVRows {
        KVRows(keys: UnsafeRawPointer(keys[layer]), values: UnsafeRawPointer(values[layer]), precision: precision,
               positionStride: headDim, headStride: capacity * headDim)
    }

    /// Writes `n` rows of keys and values (float32, `[n, kvHeads * headDim]`) at positions
    /// `position..<position + n`.
    func store(_ layer: Int, at position: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count n: Int) {
        precondition(position + n <= capacity, "KV cache written past its capacity")
        for i in 0..<n {
            for g in 0..<kvHeads {
                let src = (i * kvHeads + g) * headDim, dst = (g * capacity + position + i) * headDim
                switch precision {
                case .float32:
                    (keys[layer].assumingMemoryBound(to: Float.self) + dst).update(from: k + src, count: headDim)
                    (values[layer].assumingMemoryBound(to: Float.self) + dst).update(from: v + src, count: headDim)
                case .float16:
                    ck_f32_to_f16(k + src, keys[layer].assumingMemoryBound(to: UInt16.self) + dst, headDim)
                    ck_f32_to_f16(v + src, values[layer].assumingMemoryBound(to: UInt16.self) + dst, headDim)
                }
            }
        }
    }

    func advance(by n: Int) { count += n }

    /// Keeps only the first `n` positions.
    public func truncate(to n: Int) { count = min(count, max(0, n)) }

    /// Bytes of keys and values per position over all layers.
    public var bytesPerPosition: Int { 2 * layers * rowSize * precision.size }

    /// Bytes held by the cache's storage.
    public var bytes: Int { capacity * bytesPerPosition }
}

import CKernels
import Kernels

/// Keys and values of every position processed so far, per layer, as rows
/// `[position, kvHeads * headDim]` of float16 (the default: half the memory and half the bytes
/// each decode step's attention reads) or float32. Rows are written as float32 and rounded once
/// on the way in; attention reads them back in their stored form. Grows by doubling; `truncate`
/// forgets a suffix (edit, regenerate) without touching what stays.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let rowSize: Int
    public let precision: KVPrecision
    public private(set) var capacity: Int
    /// Positions held.
    public private(set) var count = 0
    private var keys: [UnsafeMutableRawPointer]
    private var values: [UnsafeMutableRawPointer]

    public init(layers: Int, kvHeads: Int, headDim: Int, precision: KVPrecision = .float16, initialCapacity: Int = 256) {
        self.layers = layers
        self.precision = precision
        rowSize = kvHeads * headDim
        capacity = max(1, initialCapacity)
        let bytes = capacity * rowSize * precision.size
        keys = (0..<layers).map { _ in .allocate(byteCount: bytes, alignment: 64) }
        values = (0..<layers).map { _ in .allocate(byteCount: bytes, alignment: 64) }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Makes room for `n` positions in all.
    func reserve(_ n: Int) {
        guard n > capacity else { return }
        var newCap = capacity
        while newCap < n { newCap *= 2 }
        let rowBytes = rowSize * precision.size
        for l in 0..<layers {
            for isKey in [true, false] {
                let old = isKey ? keys[l] : values[l]
                let p = UnsafeMutableRawPointer.allocate(byteCount: newCap * rowBytes, alignment: 64)
                p.copyMemory(from: old, byteCount: count * rowBytes)
                old.deallocate()
                if isKey { keys[l] = p } else { values[l] = p }
            }
        }
        capacity = newCap
    }

    /// Layer `layer`'s keys and values from position 0, in the stored precision.
    func rows(_ layer: Int) -> KVRows {
        KVRows(keys: UnsafeRawPointer(keys[layer]), values: UnsafeRawPointer(values[layer]), precision: precision)
    }

    /// Writes `n` rows of keys and values (float32) at positions `position..<position + n`.
    func store(_ layer: Int, at position: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count n: Int) {
        precondition(position + n <= capacity, "KV cache written past its capacity")
        let count = n * rowSize, offset = position * rowSize
        switch precision {
        case .float32:
            (keys[layer].assumingMemoryBound(to: Float.self) + offset).update(from: k, count: count)
            (values[layer].assumingMemoryBound(to: Float.self) + offset).update(from: v, count: count)
        case .float16:
            ck_f32_to_f16(k, keys[layer].assumingMemoryBound(to: UInt16.self) + offset, count)
            ck_f32_to_f16(v, values[layer].assumingMemoryBound(to: UInt16.self) + offset, count)
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

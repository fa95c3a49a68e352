import Kernels

/// Keys and values of every position processed so far, per layer, as Float rows
/// `[position, kvHeads * headDim]`. Grows by doubling; `truncate` forgets a suffix (edit,
/// regenerate) without touching what stays.
public final class KVCache: @unchecked Sendable {
    public let layers: Int
    public let rowSize: Int
    public private(set) var capacity: Int
    /// Positions held.
    public private(set) var count = 0
    private(set) var keys: [UnsafeMutablePointer<Float>]
    private(set) var values: [UnsafeMutablePointer<Float>]

    public init(layers: Int, kvHeads: Int, headDim: Int, initialCapacity: Int = 256) {
        self.layers = layers
        rowSize = kvHeads * headDim
        capacity = max(1, initialCapacity)
        keys = (0..<layers).map { _ in .allocate(capacity: max(1, initialCapacity) * kvHeads * headDim) }
        values = (0..<layers).map { _ in .allocate(capacity: max(1, initialCapacity) * kvHeads * headDim) }
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
        for l in 0..<layers {
            for isKey in [true, false] {
                let old = isKey ? keys[l] : values[l]
                let p = UnsafeMutablePointer<Float>.allocate(capacity: newCap * rowSize)
                p.update(from: old, count: count * rowSize)
                old.deallocate()
                if isKey { keys[l] = p } else { values[l] = p }
            }
        }
        capacity = newCap
    }

    func advance(by n: Int) { count += n }

    /// Keeps only the first `n` positions.
    public func truncate(to n: Int) { count = min(count, max(0, n)) }

    /// Bytes held by the cache's storage.
    public var bytes: Int { 2 * layers * capacity * rowSize * MemoryLayout<Float>.size }
}

/// A heap array of Floats with a stable address, for activations and scratch.
/// Reference type so that kernels can write into it without copy-on-write checks.
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let data: UnsafeMutablePointer<Float>

    public init(count: Int) {
        self.count = count
        data = .allocate(capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { data.deallocate() }

    public subscript(i: Int) -> Float {
        get { data[i] }
        set { data[i] = newValue }
    }

    public var array: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }
}

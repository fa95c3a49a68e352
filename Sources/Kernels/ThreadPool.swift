import CKernels
import Foundation

/// The worker threads of the decode step (all cores by default; `INTERNVL_CHAT_THREADS`
/// overrides). They spin for 2 ms after each product so that the next one of the same step
/// starts at once, then park.
public final class ThreadPool: @unchecked Sendable {
    let raw: OpaquePointer
    public let threads: Int

    public init(threads: Int, spinMicroseconds: Int = 2000) {
        raw = ck_pool_create(Int32(threads), Int32(spinMicroseconds))
        self.threads = Int(ck_pool_threads(raw))
    }

    deinit { ck_pool_destroy(raw) }

    public static let shared: ThreadPool = {
        let env = ProcessInfo.processInfo.environment["INTERNVL_CHAT_THREADS"].flatMap { Int($0) }
        return ThreadPool(threads: env ?? ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Sums `n` bytes of `buf` with every thread (the memory-bandwidth probe); `prefetching`: the
    /// read also prefetches ahead as the decode kernels do.
    public func read(_ buf: UnsafeRawPointer, _ n: Int, prefetching: Bool = false) -> UInt64 {
        ck_pool_read(raw, buf.assumingMemoryBound(to: UInt8.self), n, prefetching ? 1 : 0)
    }
}

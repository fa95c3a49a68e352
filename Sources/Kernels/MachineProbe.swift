import COpenBLAS
import Dispatch
import Foundation

/// The machine's ceilings, measured in the same process as the engine so that ratios compare
/// like with like: sustained read bandwidth and OpenBLAS SGEMM throughput.
public enum MachineProbe {
    /// GB/s of a streaming sum over `bytes` (much larger than the caches) with `threads` threads.
    /// Best of `repeats` passes (the machines are shared: the best pass is the ceiling).
    public static func readBandwidth(bytes: Int = 1 << 30, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                                     repeats: Int = 4) -> Double {
        let n = bytes / 4
        let storage = FloatBuffer(count: n)              // zero-filled: every page is touched
        let partial = FloatBuffer(count: threads)
        var best = 0.0
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: threads) { k in
                let buf = storage.data
                let lo = n / threads * k, hi = k == threads - 1 ? n : n / threads * (k + 1)
                var a0 = SIMD8<Float>(repeating: 0), a1 = a0, a2 = a0, a3 = a0
                var i = lo
                while i + 32 <= hi {
                    let p = UnsafeRawPointer(buf + i)
                    a0 += p.loadUnaligned(as: SIMD8<Float>.self)
                    a1 += p.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
                    a2 += p.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
                    a3 += p.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
                    i += 32
                }
                var s = (a0 + a1 + a2 + a3).sum()
                while i < hi { s += buf[i]; i += 1 }
                partial[k] = s
            }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = max(best, Double(n * 4) / dt / 1e9)
        }
        return best
    }

    /// GFLOP/s of C[m, n] = A[m, k] B[k, n]^T through OpenBLAS, best of `repeats` after a
    /// warm-up call (which starts OpenBLAS's threads).
    public static func sgemmGFLOPs(m: Int, n: Int, k: Int, repeats: Int = 6) -> Double {
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: n * k)
        var c = [Float](repeating: 0, count: m * n)
        sgemmNT(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &c, ldc: n)
        var best = 0.0
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            sgemmNT(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &c, ldc: n)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = max(best, 2 * Double(m) * Double(n) * Double(k) / dt / 1e9)
        }
        return best
    }

    /// Resident and peak resident memory of this process in MB (from /proc/self/status).
    public static func memoryMB() -> (rss: Double, peak: Double) {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Double {
            for line in s.split(separator: "\n") where line.hasPrefix(name + ":") {
                let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
                return kb / 1024
            }
            return 0
        }
        return (field("VmRSS"), field("VmHWM"))
    }
}

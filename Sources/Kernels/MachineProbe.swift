import CKernels
import COpenBLAS
import Dispatch
import Foundation

/// The machine's ceilings, measured in the same process as the engine so that ratios compare
/// like with like: sustained read bandwidth and OpenBLAS SGEMM throughput.
public enum MachineProbe {
    /// The instruction-set level the kernels run at (INTERNVL_CHAT_ISA caps it): "portable",
    /// "avx2", "avx-vnni" (AVX2 with the 256-bit VNNI of Intel's Alder Lake and later cores),
    /// "avx512-vnni" or "avx512-amx-bf16" (AMX bf16 tiles).
    public static var isa: String {
        switch ck_isa() {
        case 0: return "portable"
        case 1: return ck_avx_vnni() != 0 ? "avx-vnni" : "avx2"
        case 2: return "avx512-vnni"
        default: return "avx512-amx-bf16"
        }
    }

    /// OpenBLAS's kernel set ("SkylakeX", "Haswell", ...), with " (chosen from the CPU's
    /// features)" when the one OpenBLAS picked could not use them (see CKernels/cpu.c), or
    /// " (set by OPENBLAS_CORETYPE)" when the environment named it (left alone: a machine may pin
    /// AVX2 kernels on an AVX-512 CPU, halving its SGEMM); nil when the BLAS does not name it.
    public static var blasCore: String? {
        guard let name = ck_blas_core() else { return nil }
        let how = ck_blas_core_rechosen() != 0 ? " (chosen from the CPU's features)"
            : (ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil ? " (set by OPENBLAS_CORETYPE)" : "")
        return String(cString: name) + how
    }

    /// The CPU's model name from /proc/cpuinfo (nil where there is none).
    public static var cpuModel: String? {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let colon = line.firstIndex(of: ":") else { return nil }
        return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }

    /// GB/s of a streaming sum over `bytes` by the decode kernels' own thread pool (AVX2 loads,
    /// threads kept hot): best of `repeats` passes, taken in turn without and with the kernels'
    /// software prefetch (the better way to read differs between CPUs: on an Intel Xeon the
    /// prefetching read was ~17% faster).
    public static func poolReadBandwidth(bytes: Int = 1 << 30, pool: ThreadPool = .shared, repeats: Int = 5) -> Double {
        ReadProbe(bytes: bytes, pool: pool).measure(repeats: repeats)
    }

    /// A buffer kept for repeated bandwidth probes (the bench brackets timed decode steps with
    /// them: this machine's bandwidth moves between ~35 and ~65 GB/s within minutes).
    public final class ReadProbe {
        let bytes: Int
        let pool: ThreadPool
        let buffer: UnsafeMutableRawPointer

        public init(bytes: Int = 1 << 30, pool: ThreadPool = .shared) {
            self.bytes = bytes
            self.pool = pool
            buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            buffer.initializeMemory(as: UInt8.self, repeating: 1, count: bytes)
        }

        deinit { buffer.deallocate() }

        /// GB/s, best of `repeats` passes (plain and prefetching reads in turn).
        public func measure(repeats: Int = 5) -> Double {
            var best = 0.0
            for i in 0..<repeats {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let s = pool.read(UnsafeRawPointer(buffer), bytes, prefetching: i % 2 == 1)
                let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                precondition(s == UInt64(bytes / 8) &* 0x0101_0101_0101_0101, "the read probe summed wrongly")
                best = max(best, Double(bytes) / dt / 1e9)
            }
            return best
        }
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
    /// Sets the peak RSS (VmHWM) back to the current RSS (`/proc/self/clear_refs` 5), so that
    /// the bench's own probe buffers do not count in the engine's peak. False if refused.
    @discardableResult
    public static func resetPeakRSS() -> Bool {
        guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? h.close() }
        return (try? h.write(contentsOf: Data("5".utf8))) != nil
    }

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

    /// The calling thread's multiply-add peak in G multiply-adds/s (independent vector FMA chains
    /// at its instruction-set level, best of five ~0.1 s runs): what the kernels' cached rates
    /// compare with (a bf16 row kernel does one multiply-add per 2 weight bytes per activation row).
    public static func fmaPeakGMACs() -> Double {
        var best = 0.0
        for k in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let macs = ck_fma_probe(2_000_000, Float(k + 1))
            best = max(best, macs / Double(DispatchTime.now().uptimeNanoseconds - t0))
        }
        return best
    }

    /// Each product kernel's rate on a matrix held in cache, on one thread: GB/s of weight bytes
    /// (of weight-row bytes for several rows), the compute ceiling free of the memory bus, whose
    /// rate on a shared VM moves by 2x from run to run. 1,024 x 2,048 (4 MB bf16, 1.1 MB q4) stays
    /// in the L3 of any recent x86 core. Keys: bf16, bf16_rows4, int8, q4, and int8_x4, bf16_x4, q4_x4
    /// for four activation rows (batched decoding).
    public static func cachedKernelRates(rows: Int = 1024, cols: Int = 2048, repeats: Int = 7) -> [String: Double] {
        let pool = ThreadPool(threads: 1)
        var seed: UInt32 = 12345
        func next() -> Float { seed = seed &* 1_664_525 &+ 1_013_904_223; return Float(Int32(bitPattern: seed >> 8) - (1 << 23)) / Float(1 << 23) }
        var bf16 = [UInt16](repeating: 0, count: rows * cols)
        for i in bf16.indices { bf16[i] = UInt16(truncatingIfNeeded: next().bitPattern >> 16) }
        let x = (0..<(4 * cols)).map { _ in next() }
        var y = [Float](repeating: 0, count: 4 * rows)
        var out: [String: Double] = [:]
        func time(_ bytes: Int, _ body: () -> Void) -> Double {
            body()
            var best = Double.infinity
            for _ in 0..<repeats {
                let t0 = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<8 { body() }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 8e9)
            }
            return Double(bytes) / best / 1e9
        }
        bf16.withUnsafeBytes { raw in
            let w = WeightMatrix(base: raw.baseAddress!, dtype: .bf16, rows: rows, cols: cols)
            let four = UnsafeMutableRawPointer.allocate(byteCount: rows * cols * 2, alignment: 64)
            defer { four.deallocate() }
            let w4 = w.packedInFours(into: four)
            var forms: [(String, WeightMatrix, UnsafeMutableRawPointer?)] = [("bf16", w, nil), ("bf16_rows4", w4, nil)]
            for (name, q) in [("int8", Quantization.q8), ("q4", Quantization.q4)] {
                let dst = UnsafeMutableRawPointer.allocate(byteCount: WeightMatrix.quantizedBytes(rows: rows, cols: cols, q), alignment: 64)
                forms.append((name, w.quantized(as: q, into: dst), dst))
            }
            defer { for f in forms { f.2?.deallocate() } }
            x.withUnsafeBufferPointer { xb in
                y.withUnsafeMutableBufferPointer { yb in
                    for (name, m, _) in forms {
                        let bytes = m.quantization.map { WeightMatrix.quantizedBytes(rows: rows, cols: cols, $0) } ?? rows * cols * 2
                        out[name] = time(bytes) { matvec(m, xb.baseAddress!, yb.baseAddress!, pool: pool) }
                        if name != "bf16" {
                            out[(name == "bf16_rows4" ? "bf16" : name) + "_x4"] = time(4 * bytes) { matrows(m, xb.baseAddress!, 4, yb.baseAddress!, pool: pool) }
                        }
                    }
                }
            }
        }
        return out
    }
}

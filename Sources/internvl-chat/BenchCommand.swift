import ArgumentParser
import Chat
import Checkpoint
import Foundation
import Imaging
import Kernels
import Model

/// `internvl-chat bench`: the machine's ceilings and the engine's speeds in one process.
/// Figures for docs/benchmarks.md come from this command.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure memory bandwidth, SGEMM throughput and the engine's load, prefill and decode speeds.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var weightOptions: WeightOptions
    @Option(help: "Prompt lengths for prefill.") var prefill: [Int] = [256, 2048]
    @Option(help: "Contexts at which decoding is timed.") var decodeAt: [Int] = [64, 2048]
    @Option(help: "Decode steps timed at each context.") var decodeSteps = 16
    @Option(help: "Tiles in the vision batch.") var visionBatch = 7
    @Option(help: "Short prompt timed against a decode step after --short-context cached positions (0: skip).")
    var shortPrefill = 24
    @Option(help: "Cached positions before the short prompt.") var shortContext = 2000
    @Option(help: "Batched decoding: sequences decoded together, one token each per step (aggregate tokens/s at the first --decode-at context).")
    var batch: [Int] = []
    @Flag(help: "Measure the inference session instead: follow-up vs official time to first token, typed question, cancel latency.")
    var session = false
    @Flag(help: "With --session: only the cancel-latency measurements.") var cancelOnly = false
    @Flag(help: "Measure int8 and q4 against bf16: hidden-state error and greedy next-token agreement over 1,000+ positions.")
    var quality = false
    @Flag(help: "Measure only each product kernel on a matrix held in cache, on one thread (GB/s of weights: the compute ceiling, free of the memory bus); no model is read.")
    var kernels = false
    @Flag(help: "Measure serving instead: aggregate decode tokens/s and time to first token with 1, 2, 4 and 8 concurrent requests through the server's scheduler.")
    var serve = false
    @Option(help: "With --serve: tokens each request generates.") var serveTokens = 48
    @Option(help: "With --serve: pairs of rounds (1 request, then 4) run back to back for the paired 4-vs-1 gain.") var servePairs = 3
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        if visionBatch < 1 { throw ValidationError("--vision-batch must be at least 1 (tiles timed through the vision encoder)") }
        if decodeSteps < 1 { throw ValidationError("--decode-steps must be at least 1") }
        if prefill.contains(where: { $0 < 1 }) { throw ValidationError("--prefill lengths must be at least 1") }
        if decodeAt.contains(where: { $0 < 1 }) { throw ValidationError("--decode-at contexts must be at least 1") }
        if batch.contains(where: { $0 < 1 }) { throw ValidationError("--batch sizes must be at least 1") }
        if shortPrefill < 0 || shortContext < 0 { throw ValidationError("--short-prefill and --short-context cannot be negative") }
        if serveTokens < 1 || servePairs < 1 { throw ValidationError("--serve-tokens and --serve-pairs must be at least 1") }
    }

    func run() throws {
        try reportingErrors {
            if kernels {
                log("kernels on a cached matrix, one thread…")
                let r: [String: Any] = ["kernel_cached_gbps": MachineProbe.cachedKernelRates(), "isa": MachineProbe.isa,
                                        "fma_peak_gmac_s": MachineProbe.fmaPeakGMACs(), "cpu": MachineProbe.cpuModel ?? NSNull()]
                print(json ? try jsonLine(r) : table(r))
                return
            }
            let folder = try modelOptions.locate()
            var r: [String: Any] = ["weights": weightOptions.weights.rawValue, "model": folder.path]
            if quality {
                r.merge(try QualityBench.run(folder: folder, weights: weightOptions, log: log)) { $1 }
                print(json ? try jsonLine(r) : table(r))
                return
            }
            if serve {
                let engine = try weightOptions.engine(folder, context: 4096)
                r["load_s"] = engine.loadSeconds
                r.merge(try ServeBench.run(engine: engine, tokens: serveTokens, pairs: servePairs, log: log)) { $1 }
                r["isa"] = MachineProbe.isa
                r["cpu"] = MachineProbe.cpuModel ?? NSNull()
                print(json ? try jsonLine(r) : table(r))
                return
            }
            if session {
                let engine = try weightOptions.engine(folder, context: 8192)
                r.merge(try SessionBench.run(engine: engine, cancelOnly: cancelOnly, log: log)) { $1 }
                print(json ? try jsonLine(r) : table(r))
                return
            }
            log("measuring read bandwidth…")
            var gbps = MachineProbe.poolReadBandwidth()
            log("measuring SGEMM…")
            var vit = MachineProbe.sgemmGFLOPs(m: 1025, n: 3072, k: 1024)
            var pre = MachineProbe.sgemmGFLOPs(m: 256, n: 8192, k: 2048)

            // Peak RSS is the engine's: the probes' buffers are left out (the mark is reset after
            // each probe and the paired probe's resident buffer is subtracted).
            MachineProbe.resetPeakRSS()
            var peakMB = 0.0
            log("loading \(folder.path)…")
            let engine = try weightOptions.engine(folder, context: max(prefill.max() ?? 0, decodeAt.max() ?? 0,
                                                                       shortPrefill > 0 ? shortContext + shortPrefill : 0) + decodeSteps + 8)
            r["load_s"] = engine.loadSeconds
            r["rss_after_load_mb"] = MachineProbe.memoryMB().rss
            let model = engine.model
            let bytesPerToken = model.weightBytesPerToken
            r["weight_bytes_per_token"] = bytesPerToken
            r["kv_cache"] = model.kvPrecision.rawValue
            r["kv_bytes_per_position"] = model.makeCache(initialCapacity: 1).bytesPerPosition

            // Prompts of random ids drawn from ordinary text pieces (no special tokens).
            var rng = SystemRandomNumberGenerator()
            func prompt(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32.random(in: 1000..<30000, using: &rng) } }

            // The SGEMM ceiling right before and after a timed part (the better of the two): on a
            // shared machine it moves by a third within minutes, so the *_paired ratios divide by
            // what the machine gave beside the part, the plain ones by the run's best ceiling.
            // The probe's buffers are kept out of the engine's peak RSS.
            func besideCeiling() -> Double {
                peakMB = max(peakMB, MachineProbe.memoryMB().peak)
                let a = MachineProbe.sgemmGFLOPs(m: 1025, n: 3072, k: 1024), b = MachineProbe.sgemmGFLOPs(m: 256, n: 8192, k: 2048)
                MachineProbe.resetPeakRSS()
                vit = max(vit, a); pre = max(pre, b)
                return max(a, b)
            }
            var prefillRates: [String: Double] = [:], prefillGF: [String: Double] = [:]
            for n in prefill {
                log("prefill \(n) tokens…")
                let longest = n == prefill.max()
                let before = longest ? besideCeiling() : 0
                let t0 = Date()
                _ = model.forward(prompt(n), cache: model.makeCache(initialCapacity: n))
                let dt = Date().timeIntervalSince(t0)
                prefillRates[String(n)] = Double(n) / dt
                prefillGF[String(n)] = model.prefillFLOPs(n) / dt / 1e9
                if longest { r["prefill_vs_sgemm_paired"] = prefillGF[String(n)]! / max(before, besideCeiling()) }
            }
            r["prefill_tok_s"] = prefillRates
            var decodeRates: [String: Double] = [:]
            var pairedRatios: [Double] = []
            peakMB = max(peakMB, MachineProbe.memoryMB().peak)
            let probeBytes = 512 << 20
            var probe: MachineProbe.ReadProbe? = MachineProbe.ReadProbe(bytes: probeBytes)
            for ctx in decodeAt {
                log("decode at context \(ctx)…")
                let cache = model.makeCache(initialCapacity: ctx + decodeSteps)
                _ = model.forward(prompt(ctx), cache: cache, logits: .none)
                // This machine's read bandwidth moves between ~35 and ~65 GB/s within minutes, so
                // at the first context the steps are timed in groups of 4, each between two probes
                // (their better counts): read_gbps keeps the best probe of the run (the ratio of
                // the issue, conservative), decode_vs_bandwidth_paired the median of the groups'
                // ratios against their own probes.
                let paired = ctx == decodeAt.min()
                var before = paired ? probe!.measure(repeats: 2) : 0
                var elapsed = 0.0, done = 0
                while done < decodeSteps {
                    let n = paired ? min(4, decodeSteps - done) : decodeSteps
                    let t0 = Date()
                    for _ in 0..<n { _ = model.forward(prompt(1), cache: cache) }
                    let dt = Date().timeIntervalSince(t0)
                    elapsed += dt; done += n
                    if paired {
                        let after = probe!.measure(repeats: 2)
                        let ceiling = max(before, after)
                        pairedRatios.append(Double(n) / dt * Double(bytesPerToken) / (ceiling * 1e9))
                        gbps = max(gbps, ceiling)
                        before = after
                    }
                }
                decodeRates[String(ctx)] = Double(decodeSteps) / elapsed
            }
            if shortPrefill > 0 {
                // A follow-up's cost: `shortPrefill` new positions after `shortContext` cached ones,
                // in decode steps at that context. A decode step and the prompt are timed in turn,
                // seven pairs, the cache cut back to the context after each, so that both meet the
                // same states of a shared machine's memory: the times are the medians, the ratio
                // the median of the pairs' ratios.
                log("\(shortPrefill) tokens after \(shortContext) cached…")
                let cache = model.makeCache(initialCapacity: shortContext + shortPrefill + 8)
                _ = model.forward(prompt(shortContext), cache: cache, logits: .none)
                func timed(_ tokens: Int) -> Double {
                    let ids = prompt(tokens), t0 = Date()
                    _ = model.forward(ids, cache: cache)
                    let dt = Date().timeIntervalSince(t0)
                    cache.truncate(to: shortContext)
                    return dt
                }
                let pairs = (0..<7).map { _ in (step: timed(1), short: timed(shortPrefill)) }
                r["short_prefill_s"] = pairs.map(\.short).median
                r["decode_step_s_at_short_context"] = pairs.map(\.step).median
                r["short_prefill_steps"] = pairs.map { $0.short / $0.step }.median
            }
            if !batch.isEmpty {
                // Several sequences at the same context, one new token each per step: what a
                // server decoding its active requests together gets (forwardBatch).
                // The batch sizes take their steps in turn (N=1, N=4, N=1, ...), each step timed,
                // so that all of them meet the same states of a shared machine's memory; the rate
                // is from the median step, and each size's gain over one sequence is the median of
                // its steps' ratios to the single-sequence steps taken beside them.
                let ctx = decodeAt.min() ?? 64
                let sizes = batch.filter { $0 > 0 }
                log("batched decoding, \(sizes.map(String.init).joined(separator: ", ")) sequences, steps in turn…")
                let caches = sizes.map { b in
                    (0..<b).map { _ -> KVCache in
                        let c = model.makeCache(initialCapacity: ctx + decodeSteps + 1)
                        _ = model.forward(prompt(ctx), cache: c, logits: .none)
                        return c
                    }
                }
                let x = FloatBuffer(count: (sizes.max() ?? 1) * model.hidden)
                var times = sizes.map { _ in [Double]() }
                for _ in 0..<decodeSteps {
                    for (i, b) in sizes.enumerated() {
                        let t0 = Date()
                        model.embed(prompt(b), into: x.data)
                        _ = model.forwardBatch(embeddings: x.data, caches: caches[i])
                        times[i].append(Date().timeIntervalSince(t0))
                    }
                }
                var rates: [String: Double] = [:], gains: [String: Double] = [:]
                let one = sizes.firstIndex(of: 1)
                for (i, b) in sizes.enumerated() {
                    rates[String(b)] = Double(b) / times[i].median
                    if let one { gains[String(b)] = zip(times[one], times[i]).map { Double(b) * $0 / $1 }.median }
                }
                if !gains.isEmpty { r["batch_decode_vs_1"] = gains }
                r["batch_decode_tok_s"] = rates
            }
            if !pairedRatios.isEmpty { r["decode_vs_bandwidth_paired"] = pairedRatios.median }
            peakMB = max(peakMB, MachineProbe.memoryMB().peak - Double(probeBytes) / 1048576)
            probe = nil
            MachineProbe.resetPeakRSS()
            r["decode_tok_s"] = decodeRates
            // The ceilings again at the end; the better of the two runs counts (shared machines).
            log("measuring the ceilings again…")
            _ = besideCeiling()
            gbps = max(gbps, MachineProbe.poolReadBandwidth())
            MachineProbe.resetPeakRSS()
            r["read_gbps"] = gbps
            let d0 = decodeRates[String(decodeAt.min() ?? 64)] ?? 0
            r["decode_vs_bandwidth"] = d0 * Double(bytesPerToken) / (gbps * 1e9)
            r["prefill_gflops"] = prefillGF
            // Preprocessing: a 4000x3000 JPEG (made here) decoded, tiled into 12 + thumbnail, normalised.
            log("preprocessing a 4000x3000 JPEG…")
            let photo = SessionBench.photo(4000, 3000)
            guard let jpeg = JPEGEncoder.encode(photo) else { throw ValidationError("TurboJPEG could not encode the test image") }
            let p0 = Date()
            let decoded = try ImageDecoder.decode(bytes: jpeg, name: "bench.jpg")
            let prepared = ImagePreprocessor.prepare(decoded, options: engine.tilingOptions(maxTiles: 12))
            r["preprocess_s"] = Date().timeIntervalSince(p0)
            r["preprocess_tiles"] = prepared.tiles
            log("vision encoder, \(visionBatch) tiles…")
            let s = prepared.tileSize, batch = min(visionBatch, prepared.tiles)
            let pixels = Array(prepared.pixels.prefix(batch * 3 * s * s))
            let visionBefore = besideCeiling()
            let v0 = Date()
            _ = engine.vision.encode(pixels: pixels, tiles: batch)
            let perTile = Date().timeIntervalSince(v0) / Double(batch)
            r["vision_s_per_tile"] = perTile
            let visionGFLOPs = engine.vision.flopsPerTile / perTile / 1e9
            r["rss_peak_mb"] = max(peakMB, MachineProbe.memoryMB().peak)
            r["vision_vs_sgemm_paired"] = visionGFLOPs / max(visionBefore, besideCeiling())
            r["sgemm_gflops"] = max(vit, pre)
            r["sgemm_gflops_by_shape"] = ["1025x1024x3072": vit, "256x2048x8192": pre]
            // At the longest prompt (2048 by default), as the issue asks; every length in prefill_gflops.
            r["prefill_vs_sgemm"] = (prefillGF[String(prefill.max() ?? 2048)] ?? 0) / max(vit, pre)
            r["vision_vs_sgemm"] = visionGFLOPs / max(vit, pre)
            r["threads"] = ProcessInfo.processInfo.activeProcessorCount
            r["isa"] = MachineProbe.isa
            r["cpu"] = MachineProbe.cpuModel ?? NSNull()
            r["blas_core"] = MachineProbe.blasCore ?? NSNull()
            print(json ? try jsonLine(r) : table(r))
        }
    }

    func log(_ s: String) { writeStderr(("bench: " + s + "\n")) }

    func jsonLine(_ r: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: r, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }

    func table(_ r: [String: Any]) -> String {
        r.keys.sorted().map { k in
            let v = r[k]!
            let s: String
            switch v {
            case let d as Double: s = String(format: "%.3f", d)
            case let m as [String: Double]: s = m.keys.sorted { (Int($0) ?? 0, $0) < (Int($1) ?? 0, $1) }.map { "\($0): " + String(format: "%.2f", m[$0]!) }.joined(separator: ", ")
            case is NSNull: s = "n/a"
            default: s = "\(v)"
            }
            return k.padding(toLength: 24, withPad: " ", startingAt: 0) + s
        }.joined(separator: "\n")
    }
}

extension Array where Element == Double {
    /// The middle value once sorted (of two middle ones, the upper).
    var median: Double { sorted()[count / 2] }
}

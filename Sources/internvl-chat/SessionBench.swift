import Chat
import ChatAPI
import Foundation
import Imaging
import Kernels

/// `bench --session`: what the inference session saves and how fast it stops, in one run.
/// - follow-up time to first token after a turn with a 1-, 3- and 7-tile image, against the
///   official way (re-encode the image, re-prefill the whole conversation);
/// - a question typed after the image was attached and prefilled ahead: time to first token;
/// - time from cancel() to control back, during vision encoding, prefill and decoding, and
///   whether the next turn then completes.
enum SessionBench {
    static func run(engine: ChatEngine, cancelOnly: Bool = false, log: (String) -> Void) throws -> [String: Any] {
        var r: [String: Any] = [:]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("internvl-bench-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = engine.configuration.imageSize
        // (tiles, width, height, max tiles): 1x1; 2x1 + thumbnail; 3x2 + thumbnail.
        let shapes = [(1, s, s, 1), (3, 2 * s, s, 2), (7, 3 * s, 2 * s, 6)]
        var follow: [String: Double] = [:], official: [String: Double] = [:], speedup: [String: Double] = [:]
        let q1 = SamplingParameters(maxNewTokens: 4), q2 = SamplingParameters(maxNewTokens: 1)
        var paths: [Int: String] = [:]
        for (tiles, w, h, _) in shapes {
            let path = dir.appendingPathComponent("img\(tiles).jpg").path
            try Data(JPEGEncoder.encode(photo(w, h))!).write(to: URL(fileURLWithPath: path))
            paths[tiles] = path
        }
        for (tiles, _, _, maxTiles) in shapes where !cancelOnly {
            let path = paths[tiles]!
            log("session, \(tiles)-tile image: first turn…")
            let session = ChatSession(engine: engine)
            let img = try blocking { try await session.attach(path: path, maxTiles: maxTiles) }
            guard img.tiles == tiles else { throw ChatError.invalidParameters("expected \(tiles) tiles, got \(img.tiles)") }
            _ = try outcome(blocking { await collect(await session.send("Describe this image.", images: [img], parameters: q1)) })
            log("session, \(tiles)-tile image: follow-up…")
            let f = try outcome(blocking { await collect(await session.send("And the colours?", images: [], parameters: q2)) })
            follow[String(tiles)] = f.firstTokenSeconds
            log("official way, \(tiles)-tile image: re-encode and re-prefill…")
            let turns = try blocking { await session.turns }
            let t0 = Date()
            let prepared = try engine.prepareImage(path: path, maxTiles: maxTiles)
            let tokens = engine.encodeImage(prepared)
            let ids = try engine.promptIDs(template: engine.template, history: [(turns[0].question, turns[0].answer)],
                                           question: "And the colours?", tileCounts: [prepared.tiles])
            _ = try engine.generate(prompt: ids, imageTokens: tokens, parameters: q2)
            official[String(tiles)] = Date().timeIntervalSince(t0)
            speedup[String(tiles)] = official[String(tiles)]! / max(f.firstTokenSeconds, 1e-9)
        }
        let path7 = paths[7]!, path3 = paths[3]!
        if !cancelOnly {
        r["follow_up_ttft_s"] = follow
        r["official_follow_up_ttft_s"] = official
        r["follow_up_speedup"] = speedup

        log("typing user: attach, prefill ahead, then the question…")
        let typing = ChatSession(engine: engine)
        let img7 = try blocking { try await typing.attach(path: path7, maxTiles: 6) }
        let ahead = try blocking { await typing.prefillAhead(images: [img7]) }
        let t = try outcome(blocking { await collect(await typing.send("What is in it?", images: [img7], parameters: q2)) })
        r["typed_question_ttft_s"] = t.firstTokenSeconds
        r["typed_question_prefilled_tokens"] = t.prefilledTokens
        r["typed_question_prefill_s"] = t.prefillSeconds
        r["prefilled_ahead_tokens"] = ahead
        }

        // Cancel latency: from cancel() to the call or the stream returning.
        var cancel: [String: Double] = [:], after: [String: Bool] = [:]
        let c = ChatSession(engine: engine)
        log("cancel during vision encoding…")
        let attachBox = ResultBox<Double>()
        let done = DispatchSemaphore(value: 0)
        Task {
            do { _ = try await c.attach(path: path7, maxTiles: 6) } catch {}
            attachBox.result = .success(Date().timeIntervalSinceReferenceDate)
            done.signal()
        }
        Thread.sleep(forTimeInterval: 3)
        let v0 = Date().timeIntervalSinceReferenceDate
        c.cancel()
        done.wait()
        let ended = try attachBox.result!.get()
        if ended >= v0 { cancel["vision"] = (ended - v0) * 1000 }      // else it finished before the cancel
        let img = try blocking { try await c.attach(path: path3, maxTiles: 2) }
        for phase in ["prefill", "decode"] {
            // A random model may end its answer by itself; a measurement counts only when the
            // cancel really interrupted the turn (up to three questions are tried).
            for question in ["Describe this image in detail.", "List everything you see.", "Write a long story about it."] {
                log("cancel during \(phase)…")
                let (ms, interrupted) = try blocking { () async -> (Double, Bool) in
                    let stream = await c.send(question, images: [img], parameters: SamplingParameters(maxNewTokens: 200))
                    var t0 = 0.0, stats: TurnStats? = nil
                    for await e in stream {
                        if t0 == 0, phase == "prefill", case .phase(.prefill(let d, _)) = e, d > 0 {
                            t0 = Date().timeIntervalSinceReferenceDate; c.cancel()
                        }
                        if t0 == 0, phase == "decode", case .phase(.generating) = e {
                            try? await Task.sleep(nanoseconds: 1_000_000_000)       // a few tokens in
                            t0 = Date().timeIntervalSinceReferenceDate; c.cancel()
                        }
                        if case .finished(let st) = e { stats = st }
                    }
                    let ms = (Date().timeIntervalSinceReferenceDate - t0) * 1000
                    return (ms, phase == "prefill" ? stats == nil : stats?.interrupted == true)
                }
                if interrupted { cancel[phase] = ms; break }
            }
            let next = try blocking { await collect(await c.send("Short answer?", images: [], parameters: q2)) }
            after[phase] = next.stats != nil
        }
        r["cancel_ms"] = cancel
        r["next_turn_after_cancel_ok"] = after
        return r
    }

    struct Collected: Sendable { var stats: TurnStats?; var failure: String? }

    static func collect(_ s: AsyncStream<ChatEvent>) async -> Collected {
        var c = Collected()
        for await e in s {
            if case .finished(let st) = e { c.stats = st }
            if case .failed(let m) = e { c.failure = m }
        }
        return c
    }

    static func outcome(_ c: Collected) throws -> TurnStats {
        guard let s = c.stats else { throw ChatError.invalidParameters(c.failure ?? "the turn was cancelled") }
        return s
    }

    /// A photo-like test picture (bench inputs): gradients, an edge pattern, mild noise.
    static func photo(_ w: Int, _ h: Int) -> RGBImage {
        var px = [UInt8](repeating: 0, count: w * h * 3)
        var state: UInt32 = 99
        for y in 0..<h { for x in 0..<w {
            state = state &* 1664525 &+ 1013904223
            let n = Int(state >> 28) - 8, i = (y * w + x) * 3
            px[i] = UInt8(clamping: x * 255 / w + n)
            px[i + 1] = UInt8(clamping: y * 255 / h + n)
            px[i + 2] = UInt8(clamping: ((x / 40 + y / 30) % 2) * 180 + 40 + n)
        } }
        return RGBImage(width: w, height: h, pixels: px)
    }
}

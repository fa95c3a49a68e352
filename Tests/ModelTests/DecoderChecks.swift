import Checkpoint
import Foundation
import Kernels
import Testing
import TestSupport
import Tokenizer
@testable import Model

/// Checks every decoder family's tiny model passes the same way.
enum DecoderChecks {
    /// A family's tiny model from testdata: the decoder (the config must name `architecture`), its
    /// tokenizer, and the reference's cases (golden.json).
    static func load<T: Tokenizer>(_ name: String, _ architecture: LLMArchitecture, family: DecoderFamily,
                                   tokenizer: (URL) throws -> T) throws -> (DecoderModel, T, [[String: Any]]) {
        let dir = TestData.url(name)
        let config = try ModelConfiguration.load(from: dir.appendingPathComponent("config.json"))
        #expect(config.llmConfig.architecture == architecture)
        let weights = try CheckpointWeights(folder: dir, config: config)
        let golden = try TestData.json(dir.appendingPathComponent("golden.json"))
        return (try DecoderModel(weights: weights, config: config.llmConfig, family: family),
                try tokenizer(dir), golden["cases"] as! [[String: Any]])
    }

    /// Greedy continuation of `prompt` for at most `steps` tokens, ending before a stop token.
    static func greedy(_ model: DecoderModel, _ prompt: [Int32], stop: Set<Int32>, steps: Int) -> [Int32] {
        let cache = model.makeCache(initialCapacity: 8)
        var logits = model.forward(prompt, cache: cache)
        var out: [Int32] = []
        for _ in 0..<steps {
            let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
            if stop.contains(next) { break }
            out.append(next)
            logits = model.forward([next], cache: cache)
        }
        return out
    }

    /// Each case's prompt tokenizes to the reference's ids, and the last position's logits are
    /// within `bound` (relative) of the reference's (golden-logits.f64).
    static func lastLogitsMatchReference(_ model: DecoderModel, _ tok: some Tokenizer, cases: [[String: Any]], name: String,
                                         kv: KVPrecision) throws {
        let bound = kv == .float32 ? 1e-4 : 5e-4
        for (k, c) in cases.enumerated() {
            let ids = TestData.ints(c["prompt_ids"])
            #expect(tok.encode(c["prompt"] as! String) == ids, "prompt ids differ")
            let logits = model.forward(ids, cache: model.makeCache(precision: kv))
            let want = try TestData.logits(TestData.url(name + "/golden-logits.f64"), index: k, vocab: model.vocabSize)
            let err = InternLM2ReferenceTests.relativeError(logits, want)
            #expect(err < bound, "\(kv) KV, prompt of \(ids.count) tokens: relative error \(err)")
        }
    }

    /// Batched decoding gives each sequence its lone decode step's logits, bit for bit.
    static func batchedDecodeEqualsLoneSteps(_ model: DecoderModel, prompts: [[Int32]]) {
        let caches = prompts.map { _ in model.makeCache() }, lone = prompts.map { _ in model.makeCache() }
        var next: [Int32] = []
        for (k, p) in prompts.enumerated() {
            _ = model.forward(p, cache: caches[k]); let l = model.forward(p, cache: lone[k])
            next.append(Int32(l.indices.max { l[$0] < l[$1] }!))
        }
        let x = FloatBuffer(count: next.count * model.hidden)
        model.embed(next, into: x.data)
        let batched = Array(model.forwardBatch(embeddings: x.data, caches: caches))
        for k in prompts.indices {
            let want = model.forward([next[k]], cache: lone[k])
            #expect(Array(batched[(k * model.vocabSize)..<((k + 1) * model.vocabSize)]) == want)
        }
    }

    /// int8 and q4 weights keep the logits of `ids` close to the stored weights' (a fresh model
    /// from `load` for each format).
    static func quantizedModelStaysClose(_ load: () throws -> DecoderModel, ids: [Int32]) throws {
        for q in [Quantization.q8, .q4] {
            let model = try load()
            let before = model.forward(ids, cache: model.makeCache())
            model.quantize(as: q)
            #expect(model.weightFormat == q.rawValue)
            let after = model.forward(ids, cache: model.makeCache())
            let err = InternLM2ReferenceTests.relativeError(after, before.map(Double.init))
            #expect(err < (q == .q8 ? 0.05 : 0.3), "\(q): relative error \(err)")
        }
    }
}

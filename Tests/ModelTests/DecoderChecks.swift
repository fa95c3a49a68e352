import Kernels
import Testing
import TestSupport
@testable import Model

/// Checks every decoder family's tiny model passes the same way.
enum DecoderChecks {
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

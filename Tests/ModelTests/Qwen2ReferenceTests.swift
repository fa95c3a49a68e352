import Checkpoint
import Foundation
import Kernels
import Testing
import TestSupport
import Tokenizer
@testable import Model

/// The Qwen2 decoder (DecoderModel, family .qwen2) against the NumPy reference
/// (Tests/reference/qwen2_ref.py) on tiny-qwen2: InternVL2_5-1B's layout with q/k/v biases, a
/// head tied to the embeddings and rope_theta 1e6, over the real Qwen2 vocabulary.
struct Qwen2ReferenceTests {
    static let name = "tiny-qwen2"

    static func load() throws -> (DecoderModel, ByteLevelBPETokenizer, [[String: Any]]) {
        let dir = TestData.url(name)
        let config = try ModelConfiguration.load(from: dir.appendingPathComponent("config.json"))
        #expect(config.llmConfig.architecture == .qwen2)
        let weights = try CheckpointWeights(folder: dir, config: config)
        let golden = try TestData.json(dir.appendingPathComponent("golden.json"))
        return (try DecoderModel(weights: weights, config: config.llmConfig, family: .qwen2),
                try ByteLevelBPETokenizer(folder: dir), golden["cases"] as! [[String: Any]])
    }

    @Test(arguments: KVPrecision.allCases)
    func lastLogitsMatchReference(kv: KVPrecision) throws {
        let (model, tok, cases) = try Self.load()
        #expect(cases.count >= 10)
        let bound = kv == .float32 ? 1e-4 : 5e-4
        for (k, c) in cases.enumerated() {
            let ids = TestData.ints(c["prompt_ids"])
            #expect(tok.encode(c["prompt"] as! String) == ids, "prompt ids differ")
            let logits = model.forward(ids, cache: model.makeCache(precision: kv))
            let want = try TestData.logits(TestData.url(Self.name + "/golden-logits.f64"), index: k, vocab: model.vocabSize)
            let err = InternLM2ReferenceTests.relativeError(logits, want)
            #expect(err < bound, "\(kv) KV, prompt of \(ids.count) tokens: relative error \(err)")
        }
    }

    @Test func greedyContinuationsMatchReference() throws {
        let (model, tok, cases) = try Self.load()
        let stop = tok.tokenID("<|im_end|>")!
        var nonEmpty = 0
        for c in cases {
            let cache = model.makeCache(initialCapacity: 8)
            var logits = model.forward(TestData.ints(c["prompt_ids"]), cache: cache)
            var out: [Int32] = []
            for _ in 0..<32 {
                let next = Int32(logits.indices.max { logits[$0] < logits[$1] }!)
                if next == stop { break }
                out.append(next)
                logits = model.forward([next], cache: cache)
            }
            #expect(out == TestData.ints(c["greedy_ids"]), "greedy continuation differs")
            if !out.isEmpty { nonEmpty += 1 }
        }
        #expect(nonEmpty > cases.count / 2)
    }

    /// Batched decoding gives each sequence its lone decode's logits, as for InternLM2.
    @Test func batchedDecodeEqualsLoneSteps() throws {
        let (model, _, cases) = try Self.load()
        DecoderChecks.batchedDecodeEqualsLoneSteps(model, prompts: cases.prefix(3).map { TestData.ints($0["prompt_ids"]) })
    }

    @Test func quantizedModelStaysClose() throws {
        let ids = TestData.ints(try Self.load().2[1]["prompt_ids"])
        try DecoderChecks.quantizedModelStaysClose({ try Self.load().0 }, ids: ids)
    }
}

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
        try DecoderChecks.load(name, .qwen2, family: .qwen2) { try ByteLevelBPETokenizer(folder: $0) }
    }

    @Test(arguments: KVPrecision.allCases)
    func lastLogitsMatchReference(kv: KVPrecision) throws {
        let (model, tok, cases) = try Self.load()
        #expect(cases.count >= 10)
        try DecoderChecks.lastLogitsMatchReference(model, tok, cases: cases, name: Self.name, kv: kv)
    }

    @Test func greedyContinuationsMatchReference() throws {
        let (model, tok, cases) = try Self.load()
        let stop = tok.tokenID("<|im_end|>")!
        var nonEmpty = 0
        for c in cases {
            let out = DecoderChecks.greedy(model, TestData.ints(c["prompt_ids"]), stop: [stop], steps: 32)
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

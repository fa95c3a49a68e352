import Checkpoint
import Foundation
import Kernels
import Testing
import TestSupport
import Tokenizer
@testable import Model

/// The Phi-3 decoder (DecoderModel, family .phi3) against the NumPy reference
/// (Tests/reference/phi3_ref.py) on tiny-phi3: Mini-InternVL-Chat-4B-V1-5's layout with fused
/// qkv_proj and gate_up_proj and su RoPE (short and long factors, original context 128 tokens),
/// over the real Phi-3 vocabulary. Prompts of 11 to 500 tokens: some stay short, one starts
/// past the original context (long factors from the start), several cross it while generating
/// (keys keep the rotation of the call that made them, as generate() with its cache does).
struct Phi3ReferenceTests {
    static let name = "tiny-phi3"

    static func load() throws -> (DecoderModel, Phi3Tokenizer, [[String: Any]]) {
        try DecoderChecks.load(name, .phi3, family: .phi3) { try Phi3Tokenizer(folder: $0) }
    }

    @Test(arguments: KVPrecision.allCases)
    func lastLogitsMatchReference(kv: KVPrecision) throws {
        let (model, tok, cases) = try Self.load()
        #expect(cases.count >= 12)
        #expect(cases.contains { TestData.ints($0["prompt_ids"]).count > 128 }, "no prompt past the original context")
        try DecoderChecks.lastLogitsMatchReference(model, tok, cases: cases, name: Self.name, kv: kv)
    }

    @Test func greedyContinuationsMatchReference() throws {
        let (model, tok, cases) = try Self.load()
        let stop: Set<Int32> = [tok.tokenID("<|end|>")!, tok.eosID]
        var crossed = 0
        for c in cases {
            let prompt = TestData.ints(c["prompt_ids"])
            let out = DecoderChecks.greedy(model, prompt, stop: stop, steps: 40)
            #expect(out == TestData.ints(c["greedy_ids"]), "greedy continuation differs (prompt of \(prompt.count) tokens)")
            if prompt.count <= 128 && prompt.count + out.count > 129 { crossed += 1 }
        }
        #expect(crossed >= 1, "no continuation crosses the original context")
    }

    /// The long factors are chosen by the call's sequence length, the short ones below it; the
    /// magnitude is sqrt(1 + ln(4096 / 128) / ln(128)).
    @Test func ropeFactorsFollowTheSequenceLength() throws {
        let (model, _, _) = try Self.load()
        let rs = model.config.ropeScaling!
        let short = model.inverseFrequencies(callLength: 128), long = model.inverseFrequencies(callLength: 129)
        let base = model.inverseFrequencies(callLength: 1)
        #expect(short == base)
        for i in 0..<8 {
            #expect(abs(Double(short[i]) * rs.shortFactor![i] * pow(10000, Double(2 * i) / 16) - 1) < 1e-5)
            #expect(abs(Double(long[i]) * rs.longFactor![i] * pow(10000, Double(2 * i) / 16) - 1) < 1e-5)
        }
        #expect(abs(Double(model.ropeMagnitude) - (1 + log(32.0) / log(128.0)).squareRoot()) < 1e-6)
        #expect(model.prefillsWhole(promptLength: 129) && !model.prefillsWhole(promptLength: 128))
    }

    @Test func batchedDecodeEqualsLoneSteps() throws {
        let (model, _, cases) = try Self.load()
        DecoderChecks.batchedDecodeEqualsLoneSteps(model, prompts: cases.suffix(3).map { TestData.ints($0["prompt_ids"]) })
    }

    @Test func quantizedModelStaysClose() throws {
        let ids = TestData.ints(try Self.load().2[1]["prompt_ids"])
        try DecoderChecks.quantizedModelStaysClose({ try Self.load().0 }, ids: ids)
    }

    /// A Phi-3 with a sliding window shorter than its context (the 4k Phi-3 checkpoints) is
    /// refused by name: the engine has no windowed attention.
    @Test func slidingWindowIsRefused() throws {
        let dir = TestData.url(Self.name)
        var json = try TestData.json(dir.appendingPathComponent("config.json"))
        var llm = json["llm_config"] as! [String: Any]
        llm["sliding_window"] = 2047
        json["llm_config"] = llm
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("phi3-window-\(getpid()).json")
        try JSONSerialization.data(withJSONObject: json).write(to: tmp)
        defer { try? FileManager.default.removeItem(at: tmp) }
        #expect {
            _ = try ModelConfiguration.load(from: tmp)
        } throws: { "\($0.localizedDescription)".contains("sliding_window") }
    }
}

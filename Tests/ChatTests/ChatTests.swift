import Foundation
import Testing
import TestSupport
import Tokenizer
@testable import Chat
import ChatAPI

struct ChatTemplateTests {
    static func goldenCases(_ model: String) throws -> [[String: Any]] {
        try TestData.json(TestData.url(model + "/golden.json"))["cases"] as! [[String: Any]]
    }

    static func history(_ c: [String: Any]) -> [(String, String)] {
        (c["history"] as! [[String]]).map { ($0[0], $0[1]) }
    }

    /// Prompt strings equal the reference's rendering of conversation.py's MPT template,
    /// including an empty history answer and an empty system message.
    @Test func promptsMatchReference() throws {
        for c in try Self.goldenCases("tiny-a") {
            let t = ChatTemplate.internLM2Chat.with(systemMessage: c["system"] as! String)
            #expect(t.prompt(history: Self.history(c), question: c["question"] as! String) == c["prompt"] as! String)
        }
        #expect(ChatTemplate.internLM2Chat.prompt(history: [], question: "hi")
            == "<|im_start|>system\n\(ChatTemplate.internLM2Chat.systemMessage)<|im_end|><|im_start|>user\nhi<|im_end|><|im_start|>assistant\n")
    }

    /// The family's templates as conversation.py's SeparatorStyle.MPT writes them: internvl2_5
    /// (tiny-qwen2's golden prompts, made by the reference), phi3-chat (tiny-phi3's) and Hermes-2.
    @Test func familyTemplatesMatchConversationPy() throws {
        for (model, template) in [("tiny-qwen2", ChatTemplate.internVL25), ("tiny-phi3", .phi3Chat)] {
            for c in try Self.goldenCases(model) {
                let t = template.with(systemMessage: c["system"] as! String)
                #expect(t.prompt(history: Self.history(c), question: c["question"] as! String) == c["prompt"] as! String)
            }
        }
        #expect(ChatTemplate.hermes2.prompt(history: [("q", "a")], question: "hi")
            == "<|im_start|>system\n\(ChatTemplate.internLM2Chat.systemMessage)<|im_end|><|im_start|>user\nq<|im_end|>"
            + "<|im_start|>assistant\na<|im_end|><|im_start|>user\nhi<|im_end|><|im_start|>assistant\n")
        #expect(ChatTemplate.phi3Chat.with(systemMessage: "S").prompt(history: [], question: "hi")
            == "<|system|>\nS<|end|><|user|>\nhi<|end|><|assistant|>\n")
        #expect(ChatTemplate.internVL25.stopTokens == ["<|im_end|>"] && ChatTemplate.phi3Chat.stopTokens == ["<|end|>"])
    }

    /// config.json's `template` picks the template by name; an unknown one is refused by name.
    @Test func templatesAreChosenByName() throws {
        #expect(try ChatTemplate.named("internlm2-chat") == ChatTemplate.internLM2Chat)
        #expect(try ChatTemplate.named("Hermes-2") == ChatTemplate.hermes2)
        #expect(try ChatTemplate.named("internvl2_5") == ChatTemplate.internVL25)
        #expect(try ChatTemplate.named("phi3-chat") == ChatTemplate.phi3Chat)
        #expect(throws: ChatError.unknownTemplate("chatml", known: ["internlm2-chat", "Hermes-2", "internvl2_5", "phi3-chat"])) {
            try ChatTemplate.named("chatml")
        }
        #expect(ChatError.unknownTemplate("chatml", known: ["internlm2-chat"]).errorDescription!.contains("\"chatml\""))
    }

    /// The engine end to end: template, tokenizer, model, greedy loop, response text.
    @Test(arguments: TestData.tinyModels)
    func greedyChatMatchesReference(model: String) throws {
        let engine = try ChatEngine(folder: TestData.url(model))
        for c in try Self.goldenCases(model) {
            let ids = try engine.promptIDs(template: ChatTemplate.internLM2Chat.with(systemMessage: c["system"] as! String),
                                           history: Self.history(c), question: c["question"] as! String)
            #expect(ids == TestData.ints(c["prompt_ids"]))
            var streamed = ""
            let r = try engine.generate(prompt: ids, parameters: SamplingParameters(maxNewTokens: 32),
                                        onText: { streamed += $0 })
            #expect(r.tokenIDs == TestData.ints(c["greedy_ids"]))
            #expect(r.text == c["response"] as! String)
            #expect(streamed == r.text, "streamed text must add up to the response")
            #expect(r.stoppedAtStopToken == (r.tokenIDs.count < 32))
        }
    }

    /// Phi-3 through the engine (phi3-chat from config.json, Phi3Tokenizer, greedy loop with its
    /// stop tokens, response cut at "<|end|>"): text, multi-turn and prompts past the original
    /// context against tiny-phi3's reference answers.
    @Test func phi3ChatMatchesReference() throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-phi3"))
        #expect(engine.configuration.template == "phi3-chat")
        for c in try Self.goldenCases("tiny-phi3") {
            let ids = try engine.promptIDs(template: ChatTemplate.phi3Chat.with(systemMessage: c["system"] as! String),
                                           history: Self.history(c), question: c["question"] as! String)
            #expect(ids == TestData.ints(c["prompt_ids"]))
            var streamed = ""
            let r = try engine.generate(prompt: ids, parameters: SamplingParameters(maxNewTokens: 40),
                                        onText: { streamed += $0 })
            #expect(r.tokenIDs == TestData.ints(c["greedy_ids"]), "prompt of \(ids.count) tokens")
            #expect(r.text == c["response"] as! String)
            #expect(streamed == r.text, "streamed text must add up to the response")
        }
    }

    @Test func badRequestsAreErrors() throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-a"), contextLength: 32)
        #expect(throws: ChatError.emptyPrompt) { try engine.promptIDs(template: ChatTemplate.internLM2Chat, history: [], question: "") }
        #expect(throws: ChatError.self) { try engine.promptIDs(template: ChatTemplate.internLM2Chat, history: [], question: "hello") }
        let short = try engine.promptIDs(template: ChatTemplate.internLM2Chat.with(systemMessage: ""), history: [], question: "a")
        #expect(throws: ChatError.invalidParameters("top-p must be in (0, 1]")) {
            try engine.generate(prompt: short, parameters: SamplingParameters(topP: 0))
        }
        // The answer stops at the context end instead of overflowing it.
        let r = try engine.generate(prompt: short, parameters: SamplingParameters(maxNewTokens: 100))
        #expect(short.count + r.tokenIDs.count <= 32)
    }
}

struct StreamingDetokenizerTests {
    static func stream(_ tok: InternLM2Tokenizer, _ ids: [Int32]) -> String {
        var d = StreamingDetokenizer(tokenizer: tok)
        var s = ""
        for id in ids { s += d.append(id) }
        return s + d.finish()
    }

    /// Whatever the ids, the emitted chunks add up to the final response, and no chunk is
    /// ever taken back (it would be visible on screen).
    @Test func chunksAddUpToTheResponse() throws {
        let tok = try InternLM2Tokenizer(folder: TestData.url("tokenizer"))
        var cases = try TestData.jsonl("decode-cases.jsonl").map { TestData.ints($0["ids"]) }
        let piece = { (s: String) in tok.encode(s, addBOS: false) }
        cases += [
            piece("don") + piece(" ") + piece("n't") + piece(" .") + piece(" '") + piece(" ") + piece("s ok ?"),
            piece("a ' b ' ' c ' s"),
            piece("hello <|im_") + piece("end|> never shown"),
            piece("  leading and trailing  \n"),
            piece("你好") + piece("😀"),
            [tok.tokenID("<|im_end|>")!] + piece("x"),
        ]
        // Random ids among those that decode to text (not the control padding) and the added tokens.
        let pool = (0..<tok.sp.pieceCount).filter { tok.sp.model.pieces[$0].type != .control }.map(Int32.init)
            + tok.addedTokens.values.sorted()
        var rng = SeededRandom(seed: 3)
        for _ in 0..<300 {
            cases.append((0..<Int.random(in: 0...30, using: &rng)).map { _ in pool.randomElement(using: &rng)! })
        }
        for ids in cases {
            #expect(Self.stream(tok, ids) == tok.chatResponse(ids), "ids \(ids)")
        }
        #expect(tok.chatResponse(piece("hello <|im_") + piece("end|> never shown")) == "hello")
    }

    @Test func holdsBackSplitCharacters() throws {
        let tok = try InternLM2Tokenizer(folder: TestData.url("tokenizer"))
        // The byte pieces of "你" (E4 BD A0), by value.
        let byteIDs = Array("你".utf8).map { b in Int32(tok.sp.model.pieces.firstIndex { $0.text == String(format: "<0x%02X>", b) }!) }
        var d = StreamingDetokenizer(tokenizer: tok)
        #expect(d.append(byteIDs[0]) == "")
        #expect(d.append(byteIDs[1]) == "")
        #expect(d.append(byteIDs[2]) == "你")
    }
}

struct SamplerTests {
    @Test func greedyAndPenalty() {
        var s = Sampler(SamplingParameters())
        #expect(s.next(logits: [0.1, 3, 2], seen: []) == 1)
        var p = Sampler(SamplingParameters(repetitionPenalty: 2))
        // 3 / 2 = 1.5 < 2: the penalised token loses; negative logits are multiplied.
        #expect(p.next(logits: [0.1, 3, 2], seen: [1]) == 2)
        #expect(p.next(logits: [-1, -0.6, -0.5], seen: [2]) == 1)
    }

    @Test func seededSamplingIsReproducibleAndFollowsTheDistribution() {
        let logits: [Float] = [0, log(2), log(5), -50]
        var a = Sampler(SamplingParameters(temperature: 1, seed: 42)), b = Sampler(SamplingParameters(temperature: 1, seed: 42))
        var counts = [0, 0, 0, 0]
        for _ in 0..<8000 {
            let x = a.next(logits: logits, seen: [])
            #expect(x == b.next(logits: logits, seen: []))
            counts[Int(x)] += 1
        }
        // Expected shares 1/8, 2/8, 5/8; the tail token never.
        #expect(abs(Double(counts[0]) / 8000 - 0.125) < 0.02)
        #expect(abs(Double(counts[2]) / 8000 - 0.625) < 0.02)
        #expect(counts[3] == 0)
        var k1 = Sampler(SamplingParameters(temperature: 1, topK: 1, seed: 1))
        var p = Sampler(SamplingParameters(temperature: 1, topP: 0.5, seed: 1))
        for _ in 0..<50 {
            #expect(k1.next(logits: logits, seen: []) == 2)
            #expect(p.next(logits: logits, seen: []) == 2)    // 5/8 >= 0.5 alone
        }
        var p2 = Sampler(SamplingParameters(temperature: 1, topP: 0.7, seed: 1))
        let drawn = Set((0..<400).map { _ in p2.next(logits: logits, seen: []) })
        #expect(drawn == [1, 2])
    }

    /// Excluded ids (the stop tokens before `minNewTokens`) are never drawn, greedy or sampled,
    /// even when they hold nearly all the mass or are the only ones left by top-k.
    @Test func excludedIdsAreNeverDrawn() {
        var g = Sampler(SamplingParameters())
        #expect(g.next(logits: [0.1, 30, 2], seen: [], excluding: [1]) == 2)
        for seed in UInt64(0)..<200 {
            var s = Sampler(SamplingParameters(temperature: 1, seed: seed))
            #expect(![1, 3].contains(s.next(logits: [0, 40, 0.5, 40], seen: [], excluding: [1, 3])), "seed \(seed)")
            var k = Sampler(SamplingParameters(temperature: 1, topK: 1, seed: seed))
            #expect(k.next(logits: [0, 40, 0.5], seen: [], excluding: [1]) == 2, "seed \(seed)")
        }
    }

    /// A temperature so small that the top logit over it is past float's range (serve takes
    /// 1e-45 as a number from 0 to 2), or a repetition penalty that makes a logit infinite,
    /// leaves one token: the greedy one, not whatever NaN odds would draw.
    @Test func overflowingLogitsPickTheGreedyToken() {
        for seed in UInt64(0)..<20 {
            var t = Sampler(SamplingParameters(temperature: Float(1e-45), seed: seed))
            #expect(t.next(logits: [-1, 3, 2, 0.5], seen: []) == 1, "seed \(seed)")
            var r = Sampler(SamplingParameters(temperature: 1, repetitionPenalty: Float(1e-45), seed: seed))
            #expect(r.next(logits: [-1, 3, 2, 0.5], seen: [2]) == 2, "seed \(seed)")
        }
    }
}

/// `TokenStepper` with `minNewTokens`: the stop token, however likely, is not taken before that
/// many ids; then it ends the answer as before.
struct MinNewTokensTests {
    @Test func theStopTokenWaitsForTheMinimum() throws {
        let tok = try InternLM2Tokenizer(folder: TestData.url("tokenizer"))
        var logits = [Float](repeating: 0, count: 100)
        logits[2] = 50; logits[70] = 1
        for (minimum, sampled) in [(0, false), (3, false), (3, true)] {
            let p = SamplingParameters(temperature: sampled ? 1 : 0, seed: 7, maxNewTokens: 10, minNewTokens: minimum)
            var stepper = TokenStepper(parameters: p, prompt: [1], tokenizer: tok, stopIDs: [2], contextLength: 100)
            var taken: [Int32] = []
            while true {
                let step = logits.withUnsafeBufferPointer { stepper.step(logits: $0, cached: taken.count + 1) }
                guard let t = step.token else { #expect(step.finish == .stopToken); break }
                taken.append(t)
            }
            #expect(taken.count == minimum && !taken.contains(2), "minimum \(minimum), sampled \(sampled): \(taken)")
            if !sampled { #expect(taken.allSatisfy { $0 == 70 }) }
        }
        #expect(SamplingParameters(maxNewTokens: 4, minNewTokens: 5).problem != nil && SamplingParameters(minNewTokens: -1).problem != nil)
    }

    /// Stop strings, as vLLM's, count only in the text of the ids after the minimum: the same
    /// answer ends at its first id without a minimum, and after 3 ids with one.
    @Test func stopStringsCountOnlyAfterTheMinimum() throws {
        let tok = try InternLM2Tokenizer(folder: TestData.url("tokenizer"))
        var logits = [Float](repeating: 0, count: 200)
        let id = try #require((100..<200).first { !tok.decode([Int32($0)]).trimmingCharacters(in: .whitespaces).isEmpty })
        logits[id] = 9
        let stop = String(tok.decode([Int32(id)]).trimmingCharacters(in: .whitespaces).prefix(1))
        for minimum in [0, 3] {
            let p = SamplingParameters(maxNewTokens: 10, minNewTokens: minimum)
            var stepper = TokenStepper(parameters: p, prompt: [1], tokenizer: tok, stopIDs: [2], contextLength: 100, stop: [stop])
            var taken = 0, text = ""
            while true {
                let step = logits.withUnsafeBufferPointer { stepper.step(logits: $0, cached: taken + 1) }
                text += step.text
                if step.token != nil { taken += 1 }
                if let f = step.finish { #expect(f == .stopString, "minimum \(minimum)"); break }
            }
            text += stepper.end()
            #expect(taken == minimum + 1, "minimum \(minimum): \(taken) ids")
            #expect(text.components(separatedBy: stop).count - 1 == minimum, "minimum \(minimum): \(text.debugDescription)")
        }
    }

    /// Parameters saved before `minNewTokens` existed read as 0; 0 is not written, so files stay as they were.
    @Test func oldParametersReadAsNoMinimum() throws {
        let old = #"{"temperature":0.5,"topK":0,"topP":1,"repetitionPenalty":1,"seed":3,"maxNewTokens":64}"#
        let p = try JSONDecoder().decode(SamplingParameters.self, from: Data(old.utf8))
        #expect(p == SamplingParameters(temperature: 0.5, seed: 3, maxNewTokens: 64))
        #expect(!String(decoding: try JSONEncoder().encode(p), as: UTF8.self).contains("minNewTokens"))
        let q = SamplingParameters(maxNewTokens: 64, minNewTokens: 8)
        #expect(try JSONDecoder().decode(SamplingParameters.self, from: JSONEncoder().encode(q)) == q)
    }
}

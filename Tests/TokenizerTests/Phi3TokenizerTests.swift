import Foundation
import Testing
import TestSupport
@testable import Tokenizer

/// Phi-3's tokenizer over the real Phi-3 vocabulary (llama.cpp's ggml-vocab-phi-3.gguf turned
/// into tokenizer.model by Tests/reference/llama_vocab.py) against transformers' slow
/// LlamaTokenizer (legacy false, what chat() loads) on llama.cpp's test strings, hard cases
/// around added tokens and "▁", and a mixed corpus (English, code, Chinese, Japanese, emoji,
/// whitespace runs, digits, added tokens); decoding with skip_special_tokens on random ids.
struct Phi3TokenizerTests {
    static let folder = TestData.url("phi3-tokenizer")

    @Test func idsAndTextsMatchTransformers() throws {
        let tok = try Phi3Tokenizer(folder: Self.folder)
        let cases = try TestData.jsonl("phi3-tokenizer-cases.jsonl")
        #expect(cases.count >= 1500)
        var mismatches: [String] = []
        for c in cases {
            let text = c["text"] as! String, want = TestData.ints(c["ids"])
            let got = tok.encode(text)
            if got != want { mismatches.append("\(text.debugDescription): want \(want) got \(got)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(cases.count) differ, first: \(mismatches.prefix(5))")
        var decodeMismatches: [String] = []
        let decodes = try TestData.jsonl("phi3-decode-cases.jsonl")
        for c in decodes {
            let ids = TestData.ints(c["ids"]), want = c["text"] as! String
            let got = tok.decode(ids)
            if got != want { decodeMismatches.append("\(ids): want \(want.debugDescription) got \(got.debugDescription)") }
        }
        #expect(decodeMismatches.isEmpty, "\(decodeMismatches.count) of \(decodes.count) differ, first: \(decodeMismatches.prefix(5))")
    }

    @Test func specialTokensAndSizes() throws {
        let tok = try Phi3Tokenizer(folder: Self.folder)
        #expect(tok.tokenID("<|end|>") == 32007)
        #expect(tok.tokenID("<|user|>") == 32010)
        #expect(tok.tokenID("<IMG_CONTEXT>") == 32013)
        #expect(tok.eosID == 32000 && tok.bosID == 1)
        #expect(tok.vocabularySize == 32020)
        #expect(tok.encode("") == [1])
        // The answer is cut at "<|end|>" written out or generated (decode keeps that added token).
        #expect(tok.chatResponse(tok.encode("  Hi there <|end|> more", addBOS: false)) == "Hi there")
    }

    @Test func streamingEqualsChatResponse() throws {
        let tok = try Phi3Tokenizer(folder: Self.folder)
        for text in ["Hello 😀👍🏽 world", "  spaced out \n\n", "数字 123 and <|end|> after", "a<img>b", "a\u{0301}"] {
            let ids = tok.encode(text, addBOS: false)
            var d = tok.makeDetokenizer()
            var streamed = ""
            for id in ids { streamed += d.append(id) }
            streamed += d.finish()
            #expect(streamed == tok.chatResponse(ids), "\(text.debugDescription)")
        }
    }
}

import Foundation
import Testing
import TestSupport
@testable import Tokenizer

/// The Qwen2 tokenizer over the real Qwen2 vocabulary (llama.cpp's ggml-vocab-qwen2.gguf turned
/// into tokenizer.json by Tests/reference/llama_vocab.py, checked there against llama.cpp's
/// expected ids) against Hugging Face `tokenizers` on llama.cpp's test strings, hard cases and
/// a mixed corpus (English, code, Chinese, Japanese, emoji, whitespace runs, digits, added tokens).
struct ByteLevelBPETests {
    static let folder = TestData.url("qwen2-tokenizer")

    @Test func idsAndTextsMatchTokenizers() throws {
        let tok = try ByteLevelBPETokenizer(folder: Self.folder)
        let cases = try TestData.jsonl("qwen2-tokenizer-cases.jsonl")
        #expect(cases.count >= 1500)
        var mismatches: [String] = []
        for c in cases {
            let text = c["text"] as! String, want = TestData.ints(c["ids"])
            let got = tok.encode(text)
            if got != want { mismatches.append("\(text.debugDescription): want \(want) got \(got)") }
            // Byte-level BPE loses nothing but what NFC changes.
            let back = tok.decode(got, skipSpecialTokens: false)
            if back != text.precomposedStringWithCanonicalMapping {
                mismatches.append("round trip \(text.debugDescription) -> \(back.debugDescription)")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) mismatches, first: \(mismatches.prefix(5))")
        var decodeMismatches: [String] = []
        for c in try TestData.jsonl("qwen2-decode-cases.jsonl") {
            let ids = TestData.ints(c["ids"]), want = c["text"] as! String
            let got = tok.decode(ids)
            if got != want { decodeMismatches.append("\(ids): want \(want.debugDescription) got \(got.debugDescription)") }
        }
        #expect(decodeMismatches.isEmpty, "\(decodeMismatches.count) mismatches, first: \(decodeMismatches.prefix(5))")
    }

    @Test func specialTokensAndSizes() throws {
        let tok = try ByteLevelBPETokenizer(folder: Self.folder)
        #expect(tok.tokenID("<|im_end|>") == 151645)
        #expect(tok.tokenID("<|endoftext|>") == 151643)
        #expect(tok.tokenID("<IMG_CONTEXT>") != nil)
        #expect(tok.eosID == 151645)       // tokenizer_config.json's eos_token
        #expect(tok.vocabularySize == 151655)
        #expect(tok.encode("") == [])
        // chat() drops special tokens before it splits at "<|im_end|>": a generated <|im_end|>
        // token no longer cuts (generation stops at it anyway); the same text typed out does.
        #expect(tok.chatResponse(tok.encode("  Hi there <|im_end|> more")) == "Hi there  more")
        #expect(tok.chatResponse(tok.encode(" Hi") + [tok.tokenID("<|im_start|>")!] + tok.encode("<|im_end") + tok.encode("|> x")) == "Hi")
    }

    /// The streamed pieces add up to the chat response, emoji split over tokens included.
    @Test func streamingEqualsChatResponse() throws {
        let tok = try ByteLevelBPETokenizer(folder: Self.folder)
        for text in ["Hello 😀👍🏽 world", "  spaced out \n\n", "数字 123 and <|im_end|> after", "a\u{0301}"] {
            let ids = tok.encode(text)
            var d = tok.makeDetokenizer()
            var streamed = ""
            for id in ids { streamed += d.append(id) }
            streamed += d.finish()
            #expect(streamed == tok.chatResponse(ids), "\(text.debugDescription)")
        }
    }

    @Test func anotherPreTokenizerIsRefused() throws {
        var json = try TestData.json(Self.folder.appendingPathComponent("tokenizer.json"))
        var pre = json["pre_tokenizer"] as! [String: Any]
        var steps = pre["pretokenizers"] as! [[String: Any]]
        steps[0]["pattern"] = ["Regex": "\\s+"]
        pre["pretokenizers"] = steps
        json["pre_tokenizer"] = pre
        #expect(throws: TokenizerError.self) {
            try ByteLevelBPETokenizer(tokenizerJSON: json, path: "tokenizer.json", eosToken: "<|im_end|>")
        }
    }
}

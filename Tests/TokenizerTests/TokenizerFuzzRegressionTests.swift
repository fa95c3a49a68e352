import Foundation
import Testing
import TestSupport
import Tokenizer

/// Inputs the fuzzers found (Tests/Fuzz/regressions/tokenizer), each refused or read now.
struct TokenizerFuzzRegressionTests {
    /// A trainer_spec model_type varint above Int.max trapped converting UInt64 to Int.
    @Test func modelTypeAboveIntMax() throws {
        let url = TestData.packageRoot.appendingPathComponent("Tests/Fuzz/regressions/tokenizer/model-type-above-int-max")
        let bytes = try [UInt8](Data(contentsOf: url))
        // An unknown model type reads as unigram (sentencepiece's default), which the BPE tokenizer refuses.
        if let model = try? SentencePieceModel(bytes: bytes) {
            #expect(model.modelType == .unigram)
            #expect(throws: TokenizerError.self) { _ = try SentencePieceBPE(model: model) }
        }
    }
}

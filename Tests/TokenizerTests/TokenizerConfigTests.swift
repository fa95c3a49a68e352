import Foundation
import Testing
import TestSupport
import Tokenizer

/// tokenizer_config.json values a broken or hostile download may carry.
struct TokenizerConfigTests {
    /// An added token with a negative id was taken as it is: the id reached the embedding
    /// lookup and read before the table (a large negative one crashed `generate`).
    @Test(arguments: ["-1", "-2000000000"]) func aNegativeAddedTokenIDIsRefused(_ id: String) throws {
        let s = try ScratchFolder(copying: TestData.url("tokenizer"))
        defer { s.remove() }
        try s.editJSON("tokenizer_config.json") { c in
            var dec = c["added_tokens_decoder"] as! [String: Any]
            dec[id] = ["content": "zz", "special": true]
            c["added_tokens_decoder"] = dec
        }
        #expect {
            _ = try InternLM2Tokenizer(folder: s.url)
        } throws: { error in
            (error as? TokenizerError)?.errorDescription?.contains("added_tokens_decoder entry \(id) is malformed") == true
        }
    }
}

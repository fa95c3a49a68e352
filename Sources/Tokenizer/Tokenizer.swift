/// Text to token ids and back, for one model family's vocabulary. `InternLM2Tokenizer`
/// (SentencePiece BPE with added tokens) is one implementation.
public protocol Tokenizer: Sendable {
    /// Largest id + 1 (the embedding rows the model needs at least).
    var vocabularySize: Int { get }
    /// End of sequence, which also ends an answer.
    var eosID: Int32 { get }
    /// The id of a special (added) token such as "<|im_end|>" or "<IMG_CONTEXT>".
    func tokenID(_ token: String) -> Int32?
    /// Token ids for `text` as the model's reference tokenizer makes them (BOS included where it adds one).
    func encode(_ text: String) -> [Int32]
    /// Text for `ids`, special tokens dropped.
    func decode(_ ids: [Int32]) -> String
    /// The answer the official chat() returns for generated ids.
    func chatResponse(_ ids: [Int32]) -> String
    /// A detokenizer that streams the answer as ids arrive.
    func makeDetokenizer() -> any Detokenizer
}

/// Turns generated ids into text as they arrive, emitting only text that cannot change: the
/// concatenation of everything `append` and `finish` return equals `chatResponse(ids)`.
public protocol Detokenizer: Sendable {
    /// Adds one id; returns the newly stable text (often empty).
    mutating func append(_ id: Int32) -> String
    /// All text not emitted yet, once generation has ended.
    mutating func finish() -> String
}

/// Turns generated ids into text as they arrive, emitting only text that cannot change: the
/// concatenation of all emitted chunks equals `InternLM2Tokenizer.chatResponse(ids)`.
///
/// What is held back, and why:
/// - bytes of an unfinished UTF-8 sequence (a byte-fallback character split over tokens);
/// - text from a space in the last three characters on: clean-up rules such as " ." -> "."
///   or " n't" -> "n't" may still apply once the next token arrives;
/// - a tail that could be the start of "<|im_end|>" (the chat cuts the response there);
/// - leading and trailing whitespace (the response is stripped).
public struct StreamingDetokenizer: Detokenizer {
    public let tokenizer: InternLM2Tokenizer
    public private(set) var ids: [Int32] = []
    private var emitted = 0          // unicode scalars of the final text already emitted
    public private(set) var sawImEnd = false

    public init(tokenizer: InternLM2Tokenizer) { self.tokenizer = tokenizer }

    /// Adds one id; returns the newly stable text (often empty).
    public mutating func append(_ id: Int32) -> String {
        ids.append(id)
        if sawImEnd { return "" }
        return emit(stableText())
    }

    /// All text not emitted yet, once generation has ended.
    public mutating func finish() -> String {
        let final = Array(tokenizer.chatResponse(ids).unicodeScalars)
        return emit(final)
    }

    private mutating func emit(_ s: [Unicode.Scalar]) -> String {
        guard s.count > emitted else { return "" }
        var v = String.UnicodeScalarView()
        v.append(contentsOf: s[emitted...])
        emitted = s.count
        return String(v)
    }

    private mutating func stableText() -> [Unicode.Scalar] {
        let raw = tokenizer.decodeRaw(ids, skipSpecialTokens: true, cleanUp: false, holdIncomplete: true).text
        var p = Array(raw.unicodeScalars)
        // A clean-up pattern starting at a space in the last three characters may still complete.
        while let k = p.indices.suffix(3).first(where: { p[$0] == " " }) { p.removeSubrange(k...) }
        // A tail that may grow into "<|im_end|>".
        let marker = Array("<|im_end|>".unicodeScalars)
        for n in stride(from: min(marker.count - 1, p.count), through: 1, by: -1)
        where p.suffix(n).elementsEqual(marker.prefix(n)) {
            p.removeLast(n)
            break
        }
        var v = String.UnicodeScalarView(); v.append(contentsOf: p)
        let (cut, found) = cutAtImEnd(InternLM2Tokenizer.cleanUpTokenization(String(v)))
        if found { sawImEnd = true }
        var s = Array(cut.unicodeScalars)
        if let first = s.firstIndex(where: { !isPythonSpace($0) }) { s.removeSubrange(..<first) } else { s = [] }
        while let l = s.last, isPythonSpace(l) { s.removeLast() }
        return s
    }
}

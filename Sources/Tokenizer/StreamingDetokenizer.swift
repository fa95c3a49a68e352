/// What `StreamingDetokenizer` needs of a tokenizer: its decoding with incomplete UTF-8 held
/// back, whether its decode applies clean_up_tokenization, and the final chat response.
public protocol StreamDecoding: Sendable {
    /// Text of `ids` with special tokens dropped, no clean-up, without the bytes of a trailing
    /// UTF-8 sequence that is not complete yet.
    func streamingText(_ ids: [Int32]) -> String
    /// Whether `chatResponse` applies transformers' clean_up_tokenization.
    var cleansUpTokenization: Bool { get }
    func chatResponse(_ ids: [Int32]) -> String
    /// Where the chat cuts the decoded answer (the template's separator).
    var responseEnd: String { get }
}

extension StreamDecoding {
    public var responseEnd: String { "<|im_end|>" }
}

/// Turns generated ids into text as they arrive, emitting only text that cannot change: the
/// concatenation of all emitted chunks equals the tokenizer's `chatResponse(ids)`.
///
/// What is held back, and why:
/// - bytes of an unfinished UTF-8 sequence (a byte-fallback character split over tokens);
/// - with clean-up, text from a space in the last three characters on: rules such as " ." -> "."
///   or " n't" -> "n't" may still apply once the next token arrives;
/// - a tail that could be the start of "<|im_end|>" (the chat cuts the response there);
/// - leading and trailing whitespace (the response is stripped).
public struct StreamingDetokenizer<T: StreamDecoding>: Detokenizer {
    public let tokenizer: T
    public private(set) var ids: [Int32] = []
    private var emitted = 0          // unicode scalars of the final text already emitted
    public private(set) var sawImEnd = false

    public init(tokenizer: T) { self.tokenizer = tokenizer }

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
        var p = Array(tokenizer.streamingText(ids).unicodeScalars)
        // A clean-up pattern starting at a space in the last three characters may still complete.
        if tokenizer.cleansUpTokenization {
            while let k = p.indices.suffix(3).first(where: { p[$0] == " " }) { p.removeSubrange(k...) }
        }
        // A tail that may grow into the response's end marker.
        let marker = Array(tokenizer.responseEnd.unicodeScalars)
        for n in stride(from: min(marker.count - 1, p.count), through: 1, by: -1)
        where p.suffix(n).elementsEqual(marker.prefix(n)) {
            p.removeLast(n)
            break
        }
        var v = String.UnicodeScalarView(); v.append(contentsOf: p)
        let text = tokenizer.cleansUpTokenization ? InternLM2Tokenizer.cleanUpTokenization(String(v)) : String(v)
        let (cut, found) = cutAt(tokenizer.responseEnd, text)
        if found { sawImEnd = true }
        var s = Array(cut.unicodeScalars)
        if let first = s.firstIndex(where: { !isPythonSpace($0) }) { s.removeSubrange(..<first) } else { s = [] }
        while let l = s.last, isPythonSpace(l) { s.removeLast() }
        return s
    }
}

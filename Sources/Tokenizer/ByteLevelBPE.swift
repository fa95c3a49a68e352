import FileInput
import Foundation

/// Qwen2's tokenizer (byte-level BPE) from tokenizer.json, as Hugging Face `tokenizers` runs it:
/// added tokens cut out first (leftmost, longest), NFC on the rest, the pre-tokenizer's split
/// (`Qwen2PreTokenizer`), every piece's UTF-8 bytes mapped to GPT-2's printable characters and
/// merged by rank. No BOS. Decoding maps the characters back to bytes (invalid UTF-8 replaced
/// as Python's errors="replace"), special added tokens dropped.
public struct ByteLevelBPETokenizer: Tokenizer, StreamDecoding {
    public struct AddedToken: Sendable {
        public let content: String
        public let id: Int32
        public let special: Bool
    }

    /// Token text (in byte-mapped characters) -> id.
    let vocab: [String: Int32]
    /// Id -> the bytes it stands for (regular tokens).
    let bytesOf: [Int32: [UInt8]]
    /// (left id << 32 | right id) -> (rank, merged id).
    let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Id of each single byte's token.
    let byteIDs: [Int32]
    let ignoreMerges: Bool
    let normalizesNFC: Bool
    public let added: [AddedToken]
    private let addedByID: [Int32: AddedToken]
    private let splitter: AddedTokenSplitter
    public let eosID: Int32

    /// Tokenizer files larger than this are refused before they are read (Qwen2's tokenizer.json
    /// is 7 MB).
    public static let maxFileBytes = 64 << 20

    /// The pre-tokenizer regex this implementation runs (Qwen2's); another is refused.
    public static let qwen2Pattern =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The tokenizer of a model folder: tokenizer.json, and tokenizer_config.json's `eos_token`
    /// when present (else "<|endoftext|>").
    public init(folder: URL) throws {
        let url = folder.appendingPathComponent("tokenizer.json")
        let json = try Self.readJSON(url)
        var eos = "<|endoftext|>"
        let cfgURL = folder.appendingPathComponent("tokenizer_config.json")
        if FileInput.kind(cfgURL.path) != .missing {
            let cfg = try Self.readJSON(cfgURL)
            if let e = cfg["eos_token"] as? String { eos = e }
            else if let e = cfg["eos_token"] as? [String: Any], let c = e["content"] as? String { eos = c }
        }
        try self.init(tokenizerJSON: json, path: url.path, eosToken: eos)
    }

    static func readJSON(_ url: URL) throws -> [String: Any] {
        let bytes: [UInt8]
        do { bytes = try FileInput.read(url.path, limit: maxFileBytes) } catch {
            if error == .missing { throw TokenizerError.fileMissing(url.path) }
            throw TokenizerError.unreadable(url.path, reason: error.reason)
        }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw TokenizerError.badConfig(url.path, reason: "not a JSON object")
        }
        return obj
    }

    public init(tokenizerJSON j: [String: Any], path: String, eosToken: String) throws {
        func bad(_ r: String) -> TokenizerError { .badConfig(path, reason: r) }
        guard let model = j["model"] as? [String: Any], model["type"] as? String == "BPE" else {
            throw bad("model.type is not BPE")
        }
        guard let v = model["vocab"] as? [String: Any] else { throw bad("model.vocab is missing") }
        var vocab: [String: Int32] = [:]
        vocab.reserveCapacity(v.count)
        for (k, x) in v {
            guard let n = x as? Int, let id = Int32(exactly: n), id >= 0 else { throw bad("model.vocab[\(k.debugDescription)] is not a token id") }
            vocab[k] = id
        }
        let table = byteToUnicode()
        var charToByte: [Character: UInt8] = [:]
        for (b, c) in table.enumerated() { charToByte[Character(c)] = UInt8(b) }
        var bytesOf: [Int32: [UInt8]] = [:]
        for (k, id) in vocab {
            var b: [UInt8] = []
            for ch in k {
                guard let x = charToByte[ch] else { throw bad("vocab token \(k.debugDescription) is not byte-level") }
                b.append(x)
            }
            bytesOf[id] = b
        }
        var byteIDs: [Int32] = []
        for c in table {
            guard let id = vocab[String(c)] else { throw bad("the vocabulary lacks the byte token \(String(c).debugDescription)") }
            byteIDs.append(id)
        }
        guard let ms = model["merges"] as? [Any] else { throw bad("model.merges is missing") }
        var merges: [UInt64: (rank: Int32, id: Int32)] = [:]
        merges.reserveCapacity(ms.count)
        for (rank, m) in ms.enumerated() {
            let pair: [String]
            if let s = m as? String {
                pair = s.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            } else if let a = m as? [String] {
                pair = a
            } else {
                throw bad("merge \(rank) is neither \"a b\" nor [a, b]")
            }
            guard pair.count == 2, let l = vocab[pair[0]], let r = vocab[pair[1]], let id = vocab[pair[0] + pair[1]] else {
                throw bad("merge \(rank) names tokens outside the vocabulary")
            }
            let key = UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))
            if merges[key] == nil { merges[key] = (Int32(rank), id) }
        }
        // The normalizer: NFC or none.
        var nfc = false
        if let n = j["normalizer"] as? [String: Any] {
            guard n["type"] as? String == "NFC" else { throw TokenizerError.unsupported("normalizer \(n["type"] ?? "?") (NFC or none)") }
            nfc = true
        }
        // The pre-tokenizer: Qwen2's Split then ByteLevel without its own regex.
        guard let pre = j["pre_tokenizer"] as? [String: Any], pre["type"] as? String == "Sequence",
              let steps = pre["pretokenizers"] as? [[String: Any]], steps.count == 2,
              steps[0]["type"] as? String == "Split",
              (steps[0]["pattern"] as? [String: Any])?["Regex"] as? String == Self.qwen2Pattern,
              steps[0]["behavior"] as? String == "Isolated", steps[0]["invert"] as? Bool == false,
              steps[1]["type"] as? String == "ByteLevel", steps[1]["use_regex"] as? Bool == false,
              steps[1]["add_prefix_space"] as? Bool == false else {
            throw TokenizerError.unsupported("a pre_tokenizer other than Qwen2's (Split on its pattern, then ByteLevel)")
        }
        var added: [AddedToken] = []
        for a in j["added_tokens"] as? [[String: Any]] ?? [] {
            guard let c = a["content"] as? String, !c.isEmpty, let n = a["id"] as? Int, let id = Int32(exactly: n), id >= 0 else {
                throw bad("an added_tokens entry is malformed")
            }
            if a["lstrip"] as? Bool == true || a["rstrip"] as? Bool == true || a["single_word"] as? Bool == true {
                throw TokenizerError.unsupported("added token \(c.debugDescription) with lstrip, rstrip or single_word")
            }
            added.append(AddedToken(content: c, id: id, special: a["special"] as? Bool ?? false))
        }
        guard let eos = added.first(where: { $0.content == eosToken })?.id ?? vocab[eosToken] else {
            throw bad("the EOS token \(eosToken.debugDescription) is not in the vocabulary")
        }
        self.vocab = vocab
        self.bytesOf = bytesOf
        self.merges = merges
        self.byteIDs = byteIDs
        self.ignoreMerges = model["ignore_merges"] as? Bool ?? false
        self.normalizesNFC = nfc
        self.added = added
        self.addedByID = Dictionary(added.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.splitter = AddedTokenSplitter(added.map { ($0.content, $0.id) })
        self.eosID = eos
    }

    public var vocabularySize: Int {
        Int(max(vocab.values.max() ?? 0, added.map(\.id).max() ?? 0)) + 1
    }

    public func tokenID(_ token: String) -> Int32? {
        added.first { $0.content == token }?.id
    }

    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = []
        for (chunk, special) in splitter.split(text) {
            if let s = special { ids.append(s); continue }
            let normal = normalizesNFC ? chunk.precomposedStringWithCanonicalMapping : chunk
            for piece in Qwen2PreTokenizer.split(normal) { ids += encodePiece(Array(String(piece).utf8)) }
        }
        return ids
    }

    /// BPE over one pre-token's bytes: the adjacent pair of lowest merge rank (leftmost among
    /// equals) is merged until none is left.
    func encodePiece(_ bytes: [UInt8]) -> [Int32] {
        if ignoreMerges, let id = vocab[String(bytes.map { byteToUnicodeTable[Int($0)] })] { return [id] }
        var syms = bytes.map { byteIDs[Int($0)] }
        while syms.count > 1 {
            var best: (rank: Int32, id: Int32, at: Int)? = nil
            for i in 0..<(syms.count - 1) {
                let key = UInt64(UInt32(syms[i])) << 32 | UInt64(UInt32(syms[i + 1]))
                if let m = merges[key], best == nil || m.rank < best!.rank { best = (m.rank, m.id, i) }
            }
            guard let b = best else { break }
            syms[b.at] = b.id
            syms.remove(at: b.at + 1)
        }
        return syms
    }

    public func decode(_ ids: [Int32]) -> String { decode(ids, skipSpecialTokens: true) }

    /// Text for `ids`; runs of regular tokens are decoded apart from the added tokens between
    /// them (the slow tokenizer's sub-texts), special ones dropped with `skipSpecialTokens`.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool) -> String {
        decodeBytes(ids, skipSpecialTokens: skipSpecialTokens, holdIncomplete: false)
    }

    private func decodeBytes(_ ids: [Int32], skipSpecialTokens: Bool, holdIncomplete: Bool) -> String {
        var out = ""
        var run: [UInt8] = []
        for id in ids {
            if let a = addedByID[id] {
                out += String(decoding: run, as: UTF8.self); run = []
                if !(skipSpecialTokens && a.special) { out += a.content }
            } else if let b = bytesOf[id] {
                run += b
            }
        }
        if holdIncomplete { run.removeLast(incompleteUTF8Tail(run)) }
        return out + String(decoding: run, as: UTF8.self)
    }

    public func streamingText(_ ids: [Int32]) -> String { decodeBytes(ids, skipSpecialTokens: true, holdIncomplete: true) }
    public var cleansUpTokenization: Bool { false }

    /// The official chat()'s response: decoded without special tokens, cut at the first
    /// "<|im_end|>", stripped.
    public func chatResponse(_ ids: [Int32]) -> String { pythonStrip(cutAtImEnd(decode(ids)).text) }

    public func makeDetokenizer() -> any Detokenizer { StreamingDetokenizer(tokenizer: self) }
}

/// GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 on.
func byteToUnicode() -> [Unicode.Scalar] {
    var table = [Unicode.Scalar](repeating: " ", count: 256)
    var next: UInt32 = 256
    for b in 0..<256 {
        if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
            table[b] = Unicode.Scalar(UInt32(b))!
        } else {
            table[b] = Unicode.Scalar(next)!
            next += 1
        }
    }
    return table
}

let byteToUnicodeTable: [Character] = byteToUnicode().map(Character.init)

/// Qwen2's pre-tokenizer regex
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
/// as a hand-written matcher over Unicode scalars, alternatives tried in order with the
/// regex's backtracking worked out per alternative. \s is White_Space, \p{L} and \p{N} the
/// general categories.
enum Qwen2PreTokenizer {
    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: true
        default: false
        }
    }
    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: true
        default: false
        }
    }
    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }
    static func isCRLF(_ s: Unicode.Scalar) -> Bool { s == "\r" || s == "\n" }

    /// The pieces of `text`, in order; their concatenation is `text`.
    static func split(_ text: String) -> [Substring.UnicodeScalarView] {
        let u = text.unicodeScalars
        let s = Array(u)
        var pieces: [Substring.UnicodeScalarView] = []
        var idx = u.startIndex
        var i = 0
        while i < s.count {
            let n = max(1, matchLength(s, i))
            let end = u.index(idx, offsetBy: n)
            pieces.append(u[idx..<end])
            idx = end
            i += n
        }
        return pieces
    }

    /// Length of the match at `i` (every scalar starts one of the alternatives).
    static func matchLength(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        let c = s[i]
        let n = s.count
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if c == "'", i + 1 < n {
            func lower(_ k: Int) -> String? { k < n ? String(s[k]).lowercased() : nil }
            let a = lower(i + 1)
            if ["s", "t", "m", "d"].contains(a) { return 2 }
            if let b = lower(i + 2), ["re", "ve", "ll"].contains(a! + b) { return 3 }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        var j = i
        if !isCRLF(c) && !isLetter(c) && !isNumber(c), i + 1 < n, isLetter(s[i + 1]) { j = i + 1 }
        if isLetter(s[j]) {
            var k = j
            while k < n, isLetter(s[k]) { k += 1 }
            return k - i
        }
        // \p{N}
        if isNumber(c) { return 1 }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        func isOther(_ x: Unicode.Scalar) -> Bool { !isSpace(x) && !isLetter(x) && !isNumber(x) }
        var k = i
        if c == " ", i + 1 < n, isOther(s[i + 1]) { k = i + 1 }
        if isOther(s[k]) {
            while k < n, isOther(s[k]) { k += 1 }
            while k < n, isCRLF(s[k]) { k += 1 }
            return k - i
        }
        // The whitespace run from i.
        var end = i
        while end < n, isSpace(s[end]) { end += 1 }
        // \s*[\r\n]+ : up to the last CR or LF of the run.
        if let last = (i..<end).last(where: { isCRLF(s[$0]) }) { return last + 1 - i }
        // \s+(?!\S) : the run, or all of it but its last scalar when something follows.
        if end == n { return end - i }
        if end - 1 > i { return end - 1 - i }
        // \s+
        return end - i
    }
}

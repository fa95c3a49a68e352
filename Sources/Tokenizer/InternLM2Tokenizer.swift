import FileInput
import Foundation

/// InternLM2's tokenizer as the model's slow tokenizer (`InternLM2Tokenizer`, use_fast=False)
/// behaves: added tokens from tokenizer_config.json are cut out first by exact match, each
/// remaining chunk goes through SentencePiece BPE on its own, BOS is prepended once.
public struct InternLM2Tokenizer: Tokenizer, StreamDecoding {
    public let sp: SentencePieceBPE
    /// Added token text -> id (all special in this model).
    public let addedTokens: [String: Int32]
    public let bosID: Int32
    public let eosID: Int32
    /// Ids dropped when decoding with skip_special_tokens: added tokens, <unk>, <s>, </s>.
    public let specialIDs: Set<Int32>
    private let splitter: AddedTokenSplitter
    private let addedByID: [Int32: String]

    public init(folder: URL) throws {
        let modelURL = folder.appendingPathComponent("tokenizer.model")
        let model = try SentencePieceModel(bytes: Self.read(modelURL))
        let cfgURL = folder.appendingPathComponent("tokenizer_config.json")
        var added: [String: Int32] = [:]
        if FileInput.kind(cfgURL.path) != .missing {
            let cdata = Data(try Self.read(cfgURL))
            guard let obj = try? JSONSerialization.jsonObject(with: cdata) as? [String: Any] else {
                throw TokenizerError.badConfig(cfgURL.path, reason: "not a JSON object")
            }
            if let dec = obj["added_tokens_decoder"] as? [String: Any] {
                for (k, v) in dec {
                    guard let id = Int32(k), id >= 0, let e = v as? [String: Any], let content = e["content"] as? String,
                          !content.isEmpty else {
                        throw TokenizerError.badConfig(cfgURL.path, reason: "added_tokens_decoder entry \(k) is malformed")
                    }
                    added[content] = id
                }
            }
        } else {
            throw TokenizerError.fileMissing(cfgURL.path)
        }
        try self.init(model: model, addedTokens: added)
    }

    /// Tokenizer files larger than this are refused before they are read (InternLM2's
    /// tokenizer.model is 1.5 MB).
    public static let maxFileBytes = 64 << 20

    static func read(_ url: URL) throws -> [UInt8] {
        do { return try FileInput.read(url.path, limit: maxFileBytes) } catch {
            if error == .missing { throw TokenizerError.fileMissing(url.path) }
            throw TokenizerError.unreadable(url.path, reason: error.reason)
        }
    }

    public init(model: SentencePieceModel, addedTokens: [String: Int32]) throws {
        sp = try SentencePieceBPE(model: model)
        self.addedTokens = addedTokens
        func id(of piece: String, _ fallback: Int32) -> Int32 {
            model.pieces.firstIndex { $0.text == piece && $0.type == .control }.map(Int32.init) ?? fallback
        }
        bosID = addedTokens["<s>"] ?? id(of: "<s>", 1)
        eosID = addedTokens["</s>"] ?? id(of: "</s>", 2)
        specialIDs = Set(addedTokens.values).union([sp.unkID, bosID, eosID])
        splitter = AddedTokenSplitter(addedTokens.map { ($0.key, $0.value) })
        addedByID = Dictionary(addedTokens.map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Largest id + 1 (the embedding rows the model needs at least).
    public var vocabularySize: Int { max(sp.pieceCount, Int(addedTokens.values.max() ?? 0) + 1) }

    public func tokenID(_ token: String) -> Int32? { addedTokens[token] }

    public func encode(_ text: String) -> [Int32] { encode(text, addBOS: true) }
    public func decode(_ ids: [Int32]) -> String { decode(ids, skipSpecialTokens: true, cleanUp: true) }
    public func makeDetokenizer() -> any Detokenizer { StreamingDetokenizer(tokenizer: self) }

    /// Token ids for `text`, BOS first unless `addBOS` is false.
    public func encode(_ text: String, addBOS: Bool = true) -> [Int32] {
        var ids: [Int32] = addBOS ? [bosID] : []
        for (chunk, special) in split(text) {
            if let s = special { ids.append(s) } else { ids += sp.encode(chunk) }
        }
        return ids
    }

    /// Cuts added tokens out of `text` (leftmost, then longest), as transformers' trie split.
    func split(_ text: String) -> [(String, Int32?)] { splitter.split(text) }

    /// Text for `ids`. With `skipSpecialTokens` (what the chat shows) special ids are dropped;
    /// without, they are written as their text. `cleanUp` applies the slow tokenizer's
    /// clean_up_tokenization, which InternLM2's convert_tokens_to_string always runs.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = true, cleanUp: Bool = true) -> String {
        decodeRaw(ids, skipSpecialTokens: skipSpecialTokens, cleanUp: cleanUp, holdIncomplete: false).text
    }

    public func streamingText(_ ids: [Int32]) -> String {
        decodeRaw(ids, skipSpecialTokens: true, cleanUp: false, holdIncomplete: true).text
    }
    public var cleansUpTokenization: Bool { true }

    /// The decoded text and, with `holdIncomplete`, without the bytes of a trailing UTF-8
    /// sequence that is not complete yet (for streaming).
    func decodeRaw(_ ids: [Int32], skipSpecialTokens: Bool, cleanUp: Bool, holdIncomplete: Bool) -> (text: String, held: Bool) {
        var bytes: [UInt8] = []
        var run: [Int32] = []
        for id in ids {
            if specialIDs.contains(id) {
                if skipSpecialTokens { continue }
                bytes += sp.decodeBytes(run); run = []
                if let t = addedByID[id] { bytes += Array(t.utf8) } else { bytes += sp.decodeBytes([id]) }
            } else {
                run.append(id)
            }
        }
        bytes += sp.decodeBytes(run)
        var held = false
        if holdIncomplete {
            let tail = incompleteUTF8Tail(bytes)
            if tail > 0 { bytes.removeLast(tail); held = true }
        }
        var text = utf8Repairing(bytes)
        if cleanUp { text = Self.cleanUpTokenization(text) }
        return (text, held)
    }

    /// transformers' PreTrainedTokenizer.clean_up_tokenization, in its order.
    public static func cleanUpTokenization(_ s: String) -> String {
        var t = Array(s.unicodeScalars)
        for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                       (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            t = replaceScalars(t, Array(a.unicodeScalars), Array(b.unicodeScalars))
        }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: t)
        return String(out)
    }

    /// The response the official chat() returns for generated ids: decoded without special
    /// tokens, cut at the first "<|im_end|>", stripped of surrounding whitespace.
    public func chatResponse(_ ids: [Int32]) -> String {
        pythonStrip(cutAtImEnd(decode(ids)).text)
    }
}

/// Python's str.isspace for one scalar.
func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
    (0x1C...0x1F).contains(s.value) || s.properties.isWhitespace
}

/// Python's str.strip() with no argument.
public func pythonStrip(_ s: String) -> String {
    let u = s.unicodeScalars
    guard let first = u.firstIndex(where: { !isPythonSpace($0) }) else { return "" }
    let last = u.lastIndex(where: { !isPythonSpace($0) })!
    return String(u[first...last])
}

/// Python's str.replace over code points (Foundation's replacingOccurrences compares
/// canonically equivalent text, which Python does not).
func replaceScalars(_ s: [Unicode.Scalar], _ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> [Unicode.Scalar] {
    guard !a.isEmpty, s.count >= a.count else { return s }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(s.count)
    var i = 0
    while i < s.count {
        if s[i] == a[0], i + a.count <= s.count, s[i..<(i + a.count)].elementsEqual(a) {
            out += b; i += a.count
        } else {
            out.append(s[i]); i += 1
        }
    }
    return out
}

/// The text before the first "<|im_end|>" (the chat's response.split(sep)[0]), and whether one was found.
func cutAtImEnd(_ t: String) -> (text: String, cut: Bool) { cutAt("<|im_end|>", t) }

/// The text before the first `marker`, and whether one was found.
func cutAt(_ marker: String, _ t: String) -> (text: String, cut: Bool) {
    let s = Array(t.unicodeScalars), m = Array(marker.unicodeScalars)
    var i = 0
    while i + m.count <= s.count {
        if s[i..<(i + m.count)].elementsEqual(m) {
            var v = String.UnicodeScalarView(); v.append(contentsOf: s[..<i]); return (String(v), true)
        }
        i += 1
    }
    return (t, false)
}

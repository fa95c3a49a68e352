import FileInput
import Foundation

/// Phi-3's tokenizer as the official chat() loads it: transformers' slow `LlamaTokenizer`
/// (use_fast=False) with `legacy: false` over tokenizer.model (SentencePiece BPE, byte
/// fallback). The text gets one "▁" in front (add_prefix_space), added tokens from
/// tokenizer_config.json are cut out (honouring their lstrip/rstrip), each remaining chunk is
/// encoded without a dummy prefix (a chunk starting with a space is encoded behind "<unk>",
/// whose pieces are then dropped), and BOS is prepended when add_bos_token says so.
public struct Phi3Tokenizer: Tokenizer, StreamDecoding {
    public let sp: SentencePieceBPE
    /// Added token text -> id (tokenizer_config.json's added_tokens_decoder).
    public let addedTokens: [String: Int32]
    public let bosID: Int32
    public let eosID: Int32
    public let addsBOS: Bool
    /// Ids of transformers' `all_special_tokens` (bos, eos, unk, pad, additional_special_tokens).
    let specialTokenIDs: Set<Int32>
    /// Added tokens that are not special, by id (decoding writes them as their text).
    private let addedByID: [Int32: String]
    private let splitter: AddedTokenSplitter
    private let strip: [Int32: (left: Bool, right: Bool)]
    private let unkPieces: Int

    public init(folder: URL) throws {
        let modelURL = folder.appendingPathComponent("tokenizer.model")
        var model = try SentencePieceModel(bytes: InternLM2Tokenizer.read(modelURL))
        let cfgURL = folder.appendingPathComponent("tokenizer_config.json")
        let cfg = try ByteLevelBPETokenizer.readJSON(cfgURL)
        func bad(_ r: String) -> TokenizerError { .badConfig(cfgURL.path, reason: r) }
        if cfg["legacy"] as? Bool != false {
            throw bad("only LlamaTokenizer with \"legacy\": false (Phi-3's) is supported")
        }
        if let prefix = cfg["add_prefix_space"] as? Bool, !prefix {
            throw bad("add_prefix_space false is not supported")
        }
        var added: [String: Int32] = [:], strip: [Int32: (Bool, Bool)] = [:]
        if let dec = cfg["added_tokens_decoder"] as? [String: Any] {
            for (k, v) in dec {
                guard let id = Int32(k), id >= 0, let e = v as? [String: Any], let content = e["content"] as? String,
                      !content.isEmpty else {
                    throw bad("added_tokens_decoder entry \(k) is malformed")
                }
                added[content] = id
                strip[id] = (e["lstrip"] as? Bool ?? false, e["rstrip"] as? Bool ?? false)
            }
        }
        func name(_ key: String) -> String? {
            if let s = cfg[key] as? String { return s }
            return (cfg[key] as? [String: Any])?["content"] as? String
        }
        var special = [name("bos_token"), name("eos_token"), name("unk_token"), name("pad_token")].compactMap { $0 }
        special += (cfg["additional_special_tokens"] as? [Any] ?? []).compactMap {
            ($0 as? String) ?? (($0 as? [String: Any])?["content"] as? String)
        }
        let mapURL = folder.appendingPathComponent("special_tokens_map.json")
        if FileInput.kind(mapURL.path) != .missing {
            let map = try ByteLevelBPETokenizer.readJSON(mapURL)
            special += (map["additional_special_tokens"] as? [Any] ?? []).compactMap {
                ($0 as? String) ?? (($0 as? [String: Any])?["content"] as? String)
            }
        }
        model.addDummyPrefix = false
        sp = try SentencePieceBPE(model: model)
        func id(_ token: String?) -> Int32? {
            guard let token else { return nil }
            return added[token] ?? model.pieces.firstIndex { $0.text == token }.map(Int32.init)
        }
        addedTokens = added
        bosID = id(name("bos_token")) ?? 1
        eosID = id(name("eos_token")) ?? 2
        addsBOS = cfg["add_bos_token"] as? Bool ?? true
        let specialIDs = Set(special.compactMap(id))
        specialTokenIDs = specialIDs
        addedByID = Dictionary(added.filter { !specialIDs.contains($0.value) }.map { ($1, $0) }, uniquingKeysWith: { a, _ in a })
        splitter = AddedTokenSplitter(added.map { ($0.key, $0.value) })
        self.strip = strip
        unkPieces = sp.encode("<unk>").count
    }

    public var vocabularySize: Int { max(sp.pieceCount, Int(addedTokens.values.max() ?? 0) + 1) }
    public func tokenID(_ token: String) -> Int32? { addedTokens[token] }
    public func makeDetokenizer() -> any Detokenizer { StreamingDetokenizer(tokenizer: self) }

    public func encode(_ text: String) -> [Int32] { encode(text, addBOS: addsBOS) }

    /// Token ids for `text` (LlamaTokenizer.tokenize with legacy false, then ids).
    public func encode(_ text: String, addBOS: Bool) -> [Int32] {
        var ids: [Int32] = []
        if !text.isEmpty {
            let t = "\u{2581}" + text.replacingOccurrences(of: "\u{2581}", with: " ")
            var chunks = splitter.split(t)
            // An added token with rstrip / lstrip eats the whitespace after / before it.
            for k in chunks.indices {
                guard let id = chunks[k].1, let s = strip[id] else { continue }
                if s.right, k + 1 < chunks.count, chunks[k + 1].1 == nil {
                    chunks[k + 1].0 = String(chunks[k + 1].0.unicodeScalars.drop(while: isPythonSpace).map(Character.init))
                }
                if s.left, k > 0, chunks[k - 1].1 == nil {
                    var u = Array(chunks[k - 1].0.unicodeScalars)
                    while let l = u.last, isPythonSpace(l) { u.removeLast() }
                    var v = String.UnicodeScalarView(); v.append(contentsOf: u)
                    chunks[k - 1].0 = String(v)
                }
            }
            var firstIsBareSpace = false
            for (k, (chunk, special)) in chunks.enumerated() {
                if let s = special { ids.append(s); continue }
                if chunk.isEmpty { continue }
                let pieces = encodeChunk(chunk)
                if k == 0, pieces.count == 1, chunk == "\u{2581}" { firstIsBareSpace = true }
                ids += pieces
            }
            // "▁" followed by a special token: the prefix space is dropped.
            if firstIsBareSpace, ids.count > 1, specialTokenIDs.contains(ids[1]) { ids.removeFirst() }
        }
        return addBOS ? [bosID] + ids : ids
    }

    /// LlamaTokenizer._tokenize (legacy false): a chunk not starting with a space is encoded as it
    /// is; one that does is encoded behind "<unk>" so that it keeps its leading "▁".
    func encodeChunk(_ chunk: String) -> [Int32] {
        guard chunk.hasPrefix("\u{2581}") || chunk.hasPrefix(" ") else { return sp.encode(chunk) }
        let ids = sp.encode("<unk>" + chunk)
        return ids.count >= unkPieces ? Array(ids[unkPieces...]) : ids
    }

    /// Text for `ids` as decode(skip_special_tokens=True) with clean_up_tokenization_spaces
    /// false: special tokens dropped; every other added token written as its text, runs of
    /// pieces between them decoded on their own (the first piece loses its "▁"), all joined by
    /// single spaces (spaces_between_special_tokens).
    public func decode(_ ids: [Int32]) -> String { decodeText(ids, holdIncomplete: false) }

    func decodeText(_ ids: [Int32], holdIncomplete: Bool) -> String {
        var parts: [String] = []
        var run: [Int32] = []
        func flush(last: Bool) {
            guard !run.isEmpty else { return }
            var bytes = runBytes(run)
            run = []
            if last && holdIncomplete {
                let tail = incompleteUTF8Tail(bytes)
                if tail > 0 { bytes.removeLast(tail) }
            }
            let text = utf8Repairing(bytes)
            if !text.isEmpty || last { parts.append(text) }
        }
        for id in ids where !specialTokenIDs.contains(id) {
            if let text = addedByID[id] {
                flush(last: false)
                parts.append(text)
            } else if id >= 0, Int(id) < sp.pieceCount {
                run.append(id)
            }
        }
        flush(last: true)
        return parts.joined(separator: " ")
    }

    /// LlamaTokenizer.convert_tokens_to_string for one run of pieces: the first loses a leading
    /// "▁", then SentencePiece's decoding without a dummy prefix.
    func runBytes(_ run: [Int32]) -> [UInt8] {
        var rest = run[...]
        var out: [UInt8] = []
        if let first = run.first {
            let p = sp.model.pieces[Int(first)]
            let b = Array(p.text.utf8)
            if p.type != .byte, b.starts(with: SentencePieceBPE.space) {
                out = SentencePieceBPE.unescape(Array(b.dropFirst(SentencePieceBPE.space.count)))
                rest = rest.dropFirst()
            }
        }
        return out + sp.decodeBytes(Array(rest))
    }

    public func streamingText(_ ids: [Int32]) -> String { decodeText(ids, holdIncomplete: true) }
    public var cleansUpTokenization: Bool { false }
    public var responseEnd: String { "<|end|>" }

    /// chat(): the decoded answer cut at the first "<|end|>" (the template's separator), stripped.
    public func chatResponse(_ ids: [Int32]) -> String {
        pythonStrip(cutAt(responseEnd, decode(ids)).text)
    }
}

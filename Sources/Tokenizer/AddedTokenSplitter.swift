/// Cuts added tokens out of text before the model's own tokenization: at each position the
/// longest added token that starts there, scanning left to right (transformers' trie split and
/// `tokenizers`' leftmost-longest match agree on this).
struct AddedTokenSplitter: Sendable {
    private let byFirstByte: [UInt8: [(bytes: [UInt8], id: Int32)]]

    init(_ tokens: [(content: String, id: Int32)]) {
        var byFirst: [UInt8: [(bytes: [UInt8], id: Int32)]] = [:]
        for (t, i) in tokens where !t.isEmpty {
            let b = Array(t.utf8)
            byFirst[b[0], default: []].append((b, i))
        }
        for k in byFirst.keys { byFirst[k]!.sort { $0.bytes.count > $1.bytes.count } }
        byFirstByte = byFirst
    }

    /// `text` as ordinary chunks (id nil) and added tokens (text empty, their id).
    func split(_ text: String) -> [(String, Int32?)] {
        let b = Array(text.utf8)
        var out: [(String, Int32?)] = []
        var i = 0, start = 0
        while i < b.count {
            var hit: (bytes: [UInt8], id: Int32)? = nil
            if let cands = byFirstByte[b[i]] {
                hit = cands.first { $0.bytes.count <= b.count - i && b[i..<(i + $0.bytes.count)].elementsEqual($0.bytes) }
            }
            guard let h = hit else { i += 1; continue }
            if i > start { out.append((String(decoding: b[start..<i], as: UTF8.self), nil)) }
            out.append(("", h.id))
            i += h.bytes.count
            start = i
        }
        if start < b.count { out.append((String(decoding: b[start...], as: UTF8.self), nil)) }
        return out
    }
}

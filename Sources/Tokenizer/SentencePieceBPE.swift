/// SentencePiece BPE encoding and decoding over UTF-8 bytes, following sentencepiece's
/// normalizer.cc (identity rule), bpe_model.cc (SampleEncode without dropout) and
/// sentencepiece_processor.cc (byte fallback, DecodeIds).
public struct SentencePieceBPE: Sendable {
    public let model: SentencePieceModel
    /// NORMAL, USER_DEFINED and UNUSED pieces: what merges may produce.
    private let mergeable: [[UInt8]: Int32]
    /// CONTROL, UNKNOWN and BYTE pieces (looked up first, as PieceToId does).
    private let reserved: [[UInt8]: Int32]
    /// User-defined symbols by first byte, longest first: matched whole and never merged.
    private let userDefined: [UInt8: [[UInt8]]]
    private let byteIDs: [Int32]
    public let unkID: Int32

    static let space: [UInt8] = Array("\u{2581}".utf8)   // ▁

    public init(model: SentencePieceModel) throws {
        guard model.modelType == .bpe else { throw TokenizerError.unsupported("model type \(model.modelType), only BPE") }
        guard model.precompiledCharsmap.isEmpty else {
            throw TokenizerError.unsupported("normalizer \"\(model.normalizerName)\" with a character map; only identity")
        }
        guard !model.treatWhitespaceAsSuffix else { throw TokenizerError.unsupported("treat_whitespace_as_suffix") }
        self.model = model
        var mergeable: [[UInt8]: Int32] = [:], reserved: [[UInt8]: Int32] = [:], ud: [UInt8: [[UInt8]]] = [:]
        var bytes = [Int32](repeating: -1, count: 256)
        var unk: Int32 = -1
        for (i, p) in model.pieces.enumerated() {
            let b = Array(p.text.utf8)
            // sentencepiece >= 0.2 turns a "\0" piece into an unused one when byte fallback is
            // on: text never maps to it (a NUL character becomes <0x00>), decoding still shows it.
            if model.byteFallback && b == [0] && p.type != .byte { continue }
            switch p.type {
            case .normal, .unused:
                if mergeable[b] == nil { mergeable[b] = Int32(i) }
            case .userDefined:
                if mergeable[b] == nil { mergeable[b] = Int32(i) }
                if let f = b.first { ud[f, default: []].append(b) }
            case .unknown, .control, .byte:
                if reserved[b] == nil { reserved[b] = Int32(i) }
                if p.type == .unknown { unk = Int32(i) }
                if p.type == .byte, let v = Self.byteValue(p.text) { bytes[Int(v)] = Int32(i) }
            }
        }
        guard unk >= 0 else { throw TokenizerError.notSentencePiece(reason: "no <unk> piece") }
        if model.byteFallback, bytes.contains(-1) {
            throw TokenizerError.notSentencePiece(reason: "byte_fallback is set but byte pieces are missing")
        }
        for k in ud.keys { ud[k]!.sort { $0.count > $1.count } }
        self.mergeable = mergeable
        self.reserved = reserved
        self.userDefined = ud
        self.byteIDs = bytes
        self.unkID = unk
    }

    static func byteValue(_ s: String) -> UInt8? {
        guard s.count == 6, s.hasPrefix("<0x"), s.hasSuffix(">") else { return nil }
        return UInt8(s.dropFirst(3).prefix(2), radix: 16)
    }

    public var pieceCount: Int { model.pieces.count }

    // MARK: encoding

    /// The normalizer (identity rule): optional dummy prefix, optional whitespace cleanup,
    /// ' ' -> '▁'. Other characters, tabs and newlines included, pass unchanged.
    func normalize(_ text: [UInt8]) -> [UInt8] {
        var input = text[...]
        if model.removeExtraWhitespaces {
            while input.first == 0x20 { input = input.dropFirst() }
            while input.last == 0x20 { input = input.dropLast() }
        }
        if input.isEmpty { return [] }
        var out: [UInt8] = []
        out.reserveCapacity(input.count * 2)
        if model.addDummyPrefix { out += model.escapeWhitespaces ? Self.space : [0x20] }
        var prevSpace = false
        for b in input {
            if b == 0x20 {
                if model.removeExtraWhitespaces && prevSpace { continue }
                prevSpace = true
                out += model.escapeWhitespaces ? Self.space : [0x20]
            } else {
                prevSpace = false
                out.append(b)
            }
        }
        return out
    }

    /// Piece ids for one chunk of text (no special-token handling, no BOS).
    public func encode(_ text: String) -> [Int32] {
        let norm = normalize(Array(text.utf8))
        if norm.isEmpty { return [] }
        var out: [Int32] = []
        for (start, len) in bpe(norm) {
            let piece = Array(norm[start..<(start + len)])
            if let id = reserved[piece] ?? mergeable[piece] {
                out.append(id)
            } else if model.byteFallback {
                for b in piece { out.append(byteIDs[Int(b)]) }
            } else {
                out.append(unkID)
            }
        }
        return out
    }

    private struct Symbol {
        var prev: Int, next: Int
        var start: Int, len: Int
        var freeze: Bool
    }

    private struct Candidate: Comparable {
        var score: Float, left: Int, right: Int, size: Int
        // Max-heap order: higher score first, then the leftmost pair.
        static func < (a: Candidate, b: Candidate) -> Bool {
            a.score < b.score || (a.score == b.score && a.left > b.left)
        }
    }

    /// The BPE merge loop: (start, length) of each final piece in `s`.
    private func bpe(_ s: [UInt8]) -> [(Int, Int)] {
        var symbols: [Symbol] = []
        symbols.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            var len = Self.charLength(s[i])
            var freeze = false
            if let cands = userDefined[s[i]] {
                for c in cands where c.count <= s.count - i && s[i..<(i + c.count)].elementsEqual(c) {
                    len = c.count; freeze = true; break
                }
            }
            len = min(len, s.count - i)
            symbols.append(Symbol(prev: symbols.count - 1, next: -1, start: i, len: len, freeze: freeze))
            i += len
        }
        for k in 0..<(symbols.count - 1) { symbols[k].next = k + 1 }

        var heap = MaxHeap<Candidate>()
        var revMerge: [[UInt8]: ((Int, Int), (Int, Int))] = [:]   // unused piece -> its two halves
        func maybeAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0, !symbols[l].freeze, !symbols[r].freeze else { return }
            let a = symbols[l], b = symbols[r]
            let piece = Array(s[a.start..<(b.start + b.len)])
            guard let id = mergeable[piece] else { return }
            heap.push(Candidate(score: model.pieces[Int(id)].score, left: l, right: r, size: a.len + b.len))
            if model.pieces[Int(id)].type == .unused {
                revMerge[piece] = ((a.start, a.len), (b.start, b.len))
            }
        }
        for k in 1..<max(symbols.count, 1) { maybeAdd(k - 1, k) }
        while let top = heap.pop() {
            let l = symbols[top.left], r = symbols[top.right]
            if l.len == 0 || r.len == 0 || l.len + r.len != top.size || l.next != top.right { continue }
            symbols[top.left].len += r.len
            symbols[top.left].next = r.next
            if r.next >= 0 { symbols[r.next].prev = top.left }
            symbols[top.right].len = 0
            maybeAdd(symbols[top.left].prev, top.left)
            maybeAdd(top.left, symbols[top.left].next)
        }
        var out: [(Int, Int)] = []
        func resegment(_ start: Int, _ len: Int) {
            let piece = Array(s[start..<(start + len)])
            if let id = mergeable[piece], model.pieces[Int(id)].type == .unused, reserved[piece] == nil,
               let (a, b) = revMerge[piece] {
                resegment(a.0, a.1); resegment(b.0, b.1)
            } else {
                out.append((start, len))
            }
        }
        var k = symbols.isEmpty ? -1 : 0
        while k >= 0 { if symbols[k].len > 0 { resegment(symbols[k].start, symbols[k].len) }; k = symbols[k].next }
        return out
    }

    /// Length of the UTF-8 sequence that starts with `b` (1 for a stray byte), as OneCharLen.
    @inline(__always)
    static func charLength(_ b: UInt8) -> Int {
        if b < 0x80 { return 1 }
        if b >= 0xF0 { return 4 }
        if b >= 0xE0 { return 3 }
        if b >= 0xC0 { return 2 }
        return 1
    }

    // MARK: decoding

    /// Bytes of the decoded text for `ids` (DecodeIds): control pieces vanish, <unk> becomes the
    /// unk surface, '▁' becomes ' ', byte pieces contribute their raw byte.
    /// Invalid UTF-8 is left for the caller (see `utf8Repairing`).
    public func decodeBytes(_ ids: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        var first = true
        for id in ids {
            guard id >= 0, Int(id) < model.pieces.count else { continue }
            let p = model.pieces[Int(id)]
            switch p.type {
            case .control: continue
            case .unknown: out += Array(model.unkSurface.utf8)
            case .byte: if let v = Self.byteValue(p.text) { out.append(v) }
            default:
                var b = Array(p.text.utf8)
                if first && (model.addDummyPrefix || model.removeExtraWhitespaces) && b.starts(with: Self.space) {
                    b.removeFirst(Self.space.count)
                }
                out += Self.unescape(b)
            }
            first = false
        }
        return out
    }

    static func unescape(_ b: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(b.count)
        var i = 0
        while i < b.count {
            if i + 2 < b.count, b[i] == 0xE2, b[i + 1] == 0x96, b[i + 2] == 0x81 { out.append(0x20); i += 3 }
            else { out.append(b[i]); i += 1 }
        }
        return out
    }
}

/// A small binary max-heap.
struct MaxHeap<T: Comparable> {
    private var a: [T] = []
    var isEmpty: Bool { a.isEmpty }

    mutating func push(_ x: T) {
        a.append(x)
        var i = a.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if a[p] < a[i] { a.swapAt(p, i); i = p } else { break }
        }
    }

    mutating func pop() -> T? {
        guard let top = a.first else { return nil }
        let last = a.removeLast()
        if !a.isEmpty {
            a[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < a.count && a[m] < a[l] { m = l }
                if r < a.count && a[m] < a[r] { m = r }
                if m == i { break }
                a.swapAt(i, m); i = m
            }
        }
        return top
    }
}

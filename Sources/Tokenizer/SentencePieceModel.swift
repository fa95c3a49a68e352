import Foundation

/// The parts of a SentencePiece `ModelProto` (sentencepiece_model.proto) that encoding and
/// decoding need: pieces with scores and types, the trainer and normalizer settings.
public struct SentencePieceModel: Sendable {
    public enum PieceType: Int, Sendable {
        case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
    }

    public struct Piece: Sendable, Equatable {
        public var text: String
        public var score: Float
        public var type: PieceType
    }

    public enum ModelType: Int, Sendable { case unigram = 1, bpe = 2, word = 3, char = 4 }

    public var pieces: [Piece] = []
    public var modelType: ModelType = .unigram
    public var byteFallback = false
    public var splitDigits = false
    public var treatWhitespaceAsSuffix = false
    public var unkSurface = " \u{2047} "
    public var normalizerName = ""
    public var precompiledCharsmap: [UInt8] = []
    public var addDummyPrefix = true
    public var removeExtraWhitespaces = true
    public var escapeWhitespaces = true

    /// Parses `tokenizer.model` bytes.
    public init(bytes: [UInt8]) throws {
        var r = ProtobufReader(bytes[...])
        do {
            while !r.atEnd {
                let (n, f) = try r.next()
                switch (n, f) {
                case (1, .bytes(let b)): pieces.append(try Self.piece(b))
                case (2, .bytes(let b)): try trainer(b)
                case (3, .bytes(let b)): try normalizer(b)
                default: break
                }
            }
        } catch {
            throw TokenizerError.notSentencePiece(reason: "malformed protobuf")
        }
        guard !pieces.isEmpty else { throw TokenizerError.notSentencePiece(reason: "no pieces") }
    }

    private static func piece(_ b: ArraySlice<UInt8>) throws -> Piece {
        var r = ProtobufReader(b)
        var p = Piece(text: "", score: 0, type: .normal)
        while !r.atEnd {
            switch try r.next() {
            case (1, .bytes(let s)):
                guard let t = String(validating: s, as: UTF8.self) else { throw ProtobufReader.Malformed() }
                p.text = t
            case (2, .fixed32(let v)): p.score = Float(bitPattern: v)
            case (3, .varint(let v)):
                guard let t = Int(exactly: v).flatMap(PieceType.init(rawValue:)) else { throw ProtobufReader.Malformed() }
                p.type = t
            default: break
            }
        }
        return p
    }

    private mutating func trainer(_ b: ArraySlice<UInt8>) throws {
        var r = ProtobufReader(b)
        while !r.atEnd {
            switch try r.next() {
            case (3, .varint(let v)): modelType = Int(exactly: v).flatMap(ModelType.init(rawValue:)) ?? .unigram
            case (24, .varint(let v)): treatWhitespaceAsSuffix = v != 0
            case (25, .varint(let v)): splitDigits = v != 0
            case (35, .varint(let v)): byteFallback = v != 0
            case (44, .bytes(let s)): unkSurface = String(decoding: s, as: UTF8.self)
            default: break
            }
        }
    }

    private mutating func normalizer(_ b: ArraySlice<UInt8>) throws {
        var r = ProtobufReader(b)
        while !r.atEnd {
            switch try r.next() {
            case (1, .bytes(let s)): normalizerName = String(decoding: s, as: UTF8.self)
            case (2, .bytes(let s)): precompiledCharsmap = Array(s)
            case (3, .varint(let v)): addDummyPrefix = v != 0
            case (4, .varint(let v)): removeExtraWhitespaces = v != 0
            case (5, .varint(let v)): escapeWhitespaces = v != 0
            default: break
            }
        }
    }
}

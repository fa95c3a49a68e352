import Foundation

public enum TokenizerError: LocalizedError, Equatable {
    case notSentencePiece(reason: String)
    case unsupported(String)
    case fileMissing(String)
    case badConfig(String, reason: String)
    case unreadable(String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .notSentencePiece(let r): return "tokenizer.model is not a SentencePiece model (\(r))."
        case .unsupported(let s): return "This tokenizer.model is not supported: \(s)."
        case .fileMissing(let p): return "\(p) is missing: a model folder needs tokenizer.model and tokenizer_config.json."
        case .badConfig(let p, let r): return "\(p) is not a valid tokenizer config: \(r)."
        case .unreadable(let p, let r): return "Cannot read \(p): \(r)."
        }
    }
}

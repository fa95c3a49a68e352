import Foundation

/// What can be wrong with an image a user attaches, each as a sentence naming the file.
public enum ImagingError: LocalizedError, Equatable {
    case notFound(String)
    case isDirectory(String)
    case unreadable(String, reason: String)
    case empty(String)
    case unknownFormat(String)
    case unsupported(String, reason: String)
    case tooLarge(String, width: Int, height: Int, limit: Int)
    case corrupt(String, reason: String)

    public var errorDescription: String? {
        switch self {
        case .notFound(let p): return "\(p) does not exist."
        case .isDirectory(let p): return "\(p) is a folder, not an image."
        case .unreadable(let p, let r): return "Cannot read \(p): \(r.trimmingCharacters(in: CharacterSet(charactersIn: ". ")))."
        case .empty(let p): return "\(p) is empty (0 bytes)."
        case .unknownFormat(let p): return "\(p) is not a JPEG, PNG or WebP image."
        case .unsupported(let p, let r): return "\(p) cannot be used: \(r)."
        case .tooLarge(let p, let w, let h, let l):
            return "\(p) is \(w)x\(h) pixels, more than the limit of \(l) pixels (a decompression-bomb guard, as Pillow's)."
        case .corrupt(let p, let r): return "\(p) is truncated or corrupt (\(r))."
        }
    }
}

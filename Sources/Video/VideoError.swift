import Foundation

/// What can be wrong with a video a user gives, each as one sentence naming the file.
public enum VideoError: LocalizedError, Equatable {
    case unreadable(String, reason: String)
    case empty(String)
    case notAVideo(String, reason: String)
    case audioOnly(String)
    case noFrames(String)
    case missingCodec(String, codec: String)
    case tooLarge(String, width: Int, height: Int, limit: Int)
    case corrupt(String, reason: String)
    case truncated(String, decoded: Int, wanted: Int)
    case cutShort(String, fileBytes: Int64, indexedBytes: Int64)

    public var errorDescription: String? {
        switch self {
        case .unreadable(let p, let r): return "Cannot read \(p): \(r)."
        case .empty(let p): return "\(p) is empty (0 bytes)."
        case .notAVideo(let p, let r): return "\(p) is not a video FFmpeg can read (\(r))."
        case .audioOnly(let p): return "\(p) has no video stream (audio only)."
        case .noFrames(let p): return "\(p) has a video stream with no frames."
        case .missingCodec(let p, let c): return "\(p) is encoded with \(c), which this FFmpeg cannot decode."
        case .tooLarge(let p, let w, let h, let l):
            return "\(p) has \(w)x\(h) frames, more than the limit of \(l) pixels a frame."
        case .corrupt(let p, let r): return "\(p) is corrupt (\(r))."
        case .cutShort(let p, let have, let listed):
            return "\(p) is cut short: it has \(have) bytes of the \(listed) its index lists (an unfinished download or copy?)."
        case .truncated(let p, let d, let w):
            return "\(p) is truncated or corrupt: it decodes to \(d) frames, but frame \(w) is needed."
        }
    }
}

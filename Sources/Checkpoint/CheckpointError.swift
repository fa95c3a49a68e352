import Foundation

/// Everything that can be wrong with a model folder, each as a sentence a user can act on.
public enum CheckpointError: LocalizedError, Equatable {
    case folderMissing(String)
    case fileMissing(String, what: String)
    case unreadable(String, reason: String)
    case malformedConfig(String, reason: String)
    case unsupportedModel(String, architectures: [String])
    case badHeader(String, reason: String)
    case missingTensor(String, file: String)
    case unexpectedTensor(String, file: String)
    case wrongShape(String, file: String, expected: [Int], found: [Int])
    case wrongDType(String, file: String, found: String)
    case missingShard(String, index: String)
    case brokenLink(String, target: String)
    case notFound(searched: [String], download: String)

    public var errorDescription: String? {
        switch self {
        case .folderMissing(let p):
            return "Model folder \(p) does not exist or is not a folder."
        case .fileMissing(let p, let what):
            return "\(p) is missing: a model folder needs \(what)."
        case .unreadable(let p, let reason):
            return "Cannot read \(p): \(reason.trimmingCharacters(in: CharacterSet(charactersIn: ". ")))."
        case .malformedConfig(let p, let reason):
            return "\(p) is not a valid InternVL config: \(reason)."
        case .unsupportedModel(let p, let archs):
            return "\(p) describes an unsupported model (llm_config.architectures = \(archs)); "
                + "internvl-chat runs InternLM2ForCausalLM (Mini-InternVL-Chat-2B-V1-5)."
        case .badHeader(let p, let reason):
            return "\(p) is not a valid safetensors file: \(reason)."
        case .missingTensor(let n, let f):
            return "\(f) lacks tensor \(n): the checkpoint is incomplete or of another model."
        case .unexpectedTensor(let n, let f):
            return "\(f) has an unexpected tensor \(n): the checkpoint does not match config.json."
        case .wrongShape(let n, let f, let e, let s):
            return "\(f): tensor \(n) has shape \(s), but config.json implies \(e)."
        case .wrongDType(let n, let f, let d):
            return "\(f): tensor \(n) has dtype \(d); supported are BF16, F16 and F32."
        case .missingShard(let s, let idx):
            return "Shard \(s), listed in \(idx), is missing: the download is incomplete."
        case .brokenLink(let p, let target):
            return "\(p) is a link to \(target), which does not exist: the download did not finish; download the model again."
        case .notFound(let searched, let download):
            let repo = download.split(separator: " ").last.map { String($0.split(separator: "/").last ?? $0) } ?? "model"
            return "No \(repo) checkpoint found. Looked in:\n"
                + searched.map { "  - \($0)" }.joined(separator: "\n")
                + "\nDownload it with:\n  \(download)\nor pass --model DIR."
        }
    }
}

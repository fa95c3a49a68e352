import Foundation

/// Everything a turn can refuse, each as a sentence a user can act on.
public enum ChatError: LocalizedError, Equatable {
    case emptyPrompt
    case promptTooLong(tokens: Int, context: Int)
    /// Text too long to be tokenized into the context at all (refused before tokenizing it).
    case textTooLong(bytes: Int, context: Int)
    /// The text holds the token that stands for image features.
    case imageTokenInText
    case invalidParameters(String)
    case badHistory(String, reason: String)
    case imagePlaceholders(images: Int, placeholders: Int)
    case contextBudget(tokens: Int, context: Int, images: [String])
    case unknownTemplate(String, known: [String])

    public var errorDescription: String? {
        switch self {
        case .emptyPrompt: return "The prompt is empty: type a question."
        case .imageTokenInText:
            return "The text holds <IMG_CONTEXT>, the token that stands for an image's features; it cannot be typed. Remove it."
        case .textTooLong(let b, let c):
            return "The prompt is \(b) bytes of text: more than a context of \(c) tokens can hold (no token covers more than "
                + "\(PromptBuilder.maxBytesPerToken) bytes). Shorten the history or the question."
        case .promptTooLong(let n, let c):
            return "The prompt is \(n) tokens, but the context holds \(c) (\(n - c + 1) too many, leaving no room to answer). "
                + "Shorten the history or the question, or raise the context size (--context)."
        case .invalidParameters(let s): return "Invalid sampling parameters: \(s)."
        case .badHistory(let p, let r): return "\(p) is not a valid history: \(r)."
        case .contextBudget(let n, let c, let imgs):
            var s = "This turn needs \(n) tokens but the context holds \(c): \(n - c + 1) too many, leaving room for no answer."
            if imgs.isEmpty { return s + " Start a new conversation, shorten the question, or raise the context size (--context)." }
            return s + " Images in the conversation: " + imgs.joined(separator: "; ") + "."
                + " Start a new conversation, use fewer tiles per image, or raise the context size (--context)."
        case .unknownTemplate(let n, let known):
            return "config.json names the chat template \"\(n)\", which this engine does not know (it knows \(known.joined(separator: ", ")))."
        case .imagePlaceholders(let i, let p):
            return "\(i) image(s) but only \(p) <image> placeholder(s) in the conversation: add one <image> per image, or none to let them be placed before the question."
        }
    }
}

import Foundation
import ServingAPI

/// What `serve` listens on and what it accepts; every limit refuses with an OpenAI-shaped error.
public struct ServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 8000
    /// Required as `Authorization: Bearer KEY` on /v1 routes when set.
    public var apiKey: String?
    /// `file://` URLs and paths in image parts are read only inside this folder (symlinks resolved).
    public var allowedFolder: URL?
    /// Largest request body (413 above it).
    public var maxBodyBytes = 64 << 20
    /// Largest image file, decoded from base64 or read from the allowed folder.
    public var maxImageBytes = 20 << 20
    /// Largest `max_tokens`.
    public var maxTokens = 4096
    /// Default `max_tokens` when a request names none.
    public var defaultMaxTokens = 512
    /// Seconds a client may take to send its body (408 after).
    public var bodySeconds = 30.0
    /// Connections open at once; one more is answered 503 and closed (each costs a descriptor and
    /// buffers whether or not it sends anything).
    public var maxConnections = 256
    /// Seconds a request may run in all (the answer is cut off with finish_reason "length" after).
    public var requestSeconds = 600.0
    /// Seconds running answers get to end after SIGTERM or SIGINT (then they are cut off).
    public var shutdownSeconds = 5.0
    /// What a prompt can hold, so that one that cannot fit is refused before it is tokenized
    /// (nil: no bound).
    public var promptLimit: PromptLimit?
    /// The name /v1/models lists; requests may name it or leave `model` out.
    public var modelName = "internvl-chat"
    public init() {}

    /// Whether `host` reaches this machine only: localhost, ::1 or any 127.0.0.0/8 address.
    public var isLoopback: Bool {
        if host == "::1" || host == "localhost" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }
}

/// The context's tokens, and the most bytes of text one token covers (the vocabulary's longest
/// piece). Every message the prompt renders, an empty one too, adds its role's header, at least
/// one special token of its own, and its text at least one token per `bytesPerToken` bytes.
public struct PromptLimit: Sendable {
    public var tokens: Int
    public var bytesPerToken: Int
    public init(tokens: Int, bytesPerToken: Int) { self.tokens = tokens; self.bytesPerToken = bytesPerToken }

    /// The fewest tokens `messages` can take: the leading system messages share one header.
    public static func fewestTokens(_ messages: [CompletionRequest.Message], bytesPerToken: Int) -> Int {
        let leading = messages.prefix { $0.role == .system }.count
        let headers = messages.count - leading + (messages.prefix(leading).contains { !$0.text.isEmpty } ? 1 : 0)
        let bytes = messages.reduce(0) { $0 + $1.text.utf8.count }
        return headers + (bytes + bytesPerToken - 1) / bytesPerToken
    }
}

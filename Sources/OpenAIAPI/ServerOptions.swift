import Foundation

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
    /// Seconds a request may run in all (the answer is cut off with finish_reason "length" after).
    public var requestSeconds = 600.0
    /// Seconds running answers get to end after SIGTERM or SIGINT (then they are cut off).
    public var shutdownSeconds = 5.0
    /// Most bytes of message text a prompt can hold: the context's tokens times the longest
    /// piece of the vocabulary (nil: no bound). More is refused before it is tokenized.
    public var maxPromptBytes: Int?
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

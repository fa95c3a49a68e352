import AsyncHTTPClient
import ChatAPI
import Foundation
import NIOCore

/// Why a request to the server did not give an answer, as one sentence for the screen. Nothing
/// the server sent reaches the terminal unsanitised.
public enum RemoteError: Error, LocalizedError, Equatable {
    case badEndpoint(String)
    /// The server answered with an error status; `message` is what it said (sanitised, shortened).
    case status(code: Int, reason: String, message: String)
    case unreachable(String, reason: String)
    case timedOut(String, seconds: Int)
    /// The answer stream ended before the server said it was complete.
    case dropped(String)
    case badResponse(String)
    case noModel(String)

    public var errorDescription: String? {
        switch self {
        case .badEndpoint(let e): return "\(e) is not an http:// or https:// address of a server."
        case .status(let code, let reason, let message):
            return "The server answered \(code) \(reason)" + (message.isEmpty ? "." : ": \(message)")
        case .unreachable(let url, let reason): return "Cannot reach the server at \(url): \(reason)."
        case .timedOut(let url, let s): return "The server at \(url) sent nothing for \(s) s; the request was stopped."
        case .dropped(let url): return "The connection to \(url) closed before the answer was complete."
        case .badResponse(let why): return "The server's answer is not an OpenAI chat completion: \(why)."
        case .noModel(let url): return "The server at \(url) lists no model; name one with --remote-model."
        }
    }

    /// At most this many characters of a server's message are shown.
    static let messageLimit = 500

    /// One line, safe for a terminal: control characters visible, newlines as spaces, shortened.
    static func clean(_ s: String) -> String {
        let flat = s.replacingOccurrences(of: "\r\n", with: " ").replacingOccurrences(of: "\n", with: " ")
        let t = TerminalText.sanitize(flat.trimmingCharacters(in: .whitespaces), tabWidth: 1)
        return t.count > messageLimit ? String(t.prefix(messageLimit)) + "…" : t
    }

    /// The message of an error body: OpenAI's `{"error": {"message"}}`, vLLM's `{"message"}`,
    /// FastAPI's `{"detail"}`, else the text itself.
    static func message(fromBody body: [UInt8]) -> String {
        if let obj = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] {
            if let e = obj["error"] as? [String: Any], let m = e["message"] as? String { return clean(m) }
            if let m = obj["error"] as? String { return clean(m) }
            if let m = obj["message"] as? String { return clean(m) }
            if let d = obj["detail"] { return clean(d as? String ?? "\(d)") }
        }
        return clean(String(decoding: body, as: UTF8.self))
    }

    /// A transport error as a sentence about `url`.
    static func transport(_ error: Error, url: String, readTimeout: Int) -> RemoteError {
        if let e = error as? RemoteError { return e }
        if let h = error as? HTTPClientError {
            switch h {
            case .readTimeout: return .timedOut(url, seconds: readTimeout)
            case .connectTimeout: return .unreachable(url, reason: "the connection timed out")
            case .remoteConnectionClosed: return .dropped(url)
            case .deadlineExceeded: return .timedOut(url, seconds: readTimeout)
            default: return .unreachable(url, reason: clean("\(h)"))
            }
        }
        if let io = error as? IOError { return .unreachable(url, reason: clean(String(cString: strerror(io.errnoCode)).lowercased())) }
        let text = "\(error)"
        if text.contains("connectionRefused") || text.contains("Connection refused") {
            return .unreachable(url, reason: "connection refused (is the server running?)")
        }
        return .unreachable(url, reason: clean(text))
    }
}

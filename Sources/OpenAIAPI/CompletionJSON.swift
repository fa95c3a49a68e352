import ChatAPI
import FileInput
import Foundation
import Imaging
import ServingAPI

/// An error in the OpenAI API's shape: `{"error": {"message", "type", "param", "code"}}` with its
/// HTTP status.
public struct APIError: Error, Sendable, Equatable {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(_ status: Int, _ message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) {
        self.status = status; self.message = message; self.type = type; self.param = param; self.code = code
    }

    public static func invalid(_ message: String, param: String? = nil) -> APIError { APIError(400, message, param: param) }

    /// 404: `name` is not the model this server serves (`served`).
    public static func modelNotFound(_ name: String, served: String) -> APIError {
        APIError(404, "The model \(quoted(name)) does not exist here: this server serves \(served).", param: "model", code: "model_not_found")
    }

    /// A client's value as an error message repeats it: its first 100 characters, control
    /// characters shown (a 20 MB model name is not sent back whole).
    public static func quoted(_ value: String) -> String {
        let head = value.count > 100 ? String(value.prefix(100)) + "… (\(value.utf8.count) bytes)" : value
        return TerminalText.line(head)
    }

    public var body: [String: Any] {
        ["error": ["message": message, "type": type, "param": param as Any? ?? NSNull(), "code": code as Any? ?? NSNull()]]
    }

    /// The status and error type of a service's refusal.
    public init(_ e: CompletionError) {
        switch e {
        // The HTTP layer checks every other value first: what the service refuses is the conversation.
        case .invalidRequest(let m): self.init(400, m, param: "messages")
        case .badImage(let m): self.init(400, m, param: "messages", code: "invalid_image")
        case .contextExceeded(let m): self.init(400, m, param: "messages", code: "context_length_exceeded")
        case .overloaded(let m): self.init(429, m, type: "rate_limit_error", code: "queue_full")
        case .engineFailure(let m): self.init(500, m, type: "server_error")
        }
    }
}

/// A parsed `POST /v1/chat/completions` body.
public struct ChatCompletionBody: Sendable {
    public var request: CompletionRequest
    public var stream: Bool
    public var includeUsage: Bool

    /// Values and members a body may hold (a conversation of a thousand messages of a few parts
    /// each holds about ten thousand); past it the body is refused before it is parsed.
    public static let maxJSONItems = 100_000

    /// Parses and checks `bytes` (JSON), reading images from `data:` URLs or, with an allowed
    /// folder, from files inside it. Every problem is an `APIError` naming the field.
    public static func parse(_ bytes: [UInt8], options: ServerOptions) throws(APIError) -> ChatCompletionBody {
        // Foundation would also read UTF-16 and UTF-32; a NUL byte is never valid UTF-8 JSON.
        guard String(validating: bytes, as: UTF8.self) != nil, !bytes.contains(0) else {
            throw .invalid("The body is not UTF-8 text: JSON must be sent as UTF-8.")
        }
        let scanned = JSONScan.scan(bytes, itemLimit: maxJSONItems)
        if scanned.trailingComma { throw .invalid("The body is not valid JSON: a comma stands before a closing bracket.") }
        guard scanned.items <= maxJSONItems else {
            throw .invalid("The body holds more than \(maxJSONItems) JSON values; a chat request needs far fewer.")
        }
        let any: Any
        do { any = try JSONSerialization.jsonObject(with: Data(bytes)) } catch {
            throw .invalid("The body is not valid JSON.")
        }
        guard let o = any as? [String: Any] else { throw .invalid("The body must be a JSON object.") }
        if let m = o["model"], !(m is NSNull) {
            guard let name = m as? String else { throw .invalid("model must be a string.", param: "model") }
            guard name == options.modelName else { throw .modelNotFound(name, served: options.modelName) }
        }
        guard let list = o["messages"] as? [Any], !list.isEmpty else {
            throw .invalid("messages must be a non-empty array.", param: "messages")
        }
        var messages: [CompletionRequest.Message] = []
        for (i, item) in list.enumerated() {
            guard let m = item as? [String: Any], let role = m["role"] as? String else {
                throw .invalid("messages[\(i)] must be an object with a role.", param: "messages")
            }
            let r: CompletionRequest.Role
            switch role {
            case "system", "developer": r = .system
            case "user": r = .user
            case "assistant": r = .assistant
            default: throw .invalid("messages[\(i)].role \"\(APIError.quoted(role))\" is not supported (system, user, assistant).", param: "messages")
            }
            var text: [String] = [], images: [CompletionRequest.Image] = []
            switch m["content"] {
            case let s as String: text = [s]
            case is NSNull, nil:
                guard r == .assistant else { throw .invalid("messages[\(i)].content is missing.", param: "messages") }
            case let parts as [Any]:
                for (k, p) in parts.enumerated() {
                    guard let part = p as? [String: Any], let type = part["type"] as? String else {
                        throw .invalid("messages[\(i)].content[\(k)] must be an object with a type.", param: "messages")
                    }
                    switch type {
                    case "text":
                        guard let t = part["text"] as? String else { throw .invalid("messages[\(i)].content[\(k)].text must be a string.", param: "messages") }
                        text.append(t)
                    case "image_url":
                        guard r == .user else { throw .invalid("messages[\(i)]: only user messages can carry images.", param: "messages") }
                        images.append(try image(part, name: "image \(k + 1) of message \(i + 1)", options: options))
                    default:
                        throw .invalid("messages[\(i)].content[\(k)].type \"\(APIError.quoted(type))\" is not supported (text, image_url).", param: "messages")
                    }
                }
            default: throw .invalid("messages[\(i)].content must be a string or an array of parts.", param: "messages")
            }
            messages.append(.init(role: r, text: text.joined(separator: "\n"), images: images))
        }
        if let limit = options.promptLimit {
            let fewest = PromptLimit.fewestTokens(messages, bytesPerToken: limit.bytesPerToken)
            guard fewest <= limit.tokens else {
                throw APIError(400, "The \(messages.count) messages need at least \(fewest) tokens; the context holds \(limit.tokens). Shorten the history or the question.",
                               param: "messages", code: "context_length_exceeded")
            }
        }
        var p = SamplingParameters()
        p.temperature = 1
        p.seed = UInt64.random(in: 0...UInt64(Int64.max))
        p.maxNewTokens = min(options.defaultMaxTokens, options.maxTokens)
        let tokensKey = o["max_completion_tokens"].map { !($0 is NSNull) } == true ? "max_completion_tokens" : "max_tokens"
        if let v = o[tokensKey], !(v is NSNull) {
            guard let n = integer(v), n >= 1, n <= options.maxTokens else {
                throw .invalid("\(tokensKey) must be an integer from 1 to \(options.maxTokens).", param: tokensKey)
            }
            p.maxNewTokens = n
        }
        if let v = o["min_tokens"], !(v is NSNull) {
            guard let n = integer(v), n >= 0, n <= p.maxNewTokens else {
                throw .invalid("min_tokens must be an integer from 0 to \(tokensKey) (\(p.maxNewTokens)).", param: "min_tokens")
            }
            p.minNewTokens = n
        }
        if let v = o["temperature"], !(v is NSNull) {
            guard let t = number(v), t >= 0, t <= 2 else { throw .invalid("temperature must be a number from 0 to 2.", param: "temperature") }
            p.temperature = Float(t)
        }
        if let v = o["top_p"], !(v is NSNull) {
            // (Checked as the sampler holds it: a positive double below float's range is 0 there.)
            guard let t = number(v), Float(t) > 0, t <= 1 else { throw .invalid("top_p must be a number in (0, 1].", param: "top_p") }
            p.topP = Float(t)
        }
        if let v = o["top_k"], !(v is NSNull) {
            guard let k = integer(v), k >= 0 else { throw .invalid("top_k must be 0 (off) or a positive integer.", param: "top_k") }
            p.topK = k
        }
        if let v = o["repetition_penalty"], !(v is NSNull) {
            guard let t = number(v), Float(t) > 0, t <= 10 else { throw .invalid("repetition_penalty must be a number in (0, 10].", param: "repetition_penalty") }
            p.repetitionPenalty = Float(t)
        }
        if let v = o["seed"], !(v is NSNull) {
            guard let s = int64(v) else { throw .invalid("seed must be an integer from -2^63 to 2^63-1.", param: "seed") }
            p.seed = UInt64(bitPattern: s)
        }
        for key in ["frequency_penalty", "presence_penalty"] {
            if let v = o[key], !(v is NSNull) {
                guard number(v) == 0 else { throw .invalid("\(key) is not supported; leave it out or 0 (repetition_penalty is).", param: key) }
            }
        }
        if let v = o["n"], !(v is NSNull), integer(v) != 1 { throw .invalid("n must be 1: one answer per request.", param: "n") }
        try refuseWhatCannotBeHonoured(o)
        var stop: [String] = []
        switch o["stop"] {
        case nil, is NSNull: break
        case let s as String: stop = [s]
        case let a as [Any]:
            stop = a.compactMap { $0 as? String }
            guard stop.count == a.count, stop.count <= 4 else { throw .invalid("stop must be a string or up to 4 strings.", param: "stop") }
        default: throw .invalid("stop must be a string or up to 4 strings.", param: "stop")
        }
        var maxTiles: Int?
        if let v = [o["max_tiles"], o["max_dynamic_patch"]].first(where: given) ?? nil {
            guard let n = integer(v), DynamicTiling.tileCountLimit.contains(n) else { throw .invalid("max_tiles must be an integer from \(DynamicTiling.tileCountText).", param: "max_tiles") }
            maxTiles = n
        }
        var stream = false
        if let v = o["stream"], !(v is NSNull) {
            guard let b = v as? NSNumber, isBool(b) else { throw .invalid("stream must be true or false.", param: "stream") }
            stream = b.boolValue
        }
        var includeUsage = false
        if let v = o["stream_options"], !(v is NSNull) {
            guard stream else { throw .invalid("stream_options is only allowed with stream: true.", param: "stream_options") }
            guard let fields = v as? [String: Any] else { throw .invalid("stream_options must be an object.", param: "stream_options") }
            if let u = fields["include_usage"], !(u is NSNull) {
                guard let b = u as? NSNumber, isBool(b) else {
                    throw .invalid("stream_options.include_usage must be true or false.", param: "stream_options")
                }
                includeUsage = b.boolValue
            }
        }
        return ChatCompletionBody(request: CompletionRequest(messages: messages, parameters: p, stop: stop, maxTiles: maxTiles),
                                  stream: stream, includeUsage: includeUsage)
    }

    /// OpenAI fields whose dropping would change what the answer is (its format, its tokens'
    /// odds, a tool call in place of text, log probabilities a client reads) are refused naming
    /// the field. Fields unknown here are ignored, as vLLM ignores them.
    static func refuseWhatCannotBeHonoured(_ o: [String: Any]) throws(APIError) {
        func given(_ key: String) -> Any? { o[key].flatMap { $0 is NSNull ? nil : $0 } }
        if let v = given("logprobs") {
            guard let b = v as? NSNumber, isBool(b) else { throw .invalid("logprobs must be true or false.", param: "logprobs") }
            if b.boolValue { throw .invalid("logprobs are not supported.", param: "logprobs") }
        }
        if let v = given("top_logprobs"), integer(v) != 0 {
            throw .invalid("top_logprobs is not supported (logprobs are not); leave it out or 0.", param: "top_logprobs")
        }
        if let v = given("response_format") {
            guard let f = v as? [String: Any], f["type"] as? String == "text" else {
                throw .invalid("response_format: only {\"type\": \"text\"} is supported; JSON mode and JSON schemas are not enforced by this server.",
                               param: "response_format")
            }
        }
        if let v = given("logit_bias"), (v as? [String: Any])?.isEmpty != true {
            throw .invalid("logit_bias is not supported; leave it out or {}.", param: "logit_bias")
        }
        if given("tools") != nil { throw .invalid("tools are not supported by this model.", param: "tools") }
        if let v = given("functions"), (v as? [Any])?.isEmpty != true {
            throw .invalid("functions are not supported by this model.", param: "functions")
        }
        if given("function_call") != nil { throw .invalid("function_call is not supported by this model.", param: "function_call") }
        if let v = given("tool_choice"), !["none", "auto"].contains(v as? String) {
            throw .invalid("tool_choice: there are no tools to call; leave it out, \"none\" or \"auto\".", param: "tool_choice")
        }
        if let v = given("modalities"), (v as? [Any]).map({ $0.allSatisfy { $0 as? String == "text" } }) != true {
            throw .invalid("modalities: this model answers in text only; leave it out or [\"text\"].", param: "modalities")
        }
        if given("audio") != nil { throw .invalid("audio output is not supported by this model.", param: "audio") }
        if let v = given("echo"), (v as? NSNumber).map({ isBool($0) && !$0.boolValue }) != true {
            throw .invalid("echo (the prompt returned with the answer) is not supported; leave it out or false.", param: "echo")
        }
        if let v = given("best_of"), integer(v) != 1 {
            throw .invalid("best_of is not supported (one answer is drawn); leave it out or 1.", param: "best_of")
        }
    }

    /// A JSON value as a whole number (2 and 2.0; not true or false, which arrive as NSNumbers too).
    public static func integer(_ v: Any) -> Int? {
        guard let n = v as? NSNumber, !isBool(n) else { return nil }
        let d = n.doubleValue
        guard d.rounded() == d, abs(d) < 9.0e15 else { return nil }
        return Int(d)
    }

    /// A 64-bit integer, exact also above 2^53 (where `integer`, through a Double, stops).
    static func int64(_ v: Any) -> Int64? {
        guard let n = v as? NSNumber, !isBool(n) else { return nil }
        if let i = Int64(n.stringValue) { return i }
        return integer(v).map(Int64.init)
    }

    /// Whether a field is there with a value (not missing, not null).
    static func given(_ v: Any?) -> Bool { v.map { !($0 is NSNull) } ?? false }

    /// JSON true and false arrive as NSNumbers of type "c"; they are not numbers here.
    static func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    static func number(_ v: Any) -> Double? {
        guard let n = v as? NSNumber, !isBool(n), n.doubleValue.isFinite else { return nil }
        return n.doubleValue
    }

    /// An `image_url` part's image: a `data:` URL, or a file inside the allowed folder.
    static func image(_ part: [String: Any], name: String, options: ServerOptions) throws(APIError) -> CompletionRequest.Image {
        let field = part["image_url"]
        let url: String? = (field as? String) ?? ((field as? [String: Any])?["url"] as? String)
        guard let url else { throw .invalid("\(name): image_url.url must be a string.", param: "messages") }
        var maxTiles: Int?
        let inner = field as? [String: Any]
        let tileKeys: [(String, Any?)] = [("image_url.max_dynamic_patch", inner?["max_dynamic_patch"]), ("image_url.max_tiles", inner?["max_tiles"]),
                                          ("max_dynamic_patch", part["max_dynamic_patch"]), ("max_tiles", part["max_tiles"])]
        if let (key, value) = tileKeys.first(where: { given($0.1) }), let v = value {
            guard let n = integer(v), DynamicTiling.tileCountLimit.contains(n) else { throw .invalid("\(name): \(key) must be an integer from \(DynamicTiling.tileCountText).", param: "messages") }
            maxTiles = n
        }
        // OpenAI's detail: "low" is InternVL's thumbnail alone (the whole image as one tile);
        // "high" and "auto" keep the tiling the part, the request or the model sets.
        if let v = inner?["detail"], !(v is NSNull) {
            guard let detail = v as? String, ["low", "high", "auto"].contains(detail) else {
                throw .invalid("\(name): image_url.detail must be \"low\", \"high\" or \"auto\".", param: "messages")
            }
            if detail == "low", maxTiles == nil { maxTiles = 1 }
        }
        // A URL's scheme, and data:'s ";base64", in any case (RFC 3986, RFC 2397).
        let scheme = url.prefix { $0 != ":" }.lowercased()
        if scheme == "data" {
            guard let comma = url.firstIndex(of: ","), url[..<comma].lowercased().hasSuffix(";base64") else {
                throw .invalid("\(name): a data: URL must be base64 (data:image/png;base64,...).", param: "messages")
            }
            let b64 = url[url.index(after: comma)...]
            guard b64.utf8.count / 4 * 3 <= options.maxImageBytes else {
                throw APIError(413, "\(name) is larger than \(options.maxImageBytes >> 20) MB.", param: "messages")
            }
            guard let data = Data(base64Encoded: String(b64), options: .ignoreUnknownCharacters), !data.isEmpty else {
                throw APIError(400, "\(name): the data: URL is not valid base64.", param: "messages", code: "invalid_image")
            }
            return .init(bytes: [UInt8](data), name: name, maxTiles: maxTiles)
        }
        if (scheme == "http" || scheme == "https") && url.dropFirst(scheme.count).hasPrefix("://") {
            throw .invalid("\(name): images are not fetched from the network; send a data: URL.", param: "messages")
        }
        guard let folder = options.allowedFolder else {
            throw .invalid("\(name): file paths are not accepted (start serve with --allow-local-files DIR); send a data: URL.", param: "messages")
        }
        if url.hasPrefix("file://"), let host = URL(string: url)?.host, !host.isEmpty, host != "localhost" {
            throw .invalid("\(name): a file:// URL names a file of this machine (no host, or localhost), not of \(APIError.quoted(host)).", param: "messages")
        }
        let path = url.hasPrefix("file://") ? (URL(string: url)?.path ?? "") : url
        guard !path.isEmpty else { throw .invalid("\(name): the image URL is empty.", param: "messages") }
        let root = folder.resolvingSymlinksInPath().standardizedFileURL.path
        let file = path.hasPrefix("/") ? URL(fileURLWithPath: path) : folder.appendingPathComponent(path)
        let resolved = file.resolvingSymlinksInPath().standardizedFileURL.path
        guard resolved.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw APIError(403, "\(name): \(APIError.quoted(path)) is outside the folder this server may read.", type: "permission_error", param: "messages")
        }
        do {
            return .init(bytes: try FileInput.read(resolved, limit: options.maxImageBytes), name: name, maxTiles: maxTiles)
        } catch .tooLarge {
            throw APIError(413, "\(name) is larger than \(options.maxImageBytes >> 20) MB.", param: "messages")
        } catch {
            throw .invalid("\(name): \(APIError.quoted(path)): \(error.reason)", param: "messages")
        }
    }
}

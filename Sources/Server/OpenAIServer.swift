import ChatAPI
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Prometheus
import OpenAIAPI
import ServingAPI
import ServiceLifecycle
import UnixSignals

/// The OpenAI-compatible HTTP server: `POST /v1/chat/completions` (plain or streamed as
/// server-sent events), `GET /v1/models`, `GET /health`, `GET /metrics` (Prometheus text).
public final class OpenAIServer: Sendable {
    let service: any CompletionService
    let options: ServerOptions
    let metrics: ServerMetrics
    let log = Logger(label: "serve")
    let inFlight = InFlight()
    let connections: Connections

    public init(service: any CompletionService, options: ServerOptions) {
        self.service = service
        self.options = options
        let metrics = ServerMetrics()
        self.metrics = metrics
        connections = Connections(limit: options.maxConnections, refused: { metrics.refusedConnections.increment() })
        service.observeGeneratedTokens { [generated = metrics.generated] n in generated.increment(by: Int64(n)) }
    }

    /// Serves until SIGINT or SIGTERM; `onListening` gets the bound port (for `--port 0`).
    /// The first signal stops taking connections and gives running answers
    /// `options.shutdownSeconds` to end; then (or at a second signal) each ends as a request past
    /// `--request-seconds` does: a stream with `finish_reason: "length"` and `[DONE]`, a plain
    /// answer with its text so far; a request not yet started gets 503.
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let router = Router(context: ServeContext.self)
        router.addMiddleware { OpenAIShapedErrors() }
        router.addMiddleware { [connections, metrics] in RefuseWhileStopping(connections: connections, metrics: metrics) }
        router.addMiddleware { [metrics] in RefusalsFromTheHead(metrics: metrics) }
        // What GET serves is served to HEAD too (health checks, curl -I); NIO leaves the body out.
        func get(_ path: RouterPath, _ handler: @escaping @Sendable (Request, ServeContext) async throws -> Response) {
            router.get(path, use: handler)
            router.head(path, use: handler)
        }
        get("/health") { _, _ in Self.json(200, ["status": "ok"]) }
        get("/metrics") { [self] _, _ in
            let s = await service.status()
            metrics.queued.set(to: Double(s.queued))
            metrics.active.set(to: Double(s.active))
            metrics.largestBatch.set(to: Double(s.largestBatch))
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.registry.emitToString())))
        }
        get("/v1/models") { [self] request, _ in
            if let e = unauthorized(request.headers[.authorization]) { return finish(e) }
            return Self.json(200, ["object": "list", "data": [modelObject]])
        }
        // A served name may hold a slash (OpenGVLab/...), which clients put in the path as it is.
        get("/v1/models/**") { [self] request, _ in
            if let e = unauthorized(request.headers[.authorization]) { return finish(e) }
            let asked = String(request.uri.path.dropFirst("/v1/models/".count))
            let name = asked.removingPercentEncoding ?? asked
            guard name == options.modelName else { return Self.json(404, APIError.modelNotFound(name, served: options.modelName).body) }
            return Self.json(200, modelObject)
        }
        router.post("/v1/chat/completions") { [self] request, context in await completions(request, channel: context.channel) }
        // The head as the route sees it: HTTP types join a repeated field's values with ", ".
        let readsBody: @Sendable (HTTPRequestHead) -> Bool = { [self] head in
            func field(_ name: String) -> String? { head.headers[name].isEmpty ? nil : head.headers[name].joined(separator: ", ") }
            return head.method == .POST && Self.isCompletions(URI(head.uri).path)
                && refusalBeforeBody(authorization: field("authorization"), contentType: field("content-type"),
                                     contentLength: field("content-length"), transferEncoding: field("transfer-encoding"),
                                     contentEncoding: field("content-encoding"), admission: true) == nil
        }
        // A connection that has not sent a whole request head within bodySeconds of opening (or
        // of its last answer), plus a second, is closed; a client that closes its side ends its
        // requests. (The second lets a body that stopped coming get its 408 from the handler's
        // own deadline first, rather than a close without an answer.)
        let http = HTTP1Channel.Configuration(additionalChannelHandlers: [ClientGoneHandler(),
                                                                          HTTP1Details(connections: self.connections, maxBodyBytes: self.options.maxBodyBytes,
                                                                                       readsBody: readsBody)],
                                              idleTimeout: .milliseconds(Int64(options.bodySeconds * 1000) + 1000))
        let app = Application(router: router, server: .http1(configuration: http),
                              configuration: .init(address: .hostname(options.host, port: options.port), serverName: "internvl-chat"),
                              onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
                              logger: log)
        let group = ServiceGroup(configuration: .init(services: [app], logger: log))
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            tasks.addTask { [inFlight, connections, options] in
                var drain: Task<Void, Never>?
                for await _ in signals {
                    if drain == nil {
                        connections.stop()
                        drain = Task {
                            try? await Task.sleep(for: .milliseconds(Int(options.shutdownSeconds * 1000)))
                            inFlight.cutAll()
                            connections.endWindow()
                        }
                        await group.triggerGracefulShutdown()
                    } else {
                        inFlight.cutAll()
                        connections.endWindow()
                    }
                }
            }
            try await tasks.next()
            tasks.cancelAll()
        }
    }

    /// Whether the router takes `path` to `POST /v1/chat/completions`: it skips empty components
    /// (a slash at the end, doubled slashes).
    static func isCompletions(_ path: String) -> Bool { path.split(separator: "/") == ["v1", "chat", "completions"] }

    var modelObject: [String: Any] { ["id": options.modelName, "object": "model", "created": 0, "owned_by": "internvl-chat"] }

    func unauthorized(_ authorization: String?) -> APIError? {
        guard let key = options.apiKey else { return nil }
        let given = authorization ?? ""
        // The scheme's name is case-insensitive (RFC 9110), the key is not.
        let scheme = given.prefix(7), credentials = given.dropFirst(scheme.count)
        guard scheme.lowercased() == "bearer ", Self.sameBytes(Array(credentials.utf8), Array(key.utf8)) else {
            return APIError(401, given.isEmpty ? "Missing API key: send Authorization: Bearer KEY." : "Incorrect API key.",
                            type: "authentication_error", code: "invalid_api_key")
        }
        return nil
    }

    /// Compares in a time that depends on the lengths only, so that response times do not tell
    /// how much of a guessed key was right.
    static func sameBytes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }

    func finish(_ e: APIError) -> Response {
        metrics.count(status: e.status)
        var response = Self.json(e.status, e.body)
        // The queue is full: a place frees when a running answer ends. The official clients
        // wait this long before they retry.
        if e.status == 429 { response.headers[.retryAfter] = "1" }
        return response
    }

    static func json(_ status: Int, _ object: [String: Any]) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(bytes: encoded(object))))
    }

    /// `object` as the JSON an answer carries.
    static func encoded(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
    }

    /// What refuses a chat completion from its head alone: the key, the media type, a transfer
    /// coding other than chunked (501, RFC 9112 6.1: a gzip body would be read as JSON), a content
    /// coding (415, RFC 9110 15.5.16: the body is taken as it comes, never decompressed), a
    /// declared length over the limit, and with `admission` a full queue. A request with
    /// `Expect: 100-continue` gets its `100 Continue` only when this is nil with `admission`: a
    /// client uploading an image to a full queue does not send it for nothing. Without `Expect`
    /// the body comes anyway, and a full queue is only answered once it is read and found valid.
    func refusalBeforeBody(authorization: String?, contentType: String?, contentLength: String?, transferEncoding: String?,
                           contentEncoding: String?, admission: Bool) -> APIError? {
        if let e = unauthorized(authorization) { return e }
        if let te = transferEncoding,
           te.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() != "chunked" }) {
            return APIError(501, "Transfer-Encoding \"\(TerminalText.sanitize(te))\" is not supported: send the body as it is, or chunked.",
                            code: "unsupported_transfer_encoding")
        }
        if let ce = contentEncoding,
           ce.split(separator: ",").contains(where: { $0.trimmingCharacters(in: .whitespaces).lowercased() != "identity" }) {
            return APIError(415, "Content-Encoding \"\(APIError.quoted(ce))\" is not supported: send the body uncompressed.",
                            code: "unsupported_content_encoding")
        }
        // Only JSON: a web page may post text/plain or a form to a loopback server without
        // asking the browser first (no CORS preflight), but not application/json.
        let mediaType = (contentType ?? "").split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard mediaType == "application/json" else {
            return APIError(415, "Content-Type must be application/json (it was \(contentType.map { "\"\(TerminalText.sanitize($0))\"" } ?? "missing")).",
                            code: "unsupported_media_type")
        }
        if Self.declaresMore(contentLength, than: options.maxBodyBytes) { return tooLarge }
        if admission, let busy = service.admissionRefusal() { return APIError(.overloaded(busy)) }
        return nil
    }

    /// Whether a request's `Content-Length` declares a body over `limit` (answered 413 unread).
    static func declaresMore(_ contentLength: String?, than limit: Int) -> Bool {
        contentLength.flatMap { Int($0) }.map { $0 > limit } ?? false
    }

    var tooLarge: APIError { APIError(413, "The body is larger than \(options.maxBodyBytes >> 20) MB.", code: "body_too_large") }

    func completions(_ request: Request, channel: any Channel) async -> Response {
        // With `Expect: 100-continue` the head was judged once (HTTP1Details): a queue that filled
        // or emptied since does not change that answer.
        let decided = HTTPField.Name(HTTP1Details.continueDecision).flatMap { request.headers[$0] }
        if let e = refusalBeforeBody(authorization: request.headers[.authorization], contentType: request.headers[.contentType],
                                     contentLength: request.headers[.contentLength], transferEncoding: request.headers[.transferEncoding],
                                     contentEncoding: request.headers[.contentEncoding], admission: false) {
            return finish(e)
        }
        if decided == "refused" { return finish(APIError(.overloaded("The server was busy when the request came. Retry later."))) }
        let started = ContinuousClock.now
        let bytes: [UInt8]
        do {
            bytes = try await inFlight.reading { [options] in
                try await withDeadline(options.bodySeconds) {
                    Array(try await request.body.collect(upTo: options.maxBodyBytes).readableBytesView)
                }
            }
        } catch let d as DeadlineExceeded where d.shuttingDown {
            return finish(Self.apiError(d))
        } catch is DeadlineExceeded {
            return finish(APIError(408, "The request body did not arrive within \(Int(options.bodySeconds)) s.", code: "request_timeout"))
        } catch is NIOTooManyBytesError {
            return finish(tooLarge)
        } catch let e as HTTPError where e.status == .contentTooLarge {
            return finish(tooLarge)
        } catch let e as HTTPParserError {
            return finish(APIError(400, HTTP1Details.Handler.sentence(e), code: "malformed_request"))
        } catch {
            return finish(APIError(400, "The body could not be read: \(error)"))
        }
        let body: ChatCompletionBody
        do { body = try ChatCompletionBody.parse(bytes, options: options) } catch { return finish(error) }
        // A request that is wrong gets its own error whether or not the queue has room: told
        // "busy", a client would send it again and again. A full queue refuses the rest below.
        if let e = service.problem(with: body.request) { return finish(APIError(e)) }
        let id = "chatcmpl-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(24)
        let created = Int(Date().timeIntervalSince1970)
        let events = EventSource(service.complete(body.request), seconds: options.requestSeconds)
        inFlight.add(events)
        // A client that goes away ends its generation at once, streamed or not, whether or not a
        // token is being written at that moment.
        channel.closeFuture.whenComplete { _ in events.cancel() }
        // The first event decides the status: a request the service refuses gets its error.
        let first: CompletionEvent?
        do { first = try await events.next() } catch {
            events.cancel()
            return finish(Self.apiError(error))
        }
        if !channel.isActive { return clientGone() }
        metrics.firstToken(started.duration(to: .now))
        let context = StreamContext(id: id, created: created, model: options.modelName, includeUsage: body.includeUsage)
        if !body.stream {
            var text = "", result: (FinishReason, CompletionUsage, [Int32])?
            var event = first
            do {
                while let e = event {
                    switch e {
                    case .text(let t): text += t
                    case .finished(let r, let u, let ids): result = (r, u, ids)
                    }
                    event = try await events.next()
                }
            } catch is DeadlineExceeded {
            } catch {
                return finish(Self.apiError(error))
            }
            if !channel.isActive { return clientGone() }
            metrics.count(status: 200)
            var choice: [String: Any] = ["index": 0, "message": ["role": "assistant", "content": text],
                                         "finish_reason": (result?.0 ?? .length).rawValue]
            var answer: [String: Any] = ["id": id, "object": "chat.completion", "created": created, "model": options.modelName]
            // An answer cut off by --request-seconds has its text only: the engine's counts and ids
            // come with its end, which the cut-off request never reached.
            if let (_, usage, ids) = result {
                metrics.completed(tokens: usage.completionTokens, time: started.duration(to: .now))
                choice["token_ids"] = ids.map(Int.init)
                answer["usage"] = Self.usage(usage)
            }
            answer["choices"] = [choice]
            return Self.json(200, answer)
        }
        metrics.count(status: 200)
        let includeUsage = body.includeUsage, metrics = self.metrics
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody { writer in
            // A client that stops reading or goes away fails a write: the request is cancelled.
            var delivered = false
            defer {
                events.cancel()
                if !delivered { metrics.disconnected.increment() }
            }
            try await writer.write(context.chunk(["role": "assistant", "content": ""], nil))
            var event = first
            var usage: CompletionUsage?
            do {
                while let e = event {
                    switch e {
                    case .text(let t): try await writer.write(context.chunk(["content": t], nil))
                    case .finished(let r, let u, let ids):
                        usage = u
                        try await writer.write(context.chunk([:], r.rawValue, extra: ["token_ids": ids.map(Int.init)]))
                    }
                    event = try await events.next()
                }
            } catch is DeadlineExceeded {
                try await writer.write(context.chunk([:], "length"))
            } catch {
                try await writer.write(Self.sse(Self.apiError(error).body))
            }
            if let u = usage {
                metrics.completed(tokens: u.completionTokens, time: started.duration(to: .now))
                if includeUsage {
                    try await writer.write(Self.sse(["id": context.id, "object": "chat.completion.chunk", "created": context.created,
                                                     "model": context.model, "choices": [Any](), "usage": Self.usage(u)]))
                }
            }
            try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
            try await writer.finish(nil)
            delivered = true
        })
    }

    /// The answer to a request whose client went away: nobody reads it; counted as 499, as nginx
    /// counts a client that closed its request.
    func clientGone() -> Response {
        metrics.count(status: 499)
        metrics.disconnected.increment()
        return Response(status: .init(code: 499))
    }

    static func apiError(_ error: any Error) -> APIError {
        if let e = error as? CompletionError { return APIError(e) }
        if let d = error as? DeadlineExceeded {
            if d.shuttingDown { return APIError(503, "The server is shutting down.", type: "server_error", code: "shutting_down") }
            return APIError(408, "The request took too long.", code: "request_timeout")
        }
        return APIError(500, "\(error)", type: "server_error")
    }

    static func usage(_ u: CompletionUsage) -> [String: Any] {
        ["prompt_tokens": u.promptTokens, "completion_tokens": u.completionTokens, "total_tokens": u.promptTokens + u.completionTokens,
         "prompt_tokens_details": ["cached_tokens": u.cachedPromptTokens]]
    }

    static func sse(_ object: [String: Any]) -> ByteBuffer {
        ByteBuffer(string: "data: " + String(decoding: encoded(object), as: UTF8.self) + "\n\n")
    }
}

/// From the first signal on, every request that starts gets 503 (`shutting_down`): those on
/// connections that were open then (no new ones are taken) and health checks, which thereby take
/// the server out of a load balancer.
struct RefuseWhileStopping: RouterMiddleware {
    typealias Context = ServeContext
    let connections: Connections
    let metrics: ServerMetrics

    func handle(_ request: Request, context: ServeContext, next: (Request, ServeContext) async throws -> Response) async throws -> Response {
        guard connections.isStopping else { return try await next(request, context) }
        if OpenAIServer.isCompletions(request.uri.path) { metrics.count(status: 503) }
        return OpenAIServer.json(503, OpenAIServer.apiError(DeadlineExceeded(shuttingDown: true)).body)
    }
}

/// Requests HTTP1Details marks from their heads, answered without their bodies being read: one
/// that expects what this server does not do (an `Expect` other than 100-continue) gets 417 (RFC
/// 9110, 10.1.1), an HTTP/1.1 one without exactly one `Host` 400 (RFC 9112, 3.2).
struct RefusalsFromTheHead: RouterMiddleware {
    typealias Context = ServeContext
    let metrics: ServerMetrics

    func handle(_ request: Request, context: ServeContext, next: (Request, ServeContext) async throws -> Response) async throws -> Response {
        guard let name = HTTPField.Name(HTTP1Details.continueDecision), let decision = request.headers[name],
              decision == "unmet" || decision == "hostless" else {
            return try await next(request, context)
        }
        if decision == "hostless" {
            if OpenAIServer.isCompletions(request.uri.path) { metrics.count(status: 400) }
            return OpenAIServer.json(400, APIError(400, "An HTTP/1.1 request needs exactly one Host field.", code: "missing_host").body)
        }
        if OpenAIServer.isCompletions(request.uri.path) { metrics.count(status: 417) }
        let expect = TerminalText.sanitize(request.headers[.expect] ?? "")
        return OpenAIServer.json(417, APIError(417, "Expect: \(expect) cannot be met: this server knows only 100-continue.",
                                               code: "expectation_failed").body)
    }
}

/// Hummingbird's own errors (no route, a route asked with another method) in OpenAI's shape:
/// 404 for an unknown path, 405 with `Allow` for a known one.
struct OpenAIShapedErrors: RouterMiddleware {
    typealias Context = ServeContext
    static let methods: [String: String] = ["/v1/chat/completions": "POST", "/v1/models": "GET, HEAD", "/health": "GET, HEAD",
                                            "/metrics": "GET, HEAD"]

    func handle(_ request: Request, context: ServeContext, next: (Request, ServeContext) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as HTTPError {
            let path = request.uri.path
            let line = TerminalText.sanitize("\(request.method) \(path)")
            let allowed = Self.methods[path] ?? (path.hasPrefix("/v1/models/") ? "GET, HEAD" : nil)
            if e.status == .notFound, let allowed {
                var r = OpenAIServer.json(405, APIError(405, "Method not allowed (\(line)): use \(allowed).").body)
                r.headers[.allow] = allowed
                return r
            }
            let message = e.status == .notFound ? "Invalid URL (\(line))." : (e.body ?? e.status.reasonPhrase)
            return OpenAIServer.json(e.status.code, APIError(e.status.code, message).body)
        }
    }
}

/// The ids a streamed response's chunks carry.
struct StreamContext: Sendable {
    let id: String
    let created: Int
    let model: String
    /// With `stream_options.include_usage`, every chunk before the usage chunk has `usage: null`
    /// (OpenAI's API reference says so).
    var includeUsage = false

    func chunk(_ delta: [String: Any], _ finish: String?, extra: [String: Any] = [:]) -> ByteBuffer {
        var choice: [String: Any] = ["index": 0, "delta": delta, "finish_reason": finish as Any? ?? NSNull()]
        choice.merge(extra) { $1 }
        var chunk: [String: Any] = ["id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]]
        if includeUsage { chunk["usage"] = NSNull() }
        return OpenAIServer.sse(chunk)
    }
}

/// A request cut off: past `--request-seconds`, or by the server's shutdown.
struct DeadlineExceeded: Error {
    var shuttingDown = false
}

/// The completions being answered, so that a shutdown can end them; a request that arrives
/// after `cutAll` is cut at once.
final class InFlight: @unchecked Sendable {
    private struct Weak { weak var source: EventSource? }
    private let lock = NSLock()
    private var sources: [Weak] = []
    private var reads: [UUID: @Sendable () -> Void] = [:]
    private var closed = false

    /// A request body being read (`body`), so that a shutdown's end also ends a client that
    /// stopped sending halfway (else it would hold the shutdown until --body-seconds): it then
    /// throws `DeadlineExceeded(shuttingDown: true)`.
    func reading<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await body() }
        let key = UUID()
        let cut = lock.withLock { () -> Bool in
            if !closed { reads[key] = { task.cancel() } }
            return closed
        }
        if cut { task.cancel() }
        defer { _ = lock.withLock { reads.removeValue(forKey: key) } }
        let value: T
        do { value = try await task.value } catch {
            if task.isCancelled { throw DeadlineExceeded(shuttingDown: true) }
            throw error
        }
        if task.isCancelled { throw DeadlineExceeded(shuttingDown: true) }     // a body cut short by the cancel
        return value
    }

    func add(_ source: EventSource) {
        let cut: Bool = lock.withLock {
            sources.removeAll { $0.source == nil }
            if !closed { sources.append(Weak(source: source)) }
            return closed
        }
        if cut { source.cut(DeadlineExceeded(shuttingDown: true)) }
    }

    func cutAll() {
        let (all, bodies): ([EventSource], [@Sendable () -> Void]) = lock.withLock {
            closed = true
            defer { sources = []; reads = [:] }
            return (sources.compactMap(\.source), Array(reads.values))
        }
        for s in all { s.cut(DeadlineExceeded(shuttingDown: true)) }
        for cancel in bodies { cancel() }
    }
}

/// A service's completion stream, re-emitted so that it can end at a deadline and be read by
/// the handler, then by the response body: `cancel` (or the deadline) stops the pump reading the
/// service's stream, which cancels the request in the service.
final class EventSource: @unchecked Sendable {
    private let lock = NSLock()
    private var iterator: AsyncThrowingStream<CompletionEvent, any Error>.AsyncIterator?
    private let out: AsyncThrowingStream<CompletionEvent, any Error>.Continuation
    private let pump: Task<Void, Never>
    private let watchdog: Task<Void, Never>

    init(_ source: AsyncThrowingStream<CompletionEvent, any Error>, seconds: Double) {
        let (stream, out) = AsyncThrowingStream<CompletionEvent, any Error>.makeStream()
        self.out = out
        iterator = stream.makeAsyncIterator()
        pump = Task {
            do {
                for try await e in source { out.yield(e) }
                out.finish()
            } catch { out.finish(throwing: error) }
        }
        let pump = self.pump
        watchdog = Task {
            try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
            if Task.isCancelled { return }
            out.finish(throwing: DeadlineExceeded())
            pump.cancel()
        }
    }

    /// Ends the stream with `error` after the events already in hand, and the request in the
    /// service.
    func cut(_ error: DeadlineExceeded) {
        out.finish(throwing: error)
        pump.cancel()
        watchdog.cancel()
    }

    deinit { cancel() }

    func next() async throws -> CompletionEvent? {
        guard var it = lock.withLock({ iterator }) else { return nil }
        let e = try await it.next()
        lock.withLock { if iterator != nil { iterator = it } }
        if e == nil { watchdog.cancel() }
        return e
    }

    /// Stops reading the service's stream, which cancels the request there.
    func cancel() {
        pump.cancel()
        watchdog.cancel()
        out.finish()
        lock.withLock { iterator = nil }
    }
}

/// Runs `body`, cancelling it after `seconds` (then throws DeadlineExceeded).
func withDeadline<T: Sendable>(_ seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask { try await Task.sleep(for: .milliseconds(Int(seconds * 1000))); return nil }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw DeadlineExceeded() }
        return value
    }
}

/// The Prometheus registry and the series `serve` exports.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let queued: Gauge, active: Gauge, tokensPerSecond: Gauge, largestBatch: Gauge
    let generated: Counter, disconnected: Counter, refusedConnections: Counter
    let ttft: DurationHistogram
    private let statuses = NSLock()
    private nonisolated(unsafe) var byStatus: [Int: Counter] = [:]

    init() {
        queued = registry.makeGauge(descriptor: Self.name("queue_depth", help: "Requests admitted but not started."))
        active = registry.makeGauge(descriptor: Self.name("active_requests", help: "Requests being prefilled or decoded."))
        largestBatch = registry.makeGauge(descriptor: Self.name("largest_batch", help: "The most requests one decode step has run together."))
        tokensPerSecond = registry.makeGauge(descriptor: Self.name("last_request_tokens_per_second",
                                                                   help: "Generated tokens per second of the last finished request."))
        generated = registry.makeCounter(descriptor: Self.name("generated_tokens", unit: "total",
                                                               help: "Tokens generated for all requests (also those cut off or whose client went away)."))
        disconnected = registry.makeCounter(descriptor: Self.name("client_disconnects", unit: "total",
                                                                  help: "Requests whose client went away before the answer ended (their generation was cancelled)."))
        refusedConnections = registry.makeCounter(descriptor: Self.name("refused_connections", unit: "total",
                                                                        help: "Connections answered 503 and closed: --max-connections were open."))
        ttft = registry.makeDurationHistogram(descriptor: Self.name("time_to_first_token", unit: "seconds", help: "From the request's arrival to its first event."),
                                              buckets: [.milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2),
                                                        .seconds(5), .seconds(10), .seconds(30), .seconds(60)])
    }

    /// internvl_<metric>[_<unit>].
    static func name(_ metric: String, unit: String = "", help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "internvl", metricName: metric, unitName: unit, helpText: help)
    }

    func count(status: Int) {
        let c: Counter = statuses.withLock {
            if let c = byStatus[status] { return c }
            let c = registry.makeCounter(descriptor: Self.name("requests", unit: "total", help: "Chat completion requests by HTTP status."),
                                         labels: [("status", String(status))])
            byStatus[status] = c
            return c
        }
        c.increment()
    }

    func firstToken(_ d: Duration) { ttft.record(d) }

    func completed(tokens: Int, time: Duration) {
        let s = time.seconds
        if s > 0 { tokensPerSecond.set(to: Double(tokens) / s) }
    }
}

/// The request context of `serve`'s routes: Hummingbird's, plus the connection, whose closing
/// cancels the request's generation.
struct ServeContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

import AsyncHTTPClient
import ChatAPI
import Foundation
import Imaging
import NIOCore
import NIOHTTP1

/// Where the server is and how to talk to it.
public struct RemoteConfiguration: Sendable {
    /// The server's address: `http://host:port`, with or without `/v1`.
    public var endpoint: String
    /// Sent as `Authorization: Bearer KEY`.
    public var apiKey: String?
    /// The served model's name; nil: the first one `GET /v1/models` lists.
    public var model: String?
    /// The system message; empty: none is sent, the server's template uses its own.
    public var systemMessage: String
    /// How images cost, when the model's config is known (else from the model's name, or hidden).
    public var imageCosting: ImageCosting?
    public var connectTimeoutSeconds = 10
    /// The longest silence while waiting for the answer (a CPU server prefilling images is slow).
    public var readTimeoutSeconds = 600

    public init(endpoint: String, apiKey: String? = nil, model: String? = nil, systemMessage: String = "",
                imageCosting: ImageCosting? = nil) {
        self.endpoint = endpoint; self.apiKey = apiKey; self.model = model; self.systemMessage = systemMessage
        self.imageCosting = imageCosting
    }

    /// The API root (`…/v1`) of `endpoint`, or nil when it is not an http(s) address.
    public static func apiRoot(_ endpoint: String) -> String? {
        var e = endpoint.trimmingCharacters(in: .whitespaces)
        guard let u = URL(string: e), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https",
              let host = u.host, !host.isEmpty, u.query == nil, u.fragment == nil else { return nil }
        while e.hasSuffix("/") { e.removeLast() }
        if e.hasSuffix("/chat/completions") { e.removeLast("/chat/completions".count) }
        return e.hasSuffix("/v1") ? e : e + "/v1"
    }
}

/// The chat backend over an OpenAI-compatible server (our `serve`, vLLM, LMDeploy). The server
/// keeps nothing between requests, so this backend keeps the conversation -- system message,
/// turns, the bytes of attached images -- and sends all of it with each turn, images as `data:`
/// URLs. Answers stream as server-sent events; `cancel()` aborts the request at once. What the
/// server cannot tell (tiles, token costs of an image) is computed from the model's config when
/// known and hidden otherwise (`AttachedImage.tokensPerTile == 0`).
///
/// Failures (unreachable server, timeouts, error statuses, a dropped stream) end a turn with
/// `.failed` and a sentence; the conversation stays as it was, except that an answer cut off
/// after some text is kept as an interrupted answer (as a cancel keeps it), so nothing shown is
/// lost.
public actor RemoteChatBackend: ChatBackend {
    struct StoredImage {
        let info: AttachedImage
        let bytes: [UInt8]
        /// The most tiles asked for at attach (sent to the server), nil: its default.
        let maxTiles: Int?
    }

    public let configuration: RemoteConfiguration
    /// `…/v1`.
    public let apiRoot: String
    private let client: HTTPClient
    public private(set) var turns: [ChatTurn] = []
    public private(set) var systemMessage: String
    private var images = HeldImages<StoredImage, String>()
    private var resolvedModel: String?
    /// The last answer's token ids when the server sent them (our `serve` does), nil when not.
    public private(set) var lastAnswerTokenIDs: [Int32]?
    private nonisolated let running = RunningRequest()

    public init(_ configuration: RemoteConfiguration) throws {
        guard let root = RemoteConfiguration.apiRoot(configuration.endpoint) else {
            throw RemoteError.badEndpoint(RemoteError.clean(configuration.endpoint))
        }
        self.configuration = configuration
        apiRoot = root
        systemMessage = configuration.systemMessage
        resolvedModel = configuration.model
        var c = HTTPClient.Configuration()
        c.timeout = .init(connect: .seconds(Int64(configuration.connectTimeoutSeconds)),
                          read: .seconds(Int64(configuration.readTimeoutSeconds)))
        c.redirectConfiguration = .disallow
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: c)
    }

    deinit { client.shutdown { _ in } }

    /// Aborts the running request (its connection is closed); safe from any thread.
    public nonisolated func cancel() { running.cancel() }

    public var modelIdentity: ModelIdentity {
        ModelIdentity(name: resolvedModel ?? configuration.model ?? "remote", configSHA256: "", weightFormat: "remote")
    }

    /// The served model's name: the one configured, else the first `GET /v1/models` lists.
    public func modelName() async throws -> String {
        if let m = resolvedModel { return m }
        var request = HTTPClientRequest(url: apiRoot + "/models")
        authorize(&request)
        let response = try await perform(request)
        let body = try await readAll(response.body, limit: 1 << 20)
        guard response.status == .ok else { throw statusError(response.status, body: body) }
        guard let first = OpenAIWire.modelIDs(body).first else { throw RemoteError.noModel(apiRoot) }
        resolvedModel = first
        return first
    }

    /// The costing of images for the served model, or nil (hidden).
    private func costing() async -> ImageCosting? {
        if let c = configuration.imageCosting { return c }
        guard let name = try? await modelName() else { return nil }
        return ImageCosting.known(modelName: name)
    }

    // MARK: images

    public func attach(path: String, maxTiles: Int?) async throws -> AttachedImage {
        try await attach(bytes: ImageDecoder.readFile(path: path), name: path, maxTiles: maxTiles, events: nil)
    }

    public func attachStreaming(path: String, maxTiles: Int?) -> AsyncStream<ChatEvent> {
        stream { s, c in
            c.yield(.attached(try await s.attach(bytes: ImageDecoder.readFile(path: path), name: path, maxTiles: maxTiles, events: c)))
        }
    }

    /// Decodes `bytes` here (to refuse what is not an image before it is sent, and for its size
    /// and thumbnail); the server gets the bytes as they are. Found again by content.
    func attach(bytes: [UInt8], name: String, maxTiles: Int?, events: AsyncStream<ChatEvent>.Continuation?) async throws -> AttachedImage {
        let sha = ContentHash.sha256(bytes)
        let key = "\(sha)/\(maxTiles.map(String.init) ?? "-")"
        if let e = images.find(key) { return e.info }
        events?.yield(.phase(.decodingImage(name: name)))
        let decoded = try ImageDecoder.decode(bytes: bytes, name: name)
        let cost = await costing()
        return images.add(key: key) { id in StoredImage(info: Self.info(id: id, name: name, decoded, sha: sha, cost: cost, maxTiles: maxTiles),
                                                         bytes: bytes, maxTiles: maxTiles) }.info
    }

    /// How an attached image is shown: its size, thumbnail and, when the served model's costing
    /// is known, its tiles and tokens.
    static func info(id: Int, name: String, _ decoded: RGBImage, sha: String, cost: ImageCosting?, maxTiles: Int?) -> AttachedImage {
        guard let cost else {
            var tiling = TilingOptions()
            if let m = maxTiles { tiling.maxTiles = m }
            return AttachedImage(id: id, name: name, width: decoded.width, height: decoded.height, tiles: 0, tokenCost: 0,
                                 grid: TileGrid(cols: 0, rows: 0), tiling: tiling, tokensPerTile: 0,
                                 thumbnail: decoded.thumbnail(fitting: 256), sha256: sha)
        }
        let tiling = cost.tiling(maxTiles: maxTiles)
        let plan = TilePlan(width: decoded.width, height: decoded.height, tiling: tiling, maxTiles: tiling.maxTiles,
                            tokensPerTile: cost.tokensPerTile)
        return AttachedImage(id: id, name: name, width: decoded.width, height: decoded.height, tiles: plan.tiles,
                             tokenCost: plan.tokenCost, grid: plan.grid, tiling: tiling, tokensPerTile: cost.tokensPerTile,
                             thumbnail: decoded.thumbnail(fitting: 256), sha256: sha)
    }

    public func release(imageIDs: [Int]) { images.release(imageIDs, shown: Set(turns.flatMap(\.imageIDs))) }

    func releaseUnused() { images.releaseUnshown(shown: Set(turns.flatMap(\.imageIDs))) }

    /// Images held (bytes kept to resend them).
    public var heldImageCount: Int { images.count }

    // MARK: conversation

    public func prefillAhead(images: [AttachedImage]) -> Int { 0 }      // the server prefills when asked

    public func setSystemMessage(_ text: String) { systemMessage = text }

    public var defaultSystemMessage: String { configuration.systemMessage }

    public func newConversation() {
        turns = []
        releaseUnused()
    }

    /// Starts from an existing conversation (as `generate --history`).
    public func setHistory(_ pairs: [(String, String)], imageIDs: [[Int]] = []) {
        turns = pairs.enumerated().map { k, p in
            ChatTurn(question: p.0, answer: p.1, imageIDs: k < imageIDs.count ? imageIDs[k] : [], interrupted: false)
        }
    }

    public func snapshot() -> SessionSnapshot {
        let (ids, pending) = images.snapshotOrder(turnImageIDs: turns.flatMap(\.imageIDs))
        let used = ids.compactMap { images[$0] }.map { SessionSnapshot.Image(info: $0.info, bytes: $0.bytes) }
        var s = SessionSnapshot(systemMessage: systemMessage, turns: turns, images: used, model: modelIdentity)
        s.pendingImageIDs = pending
        return s
    }

    public func restore(_ snapshot: SessionSnapshot) -> AsyncStream<ChatEvent> {
        stream { s, c in
            s.turns = []
            s.images.removeAll()
            s.systemMessage = snapshot.systemMessage
            var map: [Int: Int] = [:], now: [AttachedImage] = []
            do {
                for img in snapshot.images {
                    let maxTiles = img.info.tokensPerTile > 0 || img.info.tiling.maxTiles != TilingOptions().maxTiles
                        ? img.info.tiling.maxTiles : nil
                    let a = try await s.attach(bytes: img.bytes, name: img.info.name, maxTiles: maxTiles, events: c)
                    map[img.info.id] = a.id
                    now.append(a)
                }
                s.turns = try snapshot.turns.map { t in
                    var t = t
                    t.imageIDs = try t.imageIDs.map { id in
                        guard let n = map[id] else { throw Refusal("a turn shows image \(id), which the conversation does not hold") }
                        return n
                    }
                    return t
                }
            } catch {
                s.turns = []; s.images.removeAll()
                throw error
            }
            s.releaseUnused()
            c.yield(.restored(now))
        }
    }

    // MARK: turns

    public func send(_ question: String, typed: String, images: [AttachedImage], parameters: SamplingParameters) -> AsyncStream<ChatEvent> {
        let ids = images.map(\.id)
        return stream { s, c in
            try await s.runTurn(question: question, typed: typed, imageIDs: ids, parameters: parameters, replacing: false, events: c)
        }
    }

    public func regenerate(parameters: SamplingParameters) -> AsyncStream<ChatEvent> {
        stream { s, c in
            guard let last = s.turns.last else { throw Refusal("there is no answer to regenerate") }
            try await s.runTurn(question: Self.wireText(last), typed: last.typed, imageIDs: last.imageIDs, parameters: parameters,
                                replacing: true, events: c)
        }
    }

    public func editLast(_ question: String, typed: String, parameters: SamplingParameters) -> AsyncStream<ChatEvent> {
        stream { s, c in
            guard let last = s.turns.last else { throw Refusal("there is no question to edit") }
            try await s.runTurn(question: question, typed: typed, imageIDs: last.imageIDs, parameters: parameters, replacing: true, events: c)
        }
    }

    /// The messages of the conversation (without its last turn when `replacing`) and `question`.
    func messages(question: String, imageIDs: [Int], replacing: Bool) throws -> [OpenAIWire.Message] {
        var m: [OpenAIWire.Message] = []
        if !systemMessage.isEmpty { m.append(.init(role: "system", text: systemMessage)) }
        func images(_ ids: [Int]) throws -> [(bytes: [UInt8], maxTiles: Int?)] {
            try ids.map { id in
                guard let e = self.images[id] else { throw Refusal("image \(id) is not attached") }
                return (e.bytes, e.maxTiles)
            }
        }
        for t in replacing ? turns.dropLast() : turns[...] {
            m.append(.init(role: "user", text: Self.wireText(t), images: try images(t.imageIDs)))
            m.append(.init(role: "assistant", text: t.answer))
        }
        m.append(.init(role: "user", text: question, images: try images(imageIDs)))
        return m
    }

    /// An earlier turn's text as the server is sent it: a video's question with its
    /// `FrameK: <image>` lines (they place its frames), else the text typed (the server places the
    /// images; a question this app's local engine kept carries placeholders of its own).
    static func wireText(_ t: ChatTurn) -> String {
        ChatTurn.withoutVideoMarkers(t.question) != nil ? t.question : t.typed
    }

    /// The shortest time over which an answer's text came that is taken as its decode time.
    static let shortestMeasuredSpan = 0.05

    func runTurn(question: String, typed: String, imageIDs: [Int], parameters: SamplingParameters, replacing: Bool,
                 events: AsyncStream<ChatEvent>.Continuation) async throws {
        if let p = parameters.problem { throw Refusal(p) }
        let start = Date()
        let messages = try messages(question: question, imageIDs: imageIDs, replacing: replacing)
        let model = try await modelName()
        var request = HTTPClientRequest(url: apiRoot + "/chat/completions")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "text/event-stream")
        authorize(&request)
        request.body = .bytes(ByteBuffer(bytes: try OpenAIWire.requestBody(model: model, messages: messages, parameters: parameters)))

        var stats = TurnStats()
        lastAnswerTokenIDs = nil
        var answer = "", finish: String?, firstText: Date?, lastText: Date?
        /// Records what was answered (possibly cut off) and reports it finished.
        func keep(interrupted: Bool) {
            stats.text = answer
            stats.interrupted = interrupted
            stats.stoppedAtStopToken = finish == "stop"
            if let f = firstText, let l = lastText {
                stats.firstTokenSeconds = f.timeIntervalSince(start)
                stats.prefillSeconds = stats.firstTokenSeconds
                // The time over which the text came. Text that came at once (an answer not
                // streamed, or chunks held back on the way and read together) says nothing of
                // the server's speed: no decode time, so no rate (it showed 70,000 tok/s).
                let span = l.timeIntervalSince(f)
                stats.decodeSeconds = span >= Self.shortestMeasuredSpan ? span : 0
            }
            if replacing, !turns.isEmpty { turns.removeLast() }
            turns.append(ChatTurn(question: question, typed: typed, answer: answer, imageIDs: imageIDs, interrupted: interrupted,
                                  record: GenerationRecord(parameters: parameters, model: modelIdentity, stats: stats)))
            releaseUnused()
            events.yield(.finished(stats))
        }
        do {
            let response = try await perform(request)
            guard response.status == .ok else {
                throw statusError(response.status, body: try await readAll(response.body, limit: 64 << 10))
            }
            events.yield(.phase(.generating))
            func take(_ c: OpenAIWire.Chunk) throws {
                if let e = c.error { throw RemoteError.status(code: 200, reason: "OK", message: "the stream reported an error: " + e) }
                if !c.text.isEmpty {
                    lastText = Date()
                    if firstText == nil { firstText = lastText }
                    answer += c.text
                    events.yield(.text(c.text))
                }
                if let f = c.finishReason { finish = f }
                if let p = c.promptTokens { stats.promptTokens = p }
                if let n = c.completionTokens { stats.countedTokens = n }
                if let ids = c.tokenIDs { stats.generatedTokenIDs = ids; lastAnswerTokenIDs = ids }
            }
            var done = false
            if response.headers.first(name: "Content-Type")?.lowercased().contains("application/json") == true {
                try take(try OpenAIWire.parseChunk(try await readAll(response.body, limit: 64 << 20)))     // not streamed
                done = true
            } else {
                var parser = SSEParser()
                stream: for try await buffer in response.body {
                    for data in try parser.feed(buffer.readableBytesView) {
                        if data.elementsEqual("[DONE]".utf8) { done = true; break stream }
                        try take(try OpenAIWire.parseChunk(data))
                    }
                }
            }
            if Task.isCancelled { throw CancellationError() }
            guard done || finish != nil else { throw RemoteError.dropped(apiRoot) }
            keep(interrupted: false)
        } catch {
            let cancelled = Task.isCancelled
            if !answer.isEmpty { keep(interrupted: true) }
            if cancelled { throw CancellationError() }
            throw RemoteError.transport(error, url: apiRoot, readTimeout: configuration.readTimeoutSeconds)
        }
    }

    // MARK: HTTP

    private func authorize(_ r: inout HTTPClientRequest) {
        if let k = configuration.apiKey, !k.isEmpty { r.headers.add(name: "Authorization", value: "Bearer \(k)") }
    }

    /// Sends `request`; transport errors become sentences about the server.
    private func perform(_ request: HTTPClientRequest) async throws -> HTTPClientResponse {
        do { return try await client.execute(request, deadline: .distantFuture) } catch {
            if Task.isCancelled { throw CancellationError() }
            throw RemoteError.transport(error, url: apiRoot, readTimeout: configuration.readTimeoutSeconds)
        }
    }

    private func readAll(_ body: HTTPClientResponse.Body, limit: Int) async throws -> [UInt8] {
        var out: [UInt8] = []
        for try await b in body {
            out += b.readableBytesView.prefix(limit - out.count)
            if out.count >= limit { break }
        }
        return out
    }

    private func statusError(_ status: HTTPResponseStatus, body: [UInt8]) -> RemoteError {
        .status(code: Int(status.code), reason: RemoteError.clean(status.reasonPhrase), message: RemoteError.message(fromBody: body))
    }

    // MARK: streams

    /// Returns the event stream at once; `body` runs on the backend, its errors becoming
    /// `.failed` (a cancel ends the stream quietly). The request is the one `cancel()` aborts.
    private func stream(_ body: @escaping @Sendable (isolated RemoteChatBackend, AsyncStream<ChatEvent>.Continuation) async throws -> Void)
        -> AsyncStream<ChatEvent> {
        let (s, c) = AsyncStream<ChatEvent>.makeStream()
        let task = Task { await self.execute(body, c) }
        running.set(task)
        c.onTermination = { reason in if case .cancelled = reason { task.cancel() } }
        return s
    }

    private func execute(_ body: @Sendable (isolated RemoteChatBackend, AsyncStream<ChatEvent>.Continuation) async throws -> Void,
                         _ c: AsyncStream<ChatEvent>.Continuation) async {
        do { try await body(self, c) } catch {
            if !(error is CancellationError) && !Task.isCancelled {
                c.yield(.failed(RemoteError.clean((error as? LocalizedError)?.errorDescription ?? "\(error)")))
            }
        }
        c.finish()
    }
}

/// A request refused before anything is sent.
struct Refusal: LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}

/// The task of the request running now, which `cancel()` ends from any thread.
final class RunningRequest: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, Never>?
    func set(_ t: Task<Void, Never>) { lock.withLock { task = t } }
    func cancel() { lock.withLock { task }?.cancel() }
}

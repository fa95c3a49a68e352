import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import OpenAIAPI

/// Closes a connection whose client closed its sending side: HTTP clients do that only when
/// they give up (as nginx treats it), and Hummingbird would otherwise keep answering, and
/// generating for, a half-closed connection until the answer is written.
final class ClientGoneHandler: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPRequestPart

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}

/// The server's connections as a shutdown sees them. From the first signal (`stop`) every
/// request that starts is refused with 503; a connection idle at that moment stays open until
/// the shutdown window ends (`endWindow`), so that a request its client sent on it just then gets
/// that answer (with `Connection: close`) instead of a closed connection.
///
/// It also caps how many are open at once (`limit`): one more is refused as it arrives
/// (`Refusal`), and counted (`refused`); at most `lingerLimit` refused ones are kept open to be
/// answered, those beyond are closed unanswered.
final class Connections: @unchecked Sendable {
    private struct Weak { weak var channel: (any Channel)? }
    private let lock = NSLock()
    private var channels: [Weak] = []
    private var stopping = false
    private var open = 0, lingering = 0
    let limit: Int
    let lingerLimit = 64
    let refused: @Sendable () -> Void
    /// What a refused connection is answered (the same bytes for every one).
    let refusal: String

    init(limit: Int = .max, refused: @escaping @Sendable () -> Void = {}) {
        self.limit = limit; self.refused = refused
        let error = APIError(503, "All \(limit) connections this server takes (--max-connections) are open; try again shortly.",
                             type: "server_error", code: "too_many_connections")
        let body = String(decoding: OpenAIServer.encoded(error.body), as: UTF8.self)
        refusal = "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n"
            + "retry-after: 1\r\nconnection: close\r\n\r\n" + body
    }

    var isStopping: Bool { lock.withLock { stopping } }

    func stop() { lock.withLock { stopping = true } }

    /// Counts `channel` in until it closes, unless `limit` connections are open already (then false).
    func add(_ channel: any Channel) -> Bool {
        counts(channel, in: \.open, below: limit) {
            channels.removeAll { $0.channel == nil }
            channels.append(Weak(channel: channel))
        }
    }

    /// Counts a refused `channel` among those kept open to be answered until it closes, unless
    /// `lingerLimit` are (then false: it is closed at once).
    func lingerRefused(_ channel: any Channel) -> Bool { counts(channel, in: \.lingering, below: lingerLimit) }

    /// Adds `channel` to `count` until it closes (and runs `also` under the lock), unless the count
    /// is at `bound` (then false).
    private func counts(_ channel: any Channel, in count: ReferenceWritableKeyPath<Connections, Int>, below bound: Int,
                        also: () -> Void = {}) -> Bool {
        let taken = lock.withLock {
            guard self[keyPath: count] < bound else { return false }
            self[keyPath: count] += 1
            also()
            return true
        }
        if taken { channel.closeFuture.whenComplete { [self] _ in lock.withLock { self[keyPath: count] -= 1 } } }
        return taken
    }

    /// Closes the connections kept open for the window: idle ones at once, the others after
    /// their answer.
    func endWindow() {
        let all = lock.withLock { channels.compactMap(\.channel) }
        for channel in all { channel.pipeline.fireUserInboundEventTriggered(WindowEnded()) }
    }

    struct WindowEnded: Sendable {}
}

/// HTTP/1 details that Hummingbird's HTTP types lose (they drop the request's version) or leave
/// out, handled before their codec: Hummingbird adds this handler after the codec, and this
/// handler puts an `HTTP1Details.Handler` there in its place.
///
/// - HTTP/1.0 clients (ApacheBench, old libraries) know neither chunked bodies nor persistent
///   connections unless they ask: their answers go out as HTTP/1.0 (NIO's encoder then frames a
///   stream by the connection's close), and the connection closes after each.
/// - `Expect: 100-continue` (curl's for bodies over 1 MB, such as an image) gets its
///   `100 Continue` at once when the body will be read (`readsBody`); without it curl waits a
///   second before it sends the body. A request refused from its head (key, media type, length,
///   path, shutdown) gets its final answer instead, with `Connection: close`, and the connection
///   closes after it: the client does not send the body, and the server does not wait for it.
/// - At a shutdown (NIO's quiesce event) a connection with a request under way closes after its
///   answer, which says `Connection: close` when its head is still to be written; an idle one
///   stays open until `Connections.endWindow`, and a request on it gets its answer (503) with
///   `Connection: close`.
/// - An `Expect` other than 100-continue cannot be met: the request is marked for the route to
///   answer 417 (`RefusalsFromTheHead`), unread, the connection closing after it.
/// - An HTTP/1.1 request without exactly one `Host` field (RFC 9112 3.2) is marked for the route
///   to answer 400, unread, the connection closing after it.
/// - A request that declares a body over the limit (`maxBodyBytes`) is answered 413 from its
///   head, unread: with `Connection: close`, the connection closing after it. What comes of its
///   body meanwhile is dropped as it arrives, so a client that sends it all before reading (as
///   most do) is not stalled and then gets the answer.
/// - An answer that starts before the request's body has all come (a chunked body over the limit,
///   a refusal of a body that is still arriving) says `Connection: close`; the rest of the body
///   is dropped as it comes, the server ends its side after the answer and closes once the client
///   has sent it all or closed, or after `Refusal.lingerSeconds`: a client that keeps sending is
///   not read from for ever, and one that reads only after sending still gets the answer.
/// - A request HTTP's parser refuses (a `Content-Length` that is no number, header fields over
///   Hummingbird's limit) gets Hummingbird's 400 with the error body every other answer has.
final class HTTP1Details: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = HTTPRequestPart
    let connections: Connections
    let readsBody: @Sendable (HTTPRequestHead) -> Bool
    /// The largest body read (`--max-body-mb`).
    let maxBodyBytes: Int
    /// The request field that tells the route what was decided from the head: "continued" (the
    /// body will come), "refused" (it will not: the route answers without reading it), "unmet"
    /// (an expectation other than 100-continue: 417, unread) or "hostless" (HTTP/1.1 without
    /// exactly one `Host`: 400, unread). A client's own is removed.
    static let continueDecision = "x-internvl-continue"

    init(connections: Connections, maxBodyBytes: Int, readsBody: @escaping @Sendable (HTTPRequestHead) -> Bool) {
        self.connections = connections
        self.maxBodyBytes = maxBodyBytes
        self.readsBody = readsBody
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        if let codec = try? pipeline.handler(type: HTTP1ToHTTPServerCodec.self) {
            guard connections.add(context.channel) else {
                connections.refused()
                if connections.lingerRefused(context.channel) {
                    try? pipeline.addHandler(Refusal(answer: connections.refusal), position: .first)
                } else {
                    // Set up before it is registered: closed once it is (the next turn of its loop).
                    let channel = context.channel
                    channel.eventLoop.execute { channel.close(promise: nil) }
                }
                pipeline.removeHandler(context: context, promise: nil)
                return
            }
            try? pipeline.addHandler(Handler(maxBodyBytes: maxBodyBytes, readsBody: readsBody), position: .before(codec))
        }
        pipeline.removeHandler(context: context, promise: nil)
    }

    final class Handler: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias InboundOut = HTTPServerRequestPart
        typealias OutboundIn = HTTPServerResponsePart
        typealias OutboundOut = HTTPServerResponsePart

        let readsBody: @Sendable (HTTPRequestHead) -> Bool
        let maxBodyBytes: Int
        // Touched on the channel's event loop only.
        /// Whether the request being answered is HTTP/1.0.
        private var http10 = false
        /// Whether the answer being written ends the connection.
        private var closing = false
        /// Whether the body of the request being read is dropped as it comes (nothing will read it).
        private var unread = false
        /// Requests whose end has been read, and whose answers have been written (a pipelined
        /// request may be read while the one before it is answered); whether Hummingbird closes
        /// the connection after answering the request last read (it says `Connection: close`).
        private var ended = 0, answered = 0, requestCloses = false
        /// Whether the body of the request being answered has all come.
        private var answeringEnded: Bool { ended > answered }
        /// Answered before its body had come: everything read from now on is dropped, and the
        /// connection closes (`abandon`).
        private var abandoned = false
        /// The close after `Refusal.lingerSeconds`, set once an abandoned request's answer is written.
        private var linger: Scheduled<Void>?
        /// Requests read whose answers have not ended.
        private var unanswered = 0
        /// The server is stopping; `heldQuiesce`: the quiesce event not yet passed on to
        /// Hummingbird's connection state (which would close the idle connection at once).
        private var draining = false, heldQuiesce = false
        /// Why HTTP's parser refused the request being read; Hummingbird answers it with an empty 400.
        private var malformed: HTTPParserError?

        init(maxBodyBytes: Int, readsBody: @escaping @Sendable (HTTPRequestHead) -> Bool) {
            self.maxBodyBytes = maxBodyBytes
            self.readsBody = readsBody
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let part = unwrapInboundIn(data)
            if case .end = part { ended += 1 }
            if abandoned {
                // Its answer written (`linger` set), the body it waited for has come: done.
                if answeringEnded, linger != nil { context.close(promise: nil) }
                return
            }
            guard case .head(var head) = part else {
                if unread, case .body = part { return }
                return context.fireChannelRead(data)
            }
            unanswered += 1
            http10 = head.version.major == 1 && head.version.minor == 0
            closing = http10 || draining
            // Answered 413 from the head (or refused sooner, for its key or media type): unread.
            unread = OpenAIServer.declaresMore(head.headers["content-length"].first, than: maxBodyBytes)
            if unread { closing = true }
            head.headers.remove(name: HTTP1Details.continueDecision)          // only this handler says
            let expected = head.headers["expect"].flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            // What the route answers from the head alone, the body unread and the connection closed after it.
            var answeredUnread: String?
            if !http10 && head.headers["host"].count != 1 {
                answeredUnread = "hostless"
            } else if expected.contains(where: { $0 != "100-continue" }) {
                answeredUnread = "unmet"
            } else if !http10, !expected.isEmpty {
                head.headers.remove(name: "expect")
                if !draining && readsBody(head) {
                    context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
                    head.headers.add(name: HTTP1Details.continueDecision, value: "continued")
                } else {
                    answeredUnread = "refused"
                }
            }
            if let decision = answeredUnread {
                closing = true
                unread = true
                head.headers.add(name: HTTP1Details.continueDecision, value: decision)
            }
            // Hummingbird ends the connection after answering a request that says so, without
            // waiting for the rest of its body.
            if closing { head.headers.replaceOrAdd(name: "connection", value: "close") }
            requestCloses = head.headers[canonicalForm: "connection"].contains { $0.lowercased() == "close" }
            context.fireChannelRead(wrapInboundOut(.head(head)))
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            switch unwrapOutboundIn(data) {
            case .head(var head) where head.status.code >= 200:
                if http10 { head.version = .http1_0 }
                if !answeringEnded && !requestCloses {
                    abandoned = true
                    closing = true
                }
                if closing || draining { head.headers.replaceOrAdd(name: "connection", value: "close") }
                if let e = malformed, head.status == .badRequest, head.headers["content-length"] == ["0"] {
                    malformed = nil
                    let body = ByteBuffer(bytes: OpenAIServer.encoded(APIError(400, Self.sentence(e), code: "malformed_request").body))
                    head.headers.replaceOrAdd(name: "content-type", value: "application/json")
                    head.headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
                    context.write(wrapOutboundOut(.head(head)), promise: nil)
                    context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: promise)
                    return
                }
                context.write(wrapOutboundOut(.head(head)), promise: promise)
            case .end:
                unanswered = max(0, unanswered - 1)
                context.write(data, promise: promise)
                if abandoned { abandon(context) } else { answered += 1 }
            default:
                context.write(data, promise: promise)
            }
        }

        /// After the answer to a request whose body had not all come: the server's side ends, and
        /// the connection closes at once when the body has come since, else when the client
        /// closes or after `Refusal.lingerSeconds` (closing with unread bytes would reset the
        /// connection, and a client still sending could lose the answer).
        private func abandon(_ context: ChannelHandlerContext) {
            context.flush()
            if answeringEnded { return context.close(promise: nil) }
            context.close(mode: .output, promise: nil)
            let channel = context.channel
            linger = channel.eventLoop.scheduleTask(in: .seconds(Refusal.lingerSeconds)) { channel.close(promise: nil) }
        }

        func channelInactive(context: ChannelHandlerContext) {
            linger?.cancel()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            if let e = error as? HTTPParserError { malformed = e }
            context.fireErrorCaught(error)
        }

        /// What is wrong with a request HTTP's parser refused, as a sentence.
        static func sentence(_ e: HTTPParserError) -> String {
            switch e {
            case .headerOverflow:
                let limit = HTTP1Channel.Configuration.DecoderConfiguration().maxHeaderListSize >> 10
                return "The request's header fields are too large: \(limit) KB at most."
            case .invalidContentLength: return "The request's Content-Length is not a length."
            case .invalidChunkSize: return "A chunk of the request's body has an invalid size."
            case .invalidMethod, .invalidURL, .invalidVersion, .invalidHeaderToken, .invalidCharactersUsed:
                return "The request line or a header field is malformed."
            default: return "The request is not valid HTTP/1.1."
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            switch event {
            case is ChannelShouldQuiesceEvent:
                draining = true
                if unanswered == 0 { heldQuiesce = true } else { context.fireUserInboundEventTriggered(event) }
            case is Connections.WindowEnded:
                if heldQuiesce {
                    heldQuiesce = false
                    context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
                }
            default:
                context.fireUserInboundEventTriggered(event)
            }
        }
    }
}

/// A connection beyond `--max-connections`: at the front of its pipeline, so that nothing it sends
/// reaches HTTP, it answers 503 (an OpenAI-shaped error with `Retry-After`) as soon as the
/// connection is up, ends its side, and closes once the client has closed its own or after
/// `lingerSeconds` (what a client sent is read and dropped meanwhile: closing a socket with unread
/// bytes resets it, and the client could lose the answer).
final class Refusal: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    static let lingerSeconds: Int64 = 2
    let answer: String
    /// The close after `lingerSeconds`, cancelled when the connection ends sooner.
    private var linger: Scheduled<Void>?

    init(answer: String) { self.answer = answer }

    func handlerAdded(context: ChannelHandlerContext) { if context.channel.isActive { refuse(context) } }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}

    func channelInactive(context: ChannelHandlerContext) {
        linger?.cancel()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }

    private func refuse(_ context: ChannelHandlerContext) {
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: answer))).whenComplete { _ in channel.close(mode: .output, promise: nil) }
        linger = channel.eventLoop.scheduleTask(in: .seconds(Self.lingerSeconds)) { channel.close(promise: nil) }
    }
}

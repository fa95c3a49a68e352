import ArgumentParser
import Chat
import ChatAPI
import Checkpoint
import Foundation
import OpenAIAPI
import Server
import Serving
import ServingAPI
import Tokenizer

/// `internvl-chat serve`: the model behind an OpenAI-compatible HTTP API (docs/serving.md).
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over an OpenAI-compatible HTTP API (POST /v1/chat/completions).",
        discussion: "Listens on 127.0.0.1:8000 unless told otherwise. docs/serving.md has the API, limits and metrics.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var weightOptions: WeightOptions
    @Option(help: "Address to listen on (a non-loopback address without --api-key is served with a warning).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port, printed at start).") var port = 8000
    @Option(help: "Required API key (Authorization: Bearer KEY); default $INTERNVL_CHAT_API_KEY.") var apiKey: String?
    @Option(help: "Image parts may name files (paths or file:// URLs) inside this folder only.") var allowLocalFiles: String?
    @Option(help: "Name /v1/models lists (default: the model folder's name).") var servedModelName: String?
    @Option(help: "Context length per request.") var context = 8192
    @Option(help: "Requests decoded together.") var maxBatch = 8
    @Option(help: "Requests waiting beyond the batch; more are refused with 429.") var maxQueue = 64
    @Option(help: "Largest request body in MB.") var maxBodyMb = 64
    @Option(help: "Images per request.") var maxImages = 8
    @Option(help: "Tiles per request, over all its images.") var maxTilesPerRequest = 40
    @Option(help: "Largest max_tokens.") var maxTokens = 4096
    @Option(help: "Seconds a request may run (its answer then ends with finish_reason length).") var requestSeconds = 600.0
    @Option(help: "Seconds a client may take to send its request body (408 after).") var bodySeconds = 30.0
    @Option(help: "Seconds running answers get to end after SIGTERM or SIGINT (a second signal: none).") var shutdownSeconds = 5.0
    @Option(help: "Connections open at once; one more is answered 503 and closed.") var maxConnections = 256

    /// Limits that could not work are refused before the model loads: a port past 65535 would
    /// wrap to another, no batch would hang every request, and times must be finite numbers of
    /// seconds (they become nanosecond integers).
    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535, got \(port)") }
        if apiKey == "" { throw ValidationError("--api-key cannot be empty (no client could send it); leave it out to serve without a key") }
        for (name, value, least) in [("--max-batch", maxBatch, 1), ("--max-queue", maxQueue, 0), ("--max-body-mb", maxBodyMb, 1),
                                     ("--max-images", maxImages, 0), ("--max-tiles-per-request", maxTilesPerRequest, 1),
                                     ("--max-tokens", maxTokens, 1), ("--max-connections", maxConnections, 1), ("--context", context, 1)]
        where value < least {
            throw ValidationError("\(name) must be at least \(least), got \(value)")
        }
        guard maxBodyMb <= 1 << 20 else { throw ValidationError("--max-body-mb must be at most \(1 << 20), got \(maxBodyMb)") }
        for (name, value) in [("--request-seconds", requestSeconds), ("--body-seconds", bodySeconds), ("--shutdown-seconds", shutdownSeconds)]
        where !(value.isFinite && value > 0 && value <= 1e7) {
            throw ValidationError("\(name) must be a number of seconds above 0 and at most 10000000, got \(value)")
        }
    }

    func run() throws {
        try reportingErrors {
            let folder = try modelOptions.locate()
            var options = ServerOptions()
            options.host = host
            options.port = port
            options.apiKey = apiKey ?? ProcessInfo.processInfo.environment["INTERNVL_CHAT_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
            if let dir = allowLocalFiles {
                var isDir: ObjCBool = false
                guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
                    throw ValidationError("--allow-local-files \(TerminalText.sanitize(dir)) is not a folder")
                }
                options.allowedFolder = URL(fileURLWithPath: dir)
            }
            options.modelName = servedModelName ?? ModelLocator.displayName(folder)
            options.maxBodyBytes = maxBodyMb << 20
            options.maxTokens = maxTokens
            options.requestSeconds = requestSeconds
            options.bodySeconds = bodySeconds
            options.shutdownSeconds = shutdownSeconds
            options.maxConnections = maxConnections
            if !options.isLoopback && options.apiKey == nil {
                writeStderr("warning: serving on \(TerminalText.sanitize(host)) without --api-key: anyone who can reach this port can use the model\n")
            }
            if let problem = Self.cannotListen(host: host, port: port) { throw ValidationError(problem) }
            writeStderr("Loading \(TerminalText.sanitize(folder.path))…\n")
            let engine = try weightOptions.engine(folder, context: context)
            options.promptLimit = PromptLimit(tokens: engine.contextLength, bytesPerToken: Self.longestPieceBytes(engine.tokenizer))
            var limits = SchedulerLimits()
            limits.maxBatch = maxBatch
            limits.maxQueue = maxQueue
            limits.maxImages = maxImages
            limits.maxTiles = maxTilesPerRequest
            let scheduler = EngineScheduler(engine: engine, modelName: options.modelName, limits: limits)
            let server = OpenAIServer(service: scheduler, options: options)
            let host = TerminalText.sanitize(options.host), name = TerminalText.sanitize(options.modelName)
            try blocking {
                try await server.run { port in
                    writeStderr("serving \(name) on http://\(host):\(port)/v1\n")
                }
            }
            scheduler.shutdown()
        }
    }

    /// Why `host:port` cannot be listened on (in use, not an address of this machine), found by
    /// binding it once before the model loads, so that the answer does not wait for the load.
    static func cannotListen(host: String, port: Int) -> String? {
        guard port != 0 else { return nil }
        var hints = addrinfo(); hints.ai_socktype = Int32(SOCK_STREAM.rawValue); hints.ai_flags = AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &list) == 0, let first = list else {
            return "--host \(TerminalText.line(host)) is not an address this machine can listen on"
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let e = errno
            return e == EADDRINUSE ? "port \(port) on \(TerminalText.line(host)) is in use by another program (--port N, or 0 for any free one)"
                                   : "cannot listen on \(TerminalText.line(host)):\(port): \(String(cString: strerror(e)))"
        }
        return nil
    }

    /// The most bytes of text one token covers: the vocabulary's longest piece, or 64 bytes
    /// (added tokens such as `<|im_start|>` decode to nothing).
    static func longestPieceBytes(_ tokenizer: any Tokenizer) -> Int {
        var longest = 64
        for id in 0..<Int32(tokenizer.vocabularySize) { longest = max(longest, tokenizer.decode([id]).utf8.count + 1) }
        return longest
    }
}

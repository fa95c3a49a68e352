import ChatAPI
import Chat
import Foundation
import Imaging
import Kernels
import Model
import ServingAPI
import Tokenizer

/// Limits of an `EngineScheduler`, each refusing a request with a clear message when exceeded.
public struct SchedulerLimits: Sendable {
    /// Requests decoded together in one step (the batch).
    public var maxBatch = 8
    /// Requests admitted beyond the free places of the batch; one more is refused as overloaded.
    public var maxQueue = 64
    /// Images in one request.
    public var maxImages = 8
    /// Tiles over all images of one request.
    public var maxTiles = 40
    /// Positions of one prompt prefilled between two decode steps of the running requests.
    public var prefillChunk = 256
    /// Finished requests whose KV caches are kept for prefix reuse.
    public var cachedConversations = 4
    public init() {}
}

/// Answers completions on one engine, many at once: a compute thread of its own runs a loop that
/// prefills a chunk of the next waiting request, then decodes one token for every running request
/// together (`LanguageModel.forwardBatch`, the layer weights read once per step for all of them),
/// so new requests start while running streams keep flowing. A prompt that begins as a finished
/// one did (the same system prompt and images, or a client resending the growing conversation)
/// continues from that request's KV cache; images are encoded once per content and tile count.
public final class EngineScheduler: CompletionService, @unchecked Sendable {
    public let engine: ChatEngine
    public let modelName: String
    public let limits: SchedulerLimits

    private let lock = NSCondition()
    private var waiting: [Job] = []
    private var running: [Job] = []
    private var prefilling: Job?
    private var finishedCaches: [(signatures: [UInt64], cache: KVCache)] = []
    private var encoded: [String: [Float]] = [:]
    private var encodedOrder: [String] = []
    /// Images encoded and kept for reuse.
    var encodedImages: Int { lock.withLock { encoded.count } }
    private var stopping = false
    private var largestBatch = 0
    private var generatedTokens = 0
    private var tokenObservers: [@Sendable (Int) -> Void] = []
    private var stepTimes: [Int: DecodeSteps] = [:]

    public init(engine: ChatEngine, modelName: String, limits: SchedulerLimits = SchedulerLimits()) {
        self.engine = engine
        self.modelName = modelName
        self.limits = limits
        let thread = Thread { [self] in loop() }
        thread.name = "scheduler"
        thread.stackSize = 8 << 20
        thread.start()
    }

    /// Ends the compute thread after the work in hand; later requests are refused.
    public func shutdown() { lock.withLock { stopping = true; lock.signal() } }

    public func status() async -> ServiceStatus {
        lock.withLock {
            ServiceStatus(queued: waiting.count, active: running.count + (prefilling == nil ? 0 : 1), largestBatch: largestBatch,
                          generatedTokens: generatedTokens)
        }
    }

    public func complete(_ request: CompletionRequest) -> AsyncThrowingStream<CompletionEvent, any Error> {
        let (stream, out) = AsyncThrowingStream<CompletionEvent, any Error>.makeStream()
        let job = Job(request: request, out: out)
        out.onTermination = { [weak self, job] _ in self?.cancel(job) }
        let refused: String? = lock.withLock {
            if let why = refusal() { return why }
            waiting.append(job)
            lock.signal()
            return nil
        }
        if let refused { out.finish(throwing: CompletionError.overloaded(refused)) }
        return stream
    }

    public func admissionRefusal() -> String? { lock.withLock { refusal() } }

    public func observeGeneratedTokens(_ observer: @escaping @Sendable (Int) -> Void) {
        lock.withLock { tokenObservers.append(observer) }
    }

    /// Why one more request is refused now (under the lock).
    private func refusal() -> String? {
        if stopping { return "The server is shutting down." }
        // Requests that a free place in the batch will take at once are not waiting for one.
        let free = max(0, limits.maxBatch - running.count - (prefilling == nil ? 0 : 1))
        if waiting.count >= limits.maxQueue + free {
            return "The server is busy: \(waiting.count) requests are waiting (the queue holds \(limits.maxQueue)). Retry later."
        }
        return nil
    }

    /// Decode steps run so far, by how many requests each decoded together, with their time
    /// (the model's batched forward and the sampling of every row; prefill not included).
    public func decodeSteps() -> [Int: DecodeSteps] { lock.withLock { stepTimes } }

    /// Forgets the decode-step statistics (a benchmark's next round).
    public func resetDecodeSteps() { lock.withLock { stepTimes = [:] } }

    private func cancel(_ job: Job) {
        lock.withLock {
            job.cancelled = true
            waiting.removeAll { $0 === job }
            lock.signal()
        }
    }

    // MARK: - The compute thread

    private func loop() {
        while true {
            lock.lock()
            while waiting.isEmpty && running.isEmpty && prefilling == nil && !stopping { lock.wait() }
            if stopping && waiting.isEmpty && running.isEmpty && prefilling == nil { lock.unlock(); return }
            running.removeAll { $0.cancelled }
            if prefilling?.cancelled == true { prefilling = nil }
            if prefilling == nil, running.count < limits.maxBatch, !waiting.isEmpty { prefilling = waiting.removeFirst() }
            let next = prefilling
            lock.unlock()

            if let job = next { advancePrefill(job) }
            stepRunning()
        }
    }

    /// One decode step for the requests running now (those that finished or were cancelled during
    /// a prefill's work are no longer among them); false when none runs.
    @discardableResult
    private func stepRunning() -> Bool {
        let batch = lock.withLock { running.removeAll { $0.cancelled }; return running }
        if batch.isEmpty { return false }
        step(batch)
        return true
    }

    /// The end and length of the last decode step: an image's encoding lets the running requests
    /// take a step once as long has passed since it ended, so both go on at about half speed.
    private var lastStep: (end: ContinuousClock.Instant, took: Duration)?

    /// Between two parts of an image's encoding (`shouldStop` of the vision encoder, a few times a
    /// layer and tile): the running requests' decode step when it is their turn. Says whether
    /// `job` was cancelled.
    private func encodingPause(_ job: Job) -> Bool {
        if lastStep.map({ $0.end.duration(to: .now) >= $0.took }) ?? true { stepRunning() }
        return lock.withLock { job.cancelled }
    }

    /// `work` on a thread of its own (an image's decoding and tiling, which can take seconds for a
    /// large picture), while this thread keeps the running requests decoding.
    private func besideDecoding<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> T {
        let outcome = Handoff<T>(), done = DispatchSemaphore(value: 0)
        DispatchQueue.global(qos: .userInitiated).async {
            outcome.result = Result { try work() }
            done.signal()
        }
        while done.wait(timeout: .now()) == .timedOut {
            if !stepRunning() { done.wait(); break }
        }
        return try outcome.result!.get()
    }

    /// One chunk of `job`'s prefill (preparing its prompt and images first); once its prompt is in,
    /// its first token is taken and it joins the running requests.
    private func advancePrefill(_ job: Job) {
        do {
            if job.prompt == nil { try prepare(job) }
            guard let prompt = job.prompt, let cache = job.cache else { return }
            let upTo = min(prompt.count, cache.count + limits.prefillChunk)
            let logits = engine.prefill(prompt, images: [job.imageTokens], upTo: upTo, cache: cache,
                                        logits: upTo == prompt.count ? .last : .none, shouldStop: { job.cancelled })
            if job.cancelled { return dropPrefilling(job) }
            guard upTo == prompt.count, let logits else { return }
            if take(job, logits: logits) { lock.withLock { prefilling = nil; if !job.cancelled { running.append(job) } } }
        } catch {
            lock.withLock { prefilling = nil }
            if error is CancellationError { return job.out.finish() }        // its image's encoding stopped: the client is gone
            job.out.finish(throwing: error as? CompletionError ?? CompletionError.engineFailure("\(error)"))
        }
    }

    private func dropPrefilling(_ job: Job) { lock.withLock { if prefilling === job { prefilling = nil } } }

    /// One decode step for the running requests: the tokens they took, through the model together.
    private func step(_ batch: [Job]) {
        let live = batch.filter { !$0.cancelled }
        guard !live.isEmpty else { return }
        lock.withLock { largestBatch = max(largestBatch, live.count) }
        let started = ContinuousClock.now
        defer {
            let end = ContinuousClock.now, d = started.duration(to: end)
            lastStep = (end, d)
            lock.withLock { stepTimes[live.count, default: DecodeSteps()].add(d) }
        }
        let h = engine.model.hidden
        let x = FloatBuffer(count: live.count * h)
        engine.model.embed(live.map { $0.pending }, into: x.data)
        for j in live { j.fed.append(UInt64(UInt32(bitPattern: j.pending))) }
        let logits = engine.model.forwardBatch(embeddings: x.data, caches: live.map { $0.cache! })
        let vocab = logits.count / live.count
        for (k, j) in live.enumerated() {
            let row = UnsafeBufferPointer(rebasing: logits[(k * vocab)..<((k + 1) * vocab)])
            _ = take(j, logits: row)
        }
    }

    /// Takes `job`'s next token from `logits` and streams its text; says whether it goes on
    /// (false: finished, its place freed and its stream ended by `finish`).
    private func take(_ job: Job, logits: UnsafeBufferPointer<Float>) -> Bool {
        let s = job.stepper!.step(logits: logits, cached: job.cache!.count)
        if s.token != nil {                                                 // counted whether or not the answer is read to its end
            let observers = lock.withLock { generatedTokens += 1; return tokenObservers }
            for observe in observers { observe(1) }
        }
        if !s.text.isEmpty { job.out.yield(.text(s.text)) }
        if let reason = s.finish { finish(job, reason); return false }
        job.pending = s.token!
        return true
    }

    private func finish(_ job: Job, _ reason: TokenStepper.Finish) {
        let rest = job.stepper!.end()
        if !rest.isEmpty { job.out.yield(.text(rest)) }
        let ids = job.stepper!.tokenIDs
        let usage = CompletionUsage(promptTokens: job.prompt!.count, completionTokens: ids.count, cachedPromptTokens: job.reused)
        job.out.yield(.finished(reason == .length ? .length : .stop, usage, tokenIDs: ids))
        // The cache is kept and the place freed before the stream ends: a client may send its
        // next request (the same conversation, one turn longer) as soon as it has this answer.
        keep(signatures: job.prompt!.signatures + job.fed, cache: job.cache!)
        lock.withLock {
            running.removeAll { $0 === job }
            if prefilling === job { prefilling = nil }
        }
        job.out.finish()
    }

    // MARK: - Prompts, images, reuse

    public func problem(with request: CompletionRequest) -> CompletionError? {
        do { _ = try Self.conversation(of: request, maxImages: limits.maxImages) } catch { return error }
        return nil
    }

    /// A request's conversation as the prompt builder takes it, checked as far as it can be
    /// without the engine: the sampling values, the messages' order and placeholders, and the
    /// images' number and file signatures.
    static func conversation(of r: CompletionRequest, maxImages: Int) throws(CompletionError)
        -> (system: String?, turns: [ChatTemplate.Message], images: [CompletionRequest.Image]) {
        if let p = r.parameters.problem { throw CompletionError.invalidRequest("Invalid sampling parameters: \(p).") }
        var messages = r.messages[...]
        var system: String?
        while let m = messages.first, m.role == .system {
            guard m.images.isEmpty else { throw CompletionError.invalidRequest("A system message cannot carry images.") }
            system = (system.map { $0 + "\n" } ?? "") + m.text
            messages = messages.dropFirst()
        }
        guard let last = messages.last else {
            throw CompletionError.invalidRequest("The conversation has no user or assistant message after the system message.")
        }
        guard !last.text.isEmpty || !last.images.isEmpty else {
            throw CompletionError.invalidRequest("The last message is empty.")
        }
        var turns: [ChatTemplate.Message] = [], images: [CompletionRequest.Image] = []
        for (k, m) in zip((r.messages.count - messages.count + 1)..., messages) {
            switch m.role {
            case .user:
                let text = Self.placingImages(m)
                guard ImagePrompt.count(in: text) == m.images.count else {
                    throw CompletionError.invalidRequest("Message \(k) has \(m.images.count) image(s) but \(ImagePrompt.count(in: text)) <image> placeholder(s).")
                }
                turns.append(.user(text))
                images += m.images
            case .assistant, .system:
                guard m.images.isEmpty else { throw CompletionError.invalidRequest("Message \(k) (\(m.role.rawValue)) cannot carry images.") }
                turns.append(m.role == .assistant ? ChatTemplate.Message.assistant(m.text) : .system(m.text))
            }
        }
        guard images.count <= maxImages else {
            throw CompletionError.invalidRequest("\(images.count) images in one request; at most \(maxImages).")
        }
        for img in images where ImageDecoder.format(of: img.bytes) == nil {
            throw badImage(img.bytes.isEmpty ? ImagingError.empty(img.name) : ImagingError.unknownFormat(img.name), img)
        }
        return (system, turns, images)
    }

    /// An image the decoder refused, named as the request names it.
    static func badImage(_ error: any Error, _ image: CompletionRequest.Image) -> CompletionError {
        let m = (error as? LocalizedError)?.errorDescription ?? "\(error)"
        return .badImage(m.hasPrefix(image.name) ? m : "\(image.name): \(m)")     // the decoder's own message names it
    }

    private func prepare(_ job: Job) throws {
        let r = job.request
        let (system, turns, images) = try Self.conversation(of: r, maxImages: limits.maxImages)
        var tokens: [Float] = [], promptImages: [PromptImage] = [], tiles = 0
        for img in images {
            let (vision, n, key) = try encode(img, for: job, maxTiles: img.maxTiles ?? r.maxTiles, after: tiles)
            tiles += n
            tokens += vision
            promptImages.append(PromptImage(key: key, tiles: n))
        }
        let template = system.map { engine.template.with(systemMessage: $0) } ?? engine.template
        let prompt: Prompt
        do {
            prompt = try engine.promptBuilder.build(template: template, messages: turns, images: promptImages)
        } catch let e as ChatError {
            switch e {
            case .promptTooLong, .textTooLong: throw CompletionError.contextExceeded(e.errorDescription ?? "\(e)")
            default: throw CompletionError.invalidRequest(e.errorDescription ?? "\(e)")
            }
        }
        let budget = prompt.count + 1
        guard budget < engine.contextLength else {
            throw CompletionError.contextExceeded("The prompt is \(prompt.count) tokens; the context holds \(engine.contextLength).")
        }
        job.imageTokens = tokens
        job.prompt = prompt
        job.stepper = engine.tokenStepper(parameters: r.parameters, prompt: prompt.ids, stop: r.stop)
        let (cache, reused) = reusableCache(for: prompt)
        job.cache = cache
        job.reused = reused
    }

    /// A user message's text with placeholders for its images before it when it has none, so that
    /// each message's images stay in that message.
    private static func placingImages(_ m: CompletionRequest.Message) -> String {
        ImagePrompt.count(in: m.text) == 0 && !m.images.isEmpty
            ? ImagePrompt.withPlaceholders(question: m.text, history: [], imageCount: m.images.count) : m.text
    }

    /// Vision tokens, tiles and content key of an image, encoded once per content and tile count.
    /// The image's vision tokens, its tiles and its key; refused before it is encoded when its
    /// tiles, after `tilesBefore` of the request's earlier images, pass the request's limit. The
    /// running requests go on decoding meanwhile: beside the decoding and tiling, and between the
    /// parts of the encoding, which `job`'s cancelling ends.
    private func encode(_ image: CompletionRequest.Image, for job: Job, maxTiles: Int?, after tilesBefore: Int) throws -> ([Float], Int, UInt64) {
        func fits(_ tiles: Int) throws {
            guard tilesBefore + tiles <= limits.maxTiles else {
                throw CompletionError.invalidRequest("The images need \(tilesBefore + tiles)+ tiles; one request may use \(limits.maxTiles). Send fewer images or a smaller max_tiles.")
            }
        }
        let options = engine.tilingOptions(maxTiles: maxTiles)
        let digest = ContentHash.sha256(image.bytes)
        let key = "\(digest)/\(options.maxTiles)"
        let hashKey = UInt64(digest.prefix(16), radix: 16) ?? 0
        if let v = lock.withLock({ encoded[key] }) {
            let tiles = v.count / (engine.tokensPerTile * engine.model.hidden)
            try fits(tiles)
            return (v, tiles, hashKey)
        }
        let prepared: PreparedImage
        do {
            prepared = try besideDecoding {
                ImagePreprocessor.prepare(try ImageDecoder.decode(bytes: image.bytes, name: image.name), options: options)
            }
        } catch {
            throw Self.badImage(error, image)
        }
        try fits(prepared.tiles)
        guard let v = engine.encodeImage(prepared, shouldStop: { encodingPause(job) }, progress: { _, _ in }) else {
            throw CancellationError()
        }
        lock.withLock {
            encoded[key] = v; encodedOrder.append(key)
            if encodedOrder.count > 16 { encoded[encodedOrder.removeFirst()] = nil }
        }
        return (v, prepared.tiles, hashKey)
    }

    /// The kept cache sharing the longest prefix with `prompt` (taken out of the pool, cut to
    /// that prefix), or a new one.
    private func reusableCache(for prompt: Prompt) -> (KVCache, Int) {
        let limit = engine.prefillsWhole(promptLength: prompt.count) ? 0 : prompt.count - 1
        let best: (Int, Int)? = lock.withLock {
            var best: (index: Int, length: Int)?
            for (i, e) in finishedCaches.enumerated() {
                var n = 0
                let m = min(limit, e.signatures.count, e.cache.count)
                while n < m && e.signatures[n] == prompt.signatures[n] { n += 1 }
                if n > (best?.length ?? 0) { best = (i, n) }
            }
            return best.map { ($0.index, $0.length) }
        }
        if let (i, n) = best, n >= 8 {
            let cache = lock.withLock { finishedCaches.remove(at: i).cache }
            cache.truncate(to: n)
            return (cache, n)
        }
        return (engine.model.makeCache(initialCapacity: min(engine.contextLength, prompt.count + 64)), 0)
    }

    private func keep(signatures: [UInt64], cache: KVCache) {
        guard limits.cachedConversations > 0 else { return }
        lock.withLock {
            finishedCaches.append((signatures, cache))
            if finishedCaches.count > limits.cachedConversations { finishedCaches.removeFirst() }
        }
    }

    /// A count of decode steps and their total time.
    public struct DecodeSteps: Sendable {
        public var steps = 0
        public var seconds = 0.0
        mutating func add(_ d: Duration) {
            steps += 1
            seconds += d.seconds
        }
    }

    /// A result handed from another thread, read after its semaphore was signalled.
    final class Handoff<T>: @unchecked Sendable { var result: Result<T, any Error>? }

    /// A request in the scheduler.
    final class Job: @unchecked Sendable {
        let request: CompletionRequest
        let out: AsyncThrowingStream<CompletionEvent, any Error>.Continuation
        /// Set under the scheduler's lock; read by the compute thread between steps.
        var cancelled = false
        var prompt: Prompt?
        var imageTokens: [Float] = []
        var cache: KVCache?
        var reused = 0
        /// The answer's per-token rules and state, from the time its prompt is known.
        var stepper: TokenStepper?
        /// Signatures of the generated tokens fed to the model (the cache's positions after the prompt).
        var fed: [UInt64] = []
        var pending: Int32 = 0

        init(request: CompletionRequest, out: AsyncThrowingStream<CompletionEvent, any Error>.Continuation) {
            self.request = request
            self.out = out
        }
    }
}

import ChatAPI
import Chat
import Foundation
import Imaging
@testable import Serving
import ServingAPI
import Testing
import TestSupport

/// The scheduler against `ChatEngine.generate` on the tiny models: every answer it streams, alone
/// or decoded in a batch with others, after a reused prefix or a chunked prefill, is the answer
/// `generate` gives for the same conversation (ids, text, usage); stop strings, cancellation and
/// the queue limit behave as the `CompletionService` contract says.
///
/// `generate` runs on a second engine of the same model: an engine is not shared between threads.
struct EngineSchedulerTests {
    struct Outcome: Equatable {
        var text = ""
        var ids: [Int32] = []
        var reason: FinishReason?
        var usage: CompletionUsage?
    }

    static func collect(_ s: AsyncThrowingStream<CompletionEvent, any Error>) async throws -> Outcome {
        var o = Outcome()
        for try await e in s {
            switch e {
            case .text(let t): o.text += t
            case .finished(let r, let u, let ids): o.reason = r; o.usage = u; o.ids = ids
            }
        }
        return o
    }

    static func image(_ name: String) throws -> CompletionRequest.Image {
        CompletionRequest.Image(bytes: Array(try Data(contentsOf: TestData.url("images/" + name))), name: name)
    }

    /// A conversation as both sides take it: the scheduler's request and what `generate` needs.
    struct Chat {
        var system: String?
        /// (question, images, answer): images go before their question when it has no `<image>`.
        var history: [(String, [String], String)] = []
        var question: String
        var images: [String] = []
        var parameters = SamplingParameters(maxNewTokens: 10)
        var stop: [String] = []

        func request() throws -> CompletionRequest {
            var m: [CompletionRequest.Message] = system.map { [.init(role: .system, text: $0)] } ?? []
            for (q, imgs, a) in history {
                m.append(.init(role: .user, text: q, images: try imgs.map(EngineSchedulerTests.image)))
                m.append(.init(role: .assistant, text: a))
            }
            m.append(.init(role: .user, text: question, images: try images.map(EngineSchedulerTests.image)))
            return CompletionRequest(messages: m, parameters: parameters, stop: stop)
        }

        /// `generate`'s answer for this conversation, each turn's images placed in its question
        /// as the chat session places them.
        func expected(_ engine: ChatEngine) throws -> Outcome {
            let place = { (q: String, n: Int) in ImagePrompt.count(in: q) > 0 ? q : ImagePrompt.withPlaceholders(question: q, history: [], imageCount: n) }
            let all = history.flatMap(\.1) + images
            let prepared = try all.map { try engine.prepareImage(path: TestData.url("images/" + $0).path) }
            let template = system.map { engine.template.with(systemMessage: $0) } ?? engine.template
            let ids = try engine.promptIDs(template: template, history: history.map { (place($0.0, $0.1.count), $0.2) },
                                           question: place(question, images.count), tileCounts: prepared.map(\.tiles))
            var text = ""
            let r = try engine.generate(prompt: ids, imageTokens: prepared.flatMap { engine.encodeImage($0) }, parameters: parameters,
                                        onText: { text += $0 })
            return Outcome(text: text, ids: r.tokenIDs, reason: r.stoppedAtStopToken ? .stop : .length,
                           usage: CompletionUsage(promptTokens: ids.count, completionTokens: r.tokenIDs.count))
        }
    }

    static let chats: [Chat] = [
        Chat(question: "Hello, who are you?"),
        Chat(system: "You are a terse assistant.", question: "Name three colours."),
        Chat(history: [("What is 2 + 2?", [], "4."), ("And 3 + 3?", [], "6.")], question: "Which was larger?"),
        Chat(question: "Describe the picture.", images: ["photo-chelsea.png"]),
        Chat(question: "What differs?", images: ["photo-chelsea.png", "photo-camera.png"]),
        Chat(history: [("Describe.", ["photo-camera.png"], "A camera.")], question: "And this one?", images: ["photo-rocket.jpg"]),
        Chat(question: "First <image> then <image>, compare.", images: ["jpeg-base-420-67x45.jpg", "photo-chelsea.png"]),
        Chat(question: "Tell a story.", parameters: SamplingParameters(temperature: 0.8, topP: 0.9, seed: 7, maxNewTokens: 10)),
    ]

    /// The status once the finished requests have left the loop (their streams end just before).
    static func settled(_ scheduler: EngineScheduler) async -> ServiceStatus {
        var s = await scheduler.status()
        for _ in 0..<100 where s.active > 0 || s.queued > 0 {
            try? await Task.sleep(for: .milliseconds(20))
            s = await scheduler.status()
        }
        return s
    }

    static func withoutCached(_ o: Outcome) -> Outcome {
        var o = o
        o.usage?.cachedPromptTokens = 0
        return o
    }

    /// One request at a time: each answer is `generate`'s. Prefix reuse happens between them (the
    /// same image, the same system template), so this also checks reused caches.
    @Test(arguments: ["tiny-a", "tiny-b"])
    func answersEqualGenerate(model: String) async throws {
        let reference = try ChatEngine(folder: TestData.url(model))
        let scheduler = EngineScheduler(engine: try ChatEngine(folder: TestData.url(model)), modelName: model)
        defer { scheduler.shutdown() }
        for (k, chat) in Self.chats.enumerated() {
            let want = try chat.expected(reference)
            let got = try await Self.collect(scheduler.complete(try chat.request()))
            #expect(Self.withoutCached(got) == want, "\(model) chat \(k)")
        }
    }

    /// All chats at once: the compute loop decodes them in one batch (largestBatch says it did)
    /// and every stream is its sequential twin, greedy and seeded sampling alike; newcomers are
    /// prefilled between the running requests' decode steps.
    @Test(arguments: ["tiny-a", "tiny-c"])
    func concurrentRequestsEqualTheirSequentialTwins(model: String) async throws {
        let reference = try ChatEngine(folder: TestData.url(model))
        var limits = SchedulerLimits()
        limits.cachedConversations = 0
        let scheduler = EngineScheduler(engine: try ChatEngine(folder: TestData.url(model)), modelName: model, limits: limits)
        defer { scheduler.shutdown() }
        var chats = Self.chats
        for k in chats.indices { chats[k].parameters.maxNewTokens = 40 }
        let wants = try chats.map { try $0.expected(reference) }
        let requests = try chats.map { try $0.request() }
        let gots = try await withThrowingTaskGroup(of: (Int, Outcome).self) { group in
            for (k, r) in requests.enumerated() { group.addTask { (k, try await Self.collect(scheduler.complete(r))) } }
            var out = [Outcome?](repeating: nil, count: requests.count)
            for try await (k, o) in group { out[k] = o }
            return out
        }
        for k in chats.indices { #expect(gots[k] == wants[k], "\(model) chat \(k)") }
        let s = await Self.settled(scheduler)
        #expect(s.largestBatch >= 4, "\(model): at most \(s.largestBatch) requests were decoded together")
        #expect(s.active == 0 && s.queued == 0)
    }

    /// A client resending the growing conversation, and a second user with the same system
    /// prompt and image: the prompt continues a kept cache (cachedPromptTokens) and the answer is
    /// still `generate`'s.
    @Test(arguments: ["tiny-b", "tiny-a"])
    func prefixReuseKeepsTheAnswers(model: String) async throws {
        let reference = try ChatEngine(folder: TestData.url(model))
        let scheduler = EngineScheduler(engine: try ChatEngine(folder: TestData.url(model)), modelName: model)
        defer { scheduler.shutdown() }
        let system = "You answer in one short sentence."
        var chat = Chat(system: system, question: "Describe the picture.", images: ["photo-chelsea.png"])
        let first = try await Self.collect(scheduler.complete(try chat.request()))
        #expect(Self.withoutCached(first) == (try chat.expected(reference)))
        #expect(first.usage?.cachedPromptTokens == 0)

        chat.history = [(chat.question, chat.images, first.text)]
        chat.question = "What colour is it?"
        chat.images = []
        let second = try await Self.collect(scheduler.complete(try chat.request()))
        let want = try chat.expected(reference)
        #expect(Self.withoutCached(second) == want, "\(model): the resent conversation")
        let whole = reference.prefillsWhole(promptLength: want.usage!.promptTokens)
        if whole {
            #expect(second.usage?.cachedPromptTokens == 0, "a prompt prefilled whole reuses nothing")
        } else {
            #expect((second.usage?.cachedPromptTokens ?? 0) >= first.usage!.promptTokens, "\(model): the first turn's prompt is reused")
        }

        let other = Chat(system: system, question: "Is there an animal?", images: ["photo-chelsea.png"])
        let third = try await Self.collect(scheduler.complete(try other.request()))
        let otherWant = try other.expected(reference)
        #expect(Self.withoutCached(third) == otherWant, "\(model): same system prompt and image")
        if !reference.prefillsWhole(promptLength: otherWant.usage!.promptTokens) {
            #expect((third.usage?.cachedPromptTokens ?? 0) > 0)
        }
    }

    /// The answer ends before the first stop string, which no chunk contains; finish reason stop.
    @Test func stopStringsEndTheAnswer() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        let chat = Chat(question: "Hello, who are you?", parameters: SamplingParameters(maxNewTokens: 24))
        let full = try chat.expected(engine)
        let scheduler = EngineScheduler(engine: engine, modelName: "tiny-b")
        defer { scheduler.shutdown() }
        let chars = Array(full.text)
        try #require(chars.count >= 8, "the greedy answer is too short to cut: \(full.text)")
        let stop = String(chars[(chars.count / 2)..<(chars.count / 2 + 3)])
        let before = String(full.text[..<full.text.range(of: stop)!.lowerBound])
        var stopped = chat
        stopped.stop = ["never appears", stop]
        var chunks: [String] = []
        var reason: FinishReason?
        for try await e in scheduler.complete(try stopped.request()) {
            switch e {
            case .text(let t): chunks.append(t)
            case .finished(let r, _, _): reason = r
            }
        }
        #expect(chunks.joined() == before)
        #expect(reason == .stop)
        #expect(!chunks.contains { $0.contains(stop) })
    }

    /// A request that runs until its consumer stops reading: the context is made too long to reach,
    /// and the stop tokens are not taken before the maximum (`minNewTokens`), so however long a
    /// loaded machine takes to look, the answer is still going.
    static func endless(_ engine: ChatEngine, _ question: String) throws -> CompletionRequest {
        engine.contextLength = 1 << 20
        return try Chat(question: question, parameters: SamplingParameters(maxNewTokens: 1 << 20, minNewTokens: 1 << 20)).request()
    }

    /// Starts consuming `request` in a task and returns once its first text arrived.
    static func consumeStarted(_ scheduler: EngineScheduler, _ request: CompletionRequest) async -> Task<Int, any Error> {
        let (started, signal) = AsyncStream<Void>.makeStream()
        let consumer = Task {
            var n = 0
            for try await e in scheduler.complete(request) {
                if case .text = e { n += 1; signal.yield() }
            }
            signal.finish()
            return n
        }
        for await _ in started { break }
        return consumer
    }

    /// One slot, a request that would run for ever: cancelling its consumer frees the slot, and
    /// the next request is answered. The tokens generated for the cancelled one are counted.
    @Test func cancellationFreesTheSlot() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        var limits = SchedulerLimits()
        limits.maxBatch = 1
        let scheduler = EngineScheduler(engine: engine, modelName: "tiny-b", limits: limits)
        defer { scheduler.shutdown() }
        let consumer = await Self.consumeStarted(scheduler, try Self.endless(engine, "Write a long story."))
        #expect(await scheduler.status().active == 1)
        consumer.cancel()
        let chunks = (try? await consumer.value) ?? 1
        let cancelled = await Self.settled(scheduler).generatedTokens
        #expect(cancelled >= max(chunks, 1), "\(chunks) chunks of text came from \(cancelled) tokens")
        let short = Chat(question: "Hello, who are you?")
        let got = try await Self.collect(scheduler.complete(try short.request()))
        #expect(Self.withoutCached(got) == (try short.expected(try ChatEngine(folder: TestData.url("tiny-b")))))
        let s = await Self.settled(scheduler)
        #expect(s.active == 0 && s.queued == 0)
        #expect(s.generatedTokens == cancelled + (got.usage?.completionTokens ?? -1), "a finished answer adds its completion tokens")
    }

    /// Generated tokens are reported to observers one by one, before the text they make is
    /// streamed: the first text comes after a count, the end after the answer's whole count (equal
    /// to the service's status); during an answer that has not ended the count grows.
    @Test func generatedTokensAreObservedAsTheyAreMade() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        let scheduler = EngineScheduler(engine: engine, modelName: "tiny-b")
        defer { scheduler.shutdown() }
        let observed = Count()
        scheduler.observeGeneratedTokens { observed.add($0) }
        var seenAtEvents: [Int] = [], usage: CompletionUsage?
        for try await e in scheduler.complete(try Chat(question: "Write a long story.", parameters: SamplingParameters(maxNewTokens: 24)).request()) {
            seenAtEvents.append(observed.now)
            if case .finished(_, let u, _) = e { usage = u }
        }
        let total = try #require(usage).completionTokens
        #expect(seenAtEvents.first ?? 0 >= 1, "the first text came after its token was counted: \(seenAtEvents)")
        #expect(seenAtEvents.last == total && observed.now == total, "\(seenAtEvents), \(total) tokens")
        #expect(await Self.settled(scheduler).generatedTokens == total)

        let consumer = await Self.consumeStarted(scheduler, try Self.endless(engine, "Repeat after me: la la la la"))
        let early = observed.now
        var later = early
        for _ in 0..<500 where later == early {
            try await Task.sleep(for: .milliseconds(20))
            later = observed.now
        }
        let running = await scheduler.status().active
        #expect(later > early && running == 1, "the count grew from \(early) to \(later) while the answer ran")
        consumer.cancel()
        _ = try? await consumer.value
        #expect(await Self.settled(scheduler).generatedTokens == observed.now)
    }

    /// Tokens counted as the scheduler reports them to its observers.
    final class Count: @unchecked Sendable {
        let lock = NSLock()
        var value = 0
        func add(_ n: Int) { lock.withLock { value += n } }
        var now: Int { lock.withLock { value } }
    }

    /// A scheduler on tiny-b with one batch place and `queue` waiting places.
    static func oneSlot(queue: Int) throws -> (ChatEngine, EngineScheduler) {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        var limits = SchedulerLimits()
        limits.maxBatch = 1
        limits.maxQueue = queue
        return (engine, EngineScheduler(engine: engine, modelName: "tiny-b", limits: limits))
    }

    /// A full queue refuses at once with `overloaded`; the requests in hand go on, and the queued
    /// one runs once the slot is free.
    @Test func aFullQueueRefuses() async throws {
        let (engine, scheduler) = try Self.oneSlot(queue: 1)
        defer { scheduler.shutdown() }
        let consumer = await Self.consumeStarted(scheduler, try Self.endless(engine, "Repeat after me: la la la la"))
        let queued = scheduler.complete(try Chat(question: "Wait.").request())
        var s = await scheduler.status()
        #expect(s.queued == 1 && s.active == 1)
        do {
            for try await _ in scheduler.complete(try Chat(question: "One too many.").request()) {}
            Issue.record("a third request was accepted")
        } catch let e as CompletionError {
            if case .overloaded = e {} else { Issue.record("refused as \(e), not overloaded") }
        }
        let waiter = Task { try await Self.collect(queued) }
        consumer.cancel()
        let second = try await waiter.value
        #expect(second.reason != nil, "the queued request finished once the slot was freed")
        s = await Self.settled(scheduler)
        #expect(s.queued == 0 && s.active == 0)
    }

    /// Places free in the batch take requests whatever the queue holds: with no waiting places
    /// (`--max-queue 0`) an idle server answers, and a busy one refuses at once.
    @Test func aFreeBatchPlaceAdmitsWithoutAQueue() async throws {
        let (engine, scheduler) = try Self.oneSlot(queue: 0)
        defer { scheduler.shutdown() }
        let first = try await Self.collect(scheduler.complete(try Chat(question: "Hello", parameters: SamplingParameters(maxNewTokens: 2)).request()))
        #expect(first.reason != nil, "an idle server with no queue answered")
        let consumer = await Self.consumeStarted(scheduler, try Self.endless(engine, "Repeat after me: la la la la"))
        do {
            for try await _ in scheduler.complete(try Chat(question: "One too many.").request()) {}
            Issue.record("a request beyond the batch was accepted with no queue")
        } catch let e as CompletionError {
            if case .overloaded = e {} else { Issue.record("refused as \(e), not overloaded") }
        }
        consumer.cancel()
        let s = await Self.settled(scheduler)
        #expect(s.queued == 0 && s.active == 0)
    }

    /// A request's place is free by the time its stream ends: a client that sends its next
    /// request as soon as it has the answer is not refused as overloaded by its own last request
    /// (one batch place, no queue, requests back to back).
    @Test func thePlaceIsFreeWhenTheAnswerEnds() async throws {
        let (_, scheduler) = try Self.oneSlot(queue: 0)
        defer { scheduler.shutdown() }
        let request = try Chat(question: "Hello", parameters: SamplingParameters(maxNewTokens: 1)).request()
        var refused = 0, busyAfterEnd = 0
        for _ in 0..<300 {
            do { _ = try await Self.collect(scheduler.complete(request)) } catch { refused += 1 }
            if await scheduler.status().active != 0 { busyAfterEnd += 1 }
        }
        #expect(refused == 0 && busyAfterEnd == 0, "\(refused) refused, \(busyAfterEnd) still running after their end")
    }

    /// Conversations in orders a pair-based history cannot hold (an assistant greeting first, two
    /// user messages in a row, a system message later, an assistant message last) are answered
    /// as `generate` answers their prompt written out by hand in the template's framing: each
    /// message under its role's header, then the assistant's header.
    @Test(arguments: [("tiny-b", "<|im_end|>"), ("tiny-qwen2", "<|im_end|>\n")])
    func anyMessageOrderIsAnsweredAsItsPrompt(model: String, separator: String) async throws {
        let reference = try ChatEngine(folder: TestData.url(model))
        let scheduler = EngineScheduler(engine: try ChatEngine(folder: TestData.url(model)), modelName: model)
        defer { scheduler.shutdown() }
        let sys = "<|im_start|>system\n", user = "<|im_start|>user\n", bot = "<|im_start|>assistant\n"
        let own = sys + reference.template.systemMessage + separator
        let cases: [([CompletionRequest.Message], String)] = [
            ([.init(role: .assistant, text: "Hello! How can I help?"), .init(role: .user, text: "Name a colour.")],
             own + bot + "Hello! How can I help?" + separator + user + "Name a colour." + separator + bot),
            ([.init(role: .user, text: "First question."), .init(role: .user, text: "Second question.")],
             own + user + "First question." + separator + user + "Second question." + separator + bot),
            ([.init(role: .system, text: "Be brief."), .init(role: .user, text: "Hi"), .init(role: .assistant, text: "Hello."),
              .init(role: .system, text: "Answer in French."), .init(role: .user, text: "How are you?")],
             sys + "Be brief." + separator + user + "Hi" + separator + bot + "Hello." + separator
                + sys + "Answer in French." + separator + user + "How are you?" + separator + bot),
            ([.init(role: .user, text: "Write a haiku."), .init(role: .assistant, text: "Snow falls.")],
             own + user + "Write a haiku." + separator + bot + "Snow falls." + separator + bot),
        ]
        let parameters = SamplingParameters(maxNewTokens: 8)
        for (k, (messages, text)) in cases.enumerated() {
            let ids = reference.tokenizer.encode(text)
            let r = try reference.generate(prompt: ids, parameters: parameters)
            let got = try await Self.collect(scheduler.complete(CompletionRequest(messages: messages, parameters: parameters)))
            #expect(got.ids == r.tokenIDs && got.usage?.promptTokens == ids.count, "\(model) case \(k)")
        }
    }

    /// A request's image is decoded, tiled and encoded while the running answers go on: the
    /// endless answer's tokens, timed where the scheduler counts them, never pause for more than
    /// half of the image request's time (a scheduler that prepared the image first paused them for
    /// nearly all of it). A large JPEG makes the decoding and tiling take a while.
    @Test func runningAnswersGoOnWhileAnImageIsPrepared() async throws {
        let engine = try ChatEngine(folder: TestData.url("tiny-b"))
        let scheduler = EngineScheduler(engine: engine, modelName: "tiny-b")
        defer { scheduler.shutdown() }
        final class Times: @unchecked Sendable {
            let lock = NSLock()
            var all: [ContinuousClock.Instant] = []
            func add() { lock.withLock { all.append(.now) } }
            func longestPause(from start: ContinuousClock.Instant, to end: ContinuousClock.Instant) -> Duration {
                let inside = [start] + lock.withLock { all.filter { $0 > start && $0 < end } } + [end]
                return zip(inside, inside.dropFirst()).map { $0.duration(to: $1) }.max() ?? .zero
            }
        }
        let times = Times()
        scheduler.observeGeneratedTokens { _ in times.add() }
        let consumer = await Self.consumeStarted(scheduler, try Self.endless(engine, "Repeat after me: la la la la"))
        var px = [UInt8](repeating: 0, count: 6000 * 4000 * 3)
        for i in stride(from: 0, to: px.count, by: 7) { px[i] = UInt8(truncatingIfNeeded: i &* 31) }
        let jpeg = try #require(JPEGEncoder.encode(RGBImage(width: 6000, height: 4000, pixels: px)))
        var big = CompletionRequest.Image(bytes: jpeg, name: "big.jpg")
        big.maxTiles = 12
        let start = ContinuousClock.now
        var end = start
        for try await e in scheduler.complete(CompletionRequest(messages: [.init(role: .user, text: "What is it?", images: [big])],
                                                                parameters: SamplingParameters(maxNewTokens: 1))) {
            if case .finished = e { end = .now }
        }
        let pause = times.longestPause(from: start, to: end), took = start.duration(to: end)
        #expect(end > start && pause < took / 2, "the running answer paused \(pause) of the image request's \(took)")
        consumer.cancel()
        _ = try? await consumer.value
    }

    /// Images past a request's tile limit are refused before they are encoded: the vision encoder
    /// runs on the compute thread every answer shares.
    @Test func imagesPastTheTileLimitAreNotEncoded() async throws {
        var limits = SchedulerLimits()
        limits.maxTiles = 4
        let scheduler = EngineScheduler(engine: try ChatEngine(folder: TestData.url("tiny-b")), modelName: "tiny-b", limits: limits)
        defer { scheduler.shutdown() }
        var a = try Self.image("photo-chelsea.png"), b = try Self.image("photo-coffee.png")
        a.maxTiles = 2; b.maxTiles = 2                        // 2 tiles and a thumbnail each
        do {
            for try await _ in scheduler.complete(CompletionRequest(messages: [.init(role: .user, text: "Both?", images: [a, b])],
                                                                   parameters: SamplingParameters(maxNewTokens: 2))) {}
            Issue.record("six tiles passed a limit of four")
        } catch let e as CompletionError {
            #expect(e.message.contains("6+ tiles"), "\(e.message)")
        }
        #expect(scheduler.encodedImages == 1, "the second image was encoded before the refusal")
    }

    /// Bad conversations and images are refused with the case the HTTP layer maps to 400, and
    /// `problem(with:)`, which the server asks before a request takes a place in the queue, finds
    /// the same error without running the request, except for an image that must be decoded to
    /// be found bad.
    @Test func badRequestsAreRefused() async throws {
        let scheduler = EngineScheduler(engine: try ChatEngine(folder: TestData.url("tiny-b")), modelName: "tiny-b")
        defer { scheduler.shutdown() }
        let p = SamplingParameters(maxNewTokens: 4)
        func refusal(_ m: [CompletionRequest.Message], _ params: SamplingParameters = SamplingParameters(maxNewTokens: 4),
                     foundBeforeRunning: Bool = true) async -> CompletionError? {
            let request = CompletionRequest(messages: m, parameters: params)
            let found = scheduler.problem(with: request)
            var run: CompletionError?
            do { for try await _ in scheduler.complete(request) {} } catch { run = error as? CompletionError }
            #expect(found == (foundBeforeRunning ? run : nil), "found before running: \(String(describing: found)); running: \(String(describing: run))")
            return run
        }
        let bad = CompletionRequest.Image(bytes: Array("not an image at all".utf8), name: "image 1 of message 1")
        let broken = try Self.image("truncated.png")
        func isInvalid(_ e: CompletionError?) -> Bool { if case .invalidRequest? = e { return true }; return false }
        func isBadImage(_ e: CompletionError?) -> Bool { if case .badImage? = e { return true }; return false }
        #expect(isInvalid(await refusal([])))
        #expect(isInvalid(await refusal([.init(role: .system, text: "Only a system message.")])))
        #expect(isInvalid(await refusal([.init(role: .user, text: "Hi"), .init(role: .user, text: "")])))
        #expect(isInvalid(await refusal([.init(role: .system, text: "s", images: [bad]), .init(role: .user, text: "Hi")])))
        #expect(isInvalid(await refusal([.init(role: .user, text: "Hi"), .init(role: .assistant, text: "Look", images: [bad]), .init(role: .user, text: "So?")])))
        #expect(isInvalid(await refusal([.init(role: .user, text: "Hi"), .init(role: .system, text: "s", images: [bad]), .init(role: .user, text: "So?")])))
        #expect(isInvalid(await refusal([.init(role: .user, text: "Hi")], SamplingParameters(topP: 0, maxNewTokens: 4))))
        #expect(isInvalid(await refusal([.init(role: .user, text: "<image> alone", images: [try Self.image("photo-camera.png"), try Self.image("photo-chelsea.png")])])))
        let e = await refusal([.init(role: .user, text: "What is it?", images: [bad])])
        #expect(isBadImage(e))
        #expect(e?.message.contains("image 1 of message 1") == true, "the error names the image: \(e?.message ?? "")")
        #expect(isBadImage(await refusal([.init(role: .user, text: "What is it?", images: [broken])], foundBeforeRunning: false)))
        #expect(isBadImage(await refusal([.init(role: .user, text: "What is it?", images: [.init(bytes: [], name: "image 1 of message 1")])])))
        // Still serving.
        let ok = try await Self.collect(scheduler.complete(CompletionRequest(messages: [.init(role: .user, text: "Hi")], parameters: p)))
        #expect(ok.reason != nil)
    }
}

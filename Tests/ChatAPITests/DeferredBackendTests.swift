import ChatAPI
import Foundation
import Testing

/// A backend that answers every question with "echo: QUESTION" and counts cancels.
private final class EchoBackend: ChatBackend, @unchecked Sendable {
    let lock = NSLock()
    var cancels = 0
    var system = ""
    func attach(path: String, maxTiles: Int?) async throws -> AttachedImage { throw CancellationError() }
    func attachStreaming(path: String, maxTiles: Int?) async -> AsyncStream<ChatEvent> { AsyncStream { $0.yield(.failed("no images")); $0.finish() } }
    func send(_ question: String, typed: String, images: [AttachedImage], parameters: SamplingParameters) async -> AsyncStream<ChatEvent> {
        AsyncStream { c in c.yield(.phase(.generating)); c.yield(.text("echo: \(question)")); c.yield(.finished(TurnStats())); c.finish() }
    }
    func prefillAhead(images: [AttachedImage]) async -> Int { 7 }
    func regenerate(parameters: SamplingParameters) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func editLast(_ question: String, typed: String, parameters: SamplingParameters) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func newConversation() async {}
    func release(imageIDs: [Int]) async {}
    func setSystemMessage(_ text: String) async { lock.withLock { system = text } }
    func snapshot() async -> SessionSnapshot {
        SessionSnapshot(systemMessage: lock.withLock { system }, turns: [], images: [], model: ModelIdentity(name: "echo", configSHA256: "c", weightFormat: "bf16"))
    }
    func restore(_ snapshot: SessionSnapshot) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    var modelIdentity: ModelIdentity { get async { ModelIdentity(name: "echo", configSHA256: "c", weightFormat: "bf16") } }
    func cancel() { lock.withLock { cancels += 1 } }
}

private func collect(_ s: AsyncStream<ChatEvent>) async -> [ChatEvent] {
    var out: [ChatEvent] = []
    for await e in s { out.append(e) }
    return out
}

struct DeferredBackendTests {
    let placeholder = ModelIdentity(name: "folder", configSHA256: "", weightFormat: "int8")

    @Test func aQuestionSentWhileLoadingWaitsThenRuns() async {
        let d = DeferredBackend(placeholder: placeholder)
        #expect(d.isLoading)
        let stream = await d.send("hi", images: [], parameters: SamplingParameters())
        async let events = collect(stream)
        try? await Task.sleep(nanoseconds: 50_000_000)
        let echo = EchoBackend()
        d.resolve(echo)
        #expect(await events == [.phase(.loadingModel), .phase(.generating), .text("echo: hi"), .finished(TurnStats())])
        #expect(!d.isLoading)
        #expect(await d.prefillAhead(images: []) == 7)
        await d.setSystemMessage("be brief")
        #expect(await d.snapshot().systemMessage == "be brief")
        #expect(await d.modelIdentity.name == "echo")
        // Once loaded, no loading phase.
        #expect(await collect(d.send("again", images: [], parameters: SamplingParameters())).first == .phase(.generating))
    }

    @Test func cancelEndsAQuestionStillWaiting() async {
        let d = DeferredBackend(placeholder: placeholder)
        let stream = await d.send("hi", images: [], parameters: SamplingParameters())
        async let events = collect(stream)
        try? await Task.sleep(nanoseconds: 50_000_000)
        d.cancel()
        #expect(await events == [.phase(.loadingModel), .failed("Stopped before the model had loaded.")])
        let echo = EchoBackend()
        d.resolve(echo)
        #expect(await collect(d.send("next", images: [], parameters: SamplingParameters())).contains(.text("echo: next")))
        d.cancel()
        #expect(echo.lock.withLock { echo.cancels } == 1, "cancel reaches the loaded backend")
    }

    @Test func aFailedLoadFailsEveryRequestWithItsReason() async {
        let d = DeferredBackend(placeholder: placeholder)
        let stream = await d.send("hi", images: [], parameters: SamplingParameters())
        async let events = collect(stream)
        d.fail("config.json is not JSON")
        #expect(await events == [.phase(.loadingModel), .failed("config.json is not JSON")])
        #expect(await collect(d.attachStreaming(path: "/x.png", maxTiles: nil)) == [.failed("config.json is not JSON")])
        #expect(await d.snapshot().model == placeholder)
        #expect(await d.prefillAhead(images: []) == 0)
        d.resolve(EchoBackend())          // too late: the failure stands
        #expect(await collect(d.send("hi", images: [], parameters: SamplingParameters())) == [.failed("config.json is not JSON")])
    }
}

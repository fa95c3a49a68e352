import Foundation

/// A backend whose real one is still being made (the model loading in the background): the app
/// shows its screen and takes typing at once. Every request waits for the real backend, reporting
/// `.phase(.loadingModel)` first while it waits; if loading failed, each request reports that
/// failure instead. `cancel()` ends a request still waiting.
public final class DeferredBackend: ChatBackend, @unchecked Sendable {
    private enum State { case loading, ready(any ChatBackend), failed(String) }
    private let lock = NSLock()
    private var state = State.loading
    private var waiters: [CheckedContinuation<Result<any ChatBackend, DeferredBackendError>, Never>] = []
    /// Requests waiting for the backend, which `cancel()` ends.
    private var waitingStreams: [Int: AsyncStream<ChatEvent>.Continuation] = [:]
    private var nextWaiter = 0
    private let placeholder: ModelIdentity

    /// `placeholder`: the identity reported until the backend is in (the folder name and the
    /// weight format asked for).
    public init(placeholder: ModelIdentity) { self.placeholder = placeholder }

    /// Hands over the loaded backend; waiting requests go on.
    public func resolve(_ backend: any ChatBackend) { finish(.ready(backend), .success(backend)) }

    /// Loading failed: `message` says why; every request reports it.
    public func fail(_ message: String) { finish(.failed(message), .failure(DeferredBackendError(message: message))) }

    public var isLoading: Bool { lock.withLock { if case .loading = state { true } else { false } } }

    private func finish(_ s: State, _ r: Result<any ChatBackend, DeferredBackendError>) {
        let w: [CheckedContinuation<Result<any ChatBackend, DeferredBackendError>, Never>] = lock.withLock {
            guard case .loading = state else { return [] }
            state = s
            defer { waiters = [] }
            return waiters
        }
        for c in w { c.resume(returning: r) }
    }

    private func backend() async -> Result<any ChatBackend, DeferredBackendError> {
        await withCheckedContinuation { c in
            let now: Result<any ChatBackend, DeferredBackendError>? = lock.withLock {
                switch state {
                case .ready(let b): return .success(b)
                case .failed(let m): return .failure(DeferredBackendError(message: m))
                case .loading: waiters.append(c); return nil
                }
            }
            if let now { c.resume(returning: now) }
        }
    }

    /// The real backend's stream for `body`, after `.phase(.loadingModel)` while loading.
    private func forwarded(_ body: @escaping @Sendable (any ChatBackend) async -> AsyncStream<ChatEvent>) -> AsyncStream<ChatEvent> {
        let (stream, out) = AsyncStream<ChatEvent>.makeStream()
        let id: Int? = lock.withLock {
            guard case .loading = state else { return nil }
            nextWaiter += 1
            waitingStreams[nextWaiter] = out
            return nextWaiter
        }
        if id != nil { out.yield(.phase(.loadingModel)) }
        let task = Task {
            let r = await self.backend()
            // A request cancelled while it waited has been ended by `cancel()` already.
            if let id, self.lock.withLock({ self.waitingStreams.removeValue(forKey: id) }) == nil { return }
            switch r {
            case .failure(let e): out.yield(.failed(e.message))
            case .success(let b): for await e in await body(b) { out.yield(e) }
            }
            out.finish()
        }
        out.onTermination = { _ in task.cancel() }
        return stream
    }

    public func attach(path: String, maxTiles: Int?) async throws -> AttachedImage {
        try await backend().get().attach(path: path, maxTiles: maxTiles)
    }

    public func attachStreaming(path: String, maxTiles: Int?) async -> AsyncStream<ChatEvent> {
        forwarded { await $0.attachStreaming(path: path, maxTiles: maxTiles) }
    }

    public func send(_ question: String, typed: String, images: [AttachedImage], parameters: SamplingParameters) async -> AsyncStream<ChatEvent> {
        forwarded { await $0.send(question, typed: typed, images: images, parameters: parameters) }
    }

    public func prefillAhead(images: [AttachedImage]) async -> Int {
        guard case .success(let b) = await backend() else { return 0 }
        return await b.prefillAhead(images: images)
    }

    public func regenerate(parameters: SamplingParameters) async -> AsyncStream<ChatEvent> {
        forwarded { await $0.regenerate(parameters: parameters) }
    }

    public func editLast(_ question: String, typed: String, parameters: SamplingParameters) async -> AsyncStream<ChatEvent> {
        forwarded { await $0.editLast(question, typed: typed, parameters: parameters) }
    }

    public func newConversation() async {
        if case .success(let b) = await backend() { await b.newConversation() }
    }

    public func release(imageIDs: [Int]) async {
        if case .success(let b) = await backend() { await b.release(imageIDs: imageIDs) }
    }

    public func setSystemMessage(_ text: String) async {
        if case .success(let b) = await backend() { await b.setSystemMessage(text) }
    }

    public func snapshot() async -> SessionSnapshot {
        if case .success(let b) = await backend() { return await b.snapshot() }
        return SessionSnapshot(systemMessage: "", turns: [], images: [], model: placeholder)
    }

    public func restore(_ snapshot: SessionSnapshot) async -> AsyncStream<ChatEvent> {
        forwarded { await $0.restore(snapshot) }
    }

    public var defaultSystemMessage: String {
        get async {
            if case .success(let b) = await backend() { return await b.defaultSystemMessage }
            return ""
        }
    }

    public var modelIdentity: ModelIdentity {
        get async {
            if case .success(let b) = await backend() { return await b.modelIdentity }
            return placeholder
        }
    }

    public func cancel() {
        let (ready, waiting): ((any ChatBackend)?, [AsyncStream<ChatEvent>.Continuation]) = lock.withLock {
            defer { waitingStreams = [:] }
            if case .ready(let b) = state { return (b, Array(waitingStreams.values)) }
            return (nil, Array(waitingStreams.values))
        }
        for w in waiting { w.yield(.failed("Stopped before the model had loaded.")); w.finish() }
        ready?.cancel()
    }
}

public struct DeferredBackendError: Error, Sendable {
    public let message: String
}

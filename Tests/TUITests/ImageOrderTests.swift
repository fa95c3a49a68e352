import ChatAPI
import Foundation
import Imaging
import Testing
@testable import TUI

/// A backend that does nothing: every stream ends at once with no event. The fakes change what
/// they test, running their work with `serial`: one piece at a time in arrival order, as
/// ChatSession's compute thread does.
class IdleBackend: ChatBackend, @unchecked Sendable {
    private let workLock = NSLock()
    private var tail: Task<Void, Never>?

    @discardableResult func serial(_ op: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        workLock.withLock {
            let previous = tail
            let t = Task { await previous?.value; await op() }
            tail = t
            return t
        }
    }

    func attach(path: String, maxTiles: Int?) async throws -> AttachedImage { throw CancellationError() }
    func attachStreaming(path: String, maxTiles: Int?) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func release(imageIDs: [Int]) async {}
    func send(_ question: String, typed: String, images: [AttachedImage], parameters: SamplingParameters) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func prefillAhead(images: [AttachedImage]) async -> Int { 0 }
    func regenerate(parameters: SamplingParameters) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func editLast(_ question: String, typed: String, parameters: SamplingParameters) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func newConversation() async {}
    func setSystemMessage(_ text: String) async {}
    func snapshot() async -> SessionSnapshot { SessionSnapshot(systemMessage: "", turns: [], images: [], model: modelIdentity) }
    func restore(_ snapshot: SessionSnapshot) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    var modelIdentity: ModelIdentity { ModelIdentity(name: "fake", configSHA256: String(repeating: "0", count: 64), weightFormat: "bf16") }
    func cancel() {}
}

/// A backend that, like ChatSession, runs its work one piece at a time in arrival order and
/// finds an image attached before by its content (here: its path) instead of encoding it again.
/// `releaseLate` holds a release back before it arrives; `attachTakes` is how long an attach
/// works once it runs.
final class DedupBackend: IdleBackend, @unchecked Sendable {
    private let lock = NSLock()
    private var byPath: [String: Int] = [:]
    private var nextID = 1
    let releaseLate: Duration, attachTakes: Duration
    /// Attaches end their stream with no event.
    let quietAttach: Bool
    init(releaseLate: Duration = .zero, attachTakes: Duration = .zero, quietAttach: Bool = false) {
        self.releaseLate = releaseLate; self.attachTakes = attachTakes; self.quietAttach = quietAttach
    }

    var heldIDs: Set<Int> { lock.withLock { Set(byPath.values) } }

    override func attachStreaming(path: String, maxTiles: Int?) async -> AsyncStream<ChatEvent> {
        let (stream, c) = AsyncStream<ChatEvent>.makeStream()
        if quietAttach { c.finish(); return stream }
        let takes = attachTakes
        serial { [self] in
            if takes > .zero { try? await Task.sleep(for: takes) }
            let id = lock.withLock {
                if let id = byPath[path] { return id }
                defer { nextID += 1 }
                byPath[path] = nextID
                return nextID
            }
            c.yield(.attached(AttachedImage(id: id, name: path, width: 8, height: 8, tiles: 1, tokenCost: 258,
                                            tiling: TilingOptions(maxTiles: maxTiles ?? 12))))
            c.finish()
        }
        return stream
    }
    override func release(imageIDs: [Int]) async {
        if releaseLate > .zero { try? await Task.sleep(for: releaseLate) }
        await serial { [self] in lock.withLock { byPath = byPath.filter { !imageIDs.contains($0.value) } } }.value
    }
}

/// Detaching an image and attaching the same file again: whatever order the backend sees the
/// release and the attach in, the image the app lists for the next message is one the backend
/// still holds (the app's release used to run in a Task of its own and could land after the
/// new attach had been handed the old id).
struct ImageOrderTests {
    static func app(_ backend: any ChatBackend) -> App {
        App(backend: backend, modelName: "fake", contextSize: 4096, parameters: SamplingParameters(maxNewTokens: 2))
    }

    static func command(_ app: App, _ line: String) {
        app.dispatch(.type(line))
        app.dispatch(.enter)
    }

    /// Delivers what the backend posted until its work is done and nothing more arrives.
    static func settle(_ app: App) async {
        var quiet = 0
        for _ in 0..<500 where quiet < 10 {
            await app.imageWork?.value
            let actions = app.inbox.take()
            quiet = actions.isEmpty ? quiet + 1 : 0
            for a in actions { app.dispatch(a) }
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    @Test func aReleaseThatArrivesLateDoesNotDropTheImageAttachedAgain() async {
        let backend = DedupBackend(releaseLate: .milliseconds(200))
        let app = Self.app(backend)
        Self.command(app, "/attach /pictures/cat.png")
        await Self.settle(app)
        #expect(app.state.pending.map(\.id) == [1])
        Self.command(app, "/detach 1")
        Self.command(app, "/attach /pictures/cat.png")
        await Self.settle(app)
        let pending = app.state.pending.map(\.id)
        #expect(pending.count == 1, "\(pending)")
        #expect(Set(pending).isSubset(of: backend.heldIDs), "listed \(pending), the backend holds \(backend.heldIDs)")
        #expect(backend.heldIDs.count == 1, "the released image is gone")
    }

    @Test func anAttachUnderWayWhenTheSameImageIsDetachedComesBackLive() async {
        let backend = DedupBackend(attachTakes: .milliseconds(200))
        let app = Self.app(backend)
        Self.command(app, "/attach /pictures/cat.png")
        await Self.settle(app)
        #expect(app.state.pending.map(\.id) == [1])
        Self.command(app, "/attach /pictures/cat.png")      // finds image 1 by content, 200 ms from now
        Self.command(app, "/detach 1")                      // meanwhile image 1 is detached
        await Self.settle(app)
        let pending = app.state.pending.map(\.id)
        #expect(pending.count == 1, "\(pending)")
        #expect(Set(pending).isSubset(of: backend.heldIDs), "listed \(pending), the backend holds \(backend.heldIDs)")
        #expect(!pending.contains(1), "image 1 was released")
    }
}

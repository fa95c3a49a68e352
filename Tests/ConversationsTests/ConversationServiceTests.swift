import ChatAPI
import Conversations
import Foundation
import Imaging
import Testing

/// A backend without a model: holds a snapshot, restores by renumbering the images.
final class FakeBackend: ChatBackend, @unchecked Sendable {
    private let lock = NSLock()
    private var current: SessionSnapshot
    let failRestore: String?
    let model: ModelIdentity
    init(_ s: SessionSnapshot = SessionSnapshot(systemMessage: "", turns: [], images: [], model: testModel), failRestore: String? = nil,
         model: ModelIdentity = testModel) {
        current = s; self.failRestore = failRestore; self.model = model
    }
    var held: SessionSnapshot { lock.lock(); defer { lock.unlock() }; return current }
    func set(_ s: SessionSnapshot) { lock.lock(); current = s; lock.unlock() }

    func attach(path: String, maxTiles: Int?) async throws -> AttachedImage { throw CancellationError() }
    func attachStreaming(path: String, maxTiles: Int?) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func send(_ question: String, typed: String, images: [AttachedImage], parameters: SamplingParameters) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func prefillAhead(images: [AttachedImage]) async -> Int { 0 }
    func regenerate(parameters: SamplingParameters) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func editLast(_ question: String, typed: String, parameters: SamplingParameters) async -> AsyncStream<ChatEvent> { AsyncStream { $0.finish() } }
    func newConversation() async { set(SessionSnapshot(systemMessage: "", turns: [], images: [], model: testModel)) }
    func release(imageIDs: [Int]) async {
        var s = held
        let shown = Set(s.turns.flatMap(\.imageIDs)), dropped = Set(imageIDs).subtracting(shown)
        s.images.removeAll { dropped.contains($0.info.id) }
        s.pendingImageIDs.removeAll { dropped.contains($0) }
        set(s)
    }
    func setSystemMessage(_ text: String) async {}
    func snapshot() async -> SessionSnapshot { held }
    func restore(_ snapshot: SessionSnapshot) async -> AsyncStream<ChatEvent> {
        let fail = failRestore
        if fail != nil { set(SessionSnapshot(systemMessage: "", turns: [], images: [], model: testModel)) } else { set(snapshot) }
        return AsyncStream { c in
            c.yield(.phase(.prefill(done: 0, of: 1)))
            if let fail { c.yield(.failed(fail)) } else {
                c.yield(.restored(snapshot.images.map { i in
                    let a = i.info
                    return AttachedImage(id: a.id + 100, name: a.name, width: a.width, height: a.height, tiles: a.tiles,
                                         tokenCost: a.tokenCost, grid: a.grid, tiling: a.tiling, sha256: a.sha256)
                }))
            }
            c.finish()
        }
    }
    var modelIdentity: ModelIdentity { model }
    func cancel() {}
}

final class EventLog: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [ChatEvent] = []
    func add(_ e: ChatEvent) { lock.lock(); items.append(e); lock.unlock() }
    var all: [ChatEvent] { lock.lock(); defer { lock.unlock() }; return items }
}

struct ConversationServiceTests {
    /// A store in `root` holding the synthetic conversation saved as `name`, its lock released.
    static func storeWithSaved(_ root: URL, name: String) async throws -> (ConversationStore, ConversationService.Saved) {
        let store = ConversationStore(root: root)
        let writer = ConversationService(store: store, backend: FakeBackend(syntheticSnapshot()))
        let saved = try #require(try await writer.save(.rename(name)))
        writer.close()
        return (store, saved)
    }

    /// A conversation records its model; resuming it with another model (or another weight
    /// format) says so first among the notes and uses none of its stored vision tokens.
    @Test func resumingWithAnotherModelSaysSo() async throws {
        let root = tempDir("svc-model"); defer { try? FileManager.default.removeItem(at: root) }
        let (store, saved) = try await Self.storeWithSaved(root, name: "pets")
        #expect(try store.read(saved.id).model == testModel)

        let same = ConversationService(store: store, backend: FakeBackend())
        let r0 = try await same.resume("pets")
        #expect(r0.problems.isEmpty && r0.cachedVision == 2 && r0.savedModel == testModel)
        same.close()

        let phi = ModelIdentity(name: "OpenGVLab/Mini-InternVL-Chat-4B-V1-5", configSHA256: String(repeating: "ab", count: 32), weightFormat: "bf16")
        let other = ConversationService(store: store, backend: FakeBackend(model: phi))
        let r1 = try await other.resume("pets")
        #expect(r1.cachedVision == 0 && r1.savedModel == testModel)
        #expect(r1.problems.first == "This conversation was saved with tiny (bf16); it continues with OpenGVLab/Mini-InternVL-Chat-4B-V1-5 (bf16): "
            + "its text and its 2 images are encoded again for this model, and the earlier answers came from the other one.")
        #expect(r1.exchanges.count == syntheticSnapshot().turns.count, "the conversation itself comes back whole")
        other.close()

        var int8 = testModel; int8.weightFormat = "int8"
        let quantized = ConversationService(store: store, backend: FakeBackend(model: int8))
        let r2 = try await quantized.resume("pets")
        #expect(r2.problems.first?.hasPrefix("This conversation was saved with tiny (bf16); it continues with tiny (int8)") == true)
        quantized.close()
    }

    /// A save nobody was asked about (the app's at a signal) keeps what was typed before a first
    /// turn, and resuming brings it back; any other save waits for a turn.
    @Test func aSaveKeepingUnsentTextWritesItBeforeAFirstTurn() async throws {
        let root = tempDir("svc-draft"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let a = ConversationService(store: store, backend: FakeBackend())
        #expect(try await a.save(draft: "What is in this") == nil && store.list().isEmpty, "a plain save waits for a turn")
        #expect(try await a.save(draft: " \n", keepingUnsent: true) == nil && store.list().isEmpty, "blank text is nothing to keep")
        let saved = try #require(try await a.save(draft: "What is in this", keepingUnsent: true))
        #expect(saved.turns == 0 && store.list().map(\.id) == [saved.id])
        a.close()
        let b = ConversationService(store: store, backend: FakeBackend())
        let r = try await b.resume(ConversationStore.latest)
        #expect(r.draft == "What is in this" && r.exchanges.isEmpty)
        // Once it has a file, every save writes it: a draft changed or cleared is not left as it was.
        #expect(try await b.save(draft: "What is in this picture")?.id == saved.id)
        #expect(try store.read(saved.id).draft == "What is in this picture")
        #expect(try await b.save(draft: "", keepingUnsent: true)?.id == saved.id)
        #expect(try store.read(saved.id).draft == nil, "the cleared draft stayed in the file")
        b.close()
    }

    @Test func savesResumesAndRefusesWhatItMust() async throws {
        let root = tempDir("svc"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let a = ConversationService(store: store, backend: FakeBackend())
        #expect(try await a.save(.rename("x")) == nil, "nothing to save before a turn")
        #expect(store.list().isEmpty && a.openLabel == nil)

        (a.backend as! FakeBackend).set(syntheticSnapshot())
        let first = try #require(try await a.save(draft: "And the dog"))
        #expect(try store.read(first.id).draft == "And the dog")
        #expect(first.label == first.id && first.turns == 2)
        let named = try #require(try await a.save(.rename("cats"), draft: "pending"))
        #expect(named.id == first.id && named.label == "cats" && a.openLabel == "cats")

        // Another session: the conversation is locked while `a` has it open.
        let bBackend = FakeBackend()
        let b = ConversationService(store: store, backend: bBackend)
        await #expect(throws: ConversationError.locked(first.id, by: "process \(getpid())")) { try await b.resume("cats") }
        a.close()
        let events = EventLog()
        let r = try await b.resume(ConversationStore.latest) { events.add($0) }
        #expect(r.label == "cats" && r.problems.isEmpty && r.cachedVision == 2 && r.imageCount == 2)
        #expect(r.draft == "pending", "the unsent text comes back with the conversation")
        #expect(r.exchanges.map(\.turn.typed) == syntheticSnapshot().turns.map(\.typed))
        #expect(r.exchanges[0].images.map(\.id) == [101, 102] && r.exchanges[1].images.isEmpty, "images as attached now")
        #expect(events.all == [.phase(.prefill(done: 0, of: 1))])
        #expect(bBackend.held.turns == syntheticSnapshot().turns)
        await #expect(throws: ConversationService.ResumeError.alreadyOpen("cats")) { try await b.resume("cats") }
        // Deleting the conversation open here says so (it was 'open in another internvl-chat', naming this process).
        #expect(throws: ConversationService.DeleteError.openHere("cats")) { try b.delete("cats") }
        #expect(throws: ConversationService.DeleteError.openHere("cats")) { try b.delete(first.id) }
        #expect(store.list().map(\.label) == ["cats"])

        // Saving again writes to the resumed conversation; renaming onto a taken name is refused.
        var more = bBackend.held; more.turns.append(ChatTurn(question: "More?", answer: "No.", imageIDs: [], interrupted: false))
        bBackend.set(more)
        #expect(try await b.save()?.id == first.id && store.list().map(\.turns) == [3])
        let c = ConversationService(store: store, backend: FakeBackend(syntheticSnapshot(answer: "A dog.")))
        _ = try await c.save()
        await #expect(throws: ConversationError.nameTaken("cats", id: first.id)) { try await c.save(.rename("cats")) }
        b.close()
        // .replace: the conversation of that name gets this session's contents.
        let replaced = try #require(try await c.save(.replace("cats")))
        let file = try store.read(first.id)
        #expect(replaced.id == first.id && file.turns.first?.answer == "A dog.")
        c.close()
    }

    /// Read only (`--no-save`): a saved conversation opens even while another session holds it,
    /// and nothing is written or deleted, not after new turns either.
    @Test func aReadOnlySessionOpensButNeverWrites() async throws {
        let root = tempDir("svc-ro"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let writer = ConversationService(store: store, backend: FakeBackend(syntheticSnapshot()))
        let saved = try #require(try await writer.save(.rename("cats"), draft: "pending"))
        let before = try Data(contentsOf: root.appendingPathComponent(saved.id).appendingPathComponent("conversation.json"))
        let backend = FakeBackend()
        let reader = ConversationService(store: store, backend: backend, readOnly: true)
        let r = try await reader.resume("cats")            // the writer still holds its lock
        #expect(r.label == "cats" && r.id == saved.id && r.draft == "pending" && backend.held.turns == syntheticSnapshot().turns)
        var more = backend.held; more.turns.append(ChatTurn(question: "More?", answer: "No.", imageIDs: [], interrupted: false))
        backend.set(more)
        #expect(try await reader.save(.rename("dogs"), draft: "x") == nil && reader.openLabel == nil)
        #expect(throws: ConversationService.DeleteError.readOnly) { try reader.delete("cats") }
        let after = try Data(contentsOf: root.appendingPathComponent(saved.id).appendingPathComponent("conversation.json"))
        #expect(after == before && store.list().map(\.label) == ["cats"])
        writer.close()
    }

    /// A conversation whose folder cannot be written (its lock cannot be opened: a read-only copy
    /// or mount; here the lock is a folder, since tests may run as root) opens to read, saying so;
    /// saving it unchanged writes nothing, and once it has a new turn makes a new conversation.
    @Test func aConversationThatCannotBeWrittenOpensToRead() async throws {
        let root = tempDir("svc-unwritable"); defer { try? FileManager.default.removeItem(at: root) }
        let (store, saved) = try await Self.storeWithSaved(root, name: "cats")
        let lock = root.appendingPathComponent(saved.id).appendingPathComponent(".lock")
        try FileManager.default.removeItem(at: lock)
        try FileManager.default.createDirectory(at: lock, withIntermediateDirectories: false)
        let backend = FakeBackend(), s = ConversationService(store: store, backend: backend)
        let r = try await s.resume("cats")
        #expect(r.label == "cats" && backend.held.turns == syntheticSnapshot().turns)
        #expect(r.problems.first?.contains("cannot be written (") == true && r.problems.first?.contains("open to read only") == true, "\(r.problems)")
        #expect(try await s.save(draft: "typed") == nil && store.list().count == 1, "opened and closed unchanged: no copy")
        var more = backend.held; more.turns.append(ChatTurn(question: "More?", answer: "No.", imageIDs: [], interrupted: false))
        backend.set(more)
        let again = try #require(try await s.save())
        let old = try store.read(saved.id), new = try store.read(again.id)
        #expect(again.id != saved.id && new.turns.count == old.turns.count + 1 && store.list().count == 2)
        s.close()
    }

    @Test func imagesAttachedForTheNextQuestionAreSavedAndComeBack() async throws {
        let root = tempDir("svc-pending"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        var snap = syntheticSnapshot()
        for (id, fill) in [(3, UInt8(11)), (4, UInt8(12)), (5, UInt8(13))] {
            var img = snap.images[0]
            img.bytes = [0x89, 0x50, 0x4E, 0x47] + [UInt8](repeating: fill, count: 4000)
            img.info = AttachedImage(id: id, name: "next \(id).png", width: 320, height: 200, tiles: 3, tokenCost: 770,
                                     grid: TileGrid(cols: 2, rows: 1), tiling: TilingOptions(maxTiles: 2), tokensPerTile: 256,
                                     sha256: ContentHash.sha256(img.bytes))
            snap.images.append(img)
        }
        snap.pendingImageIDs = [3, 4, 5]             // held by the backend; the screen lists 5 and 3 (4 was detached)
        let a = ConversationService(store: store, backend: FakeBackend(snap))
        let saved = try #require(try await a.save(draft: "Which is bigger?", pending: [5, 3]))
        let file = try store.read(saved.id)
        #expect(file.images.map(\.name) == ["pic 1.png", "pic 2.png", "next 3.png", "next 5.png"], "the detached image is not kept")
        #expect(file.pending == [3, 2])
        // The Markdown transcript has the images its turns show, not those of the unsent question.
        let md = try store.exportMarkdown(saved.id, to: root.appendingPathComponent("md"))
        let copied = try FileManager.default.contentsOfDirectory(atPath: md.deletingPathExtension().path + "-images")
        #expect(Set(copied) == Set(file.images.prefix(2).map { "\($0.sha256).\($0.format)" }))
        a.close()
        let b = ConversationService(store: store, backend: FakeBackend())
        let r = try await b.resume(saved.id)
        // As attached now (the fake backend numbers them 100 up from their place in the file).
        #expect(r.pending.map(\.id) == [104, 103] && r.pending.map(\.name) == ["next 5.png", "next 3.png"])
        #expect(r.draft == "Which is bigger?" && r.exchanges[0].images.map(\.id) == [101, 102])
        b.close()
        // Saved without any: the file has no pending list, and a resume gets none.
        let c = ConversationService(store: store, backend: FakeBackend(snap))
        let plain = try #require(try await c.save())
        #expect(try store.read(plain.id).pending == nil && store.list().first { $0.id == plain.id }?.images == 2)
        c.close()
        // A hand-edited index past the images is refused with a message.
        let url = root.appendingPathComponent("\(saved.id)/conversation.json")
        var json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        json["pending"] = [7]
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        #expect(throws: ConversationError.invalid(url.path, reason: "the images for the next question include image 8, but there are 4")) {
            try store.read(saved.id)
        }
    }

    @Test func workRunsInTheOrderItWasHandedIn() async throws {
        let root = tempDir("svc-order"); defer { try? FileManager.default.removeItem(at: root) }
        let svc = ConversationService(store: ConversationStore(root: root), backend: FakeBackend())
        let log = EventLog()
        svc.inOrder { try? await Task.sleep(for: .milliseconds(200)); log.add(.text("slow")) }
        svc.inOrder { log.add(.text("quick")) }
        svc.inOrder { log.add(.text("last")) }
        await svc.waitForPending()
        #expect(log.all == [.text("slow"), .text("quick"), .text("last")])
        // The blocking wait, from a thread of its own as the app's main thread calls it.
        func onThread(_ f: @escaping @Sendable () -> Bool) async -> Bool {
            await withCheckedContinuation { c in Thread { c.resume(returning: f()) }.start() }
        }
        svc.inOrder { log.add(.text("more")) }
        // The work needs a thread of the pool, which the suite's synchronous tests may hold for a
        // long while on a two-core machine: a bound for a hang, not a speed.
        #expect(await onThread { svc.waitForPending(seconds: 300) } && log.all.last == .text("more"))
        svc.inOrder { try? await Task.sleep(for: .seconds(3)) }
        #expect(await onThread { !svc.waitForPending(seconds: 0.05) }, "a wait that runs out says so")
    }

    @Test func aFailedRestoreClosesTheOpenConversation() async throws {
        let root = tempDir("svc-fail"); defer { try? FileManager.default.removeItem(at: root) }
        let store = ConversationStore(root: root)
        let a = ConversationService(store: store, backend: FakeBackend(syntheticSnapshot()))
        let saved = try #require(try await a.save(.rename("one")))
        a.close()
        let b = ConversationService(store: store, backend: FakeBackend(syntheticSnapshot(), failRestore: "out of memory"))
        _ = try await b.save(.rename("two"))
        await #expect(throws: ConversationService.ResumeError.restoreFailed("one", reason: "out of memory")) { try await b.resume(saved.id) }
        #expect(b.openLabel == nil)
        // Both are free again: neither lock is held.
        let c = ConversationService(store: store, backend: FakeBackend())
        #expect(try await c.resume("two").label == "two")
        c.close()
        #expect(try await c.resume("one").label == "one")
        c.close()
    }
}

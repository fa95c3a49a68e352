import ChatAPI
import Foundation

/// The saved conversation one chat session writes to, and the flows over it that every front
/// end shares: resume a saved conversation into the backend, save (under a name), start anew.
/// The CLI and the full-screen app both go through it; neither holds a flow of its own.
/// (Listing needs no session: `ConversationStore.list(matching:)`.)
///
/// The open conversation is created at the first save and its lock held until `close()` (or
/// until another is resumed, or a new one started).
public final class ConversationService: @unchecked Sendable {
    public let store: ConversationStore
    public let backend: ChatBackend
    private let lock = NSLock()
    private var handle: ConversationStore.Handle?
    /// The turns of a conversation opened to read because its folder cannot be written: saving it
    /// unchanged (at quit, before a /load) would only copy it into a new conversation.
    private var borrowedTurns: Int?
    private var tail: Task<Void, Never>?
    /// Only reads (`--no-save`): saved conversations are listed and resumed without taking their
    /// lock, and nothing is written or deleted.
    public let readOnly: Bool

    public init(store: ConversationStore, backend: ChatBackend, readOnly: Bool = false) {
        self.store = store; self.backend = backend; self.readOnly = readOnly
    }

    /// The open conversation's name, else its id; nil before the first save or resume.
    public var openLabel: String? { locked { handle?.label } }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body()
    }

    /// Makes `h` the open conversation, closing the one before.
    private func replaceHandle(with h: ConversationStore.Handle?) {
        let old = locked { () -> ConversationStore.Handle? in let o = handle; handle = h; borrowedTurns = nil; return o }
        if old !== h { old?.close() }
    }

    // MARK: resuming

    /// A saved conversation back in the session.
    public struct Resumed: Sendable {
        /// One question and its answer, with the images it showed as they are attached now.
        public struct Exchange: Sendable, Equatable {
            public var turn: ChatTurn
            public var images: [AttachedImage]
        }
        public var id: String
        public var label: String
        public var exchanges: [Exchange]
        /// The unsent text saved with it ("" when none).
        public var draft = ""
        /// Its system message (as the session now has it).
        public var systemMessage = ""
        /// The images saved as attached for the next question, as attached now.
        public var pending: [AttachedImage] = []
        /// Problems found, one sentence each (the conversation resumed anyway).
        public var problems: [String]
        /// Images whose stored vision tokens fitted the model, of `imageCount`.
        public var cachedVision: Int
        public var imageCount: Int
        /// The model the conversation was saved with.
        public var savedModel: ModelIdentity?
    }

    /// What resuming with another model (or the same one in another weight format) means.
    static func modelChange(saved: ModelIdentity, now: ModelIdentity, images: Int) -> String {
        let was = "\(saved.name) (\(saved.weightFormat))", isNow = "\(now.name) (\(now.weightFormat))"
        let which = was == isNow ? "another version of \(was)" : was
        let what = images == 0 ? "its text is" : images == 1 ? "its text and its image are" : "its text and its \(images) images are"
        return "This conversation was saved with \(which); it continues with \(isNow): \(what) encoded again "
            + "for this model, and the earlier answers came from the other one."
    }

    public enum ResumeError: LocalizedError, Equatable {
        /// The target is the conversation this session already has open (nothing changed).
        case alreadyOpen(String)
        /// The backend could not take the conversation in; its own conversation is gone too.
        case restoreFailed(String, reason: String)

        public var errorDescription: String? {
            switch self {
            case .alreadyOpen(let l): return "\(l) is the conversation already open."
            case .restoreFailed(let l, let r): return "Could not load \(l): \(r)"
            }
        }
    }

    /// Opens the saved conversation `target` (a name, an id, a unique id prefix; "" or
    /// `ConversationStore.latest` for the most recent) and restores it into the backend, its
    /// images from stored vision tokens when they were computed by this model. `progress` gets
    /// the backend's progress events. On success it becomes the open conversation.
    ///
    /// Errors: the store's (`ConversationError`: not found, locked, invalid...) leave the session
    /// as it was; `ResumeError.restoreFailed` means the backend's conversation was emptied, and
    /// the previously open conversation is closed with it.
    public func resume(_ target: String, progress: @Sendable (ChatEvent) -> Void = { _ in }) async throws -> Resumed {
        let id = try store.resolve(target)
        if let open = locked({ handle }), open.id == id { throw ResumeError.alreadyOpen(open.label) }
        var h: ConversationStore.Handle?, f: ConversationFile, unwritable: String?
        if readOnly { f = try store.read(id) } else {
            do { (h, f) = try store.open(id) } catch ConversationError.saveFailed(let path, let reason) {
                // A folder that cannot be written (a read-only copy or mount) is opened to read.
                f = try store.read(id)
                unwritable = "\(path) cannot be written (\(reason)): it is open to read only, and saving makes a new conversation."
            }
        }
        let label = h?.label ?? f.name ?? id
        let current = await backend.modelIdentity
        let loaded = store.load(f, model: current)
        var restored: [AttachedImage]?, failure = "Loading was cancelled."
        for await ev in await backend.restore(loaded.snapshot) {
            switch ev {
            case .restored(let r): restored = r
            case .failed(let m): failure = m
            default: progress(ev)
            }
        }
        guard let restored else {
            h?.close()
            replaceHandle(with: nil)
            throw ResumeError.restoreFailed(label, reason: failure)
        }
        var byID: [Int: AttachedImage] = [:]
        for (old, now) in zip(loaded.snapshot.images, restored) { byID[old.info.id] = now }
        let exchanges = loaded.snapshot.turns.map { Resumed.Exchange(turn: $0, images: $0.imageIDs.compactMap { byID[$0] }) }
        replaceHandle(with: h)
        if unwritable != nil { locked { borrowedTurns = loaded.snapshot.turns.count } }
        var problems = loaded.problems
        if let unwritable { problems.insert(unwritable, at: 0) }
        if !f.model.sameModel(as: current) {
            problems.insert(Self.modelChange(saved: f.model, now: current, images: f.images.count), at: 0)
        }
        var r = Resumed(id: id, label: label, exchanges: exchanges, problems: problems,
                        cachedVision: loaded.cachedVision, imageCount: f.images.count)
        r.savedModel = f.model
        r.draft = loaded.snapshot.draft
        r.systemMessage = loaded.snapshot.systemMessage
        r.pending = loaded.snapshot.pendingImageIDs.compactMap { byID[$0] }
        return r
    }

    // MARK: saving

    /// How a save names the conversation.
    public enum Naming: Sendable, Equatable {
        /// As it is (a new conversation has its id only).
        case keep
        /// Give the open conversation this name; refused when another conversation has it.
        case rename(String)
        /// Save as the conversation of this name, replacing its contents (a new one when none
        /// has it): what a script that saves the same name every run wants.
        case replace(String)
    }

    public struct Saved: Sendable, Equatable {
        public var id: String
        public var label: String
        public var turns: Int
    }

    /// Saves the backend's conversation, with `draft` (text typed and not sent) and the images
    /// `pending` (ids, in order) attached for the next question; nil (and nothing written)
    /// while it has no turn and no file, unless `keepingUnsent` and there is a draft or a pending
    /// image (a save nobody was asked about, as at a signal: they are all there is to keep). A
    /// conversation with a file (one resumed with its draft only) is always saved, so that the
    /// file does not keep a draft since cleared or sent. Other images the backend holds and no
    /// turn shows are left out.
    public func save(_ naming: Naming = .keep, draft: String = "", pending: [Int] = [], keepingUnsent: Bool = false) async throws -> Saved? {
        if readOnly { return nil }
        var snapshot = await backend.snapshot()
        snapshot.draft = draft
        // An image sent before and attached again has the id a turn shows: it is pending too.
        let held = Set(snapshot.images.map(\.info.id)), shown = Set(snapshot.turns.flatMap(\.imageIDs))
        snapshot.pendingImageIDs = pending.filter { held.contains($0) }
        let keep = shown.union(snapshot.pendingImageIDs)
        snapshot.images = snapshot.images.filter { keep.contains($0.info.id) }
        let unsent = !draft.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty || !snapshot.pendingImageIDs.isEmpty
        if naming == .keep, let borrowed = locked({ borrowedTurns }), snapshot.turns.count <= borrowed { return nil }
        guard !snapshot.turns.isEmpty || (keepingUnsent && unsent) || locked({ handle != nil }) else { return nil }
        return try save(snapshot, naming)
    }

    /// Saves `snapshot` as the open conversation (created at the first save).
    public func save(_ snapshot: SessionSnapshot, _ naming: Naming = .keep) throws -> Saved {
        var h = locked { handle }
        if case .replace(let name) = naming, h?.name != name {
            let existing = store.list().first { $0.name == name && $0.id != h?.id }
            h?.close()
            replaceHandle(with: nil)
            h = try existing.map { try store.open($0.id).0 }
        }
        let target = try h ?? store.create()
        replaceHandle(with: target)
        switch naming {
        case .keep: break
        case .rename(let name), .replace(let name): try store.rename(target, to: name)
        }
        try store.save(snapshot, to: target)
        return Saved(id: target.id, label: target.label, turns: snapshot.turns.count)
    }

    // MARK: ordering

    /// Runs `body` after everything handed to `inOrder` before it has finished: saves after each
    /// answer and on quit run one after another, and a resume sees the conversation on screen
    /// saved first.
    @discardableResult
    public func inOrder(_ body: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        locked {
            let previous = tail
            let t = Task { await previous?.value; await body() }
            tail = t
            return t
        }
    }

    /// Returns when the work handed to `inOrder` so far is done.
    public func waitForPending() async {
        await locked({ tail })?.value
    }

    /// Blocks until the work handed to `inOrder` so far is done, at most `seconds`; false when
    /// it timed out. For a synchronous caller (an app quitting on its main thread), never from a
    /// task: it would hold a thread of the pool the work needs.
    public func waitForPending(seconds: Double) -> Bool {
        guard let last = locked({ tail }) else { return true }
        let done = DispatchSemaphore(value: 0)
        Task { await last.value; done.signal() }
        return done.wait(timeout: .now() + seconds) == .success
    }

    // MARK: closing

    /// The session starts a new conversation: the open one is closed (the next save creates
    /// another).
    public func startNew() { replaceHandle(with: nil) }

    /// Deletes a saved conversation (`ConversationStore.delete`), not the one open here.
    @discardableResult
    public func delete(_ target: String) throws -> String {
        if readOnly { throw DeleteError.readOnly }
        if !target.isEmpty, let open = locked({ handle }), try store.resolve(target) == open.id { throw DeleteError.openHere(open.label) }
        return try store.delete(target)
    }

    public enum DeleteError: LocalizedError, Equatable {
        /// The target is the conversation this session has open.
        case openHere(String)
        /// Conversations are only read here (`--no-save`).
        case readOnly

        public var errorDescription: String? {
            switch self {
            case .openHere(let l): return "\(l) is the conversation open here: /new starts another, then /delete \(l) deletes it."
            case .readOnly: return "Saving is off (--no-save): nothing is written or deleted."
            }
        }
    }

    /// Releases the open conversation's lock.
    public func close() { replaceHandle(with: nil) }
}

import ChatAPI
@preconcurrency import CNcursesw
import Conversations
import Foundation
import Imaging
import Logging

/// The app loop: keys and backend events become actions, `reduce` changes the state and
/// returns effects, the effects start backend work whose events come back through a queue,
/// and a frame is rendered and diffed to the terminal whenever the state or the size changed.
/// The loop never waits on the model.
public final class App: @unchecked Sendable {
    let backend: ChatBackend
    var state: AppState
    let inbox = Inbox()
    let log = Logger(label: "app")

    public var maxTiles: Int? {
        get { state.maxTiles }
        set { state.maxTiles = newValue }
    }

    /// `seedFixed`: every answer uses `parameters.seed` (else each draws its own).
    public init(backend: ChatBackend, modelName: String, contextSize: Int, parameters: SamplingParameters,
                seedFixed: Bool = false, weightFormat: String = "bf16") {
        self.backend = backend
        state = AppState()
        state.modelName = modelName
        state.contextSize = contextSize
        state.parameters = parameters
        state.seedFixed = seedFixed
        state.weightFormat = weightFormat
    }

    /// The backend is a `DeferredBackend` whose model is loading: the status bar says so until
    /// `modelReady` or `modelFailed`. Call before `run`.
    public func modelLoading() { state.modelLoading = true }
    /// The background load finished (from any thread).
    public func modelReady(weightFormat: String) { inbox.post(.modelReady(weightFormat: weightFormat)) }
    /// The background load failed (from any thread): the app shows why and keeps what was typed.
    public func modelFailed(_ message: String) { inbox.post(.modelFailed(message)) }

    /// Actions delivered from other threads.
    final class Inbox: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [Action] = []
        func post(_ a: Action) { lock.lock(); items.append(a); lock.unlock() }
        func take() -> [Action] { lock.lock(); defer { lock.unlock() }; let t = items; items = []; return t }
    }

    /// The conversation's messages as laid out for the last frames.
    let layoutCache = ConversationLayoutCache()
    /// The input as laid out for the last frames.
    let inputCache = InputLayoutCache()

    public var theme: Theme = .dark
    /// Inputs kept between runs: Up recalls them; each one sent is added (nil: this run only).
    public var inputHistory: InputHistory? {
        didSet { state.history = inputHistory?.load() ?? [] }
    }
    /// Where and how the conversation is saved and resumed (nil: not saved).
    /// The terminal while `run` has it.
    var terminal: Terminal?
    public var conversations: ConversationService? {
        didSet { state.savesConversation = conversations.map { !$0.readOnly } ?? false }
    }

    static func now() -> Double { ProcessInfo.processInfo.systemUptime }

    /// Runs until the user quits. `graphics` comes from `GraphicsProbe.detect`, called before.
    public func run(graphics: GraphicsSupport, resume: String? = nil) {
        state.graphics = graphics.mode
        let term = Terminal(theme: theme, graphics: graphics)
        terminal = term
        var signalled: Int32?
        defer {
            term.close(); terminal = nil; try? FileManager.default.removeItem(at: framesFolder)
            if let s = signalled { Terminal.end(by: s) }
        }
        if let r = resume { dispatch(.resume(r == ConversationStore.latest ? "" : r)) }
        var dirty = true, lastSize = (0, 0)
        while !state.quitRequested {
            if let s = Terminal.takeSignal() {
                // Killed, or the terminal closed: what is typed and answered is saved, as on a quit,
                // and a draft or attached images even before a first turn (nobody was asked).
                log.notice("signal \(s): saving and quitting")
                signalled = s
                state.quitRequested = true
                quit(keepingUnsent: true)
                break
            }
            for a in inbox.take() { dispatch(a); dirty = true }
            let (w, h) = term.size
            if (w, h) != lastSize { lastSize = (w, h); dirty = true }
            if dirty {
                let (grid, scroll, lines) = renderFrame(state, width: w, height: h, cache: layoutCache, inputCache: inputCache)
                state.scroll = scroll
                state.linesShown = lines
                let images = imagesByID()
                term.draw(grid, cursor: cursorPosition(width: w, height: h), images: { images[$0] })
                dirty = false
            }
            var k = term.key()
            if case .none = k { continue }
            if case .paste(let text) = k {
                let until = DispatchTime.now().uptimeNanoseconds + PasteTail.longestNanoseconds   // wheel turns keep coming
                let tail = PasteTail.read {
                    DispatchTime.now().uptimeNanoseconds < until ? term.key(waitingMilliseconds: PasteTail.pauseMilliseconds) : .none
                }
                if !tail.isEmpty { log.notice("the paste went on past an end-of-paste marker: \(tail.count) more characters taken as pasted text") }
                k = .paste(text + tail)
            }
            handle(k)
            // Keys already waiting (typing faster than frames, a paste the terminal does not
            // bracket) go in before the next frame: up to 512 of them or 25 ms.
            let until = DispatchTime.now().uptimeNanoseconds + 25_000_000
            for _ in 0..<512 where !state.quitRequested && DispatchTime.now().uptimeNanoseconds < until {
                let more = term.key(wait: false)
                if case .none = more { break }
                handle(more)
            }
            dirty = true
        }
        finishSaving()
        conversations?.close()
        log.info("quit")
    }

    /// Waits (at most 30 s) for the saves already started, the one on quit included.
    func finishSaving() {
        if conversations?.waitForPending(seconds: 30) == false { log.error("quit before the last save finished") }
    }

    /// Image work (attach, release) in the order the loop asked for it: a release lands before
    /// an attach asked after it, else the session could find the detached image again by its
    /// content and hand back the id that the late release then drops.
    var imageWork: Task<Void, Never>?
    /// Ids this app released. An attach that comes back with one of them found its image by
    /// content before that release landed: it is asked again, after the release, for a live id.
    var releasedIDs: Set<Int> = []

    /// Counts Esc presses that stopped attaching: an attach asked before the latest one does not
    /// start, and one under way is stopped again on each of its events (the backend may reset
    /// its cancel flag when the attach starts, after the Esc).
    final class StopCount: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        var value: Int { lock.withLock { n } }
        func raise() { lock.withLock { n += 1 } }
    }
    let attachStops = StopCount()

    func inOrder(_ op: @escaping @Sendable () async -> Void) {
        let previous = imageWork
        imageWork = Task { await previous?.value; await op() }
    }

    func dispatch(_ a: Action) {
        if case .attached(let img) = a, releasedIDs.contains(img.id) {
            log.info("attach of \(img.name) came back as released image \(img.id): asked again")
            return perform([.attach(path: img.name, maxTiles: img.tiling.maxTiles)])
        }
        if case .retiled(let old, let img) = a, releasedIDs.contains(img.id) {
            return perform([.retile(oldID: old, path: img.name, maxTiles: img.tiling.maxTiles)])
        }
        switch a {
        case .event(.finished(let st), _):
            log.info("turn finished: \(st.generatedTokenIDs.count) tokens, \(st.promptTokens) prompt tokens (\(st.reusedTokens) reused), first token \(st.firstTokenSeconds) s\(st.interrupted ? ", interrupted" : "")")
        case .event(.failed(let m), _), .attachFailed(let m): log.notice("failed: \(m)")
        case .attached(let i): log.info("attached \(i.name): \(i.width)x\(i.height), \(i.tiles) tiles")
        default: break
        }
        let before = state.pending.map(\.id), sent = state.history.count
        perform(reduce(&state, a))
        if state.history.count > sent, let h = inputHistory, let entry = state.history.last { h.append(entry) }
        let kept = Set(state.pending.map(\.id) + state.messages.flatMap { $0.images.map(\.id) })
        let dropped = before.filter { !kept.contains($0) }
        if !dropped.isEmpty {
            releasedIDs.formUnion(dropped)
            let backend = self.backend
            inOrder { await backend.release(imageIDs: dropped) }
        }
    }

    func imagesByID() -> [Int: RGBImage] {
        var out: [Int: RGBImage] = [:]
        for i in state.pending { out[i.id] = i.thumbnail }
        if let v = state.video { out[v.strip.id] = v.strip.thumbnail }
        for m in state.messages {
            for i in m.images { out[i.id] = i.thumbnail }
            if let v = m.video { out[v.strip.id] = v.strip.thumbnail }
        }
        return out
    }

    func cursorPosition(width: Int, height: Int) -> (x: Int, y: Int)? {
        let input = inputLayout(state, width: width, cache: inputCache)
        guard let L = Layout(width: width, height: height, inputRows: input.rowCount) else { return nil }
        let view = InputView(state, L.input, input)
        return (min(width - 1, 2 + view.cursor.col), L.input.y + 1 + view.cursor.row - view.first)
    }

    /// Pasted (or dropped) text: paths that all name images or videos are attached, anything
    /// else (a text file's path, a folder, a sentence) goes into the input.
    func paste(_ text: String) {
        if let paths = PathInput.split(text), paths.allSatisfy(PathInput.isAttachable) {
            log.info("pasted \(paths.count) path(s): attaching")
            dispatch(.attachPaths(paths))
        } else {
            dispatch(.type(text))
        }
    }

    func handle(_ k: Terminal.Key) {
        switch k {
        case .none: break
        case .char(let c): handle(char: c)
        case .alt(let c): handle(alt: c)
        case .code(let code): handle(code: code)
        case .paste(let text): paste(text)
        case .wheel(let n): dispatch(.scroll(n))
        }
    }

    func handle(char c: String) {
        switch c {
        case "\r": dispatch(.enter)
        case "\u{01}": dispatch(.home)
        case "\u{05}": dispatch(.end)
        case "\u{0B}": dispatch(.killToEnd)
        case "\u{15}": dispatch(.killToStart)
        case "\u{17}": dispatch(.killWord)
        case "\u{19}": dispatch(.yank)
        case "\n": dispatch(.newline)          // Ctrl-J (nonl: Enter arrives as \r)
        case "\t":
            let names = { self.conversations?.store.list().flatMap { [$0.name, $0.id].compactMap { $0 } } ?? [] }
            if let (input, hint) = PathInput.complete(state.input) ?? completeCommand(state.input, names: names) {
                dispatch(.setInput(input, hint: hint))
            }
        case "\u{03}": dispatch(.interrupt)
        case "\u{04}": dispatch(.quit)
        case "\u{7F}", "\u{08}": dispatch(.backspace)
        default:
            if let s = c.unicodeScalars.first, s.value >= 0x20 { dispatch(.type(c)) }
        }
    }

    /// Alt (or Esc) and a key.
    func handle(alt c: String) {
        switch c {
        case "\r", "\n": dispatch(.newline)
        case "b", "B": dispatch(.wordLeft)
        case "f", "F": dispatch(.wordRight)
        case "\u{7F}", "\u{08}": dispatch(.killWord)      // Alt-Backspace
        default: break
        }
    }

    let helpKey = shim_KEY_F(1)

    func handle(code k: Int32) {
        switch k {
        case 27: dispatch(.cancel)
        case KEY_BACKSPACE: dispatch(.backspace)
        case KEY_DC: dispatch(.delete)
        case KEY_LEFT: dispatch(.left)
        case KEY_RIGHT: dispatch(.right)
        case Terminal.wordLeftKey: dispatch(.wordLeft)
        case Terminal.wordRightKey: dispatch(.wordRight)
        case KEY_HOME: dispatch(.home)
        case KEY_END: dispatch(.end)
        case KEY_UP: dispatch(.up)
        case KEY_DOWN: dispatch(.down)
        case KEY_PPAGE: dispatch(.pageUp)
        case KEY_NPAGE: dispatch(.pageDown)
        case KEY_ENTER: dispatch(.enter)
        case helpKey: dispatch(.help)
        default: break      // KEY_RESIZE: the next frame is rendered at the new size
        }
    }

    /// Attaches `path` in the background: progress goes to the status line, the result becomes
    /// `done(image)` or `failed(message)`; `stopped` is the message when Esc stopped it.
    func attach(_ path: String, _ maxTiles: Int?, stopped: String, done: @escaping @Sendable (AttachedImage) -> Action,
                failed: @escaping @Sendable (String) -> Action) {
        let backend = self.backend, inbox = self.inbox, stops = attachStops, asked = attachStops.value
        inOrder {
            guard stops.value == asked else { inbox.post(failed(stopped)); return }
            var ended = false
            for await ev in await backend.attachStreaming(path: path, maxTiles: maxTiles) {
                if stops.value != asked { backend.cancel() }
                switch ev {
                case .attached(let a): inbox.post(done(a)); ended = true
                case .failed(let m): inbox.post(failed(m)); ended = true
                default: inbox.post(.event(ev, at: App.now()))
                }
            }
            // A stopped attach ends its stream with neither (as a stopped answer does).
            if !ended { inbox.post(failed(stopped)) }
        }
    }

    /// Where this run keeps sampled video frames (attached by path); removed when the app ends, as
    /// the session and saved conversations hold the frames' bytes.
    let framesFolder = FileManager.default.temporaryDirectory
        .appendingPathComponent("internvl-chat-frames-\(ProcessInfo.processInfo.processIdentifier)")

    /// Samples a video's frames (PNG files in a folder of this run), attaches each in order and
    /// posts them as one video, or one error naming the file.
    func attachVideo(_ path: String, segments: Int, maxTiles: Int) {
        let backend = self.backend, inbox = self.inbox, stops = attachStops, asked = attachStops.value
        let folder = framesFolder.appendingPathComponent(UUID().uuidString)
        inOrder {
            do {
                guard stops.value == asked else { throw CancellationError() }
                let sampled = try VideoFiles.sampleFrames(path, segments: segments, into: folder)
                var images: [AttachedImage] = []
                for f in sampled {
                    guard stops.value == asked else { throw CancellationError() }
                    images.append(try await backend.attach(path: f.file, maxTiles: maxTiles))
                }
                inbox.post(.videoAttached(path: path, frames: sampled.map(\.index), images: images))
            } catch is CancellationError {
                inbox.post(.attachFailed("Sampling \((path as NSString).lastPathComponent) was stopped; attach it again."))
            } catch {
                inbox.post(.attachFailed(error.localizedDescription))
            }
        }
    }

    // MARK: conversations

    /// Stops the answer under way and saves; `keepingUnsent` as `ConversationService.save` has it.
    func quit(keepingUnsent: Bool = false) {
        backend.cancel()
        save(name: nil, explicit: false, keepingUnsent: keepingUnsent)
    }

    /// Saves the session's conversation (after the saves before it); errors come back as messages.
    func save(name: String?, explicit: Bool, keepingUnsent: Bool = false) {
        guard let conversations, !conversations.readOnly else {
            if explicit { inbox.post(.notice(conversations == nil ? "Saving is off (no conversation folder)." : noSaveSentence, error: true)) }
            return
        }
        let inbox = self.inbox, log = self.log, draft = state.input, pending = state.pending.map(\.id)
        conversations.inOrder {
            do {
                guard let saved = try await conversations.save(name.map { .rename($0) } ?? .keep, draft: draft, pending: pending,
                                                               keepingUnsent: keepingUnsent) else {
                    if explicit { inbox.post(.notice("Nothing to save yet: ask something first.", error: true)) }
                    return
                }
                log.info("saved \(saved.id) (\(saved.turns) turns)")
                inbox.post(.saved(label: saved.label, explicit: explicit))
            } catch {
                log.error("save failed: \(error)")
                let message = (error as? LocalizedError)?.errorDescription ?? "\(error)"
                // Only a save that did not write counts as unsaved; a refused name wrote nothing new to lose.
                if case ConversationError.saveFailed? = error as? ConversationError { inbox.post(.saveFailed(message)) }
                else { inbox.post(.notice(message, error: true)) }
            }
        }
    }

    /// Resumes a saved conversation into the session (its images restored, from stored vision
    /// tokens when they fit this model) and onto the screen.
    func load(_ target: String) {
        guard let conversations else { inbox.post(.loadFailed("Saving is off (no conversation folder).", reset: false)); return }
        save(name: nil, explicit: false)                 // with what is typed and attached and not yet sent
        let inbox = self.inbox, log = self.log
        conversations.inOrder {                          // the conversation on screen is saved first
            do {
                let r = try await conversations.resume(target) { inbox.post(.event($0, at: App.now())) }
                let messages = r.exchanges.flatMap { x -> [AppState.Message] in
                    [userMessage(x.turn, images: x.images),
                     .init(kind: .assistant, text: x.turn.answer, interrupted: x.turn.interrupted)]
                }
                log.info("loaded \(r.id): \(r.exchanges.count) turns, \(r.cachedVision)/\(r.imageCount) images from stored vision tokens")
                let last = r.exchanges.last?.turn.record
                let standard = await conversations.backend.defaultSystemMessage
                inbox.post(.loaded(messages: messages, label: r.label, problems: r.problems, draft: r.draft, pending: r.pending,
                                   contextUsed: last.map { $0.promptTokens + $0.generatedTokens } ?? 0,
                                   system: r.systemMessage == standard ? nil : r.systemMessage))
            } catch let e as ConversationService.ResumeError {
                if case .restoreFailed = e { inbox.post(.loadFailed(e.errorDescription ?? "\(e)", reset: true)) }
                else { inbox.post(.loadFailed(e.errorDescription ?? "\(e)", reset: false)) }
            } catch {
                inbox.post(.loadFailed((error as? LocalizedError)?.errorDescription ?? "\(error)", reset: false))
            }
        }
    }

    /// Deletes a saved conversation (not the one open here: its lock is held).
    func delete(_ target: String) {
        guard let conversations else { inbox.post(.notice("Saving is off (no conversation folder).", error: true)); return }
        let inbox = self.inbox
        conversations.inOrder {
            do { inbox.post(.notice("Deleted \(try conversations.delete(target)).", error: false)) }
            catch { inbox.post(.notice((error as? LocalizedError)?.errorDescription ?? "\(error)", error: true)) }
        }
    }

    /// Lists (or searches) saved conversations, after the saves already started.
    func list(_ text: String) {
        guard let conversations else { inbox.post(.notice("Saving is off (no conversation folder).", error: true)); return }
        let inbox = self.inbox
        conversations.inOrder { inbox.post(App.listing(conversations, text)) }
    }

    static func listing(_ conversations: ConversationService, _ text: String) -> Action {
        let all = conversations.store.list(matching: text)
        guard !all.isEmpty else {
            return .notice(text.isEmpty ? "No saved conversations yet (in \(conversations.store.root.path))." : "No conversation mentions \(text).", error: false)
        }
        let df = DateFormatter(); df.dateFormat = "yyyy-MM-dd HH:mm"
        let lines = all.prefix(20).map { s in
            s.problem.map { "\(s.id)  unreadable: \($0)" }
                ?? "\(s.label)  \(df.string(from: s.updated))  \(counted(s.turns, "turn")), \(counted(s.images, "image"))  \(s.title)"
        }
        let more = all.count > 20 ? "\n… \(all.count - 20) more" : ""
        return .notice((text.isEmpty ? "Saved conversations (/load NAME):\n" : "Conversations mentioning \(text):\n")
                       + lines.joined(separator: "\n") + more, error: false)
    }

    /// Starts the work an effect asks for; results come back as actions through the inbox.
    func perform(_ effects: [Effect]) {
        for e in effects {
            let backend = self.backend, inbox = self.inbox
            let p = answerParameters(state) { UInt64.random(in: 0...UInt64(UInt32.max)) }
            let forward: @Sendable (AsyncStream<ChatEvent>) async -> Void = { stream in
                for await ev in stream { inbox.post(.event(ev, at: App.now())) }
                inbox.post(.answerEnded)
            }
            switch e {
            case .send(let q, let typed, let images):
                log.info("send: \(q.count) characters, \(images.count) image(s)")
                Task { await forward(await backend.send(q, typed: typed ?? q, images: images, parameters: p)) }
            case .attachVideo(let path, let segments, let maxTiles):
                log.info("attach video \(path), \(segments) frames")
                attachVideo(path, segments: segments, maxTiles: maxTiles)
            case .attach(let path, let maxTiles):
                log.info("attach \(path)")
                attach(path, maxTiles, stopped: "Attaching \((path as NSString).lastPathComponent) was stopped; attach it again.",
                       done: { .attached($0) }, failed: { .attachFailed($0) })
            case .retile(let old, let path, let maxTiles):
                attach(path, maxTiles, stopped: "Re-cutting \((path as NSString).lastPathComponent) was stopped; it keeps the tiles it had.",
                       done: { .retiled(oldID: old, $0) }, failed: { .retileFailed(oldID: old, $0) })
            case .prefillAhead(let images): Task { _ = await backend.prefillAhead(images: images) }
            case .cancel: backend.cancel()
            case .stopAttaching:
                log.info("attaching stopped (Esc)")
                attachStops.raise()
                backend.cancel()
            case .regenerate: Task { await forward(await backend.regenerate(parameters: p)) }
            case .edit(let q, let typed): Task { await forward(await backend.editLast(q, typed: typed ?? q, parameters: p)) }
            case .newConversation:
                if let conversations { conversations.inOrder { conversations.startNew() } }
                Task { await backend.newConversation() }
            case .setSystem(let t): Task { await backend.setSystemMessage(t) }
            case .save(let name, let explicit): save(name: name, explicit: explicit)
            case .load(let target): load(target)
            case .list(let text): list(text)
            case .delete(let target): delete(target)
            case .copy(let text): terminal?.copyToClipboard(text)
            case .theme(let name):
                do {
                    let t = try Theme.load(name)
                    theme = t
                    terminal?.apply(t)
                    inbox.post(.notice("Theme \(t.name).", error: false))
                } catch {
                    inbox.post(.notice((error as? LocalizedError)?.errorDescription ?? "\(error)", error: true))
                }
            case .quit: quit()
            }
        }
    }
}

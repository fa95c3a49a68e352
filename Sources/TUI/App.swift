import Chat
import CNcursesw
import Foundation

/// The app loop: keys and backend events become actions, `reduce` changes the state and
/// returns effects, the effects start backend work whose events come back through a queue,
/// and each frame is rendered and diffed to the terminal. The loop never waits on the model.
public final class App: @unchecked Sendable {
    let backend: ChatBackend
    var state: AppState
    let inbox = Inbox()
    var parameters: SamplingParameters

    public var maxTiles: Int? {
        get { state.maxTiles }
        set { state.maxTiles = newValue }
    }

    public init(backend: ChatBackend, modelName: String, contextSize: Int, parameters: SamplingParameters) {
        self.backend = backend
        self.parameters = parameters
        state = AppState()
        state.modelName = modelName
        state.contextSize = contextSize
    }

    /// Actions delivered from other threads.
    final class Inbox: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [Action] = []
        func post(_ a: Action) { lock.lock(); items.append(a); lock.unlock() }
        func take() -> [Action] { lock.lock(); defer { lock.unlock() }; let t = items; items = []; return t }
    }

    public var theme: Theme = .dark

    public func run() {
        let term = Terminal(theme: theme)
        defer { term.close() }
        while !state.quitRequested {
            for a in inbox.take() { perform(reduce(&state, a)) }
            let (w, h) = term.size
            let grid = render(state, width: w, height: h)
            term.draw(grid, cursor: cursorPosition(width: w, height: h))
            switch term.key() {
            case .none: continue
            case .char(let c): handle(char: c)
            case .alt(let c): if c == "\r" || c == "\n" { perform(reduce(&state, .newline)) }
            case .code(let k): handle(code: k)
            }
        }
    }

    func cursorPosition(width: Int, height: Int) -> (x: Int, y: Int)? {
        guard let L = Layout(width: width, height: height) else { return nil }
        let before = String(state.input.prefix(state.cursor))
        let lastLine = before.split(separator: "\n", omittingEmptySubsequences: false).last.map(String.init) ?? ""
        return (min(width - 1, 2 + TextWidth.of(lastLine) % max(width - 2, 1)), L.input.y + 1)
    }

    func handle(char c: String) {
        switch c {
        case "\r", "\n": perform(reduce(&state, .enter))
        case "\u{01}": perform(reduce(&state, .home))
        case "\u{05}": perform(reduce(&state, .end))
        case "\u{0B}": perform(reduce(&state, .killToEnd))
        case "\u{15}": perform(reduce(&state, .killToStart))
        case "\u{17}": perform(reduce(&state, .killWord))
        case "\u{0A}": perform(reduce(&state, .newline))
        case "\u{03}": perform(reduce(&state, .cancel))
        case "\u{04}": perform(reduce(&state, .quit))
        case "\u{7F}", "\u{08}": perform(reduce(&state, .backspace))
        default:
            if let s = c.unicodeScalars.first, s.value >= 0x20 { perform(reduce(&state, .type(c))) }
        }
    }

    func handle(code k: Int32) {
        switch k {
        case 27: perform(reduce(&state, .cancel))
        case KEY_BACKSPACE: perform(reduce(&state, .backspace))
        case KEY_DC: perform(reduce(&state, .delete))
        case KEY_LEFT: perform(reduce(&state, .left))
        case KEY_RIGHT: perform(reduce(&state, .right))
        case KEY_HOME: perform(reduce(&state, .home))
        case KEY_END: perform(reduce(&state, .end))
        case KEY_UP: perform(reduce(&state, .up))
        case KEY_DOWN: perform(reduce(&state, .down))
        case KEY_PPAGE: perform(reduce(&state, .pageUp))
        case KEY_NPAGE: perform(reduce(&state, .pageDown))
        case KEY_ENTER: perform(reduce(&state, .enter))
        case shim_KEY_F(1): perform(reduce(&state, .type("/help"))); perform(reduce(&state, .enter))
        default: break      // KEY_RESIZE: the next frame is rendered at the new size
        }
    }

    /// Starts the work an effect asks for; results come back as actions through the inbox.
    func perform(_ effects: [Effect]) {
        for e in effects {
            let backend = self.backend, inbox = self.inbox, p = parameters
            switch e {
            case .send(let q, let images):
                Task { for await ev in await backend.send(q, images: images, parameters: p) { inbox.post(.event(ev)) } }
            case .attach(let path, let maxTiles):
                Task {
                    for await ev in await backend.attachStreaming(path: path, maxTiles: maxTiles) {
                        switch ev {
                        case .attached(let a): inbox.post(.attached(a))
                        case .failed(let m): inbox.post(.attachFailed(m))
                        default: inbox.post(.event(ev))
                        }
                    }
                }
            case .prefillAhead(let images): Task { _ = await backend.prefillAhead(images: images) }
            case .cancel: backend.cancel()
            case .regenerate:
                Task { for await ev in await backend.regenerate(parameters: p) { inbox.post(.event(ev)) } }
            case .edit(let q):
                Task { for await ev in await backend.editLast(q, parameters: p) { inbox.post(.event(ev)) } }
            case .newConversation: Task { await backend.newConversation() }
            case .setSystem(let t): Task { await backend.setSystemMessage(t) }
            case .quit: backend.cancel()
            }
        }
    }
}

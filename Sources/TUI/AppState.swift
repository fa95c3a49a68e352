import Chat

/// Everything the screen shows; changed only by `reduce`.
public struct AppState: Sendable, Equatable {
    public struct Message: Sendable, Equatable {
        public enum Kind: Sendable, Equatable { case user, assistant, error, info }
        public var kind: Kind
        public var text: String
        public var images: [AttachedImage] = []
        public var interrupted = false
    }

    public var messages: [Message] = []
    public var input = ""
    /// Cursor position in `input`, in characters.
    public var cursor = 0
    public var pending: [AttachedImage] = []
    public var busy = false
    public var phase: ChatPhase?
    public var lastTokensPerSecond: Double?
    /// Lines scrolled up from the tail (0: follow the answer as it streams).
    public var scroll = 0
    public var history: [String] = []
    public var historyIndex: Int?
    public var modelName = "model"
    public var contextUsed = 0
    public var contextSize = 8192
    public var quitRequested = false
    public var confirmQuit = false
    public var maxTiles: Int?

    public init() {}
}

/// What can happen: keys, the backend's events, the terminal.
public enum Action: Sendable, Equatable {
    case type(String)              // printable text, pasted text included
    case backspace, delete, left, right, home, end
    case killToEnd, killToStart, killWord
    case newline                   // Alt-Enter / Ctrl-J
    case enter
    case up, down, pageUp, pageDown
    case cancel                    // Esc / Ctrl-C
    case quit                      // Ctrl-D
    case event(ChatEvent)
    case attached(AttachedImage)
    case attachFailed(String)
}

/// What the app loop must do for an action; `reduce` itself does nothing outside the state.
public enum Effect: Sendable, Equatable {
    case send(question: String, images: [AttachedImage])
    case attach(path: String, maxTiles: Int?)
    /// Prefill the next prompt up to these images while the user types.
    case prefillAhead([AttachedImage])
    case cancel
    case regenerate
    case edit(String)
    case newConversation
    case setSystem(String)
    case quit
}

import ChatAPI
import Imaging

/// Everything the screen shows; changed only by `reduce`.
public struct AppState: Sendable, Equatable {
    public struct Message: Sendable, Equatable {
        public enum Kind: Sendable, Equatable { case user, assistant, error, info }
        public var kind: Kind
        public var text: String
        public var images: [AttachedImage] = []
        /// The video whose sampled frames are among `images` (shown as its one filmstrip).
        public var video: PendingVideo?
        public var interrupted = false
        public init(kind: Kind, text: String, images: [AttachedImage] = [], video: PendingVideo? = nil, interrupted: Bool = false) {
            self.kind = kind; self.text = text; self.images = images; self.video = video; self.interrupted = interrupted
        }

        /// Its images as they are shown: a video's frames as the video's one filmstrip entry.
        public var shownImages: [AttachedImage] { video?.shown(in: images) ?? images }
    }

    public var messages: [Message] = []
    /// What is being typed, and the cursor in it (grapheme clusters).
    public var editor = LineEditor()
    public var input: String {
        get { editor.text }
        set { editor.replace(with: newValue) }
    }
    public var cursor: Int { editor.cursor }
    public var pending: [AttachedImage] = []
    /// The video whose sampled frames are among `pending` (asked as Frame1: <image> ...).
    public var video: PendingVideo?
    /// Frames sampled from a video (/frames N).
    public var segments = 8
    public var busy = false
    public var phase: ChatPhase?
    public var lastTokensPerSecond: Double?
    /// Lines scrolled up from the tail (0: follow the answer as it streams).
    public var scroll = 0
    /// The conversation's line count in the last frame, and the width it was wrapped at: while
    /// scrolled up, lines that arrive below add to `scroll`, so the view stays where it is.
    public var linesShown: LinesShown?
    public struct LinesShown: Sendable, Equatable { public var count, width: Int }
    public var history: [String] = []
    public var historyIndex: Int?
    /// What was being typed when Up first recalled an earlier input; Down past the newest brings it back.
    public var draft: String?
    public var modelName = "model"
    public var contextUsed = 0
    public var contextSize = 8192
    public var quitRequested = false
    /// Why the last save failed, until one succeeds: quitting then asks first.
    public var unsaved: String?
    public var confirmQuit = false
    /// The conversation is saved (with the unsent text) after each answer and on quit.
    public var savesConversation = false
    /// Set by `/set seed`: every answer then uses that seed; otherwise each answer draws its own.
    public var seedFixed = false
    public var maxTiles: Int?
    /// How thumbnails are drawn (chosen from the terminal before the app starts).
    public var graphics: GraphicsMode = .blocks
    public var parameters = SamplingParameters()
    public var weightFormat = "bf16"
    /// The model is still loading in the background (the screen and typing work meanwhile).
    public var modelLoading = false
    /// The background load failed: nothing can be answered in this run (the status bar says so).
    public var modelLoadFailed = false
    /// The screen as it was before the answer now coming (and the question, images and video it
    /// took from the input): put back when the answer stops before its first token.
    public var beforeAnswer: BeforeAnswer?
    public struct BeforeAnswer: Sendable, Equatable {
        public var messages: [Message]
        public var question: String?
        public var pending: [AttachedImage] = []
        public var video: PendingVideo?
    }
    /// Attaches asked for and not answered yet (an image or a video each): a question waits for them.
    public var attaching = 0
    /// Paths to attach asked while an answer was under way (or a conversation loading), in
    /// order: they start when it ends, with the /tiles and /frames settings of then.
    public var attachesAfterAnswer: [String] = []
    /// Pending images being re-cut with another tile count: the plan shown until it is ready.
    public var retiling: [Int: TilePlan] = [:]
    /// A one-line hint under the input (completions); cleared by the next key.
    public var hint: String?
    /// When the current phase's progress started and from where, for its ETA.
    public var phaseClock: PhaseClock?
    /// The saved conversation's name or id, once saved or loaded.
    public var conversationLabel: String?
    /// The system message set with /system (nil: the model's default).
    public var systemMessage: String?

    public init() {}

    /// Images of the conversation, newest first, each once.
    public var conversationImages: [AttachedImage] {
        var seen = Set<Int>(), out: [AttachedImage] = []
        for m in messages.reversed() { for i in m.shownImages where !seen.contains(i.id) { seen.insert(i.id); out.append(i) } }
        return out
    }
}

public enum GraphicsMode: String, Sendable, Equatable, CaseIterable {
    case sixel, blocks, none
}

/// Progress of a phase over time: the first report of a phase and the latest.
public struct PhaseClock: Sendable, Equatable {
    public var kind: Int
    public var startTime: Double, startDone: Int
    public var time: Double, done: Int, total: Int

    /// Seconds left at the rate so far; nil until there is a rate.
    public var eta: Double? {
        guard done > startDone, time > startTime else { return nil }
        return Double(total - done) * (time - startTime) / Double(done - startDone)
    }
}

/// What can happen: keys, the backend's events, the terminal.
public enum Action: Sendable, Equatable {
    case modelReady(weightFormat: String)  // the background load finished
    case modelFailed(String)               // it failed: why
    case type(String)              // printable text, pasted text included
    case backspace, delete, left, right, home, end
    case wordLeft, wordRight       // Alt-B / Alt-F, Ctrl-Left / Ctrl-Right
    case killToEnd, killToStart, killWord, yank
    case newline                   // Alt-Enter / Ctrl-J
    case enter
    case up, down, pageUp, pageDown
    case cancel                    // Esc: stops an answer, else the attaches under way; never quits
    case interrupt                 // Ctrl-C: as Esc; when idle asks before quitting
    case quit                      // Ctrl-D
    case help                      // F1: the help, the input left as it is
    case event(ChatEvent, at: Double = 0)     // at: seconds on any steady clock (for ETAs)
    /// An answer's event stream ended (after its .finished or .failed, or with none when it was
    /// stopped before the first token).
    case answerEnded
    case attached(AttachedImage)
    case attachFailed(String)
    /// A video's sampled frames, attached as images in frame order.
    case videoAttached(path: String, frames: [Int], images: [AttachedImage])
    /// Pasted text that named image files (already checked to exist): attach them.
    case attachPaths([String])
    case retiled(oldID: Int, AttachedImage)
    case retileFailed(oldID: Int, String)
    /// The input replaced (path completion), with an optional hint line.
    case setInput(String, hint: String?)
    case scroll(Int)                          // mouse wheel: lines, positive = back in time
    /// A message from work the app did (saving, listing): shown as info or error.
    case notice(String, error: Bool)
    /// A saved conversation is loaded: its messages replace the screen's.
    /// `contextUsed`: the positions its last turn left in the context.
    /// `draft`: text saved unsent with it, put into an empty input.
    /// `pending`: the images saved as attached for the next question, attached again.
    /// `system`: its system message, nil for the model's default.
    case loaded(messages: [AppState.Message], label: String, problems: [String], draft: String = "", pending: [AttachedImage] = [],
                contextUsed: Int = 0, system: String? = nil)
    case saved(label: String, explicit: Bool)
    /// A save did not happen (a full disk, an unwritable folder): said, and asked about at quit.
    case saveFailed(String)
    /// Loading failed; `reset`: the session was already emptied, so the screen starts over too.
    case loadFailed(String, reset: Bool)
    /// Resume a saved conversation (name, id or "" for the most recent), as /load does.
    case resume(String)
}

extension Action {
    /// Whether the user did this (a key, a paste, the wheel), not the backend or background work.
    var isKey: Bool {
        switch self {
        case .type, .backspace, .delete, .left, .right, .home, .end, .wordLeft, .wordRight, .killToEnd, .killToStart, .killWord, .yank,
             .newline, .enter, .up, .down, .pageUp, .pageDown, .cancel, .interrupt, .quit, .help, .attachPaths, .setInput, .scroll:
            return true
        case .modelReady, .modelFailed, .event, .answerEnded, .attached, .attachFailed, .videoAttached, .retiled, .retileFailed, .notice, .loaded,
             .saved, .saveFailed, .loadFailed, .resume:
            return false
        }
    }
}

/// What the app loop must do for an action; `reduce` itself does nothing outside the state.
public enum Effect: Sendable, Equatable {
    /// Ask `question`; `typed`, when it differs, is what the user wrote (a video's question is
    /// asked with its `FrameK: <image>` lines).
    case send(question: String, typed: String? = nil, images: [AttachedImage])
    case attach(path: String, maxTiles: Int?)
    /// Sample `segments` frames of a video (the model card's get_index) and attach each.
    case attachVideo(path: String, segments: Int, maxTiles: Int)
    /// Cut a pending image again with another tile count.
    case retile(oldID: Int, path: String, maxTiles: Int)
    /// Prefill the next prompt up to these images while the user types.
    case prefillAhead([AttachedImage])
    case cancel
    /// Stop the attaches under way and those asked before this (Esc while an image is encoded).
    case stopAttaching
    case regenerate
    case edit(String, typed: String? = nil)
    case newConversation
    case setSystem(String)
    /// Save the conversation (after each turn, on quit, and /save [NAME]).
    case save(name: String?, explicit: Bool)
    case load(String)
    case list(String)
    case delete(String)
    /// Put text on the terminal's clipboard.
    case copy(String)
    /// Switch to a theme (a name or a file).
    case theme(String)
    case quit
}

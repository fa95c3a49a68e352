import ArgumentParser
import Chat
import Checkpoint
import ChatAPI
import Foundation
import Imaging
import Logging
import TUI
import Conversations

/// The chat: the full-screen app. Scripts and pipes use `generate` (one question, also from
/// standard input) or `generate --turns FILE` (several, with the app's regenerate, edit, new,
/// saving and resume); a second, smaller line-mode app is not kept.
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat in the full-screen app (the default command).",
        discussion: """
        Enter sends, Alt-Enter/Ctrl-J adds a line, Esc stops an answer, F1 or /help lists commands.
        Without a terminal (pipes, scripts) use `internvl-chat generate` (one question; PROMPT or standard input)
        or `internvl-chat generate --turns FILE` (several turns, saved and resumed like the app's).
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var weightOptions: WeightOptions
    @OptionGroup var remote: RemoteOptions
    @Option(help: "System message (default: the model's own).") var system: String?
    @Option(help: "Most tiles per image (default: max_dynamic_patch of config.json).") var maxTiles: Int?
    @OptionGroup var sampling: SamplingOptions
    @Flag(help: .hidden) var plain = false
    @Option(help: "Theme: dark, light, high-contrast, a file, or NAME.json in $XDG_CONFIG_HOME/internvl-chat/themes.")
    var theme = "dark"
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Reopen a saved conversation: its name or id; without one, the most recent.") var resume: String?
    @Flag(help: "Do not save the conversation, nor what you type to the input history (saved ones can still be listed and opened).") var noSave = false
    @Option(help: "Thumbnails: auto (sixel when the terminal answers it has it, else colour half-blocks), sixel, blocks or none.")
    var graphics: GraphicsChoice = .auto

    /// Why the app cannot start here, before anything is loaded.
    static let needsTerminal = "the chat is a full-screen app and needs a terminal on standard input and output. "
        + "For scripts and pipes use `internvl-chat generate` (one question: PROMPT, or standard input) or "
        + "`internvl-chat generate --turns FILE` (several turns; docs/cli.md)."

    func validate() throws {
        if plain { throw ValidationError("--plain (line mode) is gone: " + Self.needsTerminal) }
        if let problem = DynamicTiling.checkMaxTiles(maxTiles, option: "--max-tiles") { throw ValidationError(problem) }
    }

    func run() throws {
        try reportingErrors {
            guard isatty(0) != 0 && isatty(1) != 0 else { throw ValidationError(Self.needsTerminal) }
            if remote.isRemote { return try runRemote() }
            let folder = try modelOptions.locate()
            // What can be refused quickly is refused before the screen; the weights load behind it.
            let config = try ModelConfiguration.load(from: folder.appendingPathComponent("config.json"))
            _ = try ChatTemplate.named(config.template)
            let chosen = try Theme.load(theme)
            let logPath = FileLog.defaultPath()
            FileLog.bootstrap(path: logPath)
            let log = Logger(label: "chat")
            let requested = weightOptions.weights.rawValue
            let backend = DeferredBackend(placeholder: ModelIdentity(name: ModelLocator.displayName(folder), configSHA256: "",
                                                                     weightFormat: requested))
            let app = App(backend: backend, modelName: ModelLocator.displayName(folder), contextSize: sampling.context,
                          parameters: sampling.parameters, seedFixed: sampling.seed != nil, weightFormat: requested)
            app.maxTiles = maxTiles
            app.theme = chosen
            app.modelLoading()
            app.conversations = ConversationService(store: storeOptions.store, backend: backend, readOnly: noSave)
            if !noSave { app.inputHistory = InputHistory(path: InputHistory.defaultPath()) }
            let support = GraphicsProbe.detect(requested: graphics.mode)
            let load = ModelLoad(weights: weightOptions, folder: folder, context: sampling.context, system: system)
            Thread {
                do {
                    let engine = try load.weights.engine(load.folder, context: load.context)
                    backend.resolve(ChatSession(engine: engine, systemMessage: load.system))
                    app.modelReady(weightFormat: engine.weightFormat)
                    log.info("model \(load.folder.path), loaded in \(engine.loadSeconds) s; log \(logPath)")
                } catch {
                    let message = TerminalText.sanitize((error as? LocalizedError)?.errorDescription ?? "\(error)")
                    backend.fail(message)
                    app.modelFailed(message)
                    log.error("model load failed: \(message)")
                }
            }.start()
            app.run(graphics: support, resume: resume)
        }
    }
}

/// What the background load needs, carried to its thread.
private struct ModelLoad: @unchecked Sendable {
    let weights: WeightOptions
    let folder: URL
    let context: Int
    let system: String?
}

enum GraphicsChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, sixel, blocks, none
    var mode: GraphicsMode? { self == .auto ? nil : GraphicsMode(rawValue: rawValue) }
}

import ArgumentParser
import Chat
import ChatAPI
import Foundation
import Logging
import TUI
import Conversations

/// The chat: the full-screen app, or line mode (--plain, or when stdin or stdout is not a terminal).
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat in the terminal: the full-screen app, or line by line with --plain (or when piped).",
        discussion: """
        Full-screen app: Enter sends, Alt-Enter/Ctrl-J adds a line, Esc stops an answer, /help lists commands.
        Line mode: /image PATH attaches an image to the next question, /new starts over, /quit or Ctrl-D leaves.
        As in the official chat(), every turn re-reads the whole conversation; images are encoded once.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var weightOptions: WeightOptions
    @Option(help: "System message (default: the model's own).") var system: String?
    @Option(help: "Most tiles per image (default: max_dynamic_patch of config.json).") var maxTiles: Int?
    @OptionGroup var sampling: SamplingOptions
    @Flag(help: "Line mode instead of the full-screen app.") var plain = false
    @Option(help: "Theme: dark, light, high-contrast, a file, or NAME.json in $XDG_CONFIG_HOME/internvl-chat/themes.")
    var theme = "dark"
    @OptionGroup var storeOptions: StoreOptions
    @Option(help: "Reopen a saved conversation: its name or id; without one, the most recent.") var resume: String?
    @Flag(help: "Do not save the conversation.") var noSave = false
    @Option(help: "Thumbnails: auto (sixel when the terminal answers it has it, else colour half-blocks), sixel, blocks or none.")
    var graphics: GraphicsChoice = .auto

    func run() throws {
        try reportingErrors {
            let folder = try modelOptions.locate()
            FileHandle.standardError.write(Data("Loading \(TerminalText.sanitize(folder.path))…\n".utf8))
            let engine = try weightOptions.engine(folder, context: sampling.context)
            let session = ChatSession(engine: engine, systemMessage: system)
            if !plain && isatty(0) != 0 && isatty(1) != 0 {
                let chosen = try Theme.load(theme)
                let logPath = FileLog.defaultPath()
                FileLog.bootstrap(path: logPath)
                let app = App(backend: session, modelName: folder.lastPathComponent, contextSize: sampling.context,
                              parameters: sampling.parameters, seedFixed: sampling.seed != nil,
                              weightFormat: engine.weightFormat)
                app.maxTiles = maxTiles
                app.theme = chosen
                if !noSave { app.conversations = ConversationService(store: storeOptions.store, backend: session) }
                let support = GraphicsProbe.detect(requested: graphics.mode)
                Logger(label: "chat").info("model \(folder.path), loaded in \(engine.loadSeconds) s; log \(logPath)")
                app.run(graphics: support, resume: resume)
                return
            }
            var pending: [AttachedImage] = []    // for the next question
            let params = sampling.parameters, tiles = maxTiles
            FileHandle.standardError.write(Data(String(format: "Ready in %.1f s. Ask a question.\n", engine.loadSeconds).utf8))
            while true {
                Output.write("\n> ")
                guard let line = readLine() else { Output.write("\n"); return }
                let q = line.trimmingCharacters(in: .whitespaces)
                if q.isEmpty { continue }
                if q == "/quit" { return }
                do {
                    if q == "/new" {
                        try blocking { await session.newConversation() }
                        pending = []
                        Output.write("(new conversation)\n")
                        continue
                    }
                    if q.hasPrefix("/image ") {
                        let path = (String(q.dropFirst(7)).trimmingCharacters(in: .whitespaces) as NSString).expandingTildeInPath
                        let t0 = Date()
                        let img = try blocking { try await session.attach(path: path, maxTiles: tiles) }
                        pending.append(img)
                        Output.write(String(format: "(attached %dx%d, %d tiles, encoded in %.1f s)\n",
                                            img.width, img.height, img.tiles, Date().timeIntervalSince(t0)))
                        continue
                    }
                    let images = pending
                    let o = try blocking {
                        await GenerateCommand.consume(await session.send(q, images: images, parameters: params), stream: true)
                    }
                    guard let st = o.stats else { throw GenerateCommand.TurnFailed(o.failure) }
                    Output.write(String(format: "\n[%d tokens, %.1f tok/s]\n", st.generatedTokenIDs.count, st.decodeTokensPerSecond))
                    pending = []
                } catch {
                    printError(error)
                }
            }
        }
    }
}

enum GraphicsChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, sixel, blocks, none
    var mode: GraphicsMode? { self == .auto ? nil : GraphicsMode(rawValue: rawValue) }
}

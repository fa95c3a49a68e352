import ArgumentParser
import Chat
import Foundation
import TUI

/// A plain line-mode chat (the full-screen app replaces it as the default later).
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
    @Option(help: "System message (default: the model's own).") var system: String?
    @Option(help: "Most tiles per image (default: max_dynamic_patch of config.json).") var maxTiles: Int?
    @OptionGroup var sampling: SamplingOptions
    @Flag(help: "Line mode instead of the full-screen app.") var plain = false
    @Option(help: "Theme: dark, light, high-contrast, a file, or NAME.json in $XDG_CONFIG_HOME/internvl-chat/themes.")
    var theme = "dark"

    func run() throws {
        try reportingErrors {
            let folder = try modelOptions.locate()
            if !plain && isatty(0) != 0 && isatty(1) != 0 {
                let chosen = try Theme.load(theme)
                FileHandle.standardError.write(Data("Loading \(TerminalText.sanitize(folder.path))…\n".utf8))
                let engine = try ChatEngine(folder: folder, contextLength: sampling.context)
                let session = ChatSession(engine: engine, systemMessage: system ?? ChatTemplate.defaultSystemMessage)
                let app = App(backend: session, modelName: folder.lastPathComponent, contextSize: sampling.context,
                              parameters: sampling.parameters)
                app.maxTiles = maxTiles
                app.theme = chosen
                app.run()
                return
            }
            FileHandle.standardError.write(Data("Loading \(TerminalText.sanitize(folder.path))…\n".utf8))
            let engine = try ChatEngine(folder: folder, contextLength: sampling.context)
            let template = ChatTemplate(systemMessage: system ?? ChatTemplate.defaultSystemMessage)
            var history: [(String, String)] = []
            var images: [(tiles: Int, tokens: [Float])] = []     // of the conversation, in order
            var pending: [(tiles: Int, tokens: [Float])] = []    // for the next question
            FileHandle.standardError.write(Data(String(format: "Ready in %.1f s. Ask a question.\n", engine.loadSeconds).utf8))
            while true {
                Output.write("\n> ")
                guard let line = readLine() else { Output.write("\n"); return }
                let q = line.trimmingCharacters(in: .whitespaces)
                if q.isEmpty { continue }
                if q == "/quit" { return }
                if q == "/new" { history = []; images = []; pending = []; Output.write("(new conversation)\n"); continue }
                do {
                    if q.hasPrefix("/image ") {
                        let path = String(q.dropFirst(7)).trimmingCharacters(in: .whitespaces)
                        let p = try engine.prepareImage(path: (path as NSString).expandingTildeInPath, maxTiles: maxTiles)
                        let t0 = Date()
                        pending.append((p.tiles, engine.encodeImage(p)))
                        Output.write(String(format: "(attached %dx%d, %d tiles, encoded in %.1f s)\n",
                                            p.width, p.height, p.tiles, Date().timeIntervalSince(t0)))
                        continue
                    }
                    // Placeholders for this turn's images go into this question, so that later
                    // turns keep each image where it was asked about.
                    let question = ImagePrompt.withPlaceholders(question: q, history: [], imageCount: pending.count)
                    let all = images + pending
                    let ids = try engine.promptIDs(template: template, history: history, question: question,
                                                   tileCounts: all.map(\.tiles))
                    let r = try engine.generate(prompt: ids, imageTokens: all.flatMap(\.tokens),
                                                parameters: sampling.parameters, onText: Output.write)
                    Output.write(String(format: "\n[%d tokens, %.1f tok/s]\n", r.tokenIDs.count, r.timings.decodeTokensPerSecond))
                    history.append((question, r.text))
                    images = all
                    pending = []
                } catch {
                    printError(error)
                }
            }
        }
    }
}

import ArgumentParser
import Chat
import Foundation

/// A plain line-mode chat (the full-screen app replaces it as the default later).
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat in the terminal, line by line. /new starts over, /quit or Ctrl-D leaves.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "System message (default: the model's own).") var system: String?
    @OptionGroup var sampling: SamplingOptions

    func run() throws {
        try reportingErrors {
            let folder = try modelOptions.locate()
            FileHandle.standardError.write(Data("Loading \(TerminalText.sanitize(folder.path))…\n".utf8))
            let engine = try ChatEngine(folder: folder, contextLength: sampling.context)
            let template = ChatTemplate(systemMessage: system ?? ChatTemplate.defaultSystemMessage)
            var history: [(String, String)] = []
            FileHandle.standardError.write(Data(String(format: "Ready in %.1f s. Ask a question.\n", engine.loadSeconds).utf8))
            while true {
                Output.write("\n> ")
                guard let line = readLine() else { Output.write("\n"); return }
                let q = line.trimmingCharacters(in: .whitespaces)
                if q.isEmpty { continue }
                if q == "/quit" { return }
                if q == "/new" { history = []; Output.write("(new conversation)\n"); continue }
                do {
                    let ids = try engine.promptIDs(template: template, history: history, question: q)
                    let r = try engine.generate(prompt: ids, parameters: sampling.parameters, onText: Output.write)
                    Output.write(String(format: "\n[%d tokens, %.1f tok/s]\n", r.tokenIDs.count, r.timings.decodeTokensPerSecond))
                    history.append((q, r.text))
                } catch {
                    printError(error)
                }
            }
        }
    }
}

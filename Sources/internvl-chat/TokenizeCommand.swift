import ArgumentParser
import Chat
import Checkpoint
import Foundation
import Tokenizer

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text (BOS included), as the model's slow tokenizer gives them.")

    @OptionGroup var modelOptions: ModelOptions
    @Flag(help: "Print a JSON array instead of space-separated ids.") var json = false
    @Flag(help: "Read one JSON string per line from stdin; print one JSON array of ids per line.")
    var stdinJsonl = false
    @Argument(help: "The text (omit with --stdin-jsonl).") var text: String?

    func validate() throws {
        if stdinJsonl && text != nil { throw ValidationError("give either TEXT or --stdin-jsonl, not both") }
        if !stdinJsonl && text == nil { throw ValidationError("missing TEXT (or use --stdin-jsonl)") }
    }

    func run() throws {
        try reportingErrors {
            let folder = try modelOptions.locate()
            let config = try ModelConfiguration.load(from: folder.appendingPathComponent("config.json"))
            let tok = try ChatEngine.tokenizer(for: config, folder: folder)
            if let text {
                let ids = tok.encode(text)
                Output.write((json ? "[" + ids.map(String.init).joined(separator: ",") + "]"
                                   : ids.map(String.init).joined(separator: " ")) + "\n")
                return
            }
            var lineNumber = 0
            while let line = readLine(strippingNewline: true) {
                lineNumber += 1
                if line.isEmpty { continue }
                guard let s = try? JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed]) as? String else {
                    throw ValidationError("stdin line \(lineNumber) is not a JSON string")
                }
                Output.write("[" + tok.encode(s).map(String.init).joined(separator: ",") + "]\n")
            }
        }
    }
}

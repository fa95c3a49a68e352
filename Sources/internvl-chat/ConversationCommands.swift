import ArgumentParser
import Chat
import ChatAPI
import Conversations
import FileInput
import Foundation

/// Where saved conversations live.
struct StoreOptions: ParsableArguments {
    @Option(name: .customLong("conversations"),
            help: "Folder of saved conversations (default: $INTERNVL_CHAT_CONVERSATIONS, else $XDG_DATA_HOME/internvl-chat/conversations).")
    var folder: String?

    var store: ConversationStore {
        ConversationStore(root: folder.map { URL(fileURLWithPath: FileInput.expandingTilde($0)) } ?? ConversationStore.defaultRoot())
    }
}

struct ConversationsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conversations",
        abstract: "List saved conversations, most recent first, or those that mention TEXT.")

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "Text to search for in titles, names, questions and answers.") var text: String?
    @Flag(help: "One JSON object per line.") var json = false
    @Option(help: "Delete the saved conversation NAME (a name, an id or a unique id prefix) and its images.")
    var delete: String?

    func run() throws {
        try reportingErrors {
            let store = storeOptions.store
            if let delete {
                Output.write("Deleted \(try store.delete(delete)).\n")
                return
            }
            var folder: ObjCBool = false
            if FileManager.default.fileExists(atPath: store.root.path, isDirectory: &folder), !folder.boolValue {
                throw ValidationError("\(TerminalText.sanitize(store.root.path)) is not a folder of conversations: it is a file")
            }
            let all = store.list(matching: text)
            let df = ISO8601DateFormatter()
            for s in all {
                if json {
                    var o: [String: Any] = ["id": s.id, "title": s.title, "updated": df.string(from: s.updated), "turns": s.turns, "images": s.images]
                    if let n = s.name { o["name"] = n }
                    if let p = s.problem { o["problem"] = p }
                    let d = try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes])
                    Output.write(String(decoding: d, as: UTF8.self) + "\n")
                } else if let p = s.problem {       // one line each, made safe wherever it goes (a pipe may end on a terminal)
                    Output.write("\(s.id)  unreadable: \(TerminalText.line(p))\n")
                } else {
                    Output.write("\(TerminalText.line(s.label))  \(df.string(from: s.updated))  \(counted(s.turns, "turn")), \(counted(s.images, "image"))  \(TerminalText.line(s.title))\n")
                }
            }
            if all.isEmpty && !json { writeStderr("No conversations in \(TerminalText.sanitize(store.root.path)).\n") }
        }
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a saved conversation as Markdown (a .md file and its images) or as one JSON file.")

    enum Format: String, ExpressibleByArgument { case markdown, json }

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The conversation's name, id or id prefix.") var name: String
    @Option(help: "markdown or json.") var format: Format = .markdown
    @Option(help: "Folder for Markdown (default: the current one); file for JSON (default: NAME.json; a folder: NAME.json in it).") var out: String?
    @Flag(help: "Replace an existing NAME.md or JSON file (without it, the export stops with an error and writes nothing).") var force = false

    func run() throws {
        try reportingErrors {
            let store = storeOptions.store
            let id = try store.resolve(name)
            switch format {
            case .markdown:
                let url = try store.exportMarkdown(id, to: URL(fileURLWithPath: out ?? FileManager.default.currentDirectoryPath), overwrite: force)
                Output.write(url.path + "\n")
            case .json:
                let label = try store.read(id).name ?? id
                var url = URL(fileURLWithPath: out ?? "\(label).json")
                if FileInput.kind(url.path) == .directory { url = url.appendingPathComponent("\(label).json") }
                try store.exportJSON(id, to: url, overwrite: force)
                Output.write(url.path + "\n")
            }
        }
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Read a JSON export into the saved conversations (as a new conversation).")

    @OptionGroup var storeOptions: StoreOptions
    @Argument(help: "The JSON file written by `export --format json`.") var file: String
    @Option(help: "Name for the imported conversation (default: the exported name).") var name: String?

    func run() throws {
        try reportingErrors {
            do {
                let id = try storeOptions.store.importJSON(URL(fileURLWithPath: file), name: name)
                Output.write(id + "\n")
            } catch ConversationError.nameTaken(let taken, let id) {
                throw ValidationError("A conversation named \(taken) exists already (\(id)): import it under another name with --name NAME.")
            } catch ConversationError.optionLikeName(let exported) where name == nil {
                throw ValidationError("The export's name \(exported) starts with \"-\", which the command line would read as an option: import it under another name with --name NAME.")
            }
        }
    }
}

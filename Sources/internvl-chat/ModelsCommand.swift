import ArgumentParser
import Chat
import ChatAPI
import Checkpoint
import Foundation

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "List the checkpoints found: Hugging Face cache snapshots, the current folder and the folders in it, and --model paths or repo ids; with size, family and weight format.")

    @Option(name: .long, help: "Also describe this folder or repo id (repeatable).")
    var model: [String] = []
    @Flag(help: "Print one JSON object {\"models\": [...]} instead of a table.") var json = false

    func run() throws {
        try reportingErrors {
            let locator = ModelLocator()
            let entries = ModelCatalog(locator: locator).scan(extra: model).map { e in
                guard e.problem == nil, let t = e.template else { return e }
                do { _ = try ChatTemplate.named(t); return e } catch { return e.refused((error as? LocalizedError)?.errorDescription ?? "\(error)") }
            }
            let defaultPath = (try? locator.locate(explicit: nil))?.resolvingSymlinksInPath().path
            func isDefault(_ e: CatalogEntry) -> Bool {
                URL(fileURLWithPath: e.path).resolvingSymlinksInPath().path == defaultPath
            }
            if json {
                let list: [[String: Any]] = entries.map { e in
                    var d: [String: Any] = [
                        "name": e.name, "path": e.path, "source": e.source, "size_bytes": e.sizeBytes,
                        "architectures": e.architectures, "supported": e.supported, "default": isDefault(e),
                    ]
                    d["family"] = e.family ?? NSNull()
                    d["template"] = e.template ?? NSNull()
                    d["weight_format"] = e.weightFormat ?? NSNull()
                    d["problem"] = e.problem ?? NSNull()
                    return d
                }
                let data = try JSONSerialization.data(withJSONObject: ["models": list], options: [.sortedKeys, .withoutEscapingSlashes])
                Output.write(String(decoding: data, as: UTF8.self) + "\n")
                return
            }
            guard !entries.isEmpty else {
                Output.write("No checkpoints found in the Hugging Face caches (\(locator.hubCaches.joined(separator: ", "))) "
                             + "or in the current folder.\nDownload one: \(ModelLocator.downloadCommand)\n")
                return
            }
            // One line per checkpoint, made safe wherever it goes (a pipe may end on a terminal):
            // names, paths and the template come from folders and files.
            let rows = entries.map { e -> [String] in
                [(isDefault(e) ? "* " : "  ") + TerminalText.line(e.name), e.family ?? "-", e.weightFormat ?? "-",
                 Self.size(e.sizeBytes), e.template.map(TerminalText.line) ?? "-", e.source, TerminalText.line(e.path)]
            }
            let header = ["  NAME", "FAMILY", "FORMAT", "SIZE", "TEMPLATE", "SOURCE", "PATH"]
            let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max()! }
            func line(_ r: [String]) -> String {
                r.enumerated().map { c, s in c == r.count - 1 ? s : s.padding(toLength: widths[c], withPad: " ", startingAt: 0) }
                    .joined(separator: "  ")
            }
            var out = line(header) + "\n"
            for (r, e) in zip(rows, entries) {
                out += line(r) + "\n"
                if let p = e.problem { out += "    not loadable: \(TerminalText.line(p))\n" }
            }
            if entries.contains(where: isDefault) { out += "* the model used when --model is not given\n" }
            Output.write(out)
        }
    }

    static func size(_ bytes: Int) -> String {
        let b = Double(bytes)
        if b >= 1e9 { return String(format: "%.1f GB", b / 1e9) }
        if b >= 1e6 { return String(format: "%.1f MB", b / 1e6) }
        return String(format: "%.0f KB", b / 1e3)
    }
}

import ArgumentParser
import Chat
import ChatAPI
import Checkpoint
import Conversations
import Foundation
import Kernels

@main
struct InternVLChat: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "internvl-chat",
        abstract: "Chat about your images with Mini-InternVL-Chat-2B-V1-5 (and InternVL2 / 2.5 1B-4B) on the CPU.",
        discussion: """
        Without --model the checkpoint is looked for in $INTERNVL_CHAT_MODEL, the "model" entry of \
        $XDG_CONFIG_HOME/internvl-chat/config.json, and the Hugging Face cache.
        """,
        version: "internvl-chat 0.2.0",
        subcommands: [ChatCommand.self, GenerateCommand.self, ServeCommand.self, TokenizeCommand.self, ModelsCommand.self, BenchCommand.self, DumpVisionCommand.self,
                      ConversationsCommand.self, ExportCommand.self, ImportCommand.self],
        defaultSubcommand: ChatCommand.self)

    /// `--resume` may come without a name: it then means the most recent conversation. Options
    /// may come before the subcommand (`internvl-chat --model DIR generate ...`).
    static func main() {
        var args = Array(CommandLine.arguments.dropFirst())
        if let i = args.firstIndex(of: "--resume"), i + 1 == args.count || args[i + 1].hasPrefix("-") {
            args.insert(ConversationStore.latest, at: i + 1)
        }
        // What went through stdio (print) and could not be written is an error too.
        atexit {
            guard fflush(nil) != 0 else { return }
            Output.reportUnwritable(errno)
            _exit(1)
        }
        do {
            var command = try parseAsRoot(subcommandFirst(args))
            try command.run()
        } catch {
            exitShowingSafely(error)
        }
    }

    /// `exit(withError:)`, with a usage error's control characters made visible: it quotes the
    /// arguments, and an argument may be a file name from a shell glob.
    static func exitShowingSafely(_ error: Error) -> Never {
        let code = exitCode(for: error)
        if code == .success { exit(withError: error) }        // help and version, to stdout
        let text = fullMessage(for: error)
        if !text.isEmpty { writeStderr(TerminalText.sanitize(text) + "\n") }
        Glibc.exit(code.rawValue)
    }

    /// `args` with a subcommand named after some options moved in front of them, when the
    /// arguments do not parse as given but parse that way.
    static func subcommandFirst(_ args: [String]) -> [String] {
        guard args.first?.hasPrefix("-") == true, (try? parseAsRoot(args)) == nil else { return args }
        let names = Set(configuration.subcommands.compactMap { $0.configuration.commandName })
        for (i, a) in args.enumerated() where names.contains(a) {
            let moved = [a] + args[..<i] + args[(i + 1)...]
            if (try? parseAsRoot(moved)) != nil { return moved }
        }
        return args
    }
}

/// Where the model is.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "The checkpoint folder as Hugging Face ships it (config.json, *.safetensors, the tokenizer files), or a repo id in the Hugging Face cache.")
    var model: String?

    func locate() throws -> URL {
        try ModelLocator().locate(explicit: model)
    }
}

/// How the language model's weights are held: as stored (bf16) or quantized at load.
struct WeightOptions: ParsableArguments {
    enum Format: String, ExpressibleByArgument, CaseIterable { case bf16, int8, q4 }
    @Option(help: "Language-model weights: bf16 (as stored), int8 or q4 (quantized at load; the output head then int8, vision stays bf16).")
    var weights: Format = .bf16
    @Flag(help: "Quantize at every start instead of keeping the result in the cache ($XDG_CACHE_HOME/internvl-chat/quantized).")
    var noWeightCache = false
    @Flag(help: "bf16: read the weights from the mapped file instead of copying them into huge pages (faster start, slower decoding).")
    var mappedWeights = false
    @Option(help: "KV cache storage: f16 (half the memory; keys and values rounded once) or f32.")
    var kvCache: KVPrecision = .float16

    var quantization: Quantization? {
        switch weights { case .bf16: return nil; case .int8: return .q8; case .q4: return .q4 }
    }

    func engine(_ folder: URL, context: Int) throws -> ChatEngine {
        let e = try ChatEngine(folder: folder, contextLength: context, weights: quantization,
                       cache: noWeightCache ? nil : QuantCache(directory: QuantCache.defaultDirectory()),
                       moveWeights: !mappedWeights)
        e.model.kvPrecision = kvCache
        return e
    }
}

extension KVPrecision: ExpressibleByArgument {}

/// Runs `body`, turning any error into one clean line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        printError(error)
        throw ExitCode(1)
    }
}

/// "error: <sentence>" on stderr, with control characters made visible: one line, except the list
/// of places searched for a checkpoint, whose lines stay lines (each made safe on its own).
func printError(_ error: Error) {
    let message = (error as? LocalizedError)?.errorDescription ?? String(describing: error)
    var lines = [message]
    if case .notFound? = error as? CheckpointError { lines = message.components(separatedBy: "\n") }
    writeStderr("error: " + lines.map(TerminalText.line).joined(separator: "\n") + "\n")
}

/// Writes to stderr; a closed or full stderr loses the text, nothing more.
func writeStderr(_ s: String) { _ = Output.writeAll(2, Array(s.utf8)) }

/// Writes to stdout immediately; control characters are made visible when stdout is a terminal.
enum Output {
    static let isTerminal = isatty(1) != 0

    /// A stdout that cannot be written (a full disk, a closed descriptor) ends the run with one
    /// error line and status 1; a reader that went away (`| head`) ends it quietly.
    static func write(_ s: String) {
        let text = isTerminal ? TerminalText.sanitize(s) : s
        guard let failure = writeAll(1, Array(text.utf8)) else { return }
        reportUnwritable(failure)
        exit(1)
    }

    /// The line for a stdout that failed with `errno` (none for a reader that went away).
    static func reportUnwritable(_ errno: Int32) {
        if errno != EPIPE { writeStderr("error: could not write to standard output: \(String(cString: strerror(errno)))\n") }
    }

    /// All of `bytes` to `fd`; the errno that stopped it, nil when all went.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return errno }
            if n == 0 { return EIO }
            done += n
        }
        return nil
    }
}

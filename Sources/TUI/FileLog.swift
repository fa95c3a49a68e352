import ChatAPI
import Foundation
import Logging

/// Log lines go to a file while curses owns the screen: `$XDG_STATE_HOME/internvl-chat/internvl-chat.log`
/// (default `~/.local/state/...`), or `$INTERNVL_CHAT_LOG`. Lines are made inert (no escape
/// sequences from file names or model text reach a terminal that `cat`s the log) and one event
/// is one line (a newline in a file name shows as ␤, it cannot forge a line).
public enum FileLog {
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        StateFile.path("internvl-chat.log", override: "INTERNVL_CHAT_LOG", environment: environment)
    }

    /// Sends swift-log output to `path` (created with its folder); returns false when it cannot
    /// be opened (logging then goes nowhere rather than onto the screen).
    @discardableResult
    public static func bootstrap(path: String, level: Logger.Level = .info) -> Bool {
        let sink = FileSink(path: path)
        LoggingSystem.bootstrap { label in
            guard let sink else { return SwiftLogNoOpLogHandler() }
            var h = FileLogHandler(label: label, sink: sink)
            h.logLevel = level
            return h
        }
        return sink != nil
    }
}

final class FileSink: @unchecked Sendable {
    private let lock = NSLock()
    private let handle: FileHandle

    init?(path: String) {
        let dir = (path as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        guard let h = FileHandle(forWritingAtPath: path) else { return nil }
        h.seekToEndOfFile()
        handle = h
    }

    func write(_ line: String) {
        lock.lock(); defer { lock.unlock() }
        handle.write(Data(line.utf8))
    }
}

struct FileLogHandler: LogHandler {
    let label: String
    let sink: FileSink
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: .current,
                                                formatOptions: [.withInternetDateTime, .withFractionalSeconds])
        let text = TerminalText.sanitize(event.message.description, tabWidth: 4).replacingOccurrences(of: "\n", with: "\u{2424}")  // ␤
        sink.write("\(stamp) \(event.level) \(label): \(text)\n")
    }
}

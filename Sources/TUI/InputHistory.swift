import Foundation

/// What was sent from the input, kept between runs (as ollama keeps its prompt history): one JSON
/// string per line in `$INTERNVL_CHAT_HISTORY`, else `$XDG_STATE_HOME/internvl-chat/history.jsonl`
/// (default `~/.local/state/...`), readable by its owner only. Up recalls the newest `limit`.
/// A line that does not parse is skipped; a file that cannot be read or written is no history,
/// never an error on screen.
public final class InputHistory {
    public let path: String
    public static let limit = 1000
    /// The file's line count and end as this object last wrote it: still right when the file
    /// ends there, so an append need not read the file again.
    private var known: (lines: Int, end: UInt64)?

    public init(path: String) { self.path = path }

    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        StateFile.path("history.jsonl", override: "INTERNVL_CHAT_HISTORY", environment: environment)
    }

    /// The newest `limit` entries, oldest first.
    public func load() -> [String] {
        guard let data = FileManager.default.contents(atPath: path), data.count <= 64 << 20 else { return [] }
        let entries = data.split(separator: UInt8(ascii: "\n")).compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line), options: [.fragmentsAllowed])) as? String
        }
        return Array(entries.suffix(Self.limit))
    }

    /// Adds `entry` at the end; past twice `limit` lines the file is rewritten with the newest
    /// `limit` (atomically: a crash leaves the old file or the new one).
    public func append(_ entry: String) {
        guard let line = Self.line(entry) else { return }
        let fm = FileManager.default
        try? fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if !fm.fileExists(atPath: path) { _ = fm.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) }
        guard let h = FileHandle(forUpdatingAtPath: path) else { return }
        var end = h.seekToEndOfFile()
        if end > 0 {                  // a last line without its line break (cut short) must not swallow this one
            h.seek(toFileOffset: end - 1)
            if h.readData(ofLength: 1) != Data([UInt8(ascii: "\n")]) { h.write(Data([UInt8(ascii: "\n")])); end += 1 }
        }
        h.write(line)
        try? h.close()
        let lines: Int
        if let k = known, k.end == end { lines = k.lines + 1 }
        else { lines = (fm.contents(atPath: path) ?? Data()).reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) } }
        known = (lines, end + UInt64(line.count))
        guard lines > 2 * Self.limit else { return }
        let kept = load().compactMap(Self.line)
        let data = kept.reduce(Data(), +)
        try? data.write(to: URL(fileURLWithPath: path), options: .atomic)
        try? fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        known = (kept.count, UInt64(data.count))
    }

    /// `entry` as one line of the file.
    private static func line(_ entry: String) -> Data? {
        (try? JSONSerialization.data(withJSONObject: entry, options: [.fragmentsAllowed])).map { $0 + Data([UInt8(ascii: "\n")]) }
    }
}

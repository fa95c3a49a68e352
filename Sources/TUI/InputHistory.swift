import Foundation

/// What was sent from the input, kept between runs (as ollama keeps its prompt history): one JSON
/// string per line in `$INTERNVL_CHAT_HISTORY`, else `$XDG_STATE_HOME/internvl-chat/history.jsonl`
/// (default `~/.local/state/...`), readable by its owner only. Up recalls the newest `limit`.
/// A line that does not parse is skipped; a file that cannot be read or written is no history,
/// never an error on screen.
public struct InputHistory: Sendable {
    public let path: String
    public static let limit = 1000

    public init(path: String) { self.path = path }

    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let p = environment["INTERNVL_CHAT_HISTORY"], !p.isEmpty { return p }
        let base = environment["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
            ?? (NSHomeDirectory() as NSString).appendingPathComponent(".local/state")
        return (base as NSString).appendingPathComponent("internvl-chat/history.jsonl")
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
        guard let json = try? JSONSerialization.data(withJSONObject: entry, options: [.fragmentsAllowed]) else { return }
        let fm = FileManager.default
        try? fm.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if !fm.fileExists(atPath: path) { fm.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) }
        guard let h = FileHandle(forWritingAtPath: path) else { return }
        h.seekToEndOfFile()
        h.write(json + Data([UInt8(ascii: "\n")]))
        try? h.close()
        let lines = (fm.contents(atPath: path) ?? Data()).reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        guard lines > 2 * Self.limit else { return }
        var kept = Data()
        for e in load() {
            if let j = try? JSONSerialization.data(withJSONObject: e, options: [.fragmentsAllowed]) { kept += j + Data([UInt8(ascii: "\n")]) }
        }
        try? kept.write(to: URL(fileURLWithPath: path), options: .atomic)
        try? fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
    }
}

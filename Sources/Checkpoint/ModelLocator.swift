import FileInput
import Foundation

/// Finds the model folder: `--model` (a folder, or a repo id such as `OpenGVLab/InternVL2_5-1B`
/// looked up in the Hugging Face cache), then `$INTERNVL_CHAT_MODEL`, then the `model` key of
/// `$XDG_CONFIG_HOME/internvl-chat/config.json`, then the Hugging Face cache
/// (`$HF_HUB_CACHE`, `$HF_HOME/hub`, `~/.cache/huggingface/hub`).
public struct ModelLocator: Sendable {
    public static let repoID = "OpenGVLab/Mini-InternVL-Chat-2B-V1-5"
    public static let downloadCommand = "pip install -U huggingface_hub && hf download \(repoID)"

    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    var home: String { environment["HOME"] ?? NSHomeDirectory() }

    public var configFile: String {
        let base = environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? home + "/.config"
        return base + "/internvl-chat/config.json"
    }

    public var hubCaches: [String] {
        var out: [String] = []
        if let c = environment["HF_HUB_CACHE"], !c.isEmpty { out.append(c) }
        if let h = environment["HF_HOME"], !h.isEmpty { out.append(h + "/hub") }
        out.append(home + "/.cache/huggingface/hub")
        return out
    }

    enum Configured { case model(String), none(String) }

    /// The user config file's "model", or why there is none: missing file, or what is wrong
    /// with it (a file that cannot be read or parsed is not a missing one).
    func configuredModel() -> Configured {
        let data: [UInt8]
        do { data = try FileInput.read(configFile, limit: 1 << 20) } catch {
            return .none(error == .missing ? "no such file" : "not read: \(error.reason)")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: Data(data)) else { return .none("not valid JSON") }
        guard let dict = obj as? [String: Any] else { return .none("not a JSON object") }
        guard let value = dict["model"] else { return .none("no \"model\" entry") }
        guard let m = value as? String, !m.isEmpty else { return .none("its \"model\" is not a path") }
        return .model(m)
    }

    /// The folder to load, or `CheckpointError.notFound` listing every place searched.
    public func locate(explicit: String?) throws -> URL {
        if let e = explicit {
            if let repo = Self.repoName(e), !FileManager.default.fileExists(atPath: e) {
                for cache in hubCaches {
                    if let snap = snapshot(in: cache + "/models--" + repo.replacingOccurrences(of: "/", with: "--")) { return snap }
                }
                throw CheckpointError.notFound(searched: hubCaches.map { $0 + "/models--" + repo.replacingOccurrences(of: "/", with: "--") + "/snapshots/*" },
                                               download: "pip install -U huggingface_hub && hf download \(repo)")
            }
            return try checkFolder(e)
        }
        var searched: [String] = []
        if let e = environment["INTERNVL_CHAT_MODEL"], !e.isEmpty { return try checkFolder(e) }
        searched.append("$INTERNVL_CHAT_MODEL (not set)")
        switch configuredModel() {
        case .model(let m): return try checkFolder(FileInput.expandingTilde(m))
        case .none(let why): searched.append("\(configFile) (\(why))")
        }
        for cache in hubCaches {
            let repo = cache + "/models--" + Self.repoID.replacingOccurrences(of: "/", with: "--")
            if let snap = snapshot(in: repo) { return snap }
            searched.append(repo + "/snapshots/*")
        }
        throw CheckpointError.notFound(searched: searched, download: Self.downloadCommand)
    }

    /// The name people know `folder` by: `OWNER/NAME` for a Hugging Face cache snapshot
    /// (`.../models--OWNER--NAME/snapshots/REVISION`), else the folder's own name.
    public static func displayName(_ folder: URL) -> String {
        let parts = folder.standardizedFileURL.pathComponents
        if parts.count >= 3, parts[parts.count - 2] == "snapshots", parts[parts.count - 3].hasPrefix("models--") {
            let repo = parts[parts.count - 3].dropFirst("models--".count)
            let pieces = repo.components(separatedBy: "--")
            if pieces.count == 2, let r = repoName(pieces.joined(separator: "/")) { return r }
        }
        return folder.lastPathComponent
    }

    /// `owner/name` when `s` has the shape of a Hugging Face repo id (one slash, neither part
    /// empty, starting with a dot or holding anything but letters, digits, '-', '_' and '.').
    static func repoName(_ s: String) -> String? {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        for p in parts {
            guard !p.isEmpty, !p.hasPrefix("."), p.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else { return nil }
        }
        return s
    }

    /// The snapshot `refs/main` names, else the newest complete one.
    func snapshot(in repo: String) -> URL? {
        let fm = FileManager.default
        let snaps = repo + "/snapshots"
        if let bytes = try? FileInput.read(repo + "/refs/main", limit: 4096), let ref = String(validating: bytes, as: UTF8.self) {
            let p = snaps + "/" + ref.trimmingCharacters(in: .whitespacesAndNewlines)
            if fm.fileExists(atPath: p + "/config.json") { return URL(fileURLWithPath: p) }
        }
        guard let entries = try? fm.contentsOfDirectory(atPath: snaps) else { return nil }
        let complete = entries.map { snaps + "/" + $0 }.filter { fm.fileExists(atPath: $0 + "/config.json") }
        let newest = complete.max {
            let a = (try? fm.attributesOfItem(atPath: $0)[.modificationDate] as? Date) ?? .distantPast
            let b = (try? fm.attributesOfItem(atPath: $1)[.modificationDate] as? Date) ?? .distantPast
            return a < b
        }
        return newest.map { URL(fileURLWithPath: $0) }
    }

    func checkFolder(_ p: String) throws -> URL {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir), isDir.boolValue else {
            throw CheckpointError.folderMissing(p)
        }
        return URL(fileURLWithPath: p)
    }
}

import FileInput
import Foundation

/// One checkpoint folder `internvl-chat models` found, described from its config.json and
/// safetensors headers (nothing is loaded).
public struct CatalogEntry: Sendable, Equatable {
    /// The repo id (HF cache) or the folder path as given.
    public let name: String
    public let path: String
    /// "hf-cache", "folder" (the current folder or one below it) or "argument" (--model).
    public let source: String
    /// Bytes of its *.safetensors files (symbolic links followed).
    public let sizeBytes: Int
    /// "InternLM2", "Qwen2", "Phi-3", or nil when config.json names no language model we run.
    public let family: String?
    /// config.json's llm_config.architectures.
    public let architectures: [String]
    public let template: String?
    /// The dtype most of the language model's tensors are stored in ("bf16", "f16", "f32").
    public let weightFormat: String?
    /// Why it cannot be loaded (config.json refused, no weights), or nil.
    public let problem: String?
    public var supported: Bool { problem == nil && family != nil }

    /// The same entry, not loadable for `why`: a check the catalog cannot make itself (the chat
    /// template, which the engine knows).
    public func refused(_ why: String) -> CatalogEntry {
        CatalogEntry(name: name, path: path, source: source, sizeBytes: sizeBytes, family: family, architectures: architectures,
                     template: template, weightFormat: weightFormat, problem: why)
    }
}

/// Finds the checkpoints on this machine: snapshots in the Hugging Face caches, the current
/// folder and the folders directly in it, and any paths or repo ids given.
public struct ModelCatalog: Sendable {
    public var locator: ModelLocator
    public init(locator: ModelLocator = ModelLocator()) { self.locator = locator }

    public func scan(currentFolder: String = FileManager.default.currentDirectoryPath, extra: [String] = []) -> [CatalogEntry] {
        var out: [CatalogEntry] = []
        var seen = Set<String>()
        func add(_ name: String, _ folder: String, _ source: String) {
            let real = URL(fileURLWithPath: folder).resolvingSymlinksInPath().path
            guard seen.insert(real).inserted else { return }
            out.append(Self.describe(name: name, folder: folder, source: source))
        }
        for e in extra {
            if let url = try? locator.locate(explicit: e) { add(e, url.path, "argument") }
            else { out.append(CatalogEntry(name: e, path: e, source: "argument", sizeBytes: 0, family: nil, architectures: [],
                                           template: nil, weightFormat: nil, problem: "not found (neither a folder nor a cached repo)")) }
        }
        let fm = FileManager.default
        for cache in locator.hubCaches {
            guard let repos = try? fm.contentsOfDirectory(atPath: cache) else { continue }
            for r in repos.sorted() where r.hasPrefix("models--") {
                guard let snap = locator.snapshot(in: cache + "/" + r), Self.isInternVL(snap.path) else { continue }
                let name = r.dropFirst("models--".count).replacingOccurrences(of: "--", with: "/")
                add(name, snap.path, "hf-cache")
            }
        }
        var folders = [(".", currentFolder)]
        if let subs = try? fm.contentsOfDirectory(atPath: currentFolder) {
            folders += subs.sorted().filter { !$0.hasPrefix(".") }.map { ($0, currentFolder + "/" + $0) }
        }
        for (name, f) in folders where Self.isInternVL(f) { add(name, f, "folder") }
        return out
    }

    /// Whether `folder`'s config.json is an InternVL chat model's (it has an `llm_config`).
    static func isInternVL(_ folder: String) -> Bool {
        guard let bytes = try? FileInput.read(folder + "/config.json", limit: ModelConfiguration.maxFileBytes),
              let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return false }
        return obj["llm_config"] is [String: Any]
    }

    public static func familyName(_ a: LLMArchitecture) -> String {
        switch a {
        case .internLM2: "InternLM2"
        case .qwen2: "Qwen2"
        case .phi3: "Phi-3"
        }
    }

    static func describe(name: String, folder: String, source: String) -> CatalogEntry {
        let fm = FileManager.default
        let shards = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        var size = 0
        for s in shards {
            let real = URL(fileURLWithPath: folder + "/" + s).resolvingSymlinksInPath().path
            size += (try? fm.attributesOfItem(atPath: real)[.size] as? Int) ?? 0
        }
        var counts: [String: Int] = [:]
        for s in shards {
            guard let file = try? SafeTensorsFile(path: folder + "/" + s) else { continue }
            for t in file.tensors.values where t.name.hasPrefix("language_model.") {
                counts[t.dtype.rawValue.lowercased(), default: 0] += 1
            }
        }
        let format = counts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }?.key
        let configURL = URL(fileURLWithPath: folder + "/config.json")
        var architectures: [String] = [], template: String?, family: String?, problem: String?
        if let bytes = try? FileInput.read(configURL.path, limit: ModelConfiguration.maxFileBytes),
           let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] {
            architectures = (obj["llm_config"] as? [String: Any])?["architectures"] as? [String] ?? []
            template = obj["template"] as? String
        }
        do {
            let config = try ModelConfiguration.load(from: configURL)
            family = config.llmConfig.architecture.map(familyName)
        } catch {
            problem = (error as? LocalizedError)?.errorDescription ?? "\(error)"
        }
        if problem == nil && shards.isEmpty { problem = "no *.safetensors files" }
        if problem == nil {
            do { _ = try CheckpointWeights(folder: URL(fileURLWithPath: folder)) } catch {
                problem = (error as? LocalizedError)?.errorDescription ?? "\(error)"
            }
        }
        return CatalogEntry(name: name, path: folder, source: source, sizeBytes: size, family: family,
                            architectures: architectures, template: template, weightFormat: format, problem: problem)
    }
}

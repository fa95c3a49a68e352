import Foundation
import Testing
import TestSupport
@testable import Checkpoint

/// `internvl-chat models`' scan: a Hugging Face cache snapshot (files linked to blobs, as the
/// hub lays them out), folders in the current folder, a --model argument; what each entry says.
struct ModelCatalogTests {
    @Test func findsCachedSnapshotsFoldersAndArguments() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("catalog-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: root) }
        let home = root.appendingPathComponent("home"), cwd = root.appendingPathComponent("work")
        let phi3 = TestData.url("tiny-phi3")
        let snap = try HubCache.snapshot(hub: home.appendingPathComponent(".cache/huggingface/hub"),
                                         repo: "OpenGVLab/Mini-InternVL-Chat-4B-V1-5", copying: phi3)
        let phi3Bytes = try fm.contentsOfDirectory(atPath: phi3.path).filter { $0.hasSuffix(".safetensors") }
            .reduce(0) { $0 + (try fm.attributesOfItem(atPath: phi3.appendingPathComponent($1).path)[.size] as! Int) }
        // The current folder: a Qwen2 checkpoint, one whose language model we do not run, and a
        // folder that is not an InternVL checkpoint at all (left out).
        try fm.createDirectory(at: cwd, withIntermediateDirectories: true)
        try fm.createSymbolicLink(at: cwd.appendingPathComponent("qwen"), withDestinationURL: TestData.url("tiny-qwen2"))
        let other = cwd.appendingPathComponent("other")
        try fm.createDirectory(at: other, withIntermediateDirectories: true)
        var config = try TestData.json(TestData.url("tiny-a/config.json"))
        var llm = config["llm_config"] as! [String: Any]
        llm["architectures"] = ["MistralForCausalLM"]
        config["llm_config"] = llm
        try JSONSerialization.data(withJSONObject: config).write(to: other.appendingPathComponent("config.json"))
        let plain = cwd.appendingPathComponent("bert")
        try fm.createDirectory(at: plain, withIntermediateDirectories: true)
        try Data(#"{"architectures": ["BertModel"]}"#.utf8).write(to: plain.appendingPathComponent("config.json"))

        let catalog = ModelCatalog(locator: ModelLocator(environment: ["HOME": home.path]))
        let entries = catalog.scan(currentFolder: cwd.path, extra: [TestData.url("tiny-a").path, "/no/such/folder"])
        let byName = Dictionary(entries.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        #expect(entries.count == 5, "\(entries.map(\.name))")

        let cached = try #require(byName["OpenGVLab/Mini-InternVL-Chat-4B-V1-5"])
        #expect(cached.source == "hf-cache" && cached.path == snap.path)
        #expect(cached.family == "Phi-3" && cached.template == "phi3-chat" && cached.weightFormat == "bf16")
        #expect(cached.sizeBytes == phi3Bytes && cached.sizeBytes > 1_000_000)
        #expect(cached.supported && cached.architectures == ["Phi3ForCausalLM"])

        let qwen = try #require(byName["qwen"])
        #expect(qwen.source == "folder" && qwen.family == "Qwen2" && qwen.template == "internvl2_5" && qwen.supported)

        let mistral = try #require(byName["other"])
        #expect(!mistral.supported && mistral.family == nil && mistral.architectures == ["MistralForCausalLM"])
        #expect(mistral.problem?.contains("MistralForCausalLM") == true, "\(mistral.problem ?? "")")

        let arg = try #require(byName[TestData.url("tiny-a").path])
        #expect(arg.source == "argument" && arg.family == "InternLM2" && arg.supported)
        let missing = try #require(byName["/no/such/folder"])
        #expect(!missing.supported && missing.problem?.contains("not found") == true)
        #expect(byName["bert"] == nil)
    }

    /// A cache snapshot is named by its repo id (what the status bar, saved conversations and
    /// `serve` show), any other folder by its own name.
    @Test func displayNames() {
        let snap = URL(fileURLWithPath: "/h/.cache/huggingface/hub/models--OpenGVLab--InternVL2-4B/snapshots/0123abc")
        #expect(ModelLocator.displayName(snap) == "OpenGVLab/InternVL2-4B")
        #expect(ModelLocator.displayName(URL(fileURLWithPath: "/data/InternVL2_5-1B")) == "InternVL2_5-1B")
        #expect(ModelLocator.displayName(URL(fileURLWithPath: "/x/models--a--b--c/snapshots/r")) == "r")
        #expect(ModelLocator.displayName(URL(fileURLWithPath: "/x/snapshots/r")) == "r")
    }
}

import Foundation
import Testing
import TestSupport

/// `internvl-chat models` through the real binary: --json is one object listing the --model
/// checkpoints with family, format, size and template; the table names the family.
struct ModelsCommandTests {
    @Test func listsTheGivenCheckpoints() throws {
        let phi3 = TestData.url("tiny-phi3").path, qwen = TestData.url("tiny-qwen2").path
        let r = try BoundedRun.run(CLITests.binary, ["models", "--json", "--model", phi3, "--model", qwen])
        #expect(r.status == 0, "\(r.err)")
        let obj = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        let models = obj["models"] as! [[String: Any]]
        let mine = models.filter { ($0["source"] as? String) == "argument" }
        #expect(mine.map { $0["name"] as! String } == [phi3, qwen])
        #expect(mine.map { $0["family"] as! String } == ["Phi-3", "Qwen2"])
        #expect(mine.map { $0["template"] as! String } == ["phi3-chat", "internvl2_5"])
        #expect(mine.allSatisfy { $0["weight_format"] as? String == "bf16" && $0["supported"] as? Bool == true })
        #expect(mine.allSatisfy { ($0["size_bytes"] as! Int) > 1_000_000 })

        let t = try BoundedRun.run(CLITests.binary, ["models", "--model", phi3])
        #expect(t.status == 0 && t.out.hasPrefix("  NAME") && t.out.contains("Phi-3") && t.out.contains("phi3-chat"), "\(t.out)")
    }

    /// A config.json whose chat template the engine does not know is listed as not loadable,
    /// with generate's reason (it was listed as supported, and generate refused it).
    @Test func anUnknownTemplateIsNotLoadable() throws {
        let dir = try HostileConfigTests.folder(HostileConfigTests.top("template", "chatml"), base: "tiny-a")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try BoundedRun.run(CLITests.binary, ["models", "--json", "--model", dir.path])
        let models = (try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])?["models"] as? [[String: Any]] ?? []
        let entry = models.first { $0["path"] as? String == dir.path }
        #expect(r.status == 0 && entry?["supported"] as? Bool == false, "\(r.out)\(r.err)")
        let g = try BoundedRun.run(CLITests.binary, ["generate", "--model", dir.path, "--max-new-tokens", "1", "hi"])
        #expect(g.status == 1 && g.err.contains("the chat template \"chatml\""), "\(g.err)")
        #expect(g.err == "error: " + (entry?["problem"] as? String ?? "") + "\n", "\(entry ?? [:])")
        let t = try BoundedRun.run(CLITests.binary, ["models", "--model", dir.path])
        #expect(t.out.contains("not loadable: config.json names the chat template \"chatml\""), "\(t.out)")
    }

    /// The table is one line per checkpoint with control characters made visible, wherever
    /// stdout goes (a pipe may end on a terminal): the template came from config.json as it was,
    /// and a name or path holding a line break split its row.
    @Test func theTableIsOneSafeLinePerCheckpoint() throws {
        let made = try HostileConfigTests.folder(HostileConfigTests.top("template", "evil\u{1b}]0;T\u{07}\nX"), base: "tiny-a")
        let dir = made.deletingLastPathComponent().appendingPathComponent("model\u{1b}[31m\nx-\(UUID().uuidString)")
        try FileManager.default.moveItem(at: made, to: dir)
        defer { try? FileManager.default.removeItem(at: dir) }
        let t = try BoundedRun.run(CLITests.binary, ["models", "--model", dir.path])
        #expect(t.status == 0, "\(t.err)")
        #expect(!t.out.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 }, "\(t.out.debugDescription)")
        let lines = t.out.split(separator: "\n")
        #expect(lines.count == 3 && lines[1].hasPrefix("  /") && lines[1].contains("evil␛]0;T␇␤X") && lines[1].contains("model␛[31m␤x-")
                && lines[2].hasPrefix("    not loadable: "), "\(t.out)")
    }

    /// A Hugging Face cache snapshot (files as links into blobs/) whose weights link points at a
    /// blob that never arrived (an interrupted download): `models` says why it cannot be loaded,
    /// and loading it names the broken link instead of calling the file missing.
    @Test func aSnapshotWithABrokenWeightsLinkSaysSo() throws {
        let fm = FileManager.default
        let cache = fm.temporaryDirectory.appendingPathComponent("hf-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: cache) }
        let snap = try HubCache.snapshot(hub: cache, repo: "Test/Broken", copying: TestData.url("tiny-a"), missingBlobs: ["model.safetensors"])
        let link = try fm.destinationOfSymbolicLink(atPath: snap.appendingPathComponent("model.safetensors").path)
        let env = ["HF_HUB_CACHE": cache.path, "HF_HOME": cache.path, "HOME": cache.path]
        let r = try CLITests.run(["models", "--json"], env: env)
        #expect(r.status == 0, "\(r.err)")
        let models = (try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])?["models"] as? [[String: Any]] ?? []
        let entry = models.first { $0["name"] as? String == "Test/Broken" }
        #expect(entry?["supported"] as? Bool == false, "\(r.out)")
        let problem = entry?["problem"] as? String ?? ""
        #expect(problem.contains("model.safetensors is a link to \(link), which does not exist"), "\(problem)")
        let table = try CLITests.run(["models"], env: env)
        #expect(table.out.contains("not loadable: ") && table.out.contains("the download did not finish"), "\(table.out)")
        let g = try CLITests.run(["generate", "--model", "Test/Broken", "--max-new-tokens", "2", "hi"], env: env)
        #expect(g.status == 1 && g.err.contains("is a link to \(link), which does not exist") && g.out.isEmpty, "\(g.err)")
    }
}

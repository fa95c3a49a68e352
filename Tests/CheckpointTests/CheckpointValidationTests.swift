import Foundation
import Testing
import TestSupport
@testable import Checkpoint
import Model

/// Every broken model folder gets an error that names the file and what is wrong.
struct CheckpointValidationTests {
    static func load(_ dir: URL) throws {
        let config = try ModelConfiguration.load(from: dir.appendingPathComponent("config.json"))
        _ = try CheckpointWeights(folder: dir, config: config)
    }

    /// Loads `dir` expecting failure; returns the message.
    static func failure(_ dir: URL) -> String {
        do { try load(dir) } catch { return (error as? LocalizedError)?.errorDescription ?? "\(error)" }
        Issue.record("loading \(dir.path) should have failed")
        return ""
    }

    static func withTiny(_ name: String = "tiny-a", _ body: (ScratchFolder) throws -> Void) throws {
        let s = try ScratchFolder(copying: TestData.url(name))
        defer { s.remove() }
        try body(s)
    }

    @Test func fixturesLoad() throws {
        for m in TestData.tinyModels { try Self.load(TestData.url(m)) }
    }

    @Test func configErrorsNameTheKey() throws {
        try Self.withTiny { s in
            try FileManager.default.removeItem(at: s.file("config.json"))
            #expect(Self.failure(s.url).contains("config.json is missing"))
        }
        try Self.withTiny { s in
            try Data("{ not json".utf8).write(to: s.file("config.json"))
            #expect(Self.failure(s.url).contains("not valid JSON"))
        }
        try Self.withTiny { s in
            try s.editJSON("config.json") { c in
                var l = c["llm_config"] as! [String: Any]; l["hidden_size"] = nil; c["llm_config"] = l
            }
            #expect(Self.failure(s.url).contains("missing key llm_config.hidden_size"))
        }
        try Self.withTiny { s in
            try s.editJSON("config.json") { c in
                var l = c["llm_config"] as! [String: Any]; l["rope_theta"] = "big"; c["llm_config"] = l
            }
            #expect(Self.failure(s.url).contains("llm_config.rope_theta"))
        }
        try Self.withTiny { s in
            try s.editJSON("config.json") { c in
                var l = c["llm_config"] as! [String: Any]; l["architectures"] = ["LlamaForCausalLM"]; c["llm_config"] = l
            }
            let m = Self.failure(s.url)
            #expect(m.contains("unsupported model") && m.contains("LlamaForCausalLM"))
        }
        try Self.withTiny { s in
            try s.editJSON("config.json") { c in
                var l = c["llm_config"] as! [String: Any]; l["num_key_value_heads"] = 3; c["llm_config"] = l
            }
            #expect(Self.failure(s.url).contains("num_key_value_heads"))
        }
    }

    /// A key written twice in one object of config.json is refused naming the key and the file
    /// (Foundation's decoder would keep one of the values without a word).
    @Test func aKeyWrittenTwiceIsRefusedByName() throws {
        let original = try String(contentsOf: TestData.url("tiny-a").appendingPathComponent("config.json"), encoding: .utf8)
        for (edit, key) in [({ (c: String) in c.replacingOccurrences(of: "\"llm_config\": {", with: "\"llm_config\": {\"hidden_size\": 4096, ") },
                             "llm_config.hidden_size"),
                            ({ (c: String) in "{\"max_dynamic_patch\": 40, " + c.drop { $0 != "{" }.dropFirst() },
                             "max_dynamic_patch"),
                            ({ (c: String) in "{\"llm_\\u0063onfig\": {}, " + c.drop { $0 != "{" }.dropFirst() },
                             "llm_config")] {
            try Self.withTiny { s in
                let text = edit(original)
                #expect(text != original)
                try Data(text.utf8).write(to: s.file("config.json"))
                let m = Self.failure(s.url)
                #expect(m.contains(s.file("config.json").path) && m.contains("the key \(key) is written twice"), "\(m)")
            }
        }
    }

    @Test func duplicateKeysAreFoundWhereverTheyAre() {
        func first(_ json: String) -> String? { DuplicateJSONKeys.first(in: Array(json.utf8)) }
        #expect(first(#"{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}"#) == nil, "one key in different objects")
        #expect(first(#"{"s": "{\"a\": 1, \"a\": 2}", "a": [1, 1]}"#) == nil, "keys inside a string value are text")
        #expect(first(#"{"k": 1, "k": 2}"#) == "k")
        #expect(first(#"{"o": {"p": {"q": 1}}, "n": null, "o": 2}"#) == "o")
        #expect(first(#"{"x": [1, {"y": 1, "z": {}, "y": 2}]}"#) == "x[1].y")
        #expect(first(#"[0, [1, 2, {"y": 1, "y": 2}]]"#) == "[1][2].y")
        #expect(first(#"{"a\"b": 1, "a\u0022b": 2}"#) == "a\"b", "escapes decoded before comparing")
        #expect(first(#"{"a\\": {"\\": 1, "\u005c": 2}}"#) == "a\\.\\")
        #expect(first(#"{"\ud83d\ude00": 1, "😀": 2}"#) == "😀", "a surrogate pair and the character it encodes")
        #expect(first(#"{"a": 1, "A": 2, "a ": 3}"#) == nil)
        #expect(first(String(repeating: "[", count: 100_000)) == nil, "deep nesting is the decoder's to refuse")
        #expect(first(#"{"a": "unterminated, "a": 1}"#) == nil, "not JSON: the decoder's to refuse")
    }

    @Test func headerErrors() throws {
        let entries = try SafeTensorsWriter.read(TestData.url("tiny-a/model.safetensors"))
        func broken(_ reason: String, _ make: (URL) throws -> Void) throws {
            try Self.withTiny { s in
                try make(s.file("model.safetensors"))
                let m = Self.failure(s.url)
                #expect(m.contains("model.safetensors"), "\(reason): \(m)")
                #expect(m.contains(reason), "expected '\(reason)' in: \(m)")
            }
        }
        try broken("truncated") { u in
            let d = try Data(contentsOf: u); try d.prefix(d.count / 2).write(to: u)
        }
        try broken("shorter than the 8-byte header") { u in try Data([1, 2, 3]).write(to: u) }
        try broken("the header claims") { u in
            var d = try Data(contentsOf: u); d.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]); try d.write(to: u)
        }
        try broken("not a JSON object") { u in
            try SafeTensorsWriter.write(entries, to: u, headerOverride: Data("[1, 2, 3]".utf8))
        }
        try broken("data_offsets span") { u in
            var e = entries; e[0].shape = [e[0].shape.reduce(1, *) + 1]; try SafeTensorsWriter.write(e, to: u)
        }
        try broken("overlap") { u in
            var e = entries
            let n = e[1].data.count
            e[1].offsets = (0, n); e[0].offsets = (0, e[0].data.count)
            try SafeTensorsWriter.write(e, to: u)
        }
        try broken("dtype I8") { u in
            var e = entries; e[0].dtype = "I8"; try SafeTensorsWriter.write(e, to: u)
        }
        try broken("has shape") { u in
            var e = entries
            let i = e.firstIndex { $0.name == "language_model.model.norm.weight" }!
            e[i].shape = [e[i].shape[0] / 2, 2]
            try SafeTensorsWriter.write(e, to: u)
        }
        try broken("lacks tensor language_model.output.weight") { u in
            try SafeTensorsWriter.write(entries.filter { $0.name != "language_model.output.weight" }, to: u)
        }
        try broken("unexpected tensor extra.weight") { u in
            try SafeTensorsWriter.write(entries + [.init(name: "extra.weight", dtype: "F32", shape: [2], data: Data(count: 8))], to: u)
        }
        // A rotary cache some exporters keep is ignored, and F32/F16 tensors load.
        try Self.withTiny { s in
            var e = entries
            let i = e.firstIndex { $0.name == "language_model.model.norm.weight" }!
            let bf = e[i].data
            var f32 = Data()
            for k in stride(from: 0, to: bf.count, by: 2) { f32.append(contentsOf: [0, 0, bf[k], bf[k + 1]]) }
            e[i].dtype = "F32"; e[i].data = f32
            e.append(.init(name: "language_model.model.layers.0.attention.rotary_emb.inv_freq", dtype: "F32", shape: [8], data: Data(count: 32)))
            try SafeTensorsWriter.write(e, to: s.file("model.safetensors"))
            try Self.load(s.url)
        }
    }

    /// A header not padded to 8 bytes (some writers leave it so) puts the data section at an odd
    /// place: the file is used from an aligned copy, every tensor the same bytes, aligned to its
    /// element size, and the checkpoint loads.
    @Test func anUnpaddedHeaderLoadsTheSameTensors() throws {
        let original = try Data(contentsOf: TestData.url("tiny-a/model.safetensors"))
        let n = Int(original.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        try Self.withTiny { s in
            for pad in [1, 2, 3, 5] {
                var out = Data()
                var len = UInt64(n + pad).littleEndian
                withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
                out.append(original.subdata(in: 8..<(8 + n)))
                out.append(Data(repeating: 0x20, count: pad))
                out.append(original.subdata(in: (8 + n)..<original.count))
                try out.write(to: s.file("model.safetensors"))
                let odd = try SafeTensorsFile(path: s.file("model.safetensors").path)
                let want = try SafeTensorsFile(path: TestData.url("tiny-a/model.safetensors").path)
                #expect(odd.dataOffset == 8 + n + pad && odd.tensors == want.tensors)
                for (name, info) in want.tensors {
                    let got = odd.pointer(odd.tensors[name]!)
                    #expect(Int(bitPattern: got) % info.dtype.size == 0, "\(name) at \(got), pad \(pad)")
                    #expect(memcmp(got, want.pointer(info), info.end - info.start) == 0, "\(name), pad \(pad)")
                }
                try Self.load(s.url)
            }
        }
    }

    @Test func shardErrors() throws {
        try Self.withTiny("tiny-b") { s in
            try FileManager.default.removeItem(at: s.file("model-00002-of-00003.safetensors"))
            let m = Self.failure(s.url)
            #expect(m.contains("model-00002-of-00003.safetensors") && m.contains("missing"))
        }
        try Self.withTiny("tiny-b") { s in
            try s.editJSON("model.safetensors.index.json") { c in
                var w = c["weight_map"] as! [String: String]; w["language_model.model.norm.weight"] = "../x.safetensors"; c["weight_map"] = w
            }
            #expect(Self.failure(s.url).contains("not a plain file name"))
        }
        try Self.withTiny("tiny-b") { s in
            try FileManager.default.removeItem(at: s.file("model.safetensors.index.json"))
            #expect(Self.failure(s.url).contains("model.safetensors is missing"))
        }
    }

    @Test func locatorFindsTheHubCacheAndExplainsWhenAbsent() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("home-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        let loc = ModelLocator(environment: ["HOME": home.path])
        do {
            _ = try loc.locate(explicit: nil)
            Issue.record("should not find a model")
        } catch let e as CheckpointError {
            let m = e.errorDescription!
            #expect(m.contains("models--OpenGVLab--Mini-InternVL-Chat-2B-V1-5") && m.contains("hf download"))
            #expect(m.contains("internvl-chat/config.json (no such file)"), "\(m)")
        }
        // A user config that is there but broken is said to be broken, not missing.
        let config = home.appendingPathComponent(".config/internvl-chat/config.json")
        try FileManager.default.createDirectory(at: config.deletingLastPathComponent(), withIntermediateDirectories: true)
        for (content, why) in [("{\"model\": ", "not valid JSON"), ("[1]", "not a JSON object"), ("{\"model\": 5}", "its \"model\" is not a path"),
                               ("{}", "no \"model\" entry")] {
            try Data(content.utf8).write(to: config)
            #expect(throws: CheckpointError.self) { _ = try loc.locate(explicit: nil) }
            do { _ = try loc.locate(explicit: nil) } catch let e as CheckpointError {
                #expect(e.errorDescription!.contains("config.json (\(why))"), "\(content): \(e.errorDescription!)")
            }
        }
        try FileManager.default.removeItem(at: config)
        try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
        do { _ = try loc.locate(explicit: nil) } catch let e as CheckpointError {
            #expect(e.errorDescription!.contains("config.json (not read: it is a folder)"), "\(e.errorDescription!)")
        }
        try FileManager.default.removeItem(at: config)
        let repo = home.appendingPathComponent(".cache/huggingface/hub/models--OpenGVLab--Mini-InternVL-Chat-2B-V1-5")
        let snap = repo.appendingPathComponent("snapshots/abc123")
        try FileManager.default.createDirectory(at: snap, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: snap.appendingPathComponent("config.json"))
        try FileManager.default.createDirectory(at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try Data("abc123\n".utf8).write(to: repo.appendingPathComponent("refs/main"))
        #expect(try loc.locate(explicit: nil).path == snap.path)
        // --model as a repo id: that repo's cached snapshot; absent, the searched paths and its download command.
        let one = home.appendingPathComponent(".cache/huggingface/hub/models--OpenGVLab--InternVL2_5-1B/snapshots/def456")
        do {
            _ = try loc.locate(explicit: "OpenGVLab/InternVL2_5-1B")
            Issue.record("should not find InternVL2_5-1B yet")
        } catch let e as CheckpointError {
            #expect(e.errorDescription!.contains("models--OpenGVLab--InternVL2_5-1B") && e.errorDescription!.contains("hf download OpenGVLab/InternVL2_5-1B"))
        }
        try FileManager.default.createDirectory(at: one, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: one.appendingPathComponent("config.json"))
        #expect(try loc.locate(explicit: "OpenGVLab/InternVL2_5-1B").path == one.path)
        #expect(ModelLocator.repoName("a/../b") == nil && ModelLocator.repoName("./x") == nil && ModelLocator.repoName("/abs") == nil)
        let env = ModelLocator(environment: ["HOME": home.path, "INTERNVL_CHAT_MODEL": "/definitely/missing"])
        #expect(throws: CheckpointError.folderMissing("/definitely/missing")) { try env.locate(explicit: nil) }
    }
}

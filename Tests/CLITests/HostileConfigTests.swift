import Foundation
import Testing
import TestSupport

/// config.json values a hostile or broken download may carry: each ends with one `error:` line
/// naming the key, status 1, quickly and in little memory, through the real binary.
struct HostileConfigTests {
    /// A model folder whose config.json is `edit`ed; the other files are links to `base`'s.
    static func folder(_ edit: (inout [String: Any]) -> Void, base: String = "tiny-b") throws -> URL {
        let fm = FileManager.default
        let src = TestData.url(base)
        let dir = fm.temporaryDirectory.appendingPathComponent("hostile-config-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        for name in try fm.contentsOfDirectory(atPath: src.path) where name != "config.json" {
            try fm.createSymbolicLink(at: dir.appendingPathComponent(name), withDestinationURL: src.appendingPathComponent(name))
        }
        var c = try TestData.json(src.appendingPathComponent("config.json"))
        edit(&c)
        try JSONSerialization.data(withJSONObject: c).write(to: dir.appendingPathComponent("config.json"))
        return dir
    }

    static func top(_ k: String, _ v: Any) -> (inout [String: Any]) -> Void { { $0[k] = v } }
    static func llm(_ k: String, _ v: Any) -> (inout [String: Any]) -> Void {
        { c in var l = c["llm_config"] as! [String: Any]; l[k] = v; c["llm_config"] = l }
    }
    static func vision(_ k: String, _ v: Any) -> (inout [String: Any]) -> Void {
        { c in var l = c["vision_config"] as! [String: Any]; l[k] = v; c["vision_config"] = l }
    }

    nonisolated(unsafe) static let cases: [(String, (inout [String: Any]) -> Void, String)] = [
        ("downsample_ratio -0.5", top("downsample_ratio", -0.5), "downsample_ratio"),
        ("downsample_ratio 0", top("downsample_ratio", 0), "downsample_ratio"),
        ("downsample_ratio 2", top("downsample_ratio", 2), "downsample_ratio"),
        ("downsample_ratio 0.3", top("downsample_ratio", 0.3), "downsample_ratio"),
        ("downsample_ratio 1e-300", top("downsample_ratio", 1e-300), "downsample_ratio"),
        ("downsample_ratio text", top("downsample_ratio", "half"), "downsample_ratio"),
        ("select_layer 100", top("select_layer", 100), "select_layer"),
        ("select_layer -100", top("select_layer", -100), "select_layer"),
        ("force_image_size 0", top("force_image_size", 0), "force_image_size"),
        ("force_image_size 1e9", top("force_image_size", 1_000_000_000), "force_image_size"),
        ("force_image_size 112", top("force_image_size", 112), "force_image_size"),
        ("max_dynamic_patch 1e9", top("max_dynamic_patch", 1_000_000_000), "max_dynamic_patch"),
        ("max_dynamic_patch 0", top("max_dynamic_patch", 0), "max_dynamic_patch"),
        ("min_dynamic_patch -1", top("min_dynamic_patch", -1), "min_dynamic_patch"),
        ("min_dynamic_patch above max", top("min_dynamic_patch", 13), "max_dynamic_patch (12) is below min_dynamic_patch (13)"),
        ("ps_version", top("ps_version", "v9"), "ps_version"),
        ("template", top("template", "chatml"), "template"),
        ("use_thumbnail text", top("use_thumbnail", "yes"), "use_thumbnail"),
        ("dynamic_image_size missing", top("dynamic_image_size", NSNull()), "dynamic_image_size"),
        ("llm layers 1e9", llm("num_hidden_layers", 1_000_000_000), "llm_config.num_hidden_layers"),
        ("llm layers -1", llm("num_hidden_layers", -1), "llm_config.num_hidden_layers"),
        ("llm layers 0", llm("num_hidden_layers", 0), "llm_config.num_hidden_layers"),
        ("llm layers 2.5", llm("num_hidden_layers", 2.5), "llm_config.num_hidden_layers"),
        ("llm layers 1e30", llm("num_hidden_layers", 1e30), "llm_config.num_hidden_layers"),
        ("llm hidden 0", llm("hidden_size", 0), "llm_config.hidden_size"),
        ("llm hidden -96", llm("hidden_size", -96), "llm_config.hidden_size"),
        ("llm hidden 1e7", llm("hidden_size", 10_000_000), "llm_config.hidden_size"),
        ("llm hidden text", llm("hidden_size", "96"), "llm_config.hidden_size"),
        ("llm heads 5", llm("num_attention_heads", 5), "num_attention_heads"),
        ("llm heads 0", llm("num_attention_heads", 0), "llm_config.num_attention_heads"),
        ("llm heads 1e6", llm("num_attention_heads", 1_000_000), "llm_config.num_attention_heads"),
        ("llm heads 48 (odd head size)", llm("num_attention_heads", 96), "head size"),
        ("llm kv heads 3", llm("num_key_value_heads", 3), "num_key_value_heads"),
        ("llm kv heads 0", llm("num_key_value_heads", 0), "llm_config.num_key_value_heads"),
        ("llm kv heads 16", llm("num_key_value_heads", 16), "llm_config.num_key_value_heads"),
        ("llm intermediate -1", llm("intermediate_size", -1), "llm_config.intermediate_size"),
        ("llm intermediate 1e9", llm("intermediate_size", 1_000_000_000), "llm_config.intermediate_size"),
        ("llm vocab 0", llm("vocab_size", 0), "llm_config.vocab_size"),
        ("llm vocab 1e9", llm("vocab_size", 1_000_000_000), "llm_config.vocab_size"),
        ("rms_norm_eps negative", llm("rms_norm_eps", -1e-5), "llm_config.rms_norm_eps"),
        ("rms_norm_eps 0", llm("rms_norm_eps", 0), "llm_config.rms_norm_eps"),
        ("rms_norm_eps 5", llm("rms_norm_eps", 5), "llm_config.rms_norm_eps"),
        ("rope_theta 0", llm("rope_theta", 0), "llm_config.rope_theta"),
        ("rope_theta -1", llm("rope_theta", -1), "llm_config.rope_theta"),
        ("rope_theta 1e300", llm("rope_theta", 1e300), "llm_config.rope_theta"),
        ("rope_scaling factor 0", llm("rope_scaling", ["type": "dynamic", "factor": 0]), "llm_config.rope_scaling.factor"),
        ("rope_scaling factor -2", llm("rope_scaling", ["type": "linear", "factor": -2]), "llm_config.rope_scaling.factor"),
        ("rope_scaling factor 1e9", llm("rope_scaling", ["type": "dynamic", "factor": 1e9]), "llm_config.rope_scaling.factor"),
        ("rope_scaling type", llm("rope_scaling", ["type": "yarn", "factor": 2]), "llm_config.rope_scaling.type"),
        ("rope_scaling no factor", llm("rope_scaling", ["type": "dynamic"]), "llm_config.rope_scaling.factor"),
        ("su without long_factor", llm("rope_scaling", ["type": "su", "short_factor": [Double](repeating: 1, count: 6)]),
         "llm_config.rope_scaling.long_factor"),
        ("su factors of the wrong count", llm("rope_scaling", ["type": "su", "short_factor": [1.0], "long_factor": [1.0]]),
         "llm_config.rope_scaling.short_factor"),
        ("su without original context", llm("rope_scaling", ["type": "longrope", "short_factor": [Double](repeating: 1, count: 6),
                                                               "long_factor": [Double](repeating: 2, count: 6)]),
         "original_max_position_embeddings"),
        ("max_position_embeddings 0", llm("max_position_embeddings", 0), "llm_config.max_position_embeddings"),
        ("max_position_embeddings 1e12", llm("max_position_embeddings", 1_000_000_000_000), "llm_config.max_position_embeddings"),
        ("eos_token_id = vocab", llm("eos_token_id", 92553), "llm_config.eos_token_id"),
        ("eos_token_id -1", llm("eos_token_id", -1), "llm_config.eos_token_id"),
        ("bos_token_id 1e6", llm("bos_token_id", 1_000_000), "llm_config.bos_token_id"),
        ("architectures empty", llm("architectures", [String]()), "llm_config.architectures"),
        ("vision layers -1", vision("num_hidden_layers", -1), "vision_config.num_hidden_layers"),
        ("vision layers 1e9", vision("num_hidden_layers", 1_000_000_000), "vision_config.num_hidden_layers"),
        ("vision heads 1000", vision("num_attention_heads", 1000), "vision_config.num_attention_heads"),
        ("vision heads 3", vision("num_attention_heads", 3), "num_attention_heads"),
        ("vision heads 0", vision("num_attention_heads", 0), "vision_config.num_attention_heads"),
        ("vision hidden 0", vision("hidden_size", 0), "vision_config.hidden_size"),
        ("vision hidden 1e9", vision("hidden_size", 1_000_000_000), "vision_config.hidden_size"),
        ("vision intermediate 0", vision("intermediate_size", 0), "vision_config.intermediate_size"),
        ("vision patch 0", vision("patch_size", 0), "vision_config.patch_size"),
        ("vision patch 15", vision("patch_size", 15), "patch_size"),
        ("vision patch 1000", vision("patch_size", 1000), "vision_config.patch_size"),
        ("vision image 0", vision("image_size", 0), "vision_config.image_size"),
        ("vision image 1e9", vision("image_size", 1_000_000_000), "vision_config.image_size"),
        ("vision eps -1", vision("layer_norm_eps", -1), "vision_config.layer_norm_eps"),
        ("vision channels 4", vision("num_channels", 4), "vision_config.num_channels"),
        ("vision norm_type", vision("norm_type", "rms_norm"), "vision_config.norm_type"),
        ("vision qk_normalization", vision("qk_normalization", true), "vision_config.qk_normalization"),
        ("vision hidden_act", vision("hidden_act", "gelu_pytorch_tanh"), "vision_config.hidden_act"),
        ("vision qkv_bias text", vision("qkv_bias", "yes"), "vision_config.qkv_bias"),
        ("vision_config null", top("vision_config", NSNull()), "vision_config"),
        ("llm_config missing", { $0["llm_config"] = nil }, "llm_config"),
        ("template missing", { $0["template"] = nil }, "template"),
        ("ps_version number", top("ps_version", 1), "ps_version"),
        ("llm hidden_act", llm("hidden_act", "relu"), "llm_config.hidden_act"),
        ("InternLM2 bias", llm("bias", true), "llm_config.bias"),
        ("tie_word_embeddings text", llm("tie_word_embeddings", "no"), "llm_config.tie_word_embeddings"),
        // In range, but not what the weights are: the first tensor that disagrees is named.
        ("llm hidden 128 (weights 96)", llm("hidden_size", 128), "config.json implies [128, 128]"),
        ("llm kv heads 1 (weights 2)", llm("num_key_value_heads", 1), "attention.wqkv.weight has shape [144, 96]"),
        ("llm vocab 1000 (weights 92553)", llm("vocab_size", 1000), "tok_embeddings.weight has shape [92553, 96]"),
        ("llm intermediate 100 (weights 160)", llm("intermediate_size", 100), "config.json implies [100, 96]"),
        ("llm layers 2 (weights 3)", llm("num_hidden_layers", 2), "unexpected tensor language_model.model.layers.2."),
        ("llm layers 4 (weights 3)", llm("num_hidden_layers", 4), "lacks tensor language_model.model.layers.3."),
        ("vision layers 3 (weights 2)", vision("num_hidden_layers", 3), "lacks tensor vision_model.encoder.layers.2."),
        ("vision qkv_bias false (weights have it)", vision("qkv_bias", false), "attn.qkv.bias: the checkpoint does not match config.json"),
        ("downsample_ratio 0.25 (projector for 0.5)", top("downsample_ratio", 0.25), "mlp1.0.bias has shape [128]"),
        ("tie_word_embeddings true (weights have output)", llm("tie_word_embeddings", true), "unexpected tensor language_model.output.weight"),
        ("Qwen2 architecture on InternLM2 weights", llm("architectures", ["Qwen2ForCausalLM"]), "lacks tensor language_model.lm_head.weight"),
    ]

    /// The keys only the other families read, on their tiny models.
    nonisolated(unsafe) static let familyCases: [(String, String, (inout [String: Any]) -> Void, String)] = [
        ("Qwen2 sliding window", "tiny-qwen2", { c in
            var l = c["llm_config"] as! [String: Any]; l["use_sliding_window"] = true; l["sliding_window"] = 1024; c["llm_config"] = l
        }, "llm_config.use_sliding_window"),
        ("Qwen2 hidden_act", "tiny-qwen2", llm("hidden_act", "gelu"), "llm_config.hidden_act"),
        ("Qwen2 untied (no lm_head in the weights)", "tiny-qwen2", llm("tie_word_embeddings", false),
         "lacks tensor language_model.lm_head.weight"),
        ("Phi-3 sliding window", "tiny-phi3", llm("sliding_window", 2048), "llm_config.sliding_window"),
        ("Phi-3 original context 1e6", "tiny-phi3", llm("original_max_position_embeddings", 1_000_000),
         "llm_config.original_max_position_embeddings"),
        ("Phi-3 negative long factor", "tiny-phi3", { c in
            var l = c["llm_config"] as! [String: Any]; var r = l["rope_scaling"] as! [String: Any]
            var f = r["long_factor"] as! [Any]; f[0] = -1.0; r["long_factor"] = f; l["rope_scaling"] = r; c["llm_config"] = l
        }, "llm_config.rope_scaling.long_factor"),
        ("Phi-3 tied (weights have lm_head)", "tiny-phi3", llm("tie_word_embeddings", true), "unexpected tensor language_model.lm_head.weight"),
    ]

    @Test(arguments: 0..<cases.count)
    func hostileValueIsOneCleanError(_ i: Int) throws {
        let (name, edit, key) = Self.cases[i]
        try Self.expectOneCleanError(name, try Self.folder(edit), key)
    }

    @Test(arguments: 0..<familyCases.count)
    func hostileFamilyValueIsOneCleanError(_ i: Int) throws {
        let (name, base, edit, key) = Self.familyCases[i]
        try Self.expectOneCleanError(name, try Self.folder(edit, base: base), key)
    }

    static func expectOneCleanError(_ name: String, _ dir: URL, _ key: String) throws {
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = TestData.url("images/photo-chelsea.png").path
        let r = try BoundedRun.run(CLITests.binary, ["generate", "--model", dir.path, "--image", image,
                                                      "--max-new-tokens", "1", "Describe."])
        let lines = r.err.split(separator: "\n")
        #expect(!r.killed && r.status == 1, "\(name): status \(r.status), killed \(r.killed): \(r.err)")
        #expect(lines.count == 1 && r.err.hasPrefix("error: ") && r.err.contains(key), "\(name): \(r.err)")
        #expect(r.seconds < 10, "\(name): \(r.seconds) s")
        #expect(r.maxRSSBytes > 0 && r.maxRSSBytes < 1 << 30, "\(name): \(r.maxRSSBytes) bytes (0: never sampled after the exec)")
    }
}

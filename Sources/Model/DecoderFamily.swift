import Checkpoint

/// How one language-model family stores its decoder: tensor names (under the checkpoint's
/// `language_model.` prefix) and how queries, keys and values are packed. The forward pass is
/// `DecoderModel`'s.
public enum DecoderFamily: Sendable {
    /// InternLM2ForCausalLM (internvl_chat/internvl/model/internlm2/modeling_internlm2.py).
    case internLM2
    /// Qwen2ForCausalLM (transformers' modeling_qwen2.py): q/k/v with biases.
    case qwen2
    /// Phi3ForCausalLM (internvl_chat/internvl/model/phi3/modeling_phi3.py): one `qkv_proj` of
    /// rows queries, keys, values; one `gate_up_proj` of rows gate, up.
    case phi3

    /// How the attention input projections are stored.
    public enum QKV: Sendable {
        /// One matrix, rows packed per kv head: its query heads, its key, its value.
        case fusedGroupedByKV(String)
        /// One matrix of rows all queries, all keys, all values.
        case fused(String)
        /// Three matrices (`name.weight`, and `name.bias` when `bias`), joined at load into one
        /// of rows queries, keys, values.
        case separate(q: String, k: String, v: String, bias: Bool)

        var isGroupedByKV: Bool { if case .fusedGroupedByKV = self { true } else { false } }
    }

    /// How the MLP's gate and up projections are stored.
    public enum GateUp: Sendable {
        case separate(gate: String, up: String)
        /// One matrix, the gate's rows first, then the up projection's (`chunk(2, dim=-1)`).
        case fused(String)
    }

    /// Tensor names; the per-layer ones follow `layers` + layer index + ".".
    public struct Names: Sendable {
        let embeddings: String
        let layers: String
        let attentionNorm: String
        let qkv: QKV
        let attentionOutput: String
        let ffnNorm: String
        let gateUp: GateUp
        let down: String
        let finalNorm: String
        let output: String
    }

    public var names: Names {
        switch self {
        case .internLM2:
            Names(embeddings: "model.tok_embeddings.weight", layers: "model.layers.",
                  attentionNorm: "attention_norm.weight", qkv: .fusedGroupedByKV("attention.wqkv.weight"),
                  attentionOutput: "attention.wo.weight", ffnNorm: "ffn_norm.weight",
                  gateUp: .separate(gate: "feed_forward.w1.weight", up: "feed_forward.w3.weight"), down: "feed_forward.w2.weight",
                  finalNorm: "model.norm.weight", output: "output.weight")
        case .qwen2:
            Names(embeddings: "model.embed_tokens.weight", layers: "model.layers.",
                  attentionNorm: "input_layernorm.weight",
                  qkv: .separate(q: "self_attn.q_proj", k: "self_attn.k_proj", v: "self_attn.v_proj", bias: true),
                  attentionOutput: "self_attn.o_proj.weight", ffnNorm: "post_attention_layernorm.weight",
                  gateUp: .separate(gate: "mlp.gate_proj.weight", up: "mlp.up_proj.weight"), down: "mlp.down_proj.weight",
                  finalNorm: "model.norm.weight", output: "lm_head.weight")
        case .phi3:
            Names(embeddings: "model.embed_tokens.weight", layers: "model.layers.",
                  attentionNorm: "input_layernorm.weight", qkv: .fused("self_attn.qkv_proj.weight"),
                  attentionOutput: "self_attn.o_proj.weight", ffnNorm: "post_attention_layernorm.weight",
                  gateUp: .fused("mlp.gate_up_proj.weight"), down: "mlp.down_proj.weight",
                  finalNorm: "model.norm.weight", output: "lm_head.weight")
        }
    }

    /// The family that runs `architecture`.
    public init(_ architecture: LLMArchitecture) {
        switch architecture {
        case .internLM2: self = .internLM2
        case .qwen2: self = .qwen2
        case .phi3: self = .phi3
        }
    }
}

"""Independent NumPy reference of Qwen2ForCausalLM (transformers' modeling_qwen2.py, eager
attention, no sliding window), computed in float64 from the bf16 weights: Qwen2RMSNorm,
q/k/v projections with biases, rotate-half RoPE with rope_theta, repeat_kv, causal softmax,
SwiGLU MLP, the head tied to the embeddings when tie_word_embeddings says so.
"""
import numpy as np


class RefQwen2:
    def __init__(self, cfg, weights):
        self.c = cfg["llm_config"]
        self.w = {k[len("language_model."):]: v.astype(np.float64)
                  for k, v in weights.items() if k.startswith("language_model.")}
        c = self.c
        self.heads, self.kv = c["num_attention_heads"], c["num_key_value_heads"]
        self.hd = c["hidden_size"] // self.heads
        self.eps = c["rms_norm_eps"]
        assert not c.get("rope_scaling"), "the reference has no RoPE scaling for Qwen2"
        self.head = self.w["model.embed_tokens.weight"] if c.get("tie_word_embeddings") else self.w["lm_head.weight"]

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        d = self.hd
        inv = 1.0 / float(self.c["rope_theta"]) ** (np.arange(0, d, 2, dtype=np.float64) / d)
        ang = pos[:, None] * inv[None, :]
        cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
        sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
        h = d // 2
        return x * cos + np.concatenate([-x[..., h:], x[..., :h]], -1) * sin

    def forward(self, ids, embeds=None):
        """Logits [T, vocab] of the whole sequence; `embeds` = (context id, vectors, prompt length)
        puts image tokens in place of the context ids of the prompt."""
        w, T = self.w, len(ids)
        h = w["model.embed_tokens.weight"][np.asarray(ids)].copy()
        if embeds is not None:
            ctx, vectors, prompt_len = embeds
            sel = np.zeros(T, bool)
            sel[:prompt_len] = np.asarray(ids[:prompt_len]) == ctx
            h[sel] = vectors
        pos = np.arange(T, dtype=np.float64)
        mask = np.triu(np.full((T, T), -np.inf), 1)
        g = self.heads // self.kv
        for i in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = self.rms(h, w[p + "input_layernorm.weight"])
            q = (x @ w[p + "self_attn.q_proj.weight"].T + w[p + "self_attn.q_proj.bias"]).reshape(T, self.heads, self.hd)
            k = (x @ w[p + "self_attn.k_proj.weight"].T + w[p + "self_attn.k_proj.bias"]).reshape(T, self.kv, self.hd)
            v = (x @ w[p + "self_attn.v_proj.weight"].T + w[p + "self_attn.v_proj.bias"]).reshape(T, self.kv, self.hd)
            q, k = self.rope(q, pos), self.rope(k, pos)
            k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
            att = np.einsum("thd,shd->hts", q, k) / np.sqrt(self.hd) + mask[None]
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, v).reshape(T, self.heads * self.hd)
            h = h + o @ w[p + "self_attn.o_proj.weight"].T
            x = self.rms(h, w[p + "post_attention_layernorm.weight"])
            gt = x @ w[p + "mlp.gate_proj.weight"].T
            up = x @ w[p + "mlp.up_proj.weight"].T
            h = h + ((gt / (1 + np.exp(-gt))) * up) @ w[p + "mlp.down_proj.weight"].T
        return self.rms(h, w["model.norm.weight"]) @ self.head.T

    def greedy(self, ids, n, stop_ids=(), embeds=None):
        ids, out = list(ids), []
        for _ in range(n):
            nxt = int(np.argmax(self.forward(ids, embeds)[-1]))
            if nxt in stop_ids:
                break
            out.append(nxt)
            ids.append(nxt)
        return out

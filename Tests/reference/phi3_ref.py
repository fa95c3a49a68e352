"""Independent NumPy reference of Phi3ForCausalLM as InternVL ships it
(internvl_chat/internvl/model/phi3/modeling_phi3.py, eager attention), in float64 from the bf16
weights: RMSNorm, one qkv_proj of rows queries / keys / values, rotate-half RoPE, repeat_kv,
causal softmax, one gate_up_proj (gate rows first) with SiLU, lm_head.

RoPE with rope_scaling type su / longrope (Phi3SuScaledRotaryEmbedding): each forward call picks
the long factors when its sequence length (the largest position + 1) is past
original_max_position_embeddings, the short ones otherwise; inv_freq = 1 / (factor *
base^(2i/d)); cos and sin are multiplied by sqrt(1 + ln(max / original) / ln(original)) when
max_position_embeddings > original. Keys keep the rotation of the call that computed them, as
generate() with its cache does, so `greedy` runs a real KV cache.
"""
import math

import numpy as np


class RefPhi3:
    def __init__(self, cfg, weights):
        self.c = cfg["llm_config"]
        self.w = {k[len("language_model."):]: v.astype(np.float64)
                  for k, v in weights.items() if k.startswith("language_model.")}
        c = self.c
        self.heads, self.kv = c["num_attention_heads"], c["num_key_value_heads"]
        self.hd = c["hidden_size"] // self.heads
        self.ff = c["intermediate_size"]
        self.eps = c["rms_norm_eps"]
        self.rs = c.get("rope_scaling")
        assert self.rs is None or self.rs["type"] in ("su", "longrope")
        sw = c.get("sliding_window")
        assert sw is None or sw >= c["max_position_embeddings"], "no sliding window in the reference"

    def rms(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope_tables(self, pos, call_len):
        d, c = self.hd, self.c
        powers = float(c["rope_theta"]) ** (np.arange(0, d, 2, dtype=np.float64) / d)
        mag = 1.0
        if self.rs is not None:
            orig = c["original_max_position_embeddings"]
            ext = np.asarray(self.rs["long_factor"] if call_len > orig else self.rs["short_factor"], np.float64)
            powers = powers * ext
            scale = c["max_position_embeddings"] / orig
            mag = 1.0 if scale <= 1.0 else math.sqrt(1 + math.log(scale) / math.log(orig))
        ang = pos[:, None] / powers[None, :]
        cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :] * mag
        sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :] * mag
        return cos, sin

    def rope(self, x, cos, sin):
        h = self.hd // 2
        return x * cos + np.concatenate([-x[..., h:], x[..., :h]], -1) * sin

    def new_cache(self):
        return [[np.zeros((0, self.kv, self.hd)), np.zeros((0, self.kv, self.hd))]
                for _ in range(self.c["num_hidden_layers"])]

    def step(self, h, cache):
        """Runs new positions `h` [T, hidden] after the cache's; returns logits [T, vocab]."""
        w, T = self.w, h.shape[0]
        past = cache[0][0].shape[0]
        pos = np.arange(past, past + T, dtype=np.float64)
        cos, sin = self.rope_tables(pos, past + T)
        mask = np.triu(np.full((T, past + T), -np.inf), past + 1)
        g = self.heads // self.kv
        nq, nk = self.heads * self.hd, self.kv * self.hd
        for i in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = self.rms(h, w[p + "input_layernorm.weight"])
            qkv = x @ w[p + "self_attn.qkv_proj.weight"].T
            q = qkv[:, :nq].reshape(T, self.heads, self.hd)
            k = qkv[:, nq:nq + nk].reshape(T, self.kv, self.hd)
            v = qkv[:, nq + nk:].reshape(T, self.kv, self.hd)
            q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
            cache[i][0] = np.concatenate([cache[i][0], k])
            cache[i][1] = np.concatenate([cache[i][1], v])
            kk, vv = np.repeat(cache[i][0], g, axis=1), np.repeat(cache[i][1], g, axis=1)
            att = np.einsum("thd,shd->hts", q, kk) / np.sqrt(self.hd) + mask[None]
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, vv).reshape(T, nq)
            h = h + o @ w[p + "self_attn.o_proj.weight"].T
            x = self.rms(h, w[p + "post_attention_layernorm.weight"])
            gu = x @ w[p + "mlp.gate_up_proj.weight"].T
            gt, up = gu[:, :self.ff], gu[:, self.ff:]
            h = h + ((gt / (1 + np.exp(-gt))) * up) @ w[p + "mlp.down_proj.weight"].T
        return self.rms(h, w["model.norm.weight"]) @ w["lm_head.weight"].T

    def embed(self, ids, embeds=None):
        h = self.w["model.embed_tokens.weight"][np.asarray(ids)].copy()
        if embeds is not None:
            ctx, vectors, prompt_len = embeds
            sel = np.zeros(len(ids), bool)
            sel[:prompt_len] = np.asarray(ids[:prompt_len]) == ctx
            h[sel] = vectors
        return h

    def forward(self, ids, embeds=None):
        """Logits [T, vocab] of the whole sequence in one call; `embeds` = (context id, vectors,
        prompt length) puts image tokens in place of the context ids of the prompt."""
        return self.step(self.embed(ids, embeds), self.new_cache())

    def greedy(self, ids, n, stop_ids=(), embeds=None):
        cache, out = self.new_cache(), []
        logits = self.step(self.embed(ids, embeds), cache)[-1]
        for _ in range(n):
            nxt = int(np.argmax(logits))
            if nxt in stop_ids:
                break
            out.append(nxt)
            logits = self.step(self.embed([nxt]), cache)[-1]
        return out

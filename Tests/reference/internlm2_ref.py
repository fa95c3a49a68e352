"""Independent NumPy reference of InternLM2ForCausalLM (modeling_internlm2.py, eager attention),
computed in float64 from the bf16 weights. Mirrors: InternLM2RMSNorm, the wqkv rearrange
'b q (h gs d) -> b q h gs d' with gs = 2 + groups, rotate-half RoPE with
InternLM2DynamicNTKScalingRotaryEmbedding (the base grows when the sequence length seen by the
call exceeds max_position_embeddings), repeat_kv, causal softmax attention, SwiGLU, untied head.
"""
import numpy as np


class RefInternLM2:
    def __init__(self, cfg, weights):
        self.c = cfg["llm_config"]
        self.w = {k[len("language_model."):]: v.astype(np.float64)
                  for k, v in weights.items() if k.startswith("language_model.")}
        c = self.c
        self.heads, self.kv = c["num_attention_heads"], c["num_key_value_heads"]
        self.hd = c["hidden_size"] // self.heads
        self.groups = self.heads // self.kv
        self.eps = c["rms_norm_eps"]

    def rms(self, x, w):
        var = np.mean(x * x, axis=-1, keepdims=True)
        return x / np.sqrt(var + self.eps) * w

    def inv_freq(self, seq_len):
        c, d = self.c, self.hd
        base = float(c["rope_theta"])
        rs = c.get("rope_scaling")
        if rs and rs["type"] == "dynamic" and seq_len > c["max_position_embeddings"]:
            f = rs["factor"]
            base = base * ((f * seq_len / c["max_position_embeddings"]) - (f - 1)) ** (d / (d - 2))
        elif rs and rs["type"] == "linear":
            raise NotImplementedError
        return 1.0 / base ** (np.arange(0, d, 2, dtype=np.float64) / d)

    def rope(self, x, pos, inv):
        # x [T, H, d], inv [T, d/2]; rotate half: pair i with i + d/2
        ang = pos[:, None] * inv                     # [T, d/2]
        cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
        sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
        h = x.shape[-1] // 2
        rot = np.concatenate([-x[..., h:], x[..., :h]], -1)
        return x * cos + rot * sin

    def forward(self, ids, call_len=None, embeds=None):
        """Full-sequence forward, no cache: logits [T, vocab].

        call_len[j] is the sequence length of the forward call in which position j was first
        computed (official generate(): the prompt in one call, then one token per call). Dynamic
        NTK picks the RoPE base from that length, and cached keys keep the base they got, so a
        cached generation past max_position_embeddings is reproduced by rotating each position
        with its own call's base. Default: the whole sequence in one call.
        """
        w, T = self.w, len(ids)
        h = w["model.tok_embeddings.weight"][np.asarray(ids)]
        if embeds is not None:          # InternVLChatModel.generate: image tokens replace embeddings
            ctx, vectors, prompt_len = embeds  # (only in the prompt; generated ids embed as usual)
            h = h.copy()
            sel = np.zeros(T, bool)
            sel[:prompt_len] = np.asarray(ids[:prompt_len]) == ctx
            h[sel] = vectors
        pos = np.arange(T, dtype=np.float64)
        if call_len is None:
            call_len = [T] * T
        inv = np.stack([self.inv_freq(L) for L in call_len])   # [T, d/2]
        mask = np.triu(np.full((T, T), -np.inf), 1)
        for i in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = self.rms(h, w[p + "attention_norm.weight"])
            qkv = (x @ w[p + "attention.wqkv.weight"].T).reshape(T, self.kv, 2 + self.groups, self.hd)
            q = qkv[:, :, :self.groups, :].reshape(T, self.heads, self.hd)
            k = qkv[:, :, -2, :]
            v = qkv[:, :, -1, :]
            q, k = self.rope(q, pos, inv), self.rope(k, pos, inv)
            k = np.repeat(k, self.groups, axis=1)     # repeat_kv: head j reads kv j // groups
            v = np.repeat(v, self.groups, axis=1)
            att = np.einsum("thd,shd->hts", q, k) / np.sqrt(self.hd) + mask[None]
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, v).reshape(T, self.heads * self.hd)
            h = h + o @ w[p + "attention.wo.weight"].T
            x = self.rms(h, w[p + "ffn_norm.weight"])
            g = x @ w[p + "feed_forward.w1.weight"].T
            u = x @ w[p + "feed_forward.w3.weight"].T
            h = h + ((g / (1 + np.exp(-g))) * u) @ w[p + "feed_forward.w2.weight"].T
        h = self.rms(h, w["model.norm.weight"])
        return h @ w["output.weight"].T

    def greedy(self, ids, n, stop_ids=(), embeds=None, pad=0):
        """Greedy continuation as official generate() produces it, recomputed in full each step.

        pad: left padding of this prompt in a batch (batch_chat pads on the left to the longest
        prompt). The mask and position ids (cumsum of the attention mask) make the pads invisible,
        but the rotary embedding gets kv_seq_len, which counts them, so dynamic NTK picks its base
        from the padded lengths."""
        ids, out = list(ids), []
        P = len(ids)
        for _ in range(n):
            call_len = [P + pad] * P + [j + 1 + pad for j in range(P, len(ids))]
            nxt = int(np.argmax(self.forward(ids, call_len, embeds)[-1]))
            if nxt in stop_ids:
                break
            out.append(nxt)
            ids.append(nxt)
        return out

"""Independent NumPy reference of InternVisionModel + InternVLChatModel.extract_feature
(modeling_intern_vit.py, modeling_internvl_chat.py), float64 from the bf16 weights. The pixel
shuffle is the official sequence of view/permute calls, not a reformulation."""
import numpy as np
from scipy.special import erf


def layer_norm(x, w, b, eps):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def gelu(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


class RefVision:
    def __init__(self, cfg, weights):
        self.cfg = cfg
        self.v = cfg["vision_config"]
        self.w = {k: v.astype(np.float64) for k, v in weights.items()
                  if k.startswith("vision_model.") or k.startswith("mlp1.")}

    def hidden_states(self, pixel_values):
        """All hidden states: [embeddings, after layer 1, ..., after layer N], each [T, N, C]."""
        w, v = self.w, self.v
        p, C = v["patch_size"], v["hidden_size"]
        T, _, H, W = pixel_values.shape
        gh, gw = H // p, W // p
        # Conv2d(kernel = stride = p) as patches @ kernel
        x = pixel_values.astype(np.float64).reshape(T, 3, gh, p, gw, p).transpose(0, 2, 4, 1, 3, 5).reshape(T, gh * gw, 3 * p * p)
        k = w["vision_model.embeddings.patch_embedding.weight"].reshape(C, -1)
        patches = x @ k.T + w["vision_model.embeddings.patch_embedding.bias"]        # flatten(2).transpose(1, 2)
        cls = np.broadcast_to(w["vision_model.embeddings.class_embedding"], (T, 1, C))
        h = np.concatenate([cls, patches], 1) + w["vision_model.embeddings.position_embedding"]
        states = [h]
        heads = v["num_attention_heads"]
        hd = C // heads
        eps = v["layer_norm_eps"]
        for i in range(v["num_hidden_layers"]):
            b = f"vision_model.encoder.layers.{i}."
            xn = layer_norm(h, w[b + "norm1.weight"], w[b + "norm1.bias"], eps)
            qkv = xn @ w[b + "attn.qkv.weight"].T + w[b + "attn.qkv.bias"]
            N = qkv.shape[1]
            qkv = qkv.reshape(T, N, 3, heads, hd).transpose(2, 0, 3, 1, 4)           # 3, B, heads, N, hd
            q, kk, vv = qkv[0], qkv[1], qkv[2]
            att = (q * hd ** -0.5) @ kk.transpose(0, 1, 3, 2)
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o = (att @ vv).transpose(0, 2, 1, 3).reshape(T, N, C)
            o = o @ w[b + "attn.proj.weight"].T + w[b + "attn.proj.bias"]
            h = h + o * w[b + "ls1"]
            xn = layer_norm(h, w[b + "norm2.weight"], w[b + "norm2.bias"], eps)
            m = gelu(xn @ w[b + "mlp.fc1.weight"].T + w[b + "mlp.fc1.bias"])
            h = h + (m @ w[b + "mlp.fc2.weight"].T + w[b + "mlp.fc2.bias"]) * w[b + "ls2"]
            states.append(h)
        return states

    def pixel_shuffle(self, x, scale_factor):
        n, w, h, c = x.shape
        x = x.reshape(n, w, int(h * scale_factor), int(c / scale_factor))
        x = x.transpose(0, 2, 1, 3)
        x = x.reshape(n, int(h * scale_factor), int(w * scale_factor), int(c / (scale_factor * scale_factor)))
        if self.cfg["ps_version"] != "v1":
            x = x.transpose(0, 2, 1, 3)
        return x

    def extract_feature(self, pixel_values):
        states = self.hidden_states(pixel_values)
        x = states[self.cfg["select_layer"]][:, 1:, :]
        h = w = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], h, w, -1)
        x = self.pixel_shuffle(x, self.cfg["downsample_ratio"])
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        m = self.w
        x = layer_norm(x, m["mlp1.0.weight"], m["mlp1.0.bias"], 1e-5)
        x = gelu(x @ m["mlp1.1.weight"].T + m["mlp1.1.bias"])
        return x @ m["mlp1.3.weight"].T + m["mlp1.3.bias"]

"""Write random-weight checkpoints in the exact layout of OpenGVLab/Mini-InternVL-Chat-2B-V1-5.

Same config.json keys, same tensor names and shapes (scaled by the config), bf16 safetensors
(single file or sharded with model.safetensors.index.json). Independent of the Swift code: this
is the layout as the Hugging Face repo ships it, written from ../../../shared/MODEL.md.
"""
import json
import os
import struct

import numpy as np


def real_config():
    """config.json of the real checkpoint (keys and values as published)."""
    return {
        "architectures": ["InternVLChatModel"],
        "auto_map": {
            "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
            "AutoModel": "modeling_internvl_chat.InternVLChatModel",
            "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel",
        },
        "downsample_ratio": 0.5,
        "dynamic_image_size": True,
        "force_image_size": 448,
        "llm_config": {
            "_name_or_path": "internlm/internlm2-chat-1_8b",
            "architectures": ["InternLM2ForCausalLM"],
            "attn_implementation": "eager",
            "bias": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "hidden_act": "silu",
            "hidden_size": 2048,
            "initializer_range": 0.02,
            "intermediate_size": 8192,
            "max_position_embeddings": 32768,
            "model_type": "internlm2",
            "num_attention_heads": 16,
            "num_hidden_layers": 24,
            "num_key_value_heads": 8,
            "pad_token_id": 2,
            "rms_norm_eps": 1e-05,
            "rope_scaling": {"factor": 2.0, "type": "dynamic"},
            "rope_theta": 1000000,
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "use_cache": True,
            "vocab_size": 92553,
        },
        "max_dynamic_patch": 12,
        "min_dynamic_patch": 1,
        "model_type": "internvl_chat",
        "ps_version": "v1",
        "select_layer": -1,
        "template": "internlm2-chat",
        "torch_dtype": "bfloat16",
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "use_thumbnail": True,
        "vision_config": {
            "architectures": ["InternVisionModel"],
            "attention_dropout": 0.0,
            "drop_path_rate": 0.0,
            "dropout": 0.0,
            "hidden_act": "gelu",
            "hidden_size": 1024,
            "image_size": 448,
            "initializer_factor": 1.0,
            "initializer_range": 0.02,
            "intermediate_size": 4096,
            "layer_norm_eps": 1e-06,
            "model_type": "intern_vit_6b",
            "norm_type": "layer_norm",
            "num_attention_heads": 16,
            "num_channels": 3,
            "num_hidden_layers": 24,
            "patch_size": 14,
            "qk_normalization": False,
            "qkv_bias": True,
            "torch_dtype": "bfloat16",
            "use_flash_attn": False,
        },
    }


def tensor_shapes(cfg):
    """Every tensor of the checkpoint, name -> shape, in the order the real file lists them."""
    v, l = cfg["vision_config"], cfg["llm_config"]
    vh, vm, p = v["hidden_size"], v["intermediate_size"], v["patch_size"]
    grid = v["image_size"] // p
    shapes = {
        "vision_model.embeddings.class_embedding": [1, 1, vh],
        "vision_model.embeddings.patch_embedding.weight": [vh, 3, p, p],
        "vision_model.embeddings.patch_embedding.bias": [vh],
        "vision_model.embeddings.position_embedding": [1, grid * grid + 1, vh],
    }
    for i in range(v["num_hidden_layers"]):
        b = f"vision_model.encoder.layers.{i}."
        shapes.update({
            b + "norm1.weight": [vh], b + "norm1.bias": [vh],
            b + "attn.qkv.weight": [3 * vh, vh], b + "attn.qkv.bias": [3 * vh],
            b + "attn.proj.weight": [vh, vh], b + "attn.proj.bias": [vh],
            b + "ls1": [vh], b + "ls2": [vh],
            b + "norm2.weight": [vh], b + "norm2.bias": [vh],
            b + "mlp.fc1.weight": [vm, vh], b + "mlp.fc1.bias": [vm],
            b + "mlp.fc2.weight": [vh, vm], b + "mlp.fc2.bias": [vh],
        })
    ps = int(round(1 / cfg["downsample_ratio"])) ** 2 * vh
    lh = l["hidden_size"]
    shapes.update({
        "mlp1.0.weight": [ps], "mlp1.0.bias": [ps],
        "mlp1.1.weight": [lh, ps], "mlp1.1.bias": [lh],
        "mlp1.3.weight": [lh, lh], "mlp1.3.bias": [lh],
    })
    heads, kv = l["num_attention_heads"], l["num_key_value_heads"]
    hd = lh // heads
    ff, vocab = l["intermediate_size"], l["vocab_size"]
    if l["architectures"][0] == "Phi3ForCausalLM":
        shapes["language_model.model.embed_tokens.weight"] = [vocab, lh]
        for i in range(l["num_hidden_layers"]):
            b = f"language_model.model.layers.{i}."
            shapes.update({
                b + "input_layernorm.weight": [lh],
                b + "self_attn.qkv_proj.weight": [(heads + 2 * kv) * hd, lh],
                b + "self_attn.o_proj.weight": [lh, heads * hd],
                b + "post_attention_layernorm.weight": [lh],
                b + "mlp.gate_up_proj.weight": [2 * ff, lh],
                b + "mlp.down_proj.weight": [lh, ff],
            })
        shapes["language_model.model.norm.weight"] = [lh]
        shapes["language_model.lm_head.weight"] = [vocab, lh]
        return shapes
    if l["architectures"][0] == "Qwen2ForCausalLM":
        shapes["language_model.model.embed_tokens.weight"] = [vocab, lh]
        for i in range(l["num_hidden_layers"]):
            b = f"language_model.model.layers.{i}."
            shapes.update({
                b + "input_layernorm.weight": [lh],
                b + "self_attn.q_proj.weight": [heads * hd, lh], b + "self_attn.q_proj.bias": [heads * hd],
                b + "self_attn.k_proj.weight": [kv * hd, lh], b + "self_attn.k_proj.bias": [kv * hd],
                b + "self_attn.v_proj.weight": [kv * hd, lh], b + "self_attn.v_proj.bias": [kv * hd],
                b + "self_attn.o_proj.weight": [lh, heads * hd],
                b + "post_attention_layernorm.weight": [lh],
                b + "mlp.gate_proj.weight": [ff, lh],
                b + "mlp.up_proj.weight": [ff, lh],
                b + "mlp.down_proj.weight": [lh, ff],
            })
        shapes["language_model.model.norm.weight"] = [lh]
        if not l.get("tie_word_embeddings"):
            shapes["language_model.lm_head.weight"] = [vocab, lh]
        return shapes
    shapes["language_model.model.tok_embeddings.weight"] = [vocab, lh]
    for i in range(l["num_hidden_layers"]):
        b = f"language_model.model.layers.{i}."
        shapes.update({
            b + "attention_norm.weight": [lh],
            b + "attention.wqkv.weight": [(heads + 2 * kv) * hd, lh],
            b + "attention.wo.weight": [lh, heads * hd],
            b + "ffn_norm.weight": [lh],
            b + "feed_forward.w1.weight": [ff, lh],
            b + "feed_forward.w3.weight": [ff, lh],
            b + "feed_forward.w2.weight": [lh, ff],
        })
    shapes["language_model.model.norm.weight"] = [lh]
    shapes["language_model.output.weight"] = [vocab, lh]
    return shapes


def to_bf16_bits(x):
    """float32 -> bf16 bit patterns (uint16), round to nearest even."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = u + 0x7FFF + ((u >> 16) & 1)
    return (rounded >> 16).astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def init_tensor(name, shape, rng, scale):
    """Random values whose scale keeps activations and logits in a useful range."""
    if name.endswith(("norm.weight", "norm1.weight", "norm2.weight", "attention_norm.weight",
                      "ffn_norm.weight", "mlp1.0.weight")):
        return 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
    if name.endswith((".ls1", ".ls2")):
        return 0.1 + 0.05 * rng.standard_normal(shape, dtype=np.float32)
    if name.endswith("bias"):
        return 0.02 * rng.standard_normal(shape, dtype=np.float32)
    if len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        if "tok_embeddings" in name or "embed_tokens" in name:
            return rng.standard_normal(shape, dtype=np.float32)
        return (scale / np.sqrt(fan_in)) * rng.standard_normal(shape, dtype=np.float32)
    return 0.02 * rng.standard_normal(shape, dtype=np.float32)


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype string, shape, raw bytes). Header as the format specifies."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)


def write_checkpoint(out_dir, cfg, seed, shards=1, scale=1.0, zero_output_rows=None):
    """Random bf16 weights for every tensor of `cfg`; returns nothing (read it back to use it)."""
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    shapes = tensor_shapes(cfg)
    names = list(shapes)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump({"_from_model_config": True, "eos_token_id": [92542, 2]}, f, indent=2)
    per = (len(names) + shards - 1) // shards
    weight_map, total = {}, 0
    for s in range(shards):
        part = names[s * per:(s + 1) * per]
        fname = "model.safetensors" if shards == 1 else f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        tensors = []
        for n in part:
            values = init_tensor(n, shapes[n], rng, scale)
            if zero_output_rows and n == "language_model.output.weight":
                values[zero_output_rows[0]:zero_output_rows[1]] = 0
            bits = to_bf16_bits(values)
            raw = bits.tobytes()
            total += len(raw)
            tensors.append((n, "BF16", shapes[n], raw))
            weight_map[n] = fname
        write_safetensors(os.path.join(out_dir, fname), tensors, {"format": "pt"})
    if shards > 1:
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def read_safetensors(path):
    """An independent reader for the reference: name -> float32 array."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = data[a:b]
        if info["dtype"] == "BF16":
            arr = from_bf16_bits(np.frombuffer(raw, dtype=np.uint16))
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
        elif info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype=np.float32).copy()
        else:
            raise ValueError(info["dtype"])
        out[name] = arr.reshape(info["shape"])
    return out


def read_checkpoint(model_dir):
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        files = sorted(set(json.load(open(idx))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for fn in files:
        out.update(read_safetensors(os.path.join(model_dir, fn)))
    return out

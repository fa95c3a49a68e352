#!/usr/bin/env python3
"""Write a random-weight checkpoint at the real size of Mini-InternVL-Chat-2B-V1-5 (about 2.2 B
parameters, 4.4 GB of bf16), with the real config.json and the real InternLM2 tokenizer files,
for benchmarks. Not for CI, not for git:  python3 Tests/reference/make_real_size.py --out models/random-real

--family qwen2: InternVL2_5-1B's shapes (Qwen2.5-0.5B language model, tied head; 0.94 B
parameters), tokenizer from testdata/qwen2-tokenizer. --family phi3: Mini-InternVL-Chat-4B-V1-5's
(Phi-3-mini-128k, su RoPE with generated factors; 4.1 B parameters), tokenizer from
testdata/phi3-tokenizer. The vision tower is InternViT-300M-448px in all three.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checkpoint  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--out", default="models/random-real")
ap.add_argument("--family", choices=["internlm2", "qwen2", "phi3"], default="internlm2")
ap.add_argument("--tokenizer", default=None,
                help="folder with the tokenizer files (default: ../shared/fixtures/internlm2-tokenizer, "
                     "testdata/qwen2-tokenizer or testdata/phi3-tokenizer)")
ap.add_argument("--layers", type=int, default=None, help="layers of each tower (default: the real count)")
args = ap.parse_args()
here = os.path.dirname(os.path.abspath(__file__))
cfg = checkpoint.real_config()
if args.family == "internlm2":
    tok = args.tokenizer or os.path.join(here, "../../../shared/fixtures/internlm2-tokenizer")
    files = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")
elif args.family == "qwen2":
    tok = args.tokenizer or os.path.join(here, "../../testdata/qwen2-tokenizer")
    files = ("tokenizer.json", "tokenizer_config.json")
    cfg["template"], cfg["ps_version"] = "internvl2_5", "v2"
    cfg["llm_config"] = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
        "hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2, "intermediate_size": 4864,
        "num_hidden_layers": 24, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None,
        "max_position_embeddings": 32768, "sliding_window": 32768, "use_sliding_window": False,
        "tie_word_embeddings": True, "vocab_size": 151674, "bos_token_id": 151643, "eos_token_id": 151645,
        "torch_dtype": "bfloat16"}
else:
    import numpy as np
    tok = args.tokenizer or os.path.join(here, "../../testdata/phi3-tokenizer")
    files = ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")
    cfg["template"] = "phi3-chat"
    rng = np.random.default_rng(7)
    cfg["llm_config"] = {
        "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_act": "silu",
        "hidden_size": 3072, "num_attention_heads": 32, "num_key_value_heads": 32, "intermediate_size": 8192,
        "num_hidden_layers": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "rope_scaling": {"type": "su", "short_factor": [round(float(x), 4) for x in 1 + 0.2 * rng.random(48)],
                         "long_factor": [round(float(x), 4) for x in np.sort(1 + 60 * rng.random(48))]},
        "max_position_embeddings": 131072, "original_max_position_embeddings": 4096, "sliding_window": 262144,
        "tie_word_embeddings": False, "vocab_size": 32020, "bos_token_id": 1, "eos_token_id": 32000,
        "torch_dtype": "bfloat16"}
if args.layers is not None:
    cfg["llm_config"]["num_hidden_layers"] = cfg["vision_config"]["num_hidden_layers"] = args.layers
if not os.path.exists(os.path.join(tok, files[0])):
    sys.exit(f"no {files[0]} in {tok}: pass --tokenizer with the {args.family} tokenizer files")
checkpoint.write_checkpoint(args.out, cfg, seed=2024, shards=4 if args.family == "phi3" else 1)
for fn in files:
    dst = os.path.join(args.out, fn)
    if os.path.exists(dst):
        os.remove(dst)
    shutil.copyfile(os.path.join(tok, fn), dst)
print(args.out)

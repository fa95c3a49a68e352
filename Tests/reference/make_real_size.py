#!/usr/bin/env python3
"""Write a random-weight checkpoint at the real size of Mini-InternVL-Chat-2B-V1-5 (about 2.2 B
parameters, 4.4 GB of bf16), with the real config.json and the real InternLM2 tokenizer files,
for benchmarks. Not for CI, not for git:  python3 Tests/reference/make_real_size.py --out models/random-real
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checkpoint  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--out", default="models/random-real")
ap.add_argument("--tokenizer", default=os.path.join(os.path.dirname(__file__), "../../../shared/fixtures/internlm2-tokenizer"),
                help="folder with the real tokenizer.model, tokenizer_config.json, special_tokens_map.json")
args = ap.parse_args()
if not os.path.exists(os.path.join(args.tokenizer, "tokenizer.model")):
    sys.exit(f"no tokenizer.model in {args.tokenizer}: pass --tokenizer with the real InternLM2 tokenizer files")
checkpoint.write_checkpoint(args.out, checkpoint.real_config(), seed=2024)
for fn in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
    dst = os.path.join(args.out, fn)
    if os.path.exists(dst):
        os.remove(dst)
    shutil.copyfile(os.path.join(args.tokenizer, fn), dst)
print(args.out)

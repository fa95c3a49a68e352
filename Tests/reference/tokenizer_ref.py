"""The reference tokenizer: pip's sentencepiece plus the rules of InternLM2's slow tokenizer
(tokenization_internlm2.py with transformers' PreTrainedTokenizer), written from that code:

encode: added/special tokens are cut out of the text first by exact match (leftmost, longest),
        each remaining chunk is encoded by SentencePiece on its own, BOS is prepended once.
decode (skip_special_tokens=True): drop every special id, SentencePiece-decode the pieces, then
        the slow tokenizer's clean_up_tokenization, which InternLM2's convert_tokens_to_string
        always applies.
"""
import json
import os

import sentencepiece as spm

CLEANUPS = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
            (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


class RefTokenizer:
    def __init__(self, folder):
        self.sp = spm.SentencePieceProcessor(model_file=os.path.join(folder, "tokenizer.model"))
        cfg = json.load(open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8"))
        self.added = {v["content"]: int(k) for k, v in cfg["added_tokens_decoder"].items()}
        self.special_ids = set(self.added.values()) | {self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()}
        # longest first so that a longer token wins at the same position
        self.tokens = sorted(self.added, key=len, reverse=True)

    def split(self, text):
        """[(chunk, is_special)], as transformers' trie split does."""
        out, i, start = [], 0, 0
        while i < len(text):
            hit = next((t for t in self.tokens if text.startswith(t, i)), None)
            if hit is None:
                i += 1
                continue
            if i > start:
                out.append((text[start:i], False))
            out.append((hit, True))
            i += len(hit)
            start = i
        if start < len(text):
            out.append((text[start:], False))
        return out

    def encode(self, text, bos=True):
        ids = [self.sp.bos_id()] if bos else []
        for chunk, special in self.split(text):
            if special:
                ids.append(self.added[chunk])
            else:
                ids.extend(self.sp.encode(chunk))
        return ids

    def decode(self, ids):
        pieces = [self.sp.id_to_piece(i) for i in ids if i not in self.special_ids]
        text = self.sp.decode_pieces(pieces)
        for a, b in CLEANUPS:
            text = text.replace(a, b)
        return text

    def chat_response(self, ids):
        """What the official chat() returns for generated ids."""
        return self.decode(ids).split("<|im_end|>")[0].strip()

"""Train the backbone's tokenizer and write it in the two forms the pipeline needs.

    scripts/py tokenizer [--corpus .cache/corpus] [--vocab 8000] [--out .cache/tokenizer]

SentencePiece BPE (byte fallback, so no input is ever <unk>; digits split; no normalisation, so text round-trips)
trained on the corpus, then converted to a Hugging Face tokenizer.json (Llama-style: "▁" for spaces, BPE merges
ranked by SentencePiece's piece scores, byte-fallback pieces <0xNN>) that @huggingface/tokenizers loads on the edge.
Python encodes with the SentencePiece model; test/js/backbone.test.ts checks the two give identical ids.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
from pathlib import Path

from softedge.common import CACHE, CliError, atomic_dir, atomic_path, run_cli

SPECIALS = {"pad": (0, "<pad>"), "unk": (1, "<unk>"), "bos": (2, "<s>"), "eos": (3, "</s>")}


class Tokenizer:
    """Python-side tokenizer: a SentencePiece model plus the special ids the backbone config records."""

    def __init__(self, model_path: Path | str):
        import sentencepiece as spm

        model_path = Path(model_path)
        if not model_path.is_file():
            raise CliError(f"tokenizer model not found: {model_path}")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(model_path))
        except Exception as e:  # sentencepiece raises OSError/RuntimeError with long messages
            raise CliError(f"cannot load tokenizer {model_path}: {str(e).splitlines()[0]}") from None
        self.path = model_path
        self.vocab_size = self.sp.get_piece_size()
        self.pad_id, self.unk_id = self.sp.pad_id(), self.sp.unk_id()
        self.bos_id, self.eos_id = self.sp.bos_id(), self.sp.eos_id()

    @classmethod
    def from_dir(cls, path: Path | str) -> "Tokenizer":
        return cls(Path(path) / "tokenizer.model")

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)

    def piece(self, i: int) -> str:
        return self.sp.id_to_piece(i)

    def special_ids(self) -> dict:
        return {
            "pad_token_id": self.pad_id,
            "unk_token_id": self.unk_id,
            "bos_token_id": self.bos_id,
            "eos_token_id": self.eos_id,
        }


def train_sentencepiece(corpus_file: Path, vocab: int, out_prefix: Path, sample: int, seed: int) -> None:
    import sentencepiece as spm

    lines = corpus_file.read_text(encoding="utf-8").splitlines()
    random.Random(seed).shuffle(lines)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8", delete=False) as f:
        f.write("\n".join(lines[:sample]) + "\n")
    spm.SentencePieceTrainer.train(
        input=f.name,
        model_prefix=str(out_prefix),
        model_type="bpe",
        vocab_size=vocab,
        character_coverage=0.9995,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        max_sentence_length=8192,
        num_threads=2,
        **{f"{k}_id": i for k, (i, _) in SPECIALS.items()},
        minloglevel=2,
    )
    Path(f.name).unlink()


def to_tokenizer_json(tok: Tokenizer) -> dict:
    """Convert the SentencePiece BPE model to tokenizer.json (the conversion transformers uses for Llama)."""
    sp = tok.sp
    vocab = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())}
    scores = {sp.id_to_piece(i): sp.get_score(i) for i in range(sp.get_piece_size())}
    merges = []
    for piece, score in scores.items():
        i = vocab[piece]
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i):
            continue
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        merges.extend((l, r, score) for l, r in local)
    merges.sort(key=lambda m: -m[2])  # stable: ties keep (left id, right id) order
    # No added_tokens: the specials live in the vocabulary only, so user text that spells "<s>" or "</s>" stays
    # text (as in SentencePiece) and cannot inject control tokens; the edge adds specials by id.
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ],
        },
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {
            "type": "Sequence",
            "decoders": [
                {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                {"type": "ByteFallback"},
                {"type": "Fuse"},
                {"type": "Strip", "content": " ", "start": 1, "stop": 0},
            ],
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": True,
            "byte_fallback": True,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [[l, r] for l, r, _ in merges],
        },
    }


def write_tokenizer_json(tok: Tokenizer, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(to_tokenizer_json(tok), ensure_ascii=False))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CACHE / "corpus")
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--sample", type=int, default=200_000, help="corpus lines sampled for training")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=CACHE / "tokenizer")
    a = ap.parse_args()
    train = a.corpus / "train.txt"
    if not train.is_file():
        raise CliError(f"no corpus at {train}: run scripts/py corpus first")
    if not 300 <= a.vocab <= 65535:
        raise CliError("--vocab must be in [300, 65535] (256 byte pieces + specials + merges)")
    with atomic_dir(a.out) as tmp:
        train_sentencepiece(train, a.vocab, tmp / "tokenizer", a.sample, a.seed)
        tok = Tokenizer(tmp / "tokenizer.model")
        write_tokenizer_json(tok, tmp / "tokenizer.json")
        (tmp / "tokenizer.vocab").unlink(missing_ok=True)
    print(f"tokenizer: {a.vocab} pieces -> {a.out}/tokenizer.model, tokenizer.json")


if __name__ == "__main__":
    run_cli(main)

"""Tokenizer training and the tokenizer.json conversion (ids identical across languages is checked in JS)."""
import json

import pytest

from softedge.common import CliError
from softedge.data.tokenizer import SPECIALS, Tokenizer

TRICKY = [
    "",
    " ",
    "  two leading",
    "tabs\tand\nnewlines",
    "emoji 😀👍🏽",
    "naïve café 日本語",
    "x" * 500,
    "supercalifragilisticexpialidocious",
    "trailing  ",
    "12345.678",
]


def test_every_text_round_trips_and_nothing_is_unknown(tiny_tokenizer):
    tok = Tokenizer.from_dir(tiny_tokenizer)
    for t in TRICKY:
        ids = tok.encode(t)
        assert tok.unk_id not in ids, t  # byte fallback covers every character
        assert tok.decode(ids) == t


def test_specials_have_fixed_ids(tiny_tokenizer):
    tok = Tokenizer.from_dir(tiny_tokenizer)
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == tuple(i for i, _ in SPECIALS.values())


def test_tokenizer_json_is_a_bpe_with_byte_fallback(tiny_tokenizer):
    tj = json.loads((tiny_tokenizer / "tokenizer.json").read_text())
    tok = Tokenizer.from_dir(tiny_tokenizer)
    m = tj["model"]
    assert m["type"] == "BPE" and m["byte_fallback"] is True
    assert len(m["vocab"]) == tok.vocab_size
    assert all(f"<0x{b:02X}>" in m["vocab"] for b in range(256))
    vocab = m["vocab"]
    for left, right in m["merges"]:  # every merge produces a piece of the vocabulary
        assert left + right in vocab
    assert tj["added_tokens"] == []  # specials by id only: text spelling "<s>" stays text
    assert [vocab[s] for s in ("<pad>", "<unk>", "<s>", "</s>")] == [0, 1, 2, 3]


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(CliError, match="tokenizer model not found"):
        Tokenizer.from_dir(tmp_path)


def test_corrupt_model_is_a_clear_error(tmp_path):
    (tmp_path / "tokenizer.model").write_bytes(b"not a model")
    with pytest.raises(CliError, match="cannot load tokenizer"):
        Tokenizer.from_dir(tmp_path)

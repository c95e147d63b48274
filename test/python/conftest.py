import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from softedge.backbone.model import ModelConfig, Transformer  # noqa: E402

TINY = {
    "llama": dict(
        arch="llama", vocab_size=300, n_layer=2, n_head=4, n_kv_head=2, d_model=32, d_ff=64, max_positions=64
    ),
    "gpt2": dict(arch="gpt2", vocab_size=300, n_layer=2, n_head=4, n_kv_head=4, d_model=32, d_ff=128, max_positions=64),
}


@pytest.fixture(params=sorted(TINY))
def tiny_model(request):
    torch.manual_seed(0)
    m = Transformer(ModelConfig(**TINY[request.param])).eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.mul_(5.0)  # away from init scale, so differences show up in the logits
    return m


TEXT = (
    "The quick brown fox jumps over the lazy dog. A stitch in time saves nine. "
    "Numbers 12345 and 3.14159; unicode café naïve 日本語 emoji 😀. "
) * 40


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A 400-piece SentencePiece tokenizer trained on a few lines, as the tokenizer CLI would train it."""
    from softedge.data.tokenizer import Tokenizer, train_sentencepiece, write_tokenizer_json

    d = tmp_path_factory.mktemp("tok")
    corpus = d / "train.txt"
    corpus.write_text("\n".join(TEXT[i : i + 80] for i in range(0, len(TEXT), 80)) + "\n")
    train_sentencepiece(corpus, 400, d / "tokenizer", sample=10_000, seed=0)
    tok = Tokenizer(d / "tokenizer.model")
    write_tokenizer_json(tok, d / "tokenizer.json")
    return d


def run_module(module: str, *args, env: dict | None = None):
    """`scripts/py <module> args` as a subprocess with Debian's interpreter setup: (returncode, stdout, stderr)."""
    e = {**os.environ, "PYTHONPATH": str(ROOT / "scripts"), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "softedge", module, *map(str, args)], capture_output=True, text=True, env=e, cwd=ROOT
    )

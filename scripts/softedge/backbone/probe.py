"""Backbone probe suite: what a backbone offers adapters, measured before any adapter is trained.

    scripts/py probe BUNDLE [--tasks spam,wordnet-topic] [--corpus .cache/corpus] [--data .cache/data] [--out F]

- held-out perplexity (PyTorch fp32) over fixed, evenly spaced windows of the corpus's held-out split (v1's, the one
  every figure is quoted on), and of each later part's own held-out text where --corpus has one (heldout-v2.txt);
- for each classification task (<data>/<task>/train.jsonl and eval.jsonl, from `scripts/py datasets`): a linear probe
  (L2-regularised logistic regression, L-BFGS) on the frozen backbone's final hidden states mean-pooled over the
  prompt, no adapter; its weight decay chosen on a seeded 10% dev split of the training file, the eval file scored
  once. Adapter-independent and deterministic; a few minutes on CPU.

Writes <bundle>/probe.json (or --out) atomically; the model card (scripts/py card) shows it.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import random
import time
from pathlib import Path

import torch

from softedge.common import CACHE, CliError, run_cli, write_json
from softedge.backbone.pretrain import heldout_loss, tokenize_corpus
from softedge.tuning.readout import Head, probe_trials, prompt_features
from softedge.tuning.tasks import TEMPLATES, load_jsonl
from softedge.tuning.tune import load_backbone

DEFAULT_TASKS = ("spam", "wordnet-topic")
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 3e-2)


def linear_probe(model, tok, task_dir: Path, max_tokens: int, seed: int = 0) -> dict:
    train = load_jsonl(task_dir / "train.jsonl", "classify")
    evalrows = load_jsonl(task_dir / "eval.jsonl", "classify")
    random.Random(seed).shuffle(train)
    n_dev = max(1, len(train) // 10)
    dev, fit = train[:n_dev], train[n_dev:]
    labels = sorted({r["label"] for r in fit})
    known = [r for r in evalrows if r["label"] in labels]
    make = lambda: Head(labels, model.cfg.d_model, "mean")  # noqa: E731
    splits = (("fit", fit), ("dev", dev), ("eval", known))
    X = {k: prompt_features(model, None, tok, TEMPLATES["classify"], rows, max_tokens, make()) for k, rows in splits}
    y = {k: torch.tensor([labels.index(r["label"]) for r in rows]) for k, rows in splits}
    head, dev_acc, wd = max(
        probe_trials(make, X["fit"], y["fit"], X["dev"], y["dev"], WEIGHT_DECAYS), key=lambda t: t[1]
    )
    with torch.no_grad():
        acc = (head.scores(*X["eval"]).argmax(1) == y["eval"]).float().mean().item() * len(known) / len(evalrows)
    return {
        "accuracy": round(acc, 4),
        "dev_accuracy": round(dev_acc, 4),
        "weight_decay": wd,
        "train_examples": len(fit),
        "eval_examples": len(evalrows),
        "labels": len(labels),
        "max_tokens": max_tokens,
    }


def heldout_perplexity(model, tok, corpus: Path, seq: int, windows: int, split: str = "heldout") -> dict:
    held = tokenize_corpus(corpus, tok, split)
    if len(held) < seq + 2:
        raise CliError(f"{corpus}/{split}.txt: too short for one {seq}-token window")
    loss = heldout_loss(model, held, seq, 32, windows, torch.device("cpu"), contextlib.nullcontext)
    return {
        "ppl": round(math.exp(loss), 3),
        "loss": round(loss, 4),
        "seq": seq,
        "windows": windows,
        "tokens": windows * seq,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--tasks", default=",".join(DEFAULT_TASKS), help="comma-separated task folders under --data")
    ap.add_argument("--corpus", type=Path, default=CACHE / "corpus")
    ap.add_argument("--data", type=Path, default=CACHE / "data")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--windows", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, help="default: <bundle>/probe.json")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model, tok, cfg = load_backbone(a.bundle)
    model.eval()
    tasks = [t for t in a.tasks.split(",") if t]
    for t in tasks:
        if not (a.data / t / "train.jsonl").is_file() or not (a.data / t / "eval.jsonl").is_file():
            raise CliError(f"{a.data / t}: no train.jsonl/eval.jsonl (run scripts/py datasets)")
    if not (a.corpus / "heldout.txt").is_file():
        raise CliError(f"{a.corpus}/heldout.txt: not found (run scripts/py corpus)")
    t0 = time.time()
    out = {"backbone": cfg["id"], "heldout": heldout_perplexity(model, tok, a.corpus, a.seq, a.windows), "probes": {}}
    print(f"held-out perplexity {out['heldout']['ppl']:.2f} ({out['heldout']['tokens']:,} tokens)", flush=True)
    for path in sorted(a.corpus.glob("heldout-*.txt")):  # later corpus parts' own held-out text (corpus v2, ...)
        part = path.stem.removeprefix("heldout-")
        out.setdefault("heldout_parts", {})[part] = heldout_perplexity(
            model, tok, a.corpus, a.seq, a.windows, path.stem
        )
        print(f"held-out perplexity, part {part}: {out['heldout_parts'][part]['ppl']:.2f}", flush=True)
    for t in tasks:
        out["probes"][t] = linear_probe(model, tok, a.data / t, a.max_tokens)
        print(
            f"{t}: linear probe on mean-pooled states {out['probes'][t]['accuracy'] * 100:.1f}% "
            f"({out['probes'][t]['eval_examples']} eval)",
            flush=True,
        )
    out["seconds"] = round(time.time() - t0, 1)
    write_json(a.out or a.bundle / "probe.json", out)


if __name__ == "__main__":
    run_cli(main)

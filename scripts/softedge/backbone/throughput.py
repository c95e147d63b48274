"""Pretraining throughput on this machine, before a long run: which threads / sequence length / batch to use.

    scripts/py throughput [--init-from BUNDLE | --preset default] [--threads 1,2] [--seq 128,256] [--batch 16,32,64]
                          [--steps 12] [--out F]

Times full training steps (forward, backward, clipping, AdamW) of the real model on random token windows, each
setting after a few warm-up steps, and prints tokens/s per setting, fastest first. Packing is not a knob here:
pretraining already samples fixed-length windows from one token stream (documents joined by </s>), so no slot is
padding. Writes the table as JSON (--out) for the model card or a run's notes.
"""
from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch

from softedge.backbone.model import ModelConfig, Transformer
from softedge.backbone.pretrain import PRESETS, load_init, train_step
from softedge.common import CliError, run_cli, write_json
from softedge.data.tokenizer import Tokenizer


def ints(text: str, flag: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"{flag}: a comma-separated list of integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise CliError(f"{flag}: positive integers, got {text!r}")
    return vals


def time_steps(model: Transformer, seq: int, batch: int, steps: int, warmup: int = 3) -> float:
    """Median seconds per training step (pretrain's own step) over `steps` timed steps."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    times = []
    for i in range(warmup + steps):
        x = torch.randint(0, model.cfg.vocab_size, (batch, seq + 1), generator=gen)
        t = time.perf_counter()
        train_step(model, opt, x)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init-from", type=Path, help="a backbone bundle (its config); default: --preset")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seq", default="128,256")
    ap.add_argument("--batch", default="16,32,64")
    ap.add_argument("--steps", type=int, default=12, help="timed steps per setting (after 3 warm-up steps)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    threads, seqs, batches = ints(a.threads, "--threads"), ints(a.seq, "--seq"), ints(a.batch, "--batch")
    if a.init_from:
        model, _ = load_init(a.init_from, Tokenizer.from_dir(a.init_from))
    else:
        model = Transformer(ModelConfig.from_dict({**PRESETS[a.preset], "vocab_size": 8000}))
    model.train()
    rows = []
    grid = list(itertools.product(threads, seqs, batches))
    for n, (th, seq, batch) in enumerate(grid, 1):
        torch.set_num_threads(th)
        s = time_steps(model, seq, batch, a.steps)
        rows.append({"threads": th, "seq": seq, "batch": batch, "step_s": round(s, 4), "tok_s": round(seq * batch / s)})
        print(f"[{n}/{len(grid)}] threads {th} seq {seq} batch {batch}: {rows[-1]['tok_s']:,} tokens/s", flush=True)
    rows.sort(key=lambda r: -r["tok_s"])
    print("\nfastest first:\n| threads | seq | batch | s/step | tokens/s |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['seq']} | {r['batch']} | {r['step_s']:.3f} | {r['tok_s']:,} |")
    if a.out:
        write_json(a.out, {"params": model.num_params(), "steps_per_setting": a.steps, "rows": rows})


if __name__ == "__main__":
    run_cli(main)

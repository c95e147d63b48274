"""What a Python server would do instead: the same backbone and adapter in PyTorch eager on CPU, for npm run bench.

    scripts/py bench_eager ADAPTER.safetensors [--backbone BUNDLE] [--tokens 16,64,128] [--runs 30] [--threads 1]

Times one classification at batch 1 for each prompt length: the backbone's fp32 training weights (what a PEFT
server loads), the adapter's KV prefix in front, the final hidden states read by its head (or the last position's
logits for a verbalizer), under torch.no_grad, one thread by default (as the worker's ONNX Runtime has one). Prints
one JSON object: {"torch": version, "threads": n, "ms": {"16": median, ...}}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from softedge.artifacts import adapter as adapter_fmt
from softedge.backbone.checkpoint import load_bundle_weights
from softedge.common import ROOT, CliError, run_cli
from softedge.tuning.readout import readout_of, label_scores


def median_ms(fn, runs: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("adapter", type=Path)
    ap.add_argument("--backbone", type=Path, help="bundle (default: the catalog's)")
    ap.add_argument("--tokens", default="16,64,128")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bundle = (
        a.backbone
        or ROOT
        / "adapters"
        / "backbones"
        / json.loads((ROOT / "adapters" / "catalog.json").read_text())["default_backbone"]
    )
    model, _, cfg = load_bundle_weights(bundle)
    model.eval()
    try:
        kv, meta, tensors = adapter_fmt.load(a.adapter, cfg)
    except adapter_fmt.AdapterError as e:
        raise CliError(str(e)) from None
    if meta["task"] != "classify":
        raise CliError(f"{a.adapter}: a classification adapter is needed (this one is {meta['task']})")
    readout = readout_of(meta, tensors)
    past = adapter_fmt.tensor_to_kv(kv, 1)
    out = {}
    with torch.no_grad():
        for n in (int(x) for x in a.tokens.split(",")):
            ids = [5 + (i * 37) % (cfg["vocab_size"] - 5) for i in range(n)]
            out[str(n)] = round(
                median_ms(lambda: label_scores(model, past, [ids], readout, cfg["pad_token_id"]), a.runs), 2
            )
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "ms": out}))


if __name__ == "__main__":
    run_cli(main)

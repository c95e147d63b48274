"""Summarise pretraining runs that differ only in embedding initialisation into one JSON for the model card.

    scripts/py ablation RUN [RUN ...] --out FILE
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from softedge.common import CliError, run_cli, write_json


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    runs = []
    for r in a.runs:
        m = r / "metrics.json"
        if not m.is_file():
            raise CliError(f"{r}: no metrics.json (did the run finish?)")
        d = json.loads(m.read_text())
        runs.append({k: d[k] for k in ("embed_init", "steps", "tokens_seen", "wall_s", "heldout_ppl", "note")})
    best = min(runs, key=lambda r: r["heldout_ppl"])
    worst = max(runs, key=lambda r: r["heldout_ppl"])
    conclusion = (
        f"{best['embed_init']} embeddings reach held-out perplexity {best['heldout_ppl']:.1f} against "
        f"{worst['heldout_ppl']:.1f} ({(best['heldout_ppl'] / worst['heldout_ppl'] - 1) * 100:+.0f}%) "
        f"after about {best['tokens_seen'] / 1e6:.2f}M tokens."
    )
    write_json(a.out, {"runs": runs, "conclusion": conclusion})
    print(conclusion)


if __name__ == "__main__":
    run_cli(main)

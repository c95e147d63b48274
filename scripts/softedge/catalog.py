"""Collect trained default adapters into the catalog (adapters/default/) and write their table.

    scripts/py catalog --runs .cache/tune

Each entry: <runs>/<name>/ holding adapter.safetensors + metrics.json (from scripts/py tune). Baseline runs
(<task>-full, <task>-nb) are read for the table's gap and baseline columns. Writes adapters/default/<name>.safetensors,
adapters/default/<name>.metrics.json, adapters/catalog.json ("adapters" list) and adapters/ADAPTERS.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from .common import ROOT, CliError, atomic_path, run_cli, write_json

DEFAULTS = [  # alias name, run folder, the data set, its baselines
    ("spam-prefix", "spam-prefix", "spam", "spam-full", "spam-nb"),
    ("spam-prompt", "spam-prompt", "spam", "spam-full", "spam-nb"),
    ("spam-verbalizer", "spam-verbalizer", "spam", "spam-full", "spam-nb"),
    ("topic-prefix", "topic-prefix", "wordnet-topic", "topic-full", "topic-nb"),
    ("define-prefix", "define-prefix", "wordnet-define", "define-full", None),
]


def readout_cell(m: dict) -> str:
    if m["task"] != "classify":
        return "generation"
    if m.get("readout") != "head":
        return "verbalizer"
    return f"head ({m.get('pooling', 'mean')}{' + bag of ' + format(m['bag_tokens'], ',') + ' tokens' if m.get('bag_tokens') else ''})"


def parts_cell(m: dict) -> str:
    p = m.get("parts_eval")
    if not p:
        return "n/a"
    return " / ".join(f"{p[k] * 100:.1f}%" if k in p else "-" for k in ("pooled", "bag", "pooled+bag"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=ROOT / ".cache" / "tune")
    ap.add_argument("--tenant", default="demo")
    a = ap.parse_args()
    cat_path = ROOT / "adapters" / "catalog.json"
    catalog = json.loads(cat_path.read_text())
    backbone = ROOT / "adapters" / "backbones" / catalog["default_backbone"]
    onnx_bytes = (backbone / "model.onnx").stat().st_size
    out = ROOT / "adapters" / "default"
    out.mkdir(parents=True, exist_ok=True)
    rows, entries = [], []
    for name, run, data, full, nb in DEFAULTS:
        d = a.runs / run
        if not (d / "adapter.safetensors").is_file():
            raise CliError(f"{d}: no adapter.safetensors (train it first)")
        m = json.loads((d / "metrics.json").read_text())
        if m["backbone"] != catalog["default_backbone"]:
            raise CliError(f"{d}: trained on {m['backbone']}, not the default backbone")
        shutil.copyfile(d / "adapter.safetensors", out / f"{name}.safetensors.tmp")
        (out / f"{name}.safetensors.tmp").replace(out / f"{name}.safetensors")
        write_json(out / f"{name}.metrics.json", {k: v for k, v in m.items() if k != "history"})
        metric = "accuracy" if m["task"] == "classify" else "rouge_l"
        fm = json.loads((a.runs / full / "metrics.json").read_text())["eval"] if (a.runs / full / "metrics.json").is_file() else None
        bm = json.loads((a.runs / nb / "metrics.json").read_text())["eval"] if nb and (a.runs / nb / "metrics.json").is_file() else None
        ev = m["eval"]
        score = (f"acc {ev['accuracy'] * 100:.1f}%, macro-F1 {ev['macro_f1'] * 100:.1f}" if metric == "accuracy"
                 else f"ROUGE-L {ev['rouge_l'] * 100:.1f}, EM {ev['exact_match'] * 100:.1f}%")
        gap = f"{(ev[metric] - fm[metric]) * 100:+.1f} pts (full FT {fm[metric] * 100:.1f})" if fm else "n/a"
        base = f"naive Bayes acc {bm['accuracy'] * 100:.1f}%" if bm else "n/a"
        readout = readout_cell(m)
        rows.append(f"| `{a.tenant}/{name}` | {data} ({m['eval']['examples']} eval) | {m['method']} | {readout} | "
                    f"{m['virtual_tokens']} | {m['adapter_bytes']:,} ({m['adapter_bytes'] / onnx_bytes * 100:.2f}% of the "
                    f"backbone) | {score} | {parts_cell(m)} | {gap} | {base} |")
        entries.append({"alias": f"{a.tenant}/{name}", "file": f"default/{name}.safetensors", "task": m["task"],
                        "kind": m["method"], "readout": m.get("readout"), "virtual_tokens": m["virtual_tokens"],
                        "bytes": m["adapter_bytes"], "eval": {k: v for k, v in ev.items() if k != "samples"}})
    catalog["adapters"] = entries
    write_json(cat_path, catalog)
    table = ["| adapter | data | method | readout | P | bytes | eval (held-out) | head parts alone: states / bag / both "
             "| gap to full fine-tuning | baseline |", "|---|---|---|---|---|---|---|---|---|---|", *rows]
    with atomic_path(ROOT / "adapters" / "ADAPTERS.md") as tmp:
        tmp.write_text("# Default adapters\n\nWritten by `scripts/py catalog` from the runs of "
                       "`bash scripts/build-default-adapters.sh` (metrics beside each file in default/). Every figure is "
                       "on the eval file, which chose nothing: model selection used a dev split of the training file. "
                       "A head reads the final hidden states mean-pooled over the prompt, plus a bag-of-tokens term where "
                       "that helped on dev; the parts column scores each part alone, refitted on the trained adapter, so "
                       "the backbone's own contribution (states) stays visible beside the bag's.\n\n"
                       + "\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    run_cli(main)

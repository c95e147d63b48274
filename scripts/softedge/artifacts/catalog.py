"""Collect trained default adapters into the catalog (adapters/default/) and write their table.

    scripts/py catalog --runs .cache/tune
    scripts/py catalog --from-default     # rewrite the list, cards and table from adapters/default/*.metrics.json
                                          # (after scripts/py retarget moved them onto a re-exported backbone)
    scripts/py catalog --from-default --take define-prefix   # ... but take that one from --runs (retrained)

Each entry: <runs>/<name>/ holding adapter.safetensors + metrics.json (from scripts/py tune). Baseline runs
(<task>-full, <task>-nb) are read for the table's gap and baseline columns. Writes adapters/default/<name>.safetensors,
adapters/default/<name>.metrics.json, adapters/catalog.json ("adapters" list) and adapters/ADAPTERS.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from softedge.common import ROOT, CliError, atomic_path, run_cli, write_json

DEFAULTS = [  # alias name, run folder, the data set, its baselines
    ("spam-prefix", "spam-prefix", "spam", "spam-full", "spam-nb"),
    ("spam-prompt", "spam-prompt", "spam", "spam-full", "spam-nb"),
    ("spam-verbalizer", "spam-verbalizer", "spam", "spam-full", "spam-nb"),
    ("topic-prefix", "topic-prefix", "wordnet-topic", "topic-full", "topic-nb"),
    ("define-prefix", "define-prefix", "wordnet-define", "define-full", None),
]


NAMES = {"accuracy": "accuracy", "f1": "macro-F1", "rouge": "ROUGE-L", "exact_match": "exact match"}


def adapter_card(alias: str, data: str, m: dict) -> str:
    """A card per default adapter, with Hugging Face model-card metadata (licence: adapters/NOTICE.md)."""
    cls = m["task"] == "classify"
    ev = m["eval"]
    metrics = (
        [("accuracy", ev["accuracy"]), ("f1", ev["macro_f1"])]
        if cls
        else [("rouge", ev["rouge_l"]), ("exact_match", ev["exact_match"])]
    )
    L = [
        "---",
        "license: mit",
        f"base_model: {m['backbone']}",
        "library_name: softedge",
        f"pipeline_tag: {'text-classification' if cls else 'text-generation'}",
        f"datasets: [{data}]",
        f"tags: [softedge, {m['method']}-tuning{', ' + m['readout'] + '-readout' if m.get('readout') else ''}]",
        "model-index:",
        f"- name: {alias}",
        "  results:",
        f"  - task: {{type: {'text-classification' if cls else 'text-generation'}}}",
        f"    dataset: {{name: {data}, type: {data}, split: eval}}",
        "    metrics:",
        *[f"    - {{type: {k}, value: {v:.4f}}}" for k, v in metrics],
        "---",
        "",
        f"# `{alias}`",
        "",
        f"A {m['method']}-tuning adapter ({m['virtual_tokens']} virtual tokens) for {m['task']} on the backbone "
        f"`{m['backbone']}`, readout: {readout_cell(m)}. Trained by `bash scripts/build-default-adapters.sh` "
        f"(`scripts/py tune` with its defaults unless the script says otherwise) on {m['train_examples']:,} rows, "
        f"model selection on {m.get('dev_examples', 0):,} dev rows split from the training file, scored once on "
        f"{ev['examples']:,} held-out rows.",
        "",
        "| | |",
        "|---|---|",
        *[f"| {NAMES[k]} (held-out) | {v * 100:.1f}{'' if k == 'rouge' else '%'} |" for k, v in metrics],
        f"| stored bytes | {m['adapter_bytes']:,}, {stored_dtype(m)} ({m['bytes_ratio_to_backbone_onnx'] * 100:.2f}% of "
        "the int8 backbone) |",
        f"| training | {m['steps']} steps, {m['wall_s']:.0f} s on CPU |",
        "",
    ]
    if m.get("parts_eval"):
        p = m["parts_eval"]
        L += [
            f"Each part of the head alone, refitted on the trained adapter: backbone states {p['pooled'] * 100:.1f}%, "
            f"bag of tokens {p['bag'] * 100:.1f}%, both {p['pooled+bag'] * 100:.1f}%.",
            "",
        ]
    d = m.get("decoding")
    if d and d.get("dev"):
        tried = ", ".join(f"{'off' if n == '0' else n} {v * 100:.1f}" for n, v in d["dev"].items())
        plain = d.get("eval_plain_greedy")
        k = d.get("num_beams", 1)
        how = f"beam search with {k} beams" if k > 1 else "greedy"
        beams = ", ".join(f"{j} {v * 100:.1f}" for j, v in d.get("dev_beams", {}).items())
        L += [
            f"Decoding: {how}, never repeating a {d['no_repeat_ngram_size']}-gram of the generated tokens (the "
            f"edge's default for this adapter), chosen on the dev rows (ROUGE-L by no-repeat n-gram size, greedy: "
            f"{tried}"
            + (f"; then by beams: {beams}" if beams else "")
            + ")"
            + (f"; plain greedy scores {plain * 100:.1f} on the held-out rows." if plain is not None else "."),
            "",
        ]
    return "\n".join(L)


def stored_dtype(m: dict) -> str:
    return m.get("adapter_dtype", "float16")  # runs from before tune recorded it stored float16


def readout_cell(m: dict) -> str:
    if m["task"] != "classify":
        return "generation"
    if m.get("readout") != "head":
        return "verbalizer"
    bag = f" + bag of {m['bag_tokens']:,} tokens" if m.get("bag_tokens") else ""
    return f"head ({m.get('pooling', 'mean')}{bag})"


def parts_cell(m: dict) -> str:
    p = m.get("parts_eval")
    if not p:
        return "n/a"
    return " / ".join(f"{p[k] * 100:.1f}%" if k in p else "-" for k in ("pooled", "bag", "pooled+bag"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, default=ROOT / ".cache" / "tune")
    ap.add_argument("--tenant", default="demo")
    ap.add_argument(
        "--from-default",
        action="store_true",
        help="read the metrics beside the committed adapters "
        "instead of the runs (baselines still from --runs where present)",
    )
    ap.add_argument(
        "--take",
        action="append",
        default=[],
        metavar="NAME",
        help="with --from-default: copy this adapter's run from --runs into adapters/default/ first (repeatable)",
    )
    a = ap.parse_args()
    unknown = set(a.take) - {d[0] for d in DEFAULTS}
    if unknown:
        raise CliError(f"--take {sorted(unknown)[0]}: not a default adapter ({', '.join(d[0] for d in DEFAULTS)})")
    cat_path = ROOT / "adapters" / "catalog.json"
    catalog = json.loads(cat_path.read_text())
    backbone = ROOT / "adapters" / "backbones" / catalog["default_backbone"]
    onnx_bytes = (backbone / "model.onnx").stat().st_size
    out = ROOT / "adapters" / "default"
    out.mkdir(parents=True, exist_ok=True)
    rows, entries = [], []
    for name, run, data, full, nb in DEFAULTS:
        d = a.runs / run
        if a.from_default and name not in a.take:
            m = json.loads((out / f"{name}.metrics.json").read_text())
            if m["backbone"] != catalog["default_backbone"]:
                raise CliError(f"{out / name}.safetensors: packed for {m['backbone']}, not the default backbone")
        else:
            if not (d / "adapter.safetensors").is_file():
                raise CliError(f"{d}: no adapter.safetensors (train it first)")
            m = json.loads((d / "metrics.json").read_text())
            if m["backbone"] != catalog["default_backbone"]:
                raise CliError(f"{d}: trained on {m['backbone']}, not the default backbone")
            shutil.copyfile(d / "adapter.safetensors", out / f"{name}.safetensors.tmp")
            (out / f"{name}.safetensors.tmp").replace(out / f"{name}.safetensors")
            write_json(out / f"{name}.metrics.json", {k: v for k, v in m.items() if k != "history"})
        with atomic_path(out / f"{name}.md") as tmp:
            tmp.write_text(adapter_card(f"{a.tenant}/{name}", data, m))
        metric = "accuracy" if m["task"] == "classify" else "rouge_l"
        fm = (
            json.loads((a.runs / full / "metrics.json").read_text())["eval"]
            if (a.runs / full / "metrics.json").is_file()
            else None
        )
        bm = (
            json.loads((a.runs / nb / "metrics.json").read_text())["eval"]
            if nb and (a.runs / nb / "metrics.json").is_file()
            else None
        )
        ev = m["eval"]
        score = (
            f"acc {ev['accuracy'] * 100:.1f}%, macro-F1 {ev['macro_f1'] * 100:.1f}"
            if metric == "accuracy"
            else f"ROUGE-L {ev['rouge_l'] * 100:.1f}, EM {ev['exact_match'] * 100:.1f}%"
        )
        if "served" in m:  # measured on the int8 graph the edge runs (scripts/py retarget)
            score += f"; on the {m['served']['scheme']} graph {m['served'][metric] * 100:.1f}"
        gap = f"{(ev[metric] - fm[metric]) * 100:+.1f} pts (full FT {fm[metric] * 100:.1f})" if fm else "n/a"
        base = f"naive Bayes acc {bm['accuracy'] * 100:.1f}%" if bm else "n/a"
        readout = readout_cell(m)
        rows.append(
            f"| `{a.tenant}/{name}` | {data} ({m['eval']['examples']} eval) | {m['method']} | {readout} | "
            f"{m['virtual_tokens']} | {m['adapter_bytes']:,} {stored_dtype(m)} ({m['adapter_bytes'] / onnx_bytes * 100:.2f}% of the "
            f"backbone) | {score} | {parts_cell(m)} | {gap} | {base} |"
        )
        entries.append(
            {
                "alias": f"{a.tenant}/{name}",
                "file": f"default/{name}.safetensors",
                "task": m["task"],
                "kind": m["method"],
                "readout": m.get("readout"),
                "virtual_tokens": m["virtual_tokens"],
                "bytes": m["adapter_bytes"],
                "eval": {k: v for k, v in ev.items() if k != "samples"},
                **({"served": m["served"]} if "served" in m else {}),
            }
        )
    catalog["adapters"] = entries
    write_json(cat_path, catalog)
    table = [
        "| adapter | data | method | readout | P | bytes | eval (held-out) | head parts alone: states / bag / both "
        "| gap to full fine-tuning | baseline |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    with atomic_path(ROOT / "adapters" / "ADAPTERS.md") as tmp:
        tmp.write_text(
            "# Default adapters\n\nWritten by `scripts/py catalog` from the runs of "
            "`bash scripts/build-default-adapters.sh` (metrics beside each file in default/). Every figure is "
            "on the eval file, which chose nothing: model selection used a dev split of the training file. "
            "A head reads the final hidden states mean-pooled over the prompt, plus a bag-of-tokens term where "
            "that helped on dev (the tokens that say most about the label, as many as keep the stored adapter "
            "within 1% of the backbone, tune's --size-budget, capped at 4,096); the parts column scores each "
            "part alone, refitted on the trained adapter, so the backbone's own contribution (states) stays "
            "visible beside the bag's. The eval figure is "
            "PyTorch's on the training weights; where the int8 graph the edge serves computes different math "
            "(dynamic activation quantisation), the same eval rows scored on that graph's math follow it "
            "(written by `scripts/py retarget`). Bytes are the stored artifact at its dtype (int8, tune's default: "
            "KV prefix, head and bag with per-row scales). Generation decodes with the beam count and the no-repeat "
            "n-gram size the adapter stores, both chosen on dev (its card has each candidate's score).\n\n"
            + "\n".join(table)
            + "\n"
        )
    print("\n".join(table))


if __name__ == "__main__":
    run_cli(main)

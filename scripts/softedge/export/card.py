"""Write a backbone bundle's MODEL_CARD.md from the files beside it (nothing typed by hand):

    scripts/py card <bundle dir> [--fit-from RUN ...]

Reads config.json (configuration, training summary), corpus-manifest.json, eval.json (ONNX Runtime held-out
quality, from npm run eval:backbone -- <bundle> ... --write), quant-bench.json (npm run bench:quant) and
embedding-ablation.json when present; the targets from softedge.export.targets (with probe-previous.json and
training-history.json when scripts/package-backbone.sh left them). --fit-from names pretraining runs continued from
the bundle's weights: their held-out history (curve-fit-history.json) feeds the loss-curve fit when the bundle's own
run kept none.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from softedge.common import CliError, atomic_path, run_cli, write_json
from softedge.export.targets import PPL_TARGET, loss_curve_fit, targets


def _load(p: Path):
    return json.loads(p.read_text()) if p.is_file() else None


def front_matter(cfg: dict, man: dict | None) -> list[str]:
    """Hugging Face model-card metadata (licence: ../../NOTICE.md explains it)."""
    sources = [s["name"] for s in (man or {}).get("sources", [])]
    return [
        "---",
        "license: mit",
        "language: en",
        "library_name: onnxruntime",
        "pipeline_tag: text-generation",
        "tags: [softedge, llama, onnx, int8, edge]",
        f"datasets: [{', '.join(sources)}]",
        f"model_name: {cfg['id']}",
        "---",
        "",
    ]


def targets_section(bundle: Path, pr: dict | None, ev: dict | None) -> list[str]:
    """Targets with PASS/FAIL (softedge.export.targets), the before/after probes against the default this bundle
    replaced (probe-previous.json), and the loss-curve fit when the bundle carries its run's history."""
    prev = _load(bundle / "probe-previous.json")
    onnx_mb = (bundle / "model.onnx").stat().st_size / 1e6 if (bundle / "model.onnx").is_file() else float("nan")
    L = ["## Targets", "", "| target | measured | result |", "|---|---|---|"]
    L += [f"| {r['target']} | {r['measured']} | {r['result']} |" for r in targets(pr, ev, onnx_mb, prev)]
    L += [""]
    if pr and prev:
        L += [
            f"Before (`{prev['backbone']}`) and after (this bundle), same probe command:",
            "",
            "| probe | before | after |",
            "|---|---|---|",
            f"| held-out perplexity | {prev['heldout']['ppl']:.2f} | {pr['heldout']['ppl']:.2f} |",
        ]
        L += [
            f"| {t}: linear probe | {prev['probes'][t]['accuracy']:.1%} | {p['accuracy']:.1%} |"
            for t, p in pr["probes"].items()
            if t in prev["probes"]
        ]
        L += [""]
    hist = _load(bundle / "training-history.json")
    cont = None if hist else _load(bundle / "curve-fit-history.json")  # runs continued from these weights
    fit = loss_curve_fit(hist or (cont or {}).get("history", []))
    if fit:
        need = (
            f"about {fit['tokens_for_target_m']:,.0f}M tokens"
            if fit["tokens_for_target_m"] is not None
            else "never (the fitted floor is above it)"
        )
        L += [
            f"What more tokens would buy: held-out loss against tokens seen, fitted as L = E + A D^-alpha over "
            f"{fit['points']} evaluations ({fit['tokens_range_m'][0]}-{fit['tokens_range_m'][1]}M tokens, max residual "
            f"{fit['max_abs_residual']}): alpha {fit['alpha']}, floor perplexity {fit['floor_ppl']}; perplexity "
            f"{PPL_TARGET:g} at {need} of this corpus and schedule. "
            + (
                "The floor sits at the fit's lower bound: over these points the curve is too flat to place where it "
                "levels off, so read the token figure as out of reach at this size rather than as a plan. "
                if fit["E"] <= 1e-3
                else ""
            )
            + (
                "An extrapolation from one run, not a measurement."
                if hist
                else "This bundle's own run kept no loss history; the points are the held-out evaluations of runs "
                "continued from these weights ("
                + "; ".join(
                    f"{r['run']}: {r['tokens_m'][0]}-{r['tokens_m'][1]}M tokens on {r['corpus']} at peak learning "
                    f"rate {r['lr']:g}"
                    for r in cont["runs"]
                )
                + "), warm restarts, so read it as a rough bound, not a measurement."
            ),
            "",
        ]
    elif pr:
        L += ["No loss history in this bundle (its run predates training-history.json), so no curve fit.", ""]
    return L


def render(bundle: Path) -> str:
    cfg = _load(bundle / "config.json")
    if cfg is None:
        raise CliError(f"{bundle}: no config.json (not a backbone bundle)")
    tr = cfg.get("training") or {}
    man = _load(bundle / "corpus-manifest.json")
    ev = _load(bundle / "eval.json")
    qb = _load(bundle / "quant-bench.json")
    ab = _load(bundle / "embedding-ablation.json")
    size = lambda n: f"{(bundle / n).stat().st_size / 1e6:.2f} MB" if (bundle / n).is_file() else "n/a"  # noqa: E731
    L = front_matter(cfg, man)
    L += [
        f"# Backbone `{cfg['id']}`",
        "",
        "The shared backbone every softedge adapter and edge request runs on. Generated by `scripts/py card`; "
        "every figure below comes from a file in this folder, written by the command named beside it.",
        "",
    ]
    L += [
        "## Configuration",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | {cfg['architecture']} (RoPE, RMSNorm, SwiGLU, grouped-query attention) |"
        if cfg["architecture"] == "llama"
        else f"| architecture | {cfg['architecture']} |",
        f"| layers / heads / kv heads / head dim | {cfg['num_layers']} / {cfg['num_heads']} / {cfg['num_kv_heads']} / {cfg['head_dim']} |",
        f"| hidden / MLP | {cfg['hidden_size']} / {cfg['intermediate_size']} |",
        f"| vocabulary | {cfg['vocab_size']} (SentencePiece BPE, byte fallback) |",
        f"| max positions | {cfg['max_positions']} |",
        f"| parameters | {cfg['params']:,} |",
        f"| ONNX | opset {cfg['opset']}, logits: {cfg['logits']} position, quantisation: {cfg['quantization']} |",
        *(
            [
                f"| graph optimisation | done when the bundle was built: level {o['offline']} by {o['by']}, "
                f"{o['nodes'][0]} -> {o['nodes'][1]} nodes, int8 weights kept on file; loaded at level {o['at_load']} |"
            ]
            if (o := cfg.get("ort_optimization"))
            else []
        ),
        f"| files | model.onnx {size('model.onnx')}, tokenizer.json {size('tokenizer.json')}, "
        f"weights.safetensors (fp32 training weights) {size('weights.safetensors')} |",
        "",
    ]
    if tr:
        L += [
            "## Training (`scripts/py pretrain`)",
            "",
            "| | |",
            "|---|---|",
            f"| steps | {tr['steps']:,} (batch {tr['batch']} x {tr['seq']} tokens) |",
            f"| tokens seen | {tr['tokens_seen']:,}"
            + (
                f" (this run: {tr['epochs']:g} passes over {tr['train_tokens']:,} training tokens)"
                if tr.get("epochs")
                else ""
            )
            + " |",
            *(
                [
                    f"| weights kept | the lowest loss on a {s['dev_pct']:g}% dev split of the training stream: step "
                    f"{tr['steps']:,} of {s['last_step']:,}{', stopped early' if s['stopped_early'] else ''} |"
                ]
                if (s := tr.get("selection"))
                else []
            ),
            f"| wall time | {tr['wall_s'] / 60:.1f} min on {tr['device']}, {tr['threads']} thread(s) |",
            "| throughput | "
            + (f"{tr['median_tok_s']:,.0f} tokens/s (median)" if tr.get("median_tok_s") else "n/a (under 10 steps)")
            + " |",
            f"| embeddings | {tr['embed_init']}{' (' + tr['note'] + ')' if tr.get('note') else ''} |",
            f"| held-out perplexity (PyTorch fp32) | {tr['heldout_ppl']:.2f} |",
            "",
            "![loss curve](loss.png)",
            "",
        ]
    pr = _load(bundle / "probe.json")
    if pr:
        h = pr["heldout"]
        L += [
            "## What adapters can get out of it (`scripts/py probe`)",
            "",
            f"Adapter-independent: held-out perplexity (PyTorch fp32, {h['windows']} windows x {h['seq']} tokens) and, "
            "per default classification task, a linear probe (logistic regression) on the frozen backbone's "
            "mean-pooled final hidden states, no adapter, weight decay chosen on a 10% dev split of the training "
            "file, the eval file scored once.",
            "",
            "| probe | result |",
            "|---|---|",
            f"| held-out perplexity | {h['ppl']:.2f} |",
        ]
        L += [
            f"| held-out perplexity, corpus part {k} | {v['ppl']:.2f} |" for k, v in pr.get("heldout_parts", {}).items()
        ]
        for t, p in pr["probes"].items():
            L.append(
                f"| {t}: linear probe accuracy ({p['eval_examples']} eval, {p['max_tokens']} tokens) | "
                f"{p['accuracy'] * 100:.1f}% |"
            )
        L += [""]
    L += targets_section(bundle, pr, ev)
    if ab:
        L += [
            "## Does starting from GloVe-derived vectors help? (`scripts/build-default-backbone.sh`, ablation step)",
            "",
            "Same model, data and seed, trained side by side for the same wall time (9 minutes, one thread each); "
            "only the embedding initialisation differs.",
            "",
            "| embeddings | steps | tokens | held-out ppl |",
            "|---|---|---|---|",
        ]
        for r in ab["runs"]:
            L.append(f"| {r['embed_init']} | {r['steps']} | {r['tokens_seen']:,} | {r['heldout_ppl']:.2f} |")
        L += ["", ab.get("conclusion", ""), ""]
    if ev:
        L += [
            "## int8 vs fp32 (`npm run eval:backbone`)",
            "",
            f"{ev['positions']:,} held-out next-token positions ({ev['windows']} windows x {ev['seq']}), decoded token "
            f"by token through the KV cache in onnxruntime-{ev['backend']}, against PyTorch fp32:",
            "",
            "| | fp32 (PyTorch) | int8 ONNX |",
            "|---|---|---|",
            f"| perplexity | {ev['fp32_ppl']:.3f} | {ev['ppl']:.3f} ({(ev['ppl_ratio'] - 1) * 100:+.2f}%) |",
            f"| top-1 agreement with fp32 | | {ev['top1_agreement'] * 100:.2f}% |",
            f"| max abs logit diff vs PyTorch simulating the int8 graph | | {ev['max_abs_diff_vs_int8_reference']:.2e} |",
            "",
        ]
        if str(ev.get("quantization", "")).startswith("dynamic-row"):
            L += [
                "This graph quantises activations per row: where an activation sits within float error of a rounding "
                "boundary, ONNX Runtime and PyTorch can round it to neighbouring int8 steps, and the difference "
                "carries through the following layers and the KV cache, so the largest logit difference over "
                "thousands of decoded positions is well above float noise while perplexity and top-1 agreement are "
                "unchanged (the tests' bounds and the measured figures: test/parity-tolerance.ts).",
                "",
            ]
    if qb:
        L += [
            "## Choosing the int8 scheme (`npm run bench:quant`)",
            "",
            f"Latency is the median of {qb['runs']} runs on the 2-core development machine (shared and noisy: read the "
            "ratios); accuracy on "
            f"{qb['fixture']['windows']}x{qb['fixture']['seq']} held-out tokens. `graph none` is fp32.",
            "",
            qb["table"],
            "",
            f"Chosen: **{qb['choice']}** "
            + (
                f"(the fastest in onnxruntime-web on a 16-item batch plus a 32-token generation among the int8 "
                f"graphs with top-1 >= 98%, perplexity within +3% and a wasm peak within {qb['wasm_budget_mb']} MB "
                f"under a pass of {qb['pass_slots']} slots)."
                if "wasm_budget_mb" in qb
                else "(the fastest in onnxruntime-web on a 16-item batch among the int8 graphs with top-1 >= 98% and "
                "perplexity within +3%)."
            ),
            "",
        ]
    if man:
        L += [
            "## Corpus (`scripts/py corpus`)",
            "",
            "Fetched from Debian and npm, cleaned (NFC, control characters, whitespace), exact duplicates dropped, "
            f"split by a hash of each document's group ({man['heldout_pct']}% held out).",
            "",
            "| source | part | package | version | licence | docs | chars | dropped: eval overlap |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in man["sources"]:
            L.append(
                f"| {s['name']} | {s.get('part', 'v1')} | {s['package']} ({s['registry']}) | {s['version']} | "
                f"{s['licence']} | {s['docs']:,} | {s['chars'] / 1e6:.1f}M | {s.get('dropped_eval_overlap', 'not checked')} |"
            )
        if "eval_check" in man:
            ec = man["eval_check"]
            L += [
                "",
                f"No training document holds text of a task's eval split: checked by hash against "
                f"{', '.join(ec['tasks'])} (whole texts, and runs of {ec['n_gram']} words), overlaps dropped as "
                "counted above. Held-out perplexity is quoted on the v1 sources' held-out part (heldout.txt), "
                "which later parts leave as it is; their own documents hold out into heldout-<part>.txt.",
            ]
        L += ["", "Left out on purpose: " + ", ".join(f"{k} ({v})" for k, v in man["excluded"].items()) + ".", ""]
    L += [
        "## Limits",
        "",
        "A 5M-parameter model trained for about an hour on two CPU cores: it has learned English word statistics and "
        "some definitional structure, not facts or reasoning. It is meant as a cheap shared base for prompt/prefix "
        "adapters on narrow tasks (classification, short generation), not as a general text generator.",
        "",
    ]
    return "\n".join(L)


def continued_history(runs: list[Path]) -> dict:
    """The held-out evaluations of pretraining runs continued from a bundle's weights (their metrics.json), for the
    card's loss-curve fit when the bundle's own run kept no history."""
    out, hist = [], []
    for run in runs:
        m = _load(run / "metrics.json")
        if not m:
            raise CliError(f"--fit-from {run}: no metrics.json (a scripts/py pretrain run folder)")
        ev = [{"tokens": h["tokens"], "heldout_loss": h["heldout_loss"]} for h in m["history"] if "heldout_loss" in h]
        if not ev:
            raise CliError(f"--fit-from {run}: its history holds no held-out evaluation")
        corpus = Path(m.get("corpus_dir") or "the corpus").name
        out.append(
            {
                "run": run.name,
                "lr": m["lr"],
                "corpus": corpus,
                "tokens_m": [round(ev[0]["tokens"] / 1e6, 1), round(ev[-1]["tokens"] / 1e6, 1)],
            }
        )
        hist += ev
    return {"runs": out, "history": hist}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument(
        "--fit-from",
        type=Path,
        nargs="+",
        help="pretraining runs continued from this bundle's weights: their held-out history (written to "
        "curve-fit-history.json) feeds the card's loss-curve fit when the bundle's own run kept none",
    )
    a = ap.parse_args()
    if a.fit_from:
        write_json(a.bundle / "curve-fit-history.json", continued_history(a.fit_from))
    text = render(a.bundle)
    with atomic_path(a.bundle / "MODEL_CARD.md") as tmp:
        tmp.write_text(text)
    print(f"wrote {a.bundle / 'MODEL_CARD.md'}")


if __name__ == "__main__":
    run_cli(main)

"""Move adapters onto a re-exported bundle of the same backbone (another int8 scheme, same weights).

    scripts/py retarget --from OLD_BUNDLE --to NEW_BUNDLE adapters/default/*.safetensors [--data-dir .cache/data]
                        [--max-change 0.5]

An adapter names exactly the backbone it fits (the bundle id hashes model.onnx). A bundle rebuilt from the same
training weights with a scheme that computes the same dequantised weights (the weight-only family, SAME_MATH)
gives every KV prefix exactly the same meaning, so the adapter only needs the new id: the tensors, and so the
checksum, stay as they are. Between schemes whose math differs (dynamic-row quantises activations too), the move is
measured: each adapter is scored on its task's eval split under both graphs' math (quantize.simulate: what ONNX
Runtime computes, within 1e-4) and moved only if its metric changes by at most --max-change points; the figures go
to its .metrics.json ("served"). The eval split is found by the adapter's training-file hash among
<data-dir>/*/train.jsonl. Different weights or tokenizers are refused (retrain instead). Each file, and its
.metrics.json beside it when there is one, is rewritten atomically, and only after every adapter has passed.
With --from and --to the same bundle nothing moves: it records the served figure of an adapter newly trained on it
(scripts/py tune scores the fp32 weights; the edge runs the int8 graph).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from softedge.artifacts import adapter as adapter_fmt
from softedge.artifacts import safetensors_io
from softedge.common import CACHE, CliError, atomic_path, run_cli, sha256_file, write_json

SAME_MATH = {"weight-only", "weight-only-dql", "weight-only-nbits", "weight-only-nbits-embed"}


def check_same_backbone(old: Path, new: Path) -> tuple[dict, dict]:
    cfg_old, cfg_new = (json.loads((d / "config.json").read_text()) for d in (old, new))
    if sha256_file(old / "weights.safetensors") != sha256_file(new / "weights.safetensors"):
        raise CliError(f"{new} was not built from the weights of {old}: retrain the adapters instead")
    if cfg_old["tokenizer_sha256"] != cfg_new["tokenizer_sha256"]:
        raise CliError("the bundles' tokenizers differ: retrain the adapters instead")
    return cfg_old, cfg_new


def same_math(cfg_old: dict, cfg_new: dict) -> bool:
    return {cfg_old["quantization"], cfg_new["quantization"]} <= SAME_MATH


def eval_split(meta: dict, data_dir: Path, path: Path) -> Path:
    """The eval.jsonl beside the train.jsonl whose hash the adapter recorded."""
    want = meta.get("training", {}).get("data_sha256")
    for train in sorted(data_dir.glob("*/train.jsonl")):
        if want and sha256_file(train) == want and (train.parent / "eval.jsonl").is_file():
            return train.parent / "eval.jsonl"
    raise CliError(
        f"{path}: no eval split under {data_dir} for its training file (sha256 {str(want)[:12]}...): "
        "run scripts/py datasets, or pass --data-dir"
    )


def reference(bundle: Path, cfg: dict):
    """What the bundle's graph computes, in PyTorch (quantize.simulate: ONNX Runtime's answers within 1e-4)."""
    from softedge.backbone.checkpoint import load_weights
    from softedge.export import quantize

    model, _ = load_weights(bundle / "weights.safetensors")
    return quantize.simulate(model, cfg["quantization"]) if cfg["quantization"] != "none" else model


def served_metric(ref, tok, artifact: tuple, eval_rows: list[dict]) -> tuple[str, float]:
    """(metric name, value) of a parsed adapter (adapter.parse's kv, meta, tensors) under a reference's math."""
    from softedge.tuning.readout import readout_of
    from softedge.tuning.tune import evaluate, main_metric

    kv, meta, tensors = artifact
    m = evaluate(
        ref,
        lambda B: adapter_fmt.tensor_to_kv(kv, B),
        tok,
        meta["task"],
        eval_rows,
        meta["template"],
        readout_of(meta, tensors),
        32,
        meta.get("training", {}).get("max_tokens", 128),
        meta.get("generation", {}).get("max_new_tokens", 32),
        meta.get("generation", {}).get("no_repeat_ngram_size", 0),
        meta.get("generation", {}).get("num_beams", 1),
        stop=tuple(meta.get("generation", {}).get("stop", [])),
    )
    name = main_metric(meta["task"])
    return name, m[name]


def retarget_file(path: Path, cfg_old: dict, cfg_new: dict, served: dict | None = None) -> None:
    tensors, meta = safetensors_io.parse(path.read_bytes(), str(path))
    if meta.get("backbone") != cfg_old["id"]:
        raise CliError(f"{path}: packed for {meta.get('backbone')!r}, not {cfg_old['id']!r}")
    meta["backbone"] = cfg_new["id"]
    buf = safetensors_io.serialize(tensors, meta)
    adapter_fmt.parse(buf, cfg_new, str(path))  # the result must validate against the new bundle
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(buf)
    metrics = path.with_suffix(".metrics.json")
    if metrics.exists():
        m = json.loads(metrics.read_text())
        if m.get("backbone") == cfg_old["id"]:
            m["backbone"] = cfg_new["id"]
            if served:
                m["served"] = served
            write_json(metrics, m)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="old", type=Path, required=True, help="the bundle the adapters were packed for")
    ap.add_argument("--to", dest="new", type=Path, required=True, help="the re-exported bundle")
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=CACHE / "data",
        help="where each adapter's eval split is found (only for a move between schemes whose math differs)",
    )
    ap.add_argument("--max-change", type=float, default=0.5, help="largest metric change allowed, in points")
    ap.add_argument("adapters", type=Path, nargs="+")
    a = ap.parse_args()
    cfg_old, cfg_new = check_same_backbone(a.old, a.new)
    parsed = {}
    for p in a.adapters:  # every file must fit the old bundle before anything is measured or written
        if not p.is_file():
            raise CliError(f"{p}: no such adapter file")
        parsed[p] = adapter_fmt.parse(p.read_bytes(), None, str(p))
        if parsed[p][1]["backbone"] != cfg_old["id"]:
            raise CliError(f"{p}: packed for {parsed[p][1]['backbone']!r}, not {cfg_old['id']!r}")
    served = {}
    if not same_math(cfg_old, cfg_new):
        from softedge.data.tokenizer import Tokenizer
        from softedge.tuning.tasks import load_jsonl

        # the two graphs' math, built once: the weights and the tokenizer are the same (check_same_backbone)
        ref_old, ref_new, tok = reference(a.old, cfg_old), reference(a.new, cfg_new), Tokenizer.from_dir(a.new)
        for p, artifact in parsed.items():
            meta = artifact[1]
            rows = load_jsonl(eval_split(meta, a.data_dir, p), meta["task"])
            name, before = served_metric(ref_old, tok, artifact, rows)
            _, after = served_metric(ref_new, tok, artifact, rows)
            change = 100 * (after - before)
            print(
                f"{p}: {name} {100 * before:.2f} ({cfg_old['quantization']}) -> {100 * after:.2f} "
                f"({cfg_new['quantization']}) on {len(rows)} eval rows",
                flush=True,
            )
            if abs(change) > a.max_change:
                raise CliError(
                    f"{p}: the new graph changes its {name} by {change:+.2f} points (more than "
                    f"--max-change {a.max_change}): retrain it on the new bundle instead; nothing was moved"
                )
            served[p] = {"scheme": cfg_new["quantization"], name: after, "examples": len(rows)}
            if cfg_old["id"] != cfg_new["id"]:
                served[p]["previous"] = {"scheme": cfg_old["quantization"], name: before}
    for p in a.adapters:
        retarget_file(p, cfg_old, cfg_new, served.get(p))
        print(f"{p}: {cfg_old['id']} -> {cfg_new['id']}")


if __name__ == "__main__":
    run_cli(main)

"""Move adapters onto a re-exported bundle of the same backbone (another int8 scheme, same weights).

    scripts/py retarget --from OLD_BUNDLE --to NEW_BUNDLE adapters/default/*.safetensors

An adapter names exactly the backbone it fits (the bundle id hashes model.onnx). A bundle rebuilt from the same
training weights with a scheme that computes the same dequantised weights (the weight-only family, SAME_MATH)
gives every KV prefix exactly the same meaning, so the adapter only needs the new id: the tensors, and so the
checksum, stay as they are. Refused otherwise (retrain instead). Each file, and its
.metrics.json beside it when there is one, is rewritten atomically.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import adapter as adapter_fmt
from . import safetensors_io
from .common import CliError, atomic_path, run_cli, sha256_file, write_json

SAME_MATH = {"weight-only", "weight-only-dql", "weight-only-nbits", "weight-only-nbits-embed"}


def check_same_backbone(old: Path, new: Path) -> tuple[dict, dict]:
    cfg_old, cfg_new = (json.loads((d / "config.json").read_text()) for d in (old, new))
    if sha256_file(old / "weights.safetensors") != sha256_file(new / "weights.safetensors"):
        raise CliError(f"{new} was not built from the weights of {old}: retrain the adapters instead")
    if cfg_old["tokenizer_sha256"] != cfg_new["tokenizer_sha256"]:
        raise CliError("the bundles' tokenizers differ: retrain the adapters instead")
    schemes = {cfg_old["quantization"], cfg_new["quantization"]}
    if not schemes <= SAME_MATH:
        raise CliError(f"schemes {sorted(schemes)} do not compute the same weights (only {sorted(SAME_MATH)} do)")
    return cfg_old, cfg_new


def retarget_file(path: Path, cfg_old: dict, cfg_new: dict) -> None:
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
            write_json(metrics, m)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="old", type=Path, required=True, help="the bundle the adapters were packed for")
    ap.add_argument("--to", dest="new", type=Path, required=True, help="the re-exported bundle")
    ap.add_argument("adapters", type=Path, nargs="+")
    a = ap.parse_args()
    cfg_old, cfg_new = check_same_backbone(a.old, a.new)
    for p in a.adapters:
        retarget_file(p, cfg_old, cfg_new)
        print(f"{p}: {cfg_old['id']} -> {cfg_new['id']}")


if __name__ == "__main__":
    run_cli(main)

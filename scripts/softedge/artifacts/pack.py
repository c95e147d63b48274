"""Inspect an adapter artifact, or re-pack it at another storage dtype (float16, float32, int8).

    scripts/py pack ADAPTER.safetensors                              # what it is: kind, task, P, readout, bytes, ...
    scripts/py pack ADAPTER.safetensors --dtype int8 --out SMALL.safetensors

The artifact is validated first (checksum, shapes, readout; against its backbone when --backbone or the default
catalog's bundle is the one it names). Re-packing re-encodes the stored tensors only: the KV prefix (int8 keeps one
scale per layer, key/value and head), the soft prompt and the head follow adapter.pack's rules; metadata, labels,
template and training record stay. `scripts/py tune` reports what each dtype does to the eval metric (metrics.json,
"storage"); int8 moved no default adapter's metric by more than 0.15 point.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from softedge.artifacts import adapter as adapter_fmt
from softedge.common import ROOT, CliError, atomic_path, run_cli
from softedge.tuning.readout import Head, readout_of


def backbone_config(path: Path | None, named: str) -> dict | None:
    """The config of --backbone, else of the catalog's default bundle when it is the one the adapter names."""
    if path is not None:
        cfg_file = path / "config.json"
        if not cfg_file.is_file():
            raise CliError(f"{path}: not a backbone bundle (no config.json)")
        return json.loads(cfg_file.read_text())
    default = ROOT / "adapters" / "backbones" / named / "config.json"
    return json.loads(default.read_text()) if default.is_file() else None


def describe(path: Path, meta: dict, tensors: dict, checked: bool) -> str:
    r = meta["readout"]
    readout = (
        "generation"
        if meta["task"] == "generate"
        else f"head ({r['pooling']} pooling, bag of {r['bag_tokens']} tokens)"
        if r.get("type") == "head"
        else "verbalizer"
    )
    lines = [
        f"{path}: {meta['kind']} tuning, {meta['task']}, {meta['num_virtual_tokens']} virtual tokens, {readout}",
        f"  stored: {path.stat().st_size:,} bytes, {meta['dtype']}; tensors "
        + ", ".join(f"{k} {list(v.shape)} {str(v.dtype).replace('torch.', '')}" for k, v in sorted(tensors.items())),
        f"  backbone: {meta['backbone']}" + ("" if checked else " (not found here: shapes not checked against it)"),
        f"  template: {json.dumps(meta['template'])}",
    ]
    if meta["labels"]:
        lines.append("  labels: " + ", ".join(l["name"] for l in meta["labels"]))
    if meta["training"].get("eval"):
        lines.append("  eval: " + ", ".join(f"{k} {v:.4f}" for k, v in meta["training"]["eval"].items()))
    return "\n".join(lines)


def repack(meta: dict, tensors: dict, kv, cfg: dict, dtype: str) -> bytes:
    readout = readout_of(meta, tensors)
    head = readout if isinstance(readout, Head) else None  # a verbalizer travels in the labels' metadata
    prompt = tensors.get("prompt_embeddings")
    return adapter_fmt.pack(
        meta["kind"],
        meta["task"],
        cfg,
        kv,
        dtype=dtype,
        prompt=None if prompt is None else prompt.float(),
        template=meta["template"],
        labels=meta["labels"],
        generation=meta["generation"],
        training=meta["training"],
        head=head,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("adapter", type=Path)
    ap.add_argument("--dtype", choices=sorted(adapter_fmt.DTYPES), help="re-pack at this storage dtype")
    ap.add_argument("--out", type=Path, help="where the re-packed artifact goes (required with --dtype)")
    ap.add_argument(
        "--backbone", type=Path, help="bundle to check it against (default: the catalog's, when it is the one named)"
    )
    a = ap.parse_args()
    if not a.adapter.is_file():
        raise CliError(f"{a.adapter}: no such file")
    if a.dtype and not a.out:
        raise CliError("--dtype needs --out (the original is never overwritten)")
    if a.out and not a.dtype:
        raise CliError("--out needs --dtype")
    buf = a.adapter.read_bytes()
    try:
        kv, meta, tensors = adapter_fmt.parse(buf, None, str(a.adapter))
        cfg = backbone_config(a.backbone, meta["backbone"])  # the bundle it names, when here
        if cfg is not None:
            adapter_fmt.check_backbone(meta, kv.shape, cfg, str(a.adapter))
    except adapter_fmt.AdapterError as e:
        raise CliError(str(e)) from None
    if not a.dtype:
        print(describe(a.adapter, meta, tensors, cfg is not None))
        return
    if cfg is None:
        raise CliError(f"re-packing needs the backbone {meta['backbone']}: pass --backbone BUNDLE")
    if a.out.resolve() == a.adapter.resolve():
        raise CliError("--out must differ from the input (the original is never overwritten)")
    out = repack(meta, tensors, kv, cfg, a.dtype)
    adapter_fmt.parse(out, cfg, str(a.out))  # what is written validates
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(a.out) as tmp:
        tmp.write_bytes(out)
    print(f"{a.out}: {a.dtype}, {len(out):,} bytes (was {meta['dtype']}, {len(buf):,})")


if __name__ == "__main__":
    run_cli(main)

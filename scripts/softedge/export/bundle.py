"""Build a backbone bundle: ONNX (+int8), tokenizer.json, config.json with sha256; content-derived id.

    scripts/py bundle --weights .cache/runs/default --tokenizer .cache/tokenizer --out adapters/backbones
                      [--name softedge-llama-5m] [--quant <a quantize.SCHEMES scheme>|none] [--all-logits]
                      [--no-preoptimize]

--weights takes a softedge run folder / weights.safetensors, or a Hugging Face GPT-2/Llama checkpoint folder.
--tokenizer is a folder with tokenizer.model (SentencePiece, used by the Python side) and tokenizer.json (the edge).
Writes <out>/<id>/ atomically: model.onnx, tokenizer.json, config.json, plus weights.safetensors and
tokenizer.model so adapters can be trained against exactly this backbone from a fresh clone.
model.onnx is pre-optimised (export/preoptimize.py: ONNX Runtime's load-time optimisations done here, checked
bit-identical in the edge's wasm build; config.json's "ort_optimization" tells loaders to use level "basic"), which
takes a cold isolate's session creation down by about a quarter; where that check fails it warns and keeps the
graph as exported, and --no-preoptimize asks for that.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from softedge.export import export_onnx
from softedge.export import preoptimize as preopt
from softedge.export import quantize
from softedge.backbone.checkpoint import CheckpointError, load_any, save_weights
from softedge.common import CACHE, CliError, atomic_dir, run_cli, sha256_file, write_json
from softedge.data.tokenizer import Tokenizer, write_tokenizer_json

FORMAT_VERSION = 1


def backbone_config(
    model,
    tok: Tokenizer,
    bundle_id: str,
    quant: str,
    last_only: bool,
    model_sha: str,
    tok_sha: str,
    training: dict | None,
    ort_optimization: dict | None = None,
) -> dict:
    cfg = model.cfg
    ins, outs = export_onnx.io_names(cfg.n_layer)
    return {
        "id": bundle_id,
        "format_version": FORMAT_VERSION,
        "architecture": cfg.arch,
        "num_layers": cfg.n_layer,
        "num_heads": cfg.n_head,
        "num_kv_heads": cfg.n_kv_head,
        "head_dim": cfg.head_dim,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.d_ff,
        "vocab_size": cfg.vocab_size,
        "max_positions": cfg.max_positions,
        "rope_theta": cfg.rope_theta if cfg.arch == "llama" else None,
        "tie_embeddings": cfg.tie_embeddings,
        "params": model.num_params(),
        **tok.special_ids(),
        "quantization": quant,
        "logits": "last" if last_only else "all",
        "opset": export_onnx.OPSET,
        "inputs": ins,
        "outputs": outs,
        "model_sha256": model_sha,
        "tokenizer_sha256": tok_sha,
        # absent: load the graph at ONNX Runtime's level "all"; present: it was optimised offline, load it at "at_load"
        **({"ort_optimization": ort_optimization} if ort_optimization else {}),
        "model_config": cfg.to_dict(),
        "training": training,
    }


def build(
    weights: Path, tokenizer: Path, out: Path, name: str, quant: str, last_only: bool, preoptimize: bool = True
) -> Path:
    try:
        model, meta = load_any(weights)
    except CheckpointError as e:
        raise CliError(str(e)) from None
    tok = Tokenizer.from_dir(tokenizer)
    if tok.vocab_size != model.cfg.vocab_size:
        raise CliError(f"tokenizer has {tok.vocab_size} pieces but the model's vocabulary is {model.cfg.vocab_size}")
    proto = export_onnx.export(model, last_only=last_only)
    if quant != "none":
        proto = quantize.quantize(proto, quant)
    model_bytes = proto.SerializeToString()
    ort_optimization = None
    if preoptimize:
        c = model.cfg
        try:
            model_bytes, ort_optimization = preopt.preoptimize(model_bytes, c.n_kv_head, c.head_dim, c.vocab_size)
        except preopt.NotPreoptimized as e:  # an optimisation, not a requirement: the exported graph still serves
            print(f"warning: model.onnx kept as exported, not pre-optimised: {e}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    staging = out / f".staging-{name}"
    with atomic_dir(staging) as tmp:
        (tmp / "model.onnx").write_bytes(model_bytes)
        write_tokenizer_json(tok, tmp / "tokenizer.json")
        shutil.copyfile(tok.path, tmp / "tokenizer.model")
        # the training record travels with the weights, so a bundle rebuilt from a bundle keeps its card's figures
        save_weights(model, tmp / "weights.safetensors", {"training": meta["training"]} if "training" in meta else None)
        tok_sha = sha256_file(tmp / "tokenizer.json")
        model_sha = hashlib.sha256(model_bytes).hexdigest()
        bundle_id = f"{name}-{hashlib.sha256((model_sha + tok_sha).encode()).hexdigest()[:12]}"
        training = json.loads(meta["training"]) if "training" in meta else None
        write_json(
            tmp / "config.json",
            backbone_config(model, tok, bundle_id, quant, last_only, model_sha, tok_sha, training, ort_optimization),
        )
    dest = out / bundle_id
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return dest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path)
    ap.add_argument("--tokenizer", type=Path, default=CACHE / "tokenizer")
    ap.add_argument("--out", type=Path, default=Path("adapters/backbones"))
    ap.add_argument("--name", default="softedge-backbone")
    ap.add_argument("--quant", choices=[*quantize.SCHEMES, "none"], default="weight-only")
    ap.add_argument("--all-logits", action="store_true", help="logits at every position (default: last only)")
    ap.add_argument(
        "--no-preoptimize",
        action="store_true",
        help="write the graph as exported (the edge then optimises it at load, level 'all')",
    )
    ap.add_argument("--list-quant", action="store_true", help="print the int8 schemes, one a line, and exit")
    a = ap.parse_args()
    if a.list_quant:  # npm run bench:quant measures each
        print("\n".join(quantize.SCHEMES))
        return
    if a.weights is None:
        raise CliError("--weights is required")
    if not a.name.replace("-", "").replace("_", "").isalnum():
        raise CliError("--name may hold only letters, digits, '-' and '_'")
    dest = build(a.weights, a.tokenizer, a.out, a.name, a.quant, not a.all_logits, not a.no_preoptimize)
    cfg = json.loads((dest / "config.json").read_text())
    size = (dest / "model.onnx").stat().st_size
    print(
        f"bundle {cfg['id']}: model.onnx {size / 1e6:.2f} MB ({a.quant}"
        + (", pre-optimised" if "ort_optimization" in cfg else "")
        + f"), {cfg['params'] / 1e6:.2f}M params -> {dest}"
    )


if __name__ == "__main__":
    run_cli(main)

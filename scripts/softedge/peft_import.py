"""Import a Hugging Face PEFT adapter (adapter_config.json + adapter_model.safetensors) into a softedge artifact.

    scripts/py import-peft <peft dir> --task classify --verbalizer '{"pos": "good", "neg": "bad"}' \
                           [--backbone <bundle>] [--template ...] [--dtype float16] --out adapter.safetensors

PEFT saves one tensor, prompt_embeddings:
  PROMPT_TUNING, P_TUNING  [P, d]            embeddings before the input (P-tuning's encoder output) -> compiled
                                             to a KV prefix by running them through the backbone
  PREFIX_TUNING            [P, L*2*kvH*D]    per virtual token [L0.key | L0.value | L1.key ...], heads-major
The backbone must have the same architecture and sizes (checked against adapter_config.json and the shapes).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from . import adapter as adapter_fmt
from . import safetensors_io
from .common import CliError, atomic_path, run_cli
from .tasks import TEMPLATES, Verbalizer
from .tuners.prefix import split_flat_prefix

KINDS = {"PROMPT_TUNING": "prompt", "P_TUNING": "prompt", "PREFIX_TUNING": "prefix"}


def read_peft(folder: Path) -> tuple[dict, torch.Tensor]:
    cfg_path, w_path = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    if not cfg_path.is_file():
        raise CliError(f"{folder}: no adapter_config.json (not a PEFT adapter folder)")
    if not w_path.is_file():
        raise CliError(f"{folder}: no adapter_model.safetensors")
    try:
        cfg = json.loads(cfg_path.read_text())
        tensors, _ = safetensors_io.load(w_path)
    except json.JSONDecodeError as e:
        raise CliError(f"{cfg_path}: invalid JSON ({e.msg})") from None
    except safetensors_io.SafetensorsError as e:
        raise CliError(str(e)) from None
    if cfg.get("peft_type") not in KINDS:
        raise CliError(f"{cfg_path}: peft_type {cfg.get('peft_type')!r} is not one of {', '.join(KINDS)}")
    if "prompt_embeddings" not in tensors:
        raise CliError(f"{w_path}: no 'prompt_embeddings' tensor (found {sorted(tensors)[:3]})")
    emb = tensors["prompt_embeddings"].float()
    if emb.dim() != 2 or emb.shape[0] != cfg.get("num_virtual_tokens", emb.shape[0]):
        raise CliError(f"{w_path}: prompt_embeddings shape {list(emb.shape)} does not match "
                       f"num_virtual_tokens={cfg.get('num_virtual_tokens')}")
    return cfg, emb


@torch.no_grad()
def to_kv(cfg: dict, emb: torch.Tensor, model) -> tuple[str, torch.Tensor, torch.Tensor | None]:
    """(kind, KV prefix [L, 2, kvH, P, D], raw soft prompt or None), after checking shapes against the backbone."""
    m = model.cfg
    kind = KINDS[cfg["peft_type"]]
    P = emb.shape[0]
    if kind == "prompt":
        if emb.shape[1] != m.d_model:
            raise CliError(f"PEFT prompt has width {emb.shape[1]}, the backbone's embeddings are {m.d_model}")
        _, presents = model(inputs_embeds=emb[None])
        return kind, adapter_fmt.kv_to_tensor(presents), emb
    want = m.n_layer * 2 * m.n_kv_head * m.head_dim
    if cfg.get("num_layers", m.n_layer) != m.n_layer or emb.shape[1] != want:
        raise CliError(f"PEFT prefix is [{P}, {emb.shape[1]}] for {cfg.get('num_layers')} layers; the backbone needs "
                       f"[{P}, {want}] ({m.n_layer} layers x 2 x {m.n_kv_head} kv heads x {m.head_dim})")
    return kind, adapter_fmt.kv_to_tensor(split_flat_prefix(emb, m.n_layer, m.n_kv_head, m.head_dim)), None


def main():
    from .tune import default_backbone, load_backbone

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peft_dir", type=Path)
    ap.add_argument("--task", choices=["classify", "generate"], required=True)
    ap.add_argument("--verbalizer", help='classification: JSON {"label": "word" | ["w1", ...]}')
    ap.add_argument("--template", default=None)
    ap.add_argument("--backbone", type=Path)
    ap.add_argument("--dtype", choices=list(adapter_fmt.DTYPES), default="float16")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    cfg, emb = read_peft(a.peft_dir)
    model, tok, bcfg = load_backbone(a.backbone or default_backbone())
    labels = None
    if a.task == "classify":
        if not a.verbalizer:
            raise CliError("--verbalizer is required for classification (labels and their words)")
        try:
            mapping = json.loads(a.verbalizer)
        except json.JSONDecodeError as e:
            raise CliError(f"--verbalizer: not JSON ({e.msg})") from None
        if not isinstance(mapping, dict) or len(mapping) < 2:
            raise CliError("--verbalizer must map at least two labels to words")
        labels = Verbalizer.build(sorted(mapping), tok, mapping).to_meta()
    kind, kv, prompt = to_kv(cfg, emb, model)
    buf = adapter_fmt.pack(kind, a.task, bcfg, kv, dtype=a.dtype, prompt=prompt,
                           template=a.template or TEMPLATES[a.task], labels=labels,
                           generation={"max_new_tokens": a.max_new_tokens, "stop": ["\n"]} if a.task == "generate" else {},
                           training={"imported_from": "peft", "peft_type": cfg["peft_type"],
                                     "base_model": cfg.get("base_model_name_or_path")})
    with atomic_path(a.out) as tmp:
        tmp.write_bytes(buf)
    print(f"imported {cfg['peft_type']} ({emb.shape[0]} virtual tokens) as a {kind} adapter: {a.out} ({len(buf):,} bytes)")


if __name__ == "__main__":
    run_cli(main)

"""Import a Hugging Face PEFT adapter (adapter_config.json + adapter_model.safetensors) into a softedge artifact.

    scripts/py peft_import <peft dir> --task classify --verbalizer '{"pos": "good", "neg": "bad"}' \
                           [--backbone <bundle>] [--template ...] [--dtype float16] --out adapter.safetensors

PEFT saves one tensor, prompt_embeddings (a folder written by scripts/py peft_export also carries the template, the
labels and the readout in adapter_config.json's "softedge" entry, and a classification head in
softedge_head.safetensors: both restored; a classifier saved with modules_to_save, transformers' `score` or a
`classifier` linear layer over the last token's final hidden state, becomes a head with last pooling, its labels
named with --labels):
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

from softedge.artifacts import adapter as adapter_fmt
from softedge.artifacts import safetensors_io
from softedge.common import CliError, atomic_path, run_cli
from softedge.tuning.tasks import TEMPLATES, Verbalizer
from softedge.tuning.tuners.prefix import split_flat_prefix

KINDS = {"PROMPT_TUNING": "prompt", "P_TUNING": "prompt", "PREFIX_TUNING": "prefix"}


def read_peft(folder: Path) -> tuple[dict, torch.Tensor, dict[str, torch.Tensor]]:
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
        raise CliError(
            f"{w_path}: prompt_embeddings shape {list(emb.shape)} does not match "
            f"num_virtual_tokens={cfg.get('num_virtual_tokens')}"
        )
    return cfg, emb, tensors


def classifier_head(tensors: dict[str, torch.Tensor], labels: list[str] | None, d_model: int, where: str):
    """A classifier PEFT saved with modules_to_save (transformers' *ForSequenceClassification `score`, or a
    `classifier`): a linear layer over the final hidden state of the last token, i.e. a head with last pooling.
    None when there is none; a one-line error when it does not fit."""
    from softedge.tuning.readout import Head

    names = [k for k in tensors if k.split(".")[-2:] in (["score", "weight"], ["classifier", "weight"])]
    if not names:
        return None
    if len(names) > 1:
        raise CliError(f"{where}: more than one classifier weight ({', '.join(sorted(names))})")
    W = tensors[names[0]].float()
    b = tensors.get(names[0][: -len("weight")] + "bias")
    if W.dim() != 2 or W.shape[1] != d_model:
        raise CliError(f"{where}: classifier {names[0]} is {list(W.shape)}; the backbone's hidden size is {d_model}")
    if not labels or len(labels) != W.shape[0]:
        given = f", {len(labels)} labels given" if labels else ""
        raise CliError(
            f"{where}: a classifier with {W.shape[0]} outputs{given}: name them in order with --labels a,b,..."
        )
    head = Head(labels, d_model, "last")
    with torch.no_grad():
        head.weight.copy_(W)
        if b is not None:
            head.bias.copy_(b.float())
    return head


def read_head(folder: Path, se: dict):
    """The classification head scripts/py peft_export writes beside a PEFT folder (softedge_head.safetensors), or None."""
    from softedge.tuning.readout import Head

    path = folder / "softedge_head.safetensors"
    if not path.is_file():
        return None
    try:
        tensors, meta = safetensors_io.load(path)
        readout = json.loads(meta.get("readout", "{}"))
    except (safetensors_io.SafetensorsError, json.JSONDecodeError) as e:
        raise CliError(f"{path}: unreadable ({e})") from None
    names = [l["name"] for l in se.get("labels", [])]
    W = tensors.get("head_weight")
    if readout.get("type") != "head" or W is None or W.shape[0] != len(names):
        raise CliError(
            f"{path}: a head for {0 if W is None else W.shape[0]} labels, adapter_config.json names {len(names)}"
        )
    return Head.from_artifact(tensors, readout, names)


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
        raise CliError(
            f"PEFT prefix is [{P}, {emb.shape[1]}] for {cfg.get('num_layers')} layers; the backbone needs "
            f"[{P}, {want}] ({m.n_layer} layers x 2 x {m.n_kv_head} kv heads x {m.head_dim})"
        )
    return kind, adapter_fmt.kv_to_tensor(split_flat_prefix(emb, m.n_layer, m.n_kv_head, m.head_dim)), None


def main():
    from softedge.tuning.tune import default_backbone, load_backbone

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("peft_dir", type=Path)
    ap.add_argument("--task", choices=["classify", "generate"], required=True)
    ap.add_argument("--verbalizer", help='classification: JSON {"label": "word" | ["w1", ...]}')
    ap.add_argument("--labels", help="classification with a saved classifier (modules_to_save): its labels, in order")
    ap.add_argument("--template", default=None)
    ap.add_argument("--backbone", type=Path)
    ap.add_argument("--dtype", choices=list(adapter_fmt.DTYPES), default="float16")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    cfg, emb, tensors = read_peft(a.peft_dir)
    model, tok, bcfg = load_backbone(a.backbone or default_backbone())
    se = cfg.get("softedge") or {}  # what scripts/py peft_export records: template, labels, readout
    head = read_head(a.peft_dir, se) if a.task == "classify" else None
    peft_head = (
        classifier_head(tensors, a.labels.split(",") if a.labels else None, model.cfg.d_model, str(a.peft_dir))
        if a.task == "classify" and head is None
        else None
    )
    labels = None
    if head is not None:
        labels = se["labels"]
    elif peft_head is not None:
        head, labels = peft_head, [{"name": n, "words": [], "token_ids": []} for n in peft_head.labels]
    elif (
        a.task == "classify" and not a.verbalizer and se.get("labels") and all(l.get("token_ids") for l in se["labels"])
    ):
        labels = Verbalizer.build(
            [l["name"] for l in se["labels"]], tok, {l["name"]: l["words"] for l in se["labels"]}
        ).to_meta()
    elif a.task == "classify":
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
    buf = adapter_fmt.pack(
        kind,
        a.task,
        bcfg,
        kv,
        dtype=a.dtype,
        prompt=prompt,
        head=head,
        template=a.template or se.get("template") or TEMPLATES[a.task],
        labels=labels,
        generation={"max_new_tokens": a.max_new_tokens, "stop": ["\n"]} if a.task == "generate" else {},
        training={
            "imported_from": "peft",
            "peft_type": cfg["peft_type"],
            "base_model": cfg.get("base_model_name_or_path"),
        },
    )
    with atomic_path(a.out) as tmp:
        tmp.write_bytes(buf)
    print(
        f"imported {cfg['peft_type']} ({emb.shape[0]} virtual tokens) as a {kind} adapter: {a.out} ({len(buf):,} bytes)"
    )


if __name__ == "__main__":
    run_cli(main)

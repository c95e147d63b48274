"""The adapter artifact: one safetensors file per immutable version (ARCHITECTURE.md's contract).

tensors   kv_prefix          [L, 2, kvH, P, D]  float16 (default) | float32 | int8 (+ kv_prefix_scale [L, 2, kvH])
          prompt_embeddings  [P, d]             the raw soft prompt (prompt tuning only; same dtype, never int8)
          head_weight        [n_labels, d]      classification head (readout "head"; the dtype's, float16 for
                                                int8 adapters written before int8 heads; int8 adds
                                                head_weight_scale [n_labels] float32, one per row)
          head_bias          [n_labels]         float32
          bag_ids            [K] int16          the head's bag-of-tokens vocabulary (when it has one; int32 for a
                                                vocabulary of 32,768 or more, and in artifacts before stop 20)
          bag_weight         [n_labels, K]      one weight per label and bag token (stored as head_weight is,
                                                int8 with bag_weight_scale [n_labels])
metadata  format, format_version, kind (prompt|prefix), task (classify|generate), backbone (id), num_virtual_tokens,
          dtype, template, labels (JSON: name, words, token_ids; no words for a head), generation (JSON object:
          max_new_tokens, stop, no_repeat_ngram_size 0-8, num_beams 1-8, the edge's defaults),
          training (JSON), readout (JSON {"type": "verbalizer"} or {"type": "head", "pooling": "mean"|"last",
          "bag_tokens": K}; absent = verbalizer), created, checksum = sha256 over the tensors' raw bytes, in name order.

Prompt tuning is compiled here: the soft prompt is run through the backbone once and its KV cache stored, which is
exact (causal attention: the prompt's keys/values never depend on what follows).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from softedge.artifacts import safetensors_io

FORMAT, FORMAT_VERSION = "softedge-adapter", "1"
DTYPES = {"float16": torch.float16, "float32": torch.float32, "int8": torch.int8}


HEAD_TENSORS = ("head_weight", "head_weight_scale", "head_bias", "bag_ids", "bag_weight", "bag_weight_scale")


class AdapterError(ValueError):
    pass


def tensor_checksum(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def kv_to_tensor(kv) -> torch.Tensor:
    """per layer (key, value) [1, kvH, P, D] -> [L, 2, kvH, P, D]"""
    return torch.stack([torch.stack([k[0], v[0]]) for k, v in kv]).detach().float()


def tensor_to_kv(t: torch.Tensor, batch: int = 1):
    return [
        (t[i, 0][None].expand(batch, -1, -1, -1), t[i, 1][None].expand(batch, -1, -1, -1)) for i in range(t.shape[0])
    ]


def encode_kv(kv: torch.Tensor, dtype: str) -> dict[str, torch.Tensor]:
    if dtype == "int8":  # symmetric, one scale per (layer, key/value, head)
        amax = kv.abs().amax(dim=(3, 4))
        scale = torch.where(amax > 0, amax / 127, torch.ones_like(amax))
        q = torch.clamp(torch.round(kv / scale[..., None, None]), -127, 127).to(torch.int8)
        return {"kv_prefix": q, "kv_prefix_scale": scale.float()}
    return {"kv_prefix": kv.to(DTYPES[dtype])}


def decode_kv(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    kv = tensors["kv_prefix"]
    if kv.dtype == torch.int8:
        return kv.float() * tensors["kv_prefix_scale"][..., None, None]
    return kv.float()


def pack(
    kind: str,
    task: str,
    backbone_cfg: dict,
    kv: torch.Tensor,
    *,
    dtype: str = "float16",
    prompt: torch.Tensor | None = None,
    template: str,
    labels: list[dict] | None = None,
    generation: dict | None = None,
    training: dict | None = None,
    head=None,
) -> bytes:
    """head: a readout.Head (classification with a head readout) or None (verbalizer, or generation)."""
    if kind not in ("prompt", "prefix"):
        raise AdapterError(f"unknown adapter kind {kind!r}")
    if dtype not in DTYPES:
        raise AdapterError(f"unknown dtype {dtype!r} (float16, float32 or int8)")
    expect = (backbone_cfg["num_layers"], 2, backbone_cfg["num_kv_heads"], kv.shape[3], backbone_cfg["head_dim"])
    if tuple(kv.shape) != expect:
        raise AdapterError(
            f"KV prefix shape {list(kv.shape)} does not fit backbone {backbone_cfg['id']} {list(expect)}"
        )
    tensors = encode_kv(kv, dtype)
    if prompt is not None:
        tensors["prompt_embeddings"] = prompt.detach().to(torch.float32 if dtype == "float32" else torch.float16)
    if head is not None:
        if task != "classify":
            raise AdapterError("a classification head needs task classify")
        tensors.update(head.tensors(DTYPES[dtype]))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "task": task,
        "backbone": backbone_cfg["id"],
        "num_virtual_tokens": str(kv.shape[3]),
        "dtype": dtype,
        "template": template,
        "labels": json.dumps(labels or []),
        "generation": json.dumps(generation or {}),
        "training": json.dumps(training or {}),
        "readout": json.dumps(head.meta() if head is not None else {"type": "verbalizer"}),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "checksum": tensor_checksum(tensors),
    }
    return safetensors_io.serialize(tensors, meta)


def parse(buf: bytes, backbone_cfg: dict | None = None, where: str = "adapter") -> tuple[torch.Tensor, dict, dict]:
    """Validate an artifact; returns (kv fp32 [L,2,kvH,P,D], metadata with JSON fields decoded, raw tensors)."""
    try:
        tensors, meta = safetensors_io.parse(buf, where)
    except safetensors_io.SafetensorsError as e:
        raise AdapterError(str(e)) from None
    if meta.get("format") != FORMAT:
        raise AdapterError(f"{where}: not a softedge adapter (format={meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise AdapterError(f"{where}: unsupported format_version {meta.get('format_version')!r}")
    for k in ("kind", "task", "backbone", "num_virtual_tokens", "dtype", "template", "labels", "checksum"):
        if k not in meta:
            raise AdapterError(f"{where}: metadata lacks {k!r}")
    if meta["kind"] not in ("prompt", "prefix") or meta["task"] not in ("classify", "generate"):
        raise AdapterError(f"{where}: bad kind/task {meta['kind']!r}/{meta['task']!r}")
    if "kv_prefix" not in tensors:
        raise AdapterError(f"{where}: no kv_prefix tensor")
    if tensor_checksum(tensors) != meta["checksum"]:
        raise AdapterError(f"{where}: checksum mismatch (the tensors were altered or damaged)")
    kv = tensors["kv_prefix"]
    P = int(meta["num_virtual_tokens"])
    if kv.dim() != 5 or kv.shape[1] != 2 or kv.shape[3] != P:
        raise AdapterError(f"{where}: kv_prefix shape {list(kv.shape)} is not [L, 2, kvH, {P}, D]")
    if (kv.dtype == torch.int8) != (meta["dtype"] == "int8") or (
        kv.dtype == torch.int8 and "kv_prefix_scale" not in tensors
    ):
        raise AdapterError(f"{where}: dtype {meta['dtype']!r} does not match the stored tensors")
    if backbone_cfg is not None:
        check_backbone(meta, kv.shape, backbone_cfg, where)
    out = dict(meta)
    for k in ("labels", "generation", "training", "readout"):
        try:
            out[k] = json.loads(meta.get(k, "{}") or "{}")
        except json.JSONDecodeError:
            raise AdapterError(f"{where}: metadata {k!r} is not valid JSON") from None
    if not isinstance(out["generation"], dict):
        raise AdapterError(f"{where}: metadata 'generation' is not a JSON object")
    n = out["generation"].get("no_repeat_ngram_size", 0)
    if type(n) is not int or not 0 <= n <= 8:  # a JSON true is a bool in Python, not a size
        raise AdapterError(f"{where}: generation.no_repeat_ngram_size must be an integer in [0, 8]")
    k = out["generation"].get("num_beams", 1)
    if type(k) is not int or not 1 <= k <= 8:
        raise AdapterError(f"{where}: generation.num_beams must be an integer in [1, 8]")
    out["readout"] = out["readout"] or {"type": "verbalizer"}
    check_readout(out, tensors, where)
    kvf = decode_kv(tensors)
    if not torch.isfinite(kvf).all():
        raise AdapterError(f"{where}: kv_prefix holds NaN or inf")
    return kvf, out, tensors


def check_readout(meta: dict, tensors: dict[str, torch.Tensor], where: str) -> None:
    """A head adapter's tensors fit its labels and its readout metadata; a verbalizer adapter has no head."""
    r, n = meta["readout"], len(meta["labels"])
    if r.get("type") == "verbalizer":
        if any(k in tensors for k in HEAD_TENSORS):
            raise AdapterError(f"{where}: head tensors in a verbalizer adapter")
        return
    if r.get("type") != "head" or meta["task"] != "classify":
        raise AdapterError(f"{where}: readout {r.get('type')!r} does not fit task {meta['task']!r}")
    if r.get("pooling") not in ("mean", "last"):
        raise AdapterError(f"{where}: unknown head pooling {r.get('pooling')!r}")
    W, b = tensors.get("head_weight"), tensors.get("head_bias")
    if W is None or b is None or W.dim() != 2 or W.shape[0] != n or list(b.shape) != [n]:
        raise AdapterError(f"{where}: head_weight/head_bias do not fit {n} labels")
    check_row_scales(tensors, n, where)
    K = int(r.get("bag_tokens", 0))
    ids, bw = tensors.get("bag_ids"), tensors.get("bag_weight")
    if K == 0 and ids is None and bw is None:
        return
    if ids is None or bw is None or list(ids.shape) != [K] or list(bw.shape) != [n, K]:
        raise AdapterError(f"{where}: bag_ids/bag_weight do not fit bag_tokens={K} and {n} labels")
    if ids.dtype not in (torch.int16, torch.int32):
        raise AdapterError(f"{where}: bag_ids must be int16 or int32, not {str(ids.dtype).replace('torch.', '')}")


def check_row_scales(tensors: dict[str, torch.Tensor], n: int, where: str) -> None:
    """An int8 head weight has its per-row scales (float32, finite, > 0); a float one has none."""
    for name in ("head_weight", "bag_weight"):
        x, s = tensors.get(name), tensors.get(f"{name}_scale")
        if x is None:
            continue
        if x.dtype != torch.int8:
            if s is not None:
                raise AdapterError(f"{where}: {name}_scale beside a {str(x.dtype).replace('torch.', '')} {name}")
        elif s is None or list(s.shape) != [n] or s.dtype != torch.float32 or not bool(((s > 0) & s.isfinite()).all()):
            raise AdapterError(f"{where}: int8 {name} needs {name}_scale [{n}] float32, finite and > 0")


def check_backbone(meta: dict, kv_shape, backbone_cfg: dict, where: str = "adapter") -> None:
    """The artifact names this backbone and its KV prefix has the backbone's layers, kv heads and head dim."""
    if meta["backbone"] != backbone_cfg["id"]:
        raise AdapterError(f"{where}: packed for backbone {meta['backbone']!r}, not {backbone_cfg['id']!r}")
    expect = (
        backbone_cfg["num_layers"],
        2,
        backbone_cfg["num_kv_heads"],
        int(meta["num_virtual_tokens"]),
        backbone_cfg["head_dim"],
    )
    if tuple(kv_shape) != expect:
        raise AdapterError(f"{where}: kv_prefix shape {list(kv_shape)} does not fit the backbone {list(expect)}")
    readout = meta.get("readout") or {}
    readout = json.loads(readout) if isinstance(readout, str) else readout
    if readout.get("type") == "head" and "hidden_states" not in backbone_cfg.get("outputs", []):
        raise AdapterError(f"{where}: a head adapter needs a backbone with a hidden_states output")


def load(path: Path | str, backbone_cfg: dict | None = None):
    path = Path(path)
    if not path.is_file():
        raise AdapterError(f"{path}: no such adapter file")
    return parse(path.read_bytes(), backbone_cfg, str(path))

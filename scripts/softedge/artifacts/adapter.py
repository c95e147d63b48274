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
TENSORS = {"kv_prefix", "kv_prefix_scale", "prompt_embeddings", *HEAD_TENSORS}

# What one artifact may hold: the worker's ARTIFACT_BOUNDS (src/engine/adapter.ts, README.md "Adapter bounds"), so
# that nothing packed here is refused at publish. The worker also counts the template's tokens against the prompt
# budget and the positions against the backbone's, under its own limits; tune.py's prompts fit those by construction.
BOUNDS = {
    "virtual_tokens": 64,
    "memory_bytes": 320 << 10,  # the parsed adapter: fp32 prefix and head, 2 bytes per metadata character
    "labels": 64,
    "label_chars": 64,
    "label_words": 8,
    "word_tokens": 8,
    "label_tokens": 32,
    "template_chars": 4096,
    "stop_strings": 8,
    "stop_chars": 64,
    "training_chars": 16384,
}


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
    check_bounds(meta, tensors, backbone_cfg)
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
    check_bounds(meta, tensors, backbone_cfg, where)
    check_readout(out, tensors, where)
    kvf = decode_kv(tensors)
    if not torch.isfinite(kvf).all():
        raise AdapterError(f"{where}: kv_prefix holds NaN or inf")
    return kvf, out, tensors


def check_bounds(
    meta: dict, tensors: dict[str, torch.Tensor], backbone_cfg: dict | None, where: str = "adapter"
) -> None:
    """meta as stored (JSON fields as strings) within BOUNDS; token ids in the backbone's vocabulary when it is given."""
    B = BOUNDS

    def bad(why):
        return AdapterError(f"{where}: {why}")

    def whole(x, lo, hi):
        return type(x) is int and lo <= x <= hi

    for name in tensors:
        if name not in TENSORS:
            raise bad(f"unexpected tensor {name!r}")
    if not whole(int(meta["num_virtual_tokens"]), 0, B["virtual_tokens"]):
        raise bad(f"num_virtual_tokens {meta['num_virtual_tokens']} must be from 0 to {B['virtual_tokens']}")
    for name, ok in (("kv_prefix", DTYPES.values()), ("head_weight", DTYPES.values()), ("bag_weight", DTYPES.values())):
        if name in tensors and tensors[name].dtype not in ok:
            raise bad(f"{name} is {str(tensors[name].dtype).replace('torch.', '')}, not float16, float32 or int8")
    if "head_bias" in tensors and tensors["head_bias"].dtype not in (torch.float16, torch.float32):
        raise bad("head_bias must be float16 or float32")
    template, field = meta["template"], "{text}" if meta["task"] == "classify" else "{input}"
    if len(template) > B["template_chars"]:
        raise bad(f"template longer than {B['template_chars']} characters")
    if template.count(field) != 1:
        raise bad(f"a {meta['task']} template holds {field} exactly once")
    if len(meta.get("training") or "") > B["training_chars"]:
        raise bad(f"metadata training longer than {B['training_chars']} characters")
    training = json.loads(meta.get("training") or "{}")
    if not isinstance(training, dict) or ("max_tokens" in training and not whole(training["max_tokens"], 1, 1 << 16)):
        raise bad("training must be a JSON object whose max_tokens is a whole number >= 1")
    generation = json.loads(meta.get("generation") or "{}")
    if isinstance(generation, dict):
        stop = generation.get("stop", [])
        if not (
            isinstance(stop, list)
            and len(stop) <= B["stop_strings"]
            and all(isinstance(x, str) and 1 <= len(x) <= B["stop_chars"] for x in stop)
        ):
            raise bad(
                f"generation.stop must be at most {B['stop_strings']} strings of 1 to {B['stop_chars']} characters"
            )
        if "max_new_tokens" in generation and not whole(generation["max_new_tokens"], 1, 1 << 16):
            raise bad("generation.max_new_tokens must be a whole number >= 1")
    vocab = (backbone_cfg or {}).get("vocab_size")
    check_labels(json.loads(meta["labels"] or "[]"), "head_weight" in tensors, vocab, where)
    ids = tensors.get("bag_ids")
    if vocab is not None and ids is not None and ids.numel() and not (0 <= int(ids.min()) and int(ids.max()) < vocab):
        raise bad(f"bag_ids must lie in the vocabulary (0 to {vocab - 1})")
    parsed = sum(
        tensors[n].numel() for n in ("kv_prefix", "head_weight", "head_bias", "bag_weight", "bag_ids") if n in tensors
    )
    strings = sum(len(meta.get(k) or "") for k in ("labels", "template", "training", "generation"))
    if 4 * parsed + 2 * strings > B["memory_bytes"]:
        raise bad(
            f"the parsed adapter would take {4 * parsed + 2 * strings} bytes, over the {B['memory_bytes']} one adapter may"
        )


def check_labels(labels, head: bool, vocab: int | None, where: str) -> None:
    """Names unique and short; a verbalizer's words and token ids bounded (and in the vocabulary); a head's none."""
    B = BOUNDS

    def bad(why):
        return AdapterError(f"{where}: labels: {why}")

    if not isinstance(labels, list):
        raise bad("not a JSON array")
    if len(labels) > B["labels"]:
        raise bad(f"{len(labels)} labels, over {B['labels']}")
    names, tokens = set(), 0
    for lab in labels:
        name = lab.get("name") if isinstance(lab, dict) else None
        if not isinstance(name, str) or not 1 <= len(name) <= B["label_chars"]:
            raise bad(f"a name must be 1 to {B['label_chars']} characters")
        if name in names:
            raise bad(f"{name!r} twice")
        names.add(name)
        words, ids = lab.get("words") or [], lab.get("token_ids") or []
        if head and (words or ids):
            raise bad(f"{name}: a head adapter's labels carry no words or token_ids")
        if len(words) > B["label_words"] or len(ids) > B["label_words"]:
            raise bad(f"{name}: more than {B['label_words']} words")
        if not all(isinstance(w, str) and len(w) <= B["label_chars"] for w in words):
            raise bad(f"{name}: a word must be a string of at most {B['label_chars']} characters")
        for w in ids:
            if not isinstance(w, list) or len(w) > B["word_tokens"]:
                raise bad(f"{name}: a word's token_ids must be a list of at most {B['word_tokens']}")
            if not all(type(t) is int and t >= 0 and (vocab is None or t < vocab) for t in w):
                raise bad(f"{name}: token ids must be whole numbers in the vocabulary")
            tokens += len(w)
    if tokens > B["label_tokens"]:
        raise bad(f"{tokens} label tokens in all, over {B['label_tokens']}")


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

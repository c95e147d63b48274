"""Export a backbone to ONNX with the KV-cache contract of ARCHITECTURE.md.

inputs   input_ids [B,T] int64, attention_mask [B,S+T] int64, position_ids [B,T] int64,
         past_key_values.{i}.key / .value [B,kvH,S,D] float32
outputs  logits [B,T,V] (or [B,1,V] with last_only), present.{i}.key / .value [B,kvH,S+T,D],
         hidden_states [B,T,d] (the final norm's output at every input position: classification heads read it)

These are the names Optimum and transformers.js use, so a decoder exported by standard tools can serve too.
"""
from __future__ import annotations

import io
from pathlib import Path

import onnx
import torch

from softedge.backbone.model import Transformer

OPSET = 17


class _OnnxWrapper(torch.nn.Module):
    def __init__(self, model: Transformer, last_only: bool):
        super().__init__()
        self.model, self.last_only = model, last_only

    def forward(self, input_ids, attention_mask, position_ids, *past):
        pkv = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
        h, presents = self.model.hidden_states(input_ids, attention_mask, position_ids, pkv)
        logits = self.model.logits(h[:, -1:] if self.last_only else h)
        return (logits, *[t for kv in presents for t in kv], h)


def io_names(n_layer: int) -> tuple[list[str], list[str]]:
    ins = ["input_ids", "attention_mask", "position_ids"]
    outs = ["logits"]
    for i in range(n_layer):
        ins += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
        outs += [f"present.{i}.key", f"present.{i}.value"]
    return ins, outs + ["hidden_states"]


def export(model: Transformer, last_only: bool = True) -> onnx.ModelProto:
    """Trace the model with S=2 past slots and T=3 new tokens (both dynamic in the graph)."""
    cfg = model.cfg
    model = model.eval().float()
    B, S, T = 2, 2, 3
    ids = torch.randint(0, cfg.vocab_size, (B, T))
    mask = torch.ones(B, S + T, dtype=torch.long)
    pos = torch.arange(S, S + T)[None].expand(B, T).contiguous()
    past = []
    for _ in range(cfg.n_layer):
        past += [torch.zeros(B, cfg.n_kv_head, S, cfg.head_dim), torch.zeros(B, cfg.n_kv_head, S, cfg.head_dim)]
    ins, outs = io_names(cfg.n_layer)
    dyn = {
        "input_ids": {0: "batch", 1: "seq"},
        "attention_mask": {0: "batch", 1: "total_seq"},
        "position_ids": {0: "batch", 1: "seq"},
        "logits": {0: "batch", 1: "logit_seq"},
        "hidden_states": {0: "batch", 1: "seq"},
    }
    for n in ins[3:]:
        dyn[n] = {0: "batch", 2: "past_seq"}
    for n in outs[1:-1]:
        dyn[n] = {0: "batch", 2: "total_seq"}
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            _OnnxWrapper(model, last_only),
            (ids, mask, pos, *past),
            buf,
            input_names=ins,
            output_names=outs,
            dynamic_axes=dyn,
            opset_version=OPSET,
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    dedupe_transposed_initializers(proto)
    onnx.checker.check_model(proto)
    return proto


def dedupe_transposed_initializers(proto: onnx.ModelProto) -> int:
    """Tied embeddings export as two initializers (E and E^T after constant folding). Keep E and compute E^T
    with a Transpose node, so the table is stored once. Returns the number of initializers replaced."""
    from onnx import numpy_helper

    g = proto.graph
    gathered = {n.input[0] for n in g.node if n.op_type == "Gather"}
    arrays = {i.name: numpy_helper.to_array(i) for i in g.initializer if len(i.dims) == 2 and i.name not in gathered}
    tables = {i.name: numpy_helper.to_array(i) for i in g.initializer if len(i.dims) == 2 and i.name in gathered}
    drop = {}
    for name, a in arrays.items():  # a MatMul weight that is the transpose of a Gather table
        for tname, t in tables.items():
            if a.size >= 4096 and a.shape == t.shape[::-1] and (t.T == a).all():
                drop[name] = tname
                break
    if drop:
        keep = [onnx.TensorProto.FromString(i.SerializeToString()) for i in g.initializer if i.name not in drop]
        del g.initializer[:]
        g.initializer.extend(keep)
        for name, tname in drop.items():
            g.node.insert(
                0, onnx.helper.make_node("Transpose", [tname], [name], name=f"transpose_{tname}", perm=[1, 0])
            )
    return len(drop)


def save(proto: onnx.ModelProto, path: Path) -> None:
    from softedge.common import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())

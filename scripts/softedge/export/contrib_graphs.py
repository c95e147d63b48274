"""One-node graphs of ONNX Runtime's contrib operators for Llama-style decoders (the ones its own model builders
emit), at the default backbone's sizes, so `npm run check:ops` can try each in the wasm build the worker runs:

    scripts/py contrib_graphs --out DIR

Writes DIR/<op>.onnx and DIR/index.json (each graph's inputs: name, type, shape). Sizes: batch 1, 16 tokens,
hidden 256, 8 heads of 32, 4 KV heads, MLP 704, 8 past positions.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from softedge.common import run_cli, write_json

MS = "com.microsoft"
B, S, D, H, KV, HD, FF, P, MAXPOS = 1, 16, 256, 8, 4, 32, 704, 8, 64
F, I64, I32, U8 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.UINT8


def _graph(op, inputs, outputs, inits=(), domain=MS, **attrs):
    node = helper.make_node(
        op, [i[0] for i in inputs] + [t.name for t in inits], [o[0] for o in outputs], domain=domain, **attrs
    )
    g = helper.make_graph(
        [node],
        op,
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
        list(inits),
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(MS, 1)])
    m.ir_version = 8
    return m, [
        {"name": n, "type": {F: "float32", I64: "int64", I32: "int32", U8: "uint8"}[t], "dims": s} for n, t, s in inputs
    ]


def graphs() -> dict:
    rng = np.random.default_rng(0)
    w = lambda name, *shape: numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)  # noqa: E731
    half = HD // 2
    ang = np.arange(MAXPOS)[:, None] / (10000.0 ** (np.arange(half) / half))[None, :]
    cos = numpy_helper.from_array(np.cos(ang).astype(np.float32), "cos_cache")
    sin = numpy_helper.from_array(np.sin(ang).astype(np.float32), "sin_cache")
    u8 = lambda name, *shape: numpy_helper.from_array(
        rng.integers(0, 256, size=shape).astype(np.uint8), name
    )  # noqa: E731
    out = {}
    out["SimplifiedLayerNormalization"] = _graph(
        "SimplifiedLayerNormalization",
        [("x", F, [B, S, D])],
        [("y", F)],
        [w("scale", D)],
        domain="",
        axis=-1,
        epsilon=1e-5,
    )
    out["SkipSimplifiedLayerNormalization"] = _graph(
        "SkipSimplifiedLayerNormalization",
        [("x", F, [B, S, D]), ("skip", F, [B, S, D])],
        [("y", F)],
        [w("gamma", D)],
        epsilon=1e-5,
    )
    out["RotaryEmbedding"] = _graph(
        "RotaryEmbedding",
        [("x", F, [B, H, S, HD]), ("position_ids", I64, [B, S])],
        [("y", F)],
        [cos, sin],
        interleaved=0,
    )
    out["GroupQueryAttention"] = _graph(
        "GroupQueryAttention",
        [
            ("query", F, [B, S, H * HD]),
            ("key", F, [B, S, KV * HD]),
            ("value", F, [B, S, KV * HD]),
            ("past_key", F, [B, KV, P, HD]),
            ("past_value", F, [B, KV, P, HD]),
            ("seqlens_k", I32, [B]),
            ("total_sequence_length", I32, []),
        ],
        [("output", F), ("present_key", F), ("present_value", F)],
        num_heads=H,
        kv_num_heads=KV,
    )
    out["MultiHeadAttention"] = _graph(
        "MultiHeadAttention",
        [("query", F, [B, S, H * HD]), ("key", F, [B, S, H * HD]), ("value", F, [B, S, H * HD])],
        [("output", F)],
        num_heads=H,
    )
    for bits in (4, 8):
        bs = 32
        out[f"MatMulNBits-{bits}bit"] = _graph(
            "MatMulNBits",
            [("a", F, [B * S, D])],
            [("y", F)],
            [u8("b", FF, D // bs, bs * bits // 8), w("scales", FF * (D // bs))],
            K=D,
            N=FF,
            bits=bits,
            block_size=bs,
        )
    out["MatMulIntegerToFloat"] = _graph(
        "MatMulIntegerToFloat",
        [("a", U8, [B * S, D])],
        [("y", F)],
        [
            numpy_helper.from_array(rng.integers(-127, 128, size=(D, FF)).astype(np.int8), "b"),
            numpy_helper.from_array(np.array(0.02, np.float32), "a_scale"),
            numpy_helper.from_array(np.full(FF, 0.01, np.float32), "b_scale"),
            numpy_helper.from_array(np.array(128, np.uint8), "a_zero_point"),
        ],
    )
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    index = {}
    for name, (model, inputs) in graphs().items():
        onnx.save(model, str(a.out / f"{name}.onnx"))
        index[name] = {"file": f"{name}.onnx", "inputs": inputs}
    write_json(a.out / "index.json", index)
    print(f"wrote {len(index)} graphs to {a.out}")


if __name__ == "__main__":
    run_cli(main)

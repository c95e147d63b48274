"""ONNX Runtime's load-time graph optimisations, done once when the bundle is built.

A cold edge isolate used to spend most of its first answer creating the backbone's session: ONNX Runtime folded
~300 constants, merged repeated subexpressions and fused RMSNorm, SiLU and the attention scores (level "all") in
wasm, on code that had not warmed up yet. Here onnxruntime-node does that work at level "extended" (scripts/
optimize-graph.mjs); the constants it folded out of int8 weights (o_proj and down_proj's dequantised fp32 copies,
the transposed uint8 vocabulary matrix) are put back as the small constant subgraphs they came from, so the file
stays int8 and the edge's "basic" level folds only those at load. The result must answer bit-identically to the
original graph in onnxruntime-web, the edge's build; where it does not (native fusions the wasm build lacks, e.g.
on a DequantizeLinear graph) or node is missing, NotPreoptimized says why and the bundle keeps the exported graph.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import onnx

from softedge.common import ROOT

OFFLINE_LEVEL = "extended"  # "all" adds layouts for the building machine's CPU
LOAD_LEVEL = "basic"  # what the edge loads a pre-optimised graph with: constant folding of the restored subgraphs


class NotPreoptimized(Exception):
    """The graph could not be pre-optimised safely; the message says why."""


def unfold_constants(optimized: onnx.ModelProto, raw: onnx.ModelProto) -> int:
    """Replace each initializer ONNX Runtime computed from the raw graph's nodes (a folded constant, e.g. an int8
    weight dequantised to fp32) by the raw subgraph that computes it; 1-D ones (shapes, scales) stay folded. Returns
    the number of constants restored."""
    raw_inits = {i.name: i for i in raw.graph.initializer}
    producer = {o: n for n in raw.graph.node for o in n.output}
    have = {i.name for i in optimized.graph.initializer}
    nodes, inits, folded = [], {}, set()

    def pull(name: str) -> None:
        if name in raw_inits:
            if name not in have:
                inits[name] = raw_inits[name]
            return
        node = producer[name]
        for i in node.input:
            if i:
                pull(i)
        if all(node is not n for n in nodes):
            nodes.append(node)

    for init in optimized.graph.initializer:
        if init.name not in raw_inits and len(init.dims) >= 2 and init.name in producer:
            folded.add(init.name)
            pull(init.name)
    kept = [i for i in optimized.graph.initializer if i.name not in folded]
    del optimized.graph.initializer[:]
    optimized.graph.initializer.extend(kept + list(inits.values()))
    rest = list(optimized.graph.node)
    del optimized.graph.node[:]
    optimized.graph.node.extend(nodes + rest)  # the restored nodes read initializers only: first is topological
    return len(folded)


def _node(*args: str) -> str:
    node = shutil.which("node")
    if node is None:
        raise NotPreoptimized("no node on PATH (scripts/setup.sh installs it)")
    r = subprocess.run(
        [node, str(ROOT / "scripts/optimize-graph.mjs"), *args], capture_output=True, text=True, cwd=ROOT
    )
    if r.returncode == 2 or (r.returncode and not r.stdout.strip()):
        raise NotPreoptimized(f"optimize-graph.mjs {args[0]}: {(r.stderr.strip().splitlines() or ['failed'])[-1]}")
    return r.stdout.strip().splitlines()[-1]


def preoptimize(model_bytes: bytes, kv_heads: int, head_dim: int, vocab: int) -> tuple[bytes, dict]:
    """(the pre-optimised graph's bytes, what config.json records about it)."""
    raw = onnx.load_from_string(model_bytes)
    with tempfile.TemporaryDirectory(prefix="softedge-preopt-") as d:
        raw_path, opt_path, out_path = (os.path.join(d, n) for n in ("raw.onnx", "opt.onnx", "model.onnx"))
        Path(raw_path).write_bytes(model_bytes)
        ort_version = json.loads(_node("optimize", raw_path, opt_path))["ort"]
        opt = onnx.load(opt_path)
        restored = unfold_constants(opt, raw)
        out = opt.SerializeToString()
        Path(out_path).write_bytes(out)
        check = json.loads(_node("verify", raw_path, out_path, str(kv_heads), str(head_dim), str(vocab)))
    if check["max_abs_diff"] != 0:
        raise NotPreoptimized(
            f"ONNX Runtime's optimised graph answers up to {check['max_abs_diff']:g} away from the exported one "
            "in onnxruntime-web"
        )
    info = {
        "offline": OFFLINE_LEVEL,
        "at_load": LOAD_LEVEL,
        "by": f"onnxruntime-node {ort_version}",
        "nodes": [len(raw.graph.node), len(opt.graph.node)],
        "constants_restored": restored,
    }
    return out, info

"""ONNX Runtime's load-time graph optimisations, done once when the bundle is built.

A cold edge isolate used to spend most of its first answer creating the backbone's session: ONNX Runtime folded
~300 constants, merged repeated subexpressions and fused RMSNorm, SiLU and the attention scores (level "all") in
wasm, on code that had not warmed up yet. Here onnxruntime-node does that work at level "extended" (scripts/
optimize-graph.mjs); the constants it folded out of int8 weights (o_proj and down_proj's dequantised fp32 copies,
the transposed uint8 vocabulary matrix) are put back as the small constant subgraphs they came from, so the file
stays int8 and the edge's "basic" level folds only those at load. The result must answer bit-identically to the
original graph in onnxruntime-web, the edge's build, on four batch shapes, and must not be larger than the export;
where either fails (a DequantizeLinear graph, whose weights ORT re-blocks into new constants, is refused on size), or
node is missing, NotPreoptimized says why and the bundle keeps the exported graph. The graph and so the bundle id
depend on the onnxruntime-node version (pinned in package.json); config.json records it and the export's sha256.
"""
from __future__ import annotations

import hashlib
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
    weight dequantised to fp32) by the raw subgraph that computes it; 1-D ones (shapes, scales) stay folded, and so
    does one whose subgraph reaches a graph input (a shape ORT knew statically) or would redefine a name the
    optimised graph already has. Returns the number of constants restored."""
    raw_inits = {i.name: i for i in raw.graph.initializer}
    producer = {o: n for n in raw.graph.node for o in n.output}
    have = {i.name for i in optimized.graph.initializer}
    defined = have | {o for n in optimized.graph.node for o in n.output} | {i.name for i in optimized.graph.input}

    restore, bring, folded = {}, {}, set()  # restore, and each chain's nodes: id(node) -> node, in the order found

    def chain(name: str, nodes: dict, inits: dict, root: bool = False) -> bool:
        """Collect the raw nodes and initializers that compute `name` from initializers alone; False if impossible.
        `root`: the folded constant itself, an initializer now, to be computed again."""
        if not root and (name in have or name in raw_inits):  # already there, or an initializer to bring back
            if name not in have:
                inits[name] = raw_inits[name]
            return True
        node = producer.get(name)
        if node is not None and id(node) in restore:
            return True  # shared with a constant restored before
        if node is None or any(o in defined for o in node.output):
            return False  # a graph input, or a node whose outputs the optimised graph defines already
        if not all(chain(i, nodes, inits) for i in node.input if i):
            return False
        nodes.setdefault(id(node), node)
        return True

    for init in optimized.graph.initializer:
        if init.name not in raw_inits and len(init.dims) >= 2 and init.name in producer:
            nodes, inits = {}, {}
            defined.discard(init.name)  # its own producer may define it once it is no longer an initializer
            if chain(init.name, nodes, inits, root=True):
                folded.add(init.name)
                restore.update(nodes)
                bring.update(inits)
                defined.update(o for n in nodes.values() for o in n.output)
            else:
                defined.add(init.name)
    kept = [i for i in optimized.graph.initializer if i.name not in folded]
    del optimized.graph.initializer[:]
    optimized.graph.initializer.extend(kept + list(bring.values()))
    rest = list(optimized.graph.node)
    del optimized.graph.node[:]
    order = {id(n): i for i, n in enumerate(raw.graph.node)}  # the exported graph's order is topological
    restored = sorted(restore.values(), key=lambda n: order[id(n)])
    optimized.graph.node.extend(restored + rest)  # the restored nodes read initializers and each other only
    return len(folded)


def _node(*args: str) -> str:
    node = shutil.which("node")
    if node is None:
        raise NotPreoptimized("no node on PATH (scripts/setup.sh installs it)")
    try:
        r = subprocess.run(
            [node, str(ROOT / "scripts/optimize-graph.mjs"), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=900,
        )
    except subprocess.TimeoutExpired:
        raise NotPreoptimized(f"optimize-graph.mjs {args[0]}: no answer in 15 minutes") from None
    if r.returncode == 2 or (r.returncode and not r.stdout.strip()):
        raise NotPreoptimized(f"optimize-graph.mjs {args[0]}: {(r.stderr.strip().splitlines() or ['failed'])[-1]}")
    return r.stdout.strip().splitlines()[-1]


def preoptimize(model_bytes: bytes, kv_heads: int, head_dim: int, vocab: int) -> tuple[bytes, dict]:
    """(the pre-optimised graph's bytes, what config.json records about it); NotPreoptimized says why not."""
    raw = onnx.load_from_string(model_bytes)
    with tempfile.TemporaryDirectory(prefix="softedge-preopt-") as d:
        raw_path, opt_path, out_path = (os.path.join(d, n) for n in ("raw.onnx", "opt.onnx", "model.onnx"))
        Path(raw_path).write_bytes(model_bytes)
        ort_version = json.loads(_node("optimize", raw_path, opt_path))["ort"]
        # an optimisation, not a requirement: any surprise in ORT's graph means "keep the export"
        try:
            opt = onnx.load(opt_path)
            restored = unfold_constants(opt, raw)
            out = opt.SerializeToString()
        except Exception as e:
            raise NotPreoptimized(f"restoring the folded constants: {type(e).__name__}: {e}") from None
        if len(out) > len(model_bytes):  # e.g. ORT's own re-blocked int8 weights beside a DequantizeLinear graph's
            raise NotPreoptimized(
                f"ONNX Runtime's graph stores new constants: {len(out):,} bytes against the export's {len(model_bytes):,}"
            )
        Path(out_path).write_bytes(out)
        check = json.loads(_node("verify", raw_path, out_path, str(kv_heads), str(head_dim), str(vocab)))
    if check["max_abs_diff"] != 0:
        raise NotPreoptimized(
            f"ONNX Runtime's optimised graph answers up to {check['max_abs_diff']} away from the exported one "
            "in onnxruntime-web"
        )
    info = {
        "offline": OFFLINE_LEVEL,
        "at_load": LOAD_LEVEL,
        "by": f"onnxruntime-node {ort_version}",
        "exported_sha256": hashlib.sha256(model_bytes).hexdigest(),  # the graph before: which export this came from
        "nodes": [len(raw.graph.node), len(opt.graph.node)],
        "constants_restored": restored,
    }
    return out, info

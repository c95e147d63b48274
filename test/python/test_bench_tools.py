"""The benchmark's offline helpers: the roofline's matrix-multiply graphs, the contrib-operator graphs and the plots."""
import json

import numpy as np
import onnx
from conftest import run_module

from softedge.export.contrib_graphs import graphs
from softedge.export.matmul_graph import matmul_graph


def test_matmul_graph_shapes_and_op():
    for dtype, op, b_type in (("float32", "MatMul", np.float32), ("int8", "MatMulInteger", np.int8)):
        m = matmul_graph(8, 16, 24, dtype)
        assert [n.op_type for n in m.graph.node] == [op]
        b = onnx.numpy_helper.to_array(next(i for i in m.graph.initializer if i.name == "B"))
        assert b.shape == (16, 24) and b.dtype == b_type
        assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [8, 16]


def test_matmul_graph_cli_refuses_bad_input(tmp_path):
    r = run_module("matmul_graph", "--m", "0", "--k", "4", "--n", "4", "--out", tmp_path / "g.onnx")
    assert r.returncode == 2 and "must be positive" in r.stderr and not (tmp_path / "g.onnx").exists()
    r = run_module("matmul_graph", "--m", "2", "--k", "4", "--n", "4", "--dtype", "int4", "--out", tmp_path / "g.onnx")
    assert r.returncode == 2 and "unknown dtype" in r.stderr


def test_contrib_graphs_one_node_each_in_the_microsoft_domain():
    g = graphs()
    assert {"GroupQueryAttention", "RotaryEmbedding", "SkipSimplifiedLayerNormalization", "MatMulNBits-4bit"} <= set(g)
    for name, (model, inputs) in g.items():
        (node,) = model.graph.node
        assert name.split("-")[0] == node.op_type
        assert [i["name"] for i in inputs] == [i.name for i in model.graph.input]


def test_bench_plots_write_three_pngs_and_refuse_an_old_results_file(tmp_path):
    results = {
        "backbone": "b",
        "classify": [{"tokens": t, "workerd": 2.0 * t, "native": t, "engine": 1.5 * t, "eager": t} for t in (16, 64)],
        "throughput": [{"items": n, "workerd": 10.0 * n, "native": 2.0 * n} for n in (1, 4)],
        "generation": [{"tokens": "2-8", "workerd": 1.8, "native": 2.0}],
    }
    (tmp_path / "r.json").write_text(json.dumps(results))
    r = run_module("bench_plots", tmp_path / "r.json", "--out", tmp_path / "plots")
    assert r.returncode == 0, r.stderr
    for name in ("latency", "throughput", "generation"):
        assert (tmp_path / "plots" / f"bench-{name}.png").read_bytes()[:4] == b"\x89PNG"
    del results["throughput"]
    (tmp_path / "old.json").write_text(json.dumps(results))
    r = run_module("bench_plots", tmp_path / "old.json", "--out", tmp_path / "plots2")
    assert r.returncode == 2 and "lacks throughput" in r.stderr and not (tmp_path / "plots2").exists()

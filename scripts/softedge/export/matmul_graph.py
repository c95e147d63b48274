"""A one-node matrix-multiply graph for the benchmark's roofline (npm run bench measures its peak inside workerd):

    scripts/py matmul_graph --m 1024 --k 256 --n 704 --dtype float32|int8 --out GRAPH.onnx

float32: Y = MatMul(A[m, k], B) with B a constant [k, n]; int8: Y = MatMulInteger(A[m, k] uint8, B int8, 128), the
backbone's own integer kernel. Prints the graph's multiply-add count.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from softedge.common import CliError, atomic_path, run_cli


def matmul_graph(m: int, k: int, n: int, dtype: str) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    if dtype == "float32":
        b = numpy_helper.from_array(rng.normal(size=(k, n)).astype(np.float32), "B")
        node, a_type, y_type, inits = (
            helper.make_node("MatMul", ["A", "B"], ["Y"]),
            TensorProto.FLOAT,
            TensorProto.FLOAT,
            [b],
        )
    elif dtype == "int8":
        b = numpy_helper.from_array(rng.integers(-127, 128, size=(k, n)).astype(np.int8), "B")
        zp = numpy_helper.from_array(np.array(128, np.uint8), "zp")
        node = helper.make_node("MatMulInteger", ["A", "B", "zp"], ["Y"])
        a_type, y_type, inits = TensorProto.UINT8, TensorProto.INT32, [b, zp]
    else:
        raise CliError(f"unknown dtype {dtype!r} (float32 or int8)")
    graph = helper.make_graph(
        [node],
        f"matmul_{dtype}",
        [helper.make_tensor_value_info("A", a_type, [m, k])],
        [helper.make_tensor_value_info("Y", y_type, [m, n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for d in ("m", "k", "n"):
        ap.add_argument(f"--{d}", type=int, required=True)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    if min(a.m, a.k, a.n) < 1:
        raise CliError("--m, --k and --n must be positive")
    model = matmul_graph(a.m, a.k, a.n, a.dtype)
    with atomic_path(a.out, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
    print(f"wrote {a.out}: {a.dtype} [{a.m}, {a.k}] x [{a.k}, {a.n}], {a.m * a.k * a.n:,} multiply-adds")


if __name__ == "__main__":
    run_cli(main)

"""Bundles carry a graph that ONNX Runtime optimised when the bundle was built (export/preoptimize.py): int8 weights
stay int8 on file, the answers stay bit-identical in the edge's wasm build, and a graph that answers differently is
refused."""
import hashlib
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from softedge.backbone.checkpoint import save_weights
from softedge.backbone.model import ModelConfig, Transformer
from softedge.export import export_onnx, preoptimize, quantize
from softedge.export.bundle import build

CFG = dict(arch="llama", vocab_size=400, n_layer=2, n_head=4, n_kv_head=2, d_model=32, d_ff=64, max_positions=128)


def tiny(seed: int) -> Transformer:
    torch.manual_seed(seed)
    m = Transformer(ModelConfig(**CFG)).eval()
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 2:
                p.mul_(5.0)
    return m


def float_matrices(proto: onnx.ModelProto) -> dict[str, tuple]:
    return {i.name: tuple(i.dims) for i in proto.graph.initializer if len(i.dims) >= 2 and i.data_type == 1}


@pytest.mark.parametrize("scheme", ["weight-only", "dynamic-row-mixed-i8head"])
def test_bundle_is_preoptimised_and_keeps_int8_weights(tmp_path, tiny_tokenizer, scheme):
    save_weights(tiny(0), tmp_path / "w.safetensors")
    pre = build(tmp_path / "w.safetensors", tiny_tokenizer, tmp_path / "a", "tiny", scheme, True)
    raw = build(tmp_path / "w.safetensors", tiny_tokenizer, tmp_path / "b", "tiny", scheme, True, preoptimize=False)
    cfg, raw_cfg = (json.loads((d / "config.json").read_text()) for d in (pre, raw))
    assert cfg["ort_optimization"]["offline"] == "extended" and cfg["ort_optimization"]["at_load"] == "basic"
    assert "ort_optimization" not in raw_cfg and cfg["id"] != raw_cfg["id"]  # the id follows model.onnx
    g, r = onnx.load(pre / "model.onnx"), onnx.load(raw / "model.onnx")
    assert len(g.graph.node) < len(r.graph.node)
    ops = {n.op_type for n in g.graph.node}
    assert "SimplifiedLayerNormalization" in ops and "Constant" not in ops  # fused and folded offline
    # no fp32 copy of an int8 weight on file: every float matrix is one the exported graph already had
    assert set(float_matrices(g)) <= set(float_matrices(r))
    assert (pre / "model.onnx").stat().st_size <= (raw / "model.onnx").stat().st_size
    assert cfg["ort_optimization"]["constants_restored"] > 0


def test_unfold_puts_back_the_constant_subgraph():
    raw = quantize.quantize(export_onnx.export(tiny(0)), "weight-only")
    weights = {i.name: tuple(i.dims) for i in raw.graph.initializer}
    made = {n.output[0]: n for n in raw.graph.node}
    # a weight-only matrix: Mul(Cast(int8 initializer), scale)
    mul = next(
        n for n in raw.graph.node if n.op_type == "Mul" and n.input[0] in made and made[n.input[0]].input[0] in weights
    )
    cast = made[mul.input[0]]
    int8 = cast.input[0]
    # what ONNX Runtime leaves: the Cast+Mul folded into an fp32 value, the int8 weight gone with it
    opt = onnx.ModelProto.FromString(raw.SerializeToString())
    keep = [n for n in opt.graph.node if n.output[0] not in (mul.output[0], cast.output[0])]
    del opt.graph.node[:]
    opt.graph.node.extend(keep)
    inits = [i for i in opt.graph.initializer if i.name != int8]
    shape = weights[int8]
    del opt.graph.initializer[:]
    opt.graph.initializer.extend(inits + [numpy_helper.from_array(np.ones(shape, np.float32), mul.output[0])])
    assert preoptimize.unfold_constants(opt, raw) == 1
    made_by = {n.output[0]: n.op_type for n in opt.graph.node}
    assert made_by[mul.output[0]] == "Mul" and made_by[cast.output[0]] == "Cast"
    names = {i.name for i in opt.graph.initializer}
    assert int8 in names and mul.output[0] not in names
    onnx.checker.check_model(opt)


def test_verify_refuses_a_graph_that_answers_differently(tmp_path):
    a, b = (quantize.quantize(export_onnx.export(tiny(s)), "weight-only") for s in (0, 1))
    (tmp_path / "a.onnx").write_bytes(a.SerializeToString())
    (tmp_path / "b.onnx").write_bytes(b.SerializeToString())
    out = json.loads(preoptimize._node("verify", str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"), "2", "8", "400"))
    assert out["max_abs_diff"] > 0
    pre, info = preoptimize.preoptimize(a.SerializeToString(), 2, 8, 400)
    (tmp_path / "pre.onnx").write_bytes(pre)
    same = json.loads(
        preoptimize._node("verify", str(tmp_path / "a.onnx"), str(tmp_path / "pre.onnx"), "2", "8", "400")
    )
    assert same == {"outputs": 6, "shapes": 4, "max_abs_diff": 0}  # logits, 2 layers x key/value, hidden states
    assert info["exported_sha256"] == hashlib.sha256(a.SerializeToString()).hexdigest()
    with pytest.raises(preoptimize.NotPreoptimized, match="KV_HEADS"):
        preoptimize._node("verify", str(tmp_path / "a.onnx"), str(tmp_path / "a.onnx"), "x", "8", "400")


def test_a_graph_that_fails_the_check_is_bundled_as_exported(tmp_path, tiny_tokenizer, capsys, monkeypatch):
    def differs(*_):
        raise preoptimize.NotPreoptimized("answers up to 0.5 away")

    monkeypatch.setattr(preoptimize, "preoptimize", differs)  # the check's own refusal is tested above
    save_weights(tiny(0), tmp_path / "w.safetensors")
    b = build(tmp_path / "w.safetensors", tiny_tokenizer, tmp_path / "a", "tiny", "weight-only", True)
    assert "ort_optimization" not in json.loads((b / "config.json").read_text())
    assert "warning: model.onnx kept as exported, not pre-optimised: answers up to 0.5 away" in capsys.readouterr().err


def _graph(nodes, inits, inputs=("x",), outputs=("y",)):
    from onnx import TensorProto, helper

    vi = lambda n: helper.make_tensor_value_info(n, TensorProto.FLOAT, ["a", "b"])  # noqa: E731
    g = helper.make_graph(nodes, "g", [vi(i) for i in inputs], [vi(o) for o in outputs], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_unfold_leaves_folded_what_reaches_an_input_or_is_still_read():
    from onnx import TensorProto, helper

    f32 = lambda a, n: numpy_helper.from_array(np.asarray(a, np.float32), n)  # noqa: E731
    # a 2-D constant ORT computed from an input's static shape: its subgraph starts at x, so it stays folded
    raw = _graph(
        [
            helper.make_node("Shape", ["x"], ["sh"]),
            helper.make_node(
                "ConstantOfShape", ["sh"], ["c"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1])
            ),
            helper.make_node("Add", ["x", "c"], ["y"]),
        ],
        [],
    )
    opt = _graph([helper.make_node("Add", ["x", "c"], ["y"])], [f32(np.ones((2, 3)), "c")])
    assert preoptimize.unfold_constants(opt, raw) == 0 and [i.name for i in opt.graph.initializer] == ["c"]
    # w = Cast(q) * s where Cast(q) is also read by a live node, so ORT keeps both as initializers: both come back,
    # in the exported order, each defined once
    q = numpy_helper.from_array(np.ones((2, 3), np.int8), "q")
    cast = helper.make_node("Cast", ["q"], ["qf"], to=TensorProto.FLOAT)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Add", ["qf", "qf"], ["z"])]
    raw = _graph([cast, helper.make_node("Mul", ["qf", "s"], ["w"]), *nodes], [q, f32([2.0], "s")], outputs=("y", "z"))
    opt = _graph(nodes, [f32(np.ones((3, 2)), "w"), f32(np.ones((2, 3)), "qf")], outputs=("y", "z"))
    assert preoptimize.unfold_constants(opt, raw) == 2
    assert [n.op_type for n in opt.graph.node] == ["Cast", "Mul", "MatMul", "Add"]
    assert sorted(i.name for i in opt.graph.initializer) == ["q", "s"]
    onnx.checker.check_model(opt)

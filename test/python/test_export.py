"""ONNX export, int8 quantisation and the bundle CLI on tiny models (ORT parity itself is checked from JS)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from softedge.export import export_onnx
from softedge.export import quantize
from softedge.backbone.checkpoint import save_weights
from softedge.backbone.model import ModelConfig, Transformer

ROOT = Path(__file__).resolve().parents[2]


def test_export_has_the_kv_cache_contract(tiny_model):
    p = export_onnx.export(tiny_model)
    L = tiny_model.cfg.n_layer
    ins, outs = [i.name for i in p.graph.input], [o.name for o in p.graph.output]
    assert ins[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert ins[3:] == [f"past_key_values.{i}.{kv}" for i in range(L) for kv in ("key", "value")]
    assert outs == ["logits"] + [f"present.{i}.{kv}" for i in range(L) for kv in ("key", "value")] + ["hidden_states"]
    dims = [d.dim_param or d.dim_value for d in p.graph.input[3].type.tensor_type.shape.dim]
    assert dims == ["batch", tiny_model.cfg.n_kv_head, "past_seq", tiny_model.cfg.head_dim]
    dims = [d.dim_param or d.dim_value for d in p.graph.output[-1].type.tensor_type.shape.dim]
    assert dims == ["batch", "seq", tiny_model.cfg.d_model]


def test_tied_embedding_is_stored_once(tiny_model):
    p = export_onnx.export(tiny_model)
    V, d = tiny_model.cfg.vocab_size, tiny_model.cfg.d_model
    big = [i for i in p.graph.initializer if sorted(i.dims) == sorted([V, d])]
    assert len(big) == 1


@pytest.mark.parametrize("scheme", quantize.SCHEMES)
def test_int8_graph_stores_int8_weights_and_is_smaller(tiny_model, scheme):
    fp = export_onnx.export(tiny_model)
    q = quantize.quantize(fp, scheme)
    onnx.checker.check_model(q)
    scales = {n.input[2] for n in q.graph.node if n.op_type in ("MatMulNBits", "GatherBlockQuantized")}
    floats = [
        i
        for i in q.graph.initializer
        if i.data_type == onnx.TensorProto.FLOAT and np.prod(i.dims) >= 1024 and i.name not in scales
    ]
    assert floats == [], [i.name for i in floats]
    stored = onnx.TensorProto.UINT8 if scheme == "weight-only-nbits" else onnx.TensorProto.INT8
    assert any(i.data_type == stored and np.prod(i.dims) >= 1024 for i in q.graph.initializer)
    weight_bytes = lambda m: sum(i.ByteSize() for i in m.graph.initializer)  # noqa: E731
    assert weight_bytes(q) < 0.4 * weight_bytes(fp)  # norms stay fp32; the rest is 4x smaller
    ops = {n.op_type for n in q.graph.node}
    assert ("DequantizeLinear" in ops) == (scheme == "weight-only-dql")
    assert ("MatMulInteger" in ops) == scheme.startswith("dynamic-row")
    if scheme in quantize.MIXED:  # o_proj and down_proj folded weight-only; q, k, v, gate, up dynamic
        weights = {i.name for i in fp.graph.initializer if np.prod(i.dims) >= quantize.MIN_ELEMENTS}  # the quantised
        module = {
            n.output[0]: n.name.split("/")[-2] for n in fp.graph.node if n.op_type == "MatMul" and n.input[1] in weights
        }
        made_by = {o: n.op_type for n in q.graph.node for o in n.output}  # dynamic: a rescaling Mul; folded: MatMul
        dynamic = {m for o, m in module.items() if made_by[o] == "Mul"}
        assert dynamic and dynamic <= {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj"}
        assert {m for o, m in module.items() if made_by[o] == "MatMul"} == {"o_proj", "down_proj"}
        # the tied head: MatMulNBits over the table, or (i8head) two integer matmuls over its transpose
        head_ops = {n.op_type for n in q.graph.node if n.output[0] == "logits" or "MatMulNBits" == n.op_type}
        assert ("MatMulNBits" in head_ops) == (scheme == "dynamic-row-mixed")
        integer = [n for n in q.graph.node if n.op_type == "MatMulInteger"]
        assert len(integer) == sum(made_by[o] == "Mul" for o in module) + 2 * (scheme == "dynamic-row-mixed-i8head")
    if scheme == "weight-only":  # Cast+Mul of constants only, so ORT folds them at load
        assert "DequantizeLinear" not in ops and "MatMulInteger" not in ops
    if scheme == "weight-only-nbits":  # weights stay uint8 in memory; no weight-sized Cast for ORT to fold
        assert {"MatMulNBits", "GatherBlockQuantized"} <= ops
        casts = {n.output[0] for n in q.graph.node if n.op_type == "Cast"}
        assert not [n.name for n in q.graph.node if n.op_type == "MatMul" and n.input[1] in casts]
    if scheme == "weight-only-nbits-embed":  # the table (and tied head) compressed, the other matrices folded
        assert "GatherBlockQuantized" in ops and "MatMulNBits" in ops
        casts = {n.output[0] for n in q.graph.node if n.op_type == "Cast"}
        assert any(n.op_type == "Mul" and n.input[0] in casts for n in q.graph.node)
    assert "DynamicQuantizeLinear" not in ops  # per-tensor activation scales would couple batch rows


@pytest.mark.parametrize("scheme", quantize.NBITS_TABLES)
def test_nbits_tied_head_shares_the_gather_table(tiny_model, scheme):
    q = quantize.quantize(export_onnx.export(tiny_model), scheme)
    gather = next(n for n in q.graph.node if n.op_type == "GatherBlockQuantized")
    # MatMulNBits over the table itself, or (i8head) the table reshaped for its transpose
    heads = [n for n in q.graph.node if n.op_type in ("MatMulNBits", "Reshape") and gather.input[0] in n.input]
    assert len(heads) == (1 if tiny_model.cfg.tie_embeddings else 0)


def test_nbits_block_divides_k():
    assert [quantize.nbits_block(k) for k in (256, 704, 128, 48)] == [256, 64, 128, 16]
    with pytest.raises(ValueError, match="divisible by 16"):
        quantize.nbits_block(100)


def test_quantize_array_error_is_bounded():
    w = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    q, s = quantize.quantize_array(w, axis=1)
    assert q.dtype == np.int8 and s.shape == (32,)
    err = np.abs(quantize.dequantize_array(q, s, 1) - w)
    assert (err <= s[None, :] / 2 + 1e-7).all()


def test_unknown_scheme(tiny_model):
    with pytest.raises(ValueError, match="unknown quantisation scheme"):
        quantize.quantize(export_onnx.export(tiny_model), "int4")


def run_cli(*args, env=None):
    e = {**os.environ, "PYTHONPATH": str(ROOT / "scripts"), **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=e, cwd=ROOT)


def test_bundle_cli_writes_a_content_addressed_bundle(tmp_path, tiny_tokenizer):
    torch.manual_seed(0)
    m = Transformer(ModelConfig(arch="llama", vocab_size=400, n_layer=1, n_head=4, n_kv_head=2, d_model=32, d_ff=64))
    save_weights(m, tmp_path / "w.safetensors")
    r = run_cli(
        "softedge.export.bundle",
        "--weights",
        str(tmp_path / "w.safetensors"),
        "--tokenizer",
        str(tiny_tokenizer),
        "--out",
        str(tmp_path / "out"),
        "--name",
        "tiny",
    )
    assert r.returncode == 0, r.stderr
    (bundle,) = (tmp_path / "out").iterdir()
    cfg = json.loads((bundle / "config.json").read_text())
    assert bundle.name == cfg["id"] and cfg["id"].startswith("tiny-")
    import hashlib

    assert cfg["model_sha256"] == hashlib.sha256((bundle / "model.onnx").read_bytes()).hexdigest()
    assert cfg["num_kv_heads"] == 2 and cfg["quantization"] == "weight-only" and cfg["logits"] == "last"
    assert {p.name for p in bundle.iterdir()} == {
        "model.onnx",
        "tokenizer.json",
        "tokenizer.model",
        "config.json",
        "weights.safetensors",
    }
    # same inputs, same id (content-derived)
    r2 = run_cli(
        "softedge.export.bundle",
        "--weights",
        str(tmp_path / "w.safetensors"),
        "--tokenizer",
        str(tiny_tokenizer),
        "--out",
        str(tmp_path / "out"),
        "--name",
        "tiny",
    )
    assert r2.returncode == 0 and [p.name for p in (tmp_path / "out").iterdir()] == [bundle.name]


@pytest.mark.parametrize("case", ["vocab-mismatch", "missing-tokenizer", "corrupt-weights", "unknown-arch"])
def test_bundle_cli_bad_input_one_line_error_and_nothing_left(tmp_path, tiny_tokenizer, case):
    torch.manual_seed(0)
    vocab = 401 if case == "vocab-mismatch" else 400
    m = Transformer(ModelConfig(arch="gpt2", vocab_size=vocab, n_layer=1, n_head=4, n_kv_head=4, d_model=32, d_ff=64))
    w = tmp_path / "w.safetensors"
    save_weights(m, w)
    tok = tiny_tokenizer
    if case == "missing-tokenizer":
        tok = tmp_path / "nowhere"
    if case == "corrupt-weights":
        w.write_bytes(w.read_bytes()[:-10])
    if case == "unknown-arch":
        w = tmp_path / "hf"
        w.mkdir()
        (w / "config.json").write_text(json.dumps({"model_type": "bert"}))
    out = tmp_path / "out"
    r = run_cli("softedge.export.bundle", "--weights", str(w), "--tokenizer", str(tok), "--out", str(out))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    expected = {
        "vocab-mismatch": "vocabulary",
        "missing-tokenizer": "tokenizer model not found",
        "corrupt-weights": "byte range",
        "unknown-arch": "unknown architecture",
    }[case]
    assert expected in lines[0]
    assert not out.exists() or list(out.iterdir()) == []

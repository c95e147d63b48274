"""Loading Hugging Face GPT-2 / Llama checkpoints (random weights written in the HF layout by the test itself),
checked against small reference forwards written straight from the HF tensor names; and refusing bad checkpoints."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from softedge.artifacts import safetensors_io
from softedge.backbone.checkpoint import CheckpointError, load_any, load_hf, load_weights, save_weights

V, D, H, L, P = 97, 32, 4, 2, 64


def gpt2_checkpoint(folder, fmt="safetensors"):
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g) * 0.2  # noqa: E731
    t = {
        "transformer.wte.weight": r(V, D),
        "transformer.wpe.weight": r(P, D),
        "transformer.ln_f.weight": 1 + r(D),
        "transformer.ln_f.bias": r(D),
    }
    for i in range(L):
        p = f"transformer.h.{i}."
        t.update(
            {
                p + "ln_1.weight": 1 + r(D),
                p + "ln_1.bias": r(D),
                p + "ln_2.weight": 1 + r(D),
                p + "ln_2.bias": r(D),
                p + "attn.c_attn.weight": r(D, 3 * D),
                p + "attn.c_attn.bias": r(3 * D),
                p + "attn.c_proj.weight": r(D, D),
                p + "attn.c_proj.bias": r(D),
                p + "mlp.c_fc.weight": r(D, 4 * D),
                p + "mlp.c_fc.bias": r(4 * D),
                p + "mlp.c_proj.weight": r(4 * D, D),
                p + "mlp.c_proj.bias": r(D),
                p + "attn.bias": torch.tril(torch.ones(1, 1, P, P)),
            }
        )
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "gpt2",
                "vocab_size": V,
                "n_embd": D,
                "n_layer": L,
                "n_head": H,
                "n_positions": P,
                "layer_norm_epsilon": 1e-5,
                "activation_function": "gelu_new",
            }
        )
    )
    if fmt == "safetensors":
        safetensors_io.save(folder / "model.safetensors", t)
    else:
        torch.save(t, folder / "pytorch_model.bin")
    return t


def gpt2_reference(t, ids):
    """GPT-2 forward written directly from the HF tensors (Conv1D: y = x @ W + b)."""
    T = ids.shape[1]
    x = t["transformer.wte.weight"][ids] + t["transformer.wpe.weight"][torch.arange(T)]
    hd = D // H
    for i in range(L):
        p = f"transformer.h.{i}."
        h = F.layer_norm(x, (D,), t[p + "ln_1.weight"], t[p + "ln_1.bias"], 1e-5)
        q, k, v = (h @ t[p + "attn.c_attn.weight"] + t[p + "attn.c_attn.bias"]).split(D, -1)
        q, k, v = (z.view(1, T, H, hd).transpose(1, 2) for z in (q, k, v))
        a = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        a = a.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
        y = (a @ v).transpose(1, 2).reshape(1, T, D)
        x = x + y @ t[p + "attn.c_proj.weight"] + t[p + "attn.c_proj.bias"]
        h = F.layer_norm(x, (D,), t[p + "ln_2.weight"], t[p + "ln_2.bias"], 1e-5)
        h = F.gelu(h @ t[p + "mlp.c_fc.weight"] + t[p + "mlp.c_fc.bias"], approximate="tanh")
        x = x + h @ t[p + "mlp.c_proj.weight"] + t[p + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (D,), t["transformer.ln_f.weight"], t["transformer.ln_f.bias"], 1e-5)
    return x @ t["transformer.wte.weight"].t()


KVH, FF = 2, 48


def llama_checkpoint(folder, tie=False):
    g = torch.Generator().manual_seed(2)
    r = lambda *s: torch.randn(*s, generator=g) * 0.2  # noqa: E731
    hd = D // H
    t = {"model.embed_tokens.weight": r(V, D), "model.norm.weight": 1 + r(D)}
    if not tie:
        t["lm_head.weight"] = r(V, D)
    for i in range(L):
        p = f"model.layers.{i}."
        t.update(
            {
                p + "input_layernorm.weight": 1 + r(D),
                p + "post_attention_layernorm.weight": 1 + r(D),
                p + "self_attn.q_proj.weight": r(H * hd, D),
                p + "self_attn.k_proj.weight": r(KVH * hd, D),
                p + "self_attn.v_proj.weight": r(KVH * hd, D),
                p + "self_attn.o_proj.weight": r(D, H * hd),
                p + "mlp.gate_proj.weight": r(FF, D),
                p + "mlp.up_proj.weight": r(FF, D),
                p + "mlp.down_proj.weight": r(D, FF),
            }
        )
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "model_type": "llama",
                "vocab_size": V,
                "hidden_size": D,
                "intermediate_size": FF,
                "num_hidden_layers": L,
                "num_attention_heads": H,
                "num_key_value_heads": KVH,
                "rms_norm_eps": 1e-6,
                "rope_theta": 500.0,
                "max_position_embeddings": P,
                "tie_word_embeddings": tie,
                "hidden_act": "silu",
            }
        )
    )
    safetensors_io.save(folder / "model.safetensors", t)
    return t


def llama_reference(t, ids, tie=False):
    """Llama forward from the HF tensors: RMSNorm, RoPE (rotate_half), GQA by repeating kv heads, SwiGLU."""
    T, hd = ids.shape[1], D // H
    rms = lambda x, w: w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)  # noqa: E731
    inv = 1.0 / (500.0 ** (torch.arange(0, hd, 2).float() / hd))
    f = torch.outer(torch.arange(T).float(), inv)
    cos, sin = torch.cat([f, f], -1).cos(), torch.cat([f, f], -1).sin()
    rot = lambda x: torch.cat([-x[..., hd // 2 :], x[..., : hd // 2]], -1)  # noqa: E731
    x = t["model.embed_tokens.weight"][ids]
    for i in range(L):
        p = f"model.layers.{i}."
        h = rms(x, t[p + "input_layernorm.weight"])
        q = (h @ t[p + "self_attn.q_proj.weight"].t()).view(1, T, H, hd).transpose(1, 2)
        k = (h @ t[p + "self_attn.k_proj.weight"].t()).view(1, T, KVH, hd).transpose(1, 2)
        v = (h @ t[p + "self_attn.v_proj.weight"].t()).view(1, T, KVH, hd).transpose(1, 2)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(H // KVH, 1), v.repeat_interleave(H // KVH, 1)
        a = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        a = a.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
        x = x + (a @ v).transpose(1, 2).reshape(1, T, D) @ t[p + "self_attn.o_proj.weight"].t()
        h = rms(x, t[p + "post_attention_layernorm.weight"])
        x = (
            x
            + (F.silu(h @ t[p + "mlp.gate_proj.weight"].t()) * (h @ t[p + "mlp.up_proj.weight"].t()))
            @ t[p + "mlp.down_proj.weight"].t()
        )
    x = rms(x, t["model.norm.weight"])
    return x @ (t["model.embed_tokens.weight"] if tie else t["lm_head.weight"]).t()


IDS = torch.tensor([[5, 17, 3, 88, 42, 7, 61]])


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_gpt2_checkpoint_loads_and_matches_reference(tmp_path, fmt):
    t = gpt2_checkpoint(tmp_path / "gpt2", fmt)
    model, _ = load_hf(tmp_path / "gpt2")
    assert model.cfg.arch == "gpt2" and model.cfg.n_layer == L
    logits, _ = model(IDS)
    assert torch.allclose(logits, gpt2_reference(t, IDS), atol=1e-4)


@pytest.mark.parametrize("tie", [False, True])
def test_llama_checkpoint_with_gqa_loads_and_matches_reference(tmp_path, tie):
    t = llama_checkpoint(tmp_path / "llama", tie)
    model, _ = load_hf(tmp_path / "llama")
    assert (model.cfg.n_head, model.cfg.n_kv_head) == (H, KVH)
    logits, _ = model(IDS)
    assert torch.allclose(logits, llama_reference(t, IDS, tie), atol=1e-4)


def test_own_format_round_trip(tmp_path, tiny_model):
    save_weights(tiny_model, tmp_path / "w.safetensors", {"training": {"steps": 3}})
    m, meta = load_any(tmp_path / "w.safetensors")
    ids = torch.randint(4, 300, (1, 6))
    assert torch.equal(m(ids)[0], tiny_model(ids)[0])
    assert json.loads(meta["training"]) == {"steps": 3}


def test_truncated_safetensors_is_refused(tmp_path):
    llama_checkpoint(tmp_path / "m")
    f = tmp_path / "m" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="does not match its byte range|trailing|does not fit"):
        load_hf(tmp_path / "m")


def test_missing_tensor_is_named(tmp_path):
    t = llama_checkpoint(tmp_path / "m")
    del t["model.layers.1.mlp.up_proj.weight"]
    safetensors_io.save(tmp_path / "m" / "model.safetensors", t)
    with pytest.raises(CheckpointError, match="model.layers.1.mlp.up_proj.weight"):
        load_hf(tmp_path / "m")


def test_shape_mismatch_with_config_is_named(tmp_path):
    llama_checkpoint(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["intermediate_size"] = 64
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="gate_proj.weight.*shape"):
        load_hf(tmp_path / "m")


def test_unknown_architecture(tmp_path):
    llama_checkpoint(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    with pytest.raises(CheckpointError, match="unknown architecture model_type='mamba'"):
        load_hf(tmp_path / "m")


def test_nan_weights_are_refused(tmp_path):
    t = gpt2_checkpoint(tmp_path / "m")
    t["transformer.ln_f.bias"][0] = float("nan")
    safetensors_io.save(tmp_path / "m" / "model.safetensors", t)
    with pytest.raises(CheckpointError, match="NaN"):
        load_hf(tmp_path / "m")


def test_not_a_softedge_file(tmp_path):
    safetensors_io.save(tmp_path / "x.safetensors", {"a": torch.zeros(2)}, {"format": "other"})
    with pytest.raises(CheckpointError, match="not a softedge backbone"):
        load_weights(tmp_path / "x.safetensors")


def test_empty_folder(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_any(tmp_path)

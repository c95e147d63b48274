"""Load and save backbone weights: the project's own format, and Hugging Face GPT-2 / Llama checkpoint folders.

Own format: weights.safetensors whose __metadata__ holds {"format": "softedge-backbone", "config": <ModelConfig>}.
Hugging Face: a folder with config.json and model.safetensors (or a sharded index) or pytorch_model.bin.
Every failure is a ValueError with a one-line message naming the file and the problem.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from softedge.artifacts import safetensors_io
from softedge.backbone.model import ModelConfig, Transformer

FORMAT = "softedge-backbone"


class CheckpointError(ValueError):
    pass


# ---------------------------------------------------------------- own format


def save_weights(model: Transformer, path: Path | str, extra: dict | None = None) -> None:
    meta = {"format": FORMAT, "config": json.dumps(model.cfg.to_dict())}
    for k, v in (extra or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    safetensors_io.save(path, {k: v.float() for k, v in model.state_dict().items()}, meta)


def load_weights(path: Path | str) -> tuple[Transformer, dict]:
    path = Path(path)
    try:
        tensors, meta = safetensors_io.load(path)
    except safetensors_io.SafetensorsError as e:
        raise CheckpointError(str(e)) from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a softedge backbone checkpoint (metadata format={meta.get('format')!r})")
    try:
        cfg = ModelConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, json.JSONDecodeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model config in metadata: {e}") from None
    model = Transformer(cfg)
    _load_state(model, tensors, str(path))
    return model.eval(), meta


def _load_state(model: Transformer, tensors: dict[str, torch.Tensor], where: str) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in tensors]
    if missing:
        raise CheckpointError(f"{where}: missing tensor {missing[0]!r} ({len(missing)} missing)")
    extra = [k for k in tensors if k not in expected]
    if extra:
        raise CheckpointError(f"{where}: unexpected tensor {extra[0]!r} (wrong architecture?)")
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{where}: tensor {k!r} has shape {list(tensors[k].shape)}, the config expects {list(v.shape)}"
            )
        if not torch.isfinite(tensors[k].float()).all():
            raise CheckpointError(f"{where}: tensor {k!r} holds NaN or inf")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()})


# ---------------------------------------------------------------- Hugging Face


def _read_hf_tensors(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        return safetensors_io.load(folder / "model.safetensors")[0]
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        out = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            out.update(safetensors_io.load(folder / shard)[0])
        return out
    if (folder / "pytorch_model.bin").is_file():
        try:
            sd = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{folder}/pytorch_model.bin: cannot read ({str(e).splitlines()[0][:120]})") from None
        return dict(sd)
    raise CheckpointError(f"{folder}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")


def hf_config_to_model_config(hf: dict, where: str) -> ModelConfig:
    mt = hf.get("model_type")
    try:
        if mt == "gpt2":
            act = hf.get("activation_function", "gelu_new")
            if act not in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
                raise CheckpointError(f"{where}: unsupported GPT-2 activation {act!r} (tanh GELU only)")
            d = hf["n_embd"]
            return ModelConfig(
                arch="gpt2",
                vocab_size=hf["vocab_size"],
                n_layer=hf["n_layer"],
                n_head=hf["n_head"],
                n_kv_head=hf["n_head"],
                d_model=d,
                d_ff=hf.get("n_inner") or 4 * d,
                max_positions=hf.get("n_positions", hf.get("n_ctx", 1024)),
                norm_eps=hf.get("layer_norm_epsilon", 1e-5),
                tie_embeddings=True,
            )
        if mt == "llama":
            if hf.get("rope_scaling"):
                raise CheckpointError(f"{where}: rope_scaling is not supported")
            if hf.get("attention_bias") or hf.get("mlp_bias"):
                raise CheckpointError(f"{where}: attention/MLP biases are not supported for llama")
            if hf.get("hidden_act", "silu") != "silu":
                raise CheckpointError(f"{where}: unsupported llama activation {hf['hidden_act']!r}")
            d, h = hf["hidden_size"], hf["num_attention_heads"]
            if hf.get("head_dim", d // h) != d // h:
                raise CheckpointError(f"{where}: head_dim != hidden_size / num_attention_heads is not supported")
            return ModelConfig(
                arch="llama",
                vocab_size=hf["vocab_size"],
                n_layer=hf["num_hidden_layers"],
                n_head=h,
                n_kv_head=hf.get("num_key_value_heads") or h,
                d_model=d,
                d_ff=hf["intermediate_size"],
                max_positions=hf.get("max_position_embeddings", 2048),
                norm_eps=hf.get("rms_norm_eps", 1e-6),
                rope_theta=hf.get("rope_theta", 10000.0),
                tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            )
    except KeyError as e:
        raise CheckpointError(f"{where}: config.json lacks {e.args[0]!r}") from None
    except ValueError as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{where}: {e}") from None
    raise CheckpointError(f"{where}: unknown architecture model_type={mt!r} (supported: gpt2, llama)")


def _map_gpt2(t: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    t = {k.removeprefix("transformer."): v for k, v in t.items()}
    g = lambda k: t.pop(k)  # noqa: E731  (pop, so leftovers can be reported)
    d = cfg.d_model
    out = {
        "embed.weight": g("wte.weight"),
        "pos_embed.weight": g("wpe.weight"),
        "ln_f.weight": g("ln_f.weight"),
        "ln_f.bias": g("ln_f.bias"),
    }
    for i in range(cfg.n_layer):
        p, q = f"h.{i}.", f"blocks.{i}."
        for a, b in (("ln_1", "ln_1"), ("ln_2", "ln_2")):
            out[q + b + ".weight"], out[q + b + ".bias"] = g(p + a + ".weight"), g(p + a + ".bias")
        w, bias = g(p + "attn.c_attn.weight"), g(p + "attn.c_attn.bias")  # Conv1D: [in, out]
        if w.shape != (d, 3 * d):
            raise CheckpointError(f"tensor {p}attn.c_attn.weight has shape {list(w.shape)}, expected {[d, 3 * d]}")
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[q + f"attn.{name}.weight"] = w[:, j * d : (j + 1) * d].t()
            out[q + f"attn.{name}.bias"] = bias[j * d : (j + 1) * d]
        out[q + "attn.o_proj.weight"], out[q + "attn.o_proj.bias"] = g(p + "attn.c_proj.weight").t(), g(
            p + "attn.c_proj.bias"
        )
        out[q + "mlp.up_proj.weight"], out[q + "mlp.up_proj.bias"] = g(p + "mlp.c_fc.weight").t(), g(
            p + "mlp.c_fc.bias"
        )
        out[q + "mlp.down_proj.weight"], out[q + "mlp.down_proj.bias"] = g(p + "mlp.c_proj.weight").t(), g(
            p + "mlp.c_proj.bias"
        )
        t.pop(p + "attn.bias", None), t.pop(p + "attn.masked_bias", None)  # causal-mask buffers
    t.pop("lm_head.weight", None)  # tied to wte
    if t:
        raise CheckpointError(f"unexpected tensor {next(iter(t))!r} for gpt2")
    return out


def _map_llama(t: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    t = dict(t)
    g = lambda k: t.pop(k)  # noqa: E731
    out = {"embed.weight": g("model.embed_tokens.weight"), "ln_f.weight": g("model.norm.weight")}
    if cfg.tie_embeddings:
        t.pop("lm_head.weight", None)
    else:
        out["lm_head.weight"] = g("lm_head.weight")
    for i in range(cfg.n_layer):
        p, q = f"model.layers.{i}.", f"blocks.{i}."
        out[q + "ln_1.weight"] = g(p + "input_layernorm.weight")
        out[q + "ln_2.weight"] = g(p + "post_attention_layernorm.weight")
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[q + f"attn.{n}.weight"] = g(p + f"self_attn.{n}.weight")
        for n in ("gate_proj", "up_proj", "down_proj"):
            out[q + f"mlp.{n}.weight"] = g(p + f"mlp.{n}.weight")
        t.pop(p + "self_attn.rotary_emb.inv_freq", None)
    if t:
        raise CheckpointError(f"unexpected tensor {next(iter(t))!r} for llama")
    return out


def load_hf(folder: Path | str) -> tuple[Transformer, dict]:
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder}: no config.json (not a Hugging Face checkpoint folder)")
    try:
        hf = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path}: invalid JSON ({e.msg})") from None
    cfg = hf_config_to_model_config(hf, str(cfg_path))
    try:
        tensors = _read_hf_tensors(folder)
        mapped = (_map_gpt2 if cfg.arch == "gpt2" else _map_llama)(tensors, cfg)
    except KeyError as e:
        raise CheckpointError(f"{folder}: missing tensor {e.args[0]!r}") from None
    except safetensors_io.SafetensorsError as e:
        raise CheckpointError(str(e)) from None
    except CheckpointError as e:
        raise CheckpointError(f"{folder}: {e}") from None
    model = Transformer(cfg)
    _load_state(model, {k: v.contiguous() for k, v in mapped.items()}, str(folder))
    return model.eval(), hf


def load_any(path: Path | str) -> tuple[Transformer, dict]:
    """A softedge weights file, a folder holding weights.safetensors, or a Hugging Face checkpoint folder."""
    path = Path(path)
    if path.is_file():
        return load_weights(path)
    if (path / "weights.safetensors").is_file():
        return load_weights(path / "weights.safetensors")
    if path.is_dir():
        return load_hf(path)
    raise CheckpointError(f"{path}: no such checkpoint")


def load_bundle_weights(bundle: Path | str, what: str = "") -> tuple[Transformer, dict, dict]:
    """A backbone bundle's fp32 training weights: (model, the weights' metadata, config.json). Anything missing or
    damaged is a CliError naming the bundle (`what` prefixes it, e.g. the option that named it)."""
    from softedge.common import CliError

    bundle = Path(bundle)
    cfg_path, weights = bundle / "config.json", bundle / "weights.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise CliError(
            f"{what}{bundle}: not a backbone bundle with training weights (config.json + weights.safetensors)"
        )
    try:
        model, meta = load_weights(weights)
    except CheckpointError as e:
        raise CliError(str(e)) from None
    return model, meta, json.loads(cfg_path.read_text())

"""Export to Hugging Face formats, so adapters and the backbone move between softedge and transformers + PEFT.

    scripts/py peft_export adapter ADAPTER.safetensors --out DIR [--base-model NAME_OR_PATH]
    scripts/py peft_export backbone BUNDLE --out DIR

adapter   a PEFT folder (adapter_config.json + adapter_model.safetensors): PROMPT_TUNING with the raw soft prompt
          [P, d] for a prompt adapter, PREFIX_TUNING with the KV prefix [P, L*2*kvH*D] (no projection) for a prefix
          adapter: the layouts scripts/py peft_import reads. A classification head has no PEFT counterpart for a
          causal LM: it goes to softedge_head.safetensors beside them (peft_import restores it; PEFT ignores it).
backbone  a Hugging Face Llama checkpoint folder (config.json, model.safetensors, tokenizer.model, tokenizer.json,
          tokenizer_config.json, special_tokens_map.json), loadable by transformers' LlamaForCausalLM, with the
          same logits (RoPE in the half-split convention transformers uses; embeddings tied).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from softedge.artifacts import adapter as adapter_fmt
from softedge.artifacts import safetensors_io
from softedge.backbone.checkpoint import load_bundle_weights
from softedge.common import CliError, atomic_dir, run_cli
from softedge.backbone.model import Transformer
from softedge.tuning.readout import stored_rows


def flat_prefix(kv: torch.Tensor) -> torch.Tensor:
    """[L, 2, kvH, P, D] -> PEFT's [P, L*2*kvH*D] (the inverse of tuners.prefix.split_flat_prefix)."""
    L, _, H, P, D = kv.shape
    return kv.permute(3, 0, 1, 2, 4).reshape(P, L * 2 * H * D).contiguous()


def export_adapter(path: Path, out: Path, base_model: str | None) -> str:
    try:
        kv, meta, tensors = adapter_fmt.load(path)
    except adapter_fmt.AdapterError as e:
        raise CliError(str(e)) from None
    kind, P = meta["kind"], kv.shape[3]
    L, _, H, _, D = kv.shape
    if kind == "prompt":
        if "prompt_embeddings" not in tensors:
            raise CliError(
                f"{path}: a prompt adapter without its raw soft prompt (imported or compiled only): "
                "PEFT needs prompt_embeddings"
            )
        emb, peft_type = tensors["prompt_embeddings"].float(), "PROMPT_TUNING"
    else:
        emb, peft_type = flat_prefix(kv), "PREFIX_TUNING"
    cfg = {
        "peft_type": peft_type,
        "task_type": "CAUSAL_LM",
        "num_virtual_tokens": P,
        "num_layers": L,
        "num_transformer_submodules": 1,
        "inference_mode": True,
        "token_dim": emb.shape[1] if kind == "prompt" else H * D,
        "base_model_name_or_path": base_model or meta["backbone"],
        "revision": None,
        "softedge": {
            "backbone": meta["backbone"],
            "task": meta["task"],
            "template": meta["template"],
            "labels": meta["labels"],
            "readout": meta["readout"],
            "generation": meta.get("generation", {}),
        },
    }
    if kind == "prefix":
        cfg.update({"prefix_projection": False, "encoder_hidden_size": H * D})
    with atomic_dir(out) as tmp:
        (tmp / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        safetensors_io.save(
            tmp / "adapter_model.safetensors", {"prompt_embeddings": emb.contiguous()}, {"format": "pt"}
        )
        head = {k: tensors[k] for k in ("head_bias", "bag_ids") if k in tensors}
        head.update({k: stored_rows(tensors, k) for k in ("head_weight", "bag_weight") if k in tensors})  # float32
        if head:
            safetensors_io.save(tmp / "softedge_head.safetensors", head, {"readout": json.dumps(meta["readout"])})
    return f"{peft_type} ({P} virtual tokens{', with its classification head' if head else ''})"


def hf_llama_config(m: Transformer, bcfg: dict) -> dict:
    c = m.cfg
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.d_model,
        "intermediate_size": c.d_ff,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv_head,
        "head_dim": c.head_dim,
        "max_position_embeddings": c.max_positions,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_theta,
        "hidden_act": "silu",
        "tie_word_embeddings": c.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": bcfg["bos_token_id"],
        "eos_token_id": bcfg["eos_token_id"],
        "pad_token_id": bcfg["pad_token_id"],
        "torch_dtype": "float32",
        "softedge_backbone": bcfg["id"],
    }


def hf_llama_tensors(m: Transformer) -> dict[str, torch.Tensor]:
    """Our names -> transformers' LlamaForCausalLM names (the inverse of checkpoint._map_llama)."""
    sd = {k: v.detach().float().contiguous() for k, v in m.state_dict().items()}
    out = {"model.embed_tokens.weight": sd["embed.weight"], "model.norm.weight": sd["ln_f.weight"]}
    if not m.cfg.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    for i in range(m.cfg.n_layer):
        p, q = f"model.layers.{i}.", f"blocks.{i}."
        out[p + "input_layernorm.weight"] = sd[q + "ln_1.weight"]
        out[p + "post_attention_layernorm.weight"] = sd[q + "ln_2.weight"]
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            out[p + f"self_attn.{n}.weight"] = sd[q + f"attn.{n}.weight"]
        for n in ("gate_proj", "up_proj", "down_proj"):
            out[p + f"mlp.{n}.weight"] = sd[q + f"mlp.{n}.weight"]
    return out


def export_backbone(bundle: Path, out: Path) -> str:
    model, _, bcfg = load_bundle_weights(bundle)
    if model.cfg.arch != "llama":
        raise CliError(f"{bundle}: only Llama-style backbones export as a Hugging Face Llama checkpoint")
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text(json.dumps(hf_llama_config(model, bcfg), indent=2) + "\n")
        safetensors_io.save(tmp / "model.safetensors", hf_llama_tensors(model), {"format": "pt"})
        for f in ("tokenizer.model", "tokenizer.json"):
            shutil.copyfile(bundle / f, tmp / f)
        special = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
        (tmp / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
        (tmp / "tokenizer_config.json").write_text(
            json.dumps(
                {
                    "tokenizer_class": "LlamaTokenizer",
                    "add_bos_token": False,
                    "add_eos_token": False,
                    "legacy": False,
                    "model_max_length": model.cfg.max_positions,
                    **special,
                },
                indent=2,
            )
            + "\n"
        )
    return f"Llama checkpoint ({model.num_params() / 1e6:.2f}M params)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    a1 = sub.add_parser("adapter", help="a softedge adapter as a PEFT folder")
    a1.add_argument("artifact", type=Path)
    a1.add_argument("--out", type=Path, required=True)
    a1.add_argument("--base-model", help="base_model_name_or_path in adapter_config.json (default: the backbone id)")
    b1 = sub.add_parser("backbone", help="a backbone bundle as a Hugging Face Llama checkpoint folder")
    b1.add_argument("bundle", type=Path)
    b1.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    what = export_adapter(a.artifact, a.out, a.base_model) if a.what == "adapter" else export_backbone(a.bundle, a.out)
    print(f"exported {what} to {a.out}")


if __name__ == "__main__":
    run_cli(main)

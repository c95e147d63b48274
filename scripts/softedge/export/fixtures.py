"""Write the parity fixtures the JS tests check ONNX Runtime against (committed under test/fixtures/parity).

    scripts/py fixtures tiny                      # tiny random GPT-2 and Llama models: fp32 and int8 graphs + cases
    scripts/py fixtures backbone <bundle dir>     # the default backbone: held-out windows scored by PyTorch

tiny: for each architecture, a seeded random model exported as fp32 (all-position logits) and with each int8 scheme
(last-position logits), and cases: plain batch, KV prefix, left padding behind a KV prefix. Expected logits and
final hidden states come from PyTorch: fp32 for the fp32 graph; for int8 graphs, quantize.simulate (the same math).
"""
from __future__ import annotations

import argparse
import json
import math
from functools import partial
from pathlib import Path

import numpy as np
import torch

from softedge.export import export_onnx
from softedge.export import quantize
from softedge.backbone.checkpoint import load_weights
from softedge.common import ROOT, CliError, atomic_dir, run_cli, write_json
from softedge.backbone.model import ModelConfig, Transformer

OUT = ROOT / "test" / "fixtures" / "parity"

TINY = {
    "tiny-llama": ModelConfig(
        arch="llama", vocab_size=320, n_layer=2, n_head=4, n_kv_head=2, d_model=64, d_ff=160, max_positions=128
    ),
    "tiny-gpt2": ModelConfig(
        arch="gpt2", vocab_size=320, n_layer=2, n_head=4, n_kv_head=4, d_model=64, d_ff=256, max_positions=128
    ),
}


def tensor_json(t: torch.Tensor, digits: int = 7) -> dict:
    a = t.detach().cpu().numpy()
    data = a.reshape(-1).tolist() if a.dtype.kind in "iub" else [float(f"{x:.{digits}g}") for x in a.reshape(-1)]
    return {"dims": list(a.shape), "dtype": "int64" if a.dtype.kind in "iu" else "float32", "data": data}


def make_cases(cfg: ModelConfig, seed: int) -> list[dict]:
    """Inputs of the three parity cases (plain, KV prefix, left padding behind a KV prefix)."""
    g = torch.Generator().manual_seed(seed)
    cases = []

    def past(B, S):
        return [
            (
                torch.randn(B, cfg.n_kv_head, S, cfg.head_dim, generator=g) * 0.5,
                torch.randn(B, cfg.n_kv_head, S, cfg.head_dim, generator=g) * 0.5,
            )
            for _ in range(cfg.n_layer)
        ]

    B, T = 2, 7
    ids = torch.randint(4, cfg.vocab_size, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    cases.append({"name": "plain", "ids": ids, "mask": mask, "past": past(B, 0), "valid": torch.ones(B, T)})
    S = 5
    cases.append(
        {
            "name": "kv-prefix",
            "ids": ids,
            "mask": torch.ones(B, S + T, dtype=torch.long),
            "past": past(B, S),
            "valid": torch.ones(B, T),
        }
    )
    S, lens = 3, [7, 4]
    ids = torch.randint(4, cfg.vocab_size, (2, T), generator=g)
    mask = torch.ones(2, S + T, dtype=torch.long)
    valid = torch.ones(2, T)
    for b, n in enumerate(lens):
        ids[b, : T - n] = 0  # left padding with <pad>
        mask[b, S : S + T - n] = 0
        valid[b, : T - n] = 0
    cases.append({"name": "left-padding", "ids": ids, "mask": mask, "past": past(2, S), "valid": valid})
    for c in cases:
        c["pos"] = (torch.cumsum(c["mask"], 1) - 1)[:, -T:].clamp(min=0)
    return cases


def case_json(case: dict, out: tuple[torch.Tensor, torch.Tensor], n_layer: int) -> dict:
    logits, hidden = out
    inputs = {
        "input_ids": tensor_json(case["ids"]),
        "attention_mask": tensor_json(case["mask"]),
        "position_ids": tensor_json(case["pos"]),
    }
    for i, (k, v) in enumerate(case["past"]):
        inputs[f"past_key_values.{i}.key"] = tensor_json(k)
        inputs[f"past_key_values.{i}.value"] = tensor_json(v)
    return {
        "name": case["name"],
        "inputs": inputs,
        "valid": case["valid"].tolist(),
        "logits": tensor_json(logits),
        "hidden_states": tensor_json(hidden),
    }


@torch.no_grad()
def run_torch(model: Transformer, case: dict, last_only: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, final hidden states at every input position)"""
    h, _ = model.hidden_states(case["ids"], case["mask"], case["pos"], case["past"] or None)
    return model.logits(h[:, -1:] if last_only else h), h


def write_tiny(out: Path) -> None:
    with atomic_dir(out) as tmp:
        index = []
        for name, cfg in TINY.items():
            torch.manual_seed(1234)
            model = Transformer(cfg).eval()
            with torch.no_grad():  # larger-than-init weights so the logits are far from uniform
                for p in model.parameters():
                    if p.dim() == 2:
                        p.mul_(4.0)
            cases = make_cases(cfg, seed=7)
            fp32 = export_onnx.export(model, last_only=False)
            export_onnx.save(fp32, tmp / f"{name}.fp32.onnx")
            entry = {"name": name, "config": cfg.to_dict(), "graphs": {}}
            entry["graphs"]["fp32"] = {
                "file": f"{name}.fp32.onnx",
                "last_only": False,
                "cases": [case_json(c, run_torch(model, c, False), cfg.n_layer) for c in cases],
            }
            for scheme in quantize.SCHEMES:
                q = quantize.quantize(export_onnx.export(model, last_only=True), scheme)
                export_onnx.save(q, tmp / f"{name}.{scheme}.onnx")
                # the reference computes what the int8 graph computes (quantize.simulate)
                ref = quantize.simulate(model, scheme)
                entry["graphs"][scheme] = {
                    "file": f"{name}.{scheme}.onnx",
                    "last_only": True,
                    "reference": "simulated-int8",
                    "cases": [case_json(c, run_torch(ref, c, True), cfg.n_layer) for c in cases],
                }
            write_json(tmp / f"{name}.json", entry)
            index.append(name)
        write_json(tmp / "index.json", {"models": index})
    print(f"wrote tiny parity fixtures to {out}")


@torch.no_grad()
def write_backbone(bundle: Path, out: Path, heldout: Path, windows: int, seq: int) -> None:
    """Held-out windows with PyTorch's fp32 next-token log-prob of each target and its top-1 prediction, plus
    the int8 graph's own math in PyTorch (quantize.simulate) at the last position of each window."""
    from softedge.data.tokenizer import Tokenizer

    model, _ = load_weights(bundle / "weights.safetensors")
    quant = json.loads((bundle / "config.json").read_text())["quantization"]
    ref = quantize.simulate(model, quant) if quant != "none" else model
    tok = Tokenizer.from_dir(bundle)
    lines = heldout.read_text(encoding="utf-8").splitlines()
    stream: list[int] = []
    for ids in tok.sp.encode(lines[:: max(1, len(lines) // (windows * 4))]):
        stream += ids + [tok.eos_id]
    starts = np.linspace(0, len(stream) - seq - 2, windows).astype(int)
    x = torch.tensor([stream[s : s + seq + 1] for s in starts])
    logits, _ = model(x[:, :-1])
    logp = torch.log_softmax(logits, -1)
    target_lp = logp.gather(-1, x[:, 1:, None])[..., 0]
    ref_last, _ = ref(x[:, :-1], last_only=True)
    tricky = [
        "",
        " ",
        "Hello, world!",
        "  two leading spaces",
        "tabs\tand\nnewlines\r\n",
        "emoji 😀👍🏽🇫🇷 done",
        "naïve café Ünïcödé ß 日本語 Ελληνικά",
        "x" * 300,
        "pneumonoultramicroscopicsilicovolcanoconiosis",
        "trailing   ",
        "3.14159 and 1,000,000",
        "<s></s><pad> are text here",
        "\u200b zero width",
    ]
    fx = {
        "backbone": json.loads((bundle / "config.json").read_text())["id"],
        "vocab_size": model.cfg.vocab_size,
        "tokenizer_cases": [{"text": t, "ids": tok.encode(t)} for t in tricky + lines[:: max(1, len(lines) // 100)]],
        "seq": seq,
        "windows": windows,
        "input_ids": x[:, :-1].tolist(),
        "targets": x[:, 1:].tolist(),
        "fp32_target_logprob": [[round(float(v), 5) for v in row] for row in target_lp],
        "fp32_top1": logits.argmax(-1).tolist(),
        "fp32_ppl": math.exp(-target_lp.mean().item()),
        "int8_reference_last_logits": tensor_json(ref_last[:, 0], digits=7),
    }
    write_json(out, fx)
    print(f"wrote backbone fixture {out}: {windows} windows x {seq} tokens, fp32 ppl {fx['fp32_ppl']:.2f}")


@torch.no_grad()
def write_golden(bundle: Path, cases: list[str], out: Path, per_adapter: int, max_tokens: int, max_new: int) -> None:
    """What the edge must answer for the default adapters: prompt token ids, label probabilities (classification)
    and generated token ids (generation: the adapter's decoding, its beams and no-repeat n-gram size; greedy with
    that size; plain greedy), computed by PyTorch doing the int8 graph's math (quantize.simulate)."""
    from softedge.artifacts import adapter as adapter_fmt
    from softedge.tuning.readout import label_scores, readout_of
    from softedge.tuning.tasks import StopStrings, beam_search, encode_prompts, greedy, load_jsonl
    from softedge.data.tokenizer import Tokenizer

    model, _ = load_weights(bundle / "weights.safetensors")
    cfg = json.loads((bundle / "config.json").read_text())
    ref = quantize.simulate(model, cfg["quantization"]) if cfg["quantization"] != "none" else model
    tok = Tokenizer.from_dir(bundle)
    items = []
    for case in cases:
        path, data = case.split(":", 1)
        kv, meta, tensors = adapter_fmt.load(path, cfg)
        task = meta["task"]
        rows = load_jsonl(Path(data), task)[:per_adapter]
        key = "text" if task == "classify" else "input"
        prompts = encode_prompts(tok, meta["template"], rows, key, max_tokens)
        entry = {"adapter": Path(path).name, "task": task, "readout": meta["readout"]["type"], "cases": []}
        readout = readout_of(meta, tensors)
        past = adapter_fmt.tensor_to_kv(kv, 1)
        for r, ids in zip(rows, prompts):
            c = {key: r[key], "prompt_ids": ids}
            if readout is not None:
                probs = torch.softmax(label_scores(ref, past, [ids], readout, tok.pad_id)[0].double(), 0)
                c["probabilities"] = {l: round(float(p), 7) for l, p in zip(readout.labels, probs)}
                c["label"] = readout.labels[int(probs.argmax())]
            else:
                gen = meta["generation"]
                n, k = gen.get("no_repeat_ngram_size", 0), gen.get("num_beams", 1)  # the adapter's, as the edge reads
                stop = StopStrings(tok.decode, tuple(gen.get("stop", [])))
                search = partial(beam_search, ref, past, ids, tok.pad_id, tok.eos_id)  # (max_new, beams, n, stop)

                c["greedy_ids"] = greedy(
                    ref, past, [ids], tok.pad_id, tok.eos_id, max_new, no_repeat_ngram=n, stop=stop
                )[0]
                c["greedy_text"] = stop.text(c["greedy_ids"])
                c["no_repeat_ngram_size"] = n
                plain = greedy(ref, past, [ids], tok.pad_id, tok.eos_id, max_new, stop=stop)[0]  # a request's 0
                c["plain_greedy_ids"], c["plain_greedy_text"] = plain, stop.text(plain)
                c["num_beams"] = k
                c["beam_ids"] = search(max_new, k, n, stop) if k > 1 else c["greedy_ids"]
                c["beam_text"] = stop.text(c["beam_ids"])
                # the search's other ends, with the adapter's beams (at least 2): max_new reached, a stop string
                c["beam_ids_4_tokens"] = search(4, max(k, 2), n, stop)
                c["beam_ids_stop_space"] = search(max_new, max(k, 2), n, StopStrings(tok.decode, (" ",)))
            entry["cases"].append(c)
        items.append(entry)
    write_json(
        out,
        {
            "backbone": cfg["id"],
            "reference": f"simulated {cfg['quantization']}",
            "max_tokens": max_tokens,
            "max_new_tokens": max_new,
            "adapters": items,
        },
    )
    print(f"wrote {out}: {sum(len(i['cases']) for i in items)} cases over {len(items)} adapters")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    gd = sub.add_parser("golden", help="expected edge answers for adapters: --case ADAPTER:EVAL_JSONL ...")
    gd.add_argument("bundle", type=Path)
    gd.add_argument("--case", action="append", required=True)
    gd.add_argument("--out", type=Path, default=ROOT / "test" / "fixtures" / "golden.json")
    gd.add_argument("--per-adapter", type=int, default=6)
    gd.add_argument("--max-tokens", type=int, default=128)
    gd.add_argument("--max-new-tokens", type=int, default=16)
    t = sub.add_parser("tiny")
    t.add_argument("--out", type=Path, default=OUT / "tiny")
    b = sub.add_parser("backbone")
    b.add_argument("bundle", type=Path)
    b.add_argument("--heldout", type=Path, default=ROOT / ".cache" / "corpus" / "heldout.txt")
    b.add_argument("--out", type=Path, default=OUT / "backbone.json")
    b.add_argument("--windows", type=int, default=24)
    b.add_argument("--seq", type=int, default=64)
    a = ap.parse_args()
    if a.what == "tiny":
        write_tiny(a.out)
    elif a.what == "golden":
        write_golden(a.bundle, a.case, a.out, a.per_adapter, a.max_tokens, a.max_new_tokens)
    else:
        if not (a.bundle / "weights.safetensors").is_file():
            raise CliError(f"{a.bundle}: no weights.safetensors (not a backbone bundle)")
        if not a.heldout.is_file():
            raise CliError(f"{a.heldout}: not found (run scripts/py corpus)")
        write_backbone(a.bundle, a.out, a.heldout, a.windows, a.seq)


if __name__ == "__main__":
    run_cli(main)

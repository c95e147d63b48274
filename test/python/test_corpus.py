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

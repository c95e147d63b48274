"""The backbone probe suite (scripts/py probe) on a tiny random backbone: held-out perplexity and linear probes,
deterministic, written atomically; bad input is one line."""
import json

from conftest import run_module
from test_adapters import tiny_bundle  # noqa: F401  (session fixture)


def cli(*args):
    return run_module("probe", *args)


def test_probe_suite(tiny_bundle, tiny_tokenizer, tmp_path):  # noqa: F811
    bundle = tiny_bundle
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "heldout.txt").write_text((tiny_tokenizer / "train.txt").read_text())
    (corpus / "heldout-v2.txt").write_text((tiny_tokenizer / "train.txt").read_text()[::-1])  # a later part's own
    task = tmp_path / "data" / "colors"
    task.mkdir(parents=True)
    rows = [
        {"text": f"{w} number {i}", "label": lab}
        for i in range(30)
        for w, lab in (("apple banana", "fruit"), ("red green blue", "color"))
    ]
    (task / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:48]) + "\n")
    (task / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in rows[48:]) + "\n")
    args = [
        bundle,
        "--tasks",
        "colors",
        "--corpus",
        corpus,
        "--data",
        tmp_path / "data",
        "--seq",
        "16",
        "--windows",
        "8",
    ]
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    out = json.loads((bundle / "probe.json").read_text())
    (bundle / "probe.json").unlink()  # the bundle is shared with other tests
    assert out["backbone"] == bundle.name and out["heldout"]["tokens"] == 128
    assert 1 < out["heldout"]["ppl"] < 2 * 400  # a random model: about the vocabulary size, never below 1
    assert set(out["heldout_parts"]) == {"v2"} and out["heldout_parts"]["v2"]["ppl"] != out["heldout"]["ppl"]
    p = out["probes"]["colors"]
    assert (p["train_examples"], p["eval_examples"], p["labels"]) == (44, 12, 2)
    assert p["accuracy"] == 1.0  # the two classes differ in every word: separable even on random features
    assert "colors: linear probe" in r.stdout
    # deterministic: the same figures again
    assert cli(*args, "--out", tmp_path / "again.json").returncode == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in out.items() if k != "seconds"}
    # bad input: one line, nothing written
    r = cli(bundle, "--tasks", "nope", "--corpus", corpus, "--data", tmp_path / "data", "--out", tmp_path / "x.json")
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and "nope" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.json").exists()

"""The backbone targets in the model card: PASS/FAIL with margins from a bundle's files, the before/after probes,
and the loss-curve fit (on a curve whose answer is known)."""
import json
import math

from softedge.export.card import targets_section
from softedge.export.targets import loss_curve_fit, targets

PROBE = {
    "backbone": "new",
    "heldout": {"ppl": 50.0},
    "probes": {"spam": {"accuracy": 0.955}, "topic": {"accuracy": 0.70}},
}
PREVIOUS = {
    "backbone": "old",
    "heldout": {"ppl": 58.2},
    "probes": {"spam": {"accuracy": 0.95}, "topic": {"accuracy": 0.71}},
}
EVAL = {"ppl_ratio": 1.0002, "top1_agreement": 0.9824}


def test_targets_say_pass_or_by_how_much_they_fail():
    rows = {r["target"]: r for r in targets(PROBE, EVAL, 5.26, PREVIOUS)}
    assert rows["held-out perplexity <= 42"]["result"] == "FAIL by 8.00"
    assert rows["spam linear probe >= 96%"]["result"] == "FAIL by 0.5 points"
    assert rows["int8 perplexity within +3% of fp32"]["result"] == "PASS"
    assert rows["int8 top-1 agreement >= 98%"]["result"] == "PASS"
    assert rows["int8 model.onnx <= 16 MB"]["result"] == "PASS"
    assert rows["spam probe above the previous default's (95.0%)"]["result"] == "PASS"
    assert rows["topic probe above the previous default's (71.0%)"]["result"] == "FAIL"
    assert targets(None, None, 20.0, None) == [
        {"target": "int8 model.onnx <= 16 MB", "measured": "20.00 MB", "result": "FAIL"}
    ]


def test_loss_curve_fit_recovers_a_known_power_law():
    e, a, alpha = 3.2, 3.0, 0.5  # L = E + A * (D in millions)^-alpha
    hist = [{"tokens": int(d * 1e6), "heldout_loss": e + a * d**-alpha} for d in range(2, 42, 2)]
    fit = loss_curve_fit(hist, target_ppl=42.0)
    assert abs(fit["E"] - e) < 0.01 and abs(fit["alpha"] - alpha) < 0.01 and fit["max_abs_residual"] < 1e-3
    expected = ((math.log(42.0) - e) / a) ** (-1 / alpha)
    assert abs(fit["tokens_for_target_m"] - expected) / expected < 0.02
    assert loss_curve_fit(hist[:4]) is None  # too few points to fit three parameters


def test_card_section_shows_before_after_and_the_fit(tmp_path):
    (tmp_path / "probe-previous.json").write_text(json.dumps(PREVIOUS))
    hist = [{"tokens": int(d * 1e6), "heldout_loss": 3.5 + 2.0 * d**-0.4} for d in range(1, 30)]
    (tmp_path / "training-history.json").write_text(json.dumps(hist))
    (tmp_path / "model.onnx").write_bytes(b"0" * 1000)
    text = "\n".join(targets_section(tmp_path, PROBE, EVAL))
    assert "| held-out perplexity | 58.20 | 50.00 |" in text
    assert "| topic: linear probe | 71.0% | 70.0% |" in text
    assert "L = E + A D^-alpha" in text and "An extrapolation" in text
    (tmp_path / "training-history.json").unlink()
    assert "no curve fit" in "\n".join(targets_section(tmp_path, PROBE, EVAL))


def test_card_fits_runs_continued_from_the_bundle_when_it_has_no_history(tmp_path):
    """--fit-from: the held-out history of runs continued from the bundle's weights (their metrics.json) feeds the
    fit, and the card names them; a folder that is not a run is a one-line error."""
    import pytest

    from softedge.common import CliError
    from softedge.export.card import continued_history

    runs = []
    for name, lo, hi in (("first", 1, 15), ("second", 15, 30)):
        run = tmp_path / name
        run.mkdir()
        hist = [{"step": d, "tokens": int(d * 1e6), "heldout_loss": 3.5 + 2.0 * d**-0.4} for d in range(lo, hi)]
        hist.insert(0, {"step": 0, "tokens": 0, "train_loss": 9.0})  # not an evaluation
        (run / "metrics.json").write_text(json.dumps({"lr": 2e-4, "corpus_dir": "/x/corpus-v2", "history": hist}))
        runs.append(run)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "model.onnx").write_bytes(b"0" * 1000)
    cont = continued_history(runs)
    assert [r["run"] for r in cont["runs"]] == ["first", "second"] and len(cont["history"]) == 29
    assert cont["runs"][1] == {"run": "second", "lr": 2e-4, "corpus": "corpus-v2", "tokens_m": [15.0, 29.0]}
    (bundle / "curve-fit-history.json").write_text(json.dumps(cont))
    text = "\n".join(targets_section(bundle, PROBE, EVAL))
    assert "L = E + A D^-alpha" in text and "runs continued from these weights (first: 1.0-14.0M tokens" in text
    assert "floor perplexity 33.1" in text  # exp(3.5): the law the points were drawn from
    with pytest.raises(CliError, match="no metrics.json"):
        continued_history([tmp_path / "bundle"])

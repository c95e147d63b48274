"""The default backbone's targets, checked from a bundle's own files, and what more tokens would buy.

- targets(): each target with the measured value and PASS/FAIL with the margin (probe.json: `scripts/py probe`;
  eval.json: `npm run eval:backbone`; model.onnx's size). With probe-previous.json (the default it replaces, copied
  by scripts/package-backbone.sh), every probe must also beat that backbone's.
- loss_curve_fit(): L(D) = E + A * D^-alpha fitted to a run's held-out loss against tokens seen
  (training-history.json, written by scripts/package-backbone.sh from the run's metrics.json), and the tokens at which
  the fit reaches the perplexity target: an extrapolation, said as such.
"""
from __future__ import annotations

import math

PPL_TARGET = 42.0
INT8_PPL_RATIO = 1.03
TOP1_TARGET = 0.98
SPAM_PROBE_TARGET = 0.96
ONNX_MB_TARGET = 16.0


def _row(name: str, shown: str, ok: bool, miss: str = "") -> dict:
    return {"target": name, "measured": shown, "result": "PASS" if ok else f"FAIL{' by ' + miss if miss else ''}"}


def targets(probe: dict | None, ev: dict | None, onnx_mb: float, previous: dict | None) -> list[dict]:
    rows = []
    if probe:
        ppl = probe["heldout"]["ppl"]
        rows.append(
            _row(f"held-out perplexity <= {PPL_TARGET:g}", f"{ppl:.2f}", ppl <= PPL_TARGET, f"{ppl - PPL_TARGET:.2f}")
        )
        spam = probe["probes"].get("spam")
        if spam:
            a = spam["accuracy"]
            miss = f"{(SPAM_PROBE_TARGET - a) * 100:.1f} points"
            rows.append(_row(f"spam linear probe >= {SPAM_PROBE_TARGET:.0%}", f"{a:.1%}", a >= SPAM_PROBE_TARGET, miss))
    if ev:
        r = ev["ppl_ratio"]
        rows.append(_row("int8 perplexity within +3% of fp32", f"{(r - 1) * 100:+.2f}%", r <= INT8_PPL_RATIO))
        t = ev["top1_agreement"]
        rows.append(_row(f"int8 top-1 agreement >= {TOP1_TARGET:.0%}", f"{t:.2%}", t >= TOP1_TARGET))
    rows.append(_row(f"int8 model.onnx <= {ONNX_MB_TARGET:g} MB", f"{onnx_mb:.2f} MB", onnx_mb <= ONNX_MB_TARGET))
    if probe and previous:
        for task, p in probe["probes"].items():
            before = previous["probes"].get(task)
            if before:
                d = (p["accuracy"] - before["accuracy"]) * 100
                rows.append(
                    _row(
                        f"{task} probe above the previous default's ({before['accuracy']:.1%})",
                        f"{p['accuracy']:.1%} ({d:+.1f})",
                        d > 0,
                    )
                )
    return rows


def loss_curve_fit(history: list[dict], target_ppl: float = PPL_TARGET) -> dict | None:
    """Fit L = E + A D^-alpha to (tokens, held-out loss) after the warm-up; None when there are too few points."""
    import numpy as np
    from scipy.optimize import curve_fit

    pts = sorted((h["tokens"], h["heldout_loss"]) for h in history if "heldout_loss" in h and h.get("tokens"))
    pts = pts[len(pts) // 5 :]  # the first fifth is warm-up and the steepest part of the curve
    if len(pts) < 5:
        return None
    D = np.array([p[0] for p in pts], dtype=float) / 1e6
    L = np.array([p[1] for p in pts], dtype=float)

    def law(d, e, a, alpha):
        return e + a * d ** (-alpha)

    try:
        (e, a, alpha), _ = curve_fit(law, D, L, p0=(L.min() * 0.8, 2.0, 0.3), bounds=([0, 0, 0.01], [L.min(), 1e3, 3]))
    except (RuntimeError, ValueError):
        return None
    target = math.log(target_ppl)
    tokens_m = ((target - e) / a) ** (-1 / alpha) if target > e else math.inf
    return {
        "E": round(float(e), 4),
        "A": round(float(a), 4),
        "alpha": round(float(alpha), 4),
        "points": len(pts),
        "tokens_range_m": [round(float(D[0]), 2), round(float(D[-1]), 2)],
        "floor_ppl": round(math.exp(e), 2),
        "tokens_for_target_m": None if math.isinf(tokens_m) else round(float(tokens_m), 1),
        "max_abs_residual": round(float(np.abs(law(D, e, a, alpha) - L).max()), 4),
    }

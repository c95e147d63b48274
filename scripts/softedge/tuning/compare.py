"""Prompt tuning vs prefix tuning vs each readout vs full fine-tuning vs naive Bayes, on the same splits, as a report.

    scripts/py compare [--tasks spam,wordnet-topic,wordnet-define,review-sentiment] [--data NAME=TRAIN.jsonl[:EVAL.jsonl] ...]
                       [--p 5,10,20,50] [--seeds 0,1,2] [--runs .cache/compare] [--out reports] [--plan] [--threads 1]
                       [--backbone BUNDLE] [--tune-args '--steps 50']
    npm run compare

Each run is `scripts/py tune` with its defaults except what the row varies (method, readout, P, seed); a run whose
metrics.json exists is reused, so an interrupted comparison resumes where it stopped (hours on 2 CPU cores for the
whole grid; `--plan` lists the runs and which are done). Writes <out>/COMPARE.md and one PNG per task (held-out
metric against P), and checks the seed's claims against the measured rows.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from softedge.artifacts.catalog import stored_dtype
from softedge.common import CACHE, ROOT, CliError, atomic_path, new_figure, run_cli, save_figure
from softedge.tuning.baselines import BASELINES

DEFAULT_P = 16
BUILT_IN = ("spam", "wordnet-topic", "wordnet-define")  # the tasks the defaults were chosen on; others are unseen
# from scripts/py datasets too, never used to choose anything: the unseen-task check
UNSEEN = ("review-sentiment", "sotu-party")
NB_MARGIN = 2.0  # points: an unseen task's default adapter must reach naive Bayes + this, and TF-IDF LR (seed mean)
CLEAR_WIN = 1.0  # points: an unseen task's default adapter "beats naive Bayes clearly" by at least this (seed mean)


@dataclass(frozen=True)
class Run:
    task: str  # data set name
    kind: str  # classify | generate
    method: str  # nb | full | prompt | prefix
    readout: str | None  # head | verbalizer | None
    p: int
    seed: int

    @property
    def name(self) -> str:
        parts = (
            [self.method]
            + ([self.readout] if self.readout else [])
            + ([f"p{self.p}"] if self.p else [])
            + [f"s{self.seed}"]
        )
        return "-".join(parts)

    def args(self) -> list[str]:
        a = ["--method", self.method, "--seed", str(self.seed)]
        if self.readout:
            a += ["--readout", self.readout]
        if self.p:
            a += ["--virtual-tokens", str(self.p)]
        return a


def train_seconds(m: dict) -> str:
    """Training time: the run's CPU time where it was recorded (wall time counts other work on a shared machine)."""
    return f"{m['cpu_s']:.0f} s CPU" if "cpu_s" in m else f"{m.get('wall_s', 0):.0f} s wall"


def plan(tasks: dict[str, tuple[str, Path, Path | None]], ps: list[int], seeds: list[int]) -> list[Run]:
    runs: list[Run] = []
    for task, (kind, _, _) in tasks.items():
        if kind == "classify":
            runs += [Run(task, kind, b, None, 0, 0) for b in BASELINES]
            runs += [Run(task, kind, "full", "head", 0, 0)]
            for m in ("prompt", "prefix"):
                runs += [Run(task, kind, m, "head", p, 0) for p in ps]
                runs += [Run(task, kind, m, "verbalizer", DEFAULT_P, 0)]
                runs += [Run(task, kind, m, "head", DEFAULT_P, s) for s in seeds if s != 0 or DEFAULT_P not in ps]
        else:
            runs += [Run(task, kind, "full", None, 0, 0)]
            for m in ("prompt", "prefix"):
                runs += [Run(task, kind, m, None, p, 0) for p in ps]
                runs += [Run(task, kind, m, None, DEFAULT_P, s) for s in seeds if s != 0 or DEFAULT_P not in ps]
    return list(dict.fromkeys(runs))


def data_sets(a) -> dict[str, tuple[str, Path, Path | None]]:
    out = {}
    for t in [t for t in a.tasks.split(",") if t]:
        d = a.data_dir / t
        if not (d / "train.jsonl").is_file():
            raise CliError(f"{d}/train.jsonl: not found (run scripts/py datasets)")
        kind = "generate" if "input" in json.loads((d / "train.jsonl").open().readline()) else "classify"
        out[t] = (kind, d / "train.jsonl", d / "eval.jsonl" if (d / "eval.jsonl").is_file() else None)
    for spec in a.data or []:
        name, _, files = spec.partition("=")
        train, _, ev = files.partition(":")
        if not name or not Path(train).is_file():
            raise CliError(f"--data {spec}: expected NAME=TRAIN.jsonl[:EVAL.jsonl] with an existing file")
        kind = "generate" if "input" in json.loads(Path(train).open().readline()) else "classify"
        out[name] = (kind, Path(train), Path(ev) if ev else None)
    return out


def execute(run: Run, tasks, runs_dir: Path, extra: list[str], i: int, n: int) -> dict | None:
    out = runs_dir / run.task / run.name
    if (out / "metrics.json").is_file():
        return json.loads((out / "metrics.json").read_text())
    kind, train, ev = tasks[run.task]
    cmd = [
        sys.executable,
        "-m",
        "softedge",
        "tune",
        "--task",
        kind,
        "--train",
        str(train),
        "--out",
        str(out),
        *run.args(),
        *extra,
    ] + (["--eval", str(ev)] if ev else [])
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{run.name}.log"
    print(f"[{i}/{n}] {run.task} {run.name}: training (log {log})", flush=True)
    t0 = time.time()
    with open(log, "w") as f:
        r = subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "scripts")}
        )
    if r.returncode != 0:
        print(f"[{i}/{n}] {run.task} {run.name}: failed ({log})", flush=True)
        return None
    print(f"[{i}/{n}] {run.task} {run.name}: done in {time.time() - t0:.0f} s", flush=True)
    return json.loads((out / "metrics.json").read_text())


def metric_of(m: dict) -> tuple[str, float]:
    return ("accuracy", m["eval"]["accuracy"]) if "accuracy" in m["eval"] else ("rouge_l", m["eval"]["rouge_l"])


def report(tasks, runs: list[Run], results: dict[Run, dict], out: Path) -> str:
    L = [
        "# Prompt vs prefix tuning vs full fine-tuning vs naive Bayes and TF-IDF logistic regression",
        "",
        "Written by `npm run compare` (scripts/softedge/tuning/compare.py). Every run is `scripts/py tune` with its defaults "
        "except the row's method, readout, P and seed; every figure is on the eval file, which chose nothing (model "
        "selection on a dev split of the training file, which also picks a generation run's no-repeat n-gram size and beam count). "
        "Stored bytes: each run's metrics at float16 and int8 (runs from before int8 heads stored the head at float16 "
        "in both). Rows whose run has not finished say so. A head row marked † holds runs from before the bag's "
        "tokens were chosen by what they say about the label and cut to fit tune's --size-budget (the adapter within "
        "1% of the backbone): their bag is the 4,096 most frequent tokens, whatever the size.",
        "",
    ]
    claims, targets = [], []
    for task, (kind, train, ev) in tasks.items():
        mine = [r for r in runs if r.task == task]
        L += [
            f"## {task} ({kind}; train {train.name}{', eval ' + ev.name if ev else ', eval held out of train'})",
            "",
            "| method | readout | P | seeds | held-out | trained params (% of backbone; prefix: with the MLP dropped after "
            "training) | stored bytes fp16 / int8 | train time | peak memory |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        groups: dict[tuple, list[Run]] = {}
        for r in mine:
            groups.setdefault((r.method, r.readout, r.p), []).append(r)
        for (method, readout, p), rs in groups.items():
            done = [results[r] for r in rs if results.get(r)]
            if not done:
                L.append(f"| {method} | {readout or '-'} | {p or '-'} | {len(rs)} | not run yet | | | | |")
                continue
            name, _ = metric_of(done[0])
            vals = [metric_of(m)[1] * 100 for m in done]
            score = f"{name} {statistics.mean(vals):.1f}" + (
                f" ± {statistics.stdev(vals):.1f}" if len(vals) > 1 else ""
            )
            if readout == "head" and any("bag_budget" not in m for m in done):
                score += " †"
            m = done[0]
            bb = m.get("backbone_params") or 0
            tp = m.get("trained_params")
            params = f"{tp:,} ({tp / bb * 100:.3f}%)" if tp and bb else "-"
            st = m.get("storage") or {}
            stored = f"{st['float16']['bytes']:,} / {st['int8']['bytes']:,}" if st else "-"
            L.append(
                f"| {method} | {readout or '-'} | {p or '-'} | {len(done)}/{len(rs)} | {score} | {params} | {stored} | "
                f"{train_seconds(m)} | {str(m['peak_rss_mb']) + ' MB' if m.get('peak_rss_mb') else '-'} |"
            )
        L.append("")
        png = plot_task(task, mine, results, out)
        if png:
            L += [f"![{task}: held-out metric against P]({png.name})", ""]
        claims += task_claims(task, kind, mine, results)
        targets += target_rows(task, kind, mine, results)
    claims.append(
        "| different adapters (and readouts) share one batch | each item of a mixed batch answers as it does alone, "
        "within 1e-4 (test/js/engine.test.ts, test/worker/api.test.ts: asserted in every npm test) | yes |"
    )
    L += [
        "## The targets of the adapter-quality issue",
        "",
        f"For the CLI's default adapter (prefix tuning, P={DEFAULT_P}, its head for classification): the mean over the "
        "seeds, so that nothing here was chosen on the eval file. Tasks other than spam, wordnet-topic and "
        "wordnet-define were never used to choose a default.",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *targets,
        "",
        "## The seed's claims against these numbers",
        "",
        "| claim | measured | agrees? |",
        "|---|---|---|",
        *claims,
        "",
    ]
    return "\n".join(L)


def adapter_params(m: dict) -> int:
    """What the adapter itself learns, without the head: the soft prompt (P x d) or the prefix's keys/values. Runs
    record it (tune's "adapter_params"); for older runs, from the dimensions of the bundle they name or, when that
    bundle was re-exported since (same weights, another id), of the catalog's default."""
    if "adapter_params" in m:
        return m["adapter_params"]
    bundles = ROOT / "adapters" / "backbones"
    named = bundles / m["backbone"] / "config.json"
    default = bundles / json.loads((ROOT / "adapters" / "catalog.json").read_text())["default_backbone"] / "config.json"
    cfg_file = named if named.is_file() else default
    if not cfg_file.is_file():
        return 0
    cfg = json.loads(cfg_file.read_text())
    P = m["virtual_tokens"]
    if m["method"] == "prompt":
        return P * cfg["hidden_size"]
    return P * cfg["num_layers"] * 2 * cfg["num_kv_heads"] * cfg["head_dim"]


def best(results, rs) -> dict | None:
    done = [results[r] for r in rs if results.get(r)]
    return max(done, key=lambda m: metric_of(m)[1]) if done else None


def steadier_row(task, mine, results, best_prompt: float, best_prefix: float) -> str:
    """Prefix vs prompt tuning (head readout) over the seeds at the default P: better = higher mean, steadier =
    smaller spread. With fewer than two finished seeds each, the best single runs, said as such."""
    seeded = lambda m: [r for r in mine if r.method == m and r.readout == "head" and r.p == DEFAULT_P]  # noqa: E731
    vals = {m: [metric_of(results[r])[1] * 100 for r in seeded(m) if results.get(r)] for m in ("prompt", "prefix")}
    claim = f"| {task}: prefix tuning steadier and better than prompt tuning on a small backbone | "
    if all(len(v) >= 2 for v in vals.values()):
        (ma, sa), (mb, sb) = ((statistics.mean(v), statistics.stdev(v)) for v in (vals["prompt"], vals["prefix"]))
        better, steadier = mb >= ma, sb <= sa
        verdict = {(True, True): "yes", (False, False): "no", (True, False): "better, not steadier"}.get(
            (better, steadier), "steadier, not better"
        )
        seeds = f"{len(vals['prompt'])}/{len(vals['prefix'])} seeds"
        return claim + f"P={DEFAULT_P}, {seeds}: prompt {ma:.1f} ± {sa:.1f}, prefix {mb:.1f} ± {sb:.1f} | {verdict} |"
    shown = f"best prompt {best_prompt:.1f}, best prefix {best_prefix:.1f} (single runs: not a test of steadiness)"
    return claim + f"{shown} | {'yes' if best_prefix >= best_prompt else 'no'} |"


def task_claims(task, kind, mine, results) -> list[str]:
    rows = []
    pick = lambda m, ro: [r for r in mine if r.method == m and (ro is None or r.readout == ro)]  # noqa: E731
    pr, pf = best(results, pick("prompt", "head" if kind == "classify" else None)), best(
        results, pick("prefix", "head" if kind == "classify" else None)
    )
    stored = (
        lambda m: m["adapter_bytes"] / m["bytes_ratio_to_backbone_onnx"] if m.get("bytes_ratio_to_backbone_onnx") else 0
    )  # noqa: E731
    if pr and pf:
        a, b = metric_of(pr)[1] * 100, metric_of(pf)[1] * 100
        if kind == "classify":
            rows.append(steadier_row(task, mine, results, a, b))
        else:  # the seed means at the default P where there are seeds (nothing chosen on the eval file)
            at_p = [
                seed_mean(results, [r for r in mine if r.method == m and r.p == DEFAULT_P])
                for m in ("prompt", "prefix")
            ]
            if all(x and x[2] > 1 for x in at_p):
                (a, sa, n), (b, sb, _) = at_p
                shown = f"P={DEFAULT_P}, {n} seeds: prompt ROUGE-L {a:.1f} ± {sa:.1f}, prefix {b:.1f} ± {sb:.1f}"
            else:
                shown = f"best prompt ROUGE-L {a:.1f}, best prefix {b:.1f} (single runs)"
            rows.append(f"| {task}: prefix tuning better for generation | {shown} | {'yes' if b >= a else 'no'} |")
    for m, lo, hi, label in ((pr, 0.01, 0.1, "prompt"), (pf, 0.1, 1.0, "prefix")):
        if not m:
            continue
        pct = adapter_params(m) / (m["backbone_params"] or 1) * 100
        rows.append(
            f"| {task}: {label} tuning is {lo}-{hi}% of the backbone's parameters | {pct:.3f}% at P={m['virtual_tokens']} "
            f"({'soft prompt P x d' if label == 'prompt' else 'keys/values P x layers x 2 x kv heads x head dim'}; the head aside) | "
            f"{'yes' if lo <= pct <= hi else 'no'} |"
        )
        rows.append(
            f"| {task}: per-task storage is kilobytes, not a model copy ({label}) | {m['adapter_bytes'] / 1024:.0f} KiB "
            f"{stored_dtype(m)} "
            f"({m['bytes_ratio_to_backbone_onnx'] * 100:.2f}% of the {stored(m) / 2 ** 20:.1f} MiB int8 backbone) | yes |"
        )
    full = best(results, pick("full", None))
    d = seed_mean(results, default_runs(mine, kind))
    if d and full:
        rows.append(
            f"| {task}: the default prefix adapter vs full fine-tuning | {d[0]:.1f} vs {metric_of(full)[1] * 100:.1f} | "
            f"{'at least as good' if d[0] >= metric_of(full)[1] * 100 else 'behind'} |"
        )
    for b, label in BASELINES.items():
        base = best(results, pick(b, None))
        if d and base:
            rows.append(
                f"| {task}: the default prefix adapter vs {label} | {d[0]:.1f} vs {metric_of(base)[1] * 100:.1f} | "
                f"{'beats it' if d[0] > metric_of(base)[1] * 100 else 'does not beat it'} |"
            )
    return rows


def default_runs(mine, kind) -> list[Run]:
    """The CLI's default: prefix tuning at the default P (with a head for classification), every seed."""
    readout = "head" if kind == "classify" else None
    return [r for r in mine if r.method == "prefix" and r.p == DEFAULT_P and r.readout == readout]


def seed_mean(results, rs) -> tuple[float, float, int] | None:
    """(mean, spread, runs) of the finished runs' held-out metric, in points; None when none has finished."""
    vals = [metric_of(results[r])[1] * 100 for r in rs if results.get(r)]
    if not vals:
        return None
    return statistics.mean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0, len(vals)


def target_rows(task, kind, mine, results) -> list[str]:
    """The issue's targets for the CLI's default adapter (the seed mean at the default P: nothing chosen on the
    eval file), each with the measured value and by how much it is met or missed."""
    rs = [r for r in default_runs(mine, kind) if results.get(r)]
    d = seed_mean(results, rs)
    if d is None:
        return []
    mean, sd, n = d
    shown = f"{mean:.1f}" + (f" ± {sd:.1f} over {n} seeds" if n > 1 else " (one seed)")
    one = lambda method: best(results, [r for r in mine if r.method == method])  # noqa: E731
    full, nb, lr = one("full"), one("nb"), one("tfidf-lr")
    pts = lambda m: metric_of(m)[1] * 100  # noqa: E731
    met = lambda ok, gap: "met" if ok else f"missed by {gap:.1f} points"  # noqa: E731
    rows = []
    if task == "spam" and full and nb:
        bar = max(97.5, pts(full), pts(nb))
        rows.append(
            f"| spam: >= 97.5% and at least full fine-tuning ({pts(full):.1f}) and naive Bayes ({pts(nb):.1f}) | "
            f"{shown} | {met(mean >= bar, bar - mean)} |"
        )
    if task == "wordnet-topic":
        rows.append(f"| wordnet-topic: >= 70% | {shown} | {met(mean >= 70, 70 - mean)} |")
    if task == "wordnet-define":
        rows.append(f"| wordnet-define: ROUGE-L >= 20 | {shown} | {met(mean >= 20, 20 - mean)} |")
    if task not in BUILT_IN and kind == "classify" and nb:
        lead = mean - pts(nb)
        rows.append(
            f"| {task} (not tuned on): beats naive Bayes ({pts(nb):.1f}) clearly, by >= {CLEAR_WIN:.0f} point | "
            f"{shown} ({lead:+.1f}) | {met(lead >= CLEAR_WIN, CLEAR_WIN - lead)} |"
        )
    if kind == "classify" and nb and lr and task not in BUILT_IN:
        bar = max(pts(lr), pts(nb) + NB_MARGIN)
        rows.append(
            f"| {task} (not tuned on): >= TF-IDF logistic regression ({pts(lr):.1f}) and >= naive Bayes + "
            f"{NB_MARGIN:.0f} ({pts(nb) + NB_MARGIN:.1f}) | {shown} | {met(mean >= bar, bar - mean)} |"
        )
    ratio = max(results[r].get("bytes_ratio_to_backbone_onnx", 0) for r in rs) * 100
    rows.append(
        f"| {task}: prefix adapter stored within 1% of the int8 backbone | {ratio:.2f}% at most | "
        f"{met(ratio <= 1.0, ratio - 1.0)} |"
    )
    name = metric_of(results[rs[0]])[0]
    changes = [
        abs(m["storage"]["int8"][name] - m["storage"]["float32"][name]) * 100
        for m in (results[r] for r in rs)
        if (m.get("storage") or {}).get("int8", {}).get(name) is not None
    ]
    if changes:
        worst = max(changes)
        rows.append(
            f"| {task}: int8 storage moves the metric by <= 0.5 points (against float32) | {worst:.2f} at most | "
            f"{met(worst <= 0.5, worst - 0.5)} |"
        )
    return rows


def plot_task(task, mine, results, out: Path) -> Path | None:
    fig, ax = new_figure()
    drew = False
    for m in ("prompt", "prefix"):
        pts = sorted(
            (r.p, metric_of(results[r])[1] * 100)
            for r in mine
            if r.method == m and r.seed == 0 and r.readout in ("head", None) and results.get(r)
        )
        if pts:
            ax.plot([p for p, _ in pts], [v for _, v in pts], "o-", label=f"{m} tuning")
            drew = True
    for m, style in (("full", "--"), ("nb", ":"), ("tfidf-lr", "-.")):
        b = best(results, [r for r in mine if r.method == m])
        if b:
            ax.axhline(
                metric_of(b)[1] * 100,
                linestyle=style,
                color="gray",
                label=BASELINES.get(m, "full fine-tuning"),
            )
            drew = True
    if not drew:
        return None
    ax.set_xscale("log")
    ax.set_xlabel("virtual tokens P")
    ax.set_ylabel("held-out metric (%)")
    ax.set_title(task)
    ax.legend()
    path = out / f"compare-{task}.png"
    save_figure(fig, path)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(BUILT_IN + UNSEEN))
    ap.add_argument("--data-dir", type=Path, default=CACHE / "data")
    ap.add_argument("--data", action="append", help="another data set: NAME=TRAIN.jsonl[:EVAL.jsonl]")
    ap.add_argument("--p", default="5,10,20,50")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--runs", type=Path, default=CACHE / "compare")
    ap.add_argument("--out", type=Path, default=ROOT / "reports")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backbone", type=Path, help="backbone bundle (default: the catalog's default)")
    ap.add_argument(
        "--tune-args", default="", help="more arguments for every tune run (e.g. '--steps 50' for a quick look)"
    )
    ap.add_argument("--plan", action="store_true", help="list the runs (done or not) and exit")
    ap.add_argument("--report-only", action="store_true", help="write the report from the finished runs; train nothing")
    a = ap.parse_args()
    try:
        ps, seeds = [int(x) for x in a.p.split(",") if x], [int(x) for x in a.seeds.split(",") if x]
    except ValueError:
        raise CliError("--p and --seeds are comma-separated integers") from None
    tasks = data_sets(a)
    runs = plan(tasks, ps, seeds)
    if a.plan:
        for r in runs:
            print(
                f"{r.task:16s} {r.name:28s} {'done' if (a.runs / r.task / r.name / 'metrics.json').is_file() else 'to run'}"
            )
        return
    extra = [
        "--threads",
        str(a.threads),
        *(["--backbone", str(a.backbone)] if a.backbone else []),
        *a.tune_args.split(),
    ]
    done = (
        lambda r: json.loads((a.runs / r.task / r.name / "metrics.json").read_text())
        if (a.runs / r.task / r.name / "metrics.json").is_file()
        else None
    )  # noqa: E731
    results = {
        r: done(r) if a.report_only else execute(r, tasks, a.runs, extra, i, len(runs)) for i, r in enumerate(runs, 1)
    }
    a.out.mkdir(parents=True, exist_ok=True)
    text = report(tasks, runs, results, a.out)
    with atomic_path(a.out / "COMPARE.md") as tmp:
        tmp.write_text(text)
    print(f"wrote {a.out / 'COMPARE.md'} ({sum(1 for v in results.values() if v)}/{len(runs)} runs)")


if __name__ == "__main__":
    run_cli(main)

"""The edge benchmark's plots, from the figures `npm run bench` writes (.cache/bench.json):

    scripts/py bench_plots .cache/bench.json [--out reports]

bench-latency.png: classification latency against input length (workerd through wrangler dev, the same engine on
native onnxruntime-node, PyTorch eager); bench-throughput.png: items per second against the size of a mixed-adapter
batch; bench-generation.png: milliseconds per generated token by position.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from softedge.common import CliError, new_figure, run_cli, save_figure

ENGINES = (("workerd", "workerd (wrangler dev, client)"), ("native", "onnxruntime-node, same engine"))


def plot_latency(r: dict, out: Path) -> Path:
    fig, ax = new_figure()
    rows = r["classify"]
    more = (("engine", "the engine alone in workerd (no HTTP)"), ("eager", "PyTorch eager, same model and prefix"))
    for key, label in ENGINES + more:
        if any(x.get(key) is None for x in rows):
            continue
        ax.plot([x["tokens"] for x in rows], [x[key] for x in rows], marker="o", label=label)
    ax.set(xlabel="input tokens", ylabel="classify p50 (ms)", title=f"classification latency, {r['backbone']}")
    ax.set_ylim(bottom=0)
    ax.legend()
    path = out / "bench-latency.png"
    save_figure(fig, path)
    return path


def plot_throughput(r: dict, out: Path) -> Path:
    fig, ax = new_figure()
    rows = r["throughput"]
    for key, label in ENGINES:
        ax.plot([x["items"] for x in rows], [1000 * x["items"] / x[key] for x in rows], marker="o", label=label)
    ax.set(xlabel="items in one mixed-adapter batch (64 tokens each)", ylabel="items / s", title="batch throughput")
    ax.set_xscale("log", base=2)
    ax.set_xticks([x["items"] for x in rows], [str(x["items"]) for x in rows])
    ax.set_ylim(bottom=0)
    ax.legend()
    path = out / "bench-throughput.png"
    save_figure(fig, path)
    return path


def plot_generation(r: dict, out: Path) -> Path:
    fig, ax = new_figure()
    rows = r["generation"]
    for key, label in ENGINES:
        ax.plot([x["tokens"] for x in rows], [x[key] for x in rows], marker="o", label=label)
    ax.set(xlabel="generated tokens (segment)", ylabel="ms / token", title="generation cost by position")
    ax.set_ylim(bottom=0)
    ax.legend()
    path = out / "bench-generation.png"
    save_figure(fig, path)
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", type=Path)
    ap.add_argument("--out", type=Path, default=Path("reports"))
    a = ap.parse_args(argv)
    try:
        r = json.loads(a.results.read_text())
        missing = {"backbone", "classify", "throughput", "generation"} - set(r)
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {a.results}: {e}") from e
    if missing:
        raise CliError(f"{a.results} lacks {', '.join(sorted(missing))}: rerun npm run bench")
    a.out.mkdir(parents=True, exist_ok=True)
    for path in (plot_latency(r, a.out), plot_throughput(r, a.out), plot_generation(r, a.out)):
        print(f"wrote {path}")


if __name__ == "__main__":
    run_cli(main)

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


def _plot(rows, series, x, y, out: Path, name: str, xlabel: str, ylabel: str, title: str, log2=False) -> Path:
    """One line per (key, label) in series whose figures every row has; x(row) and y(row, key) give the points."""
    fig, ax = new_figure()
    for key, label in series:
        if all(row.get(key) is not None for row in rows):
            ax.plot([x(row) for row in rows], [y(row, key) for row in rows], marker="o", label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if log2:
        ax.set_xscale("log", base=2)
        ax.set_xticks([x(row) for row in rows], [str(x(row)) for row in rows])
    ax.set_ylim(bottom=0)
    ax.legend()
    path = out / f"bench-{name}.png"
    save_figure(fig, path)
    return path


def plots(r: dict, out: Path) -> list[Path]:
    more = (("engine", "the engine alone in workerd (no HTTP)"), ("eager", "PyTorch eager, same model and prefix"))
    return [
        _plot(
            r["classify"],
            ENGINES + more,
            lambda row: row["tokens"],
            lambda row, k: row[k],
            out,
            "latency",
            "input tokens",
            "classify p50 (ms)",
            f"classification latency, {r['backbone']}",
        ),
        _plot(
            r["throughput"],
            ENGINES,
            lambda row: row["items"],
            lambda row, k: 1000 * row["items"] / row[k],
            out,
            "throughput",
            "items in one mixed-adapter batch (64 tokens each)",
            "items / s",
            "batch throughput",
            log2=True,
        ),
        _plot(
            r["generation"],
            ENGINES,
            lambda row: row["tokens"],
            lambda row, k: row[k],
            out,
            "generation",
            "generated tokens (segment)",
            "ms / token",
            "generation cost by position",
        ),
    ]


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
    for path in plots(r, a.out):
        print(f"wrote {path}")


if __name__ == "__main__":
    run_cli(main)

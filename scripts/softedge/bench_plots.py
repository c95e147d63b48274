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


def _plot(out: Path, name: str, rows, series, x: str, labels: tuple[str, str, str], y=None, log2=False) -> Path:
    """One line per (key, label) in series whose figures every row has: row[x] against y(row, key) (default
    row[key]); labels are the x axis, the y axis and the title."""
    y = y or (lambda row, key: row[key])
    fig, ax = new_figure()
    for key, label in series:
        if all(row.get(key) is not None for row in rows):
            ax.plot([row[x] for row in rows], [y(row, key) for row in rows], marker="o", label=label)
    ax.set(xlabel=labels[0], ylabel=labels[1], title=labels[2])
    if log2:
        ax.set_xscale("log", base=2)
        ax.set_xticks([row[x] for row in rows], [str(row[x]) for row in rows])
    ax.set_ylim(bottom=0)
    ax.legend()
    path = out / f"bench-{name}.png"
    save_figure(fig, path)
    return path


def plots(r: dict, out: Path) -> list[Path]:
    more = (("engine", "the engine alone in workerd (no HTTP)"), ("eager", "PyTorch eager, same model and prefix"))
    latency = ("input tokens", "classify p50 (ms)", f"classification latency, {r['backbone']}")
    throughput = ("items in one mixed-adapter batch (64 tokens each)", "items / s", "batch throughput")
    generation = ("generated tokens (segment)", "ms / token", "generation cost by position")
    return [
        _plot(out, "latency", r["classify"], ENGINES + more, "tokens", latency),
        _plot(
            out,
            "throughput",
            r["throughput"],
            ENGINES,
            "items",
            throughput,
            lambda row, k: 1000 * row["items"] / row[k],
            True,
        ),
        _plot(out, "generation", r["generation"], ENGINES, "tokens", generation),
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

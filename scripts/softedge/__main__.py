"""`python -m softedge <command> [args]` (what scripts/py runs): the offline commands by name, wherever their module
lives in the package. The folders follow the flow: data (corpus, task data, tokenizer) -> backbone (model,
pretraining, probes) -> export (ONNX, int8, bundle, card, fixtures) -> tuning (tune, readouts, tuners, baselines,
comparison) -> artifacts (the adapter file, packing, PEFT both ways, retargeting, the catalog) -> publishing."""
from __future__ import annotations

import runpy
import sys

COMMANDS = {
    "corpus": "data.corpus",
    "datasets": "data.datasets",
    "tokenizer": "data.tokenizer",
    "pretrain": "backbone.pretrain",
    "probe": "backbone.probe",
    "ablation": "backbone.ablation",
    "throughput": "backbone.throughput",
    "bundle": "export.bundle",
    "card": "export.card",
    "fixtures": "export.fixtures",
    "tune": "tuning.tune",
    "compare": "tuning.compare",
    "pack": "artifacts.pack",
    "peft_import": "artifacts.peft_import",
    "peft_export": "artifacts.peft_export",
    "retarget": "artifacts.retarget",
    "catalog": "artifacts.catalog",
    "publish": "publishing.publish",
    "bench_eager": "bench_eager",
    "bench_plots": "bench_plots",
    "matmul_graph": "export.matmul_graph",
    "contrib_graphs": "export.contrib_graphs",
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(f"usage: scripts/py <command> [args] (or npx softedge <command>); commands: {', '.join(COMMANDS)}")
        sys.exit(0 if len(sys.argv) > 1 else 2)
    if sys.argv[1] not in COMMANDS:
        print(f"error: unknown command {sys.argv[1]!r}; one of: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(2)
    cmd = sys.argv.pop(1)
    sys.argv[0] = f"softedge {cmd}"  # argparse's prog in usage lines
    runpy.run_module(f"softedge.{COMMANDS[cmd]}", run_name="__main__", alter_sys=False)


if __name__ == "__main__":
    main()

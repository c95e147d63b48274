#!/usr/bin/env bash
# Packages a pretraining run as the default backbone: chooses the int8 scheme by measurement, builds the bundle
# into adapters/backbones/<id>/, writes its fixtures, evaluation and model card, and points adapters/catalog.json
# at it (older bundles are removed, and so is the adapter list: adapters fit one backbone).
# Usage: bash scripts/package-backbone.sh <run dir> <name> [--reuse-scheme]
#   --reuse-scheme: skip the int8 benchmark and keep the current default's scheme and quant-bench.json (for a
#   re-export of the same weights, e.g. when the graph gains an output; the benchmark takes about 15 minutes).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run="${1:?run dir}" NAME="${2:?name}"
if [ "${3:-}" = "--reuse-scheme" ]; then
  cur="adapters/backbones/$(node -p 'require("./adapters/catalog.json").default_backbone')"
  mkdir -p .cache/bench-quant && cp "$cur/quant-bench.json" .cache/bench-quant/results.json
else
  node scripts/bench-quant.mjs "$run"
fi
scheme="$(node -p 'require("./.cache/bench-quant/results.json").choice')"

out="$(scripts/py bundle --weights "$run" --name "$NAME" --quant "$scheme" --out adapters/backbones)"
echo "$out"
id="$(node -e 'const fs=require("fs");const d="adapters/backbones";const x=fs.readdirSync(d).filter(n=>!n.startsWith(".")).map(n=>[n,fs.statSync(d+"/"+n).mtimeMs]).sort((a,b)=>b[1]-a[1]);console.log(x[0][0])')"
dir="adapters/backbones/$id"
cp "$run/loss.png" "$dir/loss.png"
cp .cache/corpus/manifest.json "$dir/corpus-manifest.json"
cp .cache/bench-quant/results.json "$dir/quant-bench.json"
[ -f .cache/runs/embedding-ablation.json ] && cp .cache/runs/embedding-ablation.json "$dir/embedding-ablation.json"

scripts/py fixtures backbone "$dir"                                      # small, committed: the JS tests use it
scripts/py fixtures backbone "$dir" --out .cache/eval-fixture.json --windows 64 --seq 128
node scripts/eval-backbone.mjs "$dir" .cache/eval-fixture.json --write
scripts/py probe "$dir"                                                 # held-out ppl + linear probes: probe.json
scripts/py card "$dir"
node -e 'const fs=require("fs");const p="adapters/catalog.json";const c=fs.existsSync(p)?JSON.parse(fs.readFileSync(p,"utf8")):{};if(c.default_backbone!==process.argv[1])delete c.adapters;c.default_backbone=process.argv[1];fs.writeFileSync(p+".tmp",JSON.stringify(c,null,2)+"\n");fs.renameSync(p+".tmp",p)' "$id"
for old in adapters/backbones/*/; do [ "$old" = "$dir/" ] || rm -rf "$old"; done
echo "default backbone: $id"

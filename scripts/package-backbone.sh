#!/usr/bin/env bash
# Packages a pretraining run as the default backbone: chooses the int8 scheme by measurement, builds the bundle
# into adapters/backbones/<id>/, writes its fixtures, evaluation and model card, and points adapters/catalog.json
# at it (older bundles are removed). Adapters fit one backbone: with new weights the adapter list is dropped
# (retrain them: scripts/build-default-adapters.sh); with the same weights (a re-export: another int8 scheme, a new
# graph output) the catalog's adapters are moved onto the new bundle by scripts/py retarget, which measures each one
# on its eval split when the new scheme's math differs and refuses a change over 0.5 points, and the golden answers
# are rebuilt.
# Usage: bash scripts/package-backbone.sh <run dir> <name> [--reuse-scheme | --reuse-bench]
#   --reuse-scheme: skip the int8 benchmark and keep the current default's scheme and quant-bench.json (for a
#   re-export of the same weights, e.g. when the graph gains an output; the benchmark takes about 15 minutes).
#   --reuse-bench: take the choice from the last `npm run bench:quant` (.cache/bench-quant/results.json), which must
#   have measured these weights.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
run="${1:?run dir}" NAME="${2:?name}"
weights="$run"; [ -d "$run" ] && weights="$run/weights.safetensors"; [ -f "$weights" ] || weights="$run/ckpt.pt"
cur="adapters/backbones/$(node -p 'require("./adapters/catalog.json").default_backbone' 2>/dev/null || true)"
case "${3:-}" in
  --reuse-scheme)
    mkdir -p .cache/bench-quant && cp "$cur/quant-bench.json" .cache/bench-quant/results.json ;;
  --reuse-bench)
    measured="$(node -p 'require("./.cache/bench-quant/results.json").weights')"
    if [ "$(sha256sum < "$measured")" != "$(sha256sum < "$weights")" ]; then
      echo "error: .cache/bench-quant/results.json measured $measured, not $weights: run without --reuse-bench" >&2; exit 2
    fi ;;
  "") node scripts/bench-quant.mjs "$run" ;;
  *) echo "error: unknown option ${3} (--reuse-scheme or --reuse-bench)" >&2; exit 2 ;;
esac
scheme="$(node -p 'require("./.cache/bench-quant/results.json").choice')"
if [ "$scheme" = null ] || [ "$scheme" = undefined ]; then
  echo "error: .cache/bench-quant/results.json chose no int8 scheme for these weights (none meets the targets)" >&2; exit 2
fi

# files only this script adds to a bundle; a rebuild whose id equals the current default's replaces that folder
kept_history=""; trap 'rm -f "$kept_history"' EXIT
if [ -f "$cur/curve-fit-history.json" ]; then kept_history="$(mktemp)" && cp "$cur/curve-fit-history.json" "$kept_history"; fi
out="$(scripts/py bundle --weights "$run" --name "$NAME" --quant "$scheme" --out adapters/backbones)"
echo "$out"
id="$(node -e 'const fs=require("fs");const d="adapters/backbones";const x=fs.readdirSync(d).filter(n=>!n.startsWith(".")).map(n=>[n,fs.statSync(d+"/"+n).mtimeMs]).sort((a,b)=>b[1]-a[1]);console.log(x[0][0])')"
dir="adapters/backbones/$id"
cp "$run/loss.png" "$dir/loss.png"
corpus="$(node -p 'require(process.argv[1]).corpus_dir || ".cache/corpus"' "$PWD/$run/metrics.json" 2>/dev/null || echo .cache/corpus)"
cp "$corpus/manifest.json" "$dir/corpus-manifest.json"   # the corpus the run trained on (v1 unless it says)
cp .cache/bench-quant/results.json "$dir/quant-bench.json"
[ -f .cache/runs/embedding-ablation.json ] && cp .cache/runs/embedding-ablation.json "$dir/embedding-ablation.json"
# same=1: a re-bundle of the current default's weights (a new graph of the same model, or the same bundle again:
# the id is a hash of the bundle, so then the folder is the current default's)
same=0
if [ "$cur" = "$dir" ] || { [ -f "$cur/weights.safetensors" ] && cmp -s "$cur/weights.safetensors" "$dir/weights.safetensors"; }; then
  same=1
fi
# the card's targets: the probes of the default this bundle replaces (before/after; not for the same weights, whose
# probes would only be compared with themselves), the run's held-out loss history
if [ "$same" = 0 ] && [ -f "$cur/probe.json" ]; then cp "$cur/probe.json" "$dir/probe-previous.json"; fi
# the same weights keep the history of the runs continued from them (scripts/py card --fit-from)
if [ "$same" = 1 ] && [ -n "$kept_history" ]; then cp "$kept_history" "$dir/curve-fit-history.json"; fi
if [ -f "$run/metrics.json" ]; then
  node -e 'const m=require(process.argv[1]);const h=(m.history||[]).filter(x=>"heldout_loss" in x).map(({step,tokens,heldout_loss})=>({step,tokens,heldout_loss}));require("fs").writeFileSync(process.argv[2],JSON.stringify(h)+"\n")' "$PWD/$run/metrics.json" "$dir/training-history.json"
fi

# fixtures on one thread, as the goldens (scripts/build-default-adapters.sh says why): independent of the machine
OMP_NUM_THREADS=1 scripts/py fixtures backbone "$dir"                    # small, committed: the JS tests use it
OMP_NUM_THREADS=1 scripts/py fixtures backbone "$dir" --out .cache/eval-fixture.json --windows 64 --seq 128
node scripts/eval-backbone.mjs "$dir" .cache/eval-fixture.json --write
scripts/py probe "$dir"                                                 # held-out ppl + linear probes: probe.json
scripts/py card "$dir"
if [ "$same" = 1 ] && [ "$cur" != "$dir" ]; then
  # the catalog's adapters onto the new bundle (measured when the math differs; nothing moves if one fails)
  scripts/py retarget --from "$cur" --to "$dir" adapters/default/*.safetensors
fi
node -e 'const fs=require("fs");const p="adapters/catalog.json";const c=fs.existsSync(p)?JSON.parse(fs.readFileSync(p,"utf8")):{};if(process.argv[2]!=="1")delete c.adapters;c.default_backbone=process.argv[1];fs.writeFileSync(p+".tmp",JSON.stringify(c,null,2)+"\n");fs.renameSync(p+".tmp",p)' "$id" "$same"
for old in adapters/backbones/*/; do [ "$old" = "$dir/" ] || rm -rf "$old"; done
if [ "$same" = 1 ]; then
  bash scripts/build-default-adapters.sh --goldens-only
  scripts/py catalog --from-default   # the list, cards and ADAPTERS.md with the served figures
fi
echo "default backbone: $id"

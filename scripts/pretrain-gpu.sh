#!/usr/bin/env bash
# A stronger backbone on a CUDA machine, unattended, in a fixed wall-clock budget (bf16 autocast), as a run folder
# that scripts/package-backbone.sh turns into a bundle (int8 scheme chosen by measurement, probe suite, card).
#
#   bash scripts/pretrain-gpu.sh prepare                  here: .gpu/ = corpus v2's token streams + tokenizer (~26 MB),
#                                                         small enough to travel to a GPU machine with the repo
#   bash scripts/pretrain-gpu.sh train [MINUTES] [PRESET] on the GPU machine (python3 with torch, onnx): pretrains
#                                                         .gpu/run for MINUTES (default 8): without PRESET, continued
#                                                         pretraining of the committed default backbone (its weights are
#                                                         in the repo; peak learning rate 3e-4, gentle as the CPU runs
#                                                         that forgot least); with PRESET, a fresh model of that shape
#                                                         (2e-3). INIT_FROM=<bundle> continues another bundle (empty: a
#                                                         fresh default-shaped model). Copies the run to $OUT when set,
#                                                         the weights split into 15 MB parts (files back are
#                                                         <= 16 MiB). Why not the larger `gpu` preset (6 layers,
#                                                         d 384, 12.8M): with the default's int8 scheme its graph takes
#                                                         77.4 MB of wasm memory at load against the default's 40
#                                                         (scripts/lib/wasm-memory.mjs), which with the rest of the
#                                                         isolate (106-115 MB at the default's worst, npm run
#                                                         bench:memory) is far over Workers' 128 MB; the leaner schemes
#                                                         still add 5-14 MB, and one more layer at d 256 adds 8 MB at
#                                                         the peak: each over the isolate's 110 MB budget (README).
#                                                         A GPU can pass over corpus v2's 13M training tokens many times
#                                                         in that budget: 1% of them (DEV_PCT) is set aside, the weights
#                                                         with the lowest loss there are the ones kept, and the run stops
#                                                         after PATIENCE (default 4) evaluations without a better one
#   bash scripts/pretrain-gpu.sh unpack DIR [DEST]        here: DIR (the files that came back) -> .cache/runs/gpu
# GPU_DIR (default .gpu), CORPUS, TOKENIZER, DEVICE (default cuda), STEPS, BATCH, SEQ, LR, EVAL_EVERY, DEV_PCT, PATIENCE,
# INIT_FROM override the defaults.
#   bash scripts/package-backbone.sh .cache/runs/gpu softedge-llama-5m   then compare the probe suites
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
G="${GPU_DIR:-.gpu}" CORPUS="${CORPUS:-.cache/corpus-v2}" TOKENIZER="${TOKENIZER:-.cache/tokenizer}"
export PYTHONPATH="$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
case "${1:-}" in
  prepare)
    if [ ! -f "$CORPUS/train.txt" ]; then scripts/py datasets && scripts/py corpus --version v2 --out "$CORPUS"; fi
    rm -rf "$G.tmp" && mkdir -p "$G.tmp/tokenizer"
    "$PY" -m softedge pretrain --export-tokens "$G.tmp/tokens" --corpus "$CORPUS" --tokenizer "$TOKENIZER"
    cp "$TOKENIZER/tokenizer.model" "$G.tmp/tokenizer/"
    if [ -f "$CORPUS/manifest.json" ]; then cp "$CORPUS/manifest.json" "$G.tmp/"; fi
    rm -rf "$G" && mv "$G.tmp" "$G"
    if [ "$G" = .gpu ] && ! grep -qx '/.gpu/' .git/info/exclude 2>/dev/null; then echo '/.gpu/' >> .git/info/exclude; fi
    du -sh "$G" ;;
  train)
    minutes="${2:-8}"
    [ -d "$G/tokens" ] || { echo "error: no $G/tokens (run 'bash scripts/pretrain-gpu.sh prepare' first, and carry $G)" >&2; exit 2; }
    device="${DEVICE:-cuda}"
    if [ -n "${3:-}" ]; then  # a preset named: a fresh model of that shape, unless INIT_FROM says otherwise
      preset="$3" init_from="${INIT_FROM:-}"
    else  # continued pretraining of the committed default (INIT_FROM= , empty, for a fresh default-shaped model)
      default="$("$PY" -c 'import json; print(json.load(open("adapters/catalog.json"))["default_backbone"])')"
      preset=default init_from="${INIT_FROM-adapters/backbones/$default}"
    fi
    init=(); if [ -n "$init_from" ]; then init=(--init-from "$init_from"); fi
    lr="${LR:-$([ -n "$init_from" ] && echo 3e-4 || echo 2e-3)}"  # gentler when continuing (README: stop 20-21's runs)
    PYTHONUNBUFFERED=1 "$PY" -m softedge pretrain --run "$G/run" --tokens "$G/tokens" --tokenizer "$G/tokenizer" \
      --preset "$preset" "${init[@]}" --device "$device" --minutes "$minutes" --steps "${STEPS:-200000}" --batch "${BATCH:-256}" \
      --seq "${SEQ:-256}" --lr "$lr" --warmup 200 --eval-every "${EVAL_EVERY:-200}" --ckpt-every 1000000 \
      --dev-pct "${DEV_PCT:-1}" --patience "${PATIENCE:-4}"
    if [ -n "${OUT:-}" ]; then
      split -b 15M -d "$G/run/weights.safetensors" "$OUT/weights.part-"
      cp "$G/run/metrics.json" "$G/run/loss.png" "$OUT/"
    fi ;;
  unpack)
    src="${2:?the folder the files of the GPU run came back to}"
    dest="${3:-.cache/runs/gpu}"
    mkdir -p "$dest"
    cat "$src"/weights.part-* > "$dest/weights.safetensors.tmp" && mv "$dest/weights.safetensors.tmp" "$dest/weights.safetensors"
    cp "$src/metrics.json" "$src/loss.png" "$dest/"
    echo "unpacked to $dest" ;;
  *) echo "usage: bash scripts/pretrain-gpu.sh prepare | train [MINUTES] [PRESET] | unpack DIR [DEST]" >&2; exit 2 ;;
esac

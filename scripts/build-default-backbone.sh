#!/usr/bin/env bash
# Rebuilds the default backbone bundle from scratch into adapters/backbones/<id>/ and points adapters/catalog.json
# at it. About 90 minutes on the 2-core development machine (pretraining is compute-bound); see the model card.
#   MINUTES=68 STEPS=2600 THREADS=1 SKIP_ABLATION=0 bash scripts/build-default-backbone.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
MINUTES="${MINUTES:-68}" STEPS="${STEPS:-2600}" THREADS="${THREADS:-1}"   # 1 thread: the 2 vCPUs share a core
NAME="${NAME:-softedge-llama-5m}"

scripts/py datasets   # the corpus is checked against every task's eval split
scripts/py corpus
scripts/py tokenizer

if [ "${SKIP_ABLATION:-0}" != 1 ]; then
  # the same budget with and without GloVe-derived embeddings, side by side (one thread each)
  for init in random glove; do
    rm -rf ".cache/runs/ab-$init"
    scripts/py pretrain --run ".cache/runs/ab-$init" --embed-init "$init" --threads 1 --steps 1600 --minutes 9 \
      --eval-every 100 --ckpt-every 1000 --warmup 50 > ".cache/runs/ab-$init.log" 2>&1 &
  done
  wait
  scripts/py ablation .cache/runs/ab-random .cache/runs/ab-glove --out .cache/runs/embedding-ablation.json
fi

resume=(); [ -f .cache/runs/default/ckpt.pt ] && resume=(--resume)
scripts/py pretrain --run .cache/runs/default --embed-init glove --threads "$THREADS" --steps "$STEPS" \
  --minutes "$MINUTES" --eval-every 250 --ckpt-every 250 "${resume[@]}"

bash scripts/package-backbone.sh .cache/runs/default "$NAME"

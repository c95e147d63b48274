#!/usr/bin/env bash
# Trains the default adapters (and their baselines) on the default backbone, then writes them into the catalog.
# Runs two trainings at a time, one thread each (about 30 minutes on the 2-core development machine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
scripts/py datasets
D=.cache/data R=.cache/tune
mkdir -p "$R"
spam=(--task classify --train $D/spam/train.jsonl --eval $D/spam/eval.jsonl --threads 1 --max-tokens 64)
topic=(--task classify --train $D/wordnet-topic/train.jsonl --eval $D/wordnet-topic/eval.jsonl --threads 1 --epochs 1)
define=(--task generate --train $D/wordnet-define/train.jsonl --eval $D/wordnet-define/eval.jsonl --threads 1 --epochs 1 --max-new-tokens 24 --eval-limit 100)
run() { local name=$1; shift; scripts/py tune "$@" --out "$R/$name" > "$R/$name.log" 2>&1 && tail -1 "$R/$name.log"; }

run spam-nb "${spam[@]}" --method nb
run topic-nb "${topic[@]}" --method nb
# baselines first (the adapters' reports compare to them), two at a time
run spam-full "${spam[@]}" --method full --epochs 1 & run topic-full "${topic[@]}" --method full & wait
run define-full "${define[@]}" --method full &
run spam-prefix "${spam[@]}" --method prefix --virtual-tokens 16 --epochs 3 --lr 5e-3 --patience 6 --compare-to $R/spam-full/metrics.json & wait
run spam-prompt "${spam[@]}" --method prompt --virtual-tokens 20 --init labels --epochs 3 --patience 6 --compare-to $R/spam-full/metrics.json &
run topic-prefix "${topic[@]}" --method prefix --virtual-tokens 16 --compare-to $R/topic-full/metrics.json & wait
run define-prefix "${define[@]}" --method prefix --virtual-tokens 16 --compare-to $R/define-full/metrics.json
scripts/py catalog --runs "$R"
# what the edge must answer for these adapters (test/fixtures/golden.json, read by the JS and workerd tests)
bb="adapters/backbones/$(node -p 'require("./adapters/catalog.json").default_backbone')"
scripts/py fixtures golden "$bb" --case adapters/default/spam-prefix.safetensors:$D/spam/eval.jsonl \
  --case adapters/default/spam-prompt.safetensors:$D/spam/eval.jsonl \
  --case adapters/default/topic-prefix.safetensors:$D/wordnet-topic/eval.jsonl \
  --case adapters/default/define-prefix.safetensors:$D/wordnet-define/eval.jsonl

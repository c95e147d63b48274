#!/usr/bin/env bash
# Trains the default adapters (and their baselines) on the default backbone with the tune CLI's defaults (prefix
# tuning + a classification head, model selection on a dev split of the training file, the eval file scored once at
# the end), then writes them into the catalog and the golden answers. Runs two trainings at a time, one thread each
# (about 90 minutes on the 2-core development machine). Runs already finished in .cache/tune are kept (delete a run
# folder to retrain it).
#   --goldens-only: only rewrite the golden answers for the committed adapters (after a re-export of the backbone)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
D=.cache/data R=.cache/tune
goldens() {
  # what the edge must answer for these adapters (test/fixtures/golden.json, read by the JS and workerd tests).
  # One thread, set before torch starts: the answers follow the BLAS's thread count (per-row int8 rounding turns a
  # last-bit difference into a whole step; two threads moved a topic probability by 7e-4), so they would otherwise
  # depend on the machine that wrote them
  export OMP_NUM_THREADS=1
  local bb="adapters/backbones/$(node -p 'require("./adapters/catalog.json").default_backbone')"
  scripts/py fixtures golden "$bb" --case adapters/default/spam-prefix.safetensors:$D/spam/eval.jsonl \
    --case adapters/default/spam-prompt.safetensors:$D/spam/eval.jsonl \
    --case adapters/default/spam-verbalizer.safetensors:$D/spam/eval.jsonl \
    --case adapters/default/topic-prefix.safetensors:$D/wordnet-topic/eval.jsonl \
    --case adapters/default/define-prefix.safetensors:$D/wordnet-define/eval.jsonl
}
if [ "${1:-}" = "--goldens-only" ]; then goldens; exit 0; fi
bash scripts/setup.sh
scripts/py datasets
mkdir -p "$R"
spam=(--task classify --train $D/spam/train.jsonl --eval $D/spam/eval.jsonl --threads 1)
topic=(--task classify --train $D/wordnet-topic/train.jsonl --eval $D/wordnet-topic/eval.jsonl --threads 1)
define=(--task generate --train $D/wordnet-define/train.jsonl --eval $D/wordnet-define/eval.jsonl --threads 1 --max-new-tokens 24)
run() {
  local name=$1; shift
  if [ -f "$R/$name/metrics.json" ]; then echo "$name: kept ($R/$name)"; return; fi
  echo "$name: training (log: $R/$name.log)"
  scripts/py tune "$@" --out "$R/$name" > "$R/$name.log" 2>&1 && echo "$name: $(tail -1 "$R/$name.log")"
}

run spam-nb "${spam[@]}" --method nb
run topic-nb "${topic[@]}" --method nb
# baselines first (the adapters' reports compare to them), two at a time
run spam-full "${spam[@]}" --method full & run topic-full "${topic[@]}" --method full & wait
run spam-prefix "${spam[@]}" --compare-to $R/spam-full/metrics.json &
run topic-prefix "${topic[@]}" --compare-to $R/topic-full/metrics.json & wait
# stored float16 (the others int8, tune's default) so that the edge's tests read both storage forms; at float16 its
# soft prompt and compiled KV prefix alone fill the 1% size budget, so it has none (its bag: 4,096 tokens)
run spam-prompt "${spam[@]}" --method prompt --virtual-tokens 20 --init labels --dtype float16 --size-budget 0 --compare-to $R/spam-full/metrics.json &
run define-full "${define[@]}" --method full & wait
# the verbalizer readout, for comparison (and so that the edge's tests cover both readouts)
run spam-verbalizer "${spam[@]}" --readout verbalizer --epochs 3 --lr 5e-3 --patience 6 --compare-to $R/spam-full/metrics.json &
run define-prefix "${define[@]}" --compare-to $R/define-full/metrics.json & wait
scripts/py catalog --runs "$R"
goldens

#!/usr/bin/env bash
# All the tests, from a fresh machine: set-up, then the JS tests (vitest) and the Python tests (pytest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
echo "== format and lint: Biome (TypeScript, Node scripts; biome.json), black and flake8 (Python; pyproject.toml, .flake8) =="
npx biome ci --reporter=summary .
black --check -q scripts/softedge test/python
"${PYTHON:-/usr/bin/python3}" -m flake8 scripts/softedge test/python
echo "== tsc (type check of the worker and of the playground) =="
npx tsc --noEmit -p .
npx tsc --noEmit -p web
echo "== vitest: node (ONNX Runtime parity, tokenizer identity, engine vs golden) and workerd (the API) =="
npx vitest run
echo "== pytest (offline pipeline on tiny random models) =="
"${PYTHON:-/usr/bin/python3}" -m pytest -q -p no:cacheprovider test/python

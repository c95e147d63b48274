#!/usr/bin/env bash
# Brings a fresh Debian 12 machine (node 20) to a working state; cheap to re-run.
#  - Debian packages for the offline pipeline (Debian's python3-* packages for /usr/bin/python3; there is no PyPI)
#  - Debian's chromium, for the browser test of the playground and docs (test/js/browser.test.ts); black and flake8
#    for the Python format and lint checks
#  - npm packages from package-lock.json (npm ci), only when the lock file changed since the last install
#  - the worker's static assets (dist/web)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEBS=(python3-torch python3-onnx python3-numpy python3-pytest python3-tqdm python3-sentencepiece
      python3-matplotlib python3-urllib3 python3-sklearn sentencepiece libopenblas0-pthread chromium black python3-flake8)

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# no internet beyond the registries: keep wrangler quiet, and onnxruntime-node uses the CPU binary it ships
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false ONNXRUNTIME_NODE_INSTALL=skip
stamp=node_modules/.softedge-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

# the worker's static assets (playground and API docs, wrangler.toml [assets]): seconds, always rebuilt
node scripts/build-web.mjs

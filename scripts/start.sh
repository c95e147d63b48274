#!/usr/bin/env bash
# Brings the API up locally on the default backbone and adapters: set-up, seed the local R2 (idempotent),
# then `wrangler dev` on http://localhost:8787 (PORT to change it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
node scripts/seed-local-r2.mjs --persist-to .wrangler/state
exec npx wrangler dev --persist-to .wrangler/state --port "${PORT:-8787}" --ip 127.0.0.1

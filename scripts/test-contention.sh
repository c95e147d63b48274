#!/usr/bin/env bash
# The whole suite on a busy machine, as a new user meets it: each run clones the current commit (committed work only)
# into a fresh temporary folder with a fresh HOME (no npm cache, no state from earlier runs), starts two CPU burners,
# runs the README's test command (npm test), stops the burners, and prints the run's wall time and exit status.
#   bash scripts/test-contention.sh [RUNS]      RUNS defaults to 3; 0 only checks that a fresh clone works
# Exits non-zero if any run failed; a failed run's log and clone are kept (the paths are printed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-${RUNS:-3}}"
[[ "$runs" =~ ^[0-9]+$ ]] || { echo "error: RUNS must be a whole number, not '$runs'" >&2; exit 2; }
repo="$(pwd)"
commit="$(git rev-parse HEAD)"
command -v node >/dev/null || { echo "error: node is not on PATH" >&2; exit 2; }
echo "contention: $runs run(s) of npm test at ${commit:0:12}, each beside two CPU burners"

burners=()
stop_burners() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${burners[@]}"; do wait "$pid" 2>/dev/null || true; done
  burners=()
}
trap stop_burners EXIT INT TERM

fresh_clone() {
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/softedge-contention-XXXXXX")"
  git clone --quiet --no-local "$repo" "$tmp/repo"
  git -C "$tmp/repo" checkout --quiet --detach "$commit"
  mkdir "$tmp/home"
}
if ((runs == 0)); then
  fresh_clone && rm -rf "$tmp" && echo "contention: the clone of ${commit:0:12} works; no runs asked for"
  exit 0
fi

failed=0
for ((i = 1; i <= runs; i++)); do
  fresh_clone
  for _ in 1 2; do
    node -e 'for (;;);' &
    burners+=("$!")
  done
  t0=$SECONDS
  status=0
  (cd "$tmp/repo" && HOME="$tmp/home" npm test) >"$tmp/test.log" 2>&1 || status=$?
  stop_burners
  echo "run $i/$runs: $((SECONDS - t0)) s, exit status $status"
  if ((status == 0)); then
    rm -rf "$tmp"
  else
    failed=$((failed + 1))
    echo "  log: $tmp/test.log (the clone is kept beside it)"
    tail -n 5 "$tmp/test.log" | sed 's/^/  | /'
  fi
done
echo "contention: $failed of $runs run(s) failed"
((failed == 0))

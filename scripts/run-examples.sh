#!/usr/bin/env bash
# Run every example in examples/ at a small size, as CI does; each must finish and exit by
# itself (a worker thread left running would keep it alive, so a timeout fails it).
#
#   scripts/run-examples.sh [NODE_BINARY]     (default: node on PATH; needs npm run build)
#
# The examples import the package by name, which resolves to this repository through
# package.json's "name" and "exports" (self-reference), so they run against dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
node_bin="${1:-node}"

# One line per example: the file, then its arguments for a short run.
runs=(
  "examples/vowels-workers.mjs --epochs 40 --workers 2"
  "examples/custom-data.mjs --epochs 60"
  "examples/save-load-predict.mjs --epochs 20"
  "examples/onnx-serve.mjs --epochs 20"
)
listed="$(printf '%s\n' "${runs[@]}" | cut -d' ' -f1 | sort)"
present="$(ls examples/*.mjs | sort)"
if [[ "$listed" != "$present" ]]; then
  echo "run-examples: examples/ and the list in scripts/run-examples.sh differ; every example must run in CI" >&2
  diff <(echo "$listed") <(echo "$present") >&2 || true
  exit 1
fi

for r in "${runs[@]}"; do
  echo "--- $node_bin $r"
  start=$SECONDS
  # shellcheck disable=SC2086 # the arguments are meant to split
  timeout -k 10 "${EXAMPLE_TIMEOUT:-300}" "$node_bin" $r
  echo "--- ok ($((SECONDS - start)) s)"
done
echo "run-examples: ${#runs[@]} examples ran and exited"

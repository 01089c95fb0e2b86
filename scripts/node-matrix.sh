#!/usr/bin/env bash
# Run the tests that depend on the runtime (module loading, worker threads, the native
# BLAS path through koffi, packaging) on other Node.js major versions, with the repo's own
# vitest. Each version's runtime comes from the npm registry (scripts/node-bin.sh).
#
#   scripts/node-matrix.sh [22 24 ...]           versions (default 22 24)
#   MATRIX_TESTS="test/a.test.ts ..." scripts/node-matrix.sh
#
# Needs `npm ci` and `npm run build` done. Prints one summary line per version and exits
# non-zero when any version fails.
set -euo pipefail
cd "$(dirname "$0")/.."

versions=("$@")
(( ${#versions[@]} )) || versions=(22 24)

# Loading: providers and data files; workers: the parallel trainer and its crash handling;
# native: the blas provider (MOE_REQUIRE_BACKEND=blas below makes a fall-back a failure);
# packaging: pack contents and the exports map under import and require.
read -r -a tests <<<"${MATRIX_TESTS:-test/providers.test.ts test/data.test.ts test/parallel.test.ts test/faults.test.ts test/close.test.ts test/backend-fallback.test.ts test/package.test.ts test/exports.test.ts test/kernels.test.ts test/routing.test.ts test/onnx.test.ts}"
missing=()
for t in "${tests[@]}"; do [[ -f "$t" ]] || missing+=("$t"); done
if (( ${#missing[@]} )); then
  echo "node-matrix: test files not found: ${missing[*]} (set MATRIX_TESTS to the files to run)" >&2
  exit 1
fi
[[ -f dist/src/index.js && -f dist/workers/shard.js ]] || { echo "node-matrix: run npm run build first" >&2; exit 1; }

export MOE_REQUIRE_BACKEND="${MOE_REQUIRE_BACKEND:-blas}"
summary=()
status=0
for v in "${versions[@]}"; do
  echo "=== Node $v: ${tests[*]}"
  start=$SECONDS
  if ! node_bin="$(scripts/node-bin.sh "$v")"; then
    summary+=("node $v: FAIL (runtime did not install)")
    status=1
    continue
  fi
  # The runtime's own directory first on PATH, so that anything a test spawns as plain
  # `node` is the same version; npm stays the machine's.
  log="$(mktemp)"
  set +e
  PATH="$(dirname "$node_bin"):$PATH" "$node_bin" node_modules/vitest/vitest.mjs run "${tests[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  # vitest's closing "Tests  N passed (N)" line, without colour codes.
  tests_line="$(sed -E 's/\x1b\[[0-9;]*[A-Za-z]//g' "$log" | grep -E '^ *Tests ' | sed -E 's/ +/ /g; s/^ //' | tail -n1 || true)"
  rm -f "$log"
  result="node $v ($("$node_bin" --version)): $( ((rc == 0)) && echo PASS || echo FAIL) in $((SECONDS - start)) s${tests_line:+, $tests_line}"
  summary+=("$result")
  ((rc == 0)) || status=1
done
printf 'node-matrix: %s\n' "${summary[@]}"
exit "$status"

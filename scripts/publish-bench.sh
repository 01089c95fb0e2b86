#!/bin/sh
# Measure the published benchmark results into bench/results/, each run after waiting for
# a quiet machine (scripts/wait-quiet.sh: 1-minute load below 1.2, polled every 30 s for up
# to 20 minutes); a run that had to start on a busy machine says so in its notes.
# Build first (npm run build). Usage: scripts/publish-bench.sh [peers] [sparse] [kernels] [scaling]
set -u
cd "$(dirname "$0")/.."
out=bench/results
moe="node dist/src/cli/main.js"
runs=${*:-peers sparse kernels scaling}

quiet_note() {
  if status=$(scripts/wait-quiet.sh); then
    echo "Started on a quiet machine: 1-minute load ${status#quiet } (< 1.2) after waiting for it."
  else
    echo "The machine never became quiet (1-minute load ${status#not-quiet } after 20 minutes of waiting for < 1.2; other sessions share its 2 cores): run anyway, read the numbers with that in mind."
  fi
}

for run in $runs; do
  note=$(quiet_note)
  echo "$run: $note" >&2
  case $run in
    peers) $moe bench peers --sizes small,medium,large --out $out --note "$note" > /dev/null ;;
    sparse) $moe bench sparse --out $out --note "$note" > /dev/null ;;
    kernels) $moe bench kernels --out $out --note "$note" > /dev/null ;;
    scaling) $moe bench scaling --workers 1,2 --time 8000 --out $out --note "$note" > /dev/null ;;
    *) echo "unknown run: $run" >&2; exit 2 ;;
  esac || exit $?
done

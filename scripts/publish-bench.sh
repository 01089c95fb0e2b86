#!/bin/sh
# Measure the published benchmark results into bench/results/, each run after waiting for
# a quiet machine (scripts/wait-quiet.sh: 1-minute load below 1.2, polled every 30 s for up
# to 20 minutes); a run that had to start on a busy machine says so in its notes.
# Build first (npm run build). Usage:
#   scripts/publish-bench.sh [peers] [hard] [sparse] [sparse-4096] [kernels] [scaling] [mpi] [jacobs1991]
# (all of them by default). WAIT_MAX=seconds bounds each wait for a quiet machine (default 1200).
#   hard:        peers on independent random targets (each row's slowdown), medium and large,
#                into bench/results/hard/
#   sparse-4096: the sparse benchmark at batch 4096, into bench/results/batch-4096/
#   mpi:         2 MPI ranks × 1 worker against 1 rank × 2 workers, medium (scripts/mpi-bench.mjs)
#   jacobs1991:  the paper's reproduction, into results/
set -u
cd "$(dirname "$0")/.."
out=bench/results
moe="node dist/src/cli/main.js"
runs=${*:-peers hard sparse sparse-4096 kernels scaling mpi jacobs1991}

quiet_note() {
  if status=$(scripts/wait-quiet.sh 1.2 "${WAIT_MAX:-1200}" 15); then
    echo "Started on a quiet machine: 1-minute load ${status#quiet } (< 1.2) after waiting for it."
  else
    echo "The machine never became quiet (1-minute load ${status#not-quiet } after ${WAIT_MAX:-1200} s of waiting for < 1.2; other sessions share its 2 cores): run anyway, read the numbers with that in mind."
  fi
}

for run in $runs; do
  note=$(quiet_note)
  echo "$run: $note" >&2
  case $run in
    peers) $moe bench peers --sizes small,medium,large --out $out --note "$note" > /dev/null ;;
    hard) mkdir -p $out/hard && $moe bench peers --data hard --sizes medium,large --rounds 1 --pytorch-configs torch1-blas1,torch1-blas2 --out $out/hard --note "$note" > /dev/null ;;
    sparse) $moe bench sparse --out $out --note "$note" > /dev/null ;;
    sparse-4096) mkdir -p $out/batch-4096 && $moe bench sparse --batch 4096 --out $out/batch-4096 --note "$note" > /dev/null ;;
    mpi) node scripts/mpi-bench.mjs --rounds 3 --out $out --note "$note" > /dev/null ;;
    jacobs1991) $moe reproduce jacobs1991 --runs 25 --out results/ --force > /dev/null ;;
    kernels) $moe bench kernels --out $out --note "$note" > /dev/null ;;
    scaling) $moe bench scaling --workers 1,2 --time 8000 --out $out --note "$note" > /dev/null ;;
    *) echo "unknown run: $run" >&2; exit 2 ;;
  esac || exit $?
done

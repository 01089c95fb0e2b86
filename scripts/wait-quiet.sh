#!/bin/sh
# Wait until the machine is quiet enough to publish a benchmark: the 1-minute load average
# below a threshold (default 1.2), polled every 30 s for at most 20 minutes. Prints one line
# per poll on stderr and, on stdout, the last load seen and whether it was quiet:
#   quiet 0.84        (exit 0)
#   not-quiet 2.31    (exit 1: it never dropped; run anyway and say so in the results' notes)
# Usage: scripts/wait-quiet.sh [threshold] [max-seconds] [poll-seconds]
set -eu
threshold=${1:-1.2}
max=${2:-1200}
poll=${3:-30}
waited=0
while :; do
  load=$(cut -d ' ' -f 1 /proc/loadavg)
  if awk -v l="$load" -v t="$threshold" 'BEGIN { exit !(l < t) }'; then
    echo "quiet $load"
    exit 0
  fi
  if [ "$waited" -ge "$max" ]; then
    echo "not-quiet $load"
    exit 1
  fi
  echo "load $load >= $threshold after ${waited}s; polling again in ${poll}s" >&2
  sleep "$poll"
  waited=$((waited + poll))
done

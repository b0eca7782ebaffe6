#!/usr/bin/env bash
# scripts/sim-sweep.sh: a long sweep of simulator seeds (docs/sim.md). Runs shoal-sim over
# [FIRST, FIRST+COUNT) in chunks, and appends every failing seed, with its scenario and first
# violation, to sim/regressions.txt (unless it is already listed).
# Usage: scripts/sim-sweep.sh [FIRST=1] [COUNT=10000] [extra shoal-sim flags...]
#   SHOAL_SIM=path/to/shoal-sim (default build-sim/sim/shoal-sim), JOBS=threads (default nproc).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
sim="${SHOAL_SIM:-$root/build-sim/sim/shoal-sim}"
first="${1:-1}"
count="${2:-10000}"
shift $(( $# > 2 ? 2 : $# ))
extra=("$@")
jobs="${JOBS:-$(nproc)}"
chunk=500
list="$root/sim/regressions.txt"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
failed=0
for (( s = first; s < first + count; s += chunk )); do
  n=$(( first + count - s < chunk ? first + count - s : chunk ))
  "$sim" --seed "$s" --seeds "$n" --jobs "$jobs" "${extra[@]}" > "$out" || true
  tail -n 1 "$out"
  # Each failing seed prints "  reproduce: shoal-sim ..." after its scenario and violations.
  while IFS= read -r cmd; do
    args="${cmd#*shoal-sim }"
    seed="$(sed -E 's/.*--seed ([0-9]+).*/\1/' <<< "$args")"
    scen="$(grep -A1 -E "^seed=$seed " "$out" | sed -n 's/^  scenario: //p' | head -n 1)"
    first_v="$(grep -A3 -E "^seed=$seed " "$out" | sed -n 's/^  violation //p' | head -n 1)"
    failed=$(( failed + 1 ))
    if ! grep -qxF -- "$args" <(sed -E 's/ *#.*//' "$list"); then
      echo "$args  # $scen | $first_v" >> "$list"
      echo "added: $args"
    fi
  done < <(sed -n 's/^  reproduce: //p' "$out")
done
echo "sweep seeds=$count failing=$failed"
[ "$failed" -eq 0 ]

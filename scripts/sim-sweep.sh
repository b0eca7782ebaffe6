#!/usr/bin/env bash
# scripts/sim-sweep.sh: a long sweep of simulator seeds (docs/sim.md). Runs shoal-sim over
# [FIRST, FIRST+COUNT) in chunks of 500, the first half of the seeds with repair and the second
# half with --no-repair, appends every failing seed (with its scenario and first violation) to
# sim/regressions.txt unless it is already listed, runs a few seeds of each half twice and
# compares their trace hashes, and prints the totals, and the convergence time after heal against
# peers and against hops (the longest site-to-site path) for each half (median, p90, max ms). Exit status 1 on any violation, any seed
# not converged or any hash mismatch.
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
seedlines="$(mktemp)"
trap 'rm -f "$out" "$seedlines"' EXIT
start=$SECONDS
failed=0 seeds=0 violations=0 converged=0 max_ms=0 mismatches=0
half=$(( count / 2 ))
s=$first
while (( s < first + count )); do
  n=$(( first + count - s < chunk ? first + count - s : chunk ))
  # The chunk's mode: repair for the first half of the range, --no-repair for the second.
  mode=()
  if (( s >= first + half )); then mode=(--no-repair); fi
  if (( s < first + half && s + n > first + half )); then n=$(( first + half - s )); fi
  "$sim" --seed "$s" --seeds "$n" --jobs "$jobs" "${mode[@]}" "${extra[@]}" > "$out" || true
  last="$(tail -n 1 "$out")"
  echo "${mode[*]:-repair} $last"
  sed -n "s/^seed=/${mode[*]:-repair} seed=/p" "$out" >> "$seedlines"
  seeds=$(( seeds + $(sed -E 's/.*seeds=([0-9]+).*/\1/' <<< "$last") ))
  violations=$(( violations + $(sed -E 's/.*violations=([0-9]+).*/\1/' <<< "$last") ))
  converged=$(( converged + $(sed -E 's/.*converged=([0-9]+).*/\1/' <<< "$last") ))
  ms=$(sed -E 's/.*max_converge_ms=([0-9]+).*/\1/' <<< "$last")
  (( ms > max_ms )) && max_ms=$ms
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
  # Determinism: the chunk's first 3 seeds again, one thread, same hashes.
  k=$(( n < 3 ? n : 3 ))
  again="$("$sim" --seed "$s" --seeds "$k" --jobs 1 "${mode[@]}" "${extra[@]}" | grep -E '^seed=' | sed -E 's/.* trace=([0-9a-f]+)$/\1/' || true)"
  before="$(awk -v k="$k" '/^seed=/ { print; if (++c == k) exit }' "$out" | sed -E 's/.* trace=([0-9a-f]+)$/\1/')"
  if [ "$again" != "$before" ]; then
    mismatches=$(( mismatches + 1 ))
    echo "trace hash mismatch in seeds $s..$(( s + k - 1 )) ${mode[*]}"
  fi
  s=$(( s + n ))
done
# Convergence after heal by peers and by hops, per half: "mode by=value seeds median p90 max".
for by in peers hops; do
  sed -E "s/^([^ ]+) .* ${by}=([0-9]+) .* converge_ms=([0-9]+) .*/\1 \2 \3/; t; s/^([^ ]+) .* converge_ms=([0-9]+) .* ${by}=([0-9]+) .*/\1 \3 \2/" "$seedlines" |
    sort -k1,1 -k2,2n -k3,3n |
    awk -v by="$by" '{ k = $1 " " $2; v[k, ++n[k]] = $3; if (!(k in seen)) { seen[k] = 1; order[++m] = k } }
      END { for (i = 1; i <= m; ++i) { k = order[i]; c = n[k]; split(k, a, " "); p = int((c * 9 + 9) / 10);
              if (p > c) p = c;
              printf "converge %s %s=%s seeds=%d median_ms=%d p90_ms=%d max_ms=%d\n", a[1], by, a[2], c,
                     v[k, int((c + 1) / 2)], v[k, p], v[k, c] } }'
done
echo "sweep seeds=$seeds (repair $half, no-repair $(( count - half ))) violations=$violations converged=$converged" \
     "failing=$failed max_converge_ms=$max_ms hash_mismatches=$mismatches seconds=$(( SECONDS - start ))"
[ "$failed" -eq 0 ] && [ "$mismatches" -eq 0 ] && [ "$converged" -eq "$seeds" ]

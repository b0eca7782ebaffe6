#!/bin/sh
# tests/sim/sim_cli_test.sh SHOAL_SIM: shoal-sim's command line on bad input (docs/sim.md).
# Proves: each numeric flag outside its documented range (--seeds -1, which asked for 2^64
# scenarios and died of std::bad_alloc; --peers 1000, clamped silently to 64; --sites above
# --peers; --max-converge-s -5, which judged every seed not converged; --jobs 100000, which died
# starting threads; --large-dim 2) exits 2 with a message naming the flag, the range and the
# value seen, and runs no seed; an unknown flag exits 2 (CLI11's own code was 109); --help exits
# 0; a valid small run still prints its summary line and exits 0.
set -u
sim=$1
fails=0
refused() {  # refused "ARGS" PATTERN
  # shellcheck disable=SC2086
  out=$("$sim" $1 2>&1); rc=$?
  if [ "$rc" != 2 ]; then echo "FAIL: $1: exit $rc, expected 2 ($out)"; fails=$((fails + 1)); return; fi
  if echo "$out" | grep -q "^sim seeds="; then echo "FAIL: $1: ran seeds"; fails=$((fails + 1)); return; fi
  if echo "$out" | grep -q -- "$2"; then echo "ok: $1"; else echo "FAIL: $1: '$out' lacks '$2'"; fails=$((fails + 1)); fi
}
refused "--seeds -1" "--seeds: must be a whole number 0..1000000, got '-1'"
refused "--seeds 99999999999" "--seeds: must be a whole number 0..1000000, got '99999999999'"
refused "--peers 1000" "--peers: must be a whole number 1..64, got '1000'"
refused "--peers 2 --sites 3" "--sites 3 must be at most --peers 2"
refused "--max-converge-s -5" "--max-converge-s: must be a whole number 1..31622400, got '-5'"
refused "--jobs 100000" "--jobs: must be a whole number 0..256, got '100000'"
refused "--large-dim 2" "--large-dim: must be a whole number 4..1024, got '2'"
refused "--seed -1" "--seed: must be a whole number 0..18446744073709551615, got '-1'"
refused "--no-such-flag" "not expected: --no-such-flag"
"$sim" --help >/dev/null 2>&1; rc=$?
[ "$rc" = 0 ] && echo "ok: --help exits 0" || { echo "FAIL: --help exit $rc"; fails=$((fails + 1)); }
out=$("$sim" --seed 3 --seeds 1 --peers 3 --sites 2 --jobs 0 --max-converge-s 120 2>&1); rc=$?
if [ "$rc" = 0 ] && echo "$out" | grep -q "^sim seeds=1 violations=0 converged=1 "; then echo "ok: a valid run"; else
  echo "FAIL: valid run: exit $rc: $out"; fails=$((fails + 1)); fi
if [ "$fails" -ne 0 ]; then echo "$fails failed"; exit 1; fi

#!/bin/sh
# tests/mesh/demo_cli_test.sh SHOAL_DEMO SHOALD: shoal-demo (the README's run command) on bad
# input and when it ends early.
# Proves: --images and --gateways outside their ranges (-1, 0, x, 59601; 9), an unknown option and
# a bad --mode exit 2 naming the option, the range and the value seen, before any gateway starts
# (--images 0 used to end in std::terminate, --images -1 read as 2^64 - 1, x in std::terminate);
# when the demo fails after starting its gateways (a dataset directory that does not exist), and
# when it is killed with SIGTERM mid-run, no shoald it started outlives it (they used to keep
# running, holding their data directories and ports).
set -u
demo=$1
shoald=$2
work=$(mktemp -d)
fails=0
leftovers() { ps -eo pid=,args= | grep -F "shoald --config $work/" | grep -v grep | awk '{print $1}'; }
cleanup() { for p in $(leftovers); do kill "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
refused() {  # refused "ARGS" PATTERN
  # shellcheck disable=SC2086
  out=$("$demo" --shoald "$shoald" --work "$work/u" $1 2>&1); rc=$?
  if [ "$rc" != 2 ]; then echo "FAIL: $1: exit $rc, expected 2 ($out)"; fails=$((fails + 1)); return; fi
  if echo "$out" | grep -q "gateways started"; then echo "FAIL: $1: started gateways"; fails=$((fails + 1)); return; fi
  if echo "$out" | grep -q -- "$2"; then echo "ok: $1"; else echo "FAIL: $1: '$out' lacks '$2'"; fails=$((fails + 1)); fi
}
refused "--images -1" "--images must be a whole number 1..59600, got '-1'"
refused "--images 0" "--images must be a whole number 1..59600, got '0'"
refused "--images x" "--images must be a whole number 1..59600, got 'x'"
refused "--images 59601" "--images must be a whole number 1..59600, got '59601'"
refused "--gateways 9" "--gateways must be a whole number 2..8, got '9'"
refused "--mode sideways" "--mode is auto, netns or loopback, got 'sideways'"
refused "--no-such-option" "unknown option --no-such-option"

# A failure after the gateways started: they end with the demo.
out=$("$demo" --shoald "$shoald" --work "$work/a" --mode loopback --images 10 --dataset "$work/no-dataset" 2>&1); rc=$?
[ "$rc" = 1 ] && echo "$out" | grep -q "gateways started" && echo "$out" | grep -q "no-dataset" &&
  echo "ok: a missing dataset fails after the gateways started" ||
  { echo "FAIL: missing dataset: exit $rc: $out"; fails=$((fails + 1)); }
sleep 1
left=$(leftovers)
[ -z "$left" ] && echo "ok: no gateway outlives a failed demo" || { echo "FAIL: gateways left running: $left"; fails=$((fails + 1)); }

# SIGTERM mid-run: wait for the three gateways, kill the demo, and none may remain.
"$demo" --shoald "$shoald" --work "$work/b" --mode loopback --images 2000 >"$work/b.log" 2>&1 &
pid=$!
i=0
while [ "$(leftovers | wc -l)" -lt 3 ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
[ "$(leftovers | wc -l)" -eq 3 ] && echo "ok: three gateways running" || { echo "FAIL: gateways did not start"; fails=$((fails + 1)); }
kill -TERM "$pid"
wait "$pid" 2>/dev/null
i=0
while [ -n "$(leftovers)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
left=$(leftovers)
[ -z "$left" ] && echo "ok: no gateway outlives a killed demo" || { echo "FAIL: gateways left running: $left"; fails=$((fails + 1)); }

if [ "$fails" -ne 0 ]; then echo "$fails failed"; exit 1; fi

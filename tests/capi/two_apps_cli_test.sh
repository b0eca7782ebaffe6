#!/usr/bin/env bash
# Proves that two apps and the CLI can use one daemon at once (issue 14): against
# tests/capi/shoal_test_server (the daemon's LocalApi), two app processes
# (shoal_capi_client_scale_test app: 300 records each in batches of 10, each batch found by search
# right after it is written) and the CLI (`shoal --connect`: import of 300 JSON-lines records in
# batches of 25, then searches) run at the same time. At the end every write is present (none
# lost), seen by each app process (check mode) and by the CLI (count 900, get of each app's
# records, search finds an imported record at distance 0).
# Usage: two_apps_cli_test.sh SERVER CLI TEST DIR        Exit: 0 pass, 1 fail.
set -uo pipefail
server=$1 cli=$2 test=$3 dir=$4
rm -rf "$dir"
tmp=$(mktemp -d /tmp/shoal-2apps.XXXXXX)   # short: a socket path must fit in 108 bytes
cleanup() {
  exec 3>&- 2>/dev/null || true
  if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "two_apps_cli_test: FAIL: $*"; exit 1; }
mkfifo "$tmp/in"
# SHOAL_TEST_SERVER_TSAN_OPTIONS: more ThreadSanitizer options for the server only (a TSan build's
# CTest sets it: docs/decisions.md, D71); empty otherwise.
TSAN_OPTIONS="${TSAN_OPTIONS:-} ${SHOAL_TEST_SERVER_TSAN_OPTIONS:-}" \
  "$server" "$dir" "$tmp/api.sock" <"$tmp/in" >"$tmp/out" &
pid=$!
exec 3>"$tmp/in"
for _ in $(seq 1 200); do
  grep -q '^ready$' "$tmp/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || fail "the test server exited before it was ready"
  sleep 0.05
done
grep -q '^ready$' "$tmp/out" || fail "the test server was not ready after 10 s"
sock="$tmp/api.sock"
c() { "$cli" --connect "$sock" "$@"; }

c collection create c --dim 8 >/dev/null || fail "collection create"
# 300 records for the CLI: cli-i with vector (i, i+1, ..., i+7) / 10.
awk 'BEGIN { for (i = 0; i < 300; i++) { printf "{\"id\":\"cli-%d\",\"vector\":[", i;
       for (j = 0; j < 8; j++) printf "%s%.1f", (j ? "," : ""), (i + j) / 10.0; print "]}" } }' >"$tmp/cli.jsonl"

"$test" app "$sock" c a 300 >"$tmp/a.log" 2>&1 & a=$!
"$test" app "$sock" c b 300 >"$tmp/b.log" 2>&1 & b=$!
( c import c "$tmp/cli.jsonl" --batch 25 && for i in 0 50 100 150 200 250; do
    c search c --vector "$(awk -v i=$i 'BEGIN { for (j = 0; j < 8; j++) printf "%s%.1f", (j ? "," : ""), (i + j) / 10.0 }')" -k 1 || exit 1
  done ) >"$tmp/cli.log" 2>&1 & l=$!
wait $a || { cat "$tmp/a.log"; fail "app a"; }
wait $b || { cat "$tmp/b.log"; fail "app b"; }
wait $l || { cat "$tmp/cli.log"; fail "the CLI's import and searches"; }
grep -q "cli-250" "$tmp/cli.log" || { cat "$tmp/cli.log"; fail "the CLI's search did not find cli-250"; }

# Each app process sees every write, its own and the others'.
"$test" check "$sock" c a- 300 b- 300 cli- 300 || fail "check (first process)"
"$test" check "$sock" c a- 300 b- 300 cli- 300 || fail "check (second process)"
n=$(c count c) || fail "count"
[ "$(echo "$n" | tr -dc 0-9)" = 900 ] || fail "count says '$n', expected 900"
c get c a-299 >/dev/null || fail "the CLI cannot get a-299"
c get c b-0 >/dev/null || fail "the CLI cannot get b-0"

exec 3>&-
wait "$pid" || fail "the test server exited with $?"
pid=
echo "two_apps_cli_test: passed (900 records from two apps and the CLI, all present everywhere)"

#!/usr/bin/env bash
# Runs a C API test in client mode: starts tests/capi/shoal_test_server (a daemon stand-in serving
# the local API) on a fresh data directory DIR and a socket in a temporary directory, runs
# `TEST DIR` with SHOAL_TEST_CONNECT=<socket>, then closes the server's stdin (its stop signal)
# and waits for it. Exits with the test's status; 1 if the server did not start or stop cleanly.
# Usage: run_client_mode.sh SERVER TEST DIR
set -uo pipefail
server=$1 test=$2 dir=$3
rm -rf "$dir"
tmp=$(mktemp -d /tmp/shoal-capi.XXXXXX)   # short: a socket path must fit in 108 bytes
cleanup() {
  exec 3>&- 2>/dev/null || true
  if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
mkfifo "$tmp/in"
"$server" "$dir" "$tmp/api.sock" <"$tmp/in" >"$tmp/out" &
pid=$!
exec 3>"$tmp/in"
for _ in $(seq 1 200); do
  grep -q '^ready$' "$tmp/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "run_client_mode: the test server exited before it was ready"; exit 1; }
  sleep 0.05
done
grep -q '^ready$' "$tmp/out" || { echo "run_client_mode: the test server was not ready after 10 s"; exit 1; }
SHOAL_TEST_CONNECT="$tmp/api.sock" "$test" "$dir"
rc=$?
exec 3>&-
wait "$pid"
src=$?
pid=
if [ $src -ne 0 ]; then
  echo "run_client_mode: the test server exited with $src"
  [ $rc -eq 0 ] && rc=1
fi
exit $rc

#!/usr/bin/env bash
# Runs bench/client (issue 14, "Bench"): client mode (shoal_connect to the daemon's local API,
# served by tests/capi/shoal_test_server, the daemon's LocalApi with its default read pool) against
# embedded mode (shoal_open), through the C API with default settings, on the same Fashion-MNIST
# subset in the same run: QPS at ef=16 with 4 clients vs 4 threads (goal >= 0.7x), the added
# latency per call for one client (p50/p99), and write throughput. Data under the build dir.
#
#   scripts/bench-client.sh [build-dir] [--n 10000] [--q 1000]     (default build dir: build)
# Builds only what it needs (bench_client, shoal_client, shoal_test_server) in an existing,
# configured build dir.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
shift || true
case "$build" in /*) ;; *) build="$here/$build" ;; esac
if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "bench-client: $build is not configured; run scripts/setup.sh $(basename "$build") first" >&2
  exit 2
fi
cmake --build "$build" -j2 --target bench_client shoal_client shoal_test_server >/dev/null
exec "$build/bench/client/bench_client" "$build/tests/capi/shoal_test_server" --dir "$build/bench-client-work" "$@"

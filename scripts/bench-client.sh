#!/usr/bin/env bash
# Runs bench/client (issue 14, "Bench"): client mode (shoal_connect to a real shoald's local API,
# started by bench/client/shoald_server.sh with default settings but a loopback mesh port and no
# metrics) against embedded mode (shoal_open), through the C API with default settings, on the
# same Fashion-MNIST subset in the same run: QPS at ef=16 with 4 clients vs 4 threads (goal
# >= 0.7x), the added latency per call for one client (p50/p99), and write throughput. Data under
# the build dir. Prints the load average before and after (the figures depend on it).
#
#   scripts/bench-client.sh [build-dir] [--test-server] [--n 10000] [--q 1000]   (default: build)
# --test-server: serve with tests/capi/shoal_test_server (the daemon's LocalApi with no mesh)
# instead of shoald. Builds only what it needs in an existing, configured build dir.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
shift || true
case "$build" in /*) ;; *) build="$here/$build" ;; esac
if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "bench-client: $build is not configured; run scripts/setup.sh $(basename "$build") first" >&2
  exit 2
fi
server="$here/bench/client/shoald_server.sh"
if [ "${1:-}" = "--test-server" ]; then
  server="$build/tests/capi/shoal_test_server"
  shift
fi
cmake --build "$build" -j2 --target bench_client shoal_client shoal_test_server shoald shoal >/dev/null
export SHOAL="$build/node/shoal" SHOALD="$build/node/daemon/shoald"
echo "bench-client: load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/client/bench_client" "$server" --dir "$build/bench-client-work" "$@"
echo "bench-client: load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

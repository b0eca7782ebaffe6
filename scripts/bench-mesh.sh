#!/usr/bin/env bash
# Runs bench/mesh (issue 13, "Bench") and prints its table with the ISA: hot-tier propagation
# p50/p99 for 3 and 10 hosts, sync throughput (128-d and 768-d) against local batched ingest on
# the same peer, and reconnect-to-caught-up after a partition with 10,000 writes on each side.
# Hosts are separate processes on loopback with their data directories on disk (under the build
# dir), enrolled with `shoal mesh init/enrol`. Default run: about 1-2 minutes.
#
#   scripts/bench-mesh.sh [build-dir] [bench_mesh options...]     (default build dir: build)
#   e.g. scripts/bench-mesh.sh build-benchmesh --quick
#        scripts/bench-mesh.sh build --partition-s 60             (the issue's 1-minute partition)
# Builds only the two targets it needs (bench_mesh, shoal) in an existing, configured build dir.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
shift || true
case "$build" in /*) ;; *) build="$here/$build" ;; esac
if [ ! -f "$build/CMakeCache.txt" ]; then
  echo "bench-mesh: $build is not configured; run scripts/setup.sh $(basename "$build") first" >&2
  exit 2
fi
cmake --build "$build" -j2 --target bench_mesh shoal >/dev/null
exec "$build/bench/mesh/bench_mesh" --shoal "$build/node/shoal" --work "$build/bench-mesh-work" "$@"

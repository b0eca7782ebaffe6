#!/usr/bin/env bash
# bench/sink/run.sh BUILD_DIR [objects] [object_bytes] [rounds]: runs bench_sink against a
# signature-checking moto_server on loopback, started and stopped by tests/sink/run_s3_tests.sh.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${1:?usage: bench/sink/run.sh BUILD_DIR [objects] [object_bytes] [rounds]}
shift
exec "$here/tests/sink/run_s3_tests.sh" "$build/bench/sink/bench_sink" "$@"

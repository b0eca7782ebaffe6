#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the embedded benchmark on the default data:
# a local node built from Debian's Fashion-MNIST (60,000 x 784) through the C API, answering the
# 10,000 test queries, with recall, latency and ingest rate measured on the spot against the
# index alone and raw LMDB (bench/node). Extra arguments go to bench_node (e.g. --quick).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" build
exec "$here/build/bench/node/bench_node" /usr/share/datasets/fashion-mnist "$@"

#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs Shoal's main job on the embedded default data:
# today, the ANN benchmark on Debian's Fashion-MNIST (60,000 x 784), Shoal's index side by side
# with raw hnswlib, every figure measured on the spot. Extra arguments go to bench_ann.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" build
exec "$here/build/bench/ann/bench_ann" /usr/share/datasets/fashion-mnist "$@"

#!/bin/sh
# Runs the store's kill -9 test for many cycles (CI runs 60 inside shoal_store_tests).
# Usage: scripts/kill9-store.sh [cycles] [build-dir] [rng-seed]
# A child process commits numbered batches to an LMDB store and is SIGKILLed at random points;
# after each kill the store must reopen cleanly with every acknowledged batch whole.
set -eu
cycles=${1:-1000}
build=${2:-build-store}
seed=${3:-time}
bin="$build/tests/store/shoal_store_tests"
if [ ! -x "$bin" ]; then
  echo "kill9-store: $bin not found; build the shoal_store_tests target first" >&2
  exit 2
fi
echo "kill9-store: $cycles cycles, rng seed $seed"
SHOAL_KILL9_CYCLES="$cycles" exec "$bin" "[kill9]" --rng-seed "$seed"

#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test with CTest. Exits non-zero when any
# test fails. This is the README's test command and what .ci/run calls.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$here/scripts/setup.sh" build
cd "$here/build"
ctest --output-on-failure -j"$(nproc)" --timeout 900

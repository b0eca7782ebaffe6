#!/usr/bin/env bash
# Builds Shoal's Debian packages with CPack (cmake/ShoalPackaging.cmake): libshoal0, libshoal-dev
# and shoal, into <build-dir>/packages/. Configures <build-dir> with CMAKE_INSTALL_PREFIX=/usr
# (the library then goes to the multiarch directory /usr/lib/<triplet>), builds it without tests,
# examples and benchmarks, and runs `cpack -G DEB`. Needs the build's Debian packages (scripts/setup.sh
# installs them) and dpkg-dev and file (for dpkg-shlibdeps); does not need root.
#
#   scripts/package.sh [build-dir] [extra cmake args...]     (default build dir: build-deb)
#
# Prints the path of each package, one per line, last.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-build-deb}
shift || true
case $build_dir in /*) ;; *) build_dir=$PWD/$build_dir ;; esac

for tool in dpkg-shlibdeps file cpack; do
  command -v "$tool" >/dev/null || { echo "package: $tool not found (dpkg-dev, file, cmake)" >&2; exit 1; }
done

# ccache shared with the other build trees of this clone (scripts/setup.sh, D7).
export CCACHE_BASEDIR="$here"
export CCACHE_NOHASHDIR=1

# CMAKE_SKIP_INSTALL_ALL_DEPENDENCY: cpack's install step builds nothing itself; the build below
# does, so that its errors show here.
cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DSHOAL_BUILD_TESTS=OFF -DSHOAL_BUILD_EXAMPLES=OFF -DSHOAL_BUILD_BENCH=OFF \
  -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON "$@" >/dev/null
# Everything the install rules name must be built (libshoal, libshoal_client, the CLI, the
# daemon, ...): build the default target, with tests, examples and benchmarks off.
cmake --build "$build_dir" -j"$(nproc)"

rm -rf "$build_dir/packages"
(cd "$build_dir" && cpack -G DEB -B "$build_dir/packages" >"$build_dir/cpack.log") ||
  { cat "$build_dir/cpack.log" >&2; echo "package: cpack failed" >&2; exit 1; }
ls "$build_dir"/packages/*.deb

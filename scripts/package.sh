#!/usr/bin/env bash
# Builds Shoal's Debian packages with CPack (cmake/ShoalPackaging.cmake) into <build-dir>/packages/:
# libshoal0, libshoal-dev, shoal, python3-shoal, and libshoal-client0 when the daemon is built.
# Configures <build-dir> with CMAKE_INSTALL_PREFIX=/usr (the library then goes to the multiarch
# directory /usr/lib/<triplet>), builds it without tests, examples and benchmarks, and runs
# `cpack -G DEB`. Needs the build's Debian packages (scripts/setup.sh installs them) and dpkg-dev
# and file (for dpkg-shlibdeps); does not need root.
#
#   scripts/package.sh [--arch arm64] [build-dir] [extra cmake args...]
#     (default build dir: build-deb, or build-deb-arm64 with --arch arm64)
#
# --arch arm64: cross-builds with cmake/toolchain-arm64.cmake, as scripts/arm64.sh does (run that
# once first: it installs the cross compiler and the arm64 -dev packages with multiarch), without
# the daemon (the arm64 capnp-rpc, kj-async and Boost are not installed: no shoald, no
# libshoal-client0), and computes the arm64 packages' dependencies with dpkg-shlibdeps for arm64
# (DEB_HOST_ARCH, so it reads aarch64 objects and the arm64 libraries' shlibs). Then it checks
# each package: its Architecture field is arm64 (python3-shoal: all) and every ELF file inside is
# an ARM aarch64 one (`file`), and prints their sizes and the size of the arm64 libshoal.
#
# Prints the path of each package, one per line, last.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
arch=native
if [ "${1:-}" = --arch ]; then
  arch=${2:?"--arch needs a value (arm64)"}
  shift 2
  [ "$arch" = arm64 ] || { echo "package: --arch $arch: only arm64 is supported" >&2; exit 2; }
fi
default_dir=build-deb
[ "$arch" = arm64 ] && default_dir=build-deb-arm64
build_dir=${1:-$default_dir}
shift || true
case $build_dir in /*) ;; *) build_dir=$PWD/$build_dir ;; esac

for tool in dpkg-shlibdeps dpkg-deb file cpack; do
  command -v "$tool" >/dev/null || { echo "package: $tool not found (dpkg-dev, file, cmake)" >&2; exit 1; }
done

# ccache shared with the other build trees of this clone (scripts/setup.sh, D7).
export CCACHE_BASEDIR="$here"
export CCACHE_NOHASHDIR=1

cross_args=()
if [ "$arch" = arm64 ]; then
  command -v aarch64-linux-gnu-g++ >/dev/null && [ -f /usr/lib/aarch64-linux-gnu/liblmdb.so ] ||
    { echo "package: no arm64 cross toolchain or arm64 -dev packages; run scripts/arm64.sh once" >&2; exit 1; }
  cross_args=(-DCMAKE_TOOLCHAIN_FILE="$here/cmake/toolchain-arm64.cmake" -DSHOAL_BUILD_DAEMON=OFF)
fi

# CMAKE_SKIP_INSTALL_ALL_DEPENDENCY: cpack's install step builds nothing itself; the build below
# does, so that its errors show here.
cmake -S "$here" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
  -DSHOAL_BUILD_TESTS=OFF -DSHOAL_BUILD_EXAMPLES=OFF -DSHOAL_BUILD_BENCH=OFF \
  -DCMAKE_SKIP_INSTALL_ALL_DEPENDENCY=ON "${cross_args[@]}" "$@" >/dev/null
# Everything the packaged components hold (libshoal, libshoal_client, the CLI, the daemon; in an
# arm64 build, libshoal and the CLI): the target shoal_packaged (cmake/ShoalPackaging.cmake), not
# the default target, so that a target no package holds cannot break or slow packaging.
cmake --build "$build_dir" -j"$(nproc)" --target shoal_packaged

rm -rf "$build_dir/packages"
host_env=()
[ "$arch" = arm64 ] && host_env=(DEB_HOST_ARCH=arm64)
(cd "$build_dir" && env "${host_env[@]}" cpack -G DEB -B "$build_dir/packages" >"$build_dir/cpack.log") ||
  { cat "$build_dir/cpack.log" >&2; echo "package: cpack failed" >&2; exit 1; }

if [ "$arch" = arm64 ]; then
  # Check what was built: the control field, and the machine of every ELF file inside.
  check_dir=$build_dir/packages/check
  for deb in "$build_dir"/packages/*.deb; do
    name=$(dpkg-deb -f "$deb" Package)
    a=$(dpkg-deb -f "$deb" Architecture)
    want=arm64
    [ "$name" = python3-shoal ] && want=all
    [ "$a" = "$want" ] || { echo "package: $deb has Architecture $a, want $want" >&2; exit 1; }
    rm -rf "$check_dir"
    dpkg-deb -x "$deb" "$check_dir"
    elves=0
    while IFS= read -r -d '' f; do
      what=$(file -b "$f")
      case $what in
        ELF*) case $what in
                *"ARM aarch64"*) elves=$((elves + 1)) ;;
                *) echo "package: $name: ${f#"$check_dir"} is not an aarch64 ELF: $what" >&2; exit 1 ;;
              esac ;;
      esac
    done < <(find "$check_dir" -type f -print0)
    if [ "$want" = arm64 ] && [ "$name" != libshoal-dev ] && [ "$elves" -eq 0 ]; then
      echo "package: $name holds no ELF file" >&2; exit 1
    fi
    echo "package: $(basename "$deb"): Architecture $a, $elves aarch64 ELF files, $(stat -c %s "$deb") bytes" \
         "(installed $(dpkg-deb -f "$deb" Installed-Size) KiB); Depends: $(dpkg-deb -f "$deb" Depends)" >&2
  done
  rm -rf "$check_dir"
  lib=$(find "$build_dir/node" -maxdepth 1 -name 'libshoal.so.*.*.*' | head -n 1)
  stripped=$(mktemp)
  aarch64-linux-gnu-strip -o "$stripped" "$lib"
  echo "package: arm64 $(basename "$lib"): $(stat -c %s "$lib") bytes, $(stat -c %s "$stripped") stripped" >&2
  rm -f "$stripped"
fi
ls "$build_dir"/packages/*.deb

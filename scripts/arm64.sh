#!/usr/bin/env bash
# Cross-builds Shoal for 64-bit ARM (aarch64) and runs its unit tests under qemu user-mode
# emulation (issue 17): the distance kernels (the NEON table against the scalar reference), the
# CRDT, the store and the C API tests. Prints the size of the arm64 libshoal.
#
#   scripts/arm64.sh [--quick] [build-dir]      (default build dir: build-arm64)
#     --quick   only the kernel and CRDT tests (what CI runs): builds shoal_index_tests and
#               shoal_crdt_tests, runs the kernel cases and every CRDT case
#
# Packages (as root, or with sudo; only the missing ones): Debian's crossbuild-essential-arm64
# and qemu-user-static, and the arm64 -dev packages of the libraries the build links, installed
# with multiarch (`dpkg --add-architecture arm64`) beside the amd64 ones; capnp, the schema
# compiler, stays the amd64 one. Before installing, apt's dry run must show that nothing gets
# removed: multiarch -dev packages co-install only at the same version as their amd64 twins, so
# apt may upgrade an amd64 library to match (never downgrade or remove one; the script refuses).
# The build uses cmake/toolchain-arm64.cmake, whose CMAKE_CROSSCOMPILING_EMULATOR lets Catch's
# test discovery and CTest run the arm64 binaries through qemu-aarch64-static.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
quick=no
if [ "${1:-}" = --quick ]; then quick=yes; shift; fi
build_dir=${1:-build-arm64}
start=$(date +%s)
stage() { echo "arm64: $1 ($(( $(date +%s) - start )) s)"; }

# --- Packages.
# libtomlplusplus-dev: the simulator's scenario files (sim/CMakeLists.txt finds it at configure time).
arch_packages=(liblmdb-dev libsodium-dev libcapnp-dev libxxhash-dev zlib1g-dev libxsimd-dev libtomlplusplus-dev)
packages=(crossbuild-essential-arm64 qemu-user-static)
for p in "${arch_packages[@]}"; do packages+=("$p:arm64"); done

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  if ((${#sudo_cmd[@]})) && ! command -v sudo >/dev/null; then
    echo "arm64: need root (or sudo) to install ${missing[*]}" >&2; exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "arm64: adding the arm64 architecture to dpkg (multiarch)"
    "${sudo_cmd[@]}" dpkg --add-architecture arm64
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  # The side-by-side check: a dry run that would remove any package stops here.
  plan=$("${sudo_cmd[@]}" apt-get install -s --no-install-recommends "${missing[@]}")
  if grep -q '^Remv ' <<<"$plan"; then
    grep '^Remv ' <<<"$plan" >&2
    echo "arm64: installing ${missing[*]} would remove the packages above; not doing it" >&2
    exit 1
  fi
  echo "arm64: installing ${missing[*]} ($(grep -c '^Inst ' <<<"$plan") packages with dependencies)"
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
stage "packages ready"

# --- Cross build (ccache shared with the other trees, as scripts/setup.sh does: D7).
export CCACHE_BASEDIR="$here"
export CCACHE_NOHASHDIR=1
cd "$here"
cmake -S . -B "$build_dir" -DCMAKE_TOOLCHAIN_FILE="$here/cmake/toolchain-arm64.cmake" \
  -DCMAKE_BUILD_TYPE=Release -DSHOAL_BUILD_DAEMON=OFF -DSHOAL_BUILD_BENCH=OFF >/dev/null
if [ "$quick" = yes ]; then
  targets=(shoal_index_tests shoal_crdt_tests)
  # Every CRDT case; of the index binary, the kernel cases (kernels_test.cpp) only.
  tests='^shoal_crdt_tests:|^shoal_index_tests:.*kernel'
else
  targets=(shoal_index_tests shoal_crdt_tests shoal_store_tests shoal_capi shoal_capi_test
           shoal_capi_collections_test)
  tests='^shoal_(index|crdt|store)_tests:|^shoal_capi_(collections_)?test$'
fi
cmake --build "$build_dir" -j"$(nproc)" --target "${targets[@]}"
stage "cross build done (${targets[*]})"

# --- Tests under qemu.
index_tests=$build_dir/tests/index/shoal_index_tests
qemu=$(command -v qemu-aarch64-static)
# The NEON table must be the one picked, so the kernel tests compared it with the scalar one.
isa=$("$qemu" "$index_tests" "the best kernel table is usable and listed" -s | sed -n 's/^ *best kernels: //p')
[ "$isa" = neon ] || { echo "arm64: the best kernel table is '$isa', not neon" >&2; exit 1; }
echo "arm64: best kernels under qemu: $isa (every table is compared with the scalar reference)"
(cd "$build_dir" && ctest --output-on-failure -j"$(nproc)" --timeout 900 -R "$tests")
stage "tests passed under qemu"

if [ -f "$build_dir/node/libshoal.so.0.1.0" ]; then
  lib=$build_dir/node/libshoal.so.0.1.0
  stripped=$(mktemp)
  aarch64-linux-gnu-strip -o "$stripped" "$lib"
  echo "arm64: libshoal.so.0.1.0 $(stat -c %s "$lib") bytes, $(stat -c %s "$stripped") stripped;" \
       "$(aarch64-linux-gnu-size "$lib" | awk 'NR==2 {print "text " $1 ", data " $2 ", bss " $3}')"
  rm -f "$stripped"
fi
stage "done"

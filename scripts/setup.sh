#!/usr/bin/env bash
# Takes a fresh Debian 12 machine to a built Shoal tree: installs exactly the Debian packages the
# build needs (as root, with apt-get; only the missing ones, so a second run is fast), then
# configures and builds with CMake and ccache. Idempotent.
#
#   scripts/setup.sh [build-dir] [extra cmake args...]     (default build dir: build)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-build}
shift || true

packages=(
  build-essential cmake pkg-config ccache
  libboost-dev libboost-system-dev libsodium-dev libcapnp-dev capnproto liblmdb-dev
  libhnswlib-dev libxsimd-dev catch2 libmdnsd-dev libcurl4-openssl-dev libxxhash-dev
  zlib1g-dev libcli11-dev nlohmann-json3-dev iproute2 dataset-fashion-mnist
  python3-cffi python3-numpy python3-pytest file prometheus-cpp-dev libtomlplusplus-dev libsystemd-dev
  lmdb-utils  # mdb_stat: the per-table page counts that bench/README.md's disk figures break down
  chromium  # the status page's test in headless Chromium (tests/daemon; ~30 s to install)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install packages" >&2; exit 1; }
    sudo_cmd=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ccache shared across fresh clones: paths relative to the clone, no directory in the hash (D7).
export CCACHE_BASEDIR="$here"
export CCACHE_NOHASHDIR=1

cd "$here"
if [ ! -f "$build_dir/CMakeCache.txt" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
fi
cmake --build "$build_dir" -j"$(nproc)"

#!/usr/bin/env sh
# Proves two layering rules of issue 10 on the built tree:
#  1. libshoal (the embedded C library) needs none of the heavy dependencies: its dynamic section
#     names no zlib, Boost, libcurl, Cap'n Proto/kj or libmdnsd;
#  2. node/core/ (the sans-I/O core) contains no lock, no file or socket call, no clock read and
#     no OS random source;
#  3. (issue 14, when SHOAL_MESH_LIBRARY and SHOAL_EMBED_ONLY_APP are set) the embedded mesh is
#     its own library: an app that links only libshoal loads none of the network stack (its whole
#     dependency closure, by ldd, names no libshoal_mesh, Cap'n Proto/kj, Boost, libsodium,
#     libmdnsd or toml++), while libshoal_mesh links capnp-rpc, kj-async, libsodium and libshoal
#     itself, and exports only shoal_mesh_*.
# Usage: check_layering.sh <libshoal.so> <source dir>
set -eu
lib=$1
src=$2
fail=0
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for bad in libz. libboost libcurl libcapnp libkj libmdnsd libsodium; do
  if printf '%s\n' "$needed" | grep -q "^$bad"; then
    echo "libshoal links $bad: $(printf '%s ' $needed)"
    fail=1
  fi
done
pattern='std::mutex|shared_mutex|std::thread|pthread_|RwLock|fopen|ofstream|ifstream|std::filesystem|[ (=]::open\(|socket\(|random_device|now_wall\(|now_mono\(|steady_clock|system_clock'
if grep -nE "$pattern" "$src"/node/core/*.cpp "$src"/node/core/*.hpp; then
  echo "node/core/ must stay sans-I/O (the lines above)"
  fail=1
fi
if [ -n "${SHOAL_MESH_LIBRARY:-}" ] && [ -n "${SHOAL_EMBED_ONLY_APP:-}" ]; then
  closure=$(ldd "$SHOAL_EMBED_ONLY_APP" | awk '{print $1}')
  for bad in libshoal_mesh libcapnp libkj libboost libsodium libmdnsd libtomlplusplus; do
    if printf '%s\n' "$closure" | grep -q "^$bad"; then
      echo "an app linking only libshoal loads $bad: $(printf '%s ' $closure)"
      fail=1
    fi
  done
  mesh_needed=$(readelf -d "$SHOAL_MESH_LIBRARY" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
  for want in libshoal.so.0 libcapnp-rpc libkj-async libsodium; do
    if ! printf '%s\n' "$mesh_needed" | grep -q "^$want"; then
      echo "libshoal_mesh does not link $want: $(printf '%s ' $mesh_needed)"
      fail=1
    fi
  done
  mesh_exports=$(nm -D --defined-only "$SHOAL_MESH_LIBRARY" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' | sort | tr '\n' ' ')
  if [ "$mesh_exports" != "shoal_mesh_bootstrap shoal_mesh_reload shoal_mesh_search_cold shoal_mesh_start shoal_mesh_status_json shoal_mesh_stop " ]; then
    echo "libshoal_mesh exports more or less than shoal_mesh_*: $mesh_exports"
    fail=1
  fi
  [ $fail -eq 0 ] && echo "mesh layering ok: libshoal_mesh needs $(printf '%s ' $mesh_needed)"
fi
[ $fail -eq 0 ] && echo "layering ok: libshoal needs $(printf '%s ' $needed)"
exit $fail

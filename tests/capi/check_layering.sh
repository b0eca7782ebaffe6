#!/usr/bin/env sh
# Proves two layering rules of issue 10 on the built tree:
#  1. libshoal (the embedded C library) needs none of the heavy dependencies: its dynamic section
#     names no zlib, Boost, libcurl, Cap'n Proto/kj or libmdnsd;
#  2. node/core/ (the sans-I/O core) contains no lock, no file or socket call, no clock read and
#     no OS random source.
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
[ $fail -eq 0 ] && echo "layering ok: libshoal needs $(printf '%s ' $needed)"
exit $fail

#!/usr/bin/env sh
# Proves the split of client mode (issue 14): libshoal's dynamic section names no capnp-rpc,
# kj-async or Boost (and nothing else heavy, check_layering.sh), while libshoal_client, which
# libshoal dlopen()s for shoal_connect, is where capnp-rpc and kj-async are; libshoal_client
# exports exactly its one entry point, and libshoal names the client library by its soname.
# Usage: check_client_layering.sh <libshoal.so> <libshoal_client.so>
set -eu
lib=$1
client=$2
fail=0
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }
for bad in libcapnp libkj libboost; do
  if needed "$lib" | grep -q "^$bad"; then
    echo "libshoal links $bad: $(needed "$lib" | tr '\n' ' ')"
    fail=1
  fi
done
for want in libcapnp-rpc libkj-async; do
  if ! needed "$client" | grep -q "^$want"; then
    echo "libshoal_client does not link $want: $(needed "$client" | tr '\n' ' ')"
    fail=1
  fi
done
exports=$(nm -D --defined-only "$client" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}')
if [ "$exports" != "shoal_client_entry_v1" ]; then
  echo "libshoal_client exports more than its entry point: $exports"
  fail=1
fi
if ! grep -q "libshoal_client.so.0" "$lib"; then
  echo "libshoal does not name libshoal_client.so.0"
  fail=1
fi
soname=$(readelf -d "$client" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" != "libshoal_client.so.0" ]; then
  echo "libshoal_client's soname is '$soname', libshoal loads libshoal_client.so.0"
  fail=1
fi
[ $fail -eq 0 ] && echo "client layering ok: libshoal needs $(needed "$lib" | tr '\n' ' '); libshoal_client needs $(needed "$client" | tr '\n' ' ')"
exit $fail

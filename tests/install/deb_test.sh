#!/bin/sh
# Proves that Shoal's Debian packages work on the machine, as an operator, a C developer and a
# Python developer use them: scripts/package.sh builds libshoal0, libshoal-client0, libshoal-dev,
# shoal and python3-shoal, whose control data say the right things (dependencies, shlibs, the
# conffile, Architecture all for the binding); `dpkg -i` installs them into the system; then
# `shoal --help` runs from /usr/bin, `pkg-config --modversion shoal` answers the project version
# from the default search path, examples/quickstart.c builds with
# `cc quickstart.c $(pkg-config --cflags --libs shoal)` and with find_package(Shoal), and runs
# against /usr/lib/<triplet>/libshoal.so.0 through the loader cache (no LD_LIBRARY_PATH); the
# postinst made the system user `shoal` and /var/lib/shoal (0750), where that user can create a
# data directory, and enabled shoald.service through deb-systemd-helper (the wants symlink and
# its record, checked without systemd running); `python3 -c 'import shoal'` loads the packaged
# binding with the packaged header and library and searches; the packaged /usr/sbin/shoald,
# enrolled in a scratch directory (loopback, its API on a Unix socket there), serves
# `shoal --connect` (the packaged libshoal_client) and Python's shoal.connect. Then `dpkg -r`
# removes every file (and masks the unit) and `dpkg --purge` the rest: the enablement, the
# records, the mask and the conffile.
# The sink's own package, shoal-sink (issue 15): it alone depends on libcurl (no other package
# does); its conffile /etc/shoal/shoal-sink.toml passes `shoal-sink --check`, `shoal-sink --help`
# runs, its postinst made the system user `shoal-sink` and /var/lib/shoal-sink and enabled
# shoal-sink.service (Type=notify, waiting for the sink's certificate); the packaged shoal-sink,
# enrolled with the sink role by the packaged CLI in a scratch directory, serves on loopback until
# SIGTERM (exit 0); dpkg -r masks its unit and keeps its conffile, and the purge removes them.
#
# Needs root: exits 77 (CTest SKIP_RETURN_CODE) otherwise. It must leave the system as it found
# it, so it also skips when any of the three packages is installed or /usr already holds a
# libshoal, shoal.h or shoal from elsewhere, and on any exit it purges the packages and removes
# the user and group `shoal` if they did not exist before (Debian's purge keeps system users).
#
#   deb_test.sh SOURCE_DIR PACKAGE_BUILD_DIR WORK_DIR C_COMPILER
set -eu
src=$1 pkg_build=$2 work=$3 cc=$4
cmake=${CMAKE_COMMAND:-cmake}
packages="shoal-sink python3-shoal shoal libshoal-dev libshoal-client0 libshoal0"

skip() { echo "deb_test: SKIP: $*"; exit 77; }
fail() { echo "deb_test: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i into the system)"
command -v dpkg >/dev/null || skip "not a Debian system"
for p in $packages; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed'; then
    skip "package $p is already on this system (installed or not purged); not touching it"
  fi
done
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
unit_wants=/etc/systemd/system/multi-user.target.wants/shoald.service
dsh=/var/lib/systemd/deb-systemd-helper-enabled
sink_wants=/etc/systemd/system/multi-user.target.wants/shoal-sink.service
for f in /usr/sbin/shoal-sink /etc/shoal/shoal-sink.toml "$sink_wants" /etc/systemd/system/shoal-sink.service \
         "$dsh/shoal-sink.service.dsh-also" /usr/bin/shoal /usr/sbin/shoald /usr/include/shoal.h /usr/lib/$multiarch/libshoal.so.0 /usr/lib/libshoal.so.0 \
         /usr/lib/python3/dist-packages/shoal /etc/shoal/shoald.toml "$unit_wants" /etc/systemd/system/shoald.service \
         "$dsh/shoald.service.dsh-also"; do
  [ ! -e "$f" ] || skip "$f already exists (installed by hand?); not overwriting it"
done

rm -rf "$work"
mkdir -p "$work"

# 1. Build the packages (a Release build configured for /usr, beside the test's build tree).
echo "deb_test: building packages in $pkg_build"
"$src/scripts/package.sh" "$pkg_build" >"$work/package.log" 2>&1 ||
  { tail -n 40 "$work/package.log"; fail "scripts/package.sh"; }
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$pkg_build/CMakeCache.txt")
arch=$(dpkg --print-architecture)
debs=""
for p in $packages; do
  a=$arch
  [ "$p" != python3-shoal ] || a=all
  f="$pkg_build/packages/${p}_${version}-1_${a}.deb"
  [ -f "$f" ] || fail "no $f (have: $(ls "$pkg_build/packages"))"
  debs="$debs $f"
done

# 2. What the packages say before anything is installed.
lib_deb="$pkg_build/packages/libshoal0_${version}-1_${arch}.deb"
dev_deb="$pkg_build/packages/libshoal-dev_${version}-1_${arch}.deb"
tools_deb="$pkg_build/packages/shoal_${version}-1_${arch}.deb"
client_deb="$pkg_build/packages/libshoal-client0_${version}-1_${arch}.deb"
py_deb="$pkg_build/packages/python3-shoal_${version}-1_all.deb"
sink_deb="$pkg_build/packages/shoal-sink_${version}-1_${arch}.deb"
# Only the sink links curl: its package depends on libcurl, and no other package does.
dpkg-deb -f "$sink_deb" Depends | grep -q 'libcurl' || fail "shoal-sink does not depend on libcurl: $(dpkg-deb -f "$sink_deb" Depends)"
for d in $debs; do
  [ "$d" = "$sink_deb" ] && continue
  ! dpkg-deb -f "$d" Depends | grep -q 'curl' || fail "$(basename "$d") depends on curl: $(dpkg-deb -f "$d" Depends)"
done
for dep in passwd init-system-helpers; do
  dpkg-deb -f "$sink_deb" Depends | grep -q "$dep" || fail "shoal-sink's maintainer scripts need $dep: $(dpkg-deb -f "$sink_deb" Depends)"
done
mkdir -p "$work/control"
dpkg-deb -e "$sink_deb" "$work/control/sink"
grep -qx /etc/shoal/shoal-sink.toml "$work/control/sink/conffiles" || fail "shoal-sink.toml is not a conffile"
for script in postinst prerm postrm; do
  [ -x "$work/control/sink/$script" ] || fail "shoal-sink has no $script"
done
dpkg-deb -c "$sink_deb" >"$work/sink-contents.txt"
grep -q ' \./usr/sbin/shoal-sink$' "$work/sink-contents.txt" || fail "shoal-sink does not hold /usr/sbin/shoal-sink"
# The CLI dlopen()s libshoal_client (no NEEDED entry): shoal depends on its package by hand.
dpkg-deb -f "$tools_deb" Depends | grep -q "libshoal-client0 (= $version-1)" ||
  fail "shoal must depend on libshoal-client0 (= $version-1): $(dpkg-deb -f "$tools_deb" Depends)"
dpkg-deb -f "$tools_deb" Depends | grep -q "init-system-helpers" ||
  fail "shoal's maintainer scripts use deb-systemd-helper: $(dpkg-deb -f "$tools_deb" Depends)"
dpkg-deb -f "$client_deb" Depends | grep -q "libshoal0 (= $version-1)" ||
  fail "libshoal-client0 must depend on exactly its libshoal0: $(dpkg-deb -f "$client_deb" Depends)"
dpkg-deb -f "$client_deb" Depends | grep -q 'libcapnp' || fail "libshoal-client0 does not depend on libcapnp (capnp-rpc, kj-async)"
# libshoal0 stays light: the client's heavy libraries are in libshoal-client0 only.
! dpkg-deb -f "$lib_deb" Depends | grep -Eq 'capnp|kj|boost' || fail "libshoal0 depends on $(dpkg-deb -f "$lib_deb" Depends)"
[ "$(dpkg-deb -f "$py_deb" Architecture)" = all ] || fail "python3-shoal is not Architecture all"
for dep in python3-cffi python3-numpy "libshoal0 (= $version-1)"; do
  dpkg-deb -f "$py_deb" Depends | grep -qF "$dep" || fail "python3-shoal does not depend on $dep: $(dpkg-deb -f "$py_deb" Depends)"
done
dpkg-deb -c "$py_deb" | grep -q ' \./usr/lib/python3/dist-packages/shoal/shoal\.h$' || fail "python3-shoal lacks its shoal.h"
dpkg-deb -c "$client_deb" | grep -q "usr/lib/$multiarch/libshoal_client.so.0 -> " || fail "libshoal_client.so.0 not packaged"
mkdir -p "$work/control"
dpkg-deb -e "$tools_deb" "$work/control/tools"
grep -qx /etc/shoal/shoald.toml "$work/control/tools/conffiles" || fail "shoald.toml is not a conffile"
for script in postinst prerm postrm; do
  [ -x "$work/control/tools/$script" ] || fail "shoal has no $script"
done
dpkg-deb -f "$dev_deb" Depends | grep -qx "libshoal0 (= $version-1)" ||
  fail "libshoal-dev must depend on exactly its libshoal0: $(dpkg-deb -f "$dev_deb" Depends)"
dpkg-deb -f "$lib_deb" Depends | grep -q 'liblmdb0' || fail "libshoal0 does not depend on liblmdb0"
mkdir -p "$work/control"
dpkg-deb -e "$lib_deb" "$work/control/lib"
grep -qx "libshoal 0 libshoal0 (>= $version-1)" "$work/control/lib/shlibs" ||
  fail "libshoal0 shlibs: $(cat "$work/control/lib/shlibs" 2>/dev/null)"
if for d in $debs; do dpkg-deb -c "$d"; done | grep -E '\.(a|hpp)$'; then
  fail "a static library or an internal header is packaged"
fi
dpkg-deb -c "$lib_deb" | grep -q "usr/lib/$multiarch/libshoal.so.0.1.0\$" || fail "library not under /usr/lib/$multiarch"

# 3. Install. From here on, every exit puts the system back.
user_existed=no group_existed=no
getent passwd shoal >/dev/null && user_existed=yes
getent group shoal >/dev/null && group_existed=yes
varlib_existed=no
[ -e /var/lib/shoal ] && varlib_existed=yes
daemon_pid="" sink_pid=""
sink_user_existed=no sink_group_existed=no
getent passwd shoal-sink >/dev/null && sink_user_existed=yes
getent group shoal-sink >/dev/null && sink_group_existed=yes
sink_varlib_existed=no
[ -e /var/lib/shoal-sink ] && sink_varlib_existed=yes
cleanup() {
  rc=$?
  [ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null || true
  [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
  dpkg --purge $packages >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; rc=1; }
  [ "$varlib_existed" = yes ] || rm -rf /var/lib/shoal
  [ "$user_existed" = yes ] || ! getent passwd shoal >/dev/null || userdel shoal || rc=1
  [ "$group_existed" = yes ] || ! getent group shoal >/dev/null || groupdel shoal || rc=1
  [ "$sink_varlib_existed" = yes ] || rm -rf /var/lib/shoal-sink
  [ "$sink_user_existed" = yes ] || ! getent passwd shoal-sink >/dev/null || userdel shoal-sink || rc=1
  [ "$sink_group_existed" = yes ] || ! getent group shoal-sink >/dev/null || groupdel shoal-sink || rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# dpkg refuses to run while another dpkg or apt holds its lock: wait up to 2 minutes for it.
dpkg_retry() {
  tries=0
  until dpkg "$@" >"$work/dpkg.log" 2>&1; do
    if grep -q 'lock' "$work/dpkg.log" && [ "$tries" -lt 24 ]; then
      tries=$((tries + 1)); sleep 5; continue
    fi
    cat "$work/dpkg.log"; return 1
  done
}
# shellcheck disable=SC2086  # the list of package files
dpkg_retry -i $debs || fail "dpkg -i"
for p in $packages; do
  dpkg-query -W -f='${Status}\n' "$p" | grep -qx 'install ok installed' || fail "$p not installed"
done

# 4. The operator's and the developer's view.
/usr/bin/shoal --help >"$work/help.txt" || fail "shoal --help exited with $?"
grep -qi 'usage' "$work/help.txt" || fail "shoal --help printed no usage"
got=$(env -u PKG_CONFIG_PATH -u PKG_CONFIG_LIBDIR -u PKG_CONFIG_SYSROOT_DIR pkg-config --modversion shoal) ||
  fail "pkg-config shoal failed"
[ "$got" = "$version" ] || fail "pkg-config --modversion shoal is '$got', want $version"
flags=$(env -u PKG_CONFIG_PATH -u PKG_CONFIG_LIBDIR -u PKG_CONFIG_SYSROOT_DIR pkg-config --cflags --libs shoal)
echo "deb_test: pkg-config --cflags --libs shoal: $flags"
# shellcheck disable=SC2086  # word splitting of the flags is the point
"$cc" -std=c99 -Wall -Wextra -Werror -o "$work/qs" "$src/examples/quickstart.c" $flags || fail "cc quickstart.c"
# (/lib is /usr/lib on a merged-/usr system: compare the files the paths name.)
loaded=$(env -u LD_LIBRARY_PATH ldd "$work/qs" | sed -n 's/^[[:space:]]*libshoal\.so\.0 => \([^ ]*\) .*/\1/p')
[ -n "$loaded" ] && [ "$(readlink -f "$loaded")" = "$(readlink -f "/usr/lib/$multiarch/libshoal.so.0")" ] ||
  fail "quickstart does not load the packaged library: $(ldd "$work/qs")"
out=$(env -u LD_LIBRARY_PATH "$work/qs" "$work/qs-data") || fail "quickstart exited with $?"
echo "$out" | sed 's/^/  [deb] /'
echo "$out" | grep -q '^nearest indoor photo: kitchen.jpg$' || fail "quickstart output"

mkdir -p "$work/consumer"
cat >"$work/consumer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(shoal_deb_consumer C)
find_package(Shoal $version EXACT REQUIRED)
add_executable(quickstart "$src/examples/quickstart.c")
target_link_libraries(quickstart PRIVATE Shoal::shoal)
CMAKE
"$cmake" -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$work/consumer.log" 2>&1 &&
  "$cmake" --build "$work/consumer/build" >>"$work/consumer.log" 2>&1 ||
  { cat "$work/consumer.log"; fail "find_package(Shoal) from /usr"; }
grep -q "Shoal_DIR:PATH=/usr/lib/$multiarch/cmake/Shoal" "$work/consumer/build/CMakeCache.txt" ||
  fail "find_package found $(grep Shoal_DIR "$work/consumer/build/CMakeCache.txt")"
env -u LD_LIBRARY_PATH "$work/consumer/build/quickstart" "$work/qs-data-cmake" >/dev/null || fail "cmake-built quickstart"

# 5. The postinst: a system user with no login and its data directory, usable by that user.
entry=$(getent passwd shoal) || fail "no user shoal"
uid=$(echo "$entry" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "shoal is not a system user (uid $uid)"
echo "$entry" | grep -q ':/var/lib/shoal:/usr/sbin/nologin$' || fail "user entry: $entry"
[ "$(stat -c '%U:%G %a' /var/lib/shoal)" = "shoal:shoal 750" ] ||
  fail "/var/lib/shoal is $(stat -c '%U:%G %a' /var/lib/shoal)"
setpriv --reuid=shoal --regid=shoal --clear-groups /usr/bin/shoal -d /var/lib/shoal/deb-test init >/dev/null ||
  fail "user shoal cannot create a data directory in /var/lib/shoal"
[ "$(stat -c %U /var/lib/shoal/deb-test)" = shoal ] || fail "data directory not owned by shoal"
# A second configure (dpkg-reconfigure, an upgrade) keeps the user and the directory. Maintainer
# scripts run by hand get the environment dpkg gives them (deb-systemd-helper refuses to run
# without it).
as_dpkg="env DPKG_MAINTSCRIPT_PACKAGE=shoal DPKG_MAINTSCRIPT_NAME=postinst"
$as_dpkg /var/lib/dpkg/info/shoal.postinst configure "$version-1" || fail "postinst configure, run again"
[ "$(getent passwd shoal | cut -d: -f3)" = "$uid" ] || fail "reconfigure changed the user"
rm -rf /var/lib/shoal/deb-test

# 5a. The sink's package: the program, its conffile, its user and directory, its unit.
/usr/sbin/shoal-sink --help >"$work/sink-help.txt" || fail "shoal-sink --help exited with $?"
grep -qi 'usage' "$work/sink-help.txt" || fail "shoal-sink --help printed no usage"
/usr/sbin/shoal-sink --config /etc/shoal/shoal-sink.toml --check >"$work/sink-check.txt" 2>&1 ||
  fail "shoal-sink --check of the packaged configuration: $(cat "$work/sink-check.txt")"
entry=$(getent passwd shoal-sink) || fail "no user shoal-sink"
[ "$(echo "$entry" | cut -d: -f3)" -lt 1000 ] || fail "shoal-sink is not a system user: $entry"
echo "$entry" | grep -q ':/var/lib/shoal-sink:/usr/sbin/nologin$' || fail "user entry: $entry"
[ "$(stat -c '%U:%G %a' /var/lib/shoal-sink)" = "shoal-sink:shoal-sink 750" ] ||
  fail "/var/lib/shoal-sink is $(stat -c '%U:%G %a' /var/lib/shoal-sink)"
[ -L "$sink_wants" ] || fail "postinst did not enable shoal-sink.service ($sink_wants missing)"
grep -qx "$sink_wants" "$dsh/shoal-sink.service.dsh-also" || fail "no deb-systemd-helper record of shoal-sink's enablement"
sink_unit=/usr/lib/systemd/system/shoal-sink.service
[ -e "$sink_unit" ] || sink_unit=/lib/systemd/system/shoal-sink.service
grep -qx 'Type=notify' "$sink_unit" || fail "shoal-sink.service is not Type=notify"
grep -qx 'ConditionPathExists=/etc/shoal/sink.cert' "$sink_unit" || fail "shoal-sink.service does not wait for its certificate"
# The packaged shoal-sink serves: identity and certificate in a scratch directory (the packaged CLI
# enrols it with the sink role), the packaged example's other defaults, loopback, SIGTERM -> 0.
s=$work/sink
mkdir -p "$s"
/usr/bin/shoal mesh init --dir "$s/mesh" >/dev/null || fail "shoal mesh init (sink)"
sed -e "s|^data_dir = .*|data_dir = \"$s/data\"|" -e "s|^certificate = .*|certificate = \"$s/sink.cert\"|" \
  -e 's|^#listen = .*|listen = "127.0.0.1:0"|' /etc/shoal/shoal-sink.toml >"$s/shoal-sink.toml"
sink_key=$(/usr/sbin/shoal-sink --config "$s/shoal-sink.toml" --print-device-key) || fail "shoal-sink --print-device-key"
/usr/bin/shoal mesh enrol --mesh "$s/mesh" --device-key "$sink_key" --role sink --days 1 --out "$s/sink.cert" >/dev/null ||
  fail "shoal mesh enrol --role sink"
/usr/sbin/shoal-sink --config "$s/shoal-sink.toml" >"$s/out" 2>"$s/err" &
sink_pid=$!
tries=0
until grep -q '^shoal-sink: ready port=[0-9]* store=lmdb device=' "$s/out"; do
  kill -0 "$sink_pid" 2>/dev/null || { cat "$s/err"; fail "the packaged shoal-sink exited"; }
  tries=$((tries + 1))
  [ "$tries" -lt 300 ] || fail "shoal-sink was not ready in 30 s"
  sleep 0.1
done
kill -TERM "$sink_pid"
wait "$sink_pid" || fail "shoal-sink exited with $? on SIGTERM"
sink_pid=""
echo "deb_test: shoal-sink: $(cat "$s/out")"

# 5b. The unit, enabled the Debian way. deb-systemd-helper works without a running systemd: the
# wants symlink and its record (the purge removes exactly what the record lists).
[ -L "$unit_wants" ] || fail "postinst did not enable shoald.service ($unit_wants missing)"
case $(readlink "$unit_wants") in
  */lib/systemd/system/shoald.service) ;;
  *) fail "$unit_wants points to $(readlink "$unit_wants")" ;;
esac
grep -qx "$unit_wants" "$dsh/shoald.service.dsh-also" ||
  fail "no deb-systemd-helper record of the enablement: $(cat "$dsh/shoald.service.dsh-also" 2>&1)"
$as_dpkg deb-systemd-helper --quiet was-enabled shoald.service || fail "deb-systemd-helper says shoald was not enabled"
grep -qx 'ConditionPathExists=/etc/shoal/device.cert' /usr/lib/systemd/system/shoald.service ||
  grep -qx 'ConditionPathExists=/etc/shoal/device.cert' /lib/systemd/system/shoald.service ||
  fail "the unit does not wait for the device certificate"
# An administrator's disable survives a reconfigure (an upgrade): was-enabled reads the record.
$as_dpkg deb-systemd-helper disable shoald.service >/dev/null
[ ! -e "$unit_wants" ] || fail "deb-systemd-helper disable left $unit_wants"
$as_dpkg /var/lib/dpkg/info/shoal.postinst configure "$version-1" || fail "postinst configure after a disable"
[ ! -e "$unit_wants" ] || fail "a reconfigure re-enabled a unit the administrator disabled"

# 5c. Python: the packaged binding, header and library, from a directory far from the clone.
py_out=$(cd / && env -u PYTHONPATH -u SHOAL_LIBRARY -u SHOAL_HEADER -u LD_LIBRARY_PATH /usr/bin/python3 -c '
import sys, numpy as np, shoal
print(shoal.version(), shoal.header_path, shoal.library_path)
with shoal.open(sys.argv[1]) as db:
    db.create_collection("v", 3)
    db.upsert_batch("v", ["a", "b"], np.array([[0, 0, 1], [5, 5, 5]], dtype=np.float32))
    ids, dist = db.search("v", np.array([0, 0, 1.1], dtype=np.float32), k=1)
    print("nearest", ids[0])
' "$work/py-data") || fail "python3 -c 'import shoal' with the packaged binding: $py_out"
echo "deb_test: python: $py_out"
echo "$py_out" | grep -q "^$version /usr/lib/python3/dist-packages/shoal/shoal.h " || fail "python used another header"
echo "$py_out" | grep -qx 'nearest a' || fail "python search through the packaged library"

# 5d. Client mode: the packaged shoald (root, loopback, its socket in the work directory) serves
# `shoal --connect` through the packaged libshoal_client, and Python's shoal.connect.
d=$work/daemon
mkdir -p "$d"
/usr/bin/shoal mesh init --dir "$d/mesh" >/dev/null || fail "shoal mesh init"
cat >"$d/shoald.toml" <<TOML
[node]
data_dir = "$d/data"
certificate = "$d/data/device.cert"

[mesh]
listen = "127.0.0.1:0"
discovery = false

[api]
socket = "$d/shoald.sock"

[metrics]
enabled = false
TOML
key=$(/usr/sbin/shoald --config "$d/shoald.toml" --print-device-key) || fail "shoald --print-device-key"
/usr/bin/shoal mesh enrol --mesh "$d/mesh" --device-key "$key" --role member --grant '*:rw' --days 1 \
  --out "$d/data/device.cert" >/dev/null || fail "shoal mesh enrol"
/usr/sbin/shoald --config "$d/shoald.toml" >"$d/shoald.out" 2>"$d/shoald.err" &
daemon_pid=$!
tries=0
until [ -S "$d/shoald.sock" ]; do
  kill -0 "$daemon_pid" 2>/dev/null || { cat "$d/shoald.err"; fail "the packaged shoald exited"; }
  tries=$((tries + 1))
  [ "$tries" -lt 300 ] || fail "shoald's socket did not appear in 30 s"
  sleep 0.1
done
sh_c() { env -u LD_LIBRARY_PATH -u SHOAL_CLIENT_LIBRARY /usr/bin/shoal --connect "$d/shoald.sock" "$@"; }
sh_c collection create t --dim 3 >/dev/null || fail "shoal --connect collection create"
sh_c put t rec-1 --vector 1,2,3 --meta place=indoor >/dev/null || fail "shoal --connect put"
got=$(sh_c --json count t) || fail "shoal --connect count"
echo "$got" | grep -q '"count":1' || fail "count through the daemon: $got"
hit=$(sh_c search t --vector 1,2,3.5 -k 1) || fail "shoal --connect search"
echo "$hit" | grep -q '^rec-1' || fail "search through the daemon: $hit"
py_c=$(cd / && env -u PYTHONPATH -u SHOAL_LIBRARY -u SHOAL_HEADER -u LD_LIBRARY_PATH /usr/bin/python3 -c '
import sys, shoal
with shoal.connect(sys.argv[1]) as db:
    print(db.get("t", "rec-1").vector.tolist())
' "$d/shoald.sock") || fail "python shoal.connect to the packaged shoald: $py_c"
[ "$py_c" = "[1.0, 2.0, 3.0]" ] || fail "python shoal.connect read $py_c"
echo "deb_test: client mode: shoal --connect and shoal.connect against the packaged shoald"
kill -TERM "$daemon_pid"
wait "$daemon_pid" || fail "shoald exited with $? on SIGTERM"
daemon_pid=""

# 6. Remove, then purge: nothing of the packages is left.
# shellcheck disable=SC2086
dpkg_retry -r $packages || fail "dpkg -r"
for f in /usr/bin/shoal /usr/sbin/shoald /usr/include/shoal.h "/usr/lib/$multiarch/libshoal.so.0" \
         "/usr/lib/$multiarch/libshoal_client.so.0" "/usr/lib/$multiarch/pkgconfig/shoal.pc" \
         "/usr/lib/$multiarch/cmake/Shoal" /usr/lib/python3/dist-packages/shoal /usr/lib/systemd/system/shoald.service \
         /usr/sbin/shoal-sink /usr/lib/systemd/system/shoal-sink.service /usr/share/doc/shoal-sink; do
  [ ! -e "$f" ] || fail "$f left after dpkg -r"
done
[ "$(readlink /etc/systemd/system/shoal-sink.service)" = /dev/null ] || fail "dpkg -r did not mask shoal-sink.service"
[ -e /etc/shoal/shoal-sink.toml ] || fail "dpkg -r removed shoal-sink's conffile (only a purge should)"

# The removed unit is masked (its record kept for the purge); the conffile stays until the purge.
[ "$(readlink /etc/systemd/system/shoald.service)" = /dev/null ] || fail "dpkg -r did not mask shoald.service"
[ -e /etc/shoal/shoald.toml ] || fail "dpkg -r removed the conffile (only a purge should)"
! ldconfig -p | grep -q 'libshoal\.so' || fail "libshoal still in the loader cache after dpkg -r"
# shellcheck disable=SC2086
dpkg_retry --purge $packages || fail "dpkg --purge"
[ ! -e /var/lib/shoal ] || [ "$varlib_existed" = yes ] || fail "/var/lib/shoal left after purge (it was empty)"
[ ! -e /var/lib/shoal-sink ] || [ "$sink_varlib_existed" = yes ] || fail "/var/lib/shoal-sink left after purge (it was empty)"
for f in "$unit_wants" /etc/systemd/system/shoald.service "$dsh/shoald.service.dsh-also" \
         "$dsh/multi-user.target.wants/shoald.service" /var/lib/systemd/deb-systemd-helper-masked/shoald.service \
         "$sink_wants" /etc/systemd/system/shoal-sink.service "$dsh/shoal-sink.service.dsh-also" \
         "$dsh/multi-user.target.wants/shoal-sink.service" /var/lib/systemd/deb-systemd-helper-masked/shoal-sink.service \
         /etc/shoal; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || fail "$f left after dpkg --purge"
done
for p in $packages; do
  ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed' || fail "$p still known to dpkg"
done
echo "deb_test: OK"

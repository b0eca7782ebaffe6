#!/bin/sh
# Proves that Shoal's Debian packages work on the machine, as an operator and a C developer use
# them: scripts/package.sh builds libshoal0, libshoal-dev and shoal; `dpkg -i` installs them into
# the system; then `shoal --help` runs from /usr/bin, `pkg-config --modversion shoal` answers the
# project version from the default search path, examples/quickstart.c builds with
# `cc quickstart.c $(pkg-config --cflags --libs shoal)` and with find_package(Shoal), and runs
# against /usr/lib/<triplet>/libshoal.so.0 through the loader cache (no LD_LIBRARY_PATH); the
# postinst made the system user `shoal` and /var/lib/shoal (0750), where that user can create a
# data directory. Then `dpkg -r` removes every file and `dpkg --purge` the rest.
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
packages="shoal libshoal-dev libshoal0"

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
for f in /usr/bin/shoal /usr/include/shoal.h /usr/lib/$multiarch/libshoal.so.0 /usr/lib/libshoal.so.0; do
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
  f="$pkg_build/packages/${p}_${version}-1_${arch}.deb"
  [ -f "$f" ] || fail "no $f (have: $(ls "$pkg_build/packages"))"
  debs="$debs $f"
done

# 2. What the packages say before anything is installed.
lib_deb="$pkg_build/packages/libshoal0_${version}-1_${arch}.deb"
dev_deb="$pkg_build/packages/libshoal-dev_${version}-1_${arch}.deb"
tools_deb="$pkg_build/packages/shoal_${version}-1_${arch}.deb"
dpkg-deb -f "$dev_deb" Depends | grep -qx "libshoal0 (= $version-1)" ||
  fail "libshoal-dev must depend on exactly its libshoal0: $(dpkg-deb -f "$dev_deb" Depends)"
dpkg-deb -f "$lib_deb" Depends | grep -q 'liblmdb0' || fail "libshoal0 does not depend on liblmdb0"
mkdir -p "$work/control"
dpkg-deb -e "$lib_deb" "$work/control/lib"
grep -qx "libshoal 0 libshoal0 (>= $version-1)" "$work/control/lib/shlibs" ||
  fail "libshoal0 shlibs: $(cat "$work/control/lib/shlibs" 2>/dev/null)"
if dpkg-deb -c "$lib_deb" "$dev_deb" "$tools_deb" 2>/dev/null | grep -E '\.(a|hpp)$'; then
  fail "a static library or an internal header is packaged"
fi
dpkg-deb -c "$lib_deb" | grep -q "usr/lib/$multiarch/libshoal.so.0.1.0\$" || fail "library not under /usr/lib/$multiarch"

# 3. Install. From here on, every exit puts the system back.
user_existed=no group_existed=no
getent passwd shoal >/dev/null && user_existed=yes
getent group shoal >/dev/null && group_existed=yes
varlib_existed=no
[ -e /var/lib/shoal ] && varlib_existed=yes
cleanup() {
  rc=$?
  dpkg --purge $packages >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; rc=1; }
  [ "$varlib_existed" = yes ] || rm -rf /var/lib/shoal
  [ "$user_existed" = yes ] || ! getent passwd shoal >/dev/null || userdel shoal || rc=1
  [ "$group_existed" = yes ] || ! getent group shoal >/dev/null || groupdel shoal || rc=1
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
# A second configure (dpkg-reconfigure, an upgrade) keeps the user and the directory.
/var/lib/dpkg/info/shoal.postinst configure "$version-1" || fail "postinst configure, run again"
[ "$(getent passwd shoal | cut -d: -f3)" = "$uid" ] || fail "reconfigure changed the user"
rm -rf /var/lib/shoal/deb-test

# 6. Remove, then purge: nothing of the packages is left.
# shellcheck disable=SC2086
dpkg_retry -r $packages || fail "dpkg -r"
for f in /usr/bin/shoal /usr/include/shoal.h "/usr/lib/$multiarch/libshoal.so.0" \
         "/usr/lib/$multiarch/pkgconfig/shoal.pc" "/usr/lib/$multiarch/cmake/Shoal"; do
  [ ! -e "$f" ] || fail "$f left after dpkg -r"
done
! ldconfig -p | grep -q 'libshoal\.so' || fail "libshoal still in the loader cache after dpkg -r"
# shellcheck disable=SC2086
dpkg_retry --purge $packages || fail "dpkg --purge"
[ ! -e /var/lib/shoal ] || [ "$varlib_existed" = yes ] || fail "/var/lib/shoal left after purge (it was empty)"
for p in $packages; do
  ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv 'not-installed' || fail "$p still known to dpkg"
done
echo "deb_test: OK"

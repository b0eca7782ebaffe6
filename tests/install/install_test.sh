#!/bin/sh
# Proves that an installed Shoal is usable by a C developer who has only the install tree: the
# build is installed twice (with DESTDIR under the configured prefix, and with `--prefix` to
# another directory), and each time examples/quickstart.c is built with
#   cc quickstart.c $(pkg-config --cflags --libs shoal)
# (for DESTDIR through PKG_CONFIG_SYSROOT_DIR, as a cross or staging build does) and as a CMake
# project with find_package(Shoal) and Shoal::shoal through CMAKE_PREFIX_PATH, then run with
# LD_LIBRARY_PATH and its output checked. It also checks the layout: the versioned soname and its
# links, no static internal library or internal header installed, no build-tree RUNPATH, and that
# find_package refuses an incompatible major version.
#
#   install_test.sh BUILD_DIR SOURCE_DIR WORK_DIR C_COMPILER
set -eu
build=$1 src=$2 work=$3 cc=$4
cmake=${CMAKE_COMMAND:-cmake}
# Sanitizer builds: the consumer must link the sanitizer runtime too (it has to come first in the
# process), so CMake passes the same -fsanitize flags here; empty otherwise.
extra=${SHOAL_CONSUMER_FLAGS:-}

fail() { echo "install_test: FAIL: $*" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work"

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
[ -n "$prefix" ] || fail "no CMAKE_INSTALL_PREFIX in $build/CMakeCache.txt"
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")
: "${libdir:=lib}"

# The quickstart's output on a fresh data directory (beach.jpg first, the kitchen the only indoor
# photo, and a typed dimension error for the 3-d vector).
check_output() {  # $1: the program, $2: label
  out=$("$1" "$work/data-$2") || fail "$2: quickstart exited with $?"
  echo "$out" | sed "s/^/  [$2] /"
  echo "$out" | grep -q '^  beach.jpg ' || fail "$2: no beach.jpg hit"
  echo "$out" | grep -q '^nearest indoor photo: kitchen.jpg$' || fail "$2: filtered search"
  echo "$out" | grep -q 'upsert of a 3-d vector: code 0x101' || fail "$2: dimension error code"
}

check_layout() {  # $1: the root of the installed prefix
  root=$1
  [ -f "$root/include/shoal.h" ] || fail "no include/shoal.h"
  [ -x "$root/bin/shoal" ] || fail "no bin/shoal"
  [ -f "$root/share/doc/shoal/api.md" ] || fail "no docs"
  [ -L "$root/$libdir/libshoal.so" ] || fail "libshoal.so is not the dev symlink"
  [ -L "$root/$libdir/libshoal.so.0" ] || fail "libshoal.so.0 (soname link) missing"
  soname=$(readelf -d "$root/$libdir/libshoal.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
  [ "$soname" = libshoal.so.0 ] || fail "SONAME is '$soname', want libshoal.so.0"
  if readelf -d "$root/$libdir/libshoal.so" | grep -q 'R.*PATH'; then
    fail "the installed libshoal carries an RPATH/RUNPATH into the build tree"
  fi
  if find "$root" -name '*.a' -o -name '*.hpp' | grep -q .; then
    fail "static libraries or internal headers installed: $(find "$root" -name '*.a' -o -name '*.hpp')"
  fi
}

build_with_pkg_config() {  # $1: label; PKG_CONFIG_* set by the caller
  flags=$(pkg-config --cflags --libs shoal) || fail "$1: pkg-config shoal failed"
  echo "  [$1] pkg-config --cflags --libs shoal: $flags"
  # shellcheck disable=SC2086  # word splitting of the flags is the point
  "$cc" -std=c99 -Wall -Wextra -Werror $extra -o "$work/qs-$1" "$src/examples/quickstart.c" $flags ||
    fail "$1: cc with pkg-config flags"
}

build_with_cmake() {  # $1: label, $2: the prefix to find Shoal in
  proj=$work/consumer-$1
  mkdir -p "$proj"
  cat >"$proj/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(shoal_consumer C)
find_package(Shoal 0.1 REQUIRED)
add_executable(quickstart "$src/examples/quickstart.c")
target_link_libraries(quickstart PRIVATE Shoal::shoal)
CMAKE
  "$cmake" -S "$proj" -B "$proj/build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$2" \
    -DCMAKE_C_FLAGS="$extra" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$proj/configure.log" 2>&1 ||
    { cat "$proj/configure.log"; fail "$1: configure with find_package(Shoal)"; }
  "$cmake" --build "$proj/build" >"$proj/build.log" 2>&1 ||
    { cat "$proj/build.log"; fail "$1: build against Shoal::shoal"; }
  cp "$proj/build/quickstart" "$work/qs-cmake-$1"
}

# 1. DESTDIR staging under the configured prefix.
stage=$work/destdir
DESTDIR=$stage "$cmake" --install "$build" >"$work/install-destdir.log" || fail "DESTDIR install"
root=$stage$prefix
check_layout "$root"
(
  export PKG_CONFIG_SYSROOT_DIR="$stage" PKG_CONFIG_LIBDIR="$root/$libdir/pkgconfig" PKG_CONFIG_PATH=
  build_with_pkg_config destdir
)
build_with_cmake destdir "$root"
LD_LIBRARY_PATH="$root/$libdir" check_output "$work/qs-destdir" destdir-pc
LD_LIBRARY_PATH="$root/$libdir" check_output "$work/qs-cmake-destdir" destdir-cmake
# The hand-built binary must load the installed library, not one from the build tree.
LD_LIBRARY_PATH="$root/$libdir" ldd "$work/qs-destdir" | grep -q "=> $root/$libdir/libshoal.so.0 " ||
  fail "qs-destdir does not resolve libshoal.so.0 from the install: $(ldd "$work/qs-destdir")"

# 2. An install to another prefix, chosen at install time: shoal.pc must follow it.
other=$work/prefix
"$cmake" --install "$build" --prefix "$other" >"$work/install-prefix.log" || fail "--prefix install"
check_layout "$other"
grep -q "^prefix=$other\$" "$other/$libdir/pkgconfig/shoal.pc" || fail "shoal.pc does not name --prefix"
(
  export PKG_CONFIG_PATH="$other/$libdir/pkgconfig" PKG_CONFIG_LIBDIR=/nonexistent
  unset PKG_CONFIG_SYSROOT_DIR
  [ "$(pkg-config --modversion shoal)" = "$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")" ] ||
    fail "pkg-config --modversion differs from the project version"
  build_with_pkg_config prefix
)
build_with_cmake prefix "$other"
LD_LIBRARY_PATH="$other/$libdir" check_output "$work/qs-prefix" prefix-pc
LD_LIBRARY_PATH="$other/$libdir" check_output "$work/qs-cmake-prefix" prefix-cmake

# 3. The version file refuses another major version.
mkdir -p "$work/consumer-v9"
cat >"$work/consumer-v9/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(shoal_consumer_v9 C)
find_package(Shoal 9 REQUIRED)
CMAKE
if "$cmake" -S "$work/consumer-v9" -B "$work/consumer-v9/build" -DCMAKE_PREFIX_PATH="$other" \
     -DCMAKE_C_COMPILER="$cc" >"$work/consumer-v9.log" 2>&1; then
  fail "find_package(Shoal 9) succeeded against version 0.x"
fi
echo "install_test: OK"

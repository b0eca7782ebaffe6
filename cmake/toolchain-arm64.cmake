# Cross build for 64-bit ARM (aarch64) on a Debian amd64 machine with multiarch (issue 17):
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-arm64.cmake
# scripts/arm64.sh installs what it needs and runs the tests. Libraries and their CMake and
# pkg-config files come from the arm64 -dev packages in /usr/lib/aarch64-linux-gnu (multiarch, no
# sysroot); programs that run during the build (capnp, capnpc-c++) are the amd64 ones.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Test programs run under user-mode emulation: catch_discover_tests lists each binary's tests
# through it after linking, and CTest runs them through it. The arm64 loader and libraries are the
# multiarch ones (/lib/ld-linux-aarch64.so.1, /usr/lib/aarch64-linux-gnu), so no -L is needed.
find_program(SHOAL_QEMU_AARCH64 qemu-aarch64-static REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${SHOAL_QEMU_AARCH64})

# Find arm64 libraries and packages only, but build-machine programs.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# pkg-config: the arm64 .pc files (and architecture-independent ones), never the amd64 ones.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Finds every third-party dependency (Debian 12 packages; scripts/setup.sh installs them) and wraps
# the ones that ship no CMake package in INTERFACE/IMPORTED targets named shoal::dep::*.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

find_package(CapnProto CONFIG REQUIRED)
pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)
if(SHOAL_BUILD_DAEMON)
  find_package(Boost 1.74 REQUIRED COMPONENTS system)
endif()
if(SHOAL_WITH_S3)
  find_package(CURL 7.75 REQUIRED)
endif()

# xsimd 8.1's exported target links a non-existent xtl target: an empty one stands in for it.
if(NOT TARGET xtl)
  add_library(xtl INTERFACE)
endif()
find_package(xsimd CONFIG REQUIRED)

# hnswlib is header-only without a CMake package. NO_MANUAL_VECTORIZATION: its SSE prefetch
# over-reads under ASan and our own kernels replace its SIMD anyway.
find_path(HNSWLIB_INCLUDE_DIR hnswlib/hnswlib.h REQUIRED)
add_library(shoal_dep_hnswlib INTERFACE)
target_include_directories(shoal_dep_hnswlib SYSTEM INTERFACE ${HNSWLIB_INCLUDE_DIR})
target_compile_definitions(shoal_dep_hnswlib INTERFACE NO_MANUAL_VECTORIZATION)
add_library(shoal::dep::hnswlib ALIAS shoal_dep_hnswlib)

if(SHOAL_BUILD_DAEMON)
  # libmdnsd has neither CMake nor pkg-config files: found by library and header name.
  find_library(MDNSD_LIBRARY mdnsd REQUIRED)
  find_path(MDNSD_INCLUDE_DIR libmdnsd/mdnsd.h REQUIRED)
  add_library(shoal_dep_mdnsd INTERFACE)
  target_include_directories(shoal_dep_mdnsd SYSTEM INTERFACE ${MDNSD_INCLUDE_DIR})
  target_link_libraries(shoal_dep_mdnsd INTERFACE ${MDNSD_LIBRARY})
  add_library(shoal::dep::mdnsd ALIAS shoal_dep_mdnsd)
endif()

if(SHOAL_BUILD_TESTS)
  find_package(Catch2 2.13 CONFIG REQUIRED)
  include(Catch)
  # Catch's main for the test executables. Debian's catch2 (Multi-Arch: foreign) ships
  # libCatch2WithMain.a for the build machine only, so a cross build (cmake/toolchain-arm64.cmake)
  # compiles the same one-line main itself.
  if(CMAKE_CROSSCOMPILING)
    file(WRITE ${PROJECT_BINARY_DIR}/catch2_main.cpp "#define CATCH_CONFIG_MAIN\n#include <catch2/catch.hpp>\n")
    add_library(shoal_dep_catch2_main STATIC ${PROJECT_BINARY_DIR}/catch2_main.cpp)
    target_link_libraries(shoal_dep_catch2_main PUBLIC Catch2::Catch2)
  else()
    add_library(shoal_dep_catch2_main INTERFACE)
    target_link_libraries(shoal_dep_catch2_main INTERFACE Catch2::Catch2WithMain)
  endif()
  add_library(shoal::dep::catch2_main ALIAS shoal_dep_catch2_main)
endif()

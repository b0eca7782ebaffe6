# Compiler settings shared by every Shoal target: warnings (PRIVATE, through shoal_warnings),
# sanitizers, ccache. Portable code generation only: no -march=native, no -Ofast. Per-ISA
# kernels get their own -m flags on their own translation units (index/).

find_program(SHOAL_CCACHE ccache)
if(SHOAL_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER ${SHOAL_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${SHOAL_CCACHE})
endif()

if(SHOAL_ASAN AND SHOAL_TSAN)
  message(FATAL_ERROR "SHOAL_ASAN and SHOAL_TSAN cannot be combined")
endif()
if(SHOAL_ASAN)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
if(SHOAL_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()

# Release keeps assertions (SHOAL_ASSERT is always on; NDEBUG only silences <cassert>).
# A directory-scope variable, not a cache entry: it applies to Shoal's own targets and never
# overrides the cache of a project that includes Shoal.
set(CMAKE_CXX_FLAGS_RELEASE "-O2 -DNDEBUG")
set(CMAKE_C_FLAGS_RELEASE "-O2 -DNDEBUG")

add_library(shoal_warnings INTERFACE)
target_compile_options(shoal_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  $<$<COMPILE_LANGUAGE:CXX>:-Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual>
  $<$<BOOL:${SHOAL_WERROR}>:-Werror>)

// common/assert.hpp: assertions for bugs, which stay on in release builds.
//
// Role: SHOAL_ASSERT(cond) aborts the process with the file, line and condition when `cond` is
// false. It is for invariants of our own code only; input from an app, a file or a peer is never
// asserted on, it becomes a Status (common/status.hpp). SHOAL_DEBUG_ASSERT is for expensive
// whole-state checks and compiles away unless SHOAL_EXPENSIVE_CHECKS is defined (debug, sim).
// Thread rules: safe from any thread.
#pragma once

namespace shoal::detail {
[[noreturn]] void assert_fail(const char* condition, const char* file, int line) noexcept;
}  // namespace shoal::detail

#define SHOAL_ASSERT(cond)                                         \
  do {                                                             \
    if (!(cond)) [[unlikely]]                                      \
      ::shoal::detail::assert_fail(#cond, __FILE__, __LINE__);     \
  } while (0)

#if defined(SHOAL_EXPENSIVE_CHECKS)
#define SHOAL_DEBUG_ASSERT(cond) SHOAL_ASSERT(cond)
#else
#define SHOAL_DEBUG_ASSERT(cond) \
  do {                           \
  } while (0)
#endif

#include "common/time.hpp"

#include <chrono>

namespace shoal {

MonoTime now_mono() noexcept {
  const auto t = std::chrono::steady_clock::now().time_since_epoch();
  return MonoTime::from_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(t).count());
}

WallTime now_wall() noexcept {
  const auto t = std::chrono::system_clock::now().time_since_epoch();
  return WallTime::from_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(t).count());
}

}  // namespace shoal

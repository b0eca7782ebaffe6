// common/time.hpp: integer time types that keep monotonic and wall time apart.
//
// Role: protocol code gets time only as arguments (ticks), as these types. All are
// signed 64-bit nanosecond counts. MonoTime (a monotonic clock: durations, timeouts, schedules)
// and WallTime (Unix epoch: hybrid logical clocks, expiry, "last seen") are distinct types, so
// mixing them is a compile error; both combine with Duration. Reading the real clocks is confined
// to now_mono()/now_wall(), for the runtime, tools and benchmarks, never for core code.
// Thread rules: values; now_*() are safe from any thread.
#pragma once

#include <compare>
#include <cstdint>

namespace shoal {

class Duration {
 public:
  constexpr Duration() noexcept = default;
  static constexpr Duration nanos(std::int64_t n) noexcept { return Duration(n); }
  static constexpr Duration micros(std::int64_t n) noexcept { return Duration(n * 1000); }
  static constexpr Duration millis(std::int64_t n) noexcept { return Duration(n * 1000'000); }
  static constexpr Duration seconds(std::int64_t n) noexcept { return Duration(n * 1000'000'000); }
  static constexpr Duration zero() noexcept { return Duration(0); }

  constexpr std::int64_t ns() const noexcept { return ns_; }
  constexpr std::int64_t us() const noexcept { return ns_ / 1000; }
  constexpr std::int64_t ms() const noexcept { return ns_ / 1000'000; }
  constexpr double seconds_f() const noexcept { return static_cast<double>(ns_) * 1e-9; }

  constexpr Duration operator+(Duration o) const noexcept { return Duration(ns_ + o.ns_); }
  constexpr Duration operator-(Duration o) const noexcept { return Duration(ns_ - o.ns_); }
  constexpr Duration operator-() const noexcept { return Duration(-ns_); }
  constexpr Duration operator*(std::int64_t k) const noexcept { return Duration(ns_ * k); }
  constexpr Duration operator/(std::int64_t k) const noexcept { return Duration(ns_ / k); }
  constexpr Duration& operator+=(Duration o) noexcept { ns_ += o.ns_; return *this; }
  constexpr Duration& operator-=(Duration o) noexcept { ns_ -= o.ns_; return *this; }
  constexpr auto operator<=>(const Duration&) const noexcept = default;

 private:
  constexpr explicit Duration(std::int64_t ns) noexcept : ns_(ns) {}
  std::int64_t ns_ = 0;
};

namespace detail {
// A point on one clock; Tag keeps the clocks apart.
template <typename Tag>
class TimePoint {
 public:
  constexpr TimePoint() noexcept = default;
  static constexpr TimePoint from_ns(std::int64_t ns) noexcept { return TimePoint(ns); }
  constexpr std::int64_t ns() const noexcept { return ns_; }
  constexpr std::int64_t ms() const noexcept { return ns_ / 1000'000; }

  constexpr TimePoint operator+(Duration d) const noexcept { return TimePoint(ns_ + d.ns()); }
  constexpr TimePoint operator-(Duration d) const noexcept { return TimePoint(ns_ - d.ns()); }
  constexpr Duration operator-(TimePoint o) const noexcept { return Duration::nanos(ns_ - o.ns_); }
  constexpr TimePoint& operator+=(Duration d) noexcept { ns_ += d.ns(); return *this; }
  constexpr auto operator<=>(const TimePoint&) const noexcept = default;

 private:
  constexpr explicit TimePoint(std::int64_t ns) noexcept : ns_(ns) {}
  std::int64_t ns_ = 0;
};
struct MonoTag {};
struct WallTag {};
}  // namespace detail

// Monotonic time: only differences are meaningful. Zero is an arbitrary origin.
using MonoTime = detail::TimePoint<detail::MonoTag>;
// Wall-clock time: nanoseconds since the Unix epoch. May jump; never use it for timeouts.
using WallTime = detail::TimePoint<detail::WallTag>;

// The real clocks (CLOCK_MONOTONIC and CLOCK_REALTIME). Not for sans-I/O core code.
MonoTime now_mono() noexcept;
WallTime now_wall() noexcept;

}  // namespace shoal

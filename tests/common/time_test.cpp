// Proves the time types' arithmetic and that the real clocks move forward; that mixing monotonic
// and wall time does not compile is enforced by the types themselves (checked with a concept).
#include <catch2/catch.hpp>

#include <type_traits>

#include "common/time.hpp"

using shoal::Duration;
using shoal::MonoTime;
using shoal::WallTime;

template <typename A, typename B>
concept Subtractable = requires(A a, B b) { a - b; };

TEST_CASE("monotonic and wall time cannot be mixed", "[common]") {
  STATIC_REQUIRE(Subtractable<MonoTime, MonoTime>);
  STATIC_REQUIRE(Subtractable<WallTime, WallTime>);
  STATIC_REQUIRE_FALSE(Subtractable<MonoTime, WallTime>);
  STATIC_REQUIRE_FALSE(Subtractable<WallTime, MonoTime>);
  STATIC_REQUIRE_FALSE(std::is_convertible_v<MonoTime, WallTime>);
  STATIC_REQUIRE_FALSE(std::is_convertible_v<std::int64_t, Duration>);
}

TEST_CASE("durations and time points do integer nanosecond arithmetic", "[common]") {
  CHECK(Duration::seconds(2).ns() == 2'000'000'000);
  CHECK(Duration::millis(3).us() == 3000);
  CHECK((Duration::micros(1500) + Duration::micros(500)).ms() == 2);
  CHECK((Duration::seconds(1) * 3 / 2).ms() == 1500);
  auto t0 = MonoTime::from_ns(100);
  auto t1 = t0 + Duration::nanos(50);
  CHECK((t1 - t0).ns() == 50);
  CHECK(t1 > t0);
  auto w = WallTime::from_ns(1'700'000'000'000'000'000);
  CHECK((w - Duration::seconds(1)).ns() == 1'699'999'999'000'000'000);
}

TEST_CASE("the monotonic clock never goes backwards", "[common]") {
  auto a = shoal::now_mono();
  auto b = shoal::now_mono();
  CHECK(b >= a);
  // The wall clock is after 2020-01-01 on any machine this runs on.
  CHECK(shoal::now_wall().ns() > 1'577'836'800'000'000'000);
}

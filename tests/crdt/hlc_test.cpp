// Proves the hybrid logical clock's guarantees: ticks are strictly monotone whatever the wall
// clock does (backward jumps, standstill, random walks), a logical overflow carries into the
// millisecond part, a clock that observed a remote value ticks above it even when the remote
// wall clock is skewed ahead, and a remote clock beyond the allowed forward skew is refused with
// kOutOfRange without moving the local clock.
#include "crdt/hlc.hpp"

#include <catch2/catch.hpp>

#include "common/random.hpp"

using namespace shoal::crdt;
using shoal::Duration;
using shoal::WallTime;

namespace {
WallTime ms(std::int64_t v) { return WallTime::from_ns(v * 1'000'000); }
}  // namespace

TEST_CASE("hlc ticks follow the wall clock and stay monotone when it jumps back", "[crdt]") {
  HybridClock c;
  const Hlc t1 = c.tick(ms(1000));
  CHECK(t1 == Hlc::from_parts(1000, 0));
  const Hlc t2 = c.tick(ms(1000));
  CHECK(t2 == Hlc::from_parts(1000, 1));
  const Hlc t3 = c.tick(ms(10));  // the wall clock jumped back
  CHECK(t3 == Hlc::from_parts(1000, 2));
  const Hlc t4 = c.tick(ms(2000));  // and forward again
  CHECK(t4 == Hlc::from_parts(2000, 0));
  CHECK(c.tick(ms(-5)) > t4);  // before the epoch
}

TEST_CASE("hlc logical overflow carries into milliseconds", "[crdt]") {
  HybridClock c(Hlc::from_parts(5, 0xffff));
  const Hlc t = c.tick(ms(5));
  CHECK(t == Hlc::from_parts(6, 0));
}

TEST_CASE("hlc ticks are strictly monotone under random wall clocks and remote clocks",
          "[crdt][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  shoal::Rng rng(seed);
  HybridClock c;
  Hlc last;
  std::int64_t wall = 1'700'000'000'000;
  for (int i = 0; i < 100'000; ++i) {
    wall += rng.uniform_range(-2000, 2000);
    if (rng.bernoulli(0.3)) {
      const Hlc remote =
          Hlc::from_parts(static_cast<std::uint64_t>(wall + rng.uniform_range(-1000, 1000)),
                          static_cast<std::uint16_t>(rng.next_u32()));
      REQUIRE(c.observe(remote, ms(wall)).ok());
      const Hlc t = c.tick(ms(wall));
      REQUIRE(t > remote);
      REQUIRE(t > last);
      last = t;
    } else {
      const Hlc t = c.tick(ms(wall));
      REQUIRE(t > last);
      last = t;
    }
  }
}

TEST_CASE("a remote clock far in the future is refused and not adopted", "[crdt]") {
  HybridClock c(Hlc(), Duration::seconds(60));
  const Hlc before = c.tick(ms(1'000'000));
  const Hlc near = Hlc::from_parts(1'000'000 + 59'000, 0);
  REQUIRE(c.observe(near, ms(1'000'000)).ok());
  CHECK(c.last() == near);
  const Hlc absurd = Hlc::from_parts(1'000'000 + 3'600'000, 0);
  const shoal::Status s = c.observe(absurd, ms(1'000'000));
  CHECK(s.detail() == shoal::Detail::kOutOfRange);
  CHECK(s.code() == shoal::Code::kInvalidArgument);
  CHECK(c.last() == near);
  CHECK(c.tick(ms(1'000'000)) > before);
}

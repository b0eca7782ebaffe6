// Proves that Rng is deterministic per seed (fixed known outputs, so a change of algorithm is
// caught), that its integer distributions are unbiased within statistical bounds (chi-square),
// and that its real-valued distributions have the right mean and spread.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "common/random.hpp"

using shoal::Rng;

TEST_CASE("the same seed gives the same stream and different seeds differ", "[common]") {
  Rng a(42), b(42), c(43);
  bool any_diff = false;
  for (int i = 0; i < 1000; ++i) {
    auto x = a.next_u64();
    CHECK(x == b.next_u64());
    any_diff |= (x != c.next_u64());
  }
  CHECK(any_diff);
}

TEST_CASE("the stream is pinned: simulator seeds must replay across builds", "[common]") {
  // Recorded once from this implementation (xoshiro256** seeded by splitmix64). If this fails,
  // every committed simulator seed and trace hash changes meaning.
  Rng r(0);
  const std::uint64_t first = r.next_u64();
  const std::uint64_t second = r.next_u64();
  Rng again(0);
  CHECK(again.next_u64() == first);
  CHECK(again.next_u64() == second);
  CHECK(first == 0x99ec5f36cb75f2b4ull);
  CHECK(second == 0xbf6e1f784956452aull);
}

TEST_CASE("uniform(bound) stays in range and is unbiased (chi-square)", "[common][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng r(seed);
  for (std::uint64_t bound : {1ull, 2ull, 3ull, 7ull, 10ull, 1000ull}) {
    std::vector<int> counts(bound, 0);
    const int n = 100000;
    for (int i = 0; i < n; ++i) {
      auto v = r.uniform(bound);
      REQUIRE(v < bound);
      counts[v]++;
    }
    if (bound == 1) continue;
    const double expected = static_cast<double>(n) / static_cast<double>(bound);
    double chi2 = 0;
    for (int c : counts) chi2 += (c - expected) * (c - expected) / expected;
    // Degrees of freedom k = bound - 1. Laurent-Massart: P(X - k >= 2 sqrt(k x) + 2x) <= e^-x for a
    // chi-square X with k degrees of freedom; x = 25 makes a false alarm rarer than 1e-10 per
    // check, for small k too (a normal approximation is far too tight at k = 1).
    const double k = static_cast<double>(bound - 1);
    const double x = 25.0;
    CHECK(chi2 < k + 2.0 * std::sqrt(k * x) + 2.0 * x);
  }
}

TEST_CASE("uniform_range covers both ends inclusively", "[common]") {
  Rng r(7);
  bool lo = false, hi = false;
  for (int i = 0; i < 10000; ++i) {
    auto v = r.uniform_range(-3, 3);
    REQUIRE(v >= -3);
    REQUIRE(v <= 3);
    lo |= v == -3;
    hi |= v == 3;
  }
  CHECK(lo);
  CHECK(hi);
  CHECK(r.uniform_range(5, 5) == 5);
}

TEST_CASE("real-valued distributions have the right moments", "[common][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng r(seed);
  const int n = 200000;
  double sum_u = 0, sum_n = 0, sum_n2 = 0, sum_e = 0;
  int heads = 0;
  for (int i = 0; i < n; ++i) {
    double u = r.uniform_double();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    float f = r.uniform_float(-1.0f, 1.0f);
    REQUIRE(f >= -1.0f);
    REQUIRE(f < 1.0f);
    sum_u += u;
    double g = r.normal(2.0, 3.0);
    sum_n += g;
    sum_n2 += g * g;
    sum_e += r.exponential(5.0);
    heads += r.bernoulli(0.25) ? 1 : 0;
  }
  const double dn = n;
  CHECK(sum_u / dn == Approx(0.5).margin(0.01));
  const double mean = sum_n / dn;
  CHECK(mean == Approx(2.0).margin(0.05));
  CHECK(std::sqrt(sum_n2 / dn - mean * mean) == Approx(3.0).margin(0.05));
  CHECK(sum_e / dn == Approx(5.0).margin(0.1));
  CHECK(heads / dn == Approx(0.25).margin(0.01));
  CHECK_FALSE(r.bernoulli(0.0));
  CHECK(r.bernoulli(1.0));
}

TEST_CASE("shuffle is a permutation and fork gives independent streams", "[common]") {
  Rng r(99);
  std::vector<int> v(100);
  std::iota(v.begin(), v.end(), 0);
  r.shuffle(std::span<int>(v));
  auto sorted = v;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 100; ++i) CHECK(sorted[i] == i);
  CHECK(v != sorted);

  Rng base1(5), base2(5);
  Rng f1 = base1.fork(1), f2 = base2.fork(1), g = base2.fork(1);
  CHECK(f1.next_u64() == f2.next_u64());
  CHECK(f1.next_u64() != g.next_u64());
}

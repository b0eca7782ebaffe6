// common/random.hpp: Shoal's own seeded pseudo-random generator and distributions.
//
// Role: every random choice in protocol code, the simulator, tests and benchmarks comes from a
// Rng seeded explicitly, so a seed reproduces a run bit for bit on the same platform. We never use
// std::*_distribution: their output differs between standard libraries. The generator is
// xoshiro256** (Blackman and Vigna), seeded through splitmix64. It is not for cryptography:
// keys and nonces come from libsodium through security/.
//
// Floating-point distributions (normal, exponential) use std::log/std::sqrt/std::cos, which are
// deterministic on one platform and libm; the integer ones are exact everywhere.
// Thread rules: a Rng is a value owned by one thread; fork() derives independent streams.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "common/assert.hpp"

namespace shoal {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept;

  std::uint64_t seed() const noexcept { return seed_; }

  // 64 uniformly distributed bits.
  std::uint64_t next_u64() noexcept;
  std::uint32_t next_u32() noexcept { return static_cast<std::uint32_t>(next_u64() >> 32); }

  // Uniform in [0, bound). bound must be > 0. Unbiased (Lemire's multiply-and-reject).
  std::uint64_t uniform(std::uint64_t bound) noexcept;
  // Uniform in [lo, hi], inclusive. Requires lo <= hi.
  std::int64_t uniform_range(std::int64_t lo, std::int64_t hi) noexcept;
  // Uniform double in [0, 1) with 53 random bits.
  double uniform_double() noexcept;
  // Uniform float in [lo, hi).
  float uniform_float(float lo, float hi) noexcept;
  // True with probability p (p <= 0: never; p >= 1: always).
  bool bernoulli(double p) noexcept;
  // Standard normal scaled by stddev and shifted by mean (Box-Muller, no cached spare).
  double normal(double mean, double stddev) noexcept;
  // Exponential with the given mean (> 0).
  double exponential(double mean) noexcept;

  // Fisher-Yates shuffle.
  template <typename T>
  void shuffle(std::span<T> items) noexcept {
    for (std::size_t i = items.size(); i > 1; --i) {
      std::size_t j = static_cast<std::size_t>(uniform(i));
      using std::swap;
      swap(items[i - 1], items[j]);
    }
  }

  // An independent generator whose stream is derived from this one's next output and `stream`.
  Rng fork(std::uint64_t stream = 0) noexcept;

 private:
  std::uint64_t seed_;
  std::array<std::uint64_t, 4> s_;
};

// splitmix64 step, exposed because it is a good 64-bit mixer for seeds and ids.
std::uint64_t splitmix64(std::uint64_t& state) noexcept;

}  // namespace shoal

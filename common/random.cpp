#include "common/random.hpp"

#include <cmath>
#include <numbers>

namespace shoal {

std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Rng::Rng(std::uint64_t seed) noexcept : seed_(seed) {
  std::uint64_t st = seed;
  for (auto& word : s_) word = splitmix64(st);
}

namespace {
__extension__ typedef unsigned __int128 U128;
constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
}  // namespace

std::uint64_t Rng::next_u64() noexcept {
  const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const std::uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

std::uint64_t Rng::uniform(std::uint64_t bound) noexcept {
  SHOAL_ASSERT(bound > 0);
  // Lemire, "Fast random integer generation in an interval" (2019): 128-bit product, reject the
  // low part below 2^64 mod bound.
  U128 m = static_cast<U128>(next_u64()) * bound;
  auto low = static_cast<std::uint64_t>(m);
  if (low < bound) {
    const std::uint64_t threshold = (0 - bound) % bound;
    while (low < threshold) {
      m = static_cast<U128>(next_u64()) * bound;
      low = static_cast<std::uint64_t>(m);
    }
  }
  return static_cast<std::uint64_t>(m >> 64);
}

std::int64_t Rng::uniform_range(std::int64_t lo, std::int64_t hi) noexcept {
  SHOAL_ASSERT(lo <= hi);
  const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
  if (span == UINT64_MAX) return static_cast<std::int64_t>(next_u64());
  return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + uniform(span + 1));
}

double Rng::uniform_double() noexcept {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

float Rng::uniform_float(float lo, float hi) noexcept {
  const auto f = static_cast<float>(next_u64() >> 40) * 0x1.0p-24f;
  float v = lo + (hi - lo) * f;
  // Rounding can land on hi; keep the interval half-open.
  return v < hi ? v : lo;
}

bool Rng::bernoulli(double p) noexcept {
  if (p <= 0.0) return false;
  if (p >= 1.0) return true;
  return uniform_double() < p;
}

double Rng::normal(double mean, double stddev) noexcept {
  // 1 - u is in (0, 1], so the log is finite.
  const double u1 = 1.0 - uniform_double();
  const double u2 = uniform_double();
  const double r = std::sqrt(-2.0 * std::log(u1));
  return mean + stddev * r * std::cos(2.0 * std::numbers::pi * u2);
}

double Rng::exponential(double mean) noexcept {
  SHOAL_ASSERT(mean > 0.0);
  return -mean * std::log(1.0 - uniform_double());
}

Rng Rng::fork(std::uint64_t stream) noexcept {
  std::uint64_t st = next_u64() ^ (stream * 0xd1342543de82ef95ull);
  return Rng(splitmix64(st));
}

}  // namespace shoal

// Shared by kill9_test and kill9_writer: what batch b holds, derived from the seed alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/random.hpp"

namespace shoal::kill9 {

inline std::uint64_t batch_size(std::uint64_t seed, std::uint64_t b) {
  std::uint64_t st = seed ^ (b * 0x9e3779b97f4a7c15ull);
  return 1 + splitmix64(st) % 20;
}
inline std::string record_id(std::uint64_t b, std::uint64_t i) {
  return "b" + std::to_string(b) + "-" + std::to_string(i);
}
// The multi-threaded writer's record n of thread t, in the cycle that started at `first`.
inline std::string thread_record_id(std::uint64_t first, std::uint64_t t, std::uint64_t n) {
  return "m" + std::to_string(first) + "-t" + std::to_string(t) + "-" + std::to_string(n);
}
inline std::vector<float> vector_of(std::uint64_t b, std::uint64_t i) {
  std::vector<float> v(8);
  for (std::size_t j = 0; j < v.size(); ++j) v[j] = static_cast<float>((b * 31 + i * 7 + j) % 97);
  return v;
}

// The closing writer's record i of batch b: distinct for every (b, i), so that an unfiltered
// search by it has one answer at distance 0, which only the index gives.
inline std::vector<float> distinct_vector(std::uint64_t b, std::uint64_t i) {
  std::vector<float> v(8, 0.0f);
  v[0] = static_cast<float>(b);
  v[1] = static_cast<float>(i) * 0.25f;
  v[2] = 1.0f;
  return v;
}

}  // namespace shoal::kill9

// tests/index/test_util.hpp: seeded data sets and recall helpers shared by the index tests.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "index/exact_index.hpp"
#include "index/types.hpp"

namespace shoal::index::testing {

// n x dim vectors in [-1, 1), in clusters so the graph has structure to find.
inline std::vector<float> clustered_data(Rng& rng, std::size_t n, std::size_t dim,
                                         std::size_t clusters = 16) {
  std::vector<float> centers(clusters * dim);
  for (float& c : centers) c = rng.uniform_float(-1.0f, 1.0f);
  std::vector<float> out(n * dim);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t c = rng.uniform(clusters);
    for (std::size_t j = 0; j < dim; ++j) {
      out[i * dim + j] = centers[c * dim + j] + static_cast<float>(rng.normal(0.0, 0.15));
    }
  }
  return out;
}

inline double recall_at(const std::vector<Neighbor>& got, const std::vector<Neighbor>& truth) {
  if (truth.empty()) return 1.0;
  std::set<std::uint64_t> t;
  for (const auto& n : truth) t.insert(n.label);
  std::size_t hit = 0;
  for (const auto& n : got) hit += t.count(n.label);
  return static_cast<double>(hit) / static_cast<double>(truth.size());
}

// A fresh directory under the build tree (or TMPDIR) for file tests.
inline std::filesystem::path temp_dir(const std::string& name) {
  std::filesystem::path base = SHOAL_TEST_TMPDIR;
  auto dir = base / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace shoal::index::testing

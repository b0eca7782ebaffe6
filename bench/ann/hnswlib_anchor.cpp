// bench/ann/hnswlib_anchor.cpp: the raw hnswlib anchor. Compiled alone with -O3 -march=native
// and without NO_MANUAL_VECTORIZATION. The namespace is renamed so these instantiations of
// HierarchicalNSW<float> never collide with the portable ones inside shoal_index.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <queue>
#include <thread>
#include <unordered_map>
#include <vector>

#define hnswlib shoal_bench_anchor_hnswlib
#include <hnswlib/hnswlib.h>
#undef hnswlib

#include "bench/ann/hnswlib_anchor.hpp"

namespace shoal::bench {

namespace hn = shoal_bench_anchor_hnswlib;

namespace {
std::unique_ptr<hn::SpaceInterface<float>> make_space(std::size_t dim, HnswlibAnchor::Space s) {
  if (s == HnswlibAnchor::Space::kInnerProduct) return std::make_unique<hn::InnerProductSpace>(dim);
  return std::make_unique<hn::L2Space>(dim);
}
}  // namespace

struct HnswlibAnchor::Impl {
  std::size_t dim;
  std::unique_ptr<hn::SpaceInterface<float>> space;
  hn::HierarchicalNSW<float> index;
  Impl(std::size_t d, std::size_t max_elements, std::size_t m, std::size_t efc, Space s)
      : dim(d), space(make_space(d, s)), index(space.get(), max_elements, m, efc) {}
};

HnswlibAnchor::HnswlibAnchor(std::size_t dim, std::size_t max_elements, std::size_t m,
                             std::size_t ef_construction, Space space)
    : impl_(std::make_unique<Impl>(dim, max_elements, m, ef_construction, space)) {}

HnswlibAnchor::~HnswlibAnchor() = default;

void HnswlibAnchor::build(const float* data, std::size_t n, unsigned threads) {
  const std::size_t dim = impl_->dim;
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (;;) {
      const std::size_t i = next.fetch_add(1);
      if (i >= n) return;
      impl_->index.addPoint(data + i * dim, i);
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < std::max(1u, threads); ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

void HnswlibAnchor::set_ef(std::size_t ef) { impl_->index.setEf(ef); }

std::size_t HnswlibAnchor::search(const float* query, std::size_t k, std::uint64_t* labels) const {
  auto result = impl_->index.searchKnn(query, k);
  std::size_t n = result.size();
  const std::size_t count = n;
  while (!result.empty()) {
    labels[--n] = result.top().second;
    result.pop();
  }
  return count;
}

std::size_t HnswlibAnchor::memory_bytes() const {
  const auto& h = impl_->index;
  std::size_t bytes = h.max_elements_ * h.size_data_per_element_;
  for (std::size_t i = 0; i < h.cur_element_count; ++i) {
    bytes += static_cast<std::size_t>(h.element_levels_[i]) * h.size_links_per_element_;
  }
  bytes += h.max_elements_ * (sizeof(std::mutex) + sizeof(int) + sizeof(void*) + sizeof(hn::vl_type));
  bytes += hn::HierarchicalNSW<float>::max_update_element_locks * sizeof(std::mutex);
  bytes += h.label_lookup_.size() * 40 + h.label_lookup_.bucket_count() * sizeof(void*);
  return bytes;
}

}  // namespace shoal::bench

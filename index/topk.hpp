// index/topk.hpp: internal helpers: a bounded top-k collector and float distance by metric.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "index/kernels.hpp"
#include "index/types.hpp"

namespace shoal::index::detail {

// Float distance under `metric`. Cosine uses the one-pass cosine kernel (no normalization needed).
inline float float_distance(const KernelTable& k, Metric metric, const float* a, const float* b,
                            std::size_t dim) noexcept {
  switch (metric) {
    case Metric::kL2: return k.l2sq(a, b, dim);
    case Metric::kInnerProduct: return 1.0f - k.dot(a, b, dim);
    case Metric::kCosine: return k.cosine(a, b, dim);
  }
  return 0.0f;
}

// Keeps the k smallest (distance, label) pairs; ties broken by the smaller label, so results are
// deterministic whatever the visiting order.
class TopK {
 public:
  explicit TopK(std::size_t k) : k_(k) { heap_.reserve(k + 1); }

  static bool less(const Neighbor& a, const Neighbor& b) noexcept {
    return a.distance < b.distance || (a.distance == b.distance && a.label < b.label);
  }

  void push(float distance, std::uint64_t label) {
    if (k_ == 0) return;
    const Neighbor n{label, distance};
    if (heap_.size() < k_) {
      heap_.push_back(n);
      std::push_heap(heap_.begin(), heap_.end(), less);
    } else if (less(n, heap_.front())) {
      std::pop_heap(heap_.begin(), heap_.end(), less);
      heap_.back() = n;
      std::push_heap(heap_.begin(), heap_.end(), less);
    }
  }

  std::size_t size() const noexcept { return heap_.size(); }

  std::vector<Neighbor> take_sorted() {
    std::sort_heap(heap_.begin(), heap_.end(), less);
    return std::move(heap_);
  }

 private:
  std::size_t k_;
  std::vector<Neighbor> heap_;
};

}  // namespace shoal::index::detail

// index/exact_index.hpp: ExactIndex, brute-force search with the same kernels as the graph.
//
// Role: the reference for recall tests and benchmarks, and a complete index for small
// collections. Vectors are stored densely (slot order); removal swaps the last slot in, so
// memory stays proportional to the live count. Filters are applied exactly.
// Thread rules: as VectorIndex (shared lock for searches, exclusive for writes).
// Also exposes exact_knn(), a lock-free free function over a flat array, used for ground truth.
#pragma once

#include <memory>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "index/vector_index.hpp"

namespace shoal::index {

class ExactIndex final : public VectorIndex {
 public:
  // kInvalidArgument statuses from validate_params().
  static Result<std::unique_ptr<ExactIndex>> create(const IndexParams& params);

  const IndexParams& params() const noexcept override { return params_; }
  Status add(std::uint64_t label, std::span<const float> vector) override;
  Status remove(std::uint64_t label) override;
  bool contains(std::uint64_t label) const override;
  std::size_t size() const override;
  Status reserve(std::size_t capacity) override;
  Result<SearchResult> search(const SearchRequest& req) const override;
  MemoryUsage memory() const override;

 private:
  explicit ExactIndex(const IndexParams& params);

  IndexParams params_;
  const KernelTable* kernels_;
  mutable std::shared_mutex mu_;
  std::vector<float> vectors_;          // slot-major, dimension floats per slot
  std::vector<std::uint64_t> labels_;   // label of each slot
  std::unordered_map<std::uint64_t, std::size_t> slot_of_;  // lookups only; never iterated
};

// The exact k nearest rows of `base` (row-major, n x dim) to `query` under `metric`, closest
// first, ties by row index. Cosine expects nothing normalized. Pure; safe from any thread.
std::vector<Neighbor> exact_knn(const KernelTable& kernels, Metric metric,
                                std::span<const float> base, std::size_t dim,
                                std::span<const float> query, std::size_t k);

}  // namespace shoal::index

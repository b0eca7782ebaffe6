// index/exact_index.cpp: brute-force search.
#include "index/exact_index.hpp"

#include <algorithm>
#include <mutex>
#include <string>

#include "index/topk.hpp"

namespace shoal::index {

Result<std::unique_ptr<ExactIndex>> ExactIndex::create(const IndexParams& params) {
  SHOAL_RETURN_IF_ERROR(validate_params(params));
  return std::unique_ptr<ExactIndex>(new ExactIndex(params));
}

ExactIndex::ExactIndex(const IndexParams& params)
    : params_(params),
      kernels_(params.isa ? kernels_for(*params.isa) : &best_kernels()) {
  SHOAL_ASSERT(kernels_ != nullptr);
}

Status ExactIndex::add(std::uint64_t label, std::span<const float> vector) {
  SHOAL_RETURN_IF_ERROR(check_vector(vector, params_.dimension, params_.metric));
  std::unique_lock lock(mu_);
  const std::size_t dim = params_.dimension;
  auto it = slot_of_.find(label);
  if (it != slot_of_.end()) {
    std::copy(vector.begin(), vector.end(), vectors_.begin() + static_cast<std::ptrdiff_t>(it->second * dim));
    return ok_status();
  }
  if (labels_.size() >= kMaxElements) {
    return Status(Detail::kTooLarge, "index holds the maximum of " + std::to_string(kMaxElements) +
                                         " vectors");
  }
  slot_of_.emplace(label, labels_.size());
  labels_.push_back(label);
  vectors_.insert(vectors_.end(), vector.begin(), vector.end());
  return ok_status();
}

Status ExactIndex::remove(std::uint64_t label) {
  std::unique_lock lock(mu_);
  auto it = slot_of_.find(label);
  if (it == slot_of_.end()) {
    return Status(Detail::kNoSuchRecord, "label " + std::to_string(label) + " is not in the index");
  }
  const std::size_t dim = params_.dimension;
  const std::size_t slot = it->second;
  const std::size_t last = labels_.size() - 1;
  if (slot != last) {
    std::copy_n(vectors_.begin() + static_cast<std::ptrdiff_t>(last * dim), dim,
                vectors_.begin() + static_cast<std::ptrdiff_t>(slot * dim));
    labels_[slot] = labels_[last];
    slot_of_[labels_[slot]] = slot;
  }
  labels_.pop_back();
  vectors_.resize(last * dim);
  slot_of_.erase(it);
  return ok_status();
}

bool ExactIndex::contains(std::uint64_t label) const {
  std::shared_lock lock(mu_);
  return slot_of_.count(label) != 0;
}

std::size_t ExactIndex::size() const {
  std::shared_lock lock(mu_);
  return labels_.size();
}

Status ExactIndex::reserve(std::size_t capacity) {
  if (capacity > kMaxElements) {
    return Status(Detail::kTooLarge, "capacity " + std::to_string(capacity) + " is above the limit " +
                                         std::to_string(kMaxElements));
  }
  std::unique_lock lock(mu_);
  labels_.reserve(capacity);
  vectors_.reserve(capacity * params_.dimension);
  return ok_status();
}

Result<SearchResult> ExactIndex::search(const SearchRequest& req) const {
  SHOAL_RETURN_IF_ERROR(validate_search(req, params_));
  std::shared_lock lock(mu_);
  const std::size_t dim = params_.dimension;
  detail::TopK top(req.k);
  SearchResult out;
  auto consider = [&](std::size_t slot) {
    const std::uint64_t label = labels_[slot];
    if (req.filter != nullptr && !(*req.filter)(label)) return;
    const float d = detail::float_distance(*kernels_, params_.metric, req.query.data(),
                                           vectors_.data() + slot * dim, dim);
    ++out.distance_count;
    top.push(d, label);
  };
  if (req.matching_labels) {
    out.plan = Plan::kExactMatching;
    for (std::uint64_t label : *req.matching_labels) {
      auto it = slot_of_.find(label);
      if (it != slot_of_.end()) consider(it->second);
    }
  } else {
    out.plan = Plan::kExactScan;
    for (std::size_t slot = 0; slot < labels_.size(); ++slot) consider(slot);
  }
  out.neighbors = top.take_sorted();
  return out;
}

MemoryUsage ExactIndex::memory() const {
  std::shared_lock lock(mu_);
  MemoryUsage m;
  m.vector_bytes = vectors_.capacity() * sizeof(float);
  m.other_bytes = labels_.capacity() * sizeof(std::uint64_t) + slot_of_.size() * 32;
  return m;
}

std::vector<Neighbor> exact_knn(const KernelTable& kernels, Metric metric,
                                std::span<const float> base, std::size_t dim,
                                std::span<const float> query, std::size_t k) {
  detail::TopK top(k);
  const std::size_t n = dim == 0 ? 0 : base.size() / dim;
  for (std::size_t i = 0; i < n; ++i) {
    top.push(detail::float_distance(kernels, metric, query.data(), base.data() + i * dim, dim), i);
  }
  return top.take_sorted();
}

}  // namespace shoal::index

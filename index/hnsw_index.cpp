// index/hnsw_index.cpp: HnswIndex's creation, writes and accessors. The index's other concerns
// have files of their own (index/hnsw_internal.hpp lists them): graph.cpp (the hnswlib adapter),
// quantizer.cpp, planner.cpp, search.cpp, rebuild.cpp and snapshot.cpp.
#include "index/hnsw_index.hpp"

#include <algorithm>
#include <exception>
#include <string>

#include "common/assert.hpp"
#include "index/hnsw_internal.hpp"

namespace shoal::index {

using detail::Graph;

// ---------------------------------------------------------------------------------------------
// Creation, writes

HnswIndex::HnswIndex(const IndexParams& params, RebuildExecutor executor)
    : params_(params),
      kernels_(params.isa ? kernels_for(*params.isa) : &best_kernels()),
      executor_(std::move(executor)) {
  SHOAL_ASSERT(kernels_ != nullptr);
}

HnswIndex::~HnswIndex() {
  std::lock_guard lock(thread_mu_);
  if (rebuild_thread_.joinable()) rebuild_thread_.join();
}

Result<std::unique_ptr<HnswIndex>> HnswIndex::create(const IndexParams& params,
                                                     RebuildExecutor executor,
                                                     const FloatSource* floats) {
  SHOAL_RETURN_IF_ERROR(validate_params(params));
  std::unique_ptr<HnswIndex> index(new HnswIndex(params, std::move(executor)));
  index->floats_ = floats;
  try {
    index->graph_ = Graph::make(params, index->kernels_, params.initial_capacity, floats);
  } catch (const std::exception& e) {
    return detail::hnswlib_error("allocation", e);
  }
  return index;
}

Status HnswIndex::add_locked(std::uint64_t label, std::span<const float> vector) {
  Graph& g = *graph_;
  try {
    if (g.count() >= g.capacity() && !g.stored(label)) {
      if (g.capacity() >= kMaxElements) {
        return Status(Detail::kTooLarge, "index holds the maximum of " +
                                             std::to_string(kMaxElements) + " vectors");
      }
      g.grow(std::min<std::size_t>(g.capacity() * 2, kMaxElements));
    }
    g.cover(vector);
    std::vector<float> prepared(g.dim);
    g.prepare(vector, prepared.data());
    g.insert(label, prepared.data());
    if (journaling_) journal_.push_back({false, label, std::move(prepared)});
  } catch (const std::exception& e) {
    return detail::hnswlib_error("addPoint", e);
  }
  return ok_status();
}

Status HnswIndex::add(std::uint64_t label, std::span<const float> vector) {
  SHOAL_RETURN_IF_ERROR(check_vector(vector, params_.dimension, params_.metric));
  std::unique_lock lock(mu_);
  return add_locked(label, vector);
}

Status HnswIndex::add_batch(std::span<const std::uint64_t> labels, std::span<const float> vectors,
                            unsigned threads, const std::function<bool()>& stop) {
  const std::size_t dim = params_.dimension;
  if (vectors.size() != labels.size() * dim) {
    return Status(Detail::kDimensionMismatch,
                  "batch holds " + std::to_string(vectors.size()) + " floats, expected " +
                      std::to_string(labels.size()) + " x " + std::to_string(dim));
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    Status s = check_vector(vectors.subspan(i * dim, dim), params_.dimension, params_.metric);
    if (!s.ok()) return s.with_context("row " + std::to_string(i));
  }
  std::unique_lock lock(mu_);
  Graph& g = *graph_;
  try {
    const std::size_t need = g.count() + labels.size();
    if (need > kMaxElements) {
      return Status(Detail::kTooLarge, "batch would exceed the maximum of " +
                                           std::to_string(kMaxElements) + " vectors");
    }
    if (need > g.capacity()) g.grow(std::max(need, std::min<std::size_t>(g.capacity() * 2, kMaxElements)));
    // The whole batch's range before any insert: the inserts below run on several threads.
    g.cover(vectors);
  } catch (const std::exception& e) {
    return detail::hnswlib_error("resizeIndex", e);
  }
  // Rows whose label is new to the graph and first in the batch are inserted by `threads`
  // threads; the others (replacements of present labels, later rows of a label repeated in the
  // batch) afterwards on this thread, in batch order: hnswlib's update path is not safe to run
  // concurrently (Graph::insert), and the last row of a label deterministically wins.
  std::vector<std::size_t> fresh_rows, update_rows;
  {
    std::vector<std::size_t> order(labels.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return labels[a] < labels[b]; });
    std::vector<bool> fresh(labels.size(), false);
    for (std::size_t j = 0; j < order.size(); ++j) {
      const std::size_t i = order[j];
      const bool first_of_label = j == 0 || labels[order[j - 1]] != labels[i];
      fresh[i] = first_of_label && !g.stored(labels[i]);
    }
    for (std::size_t i = 0; i < labels.size(); ++i) (fresh[i] ? fresh_rows : update_rows).push_back(i);
  }
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> inserted{0};
  std::atomic<bool> stopped{false};
  std::mutex err_mu;
  Status first_error;
  auto insert_row = [&](std::size_t i, std::vector<float>& prepared) {
    if (stopped.load(std::memory_order_relaxed) || (stop && stop())) {
      stopped.store(true, std::memory_order_relaxed);
      return;
    }
    inserted.fetch_add(1, std::memory_order_relaxed);
    try {
      g.prepare(vectors.subspan(i * dim, dim), prepared.data());
      g.insert(labels[i], prepared.data());
    } catch (const std::exception& e) {
      std::lock_guard l(err_mu);
      if (first_error.ok()) first_error = detail::hnswlib_error("addPoint", e);
    }
  };
  auto worker = [&] {
    std::vector<float> prepared(dim);
    for (;;) {
      const std::size_t j = next.fetch_add(1);
      if (j >= fresh_rows.size() || stopped.load(std::memory_order_relaxed)) return;
      insert_row(fresh_rows[j], prepared);
    }
  };
  const unsigned n = std::max(1u, threads);
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  {
    std::vector<float> prepared(dim);
    for (std::size_t i : update_rows) {
      if (stopped.load(std::memory_order_relaxed)) break;
      insert_row(i, prepared);
    }
  }
  if (journaling_) {
    // A stopped batch journals every row too: the caller adds it again, so a rebuild replaying
    // the journal holds at least what the graph holds.
    for (std::size_t i = 0; i < labels.size(); ++i) {
      std::vector<float> prepared(dim);
      g.prepare(vectors.subspan(i * dim, dim), prepared.data());
      journal_.push_back({false, labels[i], std::move(prepared)});
    }
  }
  if (first_error.ok() && stopped.load()) {
    return Status(Code::kUnavailable, "batch stopped after " + std::to_string(inserted.load()) + " of " +
                                          std::to_string(labels.size()) + " rows");
  }
  return first_error;
}

Status HnswIndex::remove(std::uint64_t label) {
  bool schedule = false;
  {
    std::unique_lock lock(mu_);
    Graph& g = *graph_;
    if (g.find_live(label) < 0) {
      return Status(Detail::kNoSuchRecord, "label " + std::to_string(label) + " is not in the index");
    }
    try {
      g.mark_deleted(label);
    } catch (const std::exception& e) {
      return detail::hnswlib_error("markDelete", e);
    }
    if (journaling_) journal_.push_back({true, label, {}});
    const double share = static_cast<double>(g.deleted()) / static_cast<double>(g.count());
    if (params_.rebuild_deleted_share > 0.0 && share > params_.rebuild_deleted_share &&
        g.count() >= params_.rebuild_min_elements && !rebuild_pending_.load()) {
      rebuild_pending_.store(true);
      journaling_ = true;
      journal_.clear();
      schedule = true;
    }
  }
  if (schedule) submit_rebuild();
  return ok_status();
}
bool HnswIndex::contains(std::uint64_t label) const {
  std::shared_lock lock(mu_);
  return graph_->find_live(label) >= 0;
}

std::size_t HnswIndex::size() const {
  std::shared_lock lock(mu_);
  return graph_->live();
}

double HnswIndex::deleted_share() const {
  std::shared_lock lock(mu_);
  const Graph& g = *graph_;
  return g.count() == 0 ? 0.0 : static_cast<double>(g.deleted()) / static_cast<double>(g.count());
}

std::pair<float, float> HnswIndex::quant_range() const {
  if (params_.quantization != Quantization::kInt8) return {0.0f, 0.0f};
  std::shared_lock lock(mu_);
  const Graph& g = *graph_;
  if (g.calibrated) return g.has_range ? std::pair{g.range_lo, g.range_hi} : std::pair{0.0f, 0.0f};
  return {params_.quant_min, params_.quant_max};
}

Status HnswIndex::reserve(std::size_t capacity) {
  if (capacity > kMaxElements) {
    return Status(Detail::kTooLarge, "capacity " + std::to_string(capacity) +
                                         " is above the limit " + std::to_string(kMaxElements));
  }
  std::unique_lock lock(mu_);
  Graph& g = *graph_;
  if (capacity <= g.capacity()) return ok_status();
  try {
    g.grow(capacity);
  } catch (const std::exception& e) {
    return detail::hnswlib_error("resizeIndex", e);
  }
  return ok_status();
}

Status HnswIndex::reserve_more(std::size_t more) {
  std::size_t count = 0;
  {
    std::shared_lock lock(mu_);
    count = graph_->count();
  }
  if (more > kMaxElements - std::min<std::uint64_t>(count, kMaxElements)) {
    return Status(Detail::kTooLarge, std::to_string(count) + " + " + std::to_string(more) +
                                         " vectors is above the limit " + std::to_string(kMaxElements));
  }
  return reserve(count + more);
}

MemoryUsage HnswIndex::memory() const {
  std::shared_lock lock(mu_);
  MemoryUsage m = graph_->memory();
  for (const auto& e : journal_) m.other_bytes += sizeof(e) + e.vector.capacity() * sizeof(float);
  return m;
}

int HnswIndex::level_for_testing(std::uint64_t label) const {
  std::shared_lock lock(mu_);
  return graph_->stored_level(label);
}

}  // namespace shoal::index

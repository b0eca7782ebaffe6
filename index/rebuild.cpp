// index/rebuild.cpp: HnswIndex's rebuild (index/hnsw_index.hpp, "Thread rules"): copy the live
// vectors under the shared lock, build a new graph with no lock held, replay the journal of the
// writes made meanwhile and swap, under the exclusive lock. Scheduling is remove()'s
// (hnsw_index.cpp); the job runs on the RebuildExecutor, or on the index's own thread.
#include <algorithm>
#include <exception>
#include <functional>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "index/hnsw_index.hpp"
#include "index/hnsw_internal.hpp"

namespace shoal::index {

using detail::Graph;

RebuildStats HnswIndex::rebuild_stats() const {
  std::lock_guard lock(stats_mu_);
  return rebuild_stats_;
}

void HnswIndex::set_rebuild_hook_for_testing(std::function<void()> hook) {
  std::lock_guard lock(stats_mu_);
  rebuild_hook_ = std::move(hook);
}

Status HnswIndex::rebuild_now() {
  {
    std::unique_lock lock(mu_);
    if (!rebuild_pending_.load()) {
      rebuild_pending_.store(true);
      journaling_ = true;
      journal_.clear();
    }
  }
  return run_rebuild();
}

Status HnswIndex::run_rebuild() {
  std::lock_guard serial(rebuild_mu_);
  {
    std::lock_guard l(stats_mu_);
    ++rebuild_stats_.started;
  }
  auto fail = [this](Status st) {
    {
      std::unique_lock lock(mu_);
      journaling_ = false;
      journal_.clear();
    }
    {
      std::lock_guard l(stats_mu_);
      rebuild_stats_.last_error = st;
    }
    rebuild_pending_.store(false);
    return st;
  };
  if (!rebuild_pending_.load()) return ok_status();  // a duplicate job: nothing scheduled

  // Phase 1: copy the live vectors under the shared lock (queries proceed, writes wait).
  std::vector<std::uint64_t> labels;
  std::vector<float> vectors;
  std::size_t dim = params_.dimension;
  {
    std::shared_lock lock(mu_);
    const Graph& g = *graph_;
    labels.reserve(g.live());
    vectors.reserve(g.live() * dim);
    std::vector<float> decoded(dim);
    const std::unique_ptr<FloatReader> reader = g.reader();
    for (std::uint32_t id = 0; id < g.count(); ++id) {
      if (g.is_deleted(id)) continue;
      labels.push_back(g.label(id));
      const float* v = g.float_vec(id);
      if (v == nullptr && g.source_vector(id, reader.get(), decoded.data())) v = decoded.data();
      if (v == nullptr) {
        g.decode(g.data(id), g.q, decoded.data());
        v = decoded.data();
      }
      vectors.insert(vectors.end(), v, v + dim);
    }
  }

  // Phase 2: build with no lock held.
  std::unique_ptr<Graph> fresh;
  try {
    const std::size_t cap = std::max<std::size_t>(
        {labels.size() + labels.size() / 4 + 1, static_cast<std::size_t>(params_.initial_capacity)});
    fresh = Graph::make(params_, kernels_, cap, floats_);
    // A calibrated range is recomputed from the live vectors alone.
    fresh->cover(vectors, /*prepared=*/true);
    for (std::size_t i = 0; i < labels.size(); ++i) fresh->insert(labels[i], vectors.data() + i * dim);
  } catch (const std::exception& e) {
    return fail(detail::hnswlib_error("rebuild", e));
  }
  std::function<void()> hook;
  {
    std::lock_guard l(stats_mu_);
    hook = rebuild_hook_;
  }
  if (hook) hook();

  // Phase 3: replay the journal and swap, under the exclusive lock.
  std::size_t replayed = 0;
  {
    std::unique_lock lock(mu_);
    try {
      for (const JournalEntry& e : journal_) {
        if (e.remove) {
          if (fresh->find_live(e.label) >= 0) fresh->mark_deleted(e.label);
        } else {
          if (fresh->count() >= fresh->capacity()) fresh->grow(fresh->capacity() * 2);
          fresh->cover(e.vector, /*prepared=*/true);
          fresh->insert(e.label, e.vector.data());
        }
        ++replayed;
      }
    } catch (const std::exception& e) {
      lock.unlock();
      return fail(detail::hnswlib_error("rebuild replay", e));
    }
    graph_.swap(fresh);
    journaling_ = false;
    journal_.clear();
    journal_.shrink_to_fit();
  }
  fresh.reset();  // the old graph is freed outside the lock
  {
    std::lock_guard l(stats_mu_);
    ++rebuild_stats_.completed;
    rebuild_stats_.replayed_writes += replayed;
    rebuild_stats_.last_error = ok_status();
  }
  rebuild_pending_.store(false);
  return ok_status();
}

void HnswIndex::submit_rebuild() {
  auto job = [this] { (void)run_rebuild(); };
  if (executor_) {
    executor_(std::move(job));
    return;
  }
  std::lock_guard lock(thread_mu_);
  if (rebuild_thread_.joinable()) rebuild_thread_.join();
  rebuild_thread_ = std::thread(std::move(job));
}

}  // namespace shoal::index

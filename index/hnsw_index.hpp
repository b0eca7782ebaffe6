// index/hnsw_index.hpp: HnswIndex, the hnswlib 0.6.2 adapter: graph search with our kernels,
// optional int8 quantization with float re-ranking, the filtered-search planner, snapshots and
// the background rebuild.
//
// Role: hnswlib builds and stores the graph (its addPoint, markDelete, resizeIndex); distances
// are our kernels (a custom SpaceInterface); the search loop is our own, reading hnswlib 0.6.2's
// memory layout directly, because 0.6.2 has no filter functor and its loop cannot prefetch
// without its own (ASan-unsafe) SIMD. Every hnswlib exception is caught here and becomes a
// Status (kInternal, with hnswlib's message).
//
// Planner (search with a filter): with the caller's matching label set, an estimated cost of
// scanning it exactly (|matching| distances) is compared with the graph's (about
// kGraphVisitsPerResult * ef / selectivity distances); the cheaper wins. The graph search keeps
// exploring past its usual stopping point until ef matching results are held (it "widens"), and
// if the reachable graph still yields fewer than k matches, an exact scan completes the answer,
// so a search returns k results whenever at least k live records match.
//
// Thread rules: const methods run concurrently under a shared lock; writes take it exclusively
// (one writer at a time; a write excludes searches for its duration). The rebuild triggered when
// the deleted share passes IndexParams::rebuild_deleted_share copies the live vectors under the
// shared lock, builds a new graph with no lock held, then takes the exclusive lock only to replay
// the writes made meanwhile (a journal) and swap the graphs. Queries never wait for the build.
// The rebuild runs on the RebuildExecutor given at creation (default: a thread owned by the
// index, joined by its destructor). A custom executor must run or drop the job before the index
// is destroyed.
//
// Ownership: the index owns the hnswlib graph, the quantizer, the float vectors (unless a
// FloatSource holds them: index/float_source.hpp) and the journal.
// Snapshot files are written atomically (temporary file, fsync, rename, directory fsync) and are
// readable by their owner only (mode 0600, like the store), whatever the umask.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "index/float_source.hpp"
#include "index/vector_index.hpp"

namespace shoal::index {

namespace detail {
struct Graph;
}

// Runs a rebuild job somewhere (a thread, a pool, or inline). Called under no lock of the index.
using RebuildExecutor = std::function<void(std::function<void()> job)>;

struct RebuildStats {
  std::uint64_t started = 0;
  std::uint64_t completed = 0;
  std::uint64_t replayed_writes = 0;
  Status last_error;  // OK unless the last rebuild failed (the old graph then stays in place)
};

class HnswIndex final : public VectorIndex {
 public:
  // Statuses: those of validate_params(); kInternal if hnswlib cannot allocate.
  // `floats` (optional, not owned, must outlive the index): an int8 index with
  // keep_float_vectors reads the vectors it re-ranks with from it instead of keeping a copy
  // (index/float_source.hpp); ignored otherwise.
  static Result<std::unique_ptr<HnswIndex>> create(const IndexParams& params,
                                                   RebuildExecutor executor = {},
                                                   const FloatSource* floats = nullptr);
  ~HnswIndex() override;

  const IndexParams& params() const noexcept override { return params_; }
  Status add(std::uint64_t label, std::span<const float> vector) override;
  Status remove(std::uint64_t label) override;
  bool contains(std::uint64_t label) const override;
  std::size_t size() const override;
  Status reserve(std::size_t capacity) override;
  // Room for `more` new labels beyond the elements the graph holds (deleted ones included),
  // exactly: a replay of a known number of inserts then does not double the capacity.
  Status reserve_more(std::size_t more);
  Result<SearchResult> search(const SearchRequest& req) const override;
  MemoryUsage memory() const override;

  // Adds or replaces many vectors (row-major, labels.size() x dimension) with `threads` threads
  // (0 or 1: the calling thread). Validates every row before inserting any. Holds the write lock.
  // New labels are inserted in parallel; replacements (and repeats of a label within the batch)
  // run afterwards on the calling thread in batch order, so the last row of a label wins.
  // Element levels depend only on IndexParams::seed and the label, never on the thread count.
  // `stop` (optional, called from every inserting thread, so thread-safe) is asked before each
  // insert; once it returns true no further row is inserted and the call returns kUnavailable
  // naming how many rows went in (an unknown subset of the batch: the caller adds it again, which
  // replaces those rows' vectors).
  Status add_batch(std::span<const std::uint64_t> labels, std::span<const float> vectors,
                   unsigned threads = 1, const std::function<bool()>& stop = {});

  // Removed-but-still-linked vectors over all stored vectors, in [0, 1].
  double deleted_share() const;

  // The value range the int8 codes cover, {min, max}: the caller's quant_min/quant_max, or, when
  // calibrated (quant_calibrated()), the smallest and largest component the graph has covered
  // (normalized, for cosine; {0, 0} before its first vector). {0, 0} without quantization.
  std::pair<float, float> quant_range() const;

  // --- Snapshots (format: docs/index.md) ---

  // Writes the whole index to `path` atomically: `path`.tmp is written, fsynced, renamed over
  // `path`, and the directory is fsynced. `covered_position` is the caller's store position that
  // this index reflects (returned by load). Statuses: kIo (with the path) on any file error.
  Status save_snapshot(const std::string& path, std::uint64_t covered_position) const;

  struct Loaded {
    std::unique_ptr<HnswIndex> index;
    std::uint64_t covered_position = 0;
  };
  // Loads a snapshot made for `expected` (dimension, metric, m, ef_construction, quantization
  // and a fixed range must match; a calibrated range is taken from the file; the run-time fields
  // of `expected` are applied). Statuses: kIo (cannot
  // read), kBadMagic, kVersionMismatch, kTruncated, kChecksumMismatch, kCorruption (inconsistent
  // structure), kParameterMismatch (naming the field). On any error the caller rebuilds.
  // `floats` as for create(): a snapshot of an index that read its floats from a source holds
  // none, and loads only with a source (kParameterMismatch otherwise, and the other way round).
  // `spare`: room for that many vectors beyond the file's, allocated with the graph (a caller
  // that adds a known number right away, as open's replay does, then does not grow it: growing
  // reallocates hnswlib's arrays, D64). kTooLarge when the sum is above kMaxElements.
  static Result<Loaded> load_snapshot(const std::string& path, const IndexParams& expected,
                                      RebuildExecutor executor = {},
                                      const FloatSource* floats = nullptr, std::size_t spare = 0);

  // --- Rebuild ---

  // Rebuilds synchronously on the calling thread (same phases as the background rebuild).
  Status rebuild_now();
  RebuildStats rebuild_stats() const;
  // True while a rebuild job has been scheduled and has not finished.
  bool rebuild_pending() const noexcept { return rebuild_pending_.load(); }

  // Test hook: called by the rebuild job after the new graph is built and before the swap, with
  // no lock held. Tests search and write from inside it to prove queries are not blocked.
  void set_rebuild_hook_for_testing(std::function<void()> hook);

  const KernelTable& kernels() const noexcept { return *kernels_; }

  // Test hook: the HNSW level of a stored label (deleted or not), or -1 when it is not stored.
  int level_for_testing(std::uint64_t label) const;

 private:
  HnswIndex(const IndexParams& params, RebuildExecutor executor);

  struct JournalEntry {
    bool remove = false;
    std::uint64_t label = 0;
    std::vector<float> vector;
  };

  Status add_locked(std::uint64_t label, std::span<const float> vector);
  void maybe_schedule_rebuild_locked();
  Status run_rebuild();
  void submit_rebuild();

  IndexParams params_;
  const KernelTable* kernels_;
  const FloatSource* floats_ = nullptr;  // not owned; see create()
  RebuildExecutor executor_;

  mutable std::shared_mutex mu_;
  std::unique_ptr<detail::Graph> graph_;  // guarded by mu_
  bool journaling_ = false;               // guarded by mu_
  std::vector<JournalEntry> journal_;     // guarded by mu_

  std::atomic<bool> rebuild_pending_{false};
  std::mutex rebuild_mu_;         // serializes rebuild jobs
  mutable std::mutex stats_mu_;   // guards rebuild_stats_ and rebuild_hook_
  RebuildStats rebuild_stats_;
  std::function<void()> rebuild_hook_;
  std::mutex thread_mu_;          // guards rebuild_thread_
  std::thread rebuild_thread_;    // the default executor's thread
};

}  // namespace shoal::index

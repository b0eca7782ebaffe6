// index/vector_index.hpp: the VectorIndex interface every index implements.
//
// Role: the node keeps one VectorIndex per collection. A record is a caller-assigned 64-bit
// label (the node maps record ids to labels) and a float vector. The index is derived state:
// it can always be rebuilt from the store, so any failure to load it is recoverable.
// Implementations: HnswIndex (hnsw_index.hpp; graph search with our kernels, filtered search,
// snapshots, background rebuild) and ExactIndex (exact_index.hpp; brute force, the reference).
//
// Thread rules (all implementations): any number of threads may call the const methods
// (search, contains, size, memory) concurrently; writes (add, remove, reserve) may come from one
// thread at a time and exclude searches for their duration (a reader-writer lock inside).
// Ownership: an index owns copies of every vector it is given; inputs are only read during the
// call. Errors are Statuses; no method throws.
#pragma once

#include <cstdint>
#include <span>

#include "common/status.hpp"
#include "index/types.hpp"

namespace shoal::index {

class VectorIndex {
 public:
  virtual ~VectorIndex() = default;
  VectorIndex() = default;
  VectorIndex(const VectorIndex&) = delete;
  VectorIndex& operator=(const VectorIndex&) = delete;

  virtual const IndexParams& params() const noexcept = 0;

  // Adds the vector under `label`, or replaces the vector of an existing label (including one
  // removed earlier). Statuses: kDimensionMismatch, kNonFinite, kZeroVector (cosine),
  // kTooLarge (kMaxElements reached), kInternal (hnswlib failure, with its message).
  [[nodiscard]] virtual Status add(std::uint64_t label, std::span<const float> vector) = 0;

  // Removes `label`. Statuses: kNoSuchRecord when it is not stored (removing twice is not an
  // error the caller must handle specially: it is the normal "not found" outcome).
  [[nodiscard]] virtual Status remove(std::uint64_t label) = 0;

  virtual bool contains(std::uint64_t label) const = 0;

  // Number of live (not removed) vectors.
  virtual std::size_t size() const = 0;

  // Makes room for `capacity` vectors without further allocation. kTooLarge above kMaxElements.
  [[nodiscard]] virtual Status reserve(std::size_t capacity) = 0;

  // The k nearest live vectors to req.query that pass the filter, closest first. Statuses:
  // the validation ones of validate_search(); kInternal on an hnswlib failure. Returns fewer
  // than k only when fewer than k live records match.
  [[nodiscard]] virtual Result<SearchResult> search(const SearchRequest& req) const = 0;

  virtual MemoryUsage memory() const = 0;
};

}  // namespace shoal::index

// index/types.hpp: parameters, limits, requests and results shared by every VectorIndex.
//
// Role: plain values describing a collection's index (dimension, metric, graph parameters,
// quantization), the limits we enforce on caller input, and the search request/result shapes.
// The index knows nothing of CRDTs: a record is a caller-assigned 64-bit label and a vector;
// metadata filters arrive as a caller-supplied predicate over labels and, optionally, the
// caller's own list of matching labels.
// Thread rules: values; no shared state. A LabelPredicate is called on the searching thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "index/kernels.hpp"
#include "index/metric.hpp"

namespace shoal::index {

// The metric (one enum for index and node) and its encodings: index/metric.hpp.
// Numbers are stored in snapshots: never renumber.
enum class Quantization : std::uint8_t { kNone = 0, kInt8 = 1 };

// Limits on caller input; each violation is a typed Status naming the limit and the value seen.
inline constexpr std::uint32_t kMaxDimension = 4096;
inline constexpr std::size_t kMaxK = 4096;
inline constexpr std::size_t kMaxEf = 65536;
inline constexpr std::uint32_t kMaxM = 256;
inline constexpr std::uint32_t kMaxEfConstruction = 65536;
inline constexpr std::uint64_t kMaxElements = std::uint64_t{1} << 31;

struct IndexParams {
  // Vector dimension, 1..kMaxDimension. Required.
  std::uint32_t dimension = 0;
  Metric metric = Metric::kL2;
  // HNSW graph degree (level 0 keeps 2*m links) and construction beam width.
  std::uint32_t m = 16;
  std::uint32_t ef_construction = 200;
  // Beam width used when a request leaves ef at 0 (the search uses max(k, ef_search)).
  std::uint32_t ef_search = 64;
  // Scalar quantization of the graph's vectors. kInt8 stores one signed byte per component
  // (4x less memory traffic on the search path) and re-ranks the final candidates with the
  // float vectors when keep_float_vectors is set.
  Quantization quantization = Quantization::kNone;
  // The value range the int8 codes cover. Values outside are clamped. For L2 the range maps
  // onto [-128, 127]; for inner product and cosine each vector's codes map [min, the vector's
  // largest component] onto [-128, 127] (index/quantizer.hpp). Both 0 (the default): calibrated from the data
  // (quant_calibrated(): the smallest and largest component of every vector the graph has held,
  // after cosine's normalization; recomputed from the live vectors by a rebuild), so replicas
  // holding the same vectors use the same range whatever the order of their writes.
  float quant_min = 0.0f;
  float quant_max = 0.0f;
  // Int8 only: keep the float vectors (1.25x the memory of float alone) for exact re-ranking
  // and exact search. Without them, distances are computed on the codes.
  bool keep_float_vectors = true;
  // Initial capacity in vectors; the index grows by doubling when full.
  std::uint64_t initial_capacity = 1024;
  // Seed of hnswlib's level generator.
  std::uint64_t seed = 100;
  // When deleted/(live + deleted) exceeds this share and at least rebuild_min_elements vectors
  // are stored, a rebuild is started in the background. 0 disables automatic rebuilds.
  double rebuild_deleted_share = 0.25;
  std::uint64_t rebuild_min_elements = 256;
  // Collections with at most this many live vectors are always searched exactly.
  std::uint32_t exact_below = 256;
  // Pin the kernel table (simulation, tests); unset: best_kernels().
  std::optional<Isa> isa;
};

// Checks every field against its limit; invalid-argument statuses name field, limit and value.
Status validate_params(const IndexParams& params);

// True when the int8 range of `p` is calibrated from the data (int8 and quant_min == quant_max
// == 0).
constexpr bool quant_calibrated(const IndexParams& p) noexcept {
  return p.quantization == Quantization::kInt8 && p.quant_min == 0.0f && p.quant_max == 0.0f;
}

struct Neighbor {
  std::uint64_t label = 0;
  // Squared L2, 1 - inner product, or cosine distance; smaller is closer.
  float distance = 0.0f;
  friend bool operator==(const Neighbor&, const Neighbor&) = default;
};

// True when the record with this label matches the caller's metadata filter. Must be pure and
// cheap, must not call back into the index, and runs under the index's shared lock.
using LabelPredicate = std::function<bool(std::uint64_t label)>;

struct SearchRequest {
  std::span<const float> query;
  std::size_t k = 10;
  // Beam width; 0 means max(k, IndexParams::ef_search). Otherwise k <= ef <= kMaxEf.
  std::size_t ef = 0;
  // Nullable: no filter when null. Must outlive the call.
  const LabelPredicate* filter = nullptr;
  // Optional: every label that matches the filter, when the caller (the node, which owns
  // metadata) has it at hand. Enables the exact scan of the matching set for selective filters.
  // Labels unknown to the index are ignored. When both are given, the predicate decides
  // membership on the graph path and matching_labels serves the exact path and the estimate;
  // they must agree. With matching_labels alone, the graph path tests membership in a sorted
  // copy (O(m log m) per search).
  std::optional<std::span<const std::uint64_t>> matching_labels;
  // Optional hint in (0, 1]: the share of records the filter matches, when matching_labels is
  // not given. Without either, a filter is assumed broad.
  double estimated_selectivity = 0.0;
};

// How a search was executed, chosen by the planner from the estimated selectivity.
enum class Plan : std::uint8_t {
  kGraph = 0,          // HNSW beam search (filtered: kept widening until ef matches were found)
  kExactMatching = 1,  // exact scan of the caller's matching label set
  kExactScan = 2,      // exact scan of every stored vector (small collection, or fallback)
  kGraphThenExact = 3, // the graph found fewer than k matches; an exact scan completed the answer
};

std::string_view plan_name(Plan p) noexcept;

struct SearchResult {
  // Closest first; ties broken by label. size() == min(k, number of matching live records).
  std::vector<Neighbor> neighbors;
  Plan plan = Plan::kGraph;
  // Number of distance computations (graph and re-ranking), for planners and benchmarks.
  std::uint64_t distance_count = 0;
};

struct MemoryUsage {
  std::size_t vector_bytes = 0;  // vectors and codes
  std::size_t graph_bytes = 0;   // links, labels, per-element locks, visited lists
  std::size_t other_bytes = 0;   // label map, journals, quantizer
  std::size_t total() const noexcept { return vector_bytes + graph_bytes + other_bytes; }
};

// Input checks shared by every index. The Status names the limit and the value seen.
Status check_vector(std::span<const float> v, std::uint32_t dimension, Metric metric);
Status validate_search(const SearchRequest& req, const IndexParams& params);

}  // namespace shoal::index

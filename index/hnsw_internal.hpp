// index/hnsw_internal.hpp: what the files of HnswIndex share. Internal to index/: never included
// outside it (the public interface is index/hnsw_index.hpp).
//
// Role: `Graph` is one hnswlib graph plus what our search needs next to it (the quantizer, the
// float vectors of an int8 graph). Its methods that touch hnswlib are defined in graph.cpp, the
// one file that includes hnswlib and knows its 0.6.2 memory layout; this header names no
// hnswlib type. The other files of the index use only what is declared here:
//   hnsw_index.cpp  creation, writes, accessors          search.cpp    HnswIndex::search
//   graph.cpp       hnswlib adapter, our search loop     planner.cpp   plan_filter, cost model
//   quantizer.cpp   int8 codes (quantizer.hpp)           rebuild.cpp   the background rebuild
//   snapshot.cpp    the snapshot format, save and load
// Thread rules: a Graph is guarded by HnswIndex::mu_ (or privately owned by a rebuild job
// before it is swapped in). Scratch is per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "index/float_source.hpp"
#include "index/kernels.hpp"
#include "index/quantizer.hpp"
#include "index/types.hpp"

namespace shoal::index::detail {

struct Cand {
  float d;
  std::uint32_t id;
};
struct CandFarther {  // min-heap order for candidates
  bool operator()(const Cand& a, const Cand& b) const noexcept { return a.d > b.d; }
};
struct CandCloser {  // max-heap order for results
  bool operator()(const Cand& a, const Cand& b) const noexcept { return a.d < b.d; }
};

// Per-thread buffers, so a search allocates nothing once warm (search.cpp owns the thread_local
// instance). The predicate must not call back into an index (documented), so the buffers are
// never used re-entrantly.
struct Scratch {
  std::vector<Cand> cand;
  std::vector<Cand> top;  // the graph search's results (a max-heap by distance)
  std::vector<float> query;
  std::vector<std::int8_t> codes;
};

// Which graph ids a filtered graph search may return. With label_ok null every live id is
// admitted; otherwise a live id is admitted when label_ok(ctx, its label) is true.
struct Admission {
  bool (*label_ok)(const void* ctx, std::uint64_t label) = nullptr;
  const void* ctx = nullptr;
};

// An hnswlib exception as a Status (kInternal, with hnswlib's message). graph.cpp.
Status hnswlib_error(const char* what, const std::exception& e);

// The deepest level an element of a loaded snapshot may have (levels drawn by Graph::level_of
// stay below 37). snapshot.cpp's format; graph.cpp checks it when installing the link lists.
inline constexpr int kSnapshotMaxLevel = 64;
// kCorruption, "inconsistent snapshot: <why>", with the path. snapshot.cpp.
Status snapshot_corrupt(const std::string& path, const std::string& why);

// The planner's choice for a filtered search on the graph of `live` vectors with beam width
// `ef`: true when an exact scan (of the matching set, or of everything) is estimated cheaper
// than the widening graph search. planner.cpp.
bool prefer_exact_scan(const SearchRequest& req, std::size_t live, std::size_t ef);

struct HnswGraph;  // hnswlib's graph and its space; defined in graph.cpp only

struct Graph {
  IndexParams params;
  const KernelTable* k = nullptr;
  std::size_t dim = 0;
  bool quantized = false;
  bool float_store = false;  // quantized with a separate float array
  // Int8 graphs: the codes padded to 4 bytes, and the element's data (for inner product and
  // cosine, the codes then their IpTerms, index/quantizer.hpp). A query is encoded into the same
  // layout (encode()).
  std::size_t code_bytes = 0;
  std::size_t element_bytes = 0;
  Quantizer q;
  // Calibrated int8 graphs (quant_calibrated(params)): the data range q covers, the smallest and
  // largest component of every vector covered so far (has_range: at least one).
  bool calibrated = false;
  bool has_range = false;
  float range_lo = 0.0f;
  float range_hi = 0.0f;
  std::vector<float> floats;  // float_store only: capacity x dim, prepared (normalized if cosine)
  // Int8 graphs re-ranking with the caller's vectors (index/float_source.hpp) instead of `floats`
  // (float_store is then false). Not owned; outlives the graph.
  const FloatSource* source = nullptr;
  std::unique_ptr<HnswGraph> hnsw;

  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // May throw (hnswlib); callers catch.
  // With `source` (int8 with keep_float_vectors only), the float vectors are read from it, not kept.
  static std::unique_ptr<Graph> make(const IndexParams& p, const KernelTable* k, std::size_t capacity,
                                     const FloatSource* source = nullptr);

  std::size_t capacity() const noexcept;
  std::size_t count() const noexcept;    // stored elements, deleted or not (ids 0..count-1)
  std::size_t deleted() const noexcept;
  std::size_t live() const noexcept { return count() - deleted(); }
  // The stored vector bytes of `id`: floats, or int8 codes when quantized.
  const char* data(std::uint32_t id) const noexcept;
  std::uint64_t label(std::uint32_t id) const noexcept;
  bool is_deleted(std::uint32_t id) const noexcept;

  // The prepared float vector of `id`, or nullptr when only codes are stored.
  const float* float_vec(std::uint32_t id) const noexcept {
    if (!quantized) return reinterpret_cast<const float*>(data(id));
    if (float_store) return floats.data() + static_cast<std::size_t>(id) * dim;
    return nullptr;
  }

  // Int8 graphs: true when the final candidates are re-ranked with float vectors (kept or read).
  bool reranks() const noexcept { return quantized && (float_store || source != nullptr); }
  // A reader of the source for one operation, or nullptr without a source (external_floats.cpp).
  std::unique_ptr<FloatReader> reader() const;
  // The re-ranking distance of `id` from a prepared query: exact from the kept floats or from
  // the source's vector through `r` (may be null), else from the codes, scaled. external_floats.cpp.
  float rerank_distance(const float* query, const std::int8_t* qcodes, std::uint32_t id, FloatReader* r) const noexcept;
  // rerank_distance of every id into out[i], reading the source's vectors with one get_many and
  // prefetching each vector while the one before it is measured (external_floats.cpp).
  void rerank_many(const float* query, const std::int8_t* qcodes, std::span<const std::uint32_t> ids,
                   FloatReader* r, float* out) const;
  // The source's vector of `id`, prepared (normalized for cosine), into out[0, dim); false when
  // there is no source or reader or it holds no vector for the label. external_floats.cpp.
  bool source_vector(std::uint32_t id, FloatReader* r, float* out) const noexcept;

  // Internal id of a live label, or -1.
  std::int64_t find_live(std::uint64_t label) const;
  // True when the label is stored, deleted or not.
  bool stored(std::uint64_t label) const;
  // The HNSW level of a stored label (deleted or not), or -1.
  int stored_level(std::uint64_t label) const;

  // Normalizes for cosine into `out` (size dim).
  void prepare(std::span<const float> v, float* out) const noexcept;
  // The factor prepare() scales a cosine vector by (1 / its norm, in double).
  double inv_norm(const float* v) const noexcept;
  // The HNSW level of `label`, a function of (params.seed, label) alone (graph.cpp).
  int level_of(std::uint64_t label) const noexcept;
  // Calibrated graphs: widens the range to cover `rows` (row-major, dim floats each; as the app
  // gave them, or already prepare()d when `prepared`) and, when the quantizer changes, re-encodes
  // every stored code (from the float vectors when kept, else from the old codes). A no-op on
  // other graphs. Must run before those rows are inserted, with no insert() running (callers hold
  // the write lock, or own the graph). May throw std::bad_alloc.
  void cover(std::span<const float> rows, bool prepared = false);
  // Installs the range a snapshot recorded (calibrated graphs).
  void set_range(float lo, float hi) noexcept;
  // Int8 graphs: the element data of a prepared vector into out[0, element_bytes): its codes,
  // zero padding and, for inner product and cosine, its IpTerms.
  void encode(const float* prepared, char* out) const noexcept;
  // The floats the codes of element data `elem` stand for under quantizer `with`, into
  // out[0, dim).
  void decode(const char* elem, const Quantizer& with, float* out) const noexcept;
  // The inner-product terms stored at byte `offset` of encoded element data.
  static IpTerms terms_at(const void* elem, std::size_t offset) noexcept {
    IpTerms t;
    std::memcpy(&t, static_cast<const char*>(elem) + offset, sizeof(t));
    return t;
  }
  // Inserts a prepared vector, or replaces the vector of a label already present. May throw.
  // Thread-safe against other insert() calls of labels not yet present as long as capacity
  // suffices; updates of present labels must run on one thread at a time (graph.cpp).
  void insert(std::uint64_t label, const float* prepared);
  // Marks a stored label deleted (it stays linked). May throw.
  void mark_deleted(std::uint64_t label);
  // May throw.
  void grow(std::size_t new_capacity);

  // Distance between a prepared query and a stored float vector.
  float exact_distance(const float* query, const float* v) const noexcept {
    return params.metric == Metric::kL2 ? k->l2sq(query, v, dim) : 1.0f - k->dot(query, v, dim);
  }
  // The graph's distance between an encoded query (encode()) and stored element `id` of an int8
  // graph: the squared L2 distance of the codes (in units of step^2), or minus the inner product
  // estimated from the codes and terms (index/quantizer.hpp). The same value hnswlib's space
  // computes.
  float code_distance(const std::int8_t* qcodes, std::uint32_t id) const noexcept {
    const char* e = data(id);
    const auto* c = reinterpret_cast<const std::int8_t*>(e);
    if (params.metric == Metric::kL2) return static_cast<float>(k->l2sq_i8(qcodes, c, dim));
    return -Quantizer::ip_score(k->dot_i8(qcodes, c, dim), terms_at(qcodes, code_bytes), terms_at(e, code_bytes));
  }
  // Code distance converted to the metric's scale (used when no floats are kept).
  float code_distance_scaled(float raw) const noexcept {
    return params.metric == Metric::kL2 ? raw * q.step * q.step : 1.0f + raw;  // raw ~ -dot for IP
  }
  // The best distance available for `id`: exact float when stored, else from the codes.
  float best_distance(const float* query, const std::int8_t* qcodes, std::uint32_t id) const noexcept {
    if (const float* v = float_vec(id)) return exact_distance(query, v);
    return code_distance_scaled(code_distance(qcodes, id));
  }

  std::size_t upper_link_bytes() const noexcept;
  MemoryUsage memory() const;

  // Greedy descent through the upper levels, then the beam search of level 0 with beam width
  // `ef`, from a prepared query (and its codes when quantized). Results in s.top (graph
  // distances: code distances, unscaled, when quantized); distance computations added to ndist.
  // A filtered search (admit.label_ok set) or a graph with deletions admits only admitted ids
  // and keeps exploring until it holds ef of them or the reachable graph is exhausted. May throw.
  void search(const float* query, const std::int8_t* qcodes, std::size_t ef, const Admission& admit,
              Scratch& s, std::uint64_t& ndist) const;

  // --- Snapshot support (the file format itself is snapshot.cpp's) ---
  struct Layout {
    std::int32_t max_level = 0;
    std::uint32_t entry = 0;
    std::uint64_t data_bytes_per_element = 0;   // the level-0 record of an element
    std::uint64_t link_bytes_per_level = 0;     // one upper level's link list
  };
  Layout layout() const noexcept;
  // Streams the level-0 block (count() records), then for each element its level (u32) and its
  // upper link lists.
  void write_links(const std::function<void(const void*, std::size_t)>& emit) const;
  // Installs the level-0 block and the link lists of `count` elements, as write_links emitted
  // them, from `take` (copies the payload's next n bytes to dst; false when the payload ends
  // first). The level-0 block is taken straight into hnswlib's memory, so that loading holds no
  // second copy of it. Statuses: snapshot_corrupt on any inconsistency, kInternal when out of
  // memory.
  Status read_links(const std::function<bool(void*, std::size_t)>& take, std::uint64_t count, const Layout& file,
                    const std::string& path);
  // After read_links (and the float vectors): checks every link and list size, fills the label
  // map, sets the entry point and the deleted count.
  Status finish_load(std::uint64_t count, const Layout& file, const std::string& path);
};

}  // namespace shoal::index::detail

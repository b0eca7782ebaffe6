// index/external_floats.cpp: an int8 graph's re-ranking with float vectors read from the
// caller's FloatSource (index/float_source.hpp) instead of a copy kept beside the graph.
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "index/hnsw_internal.hpp"

namespace shoal::index::detail {

std::unique_ptr<FloatReader> Graph::reader() const {
  if (source == nullptr) return nullptr;
  return source->reader();
}

namespace {

// The distance from a prepared query to a vector as the source holds it. The query is prepared
// (normalized for cosine); the source's vector is as the app wrote it, so cosine divides by its
// norm here instead of keeping a normalized copy.
float source_distance(const Graph& g, const float* query, const float* v) noexcept {
  if (g.params.metric == Metric::kCosine) {
    const float n2 = g.k->dot(v, v, g.dim);
    return 1.0f - g.k->dot(query, v, g.dim) / std::sqrt(n2);
  }
  return g.exact_distance(query, v);
}

void prefetch_vector(const float* v, std::size_t bytes) noexcept {
  if (v == nullptr) return;
  const char* p = reinterpret_cast<const char*>(v);
  for (std::size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
}

}  // namespace

float Graph::rerank_distance(const float* query, const std::int8_t* qcodes, std::uint32_t id,
                             FloatReader* r) const noexcept {
  if (const float* v = float_vec(id)) return exact_distance(query, v);
  if (source != nullptr && r != nullptr) {
    if (const float* v = r->get(label(id))) return source_distance(*this, query, v);
  }
  return best_distance(query, qcodes, id);  // no floats for it: from the codes
}

void Graph::rerank_many(const float* query, const std::int8_t* qcodes, std::span<const std::uint32_t> ids,
                        FloatReader* r, float* out) const {
  if (float_store || source == nullptr || r == nullptr) {
    for (std::size_t i = 0; i < ids.size(); ++i) out[i] = rerank_distance(query, qcodes, ids[i], r);
    return;
  }
  // Per-thread, so a warm search allocates nothing.
  thread_local std::vector<std::uint64_t> labels;
  thread_local std::vector<const float*> vecs;
  labels.resize(ids.size());
  vecs.resize(ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) labels[i] = label(ids[i]);
  r->get_many(labels, vecs.data());
  // The vectors are cold (read in place from the page cache, a few KiB each): measuring one
  // while the next two stream in keeps the memory busy instead of stalling on each in turn.
  // First, one line of every vector: each lies on a page of its own in the map, so this starts
  // every candidate's page walk at once instead of one per distance (perf: the re-ranking's
  // samples fell from 0.78 to 0.67 of the beam search's; the whole of every vector at once was
  // worse, 0.80: at ef 64 that is 200 KB of prefetches competing with the ones that matter).
  const std::size_t bytes = std::size_t{dim} * sizeof(float);
  constexpr std::size_t kAhead = 2;
  for (std::size_t i = kAhead; i < vecs.size(); ++i) {
    if (vecs[i] != nullptr) __builtin_prefetch(vecs[i]);
  }
  for (std::size_t i = 0; i < kAhead && i < vecs.size(); ++i) prefetch_vector(vecs[i], bytes);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i + kAhead < vecs.size()) prefetch_vector(vecs[i + kAhead], bytes);
    out[i] = vecs[i] != nullptr ? source_distance(*this, query, vecs[i])
                                : best_distance(query, qcodes, ids[i]);  // none: from the codes
  }
}

bool Graph::source_vector(std::uint32_t id, FloatReader* r, float* out) const noexcept {
  if (source == nullptr || r == nullptr) return false;
  const float* v = r->get(label(id));
  if (v == nullptr) return false;
  prepare(std::span<const float>(v, dim), out);
  return true;
}

}  // namespace shoal::index::detail

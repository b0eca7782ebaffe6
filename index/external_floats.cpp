// index/external_floats.cpp: an int8 graph's re-ranking with float vectors read from the
// caller's FloatSource (index/float_source.hpp) instead of a copy kept beside the graph.
#include <cmath>
#include <cstdint>
#include <memory>

#include "index/hnsw_internal.hpp"

namespace shoal::index::detail {

std::unique_ptr<FloatReader> Graph::reader() const {
  if (source == nullptr) return nullptr;
  return source->reader();
}

float Graph::rerank_distance(const float* query, const std::int8_t* qcodes, std::uint32_t id,
                             FloatReader* r) const noexcept {
  if (const float* v = float_vec(id)) return exact_distance(query, v);
  if (source != nullptr && r != nullptr) {
    if (const float* v = r->get(label(id))) {
      // The query is prepared (normalized for cosine); the source's vector is as the app wrote
      // it, so cosine divides by its norm here instead of keeping a normalized copy.
      if (params.metric == Metric::kCosine) {
        const float n2 = k->dot(v, v, dim);
        return 1.0f - k->dot(query, v, dim) / std::sqrt(n2);
      }
      return exact_distance(query, v);
    }
  }
  return best_distance(query, qcodes, id);  // no floats for it: from the codes
}

bool Graph::source_vector(std::uint32_t id, FloatReader* r, float* out) const noexcept {
  if (source == nullptr || r == nullptr) return false;
  const float* v = r->get(label(id));
  if (v == nullptr) return false;
  prepare(std::span<const float>(v, dim), out);
  return true;
}

}  // namespace shoal::index::detail

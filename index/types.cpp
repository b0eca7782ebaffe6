// index/types.cpp: parameter and input validation.
#include "index/types.hpp"

#include <cmath>
#include <cstring>
#include <string>

namespace shoal::index {

std::string_view metric_name(Metric m) noexcept {
  switch (m) {
    case Metric::kL2: return "l2";
    case Metric::kInnerProduct: return "ip";
    case Metric::kCosine: return "cosine";
  }
  return "unknown";
}

std::string_view plan_name(Plan p) noexcept {
  switch (p) {
    case Plan::kGraph: return "graph";
    case Plan::kExactMatching: return "exact-matching";
    case Plan::kExactScan: return "exact-scan";
    case Plan::kGraphThenExact: return "graph-then-exact";
  }
  return "unknown";
}

namespace {
Status out_of_range(std::string_view what, std::uint64_t lo, std::uint64_t hi, std::uint64_t seen) {
  return Status(Detail::kOutOfRange, std::string(what) + " must be in [" + std::to_string(lo) +
                                         ", " + std::to_string(hi) + "], got " +
                                         std::to_string(seen));
}
}  // namespace

Status validate_params(const IndexParams& p) {
  if (p.dimension == 0 || p.dimension > kMaxDimension) {
    return out_of_range("dimension", 1, kMaxDimension, p.dimension);
  }
  if (p.metric != Metric::kL2 && p.metric != Metric::kInnerProduct && p.metric != Metric::kCosine) {
    return Status(Detail::kOutOfRange,
                  "unknown metric " + std::to_string(static_cast<int>(p.metric)));
  }
  if (p.m < 2 || p.m > kMaxM) return out_of_range("m", 2, kMaxM, p.m);
  if (p.ef_construction < 1 || p.ef_construction > kMaxEfConstruction) {
    return out_of_range("ef_construction", 1, kMaxEfConstruction, p.ef_construction);
  }
  if (p.ef_search < 1 || p.ef_search > kMaxEf) return out_of_range("ef_search", 1, kMaxEf, p.ef_search);
  if (p.initial_capacity < 1 || p.initial_capacity > kMaxElements) {
    return out_of_range("initial_capacity", 1, kMaxElements, p.initial_capacity);
  }
  if (p.quantization != Quantization::kNone && p.quantization != Quantization::kInt8) {
    return Status(Detail::kOutOfRange,
                  "unknown quantization " + std::to_string(static_cast<int>(p.quantization)));
  }
  if (p.quantization == Quantization::kInt8) {
    if (!std::isfinite(p.quant_min) || !std::isfinite(p.quant_max)) {
      return Status(Detail::kNonFinite, "quant_min and quant_max must be finite");
    }
    // Both 0: calibrated from the data (quant_calibrated()).
    const bool default_range = p.quant_min == 0.0f && p.quant_max == 0.0f;
    if (!default_range && !(p.quant_max > p.quant_min)) {
      return Status(Detail::kOutOfRange, "quant_max must be greater than quant_min, got [" +
                                             std::to_string(p.quant_min) + ", " +
                                             std::to_string(p.quant_max) + "]");
    }
  }
  if (!(p.rebuild_deleted_share >= 0.0 && p.rebuild_deleted_share < 1.0)) {
    return Status(Detail::kOutOfRange, "rebuild_deleted_share must be in [0, 1), got " +
                                           std::to_string(p.rebuild_deleted_share));
  }
  if (p.isa && kernels_for(*p.isa) == nullptr) {
    return Status(Code::kUnimplemented,
                  "kernel set " + std::string(isa_name(*p.isa)) + " is not available on this CPU");
  }
  return ok_status();
}

Status check_vector(std::span<const float> v, std::uint32_t dimension, Metric metric) {
  if (v.size() != dimension) {
    return Status(Detail::kDimensionMismatch, "vector dimension " + std::to_string(v.size()) +
                                                  " does not match index dimension " +
                                                  std::to_string(dimension));
  }
  // On every search and write (twice per search: the node's check and the index's), so it is a
  // branch-free pass over the bits that the compiler vectorizes: an all-ones exponent is NaN or
  // infinity; any non-zero magnitude bit means the vector has a direction. The slow loop below
  // runs only to name the bad component.
  std::uint32_t nonfinite = 0, magnitude = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::uint32_t b;
    std::memcpy(&b, &v[i], sizeof b);
    nonfinite |= static_cast<std::uint32_t>((b & 0x7f800000u) == 0x7f800000u);
    magnitude |= b & 0x7fffffffu;
  }
  if (nonfinite != 0) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (!std::isfinite(v[i])) {
        return Status(Detail::kNonFinite, "component " + std::to_string(i) + " is " +
                                              (std::isnan(v[i]) ? "NaN" : "infinite"));
      }
    }
  }
  if (metric == Metric::kCosine && magnitude == 0) {
    return Status(Detail::kZeroVector, "a zero vector has no direction under the cosine metric");
  }
  return ok_status();
}
Status validate_search(const SearchRequest& req, const IndexParams& params) {
  if (req.k == 0) return Status(Detail::kOutOfRange, "k must be at least 1, got 0");
  if (req.k > kMaxK) {
    return Status(Detail::kTooLarge,
                  "k " + std::to_string(req.k) + " is above the limit " + std::to_string(kMaxK));
  }
  if (req.ef != 0 && (req.ef < req.k || req.ef > kMaxEf)) {
    return out_of_range("ef", req.k, kMaxEf, req.ef);
  }
  if (req.estimated_selectivity < 0.0 || req.estimated_selectivity > 1.0 ||
      std::isnan(req.estimated_selectivity)) {
    return Status(Detail::kOutOfRange, "estimated_selectivity must be in [0, 1], got " +
                                           std::to_string(req.estimated_selectivity));
  }
  return check_vector(req.query, params.dimension, params.metric);
}

}  // namespace shoal::index

// index/quantizer.hpp: the int8 scalar quantizer of HnswIndex (IndexParams::quantization).
// Internal to index/: never included outside it.
//
// L2: the range [lo, hi] maps onto codes [-128, 127] (L2 is shift invariant, so code distances
// scale exactly by step^2). Inner product and cosine: symmetric codes [-127, 127] for [-r, r],
// r = max(|lo|, |hi|), so code dot products scale by step^2. Values outside the range are
// clamped.
//
// Where the range comes from (docs/index.md, "Int8 scalar quantization"): the caller's
// [quant_min, quant_max] when it gives one, otherwise it is calibrated from the data
// (Graph::cover): the smallest and largest component of every vector the graph has held (after
// cosine's normalization), so it depends on the set of vectors, never on their order.
// Thread rules: a value; its const methods are pure.
#pragma once

#include <cstddef>
#include <cstdint>

#include "index/types.hpp"

namespace shoal::index::detail {

struct Quantizer {
  bool symmetric = false;
  float lo = 0.0f;
  float step = 1.0f;
  float inv_step = 1.0f;

  // The quantizer of the caller's range. For a calibrated index (quant_calibrated(p)) a
  // placeholder ([-1, 1], or [0, 1] for L2) until the first vector arrives.
  static Quantizer make(const IndexParams& p);
  // The quantizer covering [lo, hi] for `metric`. An empty L2 range (hi <= lo) covers [lo, lo+1];
  // a symmetric range of radius 0 covers [-1, 1].
  static Quantizer for_range(Metric metric, float lo, float hi);
  // Codes of n floats into out[0, n).
  void encode(const float* x, std::int8_t* out, std::size_t n) const noexcept;
  // The float a code stands for (the centre of its step).
  float decode(std::int8_t c) const noexcept;
};

}  // namespace shoal::index::detail

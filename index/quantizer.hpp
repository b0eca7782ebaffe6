// index/quantizer.hpp: the int8 scalar quantizer of HnswIndex (IndexParams::quantization).
// Internal to index/: never included outside it.
//
// L2: the range [quant_min, quant_max] maps onto codes [-128, 127] (L2 is shift invariant, so
// code distances scale exactly by step^2). Inner product and cosine: symmetric codes [-127, 127]
// for [-r, r], r = max(|quant_min|, |quant_max|) (1 when both are 0), so code dot products scale
// by step^2. Values outside the range are clamped.
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

  static Quantizer make(const IndexParams& p);
  // Codes of n floats into out[0, n).
  void encode(const float* x, std::int8_t* out, std::size_t n) const noexcept;
  // The float a code stands for (the centre of its step).
  float decode(std::int8_t c) const noexcept;
};

}  // namespace shoal::index::detail

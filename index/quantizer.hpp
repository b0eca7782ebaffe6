// index/quantizer.hpp: the int8 scalar quantizer of HnswIndex (IndexParams::quantization).
// Internal to index/: never included outside it.
//
// Every metric maps the range [lo, hi] affinely onto the codes [-128, 127]: x ~ lo + step * (c +
// 128) = step * (m + c), with step = (hi - lo) / 255 and m = lo / step + 128 (the offset, in steps,
// that code 0 stands for). Values outside the range are clamped. So codes use all 8 bits whatever
// the sign of the data (D34: the symmetric codes this replaced used only 0..127 on non-negative
// data).
// - L2 is shift invariant: code distances scale exactly by step^2.
// - Inner product and cosine: x . y ~ step^2 * (sum c_x c_y + m (S_x + S_y) + n m^2), where S is
//   the sum of a vector's codes. The correction m S_x + n m^2 / 2 is a per-vector constant
//   (correction()), stored next to the codes (index/graph.cpp), so a code inner product is one
//   int8 kernel call plus two additions, and x . y ~ step^2 * (dot_i8 + corr_x + corr_y).
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
  float lo = 0.0f;
  float step = 1.0f;
  float inv_step = 1.0f;
  // lo / step + 128: the value code 0 stands for, in steps.
  double offset = 128.0;

  // The quantizer of the caller's range. For a calibrated index (quant_calibrated(p)) a
  // placeholder ([0, 1]) until the first vector arrives.
  static Quantizer make(const IndexParams& p);
  // The quantizer covering [lo, hi]. An empty range (hi <= lo) covers [lo, lo + 1].
  static Quantizer for_range(float lo, float hi);
  // Codes of n floats into out[0, n).
  void encode(const float* x, std::int8_t* out, std::size_t n) const noexcept;
  // The float a code stands for (the centre of its step).
  float decode(std::int8_t c) const noexcept;
  // The inner-product correction of the n codes c (see above): offset * sum(c) + n * offset^2 / 2,
  // in units of step^2. Computed in double and rounded once.
  float correction(const std::int8_t* c, std::size_t n) const noexcept;

  friend bool operator==(const Quantizer& a, const Quantizer& b) noexcept {
    return a.lo == b.lo && a.step == b.step;
  }
};

}  // namespace shoal::index::detail

// index/quantizer.hpp: the int8 scalar quantizer of HnswIndex (IndexParams::quantization).
// Internal to index/: never included outside it.
//
// L2 maps the range [lo, hi] affinely onto the codes [-128, 127]: x ~ lo + step * (c + 128),
// step = (hi - lo) / 255. L2 is shift invariant, so code distances scale exactly by step^2.
//
// Inner product and cosine keep the range's low end but give each vector a step of its own,
// step_x = (max_i x_i - lo) / 255, so each vector's codes span all of [-128, 127] whatever the
// data's sign and however small its components (normalized 784-d pixels: the largest component
// of a typical vector is ~0.08 where the range reaches ~0.35). Then, with u = c + 128,
//   x . y ~ sum (lo + step_x u_x)(lo + step_y u_y)
//         = step_x step_y (D + a_x + a_y) + b_x + b_y,
// where D = sum c_x c_y (the int8 kernel), S = sum c, a = 128 S + 8192 n and
// b = lo step (S + 128 n) + n lo^2 / 2. (step, a, b) are per-vector constants (IpTerms) stored
// after the codes (index/graph.cpp): a code inner product is one int8 kernel call and four
// multiply-adds. The codes of a vector depend on the vector and lo alone, so replicas agree.
// Values outside the range are clamped.
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

// The per-vector constants of inner-product codes (see above).
struct IpTerms {
  float step = 1.0f;
  float a = 0.0f;
  float b = 0.0f;
};

struct Quantizer {
  float lo = 0.0f;
  float hi = 1.0f;
  float step = 1.0f;
  float inv_step = 1.0f;

  // The quantizer of the caller's range. For a calibrated index (quant_calibrated(p)) a
  // placeholder ([0, 1]) until the first vector arrives.
  static Quantizer make(const IndexParams& p);
  // The quantizer covering [lo, hi]. An empty range (hi <= lo) covers [lo, lo + 1].
  static Quantizer for_range(float lo, float hi);
  // L2 codes of n floats into out[0, n).
  void encode(const float* x, std::int8_t* out, std::size_t n) const noexcept;
  // The float an L2 code stands for (the centre of its step).
  float decode(std::int8_t c) const noexcept;

  // Inner-product codes of n floats into out[0, n), with their per-vector constants.
  IpTerms encode_ip(const float* x, std::int8_t* out, std::size_t n) const noexcept;
  // The float an inner-product code of a vector with step `vstep` stands for.
  float decode_ip(std::int8_t c, float vstep) const noexcept {
    return lo + vstep * (static_cast<float>(c) + 128.0f);
  }
  // x . y from the int8 inner product D of two vectors' codes and their constants.
  static float ip_score(std::int32_t d, const IpTerms& x, const IpTerms& y) noexcept {
    return x.step * y.step * (static_cast<float>(d) + x.a + y.a) + (x.b + y.b);
  }

  friend bool operator==(const Quantizer& a, const Quantizer& b) noexcept {
    return a.lo == b.lo && a.hi == b.hi;
  }
};

}  // namespace shoal::index::detail

// index/quantizer.cpp: int8 scalar quantization (index/quantizer.hpp).
#include "index/quantizer.hpp"

#include <algorithm>
#include <cmath>

namespace shoal::index::detail {

Quantizer Quantizer::make(const IndexParams& p) {
  if (quant_calibrated(p)) return for_range(0.0f, 0.0f);  // replaced by Graph::cover
  return for_range(p.quant_min, p.quant_max);
}

Quantizer Quantizer::for_range(float lo, float hi) {
  Quantizer q;
  if (!(hi > lo)) hi = lo + 1.0f;
  q.lo = lo;
  q.hi = hi;
  q.step = (hi - lo) / 255.0f;
  q.inv_step = 1.0f / q.step;
  return q;
}

namespace {
// Rounds half away from zero after clamping, with no libm call, so the loop vectorizes: every
// query is encoded once per search (784 components for Fashion-MNIST), on the hot path.
// Inputs are finite (checked by the callers).
void encode_affine(const float* x, float lo, float inv_step, std::int8_t* out, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const float c = std::min(std::max((x[i] - lo) * inv_step - 128.0f, -128.0f), 127.0f);
    out[i] = static_cast<std::int8_t>(static_cast<int>(c + (c >= 0.0f ? 0.5f : -0.5f)));
  }
}
}  // namespace

void Quantizer::encode(const float* x, std::int8_t* out, std::size_t n) const noexcept {
  encode_affine(x, lo, inv_step, out, n);
}

float Quantizer::decode(std::int8_t c) const noexcept {
  return (static_cast<float>(c) + 128.0f) * step + lo;
}

IpTerms Quantizer::encode_ip(const float* x, std::int8_t* out, std::size_t n) const noexcept {
  float top = lo;
  for (std::size_t i = 0; i < n; ++i) top = std::max(top, x[i]);
  top = std::min(top, hi);  // clamped like the components
  IpTerms t;
  // A vector with every component at lo (or below) has codes -128 whatever its step.
  t.step = top > lo ? (top - lo) / 255.0f : step;
  encode_affine(x, lo, 1.0f / t.step, out, n);
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += out[i];
  const double dn = static_cast<double>(n);
  const double dlo = static_cast<double>(lo);
  t.a = static_cast<float>(128.0 * static_cast<double>(sum) + 8192.0 * dn);
  t.b = static_cast<float>(dlo * static_cast<double>(t.step) * (static_cast<double>(sum) + 128.0 * dn) +
                           dn * dlo * dlo / 2.0);
  return t;
}

}  // namespace shoal::index::detail

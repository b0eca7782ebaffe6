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
  q.step = (hi - lo) / 255.0f;
  q.inv_step = 1.0f / q.step;
  q.offset = static_cast<double>(lo) / static_cast<double>(q.step) + 128.0;
  return q;
}

// Rounds half away from zero after clamping, with no libm call, so the loop vectorizes: every
// query is encoded once per search (784 components for Fashion-MNIST), on the hot path.
// Inputs are finite (checked by the callers).
void Quantizer::encode(const float* x, std::int8_t* out, std::size_t n) const noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    const float c = std::min(std::max((x[i] - lo) * inv_step - 128.0f, -128.0f), 127.0f);
    out[i] = static_cast<std::int8_t>(static_cast<int>(c + (c >= 0.0f ? 0.5f : -0.5f)));
  }
}

float Quantizer::decode(std::int8_t c) const noexcept {
  return (static_cast<float>(c) + 128.0f) * step + lo;
}

float Quantizer::correction(const std::int8_t* c, std::size_t n) const noexcept {
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum += c[i];
  return static_cast<float>(offset * static_cast<double>(sum) + static_cast<double>(n) * offset * offset / 2.0);
}

}  // namespace shoal::index::detail

// index/quantizer.cpp: int8 scalar quantization (index/quantizer.hpp).
#include "index/quantizer.hpp"

#include <algorithm>
#include <cmath>

namespace shoal::index::detail {

Quantizer Quantizer::make(const IndexParams& p) {
  if (quant_calibrated(p)) return for_range(p.metric, 0.0f, 0.0f);  // replaced by Graph::cover
  return for_range(p.metric, p.quant_min, p.quant_max);
}

Quantizer Quantizer::for_range(Metric metric, float lo, float hi) {
  Quantizer q;
  if (metric == Metric::kL2) {
    if (!(hi > lo)) hi = lo + 1.0f;
    q.lo = lo;
    q.step = (hi - lo) / 255.0f;
  } else {
    q.symmetric = true;
    float r = std::max(std::fabs(lo), std::fabs(hi));
    if (r == 0.0f) r = 1.0f;
    q.step = r / 127.0f;
  }
  q.inv_step = 1.0f / q.step;
  return q;
}

// Rounds half away from zero after clamping, with no libm call, so the loop vectorizes: every
// query is encoded once per search (784 components for Fashion-MNIST), on the hot path.
// Inputs are finite (checked by the callers).
void Quantizer::encode(const float* x, std::int8_t* out, std::size_t n) const noexcept {
  if (symmetric) {
    for (std::size_t i = 0; i < n; ++i) {
      const float c = std::min(std::max(x[i] * inv_step, -127.0f), 127.0f);
      out[i] = static_cast<std::int8_t>(static_cast<int>(c + (c >= 0.0f ? 0.5f : -0.5f)));
    }
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      const float c = std::min(std::max((x[i] - lo) * inv_step - 128.0f, -128.0f), 127.0f);
      out[i] = static_cast<std::int8_t>(static_cast<int>(c + (c >= 0.0f ? 0.5f : -0.5f)));
    }
  }
}

float Quantizer::decode(std::int8_t c) const noexcept {
  return symmetric ? static_cast<float>(c) * step : (static_cast<float>(c) + 128.0f) * step + lo;
}

}  // namespace shoal::index::detail

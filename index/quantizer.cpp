// index/quantizer.cpp: int8 scalar quantization (index/quantizer.hpp).
#include "index/quantizer.hpp"

#include <algorithm>
#include <cmath>

namespace shoal::index::detail {

Quantizer Quantizer::make(const IndexParams& p) {
  Quantizer q;
  if (p.metric == Metric::kL2) {
    q.lo = p.quant_min;
    q.step = (p.quant_max - p.quant_min) / 255.0f;
  } else {
    q.symmetric = true;
    float r = std::max(std::fabs(p.quant_min), std::fabs(p.quant_max));
    if (r == 0.0f) r = 1.0f;
    q.step = r / 127.0f;
  }
  q.inv_step = 1.0f / q.step;
  return q;
}

void Quantizer::encode(const float* x, std::int8_t* out, std::size_t n) const noexcept {
  if (symmetric) {
    for (std::size_t i = 0; i < n; ++i) {
      const float c = std::nearbyint(x[i] * inv_step);
      out[i] = static_cast<std::int8_t>(std::clamp(c, -127.0f, 127.0f));
    }
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      const float c = std::nearbyint((x[i] - lo) * inv_step) - 128.0f;
      out[i] = static_cast<std::int8_t>(std::clamp(c, -128.0f, 127.0f));
    }
  }
}

float Quantizer::decode(std::int8_t c) const noexcept {
  return symmetric ? static_cast<float>(c) * step : (static_cast<float>(c) + 128.0f) * step + lo;
}

}  // namespace shoal::index::detail

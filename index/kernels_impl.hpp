// index/kernels_impl.hpp: the xsimd float kernels, instantiated once per architecture by the
// per-ISA translation units (kernels_sse2.cpp, kernels_avx2.cpp, ...). Internal: include only
// from those files, which are compiled with the matching -m flags.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

#include <xsimd/xsimd.hpp>

namespace shoal::index::detail {

template <class Arch>
float l2sq_simd(const float* a, const float* b, std::size_t n) noexcept {
  using B = xsimd::batch<float, Arch>;
  constexpr std::size_t W = B::size;
  B acc0(0.0f), acc1(0.0f), acc2(0.0f), acc3(0.0f);
  std::size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    const B d0 = B::load_unaligned(a + i) - B::load_unaligned(b + i);
    const B d1 = B::load_unaligned(a + i + W) - B::load_unaligned(b + i + W);
    const B d2 = B::load_unaligned(a + i + 2 * W) - B::load_unaligned(b + i + 2 * W);
    const B d3 = B::load_unaligned(a + i + 3 * W) - B::load_unaligned(b + i + 3 * W);
    acc0 = xsimd::fma(d0, d0, acc0);
    acc1 = xsimd::fma(d1, d1, acc1);
    acc2 = xsimd::fma(d2, d2, acc2);
    acc3 = xsimd::fma(d3, d3, acc3);
  }
  for (; i + W <= n; i += W) {
    const B d = B::load_unaligned(a + i) - B::load_unaligned(b + i);
    acc0 = xsimd::fma(d, d, acc0);
  }
  float s = xsimd::hadd((acc0 + acc1) + (acc2 + acc3));
  for (; i < n; ++i) {
    const float d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

template <class Arch>
float dot_simd(const float* a, const float* b, std::size_t n) noexcept {
  using B = xsimd::batch<float, Arch>;
  constexpr std::size_t W = B::size;
  B acc0(0.0f), acc1(0.0f), acc2(0.0f), acc3(0.0f);
  std::size_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
    acc1 = xsimd::fma(B::load_unaligned(a + i + W), B::load_unaligned(b + i + W), acc1);
    acc2 = xsimd::fma(B::load_unaligned(a + i + 2 * W), B::load_unaligned(b + i + 2 * W), acc2);
    acc3 = xsimd::fma(B::load_unaligned(a + i + 3 * W), B::load_unaligned(b + i + 3 * W), acc3);
  }
  for (; i + W <= n; i += W) {
    acc0 = xsimd::fma(B::load_unaligned(a + i), B::load_unaligned(b + i), acc0);
  }
  float s = xsimd::hadd((acc0 + acc1) + (acc2 + acc3));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <class Arch>
float cosine_simd(const float* a, const float* b, std::size_t n) noexcept {
  using B = xsimd::batch<float, Arch>;
  constexpr std::size_t W = B::size;
  B ab(0.0f), aa(0.0f), bb(0.0f);
  std::size_t i = 0;
  for (; i + W <= n; i += W) {
    const B va = B::load_unaligned(a + i);
    const B vb = B::load_unaligned(b + i);
    ab = xsimd::fma(va, vb, ab);
    aa = xsimd::fma(va, va, aa);
    bb = xsimd::fma(vb, vb, bb);
  }
  float sab = xsimd::hadd(ab), saa = xsimd::hadd(aa), sbb = xsimd::hadd(bb);
  for (; i < n; ++i) {
    sab += a[i] * b[i];
    saa += a[i] * a[i];
    sbb += b[i] * b[i];
  }
  if (saa <= 0.0f || sbb <= 0.0f) return 1.0f;
  return 1.0f - sab / std::sqrt(saa * sbb);
}

// Scalar tails shared by the int8 kernels.
inline std::int32_t l2sq_i8_tail(const std::int8_t* a, const std::int8_t* b, std::size_t i,
                                 std::size_t n) noexcept {
  std::int32_t s = 0;
  for (; i < n; ++i) {
    const std::int32_t d = std::int32_t{a[i]} - std::int32_t{b[i]};
    s += d * d;
  }
  return s;
}
inline std::int32_t dot_i8_tail(const std::int8_t* a, const std::int8_t* b, std::size_t i,
                                std::size_t n) noexcept {
  std::int32_t s = 0;
  for (; i < n; ++i) s += std::int32_t{a[i]} * std::int32_t{b[i]};
  return s;
}

}  // namespace shoal::index::detail

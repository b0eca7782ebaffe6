// index/kernels_sse2.cpp: the SSE2 kernel table (compiled with -msse2; baseline on x86-64).
#include <emmintrin.h>

#include "index/kernels.hpp"
#include "index/kernels_impl.hpp"

namespace shoal::index::detail {
namespace {

// Sign-extends 16 int8 lanes to two vectors of 8 int16 lanes (SSE2 has no pmovsxbw).
inline void widen_i8(__m128i v, __m128i& lo, __m128i& hi) noexcept {
  const __m128i sign = _mm_cmpgt_epi8(_mm_setzero_si128(), v);
  lo = _mm_unpacklo_epi8(v, sign);
  hi = _mm_unpackhi_epi8(v, sign);
}

inline std::int32_t hsum_epi32(__m128i v) noexcept {
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0x4e));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 0xb1));
  return _mm_cvtsi128_si32(v);
}

std::int32_t l2sq_i8_sse2(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  __m128i acc = _mm_setzero_si128();
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m128i alo, ahi, blo, bhi;
    widen_i8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)), alo, ahi);
    widen_i8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)), blo, bhi);
    const __m128i dlo = _mm_sub_epi16(alo, blo);
    const __m128i dhi = _mm_sub_epi16(ahi, bhi);
    acc = _mm_add_epi32(acc, _mm_madd_epi16(dlo, dlo));
    acc = _mm_add_epi32(acc, _mm_madd_epi16(dhi, dhi));
  }
  return hsum_epi32(acc) + l2sq_i8_tail(a, b, i, n);
}

std::int32_t dot_i8_sse2(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  __m128i acc = _mm_setzero_si128();
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m128i alo, ahi, blo, bhi;
    widen_i8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)), alo, ahi);
    widen_i8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)), blo, bhi);
    acc = _mm_add_epi32(acc, _mm_madd_epi16(alo, blo));
    acc = _mm_add_epi32(acc, _mm_madd_epi16(ahi, bhi));
  }
  return hsum_epi32(acc) + dot_i8_tail(a, b, i, n);
}

const KernelTable kTable{Isa::kSse2, &l2sq_simd<xsimd::sse2>, &dot_simd<xsimd::sse2>,
                         &cosine_simd<xsimd::sse2>, &l2sq_i8_sse2, &dot_i8_sse2};

}  // namespace

const KernelTable* sse2_kernel_table() noexcept { return &kTable; }

}  // namespace shoal::index::detail

// index/kernels_avx2.cpp: the AVX2+FMA kernel table (compiled with -mavx2 -mfma; selected at run
// time only when the CPU reports both).
#include <immintrin.h>

#include "index/kernels.hpp"
#include "index/kernels_impl.hpp"

namespace shoal::index::detail {
namespace {

using Arch = xsimd::fma3<xsimd::avx2>;

inline std::int32_t hsum_epi32(__m256i v) noexcept {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i load_widen(const std::int8_t* p) noexcept {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

std::int32_t l2sq_i8_avx2(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i d0 = _mm256_sub_epi16(load_widen(a + i), load_widen(b + i));
    const __m256i d1 = _mm256_sub_epi16(load_widen(a + i + 16), load_widen(b + i + 16));
    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(d0, d0));
    acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(d1, d1));
  }
  if (i + 16 <= n) {
    const __m256i d0 = _mm256_sub_epi16(load_widen(a + i), load_widen(b + i));
    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(d0, d0));
    i += 16;
  }
  return hsum_epi32(_mm256_add_epi32(acc0, acc1)) + l2sq_i8_tail(a, b, i, n);
}

std::int32_t dot_i8_avx2(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(load_widen(a + i), load_widen(b + i)));
    acc1 = _mm256_add_epi32(acc1,
                            _mm256_madd_epi16(load_widen(a + i + 16), load_widen(b + i + 16)));
  }
  if (i + 16 <= n) {
    acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(load_widen(a + i), load_widen(b + i)));
    i += 16;
  }
  return hsum_epi32(_mm256_add_epi32(acc0, acc1)) + dot_i8_tail(a, b, i, n);
}

const KernelTable kTable{Isa::kAvx2, &l2sq_simd<Arch>, &dot_simd<Arch>, &cosine_simd<Arch>,
                         &l2sq_i8_avx2, &dot_i8_avx2};

}  // namespace

const KernelTable* avx2_kernel_table() noexcept { return &kTable; }

}  // namespace shoal::index::detail

// index/kernels_avx512.cpp: the AVX-512 (F+BW) kernel table (compiled with -mavx512f -mavx512bw
// -mavx512dq -mavx512cd -mfma when the compiler accepts them; selected at run time only when the
// CPU reports AVX-512F and AVX-512BW).
#include <immintrin.h>

#include "index/kernels.hpp"
#include "index/kernels_impl.hpp"

namespace shoal::index::detail {
namespace {

using Arch = xsimd::avx512bw;

inline __m512i load_widen(const std::int8_t* p) noexcept {
  return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

std::int32_t l2sq_i8_avx512(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  __m512i acc = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512i d = _mm512_sub_epi16(load_widen(a + i), load_widen(b + i));
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(d, d));
  }
  return _mm512_reduce_add_epi32(acc) + l2sq_i8_tail(a, b, i, n);
}

std::int32_t dot_i8_avx512(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  __m512i acc = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(load_widen(a + i), load_widen(b + i)));
  }
  return _mm512_reduce_add_epi32(acc) + dot_i8_tail(a, b, i, n);
}

const KernelTable kTable{Isa::kAvx512, &l2sq_simd<Arch>, &dot_simd<Arch>, &cosine_simd<Arch>,
                         &l2sq_i8_avx512, &dot_i8_avx512};

}  // namespace

const KernelTable* avx512_kernel_table() noexcept { return &kTable; }

}  // namespace shoal::index::detail

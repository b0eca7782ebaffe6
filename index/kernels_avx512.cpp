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

// The tail (n % 32 bytes) uses masked loads: masked-off lanes read as 0 and contribute nothing.
inline __m512i load_widen_tail(const std::int8_t* p, std::size_t count) noexcept {
  const __mmask32 mask = static_cast<__mmask32>((std::uint64_t{1} << count) - 1);
  return _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, p));
}

std::int32_t l2sq_i8_avx512(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i d0 = _mm512_sub_epi16(load_widen(a + i), load_widen(b + i));
    const __m512i d1 = _mm512_sub_epi16(load_widen(a + i + 32), load_widen(b + i + 32));
    acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(d0, d0));
    acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(d1, d1));
  }
  for (; i + 32 <= n; i += 32) {
    const __m512i d = _mm512_sub_epi16(load_widen(a + i), load_widen(b + i));
    acc0 = _mm512_add_epi32(acc0, _mm512_madd_epi16(d, d));
  }
  if (i < n) {
    const __m512i d = _mm512_sub_epi16(load_widen_tail(a + i, n - i), load_widen_tail(b + i, n - i));
    acc1 = _mm512_add_epi32(acc1, _mm512_madd_epi16(d, d));
  }
  return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

std::int32_t dot_i8_avx512(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  __m512i acc = _mm512_setzero_si512();
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(load_widen(a + i), load_widen(b + i)));
  }
  if (i < n) {
    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(load_widen_tail(a + i, n - i),
                                                  load_widen_tail(b + i, n - i)));
  }
  return _mm512_reduce_add_epi32(acc);
}

const KernelTable kTable{Isa::kAvx512, &l2sq_simd<Arch>, &dot_simd<Arch>, &cosine_simd<Arch>,
                         &l2sq_i8_avx512, &dot_i8_avx512};

}  // namespace

const KernelTable* avx512_kernel_table() noexcept { return &kTable; }

}  // namespace shoal::index::detail

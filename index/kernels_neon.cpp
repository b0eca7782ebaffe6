// index/kernels_neon.cpp: the NEON kernel table for ARM (AArch64: NEON is baseline; 32-bit ARM
// builds pass -mfpu=neon). Float kernels use xsimd; int8 kernels use the scalar loops for now.
// TODO(perf): vmull_s8/vpadalq_s16 int8 kernels.
#include "index/kernels.hpp"
#include "index/kernels_impl.hpp"

namespace shoal::index::detail {
namespace {

#if defined(__aarch64__)
using Arch = xsimd::neon64;
#else
using Arch = xsimd::neon;
#endif

std::int32_t l2sq_i8_neon(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  return l2sq_i8_tail(a, b, 0, n);
}
std::int32_t dot_i8_neon(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  return dot_i8_tail(a, b, 0, n);
}

const KernelTable kTable{Isa::kNeon, &l2sq_simd<Arch>, &dot_simd<Arch>, &cosine_simd<Arch>,
                         &l2sq_i8_neon, &dot_i8_neon};

}  // namespace

const KernelTable* neon_kernel_table() noexcept { return &kTable; }

}  // namespace shoal::index::detail

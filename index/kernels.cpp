// index/kernels.cpp: the scalar reference table and run-time selection of the best table.
#include "index/kernels.hpp"

#include <array>
#include <cmath>

namespace shoal::index {

namespace detail {
#if defined(SHOAL_INDEX_HAVE_SSE2)
const KernelTable* sse2_kernel_table() noexcept;
#endif
#if defined(SHOAL_INDEX_HAVE_AVX2)
const KernelTable* avx2_kernel_table() noexcept;
#endif
#if defined(SHOAL_INDEX_HAVE_AVX512)
const KernelTable* avx512_kernel_table() noexcept;
#endif
#if defined(SHOAL_INDEX_HAVE_NEON)
const KernelTable* neon_kernel_table() noexcept;
#endif
}  // namespace detail

namespace {

float l2sq_scalar(const float* a, const float* b, std::size_t n) noexcept {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += d * d;
  }
  return static_cast<float>(s);
}

float dot_scalar(const float* a, const float* b, std::size_t n) noexcept {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
  return static_cast<float>(s);
}

float cosine_scalar(const float* a, const float* b, std::size_t n) noexcept {
  double ab = 0, aa = 0, bb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    ab += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    aa += static_cast<double>(a[i]) * static_cast<double>(a[i]);
    bb += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  if (aa <= 0 || bb <= 0) return 1.0f;
  return static_cast<float>(1.0 - ab / std::sqrt(aa * bb));
}

std::int32_t l2sq_i8_scalar(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  std::int32_t s = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int32_t d = std::int32_t{a[i]} - std::int32_t{b[i]};
    s += d * d;
  }
  return s;
}

std::int32_t dot_i8_scalar(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept {
  std::int32_t s = 0;
  for (std::size_t i = 0; i < n; ++i) s += std::int32_t{a[i]} * std::int32_t{b[i]};
  return s;
}

const KernelTable kScalar{Isa::kScalar, &l2sq_scalar, &dot_scalar, &cosine_scalar,
                          &l2sq_i8_scalar, &dot_i8_scalar};

bool cpu_supports(Isa isa) noexcept {
  switch (isa) {
    case Isa::kScalar: return true;
#if defined(__x86_64__) || defined(__i386__)
    case Isa::kSse2: return __builtin_cpu_supports("sse2");
    case Isa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case Isa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    case Isa::kNeon: return true;
#endif
    default: return false;
  }
}

struct Registry {
  std::array<const KernelTable*, 5> tables{};
  std::size_t count = 0;
  const KernelTable* best = &kScalar;

  Registry() {
    add(&kScalar);
#if defined(SHOAL_INDEX_HAVE_SSE2)
    if (cpu_supports(Isa::kSse2)) add(detail::sse2_kernel_table());
#endif
#if defined(SHOAL_INDEX_HAVE_NEON)
    if (cpu_supports(Isa::kNeon)) add(detail::neon_kernel_table());
#endif
#if defined(SHOAL_INDEX_HAVE_AVX2)
    if (cpu_supports(Isa::kAvx2)) add(detail::avx2_kernel_table());
#endif
#if defined(SHOAL_INDEX_HAVE_AVX512)
    if (cpu_supports(Isa::kAvx512)) add(detail::avx512_kernel_table());
#endif
  }
  // Tables are added narrowest first, so the last one added is the best.
  void add(const KernelTable* t) {
    tables[count++] = t;
    best = t;
  }
};

const Registry& registry() noexcept {
  static const Registry r;
  return r;
}

}  // namespace

std::string_view isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kSse2: return "sse2";
    case Isa::kAvx2: return "avx2+fma";
    case Isa::kAvx512: return "avx512bw";
    case Isa::kNeon: return "neon";
  }
  return "unknown";
}

const KernelTable& scalar_kernels() noexcept { return kScalar; }

const KernelTable& best_kernels() noexcept { return *registry().best; }

const KernelTable* kernels_for(Isa isa) noexcept {
  const Registry& r = registry();
  for (std::size_t i = 0; i < r.count; ++i) {
    if (r.tables[i]->isa == isa) return r.tables[i];
  }
  return nullptr;
}

std::span<const KernelTable* const> available_kernels() noexcept {
  const Registry& r = registry();
  return {r.tables.data(), r.count};
}

}  // namespace shoal::index

// index/kernels.hpp: distance kernels on float32 and int8 vectors, chosen at run time for the CPU.
//
// Role: every distance the index computes goes through one KernelTable. Float kernels are written
// with xsimd (one translation unit per instruction set, each compiled with its own -m flags);
// int8 kernels (for the optional scalar quantization) use the same per-ISA translation units
// with intrinsics, because xsimd 8.1 has no widening multiply-add. best_kernels() picks the
// widest table this binary has and this CPU supports (AVX-512BW, AVX2+FMA, SSE2 on x86-64; NEON
// on ARM; scalar elsewhere). Binaries stay portable: no -march=native.
//
// Precision: SIMD kernels sum in a different order than the scalar reference, so results agree
// to float rounding (relative error ~1e-6 * sqrt(n)), not bit for bit. For deterministic
// simulation, pin one table with kernels_for(Isa) instead of best_kernels().
// Int8 kernels are exact (int32 accumulation) for n <= kMaxKernelDimension.
// Thread rules: pure functions; the tables are immutable after first use and safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace shoal::index {

// Largest n the int8 kernels accept without int32 overflow (255^2 * 2 * n / 2 < 2^31 holds far
// above this; the index's own dimension limit is lower).
inline constexpr std::size_t kMaxKernelDimension = 1u << 15;

enum class Isa : std::uint8_t { kScalar = 0, kSse2 = 1, kAvx2 = 2, kAvx512 = 3, kNeon = 4 };

std::string_view isa_name(Isa isa) noexcept;

// Inputs need no alignment. n may be 0 (the result is then 0, or 1 for cosine distance).
struct KernelTable {
  Isa isa;
  // Squared Euclidean distance: sum (a_i - b_i)^2.
  float (*l2sq)(const float* a, const float* b, std::size_t n) noexcept;
  // Inner product: sum a_i * b_i.
  float (*dot)(const float* a, const float* b, std::size_t n) noexcept;
  // Cosine distance 1 - a.b / (|a| |b|), computed in one pass; 1 when either norm is zero.
  float (*cosine)(const float* a, const float* b, std::size_t n) noexcept;
  // Squared Euclidean distance of int8 codes, exact.
  std::int32_t (*l2sq_i8)(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept;
  // Inner product of int8 codes, exact.
  std::int32_t (*dot_i8)(const std::int8_t* a, const std::int8_t* b, std::size_t n) noexcept;
};

// The scalar reference: straightforward loops, double accumulation for the float kernels.
const KernelTable& scalar_kernels() noexcept;

// The fastest table this binary contains that this CPU can run. Chosen once per process.
const KernelTable& best_kernels() noexcept;

// The table for `isa`, or nullptr when this binary lacks it or this CPU cannot run it.
const KernelTable* kernels_for(Isa isa) noexcept;

// Every table usable here, scalar first (for tests and benchmarks).
std::span<const KernelTable* const> available_kernels() noexcept;

}  // namespace shoal::index

// Proves that every kernel table this CPU can run (scalar, SSE2, AVX2+FMA, AVX-512, NEON) agrees
// with the scalar reference on squared L2, inner product, cosine and the int8 kernels, for every
// dimension 1..64 and a spread up to 4096, with inputs at unaligned addresses; int8 kernels
// must agree exactly. Data comes from Catch's --rng-seed.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "common/random.hpp"
#include "index/kernels.hpp"

using namespace shoal::index;

namespace {
std::vector<std::size_t> dimensions() {
  std::vector<std::size_t> d;
  for (std::size_t i = 1; i <= 64; ++i) d.push_back(i);
  for (std::size_t i : {65, 96, 100, 127, 128, 129, 255, 256, 300, 384, 512, 768, 784, 1000,
                        1024, 1536, 2048, 3072, 4095, 4096}) {
    d.push_back(i);
  }
  return d;
}

bool close(float got, float want, std::size_t n, float magnitude) {
  const float tol = 1e-5f * std::sqrt(static_cast<float>(n)) * std::max(1.0f, magnitude);
  return std::fabs(got - want) <= tol;
}
}  // namespace

TEST_CASE("the best kernel table is usable and listed", "[index]") {
  const KernelTable& best = best_kernels();
  CHECK(kernels_for(best.isa) == &best);
  CHECK(available_kernels().front()->isa == Isa::kScalar);
  INFO("best kernels: " << isa_name(best.isa));
  CHECK(!isa_name(best.isa).empty());
}

TEST_CASE("float kernels match the scalar reference on all dimensions and offsets",
          "[index][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  shoal::Rng rng(seed);
  const KernelTable& ref = scalar_kernels();
  for (const KernelTable* t : available_kernels()) {
    INFO("kernels " << isa_name(t->isa));
    for (std::size_t n : dimensions()) {
      INFO("dimension " << n);
      // Two extra floats so the vectors can start 0..3 floats past an aligned address.
      std::vector<float> a(n + 4), b(n + 4);
      for (auto& x : a) x = rng.uniform_float(-2.0f, 2.0f);
      for (auto& x : b) x = rng.uniform_float(-2.0f, 2.0f);
      for (std::size_t off : {0u, 1u, 3u}) {
        const float* pa = a.data() + off;
        const float* pb = b.data() + (3 - off);
        const float l2 = ref.l2sq(pa, pb, n);
        const float dot = ref.dot(pa, pb, n);
        const float cos = ref.cosine(pa, pb, n);
        REQUIRE(close(t->l2sq(pa, pb, n), l2, n, l2));
        REQUIRE(close(t->dot(pa, pb, n), dot, n, std::fabs(dot) + static_cast<float>(n)));
        REQUIRE(close(t->cosine(pa, pb, n), cos, n, 1.0f));
      }
    }
  }
}

TEST_CASE("int8 kernels are exact on all dimensions, offsets and extreme values",
          "[index][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  shoal::Rng rng(seed);
  const KernelTable& ref = scalar_kernels();
  for (const KernelTable* t : available_kernels()) {
    INFO("kernels " << isa_name(t->isa));
    for (std::size_t n : dimensions()) {
      INFO("dimension " << n);
      std::vector<std::int8_t> a(n + 7), b(n + 7);
      for (auto& x : a) x = static_cast<std::int8_t>(rng.uniform_range(-128, 127));
      for (auto& x : b) x = static_cast<std::int8_t>(rng.uniform_range(-128, 127));
      for (std::size_t off : {0u, 1u, 7u}) {
        const std::int8_t* pa = a.data() + off;
        const std::int8_t* pb = b.data() + (7 - off);
        REQUIRE(t->l2sq_i8(pa, pb, n) == ref.l2sq_i8(pa, pb, n));
        REQUIRE(t->dot_i8(pa, pb, n) == ref.dot_i8(pa, pb, n));
      }
      // Extremes: -128 against 127 everywhere, the largest per-component difference.
      std::vector<std::int8_t> lo(n, -128), hi(n, 127);
      REQUIRE(t->l2sq_i8(lo.data(), hi.data(), n) == static_cast<std::int32_t>(255 * 255 * n));
      REQUIRE(t->dot_i8(lo.data(), lo.data(), n) == static_cast<std::int32_t>(128 * 128 * n));
    }
  }
}

TEST_CASE("kernels handle empty inputs and zero vectors", "[index]") {
  for (const KernelTable* t : available_kernels()) {
    INFO("kernels " << isa_name(t->isa));
    float x = 1.0f;
    CHECK(t->l2sq(&x, &x, 0) == 0.0f);
    CHECK(t->dot(&x, &x, 0) == 0.0f);
    std::vector<float> zero(17, 0.0f), one(17, 1.0f);
    CHECK(t->cosine(zero.data(), one.data(), 17) == 1.0f);
    CHECK(t->cosine(one.data(), one.data(), 17) == Approx(0.0f).margin(1e-6));
  }
}

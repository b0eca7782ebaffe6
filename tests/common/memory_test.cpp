// Proves common/memory.hpp's page advice never changes memory's contents: populate_for_write,
// run from the back of a 48 MiB block while another thread writes a seeded pattern into it from
// the front (what index/graph.cpp's snapshot load does), leaves every byte as the writer wrote
// it, on memory advised for huge pages and on memory that was not; and both calls accept
// ranges that hold no whole page.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>

#include "common/memory.hpp"
#include "common/random.hpp"

using shoal::Rng;

namespace {
struct Free {
  void operator()(char* p) const noexcept { std::free(p); }
};
}  // namespace

TEST_CASE("populating pages for write while another thread fills them leaves every byte it wrote", "[common][memory]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  constexpr std::size_t kBytes = std::size_t{48} << 20;
  constexpr std::size_t kStep = std::size_t{1} << 20;
  for (const bool huge : {true, false}) {
    INFO("huge pages advised: " << huge);
    std::unique_ptr<char, Free> block(static_cast<char*>(std::malloc(kBytes)));
    REQUIRE(block != nullptr);
    char* base = block.get();
    if (huge) shoal::advise_huge_pages(base, kBytes);
    // The pattern: one seeded byte per 4 KiB step, so writing it touches every page.
    Rng rng(seed);
    std::unique_ptr<unsigned char[]> pattern(new unsigned char[kBytes / 4096]);
    for (std::size_t i = 0; i < kBytes / 4096; ++i) pattern[i] = static_cast<unsigned char>(rng.uniform(256));
    std::thread writer([&] {
      for (std::size_t at = 0; at < kBytes; at += kStep) {
        for (std::size_t i = at; i < at + kStep; i += 4096) std::memset(base + i, pattern[i / 4096], 4096);
      }
    });
    bool supported = true;
    for (std::size_t end = kBytes; end > 0 && supported; end -= kStep) {
      supported = shoal::populate_for_write(base + end - kStep, kStep);
    }
    writer.join();
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < kBytes; ++i) {
      if (static_cast<unsigned char>(base[i]) != pattern[i / 4096]) ++wrong;
    }
    CHECK(wrong == 0);
    // No whole page inside: nothing to do, and no refusal.
    CHECK(shoal::populate_for_write(base + 1, 100));
    shoal::advise_huge_pages(base + 1, 100);
  }
}

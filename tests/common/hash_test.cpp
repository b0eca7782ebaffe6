// Proves that hash64 is stable (pinned values: it is part of disk and wire formats), seeded, and
// that the incremental hasher equals the one-shot hash for any chunking.
#include <catch2/catch.hpp>

#include <string>

#include "common/hash.hpp"
#include "common/random.hpp"

TEST_CASE("hash64 is pinned to XXH3-64", "[common]") {
  // XXH3_64bits("") with seed 0 is a published constant of the algorithm.
  CHECK(shoal::hash64("", 0) == 0x2d06800538d394c2ull);
  CHECK(shoal::hash64("abc", 0) != shoal::hash64("abc", 1));
  CHECK(shoal::hash64("abc") == shoal::hash64(std::string("abc")));
}

TEST_CASE("incremental hashing equals one-shot hashing for any chunking", "[common][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  shoal::Rng rng(seed);
  for (int round = 0; round < 200; ++round) {
    std::string data(rng.uniform(2000), '\0');
    for (auto& ch : data) ch = static_cast<char>(rng.uniform(256));
    shoal::Hasher64 h(17);
    std::size_t pos = 0;
    while (pos < data.size()) {
      std::size_t n = std::min<std::size_t>(data.size() - pos, rng.uniform(300) + 1);
      h.update(data.data() + pos, n);
      pos += n;
    }
    REQUIRE(h.digest() == shoal::hash64(data, 17));
  }
}

// Proves that the dataset readers load Debian's Fashion-MNIST (gzip IDX) with the documented
// shape, parse .fvecs and .npy built in memory exactly, and turn corrupt, truncated or hostile
// headers into typed statuses instead of crashes or huge allocations.
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>

#include "common/random.hpp"
#include "node/io/datasets.hpp"

using namespace shoal;
using namespace shoal::io;

namespace {
std::string fvecs_bytes(const std::vector<std::vector<float>>& rows) {
  std::string out;
  for (const auto& r : rows) {
    std::int32_t d = static_cast<std::int32_t>(r.size());
    out.append(reinterpret_cast<const char*>(&d), 4);
    out.append(reinterpret_cast<const char*>(r.data()), r.size() * 4);
  }
  return out;
}
std::string npy_bytes(std::size_t n, std::size_t d, const std::vector<float>& data) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(n) +
                       ", " + std::to_string(d) + "), }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(data.data()), data.size() * 4);
  return out;
}
}  // namespace

TEST_CASE("Fashion-MNIST test images load as 10,000 vectors of 784 pixel values", "[node][io]") {
  const std::string path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  REQUIRE(std::filesystem::exists(path));  // installed by scripts/setup.sh
  auto r = read_vectors(path, guess_format(path));
  REQUIRE(r.ok());
  CHECK(r->count == 10000);
  CHECK(r->dimension == 784);
  float mx = 0;
  for (float x : r->data) mx = std::max(mx, x);
  CHECK(mx == 255.0f);
  auto limited = read_vectors(path, VectorFormat::kIdx, 10);
  REQUIRE(limited.ok());
  CHECK(limited->count == 10);
  CHECK(std::memcmp(limited->data.data(), r->data.data(), 10 * 784 * 4) == 0);
}

TEST_CASE("fvecs and npy parse exactly what was written", "[node][io]") {
  auto fv = parse_fvecs(fvecs_bytes({{1, 2, 3}, {4, 5, 6}}));
  REQUIRE(fv.ok());
  CHECK(fv->count == 2);
  CHECK(fv->dimension == 3);
  CHECK(fv->data == std::vector<float>{1, 2, 3, 4, 5, 6});
  auto np = parse_npy(npy_bytes(2, 2, {0.5f, 1.5f, 2.5f, 3.5f}));
  REQUIRE(np.ok());
  CHECK(np->count == 2);
  CHECK(np->dimension == 2);
  CHECK(np->data == std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f});
}

TEST_CASE("bad headers get typed errors", "[node][io]") {
  CHECK(parse_fvecs(fvecs_bytes({{1, 2, 3}, {4, 5}})).status().detail() == Detail::kDimensionMismatch);
  std::string t = fvecs_bytes({{1, 2, 3}});
  t.pop_back();
  CHECK(parse_fvecs(t).status().detail() == Detail::kTruncated);
  CHECK(parse_npy("hello world").status().detail() == Detail::kBadMagic);
  std::string npy = npy_bytes(1000000, 1000000, {1.0f});  // hostile shape, tiny data
  CHECK(parse_npy(npy).status().detail() == Detail::kTruncated);
  std::string idx("\x00\x00\x08\x03\xff\xff\xff\xff\x00\x00\x00\x1c\x00\x00\x00\x1c", 16);
  CHECK(parse_idx(idx).status().detail() == Detail::kTruncated);
  CHECK(parse_idx("\x01\x02").status().detail() == Detail::kBadMagic);
  CHECK(read_vectors("/nonexistent/file.npy", VectorFormat::kNpy).status().code() == Code::kIo);
}

TEST_CASE("random bytes never crash a reader", "[node][io][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::string base_npy = npy_bytes(3, 4, std::vector<float>(12, 1.0f));
  const std::string base_fv = fvecs_bytes({{1, 2}, {3, 4}});
  const std::string base_idx("\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x02\x01\x02\x03\x04", 16);
  for (int i = 0; i < 3000; ++i) {
    for (const std::string* base : {&base_npy, &base_fv, &base_idx}) {
      std::string b = *base;
      const auto flips = 1 + rng.uniform(4);
      for (std::uint64_t f = 0; f < flips; ++f) b[rng.uniform(b.size())] = static_cast<char>(rng.uniform(256));
      if (rng.bernoulli(0.3)) b.resize(rng.uniform(b.size()));
      (void)parse_npy(b);
      (void)parse_fvecs(b);
      (void)parse_idx(b);
    }
  }
  SUCCEED("no crash on 27,000 mutated inputs");
}

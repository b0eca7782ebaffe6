// Proves the snapshot format's guarantees: a saved index loads back with the same answers, the
// same covered store position, and its deletions; the file is written atomically (no temporary
// left behind); and a file that is truncated anywhere, has any byte flipped, has a wrong magic
// or version, or was made for other parameters is rejected with the typed Status the caller
// uses to decide to rebuild; and it is readable by its owner only (0600, like the store) whether
// it is new, rewritten, or replaces a stale temporary file, under a permissive umask. Files live
// in a temporary directory under the build tree.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/types.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "index/hnsw_index.hpp"
#include "test_util.hpp"

using namespace shoal::index;
using shoal::Code;
using shoal::Detail;
using shoal::Rng;

namespace {
constexpr std::size_t kDim = 12;

IndexParams params(Quantization q = Quantization::kNone) {
  IndexParams p;
  p.dimension = kDim;
  p.m = 8;
  p.ef_construction = 64;
  p.exact_below = 0;
  p.quantization = q;
  p.quant_min = -2.0f;
  p.quant_max = 2.0f;
  p.rebuild_deleted_share = 0.0;
  return p;
}

std::vector<char> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_file(const std::filesystem::path& p, const std::vector<char>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The permission bits of `p`.
unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return static_cast<unsigned>(st.st_mode) & 0777u;
}

// Sets the process umask for the scope of a test and restores it.
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
  ~UmaskGuard() { ::umask(old_); }
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;

 private:
  mode_t old_;
};

std::vector<Neighbor> query(const HnswIndex& idx, std::span<const float> q) {
  SearchRequest req;
  req.query = q;
  req.k = 10;
  req.ef = 32;
  auto r = idx.search(req);
  REQUIRE(r.ok());
  return r->neighbors;
}
}  // namespace

TEST_CASE("a snapshot round-trips the index, its deletions and the covered position", "[index]") {
  const auto dir = testing::temp_dir("snapshot_roundtrip");
  for (Quantization quant : {Quantization::kNone, Quantization::kInt8}) {
    INFO("quantization " << static_cast<int>(quant));
    Rng rng(3);
    auto data = testing::clustered_data(rng, 500, kDim);
    auto idx = std::move(HnswIndex::create(params(quant))).value();
    std::vector<std::uint64_t> labels(500);
    for (std::size_t i = 0; i < 500; ++i) labels[i] = 7 * i + 1;
    REQUIRE(idx->add_batch(labels, data).ok());
    for (std::size_t i = 0; i < 500; i += 5) REQUIRE(idx->remove(labels[i]).ok());
    const auto path = (dir / "index.snap").string();
    REQUIRE(idx->save_snapshot(path, 123456789).ok());
    CHECK_FALSE(std::filesystem::exists(path + ".tmp"));

    auto loaded = HnswIndex::load_snapshot(path, params(quant));
    REQUIRE(loaded.ok());
    CHECK(loaded->covered_position == 123456789);
    HnswIndex& back = *loaded->index;
    CHECK(back.size() == idx->size());
    CHECK_FALSE(back.contains(labels[0]));
    CHECK(back.contains(labels[1]));
    for (std::size_t i = 0; i < 500; i += 23) {
      const auto q = std::span<const float>(data).subspan(i * kDim, kDim);
      CHECK(query(back, q) == query(*idx, q));
    }
    // The loaded index keeps working: writes and a second save.
    REQUIRE(back.add(999999, std::span<const float>(data).subspan(0, kDim)).ok());
    REQUIRE(back.remove(labels[2]).ok());
    REQUIRE(back.save_snapshot(path, 5).ok());
    auto again = HnswIndex::load_snapshot(path, params(quant));
    REQUIRE(again.ok());
    CHECK(again->covered_position == 5);
    CHECK(again->index->contains(999999));
    CHECK_FALSE(again->index->contains(labels[2]));
  }
}

TEST_CASE("corrupt, truncated and mismatched snapshots are rejected with typed statuses",
          "[index][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  const auto dir = testing::temp_dir("snapshot_reject");
  Rng rng(seed);
  auto data = testing::clustered_data(rng, 200, kDim);
  auto idx = std::move(HnswIndex::create(params())).value();
  std::vector<std::uint64_t> labels(200);
  for (std::size_t i = 0; i < 200; ++i) labels[i] = i;
  REQUIRE(idx->add_batch(labels, data).ok());
  const auto good = dir / "good.snap";
  REQUIRE(idx->save_snapshot(good.string(), 42).ok());
  const auto bytes = read_file(good);
  const auto bad = dir / "bad.snap";

  SECTION("missing file") {
    CHECK(HnswIndex::load_snapshot((dir / "none").string(), params()).status().code() == Code::kIo);
  }
  SECTION("truncated at any length") {
    for (int t = 0; t < 60; ++t) {
      std::size_t len = t < 20 ? static_cast<std::size_t>(t) * 7 : rng.uniform(bytes.size());
      INFO("length " << len);
      write_file(bad, std::vector<char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(len)));
      auto st = HnswIndex::load_snapshot(bad.string(), params()).status();
      REQUIRE_FALSE(st.ok());
      CHECK((st.detail() == Detail::kTruncated || st.detail() == Detail::kBadMagic));
      CHECK(st.context() == bad.string());
    }
  }
  SECTION("any flipped byte") {
    for (int t = 0; t < 60; ++t) {
      auto copy = bytes;
      const std::size_t pos = t < 16 ? 8 + static_cast<std::size_t>(t) * 8 : rng.uniform(copy.size());
      copy[pos] = static_cast<char>(copy[pos] ^ static_cast<char>(1 + rng.uniform(255)));
      INFO("byte " << pos);
      write_file(bad, copy);
      auto st = HnswIndex::load_snapshot(bad.string(), params()).status();
      REQUIRE_FALSE(st.ok());
      CHECK(st.code() != Code::kInternal);
      CHECK(((st.code() == Code::kCorruption) || st.detail() == Detail::kVersionMismatch ||
             st.detail() == Detail::kTruncated));
    }
  }
  SECTION("wrong magic, wrong version, trailing bytes") {
    auto copy = bytes;
    copy[0] = 'X';
    write_file(bad, copy);
    CHECK(HnswIndex::load_snapshot(bad.string(), params()).status().detail() == Detail::kBadMagic);
    copy = bytes;
    copy[8] = 9;
    write_file(bad, copy);
    auto st = HnswIndex::load_snapshot(bad.string(), params()).status();
    CHECK(st.detail() == Detail::kVersionMismatch);
    CHECK_THAT(st.message(), Catch::Contains("9"));
    copy = bytes;
    copy.push_back(0);
    write_file(bad, copy);
    CHECK(HnswIndex::load_snapshot(bad.string(), params()).status().detail() ==
          Detail::kChecksumMismatch);
  }
  SECTION("made for other parameters") {
    IndexParams other = params();
    other.dimension = kDim + 1;
    auto st = HnswIndex::load_snapshot(good.string(), other).status();
    CHECK(st.detail() == Detail::kParameterMismatch);
    CHECK_THAT(st.message(), Catch::Contains("dimension"));
    other = params();
    other.metric = Metric::kInnerProduct;
    CHECK(HnswIndex::load_snapshot(good.string(), other).status().detail() == Detail::kParameterMismatch);
    other = params();
    other.m = 9;
    st = HnswIndex::load_snapshot(good.string(), other).status();
    CHECK(st.detail() == Detail::kParameterMismatch);
    CHECK_THAT(st.message(), Catch::Contains("m is 8"));
    other = params(Quantization::kInt8);
    CHECK(HnswIndex::load_snapshot(good.string(), other).status().detail() == Detail::kParameterMismatch);
  }
  SECTION("an unwritable destination is an I/O error and leaves no file") {
    auto st = idx->save_snapshot((dir / "no_such_dir" / "x.snap").string(), 1);
    CHECK(st.code() == Code::kIo);
  }
}

TEST_CASE("a snapshot is readable by its owner only, new, rewritten or over a stale temporary file",
          "[index]") {
  const auto dir = testing::temp_dir("snapshot_mode");
  Rng rng(5);
  auto data = testing::clustered_data(rng, 50, kDim);
  auto idx = std::move(HnswIndex::create(params())).value();
  std::vector<std::uint64_t> labels(50);
  for (std::size_t i = 0; i < 50; ++i) labels[i] = i;
  REQUIRE(idx->add_batch(labels, data).ok());
  for (mode_t mask : {mode_t{022}, mode_t{0}}) {
    INFO("umask 0" << std::oct << mask);
    UmaskGuard guard(mask);
    const auto path = dir / ("index-" + std::to_string(mask) + ".snap");
    REQUIRE(idx->save_snapshot(path.string(), 1).ok());
    CHECK(mode_of(path) == 0600u);
    // An older snapshot made world-readable (as earlier builds did) is replaced by a 0600 one.
    REQUIRE(::chmod(path.c_str(), 0644) == 0);
    REQUIRE(idx->save_snapshot(path.string(), 2).ok());
    CHECK(mode_of(path) == 0600u);
    // A temporary file a crash left behind keeps its mode through O_TRUNC; it must not leak it.
    const auto tmp = path.string() + ".tmp";
    write_file(tmp, {'x'});
    REQUIRE(::chmod(tmp.c_str(), 0666) == 0);
    REQUIRE(idx->save_snapshot(path.string(), 3).ok());
    CHECK(mode_of(path) == 0600u);
    CHECK_FALSE(std::filesystem::exists(tmp));
    REQUIRE(HnswIndex::load_snapshot(path.string(), params()).ok());
  }
}

// The metric is one enum (index/metric.hpp); the snapshot stores it as header byte 20 with its
// own numbering (1 l2, 2 ip, 3 cosine), which must never change. Pinned here on real files, and
// a byte outside the encoding is a parameter mismatch naming the byte.
TEST_CASE("the snapshot's metric byte is pinned: 1 l2, 2 ip, 3 cosine", "[index]") {
  const auto dir = testing::temp_dir("snapshot_metric_byte");
  const std::pair<Metric, int> pinned[] = {
      {Metric::kL2, 1}, {Metric::kInnerProduct, 2}, {Metric::kCosine, 3}};
  for (const auto& [metric, byte] : pinned) {
    INFO("metric " << metric_name(metric));
    CHECK(metric_to_snapshot_byte(metric) == byte);
    CHECK(metric_from_snapshot_byte(static_cast<std::uint8_t>(byte)) == metric);
    IndexParams p = params();
    p.metric = metric;
    auto idx = HnswIndex::create(p);
    REQUIRE(idx.ok());
    const std::vector<float> v(kDim, 0.5f);
    REQUIRE((*idx)->add(7, v).ok());
    const auto file = dir / (std::string(metric_name(metric)) + ".snap");
    REQUIRE((*idx)->save_snapshot(file.string(), 1).ok());
    const auto bytes = read_file(file);
    REQUIRE(bytes.size() > 20);
    CHECK(static_cast<int>(static_cast<unsigned char>(bytes[20])) == byte);
    CHECK(HnswIndex::load_snapshot(file.string(), p).ok());
  }
  CHECK(!metric_from_snapshot_byte(0));
  CHECK(!metric_from_snapshot_byte(4));
}

// Version 2 changed what inner-product and cosine int8 codes mean (offset codes with a
// per-vector correction, docs/decisions.md D34). tests/index/data/snapshot_v1_ip_int8.hnsw is a
// real version-1 file, written by the code before that change (an inner-product int8 index with
// the node's defaults: 100 vectors of 8 dimensions, labels 1..100, covered position 100). This
// build refuses it with kVersionMismatch naming both versions, the status on which the node
// rebuilds the index from the store (tests/node/node_test.cpp proves the rebuild end to end).
TEST_CASE("a version 1 snapshot (symmetric inner-product codes) is refused as a version mismatch", "[index]") {
  const std::string path = std::string(SHOAL_INDEX_TEST_DATA) + "/snapshot_v1_ip_int8.hnsw";
  const auto bytes = read_file(path);
  REQUIRE(bytes.size() > 16);
  REQUIRE(bytes[8] == 1);  // the fixture really is version 1
  IndexParams p;
  p.dimension = 8;
  p.metric = Metric::kInnerProduct;
  p.quantization = Quantization::kInt8;
  auto st = HnswIndex::load_snapshot(path, p).status();
  CHECK(st.code() == Code::kUnimplemented);
  CHECK(st.detail() == Detail::kVersionMismatch);
  CHECK_THAT(st.message(), Catch::Contains("version 1") && Catch::Contains("version 2"));
}

TEST_CASE("a snapshot loaded with spare room takes that many more vectors without growing", "[index]") {
  // Proves load_snapshot's `spare` (D64): open loads the graph with room for the labels its replay
  // adds, so the replay never reallocates hnswlib's arrays; without it the first add grows them.
  // A spare above the element limit is refused with kTooLarge naming the sum.
  const auto dir = testing::temp_dir("snapshot_spare");
  Rng rng(5);
  auto data = testing::clustered_data(rng, 300, kDim);
  IndexParams p = params(Quantization::kInt8);
  p.initial_capacity = 1;  // the loaded graph's capacity is then the file's count (+ spare)
  auto idx = std::move(HnswIndex::create(p)).value();
  std::vector<std::uint64_t> labels(200);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = i + 1;
  REQUIRE(idx->add_batch(labels, std::span<const float>(data).subspan(0, 200 * kDim)).ok());
  const auto path = (dir / "index.snap").string();
  REQUIRE(idx->save_snapshot(path, 1).ok());
  auto add_rest = [&](HnswIndex& x) {
    for (std::size_t i = 200; i < 300; ++i) {
      REQUIRE(x.add(i + 1, std::span<const float>(data).subspan(i * kDim, kDim)).ok());
    }
  };

  auto roomy = HnswIndex::load_snapshot(path, p, {}, nullptr, 100);
  REQUIRE(roomy.ok());
  const std::size_t before = roomy->index->memory().vector_bytes;
  add_rest(*roomy->index);
  CHECK(roomy->index->size() == 300);
  CHECK(roomy->index->memory().vector_bytes == before);

  auto tight = HnswIndex::load_snapshot(path, p);
  REQUIRE(tight.ok());
  const std::size_t tight_before = tight->index->memory().vector_bytes;
  CHECK(tight_before < before);
  add_rest(*tight->index);
  CHECK(tight->index->memory().vector_bytes > tight_before);
  // Both answer the same.
  for (std::size_t i = 0; i < 300; i += 37) {
    const auto q = std::span<const float>(data).subspan(i * kDim, kDim);
    CHECK(query(*roomy->index, q) == query(*tight->index, q));
  }

  auto too_many = HnswIndex::load_snapshot(path, p, {}, nullptr, kMaxElements);
  REQUIRE_FALSE(too_many.ok());
  CHECK(too_many.status().detail() == Detail::kTooLarge);
  CHECK(too_many.status().message().find("200 + " + std::to_string(kMaxElements)) != std::string::npos);
}

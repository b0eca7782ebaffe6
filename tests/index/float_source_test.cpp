// Proves that an int8 index re-ranking with float vectors read from a FloatSource
// (index/float_source.hpp) instead of a kept copy: gives the same neighbours and distances (to
// float rounding) as the index that keeps them, for L2, inner product and cosine, on the graph
// path and the exact path; keeps no float array (memory()); re-encodes its codes from the source
// when a vector widens the calibrated range; rebuilds from the source; saves snapshots without
// floats that load only with a source (a typed kParameterMismatch otherwise, both ways); and
// falls back to the codes for a label the source no longer holds. The source here is an
// in-memory map that counts its reads, so the tests also see that a search reads about ef
// vectors, not all of them. Data: seeded clustered vectors (seed printed).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>

#include "index/hnsw_index.hpp"
#include "test_util.hpp"

using namespace shoal;
using namespace shoal::index;
using namespace shoal::index::testing;

namespace {

// Vectors by label, as the app gave them; reads are counted.
class MapSource final : public FloatSource {
 public:
  explicit MapSource(std::size_t dim) : dim_(dim) {}
  void put(std::uint64_t label, const float* v) {
    std::lock_guard l(mu_);
    vecs_[label].assign(v, v + dim_);
  }
  void forget(std::uint64_t label) {
    std::lock_guard l(mu_);
    vecs_.erase(label);
  }
  std::size_t reads() const {
    std::lock_guard l(mu_);
    return reads_;
  }
  std::unique_ptr<FloatReader> reader() const override { return std::make_unique<Reader>(this); }

 private:
  class Reader final : public FloatReader {
   public:
    explicit Reader(const MapSource* s) : s_(s) {}
    const float* get(std::uint64_t label) override {
      std::lock_guard l(s_->mu_);
      ++s_->reads_;
      auto it = s_->vecs_.find(label);
      return it == s_->vecs_.end() ? nullptr : it->second.data();
    }

   private:
    const MapSource* s_;
  };
  std::size_t dim_;
  mutable std::mutex mu_;
  mutable std::size_t reads_ = 0;
  std::map<std::uint64_t, std::vector<float>> vecs_;
};

IndexParams int8_params(std::size_t dim, Metric metric) {
  IndexParams p;
  p.dimension = static_cast<std::uint32_t>(dim);
  p.metric = metric;
  p.quantization = Quantization::kInt8;
  p.exact_below = 0;  // the graph path unless a test asks for the exact one
  return p;
}

void same_results(const Result<SearchResult>& a, const Result<SearchResult>& b) {
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a->neighbors.size() == b->neighbors.size());
  for (std::size_t i = 0; i < a->neighbors.size(); ++i) {
    CHECK(a->neighbors[i].label == b->neighbors[i].label);
    CHECK(a->neighbors[i].distance == Approx(b->neighbors[i].distance).margin(1e-4).epsilon(1e-4));
  }
}

}  // namespace

TEST_CASE("an int8 index reading its floats from a source ranks exactly like one keeping them",
          "[index][float_source]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::size_t dim = 24, n = 600;
  const auto data = clustered_data(rng, n, dim);
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    INFO("metric " << metric_name(metric));
    MapSource source(dim);
    const IndexParams p = int8_params(dim, metric);
    auto kept = HnswIndex::create(p).value();
    auto sourced = HnswIndex::create(p, {}, &source).value();
    for (std::size_t i = 0; i < n; ++i) {
      source.put(i + 1, data.data() + i * dim);  // the store commits before the index adds
      REQUIRE(kept->add(i + 1, std::span<const float>(data.data() + i * dim, dim)).ok());
      REQUIRE(sourced->add(i + 1, std::span<const float>(data.data() + i * dim, dim)).ok());
    }
    // The codes alone: the kept index holds capacity x dim floats more.
    const std::size_t floats = kept->memory().vector_bytes - sourced->memory().vector_bytes;
    CHECK(sourced->memory().vector_bytes < kept->memory().vector_bytes);
    CHECK(floats % (dim * sizeof(float)) == 0);
    CHECK(floats >= n * dim * sizeof(float));
    for (int qi = 0; qi < 20; ++qi) {
      const auto q = clustered_data(rng, 1, dim);
      SearchRequest r;
      r.query = q;
      r.k = 10;
      r.ef = 32;
      const std::size_t before = source.reads();
      same_results(kept->search(r), sourced->search(r));
      // The graph path re-ranks its ef candidates: about ef reads, not n.
      CHECK(source.reads() - before <= 32);
      // The exact path too (a filter matching few labels).
      std::vector<std::uint64_t> matching = {3, 17, 99, 250, 251, 400, 555};
      r.matching_labels = std::span<const std::uint64_t>(matching);
      same_results(kept->search(r), sourced->search(r));
    }
  }
}

TEST_CASE("a source-backed index re-encodes from the source when a vector widens its range",
          "[index][float_source]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::size_t dim = 16, n = 300;
  auto data = clustered_data(rng, n, dim);
  MapSource source(dim);
  auto idx = HnswIndex::create(int8_params(dim, Metric::kL2), {}, &source).value();
  IndexParams ep;
  ep.dimension = static_cast<std::uint32_t>(dim);
  auto exact_ptr = ExactIndex::create(ep).value();
  ExactIndex& exact = *exact_ptr;
  for (std::size_t i = 0; i < n; ++i) {
    if (i == n - 1) {
      for (std::size_t j = 0; j < dim; ++j) data[i * dim + j] *= 8.0f;  // a new extreme, last
    }
    const std::span<const float> v(data.data() + i * dim, dim);
    source.put(i + 1, v.data());
    REQUIRE(idx->add(i + 1, v).ok());
    REQUIRE(exact.add(i + 1, v).ok());
  }
  // The last vector set the range's maximum, so every earlier code was re-encoded from the source.
  CHECK(idx->quant_range().second == *std::max_element(data.begin(), data.end()));
  CHECK(*std::max_element(data.begin(), data.end() - dim) < idx->quant_range().second);
  double recall = 0;
  for (int qi = 0; qi < 20; ++qi) {
    SearchRequest r;
    r.query = std::span<const float>(data.data() + static_cast<std::size_t>(qi) * 7 * dim, dim);
    r.k = 10;
    r.ef = 64;
    auto got = idx->search(r);
    auto truth = exact.search(r);
    REQUIRE(got.ok());
    REQUIRE(truth.ok());
    recall += recall_at(got->neighbors, truth->neighbors);
    // Exact float distances: the first hit is the query itself.
    CHECK(got->neighbors[0].distance == Approx(0.0).margin(1e-3));
  }
  CHECK(recall / 20 >= 0.9);
}

TEST_CASE("a source-backed index rebuilds from the source and falls back to codes for a forgotten label",
          "[index][float_source]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::size_t dim = 16, n = 400;
  const auto data = clustered_data(rng, n, dim);
  MapSource source(dim);
  auto idx = HnswIndex::create(int8_params(dim, Metric::kCosine), {}, &source).value();
  for (std::size_t i = 0; i < n; ++i) {
    source.put(i + 1, data.data() + i * dim);
    REQUIRE(idx->add(i + 1, std::span<const float>(data.data() + i * dim, dim)).ok());
  }
  REQUIRE(idx->rebuild_now().ok());
  SearchRequest r;
  r.query = std::span<const float>(data.data(), dim);
  r.k = 5;
  r.ef = 32;
  auto got = idx->search(r);
  REQUIRE(got.ok());
  REQUIRE(!got->neighbors.empty());
  CHECK(got->neighbors[0].label == 1);
  CHECK(got->neighbors[0].distance == Approx(0.0).margin(1e-4));
  // The source lost label 1 (deleted since): the index answers from its codes, no crash.
  source.forget(1);
  auto again = idx->search(r);
  REQUIRE(again.ok());
  REQUIRE(!again->neighbors.empty());
  CHECK(again->neighbors[0].label == 1);
  CHECK(std::abs(again->neighbors[0].distance) < 0.05);
}

TEST_CASE("a snapshot of a source-backed index holds no floats and loads only with a source",
          "[index][float_source][snapshot]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::size_t dim = 32, n = 500;
  const auto data = clustered_data(rng, n, dim);
  MapSource source(dim);
  const IndexParams p = int8_params(dim, Metric::kL2);
  auto kept = HnswIndex::create(p).value();
  auto sourced = HnswIndex::create(p, {}, &source).value();
  for (std::size_t i = 0; i < n; ++i) {
    source.put(i + 1, data.data() + i * dim);
    REQUIRE(kept->add(i + 1, std::span<const float>(data.data() + i * dim, dim)).ok());
    REQUIRE(sourced->add(i + 1, std::span<const float>(data.data() + i * dim, dim)).ok());
  }
  const auto dir = temp_dir("float_source_snapshot");
  const std::string with_floats = (dir / "kept.hnsw").string();
  const std::string without = (dir / "sourced.hnsw").string();
  REQUIRE(kept->save_snapshot(with_floats, 7).ok());
  REQUIRE(sourced->save_snapshot(without, 7).ok());
  // The floats are n x dim x 4 bytes of the kept one's file.
  CHECK(std::filesystem::file_size(with_floats) - std::filesystem::file_size(without) == n * dim * sizeof(float));

  auto no_source = HnswIndex::load_snapshot(without, p);
  REQUIRE(!no_source.ok());
  CHECK(no_source.status().detail() == Detail::kParameterMismatch);
  CHECK(no_source.status().message().find("float vectors") != std::string::npos);
  auto wrong_way = HnswIndex::load_snapshot(with_floats, p, {}, &source);
  REQUIRE(!wrong_way.ok());
  CHECK(wrong_way.status().detail() == Detail::kParameterMismatch);

  auto loaded = HnswIndex::load_snapshot(without, p, {}, &source);
  REQUIRE(loaded.ok());
  CHECK(loaded->covered_position == 7);
  for (int qi = 0; qi < 10; ++qi) {
    const auto q = clustered_data(rng, 1, dim);
    SearchRequest r;
    r.query = q;
    r.k = 10;
    r.ef = 48;
    same_results(sourced->search(r), loaded->index->search(r));
  }
}

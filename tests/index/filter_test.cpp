// Proves the filtered-search planner's guarantees on seeded data: at every selectivity (a single
// match up to everything), with a predicate alone, with the caller's matching label set, or with
// a selectivity hint, a search returns exactly min(k, matches) results, every one of them
// matching, with high recall against an exact filtered scan; selective filters take the exact
// path and broad ones the graph; deleted vectors never come back.
#include <catch2/catch.hpp>

#include <algorithm>

#include "index/hnsw_index.hpp"
#include "index/planner.hpp"
#include "test_util.hpp"

using namespace shoal::index;
using shoal::Rng;

namespace {
struct Fixture {
  static constexpr std::size_t kN = 3000, kDim = 16;
  std::vector<float> base;
  std::unique_ptr<HnswIndex> idx;
  explicit Fixture(std::uint64_t seed) {
    Rng rng(seed);
    base = testing::clustered_data(rng, kN, kDim);
    IndexParams p;
    p.dimension = kDim;
    p.m = 12;
    p.ef_construction = 100;
    p.exact_below = 0;
    p.rebuild_deleted_share = 0.0;  // no background work: this file tests search alone
    auto r = HnswIndex::create(p);
    REQUIRE(r.ok());
    idx = std::move(r).value();
    std::vector<std::uint64_t> labels(kN);
    for (std::size_t i = 0; i < kN; ++i) labels[i] = i;
    REQUIRE(idx->add_batch(labels, base, 2).ok());
  }
  std::span<const float> row(std::size_t i) const {
    return std::span<const float>(base).subspan(i * kDim, kDim);
  }
};
}  // namespace

TEST_CASE("filtered search returns k matching results whenever at least k match",
          "[index][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Fixture fx(seed);
  Rng rng(seed ^ 0x5eed);
  const std::size_t k = 10;
  // Label l matches when l % modulus == 0: from one match (modulus > N) to all (modulus 1).
  for (std::size_t modulus : {1u, 2u, 10u, 100u, 300u, 1000u, 2999u, 5000u}) {
    INFO("modulus " << modulus);
    LabelPredicate pred = [modulus](std::uint64_t l) { return l % modulus == 0; };
    std::vector<std::uint64_t> matching;
    for (std::uint64_t l = 0; l < Fixture::kN; l += modulus) matching.push_back(l);
    const std::size_t want = std::min(k, matching.size());
    for (int mode = 0; mode < 3; ++mode) {
      INFO("mode " << mode);
      for (int t = 0; t < 5; ++t) {
        const auto q = fx.row(rng.uniform(Fixture::kN));
        SearchRequest req;
        req.query = q;
        req.k = k;
        req.ef = 20;
        req.filter = &pred;
        if (mode == 1) req.matching_labels = std::span<const std::uint64_t>(matching);
        if (mode == 2) {
          req.estimated_selectivity =
              static_cast<double>(matching.size()) / static_cast<double>(Fixture::kN);
        }
        auto r = fx.idx->search(req);
        REQUIRE(r.ok());
        REQUIRE(r->neighbors.size() == want);
        for (const auto& n : r->neighbors) CHECK(pred(n.label));

        // Recall against the exact filtered answer.
        std::vector<Neighbor> all;
        for (std::uint64_t l : matching) {
          all.push_back({l, best_kernels().l2sq(q.data(), fx.row(l).data(), Fixture::kDim)});
        }
        std::sort(all.begin(), all.end(), [](const Neighbor& a, const Neighbor& b) {
          return a.distance < b.distance || (a.distance == b.distance && a.label < b.label);
        });
        all.resize(want);
        CHECK(testing::recall_at(r->neighbors, all) >= 0.7);
      }
    }
  }
}

TEST_CASE("the planner scans selective matching sets exactly and searches the graph for broad ones",
          "[index]") {
  Fixture fx(11);
  std::vector<std::uint64_t> few, many;
  for (std::uint64_t l = 0; l < Fixture::kN; ++l) (l % 100 == 0 ? few : many).push_back(l);
  SearchRequest req;
  req.query = fx.row(5);
  req.k = 10;
  req.ef = 20;
  req.matching_labels = std::span<const std::uint64_t>(few);
  auto r = fx.idx->search(req);
  REQUIRE(r.ok());
  CHECK(r->plan == Plan::kExactMatching);
  CHECK(r->distance_count == few.size());
  // The exact path returns the exact answer.
  CHECK(r->neighbors.size() == 10);

  req.matching_labels = std::span<const std::uint64_t>(many);
  r = fx.idx->search(req);
  REQUIRE(r.ok());
  CHECK(r->plan == Plan::kGraph);
  CHECK(r->neighbors.size() == 10);
  for (const auto& n : r->neighbors) CHECK(n.label % 100 != 0);
}

TEST_CASE("removed vectors never appear, filtered or not", "[index]") {
  Fixture fx(12);
  for (std::uint64_t l = 0; l < Fixture::kN; l += 2) REQUIRE(fx.idx->remove(l).ok());
  LabelPredicate pred = [](std::uint64_t l) { return l % 3 == 0; };
  const LabelPredicate* filters[] = {nullptr, &pred};
  for (const LabelPredicate* f : filters) {
    SearchRequest req;
    req.query = fx.row(4);
    req.k = 20;
    req.filter = f;
    auto r = fx.idx->search(req);
    REQUIRE(r.ok());
    CHECK(r->neighbors.size() == 20);
    for (const auto& n : r->neighbors) {
      CHECK(n.label % 2 == 1);
      if (f) CHECK(n.label % 3 == 0);
    }
  }
}

// plan_filter, the caller's pre-planner (moved from Node::search): it samples every
// (end / 1024)-th present label, enumerates the matches below 5% and otherwise passes the
// sampled share on; absent labels are neither sampled nor matched.
TEST_CASE("plan_filter enumerates selective filters and estimates broad ones", "[index][planner]") {
  const std::uint64_t end = 4097;  // labels 1..4096; step 4
  const LabelPredicate present = [](std::uint64_t l) { return l % 2 == 1 || l % 4 == 0; };
  SECTION("selective: the matching labels, in order") {
    const LabelPredicate matches = [&](std::uint64_t l) { return present(l) && l % 100 == 0; };
    SearchRequest req;
    std::vector<std::uint64_t> matching;
    plan_filter(req, 1, end, present, matches, matching);
    CHECK(req.filter == &matches);
    REQUIRE(req.matching_labels.has_value());
    CHECK(req.matching_labels->data() == matching.data());
    CHECK(matching.size() == 40);
    CHECK(matching.front() == 100);
    CHECK(std::is_sorted(matching.begin(), matching.end()));
    CHECK(req.estimated_selectivity == 0.0);
  }
  SECTION("broad: the sampled share of present labels") {
    // Sampled labels 1, 5, 9, ...: all present (odd); a match when l % 8 == 1: every other one.
    const LabelPredicate matches = [&](std::uint64_t l) { return present(l) && l % 8 == 1; };
    SearchRequest req;
    std::vector<std::uint64_t> matching;
    plan_filter(req, 1, end, present, matches, matching);
    CHECK(!req.matching_labels.has_value());
    CHECK(matching.empty());
    CHECK(req.estimated_selectivity == 0.5);
  }
  SECTION("nothing present in the sample: taken as broad") {
    const LabelPredicate none = [](std::uint64_t) { return false; };
    SearchRequest req;
    std::vector<std::uint64_t> matching;
    plan_filter(req, 1, end, none, none, matching);
    CHECK(!req.matching_labels.has_value());
    CHECK(req.estimated_selectivity == 1.0);
  }
}

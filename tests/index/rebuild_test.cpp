// Proves the background rebuild's contract deterministically, without timing: removing past the
// deleted-share threshold schedules exactly one job on the injected executor; until it runs,
// queries and writes work on the old graph; while the job is between build and swap (a test
// hook, no lock held), searches and writes proceed from the same thread, which would deadlock
// if the build held the index lock; writes made meanwhile are replayed into the new graph; after
// the swap no deleted vectors remain and answers are unchanged. Also checks the default
// (thread) executor and rebuild_now().
#include <catch2/catch.hpp>

#include <functional>

#include "index/hnsw_index.hpp"
#include "test_util.hpp"

using namespace shoal::index;
using shoal::Rng;

namespace {
constexpr std::size_t kDim = 8, kN = 1000;

IndexParams params() {
  IndexParams p;
  p.dimension = kDim;
  p.m = 8;
  p.ef_construction = 64;
  p.exact_below = 0;
  p.rebuild_deleted_share = 0.3;
  p.rebuild_min_elements = 100;
  return p;
}

std::vector<Neighbor> knn(const HnswIndex& idx, std::span<const float> q, std::size_t k = 5) {
  SearchRequest req;
  req.query = q;
  req.k = k;
  req.ef = 64;
  auto r = idx.search(req);
  REQUIRE(r.ok());
  return r->neighbors;
}
}  // namespace

TEST_CASE("the rebuild swaps in a compacted graph without blocking queries or losing writes",
          "[index]") {
  Rng rng(5);
  auto data = testing::clustered_data(rng, kN, kDim);
  std::vector<std::function<void()>> jobs;
  auto created = HnswIndex::create(params(), [&](std::function<void()> job) { jobs.push_back(std::move(job)); });
  REQUIRE(created.ok());
  auto idx = std::move(created).value();
  std::vector<std::uint64_t> labels(kN);
  for (std::size_t i = 0; i < kN; ++i) labels[i] = i;
  REQUIRE(idx->add_batch(labels, data).ok());
  auto row = [&](std::size_t i) { return std::span<const float>(data).subspan(i * kDim, kDim); };

  // Remove 30% (threshold not passed), then one more: exactly one job is scheduled.
  for (std::size_t i = 0; i < 300; ++i) REQUIRE(idx->remove(i).ok());
  CHECK(jobs.empty());
  REQUIRE(idx->remove(300).ok());
  REQUIRE(jobs.size() == 1);
  CHECK(idx->rebuild_pending());
  for (std::size_t i = 301; i < 400; ++i) REQUIRE(idx->remove(i).ok());
  CHECK(jobs.size() == 1);

  // Before the job runs: the old graph answers; writes are accepted.
  for (auto& n : knn(*idx, row(0))) CHECK(n.label >= 400);
  REQUIRE(idx->add(5000, row(10)).ok());

  // During the job, between build and swap: searches and writes from this very thread.
  bool hook_ran = false;
  idx->set_rebuild_hook_for_testing([&] {
    hook_ran = true;
    auto n = knn(*idx, row(500), 1);
    REQUIRE(n.size() == 1);
    CHECK(n[0].label == 500);
    REQUIRE(idx->add(6000, row(20)).ok());
    REQUIRE(idx->remove(501).ok());
    REQUIRE(idx->add(502, row(30)).ok());  // an update
  });
  const double share_before = idx->deleted_share();
  CHECK(share_before > 0.3);
  jobs[0]();
  CHECK(hook_ran);
  CHECK_FALSE(idx->rebuild_pending());

  auto stats = idx->rebuild_stats();
  CHECK(stats.started == 1);
  CHECK(stats.completed == 1);
  CHECK(stats.last_error.ok());
  CHECK(stats.replayed_writes >= 3);
  // Only the removal replayed from the journal is still marked in the new graph.
  CHECK(idx->deleted_share() == Approx(1.0 / 602.0));
  CHECK(idx->size() == kN - 400 + 2 - 1);  // removed 0..399 and 501; added 5000 and 6000
  CHECK(idx->contains(5000));
  CHECK(idx->contains(6000));
  CHECK_FALSE(idx->contains(501));
  CHECK_FALSE(idx->contains(200));
  CHECK(knn(*idx, row(20), 1)[0].label == 6000);
  CHECK(knn(*idx, row(30), 2)[0].distance == 0.0f);
  for (std::size_t i = 600; i < kN; i += 50) CHECK(knn(*idx, row(i), 1)[0].label == i);
}

TEST_CASE("rebuild_now compacts synchronously and the default executor joins cleanly", "[index]") {
  Rng rng(6);
  auto data = testing::clustered_data(rng, kN, kDim);
  std::vector<std::uint64_t> labels(kN);
  for (std::size_t i = 0; i < kN; ++i) labels[i] = i;
  {
    IndexParams p = params();
    p.rebuild_deleted_share = 0.0;
    auto idx = std::move(HnswIndex::create(p)).value();
    REQUIRE(idx->add_batch(labels, data).ok());
    for (std::size_t i = 0; i < kN; i += 3) REQUIRE(idx->remove(i).ok());
    REQUIRE(idx->rebuild_now().ok());
    CHECK(idx->deleted_share() == 0.0);
    CHECK(idx->size() == kN - (kN + 2) / 3);
  }
  {
    // Default executor: a thread owned by the index; the destructor joins it. Results are
    // correct whether or not the swap has happened yet, so nothing here depends on timing.
    auto idx = std::move(HnswIndex::create(params())).value();
    REQUIRE(idx->add_batch(labels, data).ok());
    for (std::size_t i = 0; i < 500; ++i) REQUIRE(idx->remove(i).ok());
    for (std::size_t i = 500; i < kN; i += 97) {
      auto n = knn(*idx, std::span<const float>(data).subspan(i * kDim, kDim), 1);
      CHECK(n[0].label == i);
    }
  }
}

// Proves the causal context is a correct, canonical set of dots: against a plain std::set model
// on random adds and merges, contains/includes/max_counter agree, merge is a commutative,
// associative, idempotent union, and the representation stays compacted (equal sets compare
// equal; a filled gap leaves no cloud).
#include <catch2/catch.hpp>
#include <set>

#include "common/random.hpp"
#include "crdt/causal_context.hpp"

using namespace shoal::crdt;
using shoal::Rng;

namespace {

struct Pair {
  CausalContext ctx;
  std::set<Dot> model;
};

Pair random_context(Rng& rng) {
  Pair p;
  const auto n = rng.uniform(30);
  for (std::uint64_t i = 0; i < n; ++i) {
    Dot d{replica_for_testing(rng.uniform(3)), 1 + rng.uniform(12)};
    p.ctx.add(d);
    p.model.insert(d);
  }
  return p;
}

bool canonical(const CausalContext& c) {
  for (const auto& [r, row] : c.rows()) {
    if (row.contiguous == 0 && row.cloud.empty()) return false;
    std::uint64_t prev = row.contiguous + 1;
    for (auto x : row.cloud) {
      if (x <= prev) return false;
      prev = x;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("causal context behaves as a set of dots and stays canonical", "[crdt][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  for (int c = 0; c < 10'000; ++c) {
    Pair a = random_context(rng), b = random_context(rng), x = random_context(rng);
    REQUIRE(canonical(a.ctx));
    for (std::uint64_t r = 0; r < 3; ++r) {
      for (std::uint64_t k = 1; k <= 14; ++k) {
        const Dot d{replica_for_testing(r), k};
        REQUIRE(a.ctx.contains(d) == (a.model.count(d) == 1));
      }
      std::uint64_t mx = 0;
      for (const Dot& d : a.model) {
        if (d.replica == replica_for_testing(r)) mx = std::max(mx, d.counter);
      }
      REQUIRE(a.ctx.max_counter(replica_for_testing(r)) == mx);
      REQUIRE(a.ctx.next_dot(replica_for_testing(r)).counter == mx + 1);
    }
    CausalContext ab = a.ctx;
    ab.merge(b.ctx);
    CausalContext ba = b.ctx;
    ba.merge(a.ctx);
    REQUIRE(ab == ba);
    REQUIRE(canonical(ab));
    Pair rebuilt;
    for (const Dot& d : a.model) rebuilt.ctx.add(d);
    for (const Dot& d : b.model) rebuilt.ctx.add(d);
    REQUIRE(ab == rebuilt.ctx);
    CausalContext ab_x = ab, b_x = b.ctx;
    ab_x.merge(x.ctx);
    b_x.merge(x.ctx);
    CausalContext a_bx = a.ctx;
    a_bx.merge(b_x);
    REQUIRE(ab_x == a_bx);
    CausalContext aa = a.ctx;
    aa.merge(a.ctx);
    REQUIRE(aa == a.ctx);
    REQUIRE(ab.includes(a.ctx));
    REQUIRE(ab.includes(b.ctx));
    const bool model_includes =
        std::includes(a.model.begin(), a.model.end(), b.model.begin(), b.model.end());
    REQUIRE(a.ctx.includes(b.ctx) == model_includes);
  }
}

TEST_CASE("out-of-order dots compact into the version vector as gaps fill", "[crdt]") {
  CausalContext c;
  const ReplicaId r = replica_for_testing(9);
  for (std::uint64_t k : {5u, 3u, 2u, 4u}) c.add(Dot{r, k});
  CHECK(c.cloud_size() == 4);
  CHECK_FALSE(c.contains(Dot{r, 1}));
  c.add(Dot{r, 1});
  CHECK(c.cloud_size() == 0);
  CHECK(c.rows().at(r).contiguous == 5);
  CHECK(c.contains(Dot{r, 5}));
  CHECK_FALSE(c.contains(Dot{r, 6}));
  CHECK_FALSE(c.contains(Dot{r, 0}));
}

TEST_CASE("drop_above removes exactly the dots of one replica above a counter and stays canonical", "[crdt][property]") {
  // The node strips a peer's claims on its own dots beyond its counter with drop_above: against
  // the std::set model, the result is the set minus those dots, the count is their number, other
  // replicas are untouched, and the form stays canonical (an emptied row disappears).
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  for (int c = 0; c < 5'000; ++c) {
    Pair a = random_context(rng);
    const ReplicaId r = replica_for_testing(rng.uniform(3));
    const std::uint64_t counter = rng.uniform(14);
    Pair expect;
    std::uint64_t removed = 0;
    for (const Dot& d : a.model) {
      if (d.replica == r && d.counter > counter) {
        ++removed;
      } else {
        expect.ctx.add(d);
      }
    }
    REQUIRE(a.ctx.drop_above(r, counter) == removed);
    REQUIRE(a.ctx == expect.ctx);
    REQUIRE(canonical(a.ctx));
  }
}

TEST_CASE("erase removes exactly one dot, in the prefix or the cloud, and stays canonical", "[crdt][property]") {
  // The sink feed takes the dots of records it leaves out of an upload off its context with
  // erase: against the std::set model, the result is the set minus that dot (absent: unchanged),
  // built the canonical way (equal to adding the remaining dots), and canonical.
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  for (int c = 0; c < 5'000; ++c) {
    Pair a = random_context(rng);
    const Dot gone{replica_for_testing(rng.uniform(3)), 1 + rng.uniform(13)};
    CausalContext expect;
    for (const Dot& d : a.model) {
      if (!(d == gone)) expect.add(d);
    }
    a.ctx.erase(gone);
    REQUIRE_FALSE(a.ctx.contains(gone));
    REQUIRE(a.ctx == expect);
    REQUIRE(canonical(a.ctx));
  }
}

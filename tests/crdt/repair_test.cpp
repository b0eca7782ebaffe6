// Proves the repair path: digest trees are updated incrementally and always equal a
// recomputation; equal states have equal trees and the differing buckets found by descending
// the trees are exactly the buckets whose records differ; after random divergence, a join
// restricted to the differing buckets followed by the final context merge gives exactly the full
// join, in both directions; an interrupted session (no context merge) leaves a valid state that
// later converges; and merging the sender's context too early (the repair trap of docs/crdt.md)
// does lose a record, so the rule is necessary.
#include <set>

#include "crdt_test_util.hpp"

using namespace shoal::crdt;
using namespace shoal::crdt::testing;
using shoal::Rng;

namespace {

// Diverges copies of a common base by random local work and partial exchanges.
std::vector<ORMap> diverged(Rng& rng, DigestConfig cfg, std::size_t replicas) {
  RandomHistory h(rng, replicas, 50 + static_cast<std::size_t>(rng.uniform(400)), cfg);
  const auto steps = 200 + rng.uniform(600);
  for (std::uint64_t i = 0; i < steps; ++i) h.step();
  return h.states();
}

std::set<std::uint32_t> buckets_that_differ(const ORMap& x, const ORMap& y) {
  std::set<std::uint32_t> out;
  for (const auto& [id, e] : x.records()) {
    const Entries* other = y.find(id);
    std::set<Dot> a, b;
    for (const Entry& en : e) a.insert(en.dot);
    if (other)
      for (const Entry& en : *other) b.insert(en.dot);
    if (a != b) out.insert(x.digests().bucket_of(id));
  }
  for (const auto& [id, e] : y.records()) {
    if (x.find(id) == nullptr) out.insert(y.digests().bucket_of(id));
  }
  return out;
}

}  // namespace

TEST_CASE("digest trees track every change and locate exactly the differing buckets",
          "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    for (DigestConfig cfg : {DigestConfig{4, 4}, DigestConfig{7, 3}, DigestConfig{12, 4}}) {
      INFO("leaf_bits " << cfg.leaf_bits << " fanout_bits " << cfg.fanout_bits);
      auto states = diverged(rng, cfg, 2);
      for (const ORMap& s : states) REQUIRE(s.check_invariants_for_testing());
      const auto found = states[0].digests().differing_buckets(states[1].digests());
      const auto truth = buckets_that_differ(states[0], states[1]);
      REQUIRE(std::set<std::uint32_t>(found.begin(), found.end()) == truth);
      REQUIRE(std::is_sorted(found.begin(), found.end()));
      ORMap joined = states[0];
      joined.join_state(states[1]);
      ORMap other = states[1];
      other.join_state(states[0]);
      REQUIRE(joined.digests() == other.digests());
      REQUIRE(joined.digests().differing_buckets(other.digests()).empty());
    }
  }
}

TEST_CASE("bucket repair after random divergence equals the full join", "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    for (int round = 0; round < 20; ++round) {
      INFO("round " << round);
      const DigestConfig cfg{static_cast<unsigned>(3 + rng.uniform(8)), 2};
      auto states = diverged(rng, cfg, 3);
      ORMap x = states[0], y = states[1];
      ORMap full_x = x, full_y = y;
      full_x.join_state(y);
      full_y.join_state(x);

      // One session in each direction, both from the same pair of snapshots.
      const auto diff = x.digests().differing_buckets(y.digests());
      const Delta y_slice = y.slice_buckets(diff);
      const Delta x_slice = x.slice_buckets(diff);
      // The slice may also travel in several batches; split it at random.
      std::vector<std::uint32_t> first, second;
      for (std::uint32_t b : diff) (rng.bernoulli(0.5) ? first : second).push_back(b);
      x.join_repair(y.slice_buckets(first), first);
      REQUIRE(x.check_invariants_for_testing());
      x.join_repair(y.slice_buckets(second), second);
      x.merge_context(y_slice.context);
      y.join_repair(x_slice, diff);
      y.merge_context(x_slice.context);

      REQUIRE(x.check_invariants_for_testing());
      REQUIRE(x == full_x);
      REQUIRE(y == full_y);
      REQUIRE(x == y);
      REQUIRE(x.digests() == y.digests());
    }
  }
}

TEST_CASE("an interrupted repair session merges no context and stays correct", "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    auto states = diverged(rng, DigestConfig{6, 3}, 3);
    ORMap x = states[0];
    const ORMap& y = states[1];
    const auto diff = x.digests().differing_buckets(y.digests());
    std::vector<std::uint32_t> part(diff.begin(),
                                    diff.begin() + static_cast<std::ptrdiff_t>(diff.size() / 2));
    x.join_repair(y.slice_buckets(part), part);  // then the link dies: no merge_context
    REQUIRE(x.check_invariants_for_testing());
    // A third replica syncing with the half-repaired x loses nothing y or x had.
    ORMap z = states[2];
    z.join_state(x);
    z.join_state(y);
    ORMap expected = states[0];
    expected.join_state(states[1]);
    expected.join_state(states[2]);
    REQUIRE(z == expected);
  }
}

TEST_CASE("merging the sender's context before all buckets are reconciled loses records",
          "[crdt]") {
  // The repair trap of docs/crdt.md, made concrete: Y has two new records in different buckets.
  const ReplicaId idy = replica_for_testing(2);
  const DigestConfig cfg{8, 4};
  ORMap x(cfg), y(cfg);
  std::string r1, r2;
  for (std::uint64_t i = 0; r2.empty(); ++i) {
    const std::string id = id_from(i);
    if (r1.empty()) {
      r1 = id;
    } else if (y.digests().bucket_of(id) != y.digests().bucket_of(r1)) {
      r2 = id;
    }
  }
  REQUIRE(y.upsert(idy, r1, Bytes{1}, Hlc::from_raw(1)).ok());
  REQUIRE(y.upsert(idy, r2, Bytes{2}, Hlc::from_raw(2)).ok());
  ORMap z = y;  // a third replica that already has both records

  const std::vector<std::uint32_t> only_r1{y.digests().bucket_of(r1)};
  ORMap wrong = x;
  wrong.join_repair(y.slice_buckets(only_r1), only_r1);
  wrong.merge_context(y.context());  // too early: r2's bucket was never exchanged
  ORMap right = x;
  right.join_repair(y.slice_buckets(only_r1), only_r1);  // interrupted here: no merge

  ORMap z_wrong = z;
  z_wrong.join_state(wrong);
  CHECK(z_wrong.find(r2) == nullptr);  // lost: "wrong" claims to have seen and removed it
  ORMap z_right = z;
  z_right.join_state(right);
  CHECK(z_right.find(r2) != nullptr);
  CHECK(z_right == z);
}

// Proves that deletes never come back and cost nothing lasting: a replica that was away while
// any number of records were deleted rejoins by deltas (in random order, in both directions), by
// a full state exchange, or by bucket repair, and no deleted record reappears on any replica
// (only records it upserted concurrently survive, as the semantics say). And the causal context
// of the deleting replica, and of a replica receiving the deletes out of order, does not grow
// with the number of deletes: it stays one compacted row per replica.
#include <set>

#include "crdt/codec.hpp"
#include "crdt_test_util.hpp"

using namespace shoal::crdt;
using namespace shoal::crdt::testing;
using shoal::Rng;

namespace {

enum class Rejoin { kDeltas, kFullState, kRepair };

void repair_between(ORMap& x, ORMap& y) {
  const auto diff = x.digests().differing_buckets(y.digests());
  const Delta from_y = y.slice_buckets(diff);
  const Delta from_x = x.slice_buckets(diff);
  x.join_repair(from_y, diff);
  y.join_repair(from_x, diff);
  x.merge_context(from_y.context);
  y.merge_context(from_x.context);
}

void run(Rng& rng, Rejoin how) {
  const ReplicaId ida = replica_for_testing(1), idb = replica_for_testing(2),
                  idc = replica_for_testing(3);
  const DigestConfig cfg{8, 4};
  ORMap a(cfg), b(cfg), c(cfg);
  const int n = 300;
  for (int i = 0; i < n; ++i) {
    auto d = a.upsert(ida, id_from(static_cast<std::uint64_t>(i)), random_payload(rng),
                      Hlc::from_raw(static_cast<std::uint64_t>(i + 1)));
    REQUIRE(d.ok());
  }
  b.join_state(a);
  c.join_state(a);

  // C goes away. A and B delete most records (B after observing A's state); C concurrently
  // rewrites a few, some of which A or B delete.
  std::vector<Delta> from_ab, from_c;
  std::set<std::string> deleted, rewritten_by_c;
  for (int i = 0; i < n; ++i) {
    const std::string id = id_from(static_cast<std::uint64_t>(i));
    if (rng.bernoulli(0.1)) {
      auto d = c.upsert(idc, id, Bytes{7}, Hlc::from_raw(100'000));
      REQUIRE(d.ok());
      from_c.push_back(*d);
      rewritten_by_c.insert(id);
    }
    if (rng.bernoulli(0.8)) {
      ORMap& deleter = rng.bernoulli(0.5) ? a : b;
      auto d = deleter.remove(id);
      REQUIRE(d.ok());
      from_ab.push_back(*d);
      (&deleter == &a ? b : a).join(*d);
      deleted.insert(id);
    }
  }
  // Some new writes by A and B while C is away.
  for (int i = n; i < n + 20; ++i) {
    auto d = b.upsert(idb, id_from(static_cast<std::uint64_t>(i)), Bytes{1}, Hlc::from_raw(5));
    REQUIRE(d.ok());
    from_ab.push_back(*d);
    a.join(*d);
  }
  REQUIRE(a == b);

  switch (how) {
    case Rejoin::kDeltas: {
      rng.shuffle(std::span<Delta>(from_ab));
      // C sends the deltas it buffered while away (twice: a resend after a lost ack).
      for (const Delta& d : from_c) {
        a.join(d);
        b.join(d);
      }
      for (const Delta& d : from_ab) c.join(d);
      for (const Delta& d : from_c) b.join(d);
      break;
    }
    case Rejoin::kFullState: {
      ORMap stale_c = c;
      a.join_state(stale_c);
      c.join_state(a);
      b.join_state(stale_c);
      break;
    }
    case Rejoin::kRepair: {
      repair_between(c, a);
      repair_between(b, c);
      break;
    }
  }

  for (const ORMap* m : {&a, &b, &c}) {
    REQUIRE(m->check_invariants_for_testing());
    REQUIRE(*m == a);
    for (const std::string& id : deleted) {
      INFO("record " << id);
      if (rewritten_by_c.count(id)) {
        // Concurrent upsert beats delete, and only C's entry remains.
        REQUIRE(m->find(id) != nullptr);
        REQUIRE(m->find(id)->size() == 1);
        REQUIRE(m->winner(id)->dot.replica == idc);
      } else {
        REQUIRE(m->find(id) == nullptr);
      }
    }
  }
}

std::size_t encoded_size(const CausalContext& ctx) {
  Bytes out;
  encode_context(ctx, out);
  return out.size();
}

}  // namespace

TEST_CASE("a replica that missed deletes rejoins without resurrecting them", "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    run(rng, Rejoin::kDeltas);
    run(rng, Rejoin::kFullState);
    run(rng, Rejoin::kRepair);
  }
}

TEST_CASE("the causal context does not grow with the number of deletes", "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    const ReplicaId ida = replica_for_testing(1);
    ORMap a(kSmallDigests), b(kSmallDigests);
    std::vector<Delta> deltas;
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
      auto d = a.upsert(ida, id_from(static_cast<std::uint64_t>(i)), Bytes{1}, Hlc::from_raw(1));
      REQUIRE(d.ok());
      deltas.push_back(*d);
    }
    const std::size_t size_before = encoded_size(a.context());
    for (int i = 0; i < n; ++i) {
      auto d = a.remove(id_from(static_cast<std::uint64_t>(i)));
      REQUIRE(d.ok());
      deltas.push_back(*d);
    }
    REQUIRE(a.size() == 0);
    CHECK(a.context().replica_count() == 1);
    CHECK(a.context().cloud_size() == 0);
    CHECK(encoded_size(a.context()) == size_before);

    // B receives all upserts and deletes in random order: its cloud grows while gaps are open
    // and compacts back to one row when they fill.
    rng.shuffle(std::span<Delta>(deltas));
    std::size_t max_cloud = 0;
    for (const Delta& d : deltas) {
      b.join(d);
      max_cloud = std::max(max_cloud, b.context().cloud_size());
    }
    INFO("largest transient cloud " << max_cloud);
    CHECK(b == a);
    CHECK(b.context().cloud_size() == 0);
    CHECK(encoded_size(b.context()) == size_before);
  }
}

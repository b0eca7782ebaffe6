// Proves the lattice laws of the observed-remove map on random reachable states (states built
// by random upserts, removes and partial exchanges among 2-4 replicas): join is commutative,
// associative and idempotent; joining a delta equals joining the state it came from; joining a
// batch of joined deltas equals joining them one by one. At least 10,000 cases per law per seed
// of the run; each case checks the structural invariants of its results too.
#include "crdt_test_util.hpp"

using namespace shoal::crdt;
using namespace shoal::crdt::testing;
using shoal::Rng;

namespace {

constexpr int kCases = 10'000;

ORMap joined(const ORMap& a, const ORMap& b) {
  ORMap out = a;
  out.join_state(b);
  return out;
}

// A history of 2-4 replicas and 0-14 steps.
RandomHistory make_history(Rng& rng) {
  RandomHistory h(rng, 2 + static_cast<std::size_t>(rng.uniform(3)),
                  1 + static_cast<std::size_t>(rng.uniform(5)));
  const auto steps = rng.uniform(15);
  for (std::uint64_t i = 0; i < steps; ++i) h.step();
  return h;
}

}  // namespace

TEST_CASE("join is commutative, associative and idempotent on random states", "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    const int cases = kCases;
    for (int c = 0; c < cases; ++c) {
      INFO("case " << c);
      RandomHistory h = make_history(rng);
      const ORMap a = h.random_state();
      h.step();
      const ORMap b = h.random_state();
      h.step();
      const ORMap x = h.random_state();

      const ORMap ab = joined(a, b);
      REQUIRE(ab.check_invariants_for_testing());
      REQUIRE(ab == joined(b, a));
      REQUIRE(ab.digests() == joined(b, a).digests());
      REQUIRE(joined(ab, x) == joined(a, joined(b, x)));
      REQUIRE(joined(a, a) == a);
      REQUIRE(joined(ab, a) == ab);  // absorption: a state joins idempotently into any later one
    }
  }
}

TEST_CASE("joining a delta equals joining the state it came from", "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    const int cases = kCases;
    for (int c = 0; c < cases; ++c) {
      INFO("case " << c);
      RandomHistory h = make_history(rng);
      auto& states = h.states();
      const std::size_t r = static_cast<std::size_t>(rng.uniform(states.size()));
      const ORMap before = states[r];
      const ORMap x = h.random_state();
      const std::string id = id_from(rng.uniform(5));
      auto delta = rng.bernoulli(0.6)
                       ? states[r].upsert(h.selves()[r], id, random_payload(rng), Hlc::from_raw(9))
                       : states[r].remove(id);
      REQUIRE(delta.ok());
      const ORMap& after = states[r];

      // The mutator is the state joined with its delta.
      ORMap rebuilt = before;
      rebuilt.join(*delta);
      REQUIRE(rebuilt == after);

      // A third state joining the delta (after the origin's old state) equals joining the new
      // origin state.
      ORMap via_delta = joined(x, before);
      via_delta.join(*delta);
      REQUIRE(via_delta.check_invariants_for_testing());
      REQUIRE(via_delta == joined(x, after));

      // Delta join equals state join of the delta seen as a state.
      ORMap as_state(kSmallDigests);
      as_state.join(*delta);
      ORMap x1 = x, x2 = x;
      x1.join(*delta);
      x2.join_state(as_state);
      REQUIRE(x1 == x2);

      // A batch (join of deltas) applies like its parts, in any order, duplicates included.
      h.step();
      const Delta d2 = h.step();
      Delta batch = *delta;
      batch.join(d2);
      ORMap one_by_one = x, reversed = x, batched = x;
      one_by_one.join(*delta);
      one_by_one.join(d2);
      reversed.join(d2);
      reversed.join(*delta);
      reversed.join(d2);
      batched.join(batch);
      REQUIRE(one_by_one == batched);
      REQUIRE(reversed == batched);
    }
  }
}

// Proves the per-record join on hand-written cases that name each branch of the conflict rule
// (kept on both sides, kept because unseen, removed because seen, adopted, refused because
// already removed) and the winner order (clock, then replica id, then counter).
#include "crdt/entries.hpp"

#include <catch2/catch.hpp>

using namespace shoal::crdt;

namespace {
const ReplicaId kA = replica_for_testing(1);
const ReplicaId kB = replica_for_testing(2);
Entry entry(const ReplicaId& r, std::uint64_t counter, std::uint64_t clock) {
  return Entry{Dot{r, counter}, Hlc::from_raw(clock), Bytes{static_cast<std::uint8_t>(counter)}};
}
CausalContext ctx_of(std::initializer_list<Dot> dots) {
  CausalContext c;
  for (const Dot& d : dots) c.add(d);
  return c;
}
}  // namespace

TEST_CASE("per-record join applies the observed-remove rule branch by branch", "[crdt]") {
  const Entry a1 = entry(kA, 1, 10), a2 = entry(kA, 2, 20), b1 = entry(kB, 1, 15);

  SECTION("an entry on both sides is kept") {
    Entries local{a1};
    CHECK_FALSE(join_entries(local, ctx_of({a1.dot}), Entries{a1}, ctx_of({a1.dot})));
    CHECK(local == Entries{a1});
  }
  SECTION("a local entry the remote never saw is kept; a remote one we never saw is adopted") {
    Entries local{a1};
    CHECK(join_entries(local, ctx_of({a1.dot}), Entries{b1}, ctx_of({b1.dot})));
    CHECK(local == Entries{a1, b1});
  }
  SECTION("a local entry the remote saw and dropped is removed (overwrite or delete)") {
    Entries local{a1};
    CHECK(join_entries(local, ctx_of({a1.dot}), Entries{a2}, ctx_of({a1.dot, a2.dot})));
    CHECK(local == Entries{a2});
    Entries deleted{a1};
    CHECK(join_entries(deleted, ctx_of({a1.dot}), Entries{}, ctx_of({a1.dot})));
    CHECK(deleted.empty());
  }
  SECTION("a remote entry we already removed is not brought back") {
    Entries local{};
    CHECK_FALSE(join_entries(local, ctx_of({a1.dot}), Entries{a1}, ctx_of({a1.dot})));
    CHECK(local.empty());
  }
  SECTION("winner: highest clock, then replica id") {
    const Entries sib{a2, b1};
    CHECK(winner(sib)->dot == a2.dot);
    const Entries tie{entry(kA, 1, 7), entry(kB, 1, 7)};
    CHECK(winner(tie)->dot.replica == kB);
    CHECK(winner(Entries{}) == nullptr);
  }
}

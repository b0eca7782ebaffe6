// Proves the oracle models acknowledged operations as the OR-map does, and that each checker
// fires on the fault it names (lost, phantom, resurrected, dot issued twice, context mismatch)
// and stays silent on a correct replica. Replicas here are hand-built ORMaps.
#include <catch2/catch.hpp>

#include "sim/oracle.hpp"

using namespace shoal;
using namespace shoal::sim;

namespace {

crdt::Hlc clock_at(std::uint64_t ms) { return crdt::Hlc::from_parts(ms, 0); }

bool has_kind(const std::vector<Violation>& vs, const std::string& kind) {
  for (const auto& v : vs) {
    if (v.kind == kind) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("the oracle equals a replica that performed the same acknowledged operations", "[sim]") {
  const auto a = crdt::replica_for_testing(1);
  crdt::ORMap replica;
  Oracle oracle;
  std::vector<Violation> vs;
  for (int i = 0; i < 20; ++i) {
    const std::string id = "r" + std::to_string(i % 5);
    const crdt::Entries before = entries_of(replica, id);
    if (i % 4 == 3) {
      REQUIRE(replica.remove(id).ok());
      oracle.remove(id, before);
    } else {
      REQUIRE(replica.upsert(a, id, crdt::Bytes{static_cast<std::uint8_t>(i)}, clock_at(i + 1)).ok());
      oracle.upsert(a, id, before, entries_of(replica, id), vs);
    }
  }
  CHECK(vs.empty());
  CHECK(oracle.model() == replica);
  oracle.check_replica("p00", replica, vs);
  CHECK(vs.empty());
}

TEST_CASE("the checkers name lost, phantom, resurrected and reused dots", "[sim]") {
  const auto a = crdt::replica_for_testing(1);
  const auto b = crdt::replica_for_testing(2);
  crdt::ORMap ra;
  Oracle oracle;
  std::vector<Violation> vs;
  REQUIRE(ra.upsert(a, "x", crdt::Bytes{1}, clock_at(1)).ok());
  oracle.upsert(a, "x", {}, entries_of(ra, "x"), vs);
  const crdt::Entries x_before = entries_of(ra, "x");
  REQUIRE(ra.remove("x").ok());
  oracle.remove("x", x_before);
  REQUIRE(ra.upsert(a, "y", crdt::Bytes{2}, clock_at(2)).ok());
  oracle.upsert(a, "y", {}, entries_of(ra, "y"), vs);
  REQUIRE(vs.empty());

  SECTION("lost: an acknowledged entry is missing") {
    crdt::ORMap r = ra;
    REQUIRE(r.remove("y").ok());
    oracle.check_replica("p01", r, vs);
    CHECK(has_kind(vs, "lost"));
  }
  SECTION("phantom: an entry no acknowledged operation issued") {
    crdt::ORMap r = ra;
    REQUIRE(r.upsert(b, "z", crdt::Bytes{3}, clock_at(3)).ok());
    oracle.check_replica("p01", r, vs);
    CHECK(has_kind(vs, "phantom"));
  }
  SECTION("resurrected: a removed entry is back") {
    // x's removed entry present again, beside y, under the oracle's context.
    crdt::ORMap res;
    REQUIRE(res.upsert(a, "x", crdt::Bytes{1}, clock_at(1)).ok());
    crdt::Delta ydelta;
    ydelta.records["y"] = entries_of(ra, "y");
    ydelta.context.add(entries_of(ra, "y")[0].dot);
    res.join(ydelta);
    REQUIRE(res.context() == oracle.model().context());
    oracle.check_replica("p01", res, vs);
    CHECK(has_kind(vs, "resurrected"));
    CHECK_FALSE(has_kind(vs, "lost"));
  }
  SECTION("dot issued twice: the same dot with another payload") {
    crdt::Entries fake = entries_of(ra, "y");
    fake[0].payload = crdt::Bytes{9, 9};
    oracle.upsert(a, "w", {}, fake, vs);
    CHECK(has_kind(vs, "dot_reused"));
  }
}

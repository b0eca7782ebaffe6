// Proves the seed runner is deterministic (the same scenario gives the same trace hash, other
// seeds give other hashes) and that a short run of faulty seeds on the current node finds no
// violation and converges. Runs whole simulations (shoal_sim) with fixed seeds.
#include <algorithm>

#include <catch2/catch.hpp>

#include "sim/simulation.hpp"

using namespace shoal;
using namespace shoal::sim;

namespace {

std::string describe(const SeedResult& r) {
  std::string s = "seed " + std::to_string(r.seed) + ": " + r.scenario;
  for (const auto& v : r.violations) s += "\n  " + v.kind + ": " + v.detail;
  return s;
}

}  // namespace

TEST_CASE("the same seed gives the same trace hash; different seeds differ", "[sim]") {
  for (std::uint64_t seed : {7u, 11u}) {
    Scenario sc;
    sc.seed = seed;
    const SeedResult a = run_seed(sc);
    const SeedResult b = run_seed(sc);
    INFO(describe(a));
    CHECK(a.trace_hash == b.trace_hash);
    CHECK(a.stats.events == b.stats.events);
    CHECK(a.converge_ms == b.converge_ms);
    sc.seed = seed + 1;
    CHECK(run_seed(sc).trace_hash != a.trace_hash);
  }
}

TEST_CASE("a reproduce command names every option that shaped the scenario", "[sim]") {
  Scenario sc;
  sc.seed = 42;
  sc.peers = 5;
  sc.repair = false;
  sc.mutation = Mutation::kLazyCounter;
  CHECK(reproduce_command(sc) == "shoal-sim --seed 42 --seeds 1 --peers 5 --no-repair --mutation lazy-counter");
  CHECK(parse_mutation("early-context-merge").value() == Mutation::kEarlyContextMerge);
  CHECK_FALSE(parse_mutation("bogus").ok());
  sc.sink = true;
  sc.mutation = Mutation::kSinkAckUnapplied;
  CHECK(reproduce_command(sc) == "shoal-sim --seed 42 --seeds 1 --peers 5 --no-repair --mutation sink-ack-unapplied --sink");
  CHECK(parse_mutation("cold-wrong-metric").value() == Mutation::kColdWrongMetric);
}

TEST_CASE("faulty seeds without mutations converge with no violation", "[sim]") {
  // Seeds 1..25; seeds that expose open node bugs live in sim/regressions.txt instead.
  std::size_t converged = 0;
  for (std::uint64_t seed = 1; seed <= 25; ++seed) {
    Scenario sc;
    sc.seed = seed;
    const SeedResult r = run_seed(sc);
    INFO(describe(r) << "\nreproduce: " << reproduce_command(sc));
    CHECK(r.violations.empty());
    converged += r.converged ? 1 : 0;
    CHECK(r.stats.acked_upserts > 0);
  }
  CHECK(converged == 25);
}

TEST_CASE("shoal-sim --sink: through outages of up to 7 days, writes stop at the quota, the backlog drains, the sink equals the oracle", "[sim]") {
  // Seeds 1..20 with the sink: no violation (quota, sink_state, cold_search, the eviction
  // checkers evicted_unacked, stub_digest, refill, refill_mismatch, cold_merge, cold_deleted, and
  // the mesh's own checkers), and among them some writes were refused at the quota, some outage
  // lasted more than a simulated day, the sink holds records after the drain, nodes evicted
  // records to stubs and held stubs at the end, gets refilled stubs from the sink and answered
  // kColdUnavailable while it was out, and searches with the cold tier got hits from the sink.
  // Device replacements (D67): some device lost its data directory, every replaced device
  // completed its bootstrap from the sink (bootstrap_lost, bootstrap_resurrected and reissued_dot
  // judge it), and bootstraps took several pages each.
  std::uint64_t refusals = 0, records = 0, evicted = 0, stubs = 0, refills = 0, unavailable = 0, cold_hits = 0;
  std::uint64_t replaced = 0, bootstraps = 0, pages = 0;
  std::int64_t longest = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    Scenario sc;
    sc.seed = seed;
    sc.sink = true;
    const SeedResult r = run_seed(sc);
    INFO(describe(r) << "\nreproduce: " << reproduce_command(sc));
    CHECK(r.violations.empty());
    CHECK(r.converged);
    refusals += r.stats.quota_refusals;
    records += r.stats.sink_records;
    longest = std::max(longest, r.stats.sink_outage_ms);
    evicted += r.stats.evicted;
    stubs += r.stats.stubs_at_end;
    refills += r.stats.refills;
    unavailable += r.stats.cold_unavailable;
    cold_hits += r.stats.cold_hits;
    CHECK(r.stats.bootstraps == r.stats.replacements);
    replaced += r.stats.replacements;
    bootstraps += r.stats.bootstraps;
    pages += r.stats.boot_pages;
  }
  CHECK(replaced > 0);
  CHECK(pages > 2 * bootstraps);
  CHECK(refusals > 0);
  CHECK(records > 0);
  CHECK(longest > 24LL * 3600 * 1000);
  CHECK(evicted > 0);
  CHECK(stubs > 0);
  CHECK(refills > 0);
  CHECK(unavailable > 0);
  CHECK(cold_hits > 0);
}

// docs/sim.md, "Restores and clones": seed 40 draws an undetected clone (p01 put on a copy of
// p02's store, running under p02's replica id until the heal). With D48's fresh incarnation at
// the first write the two devices issue no dot twice and nothing acknowledged is lost; a node
// that keeps the incarnation it opened with reissues p02's dots, which dot_reused catches.
TEST_CASE("an undetected clone issues no dot twice and a stale incarnation under it is caught by dot_reused", "[sim]") {
  Scenario sc;
  sc.seed = 40;
  sc.hostile_own_context = true;
  const SeedResult r = run_seed(sc);
  INFO(describe(r));
  CHECK(r.stats.twins == 1);
  CHECK(r.violations.empty());
  CHECK(r.converged);
  sc.mutation = Mutation::kStaleIncarnation;
  const SeedResult m = run_seed(sc);
  CHECK(std::any_of(m.violations.begin(), m.violations.end(), [](const Violation& v) { return v.kind == "dot_reused"; }));
}

TEST_CASE("without faults every seed converges within seconds", "[sim]") {
  for (std::uint64_t seed = 1; seed <= 10; ++seed) {
    Scenario sc;
    sc.seed = seed;
    sc.faults = false;
    const SeedResult r = run_seed(sc);
    INFO(describe(r));
    CHECK(r.violations.empty());
    CHECK(r.converged);
    CHECK(r.converge_ms < 10'000);
  }
}

// Proves the checkers bite (issue 6): each test-only mutation of node::MutationsForTesting is
// caught, i.e. some seed among the first 100 reports at least one violation. trim-before-ack runs
// with repair disabled, because the digest path legitimately repairs what the delta path loses;
// early-context-merge needs repairs with concurrent divergence, which the default scenario's
// long offline periods (beyond a 64-entry delta buffer) provide.
#include <catch2/catch.hpp>

#include "sim/simulation.hpp"

using namespace shoal;
using namespace shoal::sim;

namespace {

// The first seed in [1, 100] with a violation, or 0.
std::uint64_t first_caught(Mutation m, bool repair) {
  for (std::uint64_t seed = 1; seed <= 100; ++seed) {
    Scenario sc;
    sc.seed = seed;
    sc.mutation = m;
    sc.repair = repair;
    // A mutation that breaks convergence is caught at the bound; a shorter bound keeps it cheap.
    sc.max_converge = Duration::seconds(60);
    const SeedResult r = run_seed(sc);
    if (!r.violations.empty()) {
      UNSCOPED_INFO(mutation_name(m) << " caught by " << reproduce_command(sc) << ": "
                                     << r.violations[0].kind << " " << r.violations[0].detail);
      return seed;
    }
  }
  return 0;
}

}  // namespace

TEST_CASE("a last-writer-wins join is caught within 100 seeds", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kLww, true) != 0);
}

TEST_CASE("a dot counter not persisted before acknowledging is caught within 100 seeds", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kLazyCounter, true) != 0);
}

TEST_CASE("trimming a delta before every peer acknowledged it is caught within 100 seeds", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kTrimBeforeAck, false) != 0);
}

TEST_CASE("merging a repair sender's context before reconciling is caught within 100 seeds", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kEarlyContextMerge, true) != 0);
}

// Proves the checkers bite (issues 6 and 11): each test-only mutation of node::MutationsForTesting,
// and each simulator-side mutation or scenario (sim/simulation.hpp), is caught, i.e. some seed
// among the first 100 reports a violation of the kind the mutation exists for. trim-before-ack
// runs with repair disabled, because the digest path legitimately repairs what the delta path
// loses; early-context-merge needs repairs with concurrent divergence, which the default
// scenario's long offline periods (beyond a 64-entry delta buffer) provide. The simulator-side
// ones name the checker they prove: store-flip (client_mismatch: a node storing another vector
// than the client sent, consistently on every replica, which the node-derived oracle could not
// see), tight-decode (codec), tiny-outbox (unbounded), skew-beyond-bound (hlc_causality),
// stranger (unknown_peer), wipe-on-restart (identity: it reopens under another incarnation than
// its store held), keep-own-claims (hostile_applied), lax-decode (bad_frame_accepted),
// search-wrong-collection (search_phantom), lenient-dots (hostile_accepted), wrong-metric
// (search_recall), read-only-disk (the driver's open and reopen), unreadable-after-ack (the
// driver's state_unreadable); with --sink, sink-ack-unapplied (sink_state), sink-quota-off
// (quota), cold-wrong-metric (cold_search), sink-store-unreachable (sink), sink-acks-dropped
// (sink_not_drained), sink-removed-dropped (sink_state, D74); and for eviction with --sink, evict-unacked (evicted_unacked, and refill:
// what the sink never got cannot refill), stub-wrong-digest (stub_digest), refill-unchecked (refill_mismatch), merge-local-only
// (cold_merge), merge-unjudged (cold_deleted); and for device replacement with --sink,
// boot-one-page (bootstrap_lost), boot-unjudged (bootstrap_resurrected), replace-same-replica
// (reissued_dot). docs/sim.md, "Proving the checkers", lists every
// checker with the mutation that proves it.
#include <catch2/catch.hpp>

#include "sim/simulation.hpp"

using namespace shoal;
using namespace shoal::sim;

namespace {

// The first seed in [1, 100] with a violation (of `kind`, when given), or 0.
std::uint64_t first_caught(Mutation m, bool repair, const std::string& kind = {}, bool faults = true,
                           bool sink = false) {
  for (std::uint64_t seed = 1; seed <= 100; ++seed) {
    Scenario sc;
    sc.seed = seed;
    sc.mutation = m;
    sc.repair = repair;
    sc.faults = faults;
    sc.sink = sink;
    // A mutation that breaks convergence is caught at the bound; a shorter bound keeps it cheap.
    sc.max_converge = Duration::seconds(60);
    const SeedResult r = run_seed(sc);
    for (const Violation& v : r.violations) {
      if (!kind.empty() && v.kind != kind) continue;
      UNSCOPED_INFO(mutation_name(m) << " caught by " << reproduce_command(sc) << ": " << v.kind << " " << v.detail);
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

TEST_CASE("a node storing another vector than the client sent is caught by the client-side oracle", "[sim][mutation]") {
  // Without faults: the corruption is consistent on every replica, so only the client's bytes tell.
  CHECK(first_caught(Mutation::kStoreFlip, true, "client_mismatch", false) != 0);
  CHECK(first_caught(Mutation::kStoreFlip, true, "payload_mismatch", false) != 0);
}

TEST_CASE("a message the receiver cannot decode is caught by the codec checker", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kTightDecode, true, "codec", false) != 0);
}

TEST_CASE("an outbox above the bound is caught by the unbounded checker", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kTinyOutbox, true, "unbounded", false) != 0);
}

TEST_CASE("a clock beyond the skew bound breaks causality and is caught", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kSkewBeyondBound, true, "hlc_causality", false) != 0);
}

TEST_CASE("a message to a replica outside the mesh is caught by the unknown_peer checker", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kStranger, true, "unknown_peer", false) != 0);
}

TEST_CASE("a node that comes back under another replica id is caught by the identity checker", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kWipeOnRestart, true, "identity") != 0);
}

// Node-side mutations for the newer checkers (node::MutationsForTesting).
TEST_CASE("a clock that ignores what peers send is caught by hlc_causality", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kHlcIgnoreRemote, true, "hlc_causality") != 0);
}

TEST_CASE("siblings read back in another order than the winner order are caught", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kWinnerByDot, true, "winner_order") != 0);
}

TEST_CASE("a drop that keeps the records it observed is caught", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kDropKeepsRecords, true, "drop_resurrected") != 0);
}

TEST_CASE("a re-create that keeps what the dropped collection held is caught", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kRecreateKeepsHidden, true, "recreate_not_empty") != 0);
}

TEST_CASE("catalogue changes that are not relayed are caught", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kCatalogueNotRelayed, false, "catalogue:context_mismatch") != 0);
}

// Dishonest stores (sim/faulty_store.hpp): what an environment without sync, or a store that
// tears a transaction, would do to a node. The honest store model is what LmdbStore is proven to
// keep (tests/store/durability_test.cpp).
// Since D48 a node takes a fresh incarnation at its first write after each open, so a counter an
// undone commit lost is not issued again under it (as with the torn commit below): dot_reused
// showed this mutation only when a crash undid a new store's whole life, identity included, and
// the simulator reopened it under the same replica id at incarnation 0 (seed 51 before the vector
// slabs of D52 moved the crash points). What it loses is what shows it: acknowledged writes
// missing everywhere. dot_reused has its own mutation (stale-incarnation, below).
TEST_CASE("a store that acknowledges commits a crash then undoes (MDB_NOSYNC) is caught", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kNoSyncStore, true, "lost") != 0);
}

// A torn commit keeps some of a commit's writes and not others (a record without its counter,
// a context without its entry). Since a node takes a fresh incarnation at its first write after
// each open (D48), a counter lost this way is never issued again, so dot_reused no longer shows
// it; what the torn commit lost does: an acknowledged write missing everywhere (lost), or an
// acknowledged upsert whose entry the node does not hold right after (ack_not_visible: the
// crash struck inside the write's commit, which kept the context but not the entry, and the
// node restarted at once; seed 25). Before the oracle followed incarnation changes this showed
// as phantom.
TEST_CASE("a store that keeps half of a commit interrupted by a crash is caught", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kTornCommit, true, "lost") != 0);
}

// ack_not_visible (an acknowledged upsert with no new entry on its node) had no mutation; the
// torn commit above is one (seed 25 of 1..100).
TEST_CASE("an acknowledged upsert whose entry a torn commit dropped is caught by ack_not_visible", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kTornCommit, true, "ack_not_visible") != 0);
}

// The rollback window (docs/crdt.md, "Incarnations", D48): drawn restores are undetected
// rollbacks in half the seeds; a node that keeps issuing under the incarnation it opened with
// reissues dots its lost life issued, before any peer's hello can tell it.
TEST_CASE("a node that does not take a fresh incarnation at its first write after an open is caught by dot_reused "
          "when rolled back",
          "[sim][mutation]") {
  CHECK(first_caught(Mutation::kStaleIncarnation, true, "dot_reused") != 0);
}

// The delta path within a bound (docs/sim.md): once the probes start every DeltaBatch is dropped. With
// repair on the mesh still converges through digests (every end-state checker passes), so only
// the probes' delta_late sees it; with repair off it also fails to converge.
TEST_CASE("a delta path that stops delivering is caught by delta_late, with repair on and off", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kLoseDeltas, true, "delta_late") != 0);
  CHECK(first_caught(Mutation::kLoseDeltas, false, "delta_late") != 0);
}

// Hostile deltas: split over two batches, one dot on two records cannot be told from a real
// write by the receiver; the checkers that guard the state (hostile_applied, phantom) fire.
TEST_CASE("a hostile dot that gets through is caught by hostile_applied", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kHostileSplit, true, "hostile_applied") != 0);
}

// Reads during chaos: a client session whose reads go to another peer than its writes.
TEST_CASE("reads routed away from the session's node break the session guarantees and are caught", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kReadElsewhere, true, "read_your_writes") != 0);
  CHECK(first_caught(Mutation::kReadElsewhere, true, "deleted_returned") != 0);
  CHECK(first_caught(Mutation::kReadElsewhere, true, "monotonic_read") != 0);
}

// A peer's context claiming the receiver's own dots beyond its counter (--hostile-own-context):
// the node strips the claim (node_sync_host.cpp, strip_own_claims). With the stripping mutated
// away the receiver keeps the claimed dot, and hostile_applied fires.
TEST_CASE("a claim on the receiver's own dots that is joined, not stripped, is caught", "[sim][mutation]") {
  std::uint64_t caught = 0;
  for (std::uint64_t seed = 1; seed <= 20 && caught == 0; ++seed) {
    Scenario sc;
    sc.seed = seed;
    sc.mutation = Mutation::kKeepOwnClaims;
    sc.hostile_own_context = true;
    sc.max_converge = Duration::seconds(60);
    for (const Violation& v : run_seed(sc).violations) {
      if (v.kind == "hostile_applied") caught = seed;
    }
  }
  CHECK(caught != 0);
}

// The unmodified node under --hostile-own-context, repair on and off: the claims are stripped
// (or, for a claim on the sender's own dot, joined like any remove), nothing is violated, every
// seed converges.
TEST_CASE("claims on owners' dots beyond their counters cause no violation on the real node", "[sim]") {
  for (const bool repair : {true, false}) {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
      Scenario sc;
      sc.seed = repair ? seed : 99990 + seed;
      sc.repair = repair;
      sc.hostile_own_context = true;
      const SeedResult r = run_seed(sc);
      INFO(reproduce_command(sc));
      CHECK(r.converged);
      for (const Violation& v : r.violations) FAIL_CHECK(v.kind << " " << v.detail);
      CHECK(r.stats.hostile_sent >= 1);
    }
  }
}

// A decoder that accepts the longest decodable prefix (trailing bytes ignored) lets a doubled or
// spliced frame through: bad_frame_accepted.
TEST_CASE("a codec that ignores trailing bytes is caught by bad_frame_accepted", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kLaxDecode, true, "bad_frame_accepted") != 0);
}

// Searches answered from another collection's index return records that no replica holds in
// the collection searched: search_phantom.
TEST_CASE("a search routed to another collection's index is caught by search_phantom", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kSearchWrongCollection, true, "search_phantom") != 0);
}

TEST_CASE("a receiver that repairs a delta with one dot on two records instead of refusing it is caught by hostile_accepted",
          "[sim][mutation]") {
  CHECK(first_caught(Mutation::kLenientDots, true, "hostile_accepted") != 0);
}

TEST_CASE("an index that ranks by another metric than the collection's is caught by search_recall", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kWrongMetric, true, "search_recall", false) != 0);
}

TEST_CASE("a store that refuses every commit is caught by the driver's open and reopen checks", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kReadOnlyDisk, true, "open", false) != 0);
  CHECK(first_caught(Mutation::kReadOnlyDisk, true, "reopen", false) != 0);
}

TEST_CASE("a store whose reads fail right after an acknowledged write is caught by state_unreadable", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kUnreadableAfterAck, true, "state_unreadable", false) != 0);
}

// --sink (docs/sim.md, "The sink and its outages"): each sink checker fires on its mutation.
TEST_CASE("a driver that acknowledges uploads the sink never took is caught by sink_state", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kSinkAckUnapplied, true, "sink_state", true, true) != 0);
}

TEST_CASE("a feed whose quota check lets writes past the quota is caught by the quota checker", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kSinkQuotaOff, true, "quota", true, true) != 0);
}

TEST_CASE("a sink whose cold search ranks by another metric is caught by cold_search", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kColdWrongMetric, true, "cold_search", true, true) != 0);
}

TEST_CASE("a sink that cannot reopen its object store after an outage is caught by the sink checker", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kSinkStoreUnreachable, true, "sink", true, true) != 0);
}

TEST_CASE("an uploader that never hands the sink's acknowledgements to the node is caught by sink_not_drained",
          "[sim][mutation]") {
  CHECK(first_caught(Mutation::kSinkAcksDropped, false, "sink_not_drained", true, true) != 0);
}

// D74: with --sink the buffer is the repair scenario's 64 entries, so sink outages make holes and
// feeds fall back to full-state uploads; without their removed dots a delete or an overwrite of
// what the sink held stays there.
TEST_CASE("a sink that never gets a full-state upload's removed dots is caught by sink_state", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kSinkRemovedDropped, true, "sink_state", true, true) != 0);
}

// Eviction to stubs with --sink (docs/sim.md, "Eviction, refills and merged cold search"): each
// of its checkers fires on its mutation.
TEST_CASE("a node that evicts records the sink has not acknowledged is caught by evicted_unacked", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kEvictUnacked, true, "evicted_unacked", true, true) != 0);
}

TEST_CASE("stubs keeping a digest other than the sink's are caught by stub_digest", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kStubWrongDigest, true, "stub_digest", true, true) != 0);
}

TEST_CASE("stubs of payloads the sink never got do not refill after the drain, which the refill checker catches",
          "[sim][mutation]") {
  CHECK(first_caught(Mutation::kEvictUnacked, true, "refill", true, true) != 0);
}

TEST_CASE("a get that refills a stub with whatever the sink holds, unchecked, is caught by refill_mismatch",
          "[sim][mutation]") {
  CHECK(first_caught(Mutation::kRefillUnchecked, true, "refill_mismatch", true, true) != 0);
}

TEST_CASE("a search with the cold tier that drops the sink's hits is caught by cold_merge", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kMergeLocalOnly, true, "cold_merge", true, true) != 0);
}

TEST_CASE("a merge of cold hits by distance alone, bringing back what the node removed, is caught by cold_deleted",
          "[sim][mutation]") {
  CHECK(first_caught(Mutation::kMergeUnjudged, true, "cold_deleted", true, true) != 0);
}

// Device replacement and bootstrap from the sink with --sink (docs/sim.md, "Device replacement and
// bootstrap from the sink"): each of its checkers fires on its mutation. Each would also fire on
// the node before D67 for the cases the fix covers (a stale sibling of a record on an earlier page).
TEST_CASE("a bootstrap that stops after the sink's first page is caught by bootstrap_lost", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kBootOnePage, true, "bootstrap_lost", true, true) != 0);
}

TEST_CASE("a bootstrap whose pages no sink context judges keeps records the sink had removed: bootstrap_resurrected",
          "[sim][mutation]") {
  CHECK(first_caught(Mutation::kBootUnjudged, true, "bootstrap_resurrected", true, true) != 0);
}

TEST_CASE("a replacement device that keeps the lost device's replica id reissues its dots: reissued_dot",
          "[sim][mutation]") {
  CHECK(first_caught(Mutation::kReplaceSameReplica, true, "reissued_dot", true, true) != 0);
}

// The three checkers no node fault reaches (docs/sim.md, "Proving the checkers"): each has a
// simulator-side mutation that breaks what the checker guards.
TEST_CASE("an oracle winner that does not decode is caught by payload", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kTruncatedRequest, true, "payload") != 0);
}

TEST_CASE("a copy that cannot be written to the restored device's disk is caught by restore", "[sim][mutation]") {
  CHECK(first_caught(Mutation::kRestoreDiskFull, true, "restore") != 0);
}

TEST_CASE("a probe write that fails on the healed mesh is caught by delta_probe, with repair on and off",
          "[sim][mutation]") {
  CHECK(first_caught(Mutation::kFullAfterHeal, true, "delta_probe") != 0);
  CHECK(first_caught(Mutation::kFullAfterHeal, false, "delta_probe") != 0);
}

// sim/simulation.hpp: one seed of the deterministic simulation, end to end.
//
// Role: run_seed() draws a topology and fault rates from the seed, opens one node::Node per peer
// on its own store::MemoryStore, and drives them from one virtual-time event queue through a
// chaos phase (workload and faults), a heal phase, and a convergence wait; then it runs the
// checkers (sim/oracle.hpp) and returns what it found. Every message between nodes passes
// through transport::encode -> bytes -> transport::decode. docs/sim.md is the manual.
//
// Determinism: virtual time starts at 0; events are ordered by (time, insertion sequence); all
// randomness comes from one Rng seeded by the seed and forked per concern (topology, network,
// workload, faults); nothing iterates an unordered container or depends on pointer values. Every
// processed event adds one line to the trace, whose hash is part of the result: the same
// scenario gives the same hash. Nodes run with build_threads = 1 and collections small enough
// (exact_below) that the index never starts a background rebuild.
//
// Thread rules: run_seed() runs on the calling thread and shares nothing; different seeds may run
// on different threads concurrently.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "common/time.hpp"
#include "sim/oracle.hpp"

namespace shoal::sim {

// The test-only mutations of node::MutationsForTesting, one at a time, then the simulator-side
// ones (docs/sim.md, "Proving the checkers"): each makes one checker fire.
//   store-flip         the node's store flips a bit of every client vector it is given
//                      (sim/faulty_store.hpp): client_mismatch, payload_mismatch
//   tight-decode       receivers decode with max_payload_bytes 32, below what senders send: codec
//   tiny-outbox        the outbox bound checked is 1 message: unbounded
//   skew-beyond-bound  peer 0's clock runs 400 s ahead (past the 300 s HLC bound): hlc_causality
//   stranger           a replica outside the mesh says hello to peer 0: unknown_peer
//   wipe-on-restart    a restarted peer comes back on an empty store under incarnation 1: identity
enum class Mutation : std::uint8_t {
  kNone, kLww, kLazyCounter, kTrimBeforeAck, kEarlyContextMerge,
  kStoreFlip, kTightDecode, kTinyOutbox, kSkewBeyondBound, kStranger, kWipeOnRestart,
  // Node-side mutations for the newer checkers (node::MutationsForTesting):
  //   hlc-ignore-remote      hlc_causality;   winner-by-dot          winner_order
  //   drop-keeps-records     drop_resurrected; recreate-keeps-hidden recreate_not_empty
  //   catalogue-not-relayed  catalogue convergence (catalogue:*, collection_*)
  kHlcIgnoreRemote, kWinnerByDot, kDropKeepsRecords, kRecreateKeepsHidden, kCatalogueNotRelayed,
  // Dishonest stores (sim/faulty_store.hpp): a crash undoes the last acknowledged commits
  // (nosync-store: lost, context_shrank, dot_reused), or keeps half of the commit it interrupted
  // (torn-commit).
  kNoSyncStore, kTornCommit,
  // lose-deltas: once the probes start (after convergence) every DeltaBatch is dropped in flight
  // (a delta path that silently stops; repair, when on, still converges): delta_late.
  kLoseDeltas,
  // hostile-split: the hostile peer sends its one dot on two records in two separate batches,
  // which no receiver can tell from a legitimate write: hostile_applied, phantom (proves those
  // checkers fire when a hostile delta gets through). read-elsewhere: a client's reads go to
  // another peer than its writes (a session routed elsewhere): read_your_writes, monotonic_read,
  // deleted_returned.
  kHostileSplit, kReadElsewhere,
  // keep-own-claims: the node joins a peer's claim on its own dots beyond its counter instead of
  // stripping it (node::MutationsForTesting::keep_own_claims; run with hostile_own_context):
  // hostile_applied. lax-decode: the receiver decodes the longest prefix of a frame that the
  // codec accepts (a codec that ignores trailing bytes): bad_frame_accepted.
  // search-wrong-collection: searches of `c` run on the second collection `d` (a search routed
  // to the wrong index): search_phantom.
  kKeepOwnClaims, kLaxDecode, kSearchWrongCollection,
  // lenient-dots: the receiving side repairs a delta that carries one dot on two records by
  // keeping the first, instead of refusing it (a decoder that "fixes" malformed input), so the
  // node accepts the hostile batch: hostile_accepted. wrong-metric: collection `c` ranks by inner
  // product while the oracle's exact search ranks by L2 (an index built with another metric than
  // the collection's): search_recall. read-only-disk: peer 0's store refuses every commit, from
  // the start and after the heal (a disk that turned read-only): open, reopen.
  // unreadable-after-ack: the store fails the first read after each acknowledged client write:
  // state_unreadable.
  kLenientDots, kWrongMetric, kReadOnlyDisk, kUnreadableAfterAck,
  // The sink (--sink; docs/sim.md, "The sink and its outages"), simulator-side:
  // sink-ack-unapplied: the driver acknowledges every upload as soon as it is sent, whether or
  // not the sink took it (lost in an outage, or its put failed): sink_state.
  // sink-quota-off: the feed is enabled with the delta buffer's bound as its quota while the
  // checker expects 40 (a quota check that never fires): quota.
  // cold-wrong-metric: the sink's cold search ranks by inner product while the oracle's exact
  // search ranks by L2: cold_search.
  // sink-store-unreachable: the object store the sink restarts on after an outage is
  // unreachable (a bucket that never comes back): sink (the sink failed to reopen).
  // sink-acks-dropped: the driver never hands the sink's acknowledgements to the node (an
  // uploader that loses its replies), so the backlog never shrinks: sink_not_drained.
  // sink-removed-dropped: the sink never gets a full-state upload's removed dots (D74), so a
  // delete or overwrite the buffer lost in a hole stays at the sink: sink_state / cold_search.
  kSinkAckUnapplied, kSinkQuotaOff, kColdWrongMetric, kSinkStoreUnreachable, kSinkAcksDropped,
  kSinkRemovedDropped,
  // stale-incarnation: a node issues dots under the incarnation it opened with instead of taking
  // a fresh one at its first local write (node::MutationsForTesting::stale_incarnation): a
  // rolled-back peer reissues dots its lost life issued: dot_reused.
  kStaleIncarnation,
  // Simulator-side, for the checkers no node fault reaches:
  // truncated-request: the oracle records each client upsert's vector bytes one byte short (a
  // client-side record of the request that is wrong): payload (the oracle's winner does not
  // decode; client_mismatch too).
  // restore-disk-full: the disk a restore or clone writes its copy to fails the commit that
  // puts the copy there (an I/O error): restore.
  // full-after-heal: every peer's disk fills up when the probes start (capacity = used bytes), so
  // a probe write fails on the healed mesh: delta_probe.
  kTruncatedRequest, kRestoreDiskFull, kFullAfterHeal,
  // Eviction to stubs with --sink (docs/sim.md, "Eviction, refills and merged cold search"):
  // evict-unacked: the node stubs old records whether or not the sink acknowledged them
  // (node::MutationsForTesting::evict_unacked): evicted_unacked.
  // stub-wrong-digest: the driver gives the node a digest function other than the sink's (the
  // payload without its last byte hashed): stub_digest.
  // refill-unchecked: the driver's get returns the sink's payload for a stub without
  // Node::check_refill (whatever version the sink holds): refill_mismatch.
  // merge-local-only: the driver's search with the cold tier drops the sink's answer (a merge
  // that forgets the cold hits): cold_merge.
  // merge-unjudged: the driver joins the local and the cold hits by distance alone, without
  // Node::merge_cold_hits' rules (a cold hit this node removed comes back): cold_deleted.
  kEvictUnacked, kStubWrongDigest, kRefillUnchecked, kMergeLocalOnly, kMergeUnjudged,
  // Device replacement and bootstrap from the sink with --sink (docs/sim.md, "Device replacement
  // and bootstrap from the sink"), simulator-side:
  // boot-one-page: the driver takes the sink's first page as the last (a bootstrap that ignores
  // the cursor): bootstrap_lost.
  // boot-unjudged: the driver joins every page as a non-last one with no first context, so no
  // context of the sink judges what the device holds: bootstrap_resurrected.
  // replace-same-replica: the new device keeps the lost one's replica id at incarnation 0 (a
  // runtime that would derive the replica id from something the device keeps, not draw fresh
  // bytes for a new data directory): reissued_dot.
  kBootOnePage, kBootUnjudged, kReplaceSameReplica
};
const char* mutation_name(Mutation m) noexcept;
// The names above ("none", "lww", ...). kInvalidArgument else.
[[nodiscard]] Result<Mutation> parse_mutation(std::string_view text);

// A fault at a fixed time, from a scenario file (sim/scenario_file.hpp, docs/sim.md "Scenario
// files"): `cut` isolates `peers` from the others (every link between the two groups cut and
// detected; one cut at a time, a new one replaces it), `crash` takes each of `peers` down
// (in-memory state lost, the store kept) and restarts it after `length`.
// `restore` puts each of `peers` back on the copy of its own store taken at `copy_at` (a backup
// restored, a VM rolled back) and restarts it after `length`; `clone` starts each of `peers` on
// the copy of peer `source`'s store taken at `copy_at` (a golden image). docs/sim.md, "Restores
// and clones".
struct PlannedFault {
  enum class Kind : std::uint8_t { kCut, kCrash, kRestore, kClone };
  Kind kind = Kind::kCut;
  Duration at;
  Duration length;
  std::vector<std::uint32_t> peers;
  Duration copy_at;          // restore, clone: when the copy was taken (before `at`)
  std::uint32_t source = 0;  // clone: whose store was copied
  // restore: the restore path took a new incarnation before the first open (`shoal restore`, or
  // the data directory's FINGERPRINT saw the copy). false: nothing local can tell (a VM rollback,
  // a backup put back over the same inode), so only the mesh's hello reveals it (D36).
  bool detected = false;
};

// What a scenario file fixes instead of drawing it from the seed.
struct Plan {
  std::string name;
  std::string path;  // the file it came from (for the reproduce command)
  std::optional<std::uint8_t> topology;  // sim::Topology (network.hpp): 0 full, 1 chain, 2 star
  Duration chaos = Duration::seconds(5);     // workload and faults, then heal
  Duration op_mean = Duration::millis(30);   // mean time between client operations
  std::vector<PlannedFault> faults;
};

// One line of a scenario's timeline (sim/timeline.hpp).
struct TimelineEvent {
  Duration at;
  int peer = -1;  // -1: the whole mesh
  std::string kind;  // "cut", "uncut", "crash", "restart", "heal", "converged", "write"
  std::string detail;
};

struct Scenario {
  std::uint64_t seed = 1;
  // Set by --scenario FILE: topology, chaos length, workload rate and a fault schedule.
  std::shared_ptr<const Plan> plan;
  // Drawn from the seed when absent: 2..16 peers on 1..min(4, peers) sites.
  std::optional<std::uint32_t> peers;
  std::optional<std::uint32_t> sites;
  // false: no network faults, crashes, clock jumps or full disks (the workload still runs).
  bool faults = true;
  // false: NodeOptions.sync.repair_enabled = false, and no fault may need repair (no offline
  // periods beyond the delta buffer: the buffer is large). For trim-before-ack.
  bool repair = true;
  Mutation mutation = Mutation::kNone;
  // After healing, replicas must converge within this much simulated time.
  Duration max_converge = Duration::seconds(120);
  // Also send the hostile kinds whose contexts claim dots beyond their owner's counter: the
  // receiver's own (stripped by the node) and, with repair on, the sender's own (joined, as no
  // receiver can tell it from a real remove). docs/sim.md, "Hostile deltas". CI turns it on.
  bool hostile_own_context = false;
  // Drawn restores (docs/sim.md, "Restores and clones") are undetected rollbacks: the copy keeps
  // its incarnation and only a peer's hello reveals it. Off: they take the restore path's new
  // incarnation, as `shoal restore` and a data directory that sees the copy do. Off by default
  // because a rollback can reissue a dot before any hello arrives (docs/sim.md says when).
  bool rollbacks = false;
  // Large seeds (--large N): collection `c` gets N records of `large_dim`-d clustered vectors
  // (16 clusters, 4 intrinsic dimensions, like real embeddings) with metadata, loaded in batches
  // of 100 at random peers during chaos, under the product's default index parameters, so the
  // HNSW graph is built and search_recall checks the real index. 0: the small default (8-d).
  std::uint32_t large_records = 0;
  std::uint32_t large_dim = 128;
  // --sink (docs/sim.md, "The sink and its outages"): one simulated sink (sink::SinkService on a
  // sink::MemoryObjectStore), collection `c` goes to it (TierPolicy::sink), each peer's feed has a
  // quota of 40 entries and is driven over a per-peer sink link (delay, loss, the sink's outages
  // of up to 7 simulated days). In 80% of such seeds every node also gets an eviction budget and
  // a hot window drawn from the seed, so old acknowledged records become stubs, and gets of stubs
  // refill from the sink (docs/sim.md, "Eviction, refills and merged cold search"). With repair,
  // 35% of faulty seeds replace a device (its data directory lost) by a new one that bootstraps
  // from the sink page by page and catches up from peers (docs/sim.md, "Device replacement and
  // bootstrap from the sink"). Off: nothing of it runs, so every seed keeps its trace.
  bool sink = false;
  // Nullable: where trace lines are printed.
  std::FILE* trace_out = nullptr;
};

// Counters for reports.
struct SeedStats {
  std::uint64_t events = 0;
  std::uint64_t messages_sent = 0;
  std::uint64_t messages_delivered = 0;
  std::uint64_t messages_dropped = 0;
  std::uint64_t bytes_sent = 0;          // encoded bytes handed to the network (before loss)
  std::uint64_t delta_batch_bytes = 0;   // of which DeltaBatch messages
  std::uint64_t repair_bytes = 0;        // of which DigestQuery/Reply, BucketQuery/Reply
  std::uint64_t acked_upserts = 0;
  std::uint64_t acked_removes = 0;
  std::uint64_t failed_ops = 0;          // client operations not acknowledged
  std::uint64_t payload_bytes = 0;       // payload bytes of acknowledged upserts
  std::uint64_t crashes = 0;
  std::uint64_t partitions = 0;
  std::uint64_t max_in_flight = 0;
  std::uint64_t records = 0;             // live records in the converged model
  std::uint64_t catalogue_ops = 0;       // acknowledged drops and creates of the second collection
  std::uint64_t frames_corrupted = 0;    // frames a lying link altered (bit flip, truncation, doubling)
  std::uint64_t frames_rejected = 0;     // of which transport::decode refused
  std::uint64_t frames_forged = 0;       // of which decoded to another message (the channel's job)
  std::uint64_t node_rejected = 0;       // messages Node::receive refused (any reason)
  std::uint64_t causal_pairs = 0;        // (observed write, later write) clock pairs checked
  std::uint32_t hops = 1;                // the topology's diameter in sites (1: one site or full)
  std::uint64_t crashes_in_op = 0;       // crashes that struck inside a store call
  std::uint64_t commits_landed = 0;      // of which struck a commit that reached the disk anyway
  std::uint64_t landed_client_ops = 0;   // client operations unanswered but durable (oracle records them)
  // The delta-path probes after convergence (docs/sim.md, "The delta path within a bound").
  std::uint64_t probe_arrivals = 0;      // (probe, peer) pairs that received the probe
  std::uint64_t probe_by_repair = 0;     // of which by a repair message first
  std::int64_t probe_max_ms = 0;         // the slowest arrival
  std::int64_t probe_bound_ms = 0;       // the bound of that pair
  double probe_max_ratio = 0.0;          // the highest arrival time / bound over all pairs
  std::uint64_t hostile_sent = 0;        // hostile well-formed delta batches sent
  std::uint64_t hostile_rejected = 0;    // of which the receiver refused
  std::uint64_t session_reads = 0;       // reads checked against the session guarantees
  std::uint64_t restores = 0;            // peers put back on an older copy of their own store
  std::uint64_t clones = 0;              // peers started on a copy of another peer's store
  std::uint64_t twins = 0;               // of those, undetected clones (under the source's replica id)
  std::uint64_t ops_forgotten = 0;       // acknowledged operations a restore or clone lost for good
  // --sink only.
  std::uint64_t sink_uploads = 0;        // uploads the sink applied (non-empty deltas)
  std::uint64_t sink_acks = 0;           // acknowledgements a node took (sink_acked OK)
  std::uint64_t sink_lost = 0;           // uploads or acknowledgements lost (outage, loss, put failure)
  std::uint64_t quota_refusals = 0;      // client writes refused with kQuotaExceeded
  std::int64_t sink_outage_ms = 0;       // the longest drawn outage
  std::uint64_t sink_records = 0;        // live records at the sink after the drain
  std::uint64_t evict_budget_bytes = 0;  // the seed's eviction budget per node (0: no eviction)
  std::int64_t hot_window_ms = 0;        // the seed's hot window
  std::uint64_t evicted = 0;             // records turned into stubs (Node::evict_step, all nodes)
  std::uint64_t stubs_at_end = 0;        // stubs the nodes held when the checkers ran
  std::uint64_t refills = 0;             // gets of a stub answered from the sink (check_refill OK)
  std::uint64_t cold_unavailable = 0;    // gets of a stub answered kColdUnavailable (sink out, or lacks it)
  std::uint64_t refills_refused = 0;     // refills check_refill refused (the sink holds another version)
  std::uint64_t cold_searches = 0;       // searches merged with the sink's cold search (chaos and end)
  std::uint64_t cold_hits = 0;           // of their hits, the ones that came from the sink
  // Device replacement (--sink with repair): a device's data directory lost, a new device
  // bootstrapped from the sink (docs/sim.md, "Device replacement and bootstrap from the sink").
  std::uint64_t replacements = 0;        // devices replaced
  std::uint64_t bootstraps = 0;          // bootstraps that joined their last page
  std::uint64_t boot_attempts = 0;       // runs started (a lost page, an outage or a crash restarts one)
  std::uint64_t boot_pages = 0;          // pages joined
  std::uint64_t boot_records = 0;        // records the completed bootstraps' pages named
  std::uint64_t boot_created = 0;        // completed bootstraps that created `c` from the sink's spec
  std::uint64_t ops_forgotten_replace = 0;  // acknowledged operations only the lost device held
};

struct SeedResult {
  std::uint64_t seed = 0;
  std::uint32_t peers = 0;
  std::uint32_t sites = 0;
  std::vector<Violation> violations;
  bool converged = false;
  std::int64_t converge_ms = 0;  // simulated time from heal to equal states
  std::uint64_t trace_hash = 0;
  SeedStats stats;
  std::string scenario;  // one line: workload, nemeses and rates drawn from the seed
  std::vector<TimelineEvent> timeline;  // filled when the scenario has a plan
};

SeedResult run_seed(const Scenario& scenario);

// The command line that reproduces `scenario` alone: "shoal-sim --seed S --seeds 1 ...".
std::string reproduce_command(const Scenario& scenario);

}  // namespace shoal::sim

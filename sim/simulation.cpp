#include "sim/simulation.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <variant>

#include "common/random.hpp"
#include "crdt/codec.hpp"
#include "crdt/replica.hpp"
#include "index/exact_index.hpp"
#include "index/kernels.hpp"
#include "node/core/node.hpp"
#include "node/core/node_format.hpp"
#include "node/store/memory_store.hpp"
#include "sink/memory_object_store.hpp"
#include "sink/segment.hpp"
#include "sink/sink_service.hpp"
#include "sim/event_queue.hpp"
#include "sim/faulty_store.hpp"
#include "sim/network.hpp"
#include "sim/trace.hpp"
#include "transport/codec.hpp"

namespace shoal::sim {

const char* mutation_name(Mutation m) noexcept {
  switch (m) {
    case Mutation::kNone: return "none";
    case Mutation::kLww: return "lww";
    case Mutation::kLazyCounter: return "lazy-counter";
    case Mutation::kTrimBeforeAck: return "trim-before-ack";
    case Mutation::kEarlyContextMerge: return "early-context-merge";
    case Mutation::kStoreFlip: return "store-flip";
    case Mutation::kTightDecode: return "tight-decode";
    case Mutation::kTinyOutbox: return "tiny-outbox";
    case Mutation::kSkewBeyondBound: return "skew-beyond-bound";
    case Mutation::kStranger: return "stranger";
    case Mutation::kWipeOnRestart: return "wipe-on-restart";
    case Mutation::kHlcIgnoreRemote: return "hlc-ignore-remote";
    case Mutation::kWinnerByDot: return "winner-by-dot";
    case Mutation::kDropKeepsRecords: return "drop-keeps-records";
    case Mutation::kRecreateKeepsHidden: return "recreate-keeps-hidden";
    case Mutation::kCatalogueNotRelayed: return "catalogue-not-relayed";
    case Mutation::kNoSyncStore: return "nosync-store";
    case Mutation::kTornCommit: return "torn-commit";
    case Mutation::kLoseDeltas: return "lose-deltas";
    case Mutation::kHostileSplit: return "hostile-split";
    case Mutation::kReadElsewhere: return "read-elsewhere";
    case Mutation::kKeepOwnClaims: return "keep-own-claims";
    case Mutation::kLaxDecode: return "lax-decode";
    case Mutation::kSearchWrongCollection: return "search-wrong-collection";
    case Mutation::kLenientDots: return "lenient-dots";
    case Mutation::kWrongMetric: return "wrong-metric";
    case Mutation::kReadOnlyDisk: return "read-only-disk";
    case Mutation::kUnreadableAfterAck: return "unreadable-after-ack";
    case Mutation::kSinkAckUnapplied: return "sink-ack-unapplied";
    case Mutation::kSinkQuotaOff: return "sink-quota-off";
    case Mutation::kColdWrongMetric: return "cold-wrong-metric";
    case Mutation::kSinkStoreUnreachable: return "sink-store-unreachable";
    case Mutation::kSinkAcksDropped: return "sink-acks-dropped";
    case Mutation::kSinkRemovedDropped: return "sink-removed-dropped";
    case Mutation::kStaleIncarnation: return "stale-incarnation";
    case Mutation::kTruncatedRequest: return "truncated-request";
    case Mutation::kRestoreDiskFull: return "restore-disk-full";
    case Mutation::kFullAfterHeal: return "full-after-heal";
    case Mutation::kEvictUnacked: return "evict-unacked";
    case Mutation::kStubWrongDigest: return "stub-wrong-digest";
    case Mutation::kRefillUnchecked: return "refill-unchecked";
    case Mutation::kMergeLocalOnly: return "merge-local-only";
    case Mutation::kMergeUnjudged: return "merge-unjudged";
    case Mutation::kBootOnePage: return "boot-one-page";
    case Mutation::kBootUnjudged: return "boot-unjudged";
    case Mutation::kReplaceSameReplica: return "replace-same-replica";
  }
  return "?";
}

Result<Mutation> parse_mutation(std::string_view text) {
  std::string all;
  for (Mutation m : {Mutation::kNone, Mutation::kLww, Mutation::kLazyCounter, Mutation::kTrimBeforeAck,
                     Mutation::kEarlyContextMerge, Mutation::kStoreFlip, Mutation::kTightDecode,
                     Mutation::kTinyOutbox, Mutation::kSkewBeyondBound, Mutation::kStranger,
                     Mutation::kWipeOnRestart, Mutation::kHlcIgnoreRemote, Mutation::kWinnerByDot,
                     Mutation::kDropKeepsRecords, Mutation::kRecreateKeepsHidden, Mutation::kCatalogueNotRelayed,
                     Mutation::kNoSyncStore, Mutation::kTornCommit, Mutation::kLoseDeltas,
                     Mutation::kHostileSplit, Mutation::kReadElsewhere, Mutation::kKeepOwnClaims,
                     Mutation::kLaxDecode, Mutation::kSearchWrongCollection, Mutation::kLenientDots,
                     Mutation::kWrongMetric, Mutation::kReadOnlyDisk, Mutation::kUnreadableAfterAck,
                     Mutation::kSinkAckUnapplied, Mutation::kSinkQuotaOff, Mutation::kColdWrongMetric,
                     Mutation::kSinkStoreUnreachable, Mutation::kSinkAcksDropped, Mutation::kSinkRemovedDropped,
                     Mutation::kStaleIncarnation, Mutation::kTruncatedRequest, Mutation::kRestoreDiskFull,
                     Mutation::kFullAfterHeal, Mutation::kEvictUnacked, Mutation::kStubWrongDigest,
                     Mutation::kRefillUnchecked, Mutation::kMergeLocalOnly, Mutation::kMergeUnjudged,
                     Mutation::kBootOnePage, Mutation::kBootUnjudged, Mutation::kReplaceSameReplica}) {
    if (text == mutation_name(m)) return m;
    all += std::string(all.empty() ? "" : ", ") + mutation_name(m);
  }
  return Status(Detail::kUnknownName, "unknown mutation '" + std::string(text) + "' (" + all + ")");
}

std::string reproduce_command(const Scenario& s) {
  std::string cmd = "shoal-sim --seed " + std::to_string(s.seed) + " --seeds 1";
  if (s.peers) cmd += " --peers " + std::to_string(*s.peers);
  if (s.sites) cmd += " --sites " + std::to_string(*s.sites);
  if (!s.faults) cmd += " --no-faults";
  if (!s.repair) cmd += " --no-repair";
  if (s.mutation != Mutation::kNone) cmd += std::string(" --mutation ") + mutation_name(s.mutation);
  if (s.hostile_own_context) cmd += " --hostile-own-context";
  if (s.rollbacks) cmd += " --rollbacks";
  if (s.sink) cmd += " --sink";
  if (s.plan) cmd += " --scenario " + s.plan->path;
  if (s.large_records > 0) cmd += " --large " + std::to_string(s.large_records) + " --large-dim " + std::to_string(s.large_dim);
  if (s.max_converge != Duration::seconds(120)) cmd += " --max-converge-s " + std::to_string(s.max_converge.ms() / 1000);
  return cmd;
}

namespace {

// Virtual wall time starts here (Nov 2023), so hybrid clocks look like real ones.
constexpr std::int64_t kEpochNs = 1'700'000'000'000'000'000;
constexpr std::string_view kCollection = "c";
// The second collection: dropped and re-created by the workload while "c" keeps running.
constexpr std::string_view kSecond = "d";
// Where the node keeps its replicated catalogue (docs/node-format.md, meta table).
constexpr std::string_view kCatalogueKey = "node.catalogue";
constexpr std::uint32_t kDim = 8;
constexpr std::size_t kLargeClusters = 16;
constexpr std::size_t kLargeIntrinsic = 4;
constexpr std::uint32_t kLargeBatch = 100;
// A client operation is a drop or (re-)create of the second collection with this probability;
// of the other operations, this share goes to the second collection.
constexpr double kCatalogueOpRate = 0.015;
constexpr double kSecondShare = 0.2;
// Clocks (docs/sim.md, "Clocks"): each peer's wall clock starts 0..250 s ahead of virtual time
// and stays within 0..290 s after jumps, so two peers differ by less than the HLC's 300 s
// bound even with drift; timers run at 1 +- up to 1% of the virtual rate.
constexpr std::int64_t kMaxInitialSkewMs = 250'000;
constexpr std::int64_t kMaxSkewMs = 290'000;
constexpr std::int64_t kMaxDriftPpm = 10'000;
// Bounds the simulator checks during chaos: one outbox, one encoded message.
constexpr std::size_t kMaxOutbox = 4096;
constexpr std::size_t kMaxMessageBytes = std::size_t{4} << 20;

enum class Ev : std::uint8_t {
  kDeliver, kWake, kClientOp, kFault, kRestart, kUnpartition, kDiskRestore, kHeal, kCheck, kSample, kStranger,
  kProbe, kProbeDeadline, kHostile, kPlanned, kBulk, kCopy, kRestore,
  // --sink only: a peer's feed looks for its next upload; an upload reaches the sink; the sink's
  // acknowledgement (b = 1) or the driver's timeout (b = 0) reaches the peer; an outage ends;
  // the drain is checked.
  kSinkPump, kSinkArrive, kSinkAck, kSinkBack, kSinkCheck,
  // --sink, device replacement: a device's data directory is lost; a bootstrap run starts; its
  // page request reaches the sink; the page (b = 1), a loss (b = 0) or a refusal (b = 2) reaches
  // the device.
  kReplace, kBootStart, kBootReq, kBootReply
};

// The sink (docs/sim.md, "The sink and its outages").
constexpr std::uint64_t kSinkQuota = 40;
constexpr Duration kSinkPumpEvery = Duration::millis(50);
constexpr std::int64_t kMaxSinkOutageMs = 7LL * 24 * 3600 * 1000;
// After the drain starts, every backlog must reach 0 within this much simulated time.
constexpr Duration kMaxSinkDrain = Duration::seconds(600);
// Device replacement (docs/sim.md, "Device replacement and bootstrap from the sink"): records per
// bootstrap page at the simulated sink (the product's default is 4,096; at most 48 ids exist
// here, so a small page makes every bootstrap take several pages, with writes between them),
// and the backoff between runs after a lost page or a refusal.
constexpr std::size_t kBootPageRecords = 4;
constexpr Duration kBootRetryFirst = Duration::millis(500);
constexpr Duration kBootRetryMax = Duration::seconds(60);

// Delta-path probes (docs/sim.md, "The delta path within a bound").
constexpr int kProbes = 3;
constexpr Duration kProbeSpacing = Duration::millis(50);

// How a lying link altered a frame (docs/sim.md, "Bytes that lie").
enum class Corruption : std::uint8_t { kNone, kBitFlip, kTruncate, kDouble, kSplice };
const char* corruption_name(Corruption c) noexcept {
  switch (c) {
    case Corruption::kNone: return "none";
    case Corruption::kBitFlip: return "bit_flip";
    case Corruption::kTruncate: return "truncate";
    case Corruption::kDouble: return "double";
    case Corruption::kSplice: return "splice";
  }
  return "?";
}

struct Event {
  explicit Event(Ev k, std::uint32_t pa = 0, std::uint32_t pb = 0, std::uint64_t g = 0, std::string by = {})
      : kind(k), a(pa), b(pb), gen(g), bytes(std::move(by)) {}
  Ev kind = Ev::kWake;
  std::uint32_t a = 0;  // peer (or sender)
  std::uint32_t b = 0;  // receiver
  std::uint64_t gen = 0;
  std::string bytes;
  Corruption corruption = Corruption::kNone;
  std::string original;  // the frame as sent, when corrupted
  // The receiver's (kDeliver) or the sender's (kSinkArrive) Peer::replaced at send: a frame or an
  // upload of a device whose data directory was lost since is dropped.
  std::uint32_t replaced = 0;
  // kSinkArrive: the collection's spec, which the uploader sends with its metric (D62).
  std::optional<node::CollectionSpec> spec;
  // kSinkArrive: the removed-dots pieces of a full-state upload's last chunk (D74).
  std::vector<std::string> removed;
};

// The 20-byte wire form of a replica id (docs/protocol.md, Hello.replica).
std::string replica_bytes(const crdt::ReplicaId& r) {
  std::string out(reinterpret_cast<const char*>(r.identity.data()), r.identity.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((r.incarnation >> (8 * i)) & 0xffu));
  return out;
}

// The winner order of docs/crdt.md written out again, independently of crdt::winner: highest
// clock, then highest replica id, then highest counter.
bool wins_over(const crdt::Entry& a, const crdt::Entry& b) {
  if (a.clock.raw() != b.clock.raw()) return a.clock.raw() > b.clock.raw();
  if (a.dot.replica != b.dot.replica) return a.dot.replica > b.dot.replica;
  return a.dot.counter > b.dot.counter;
}

std::string vector_bytes(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

crdt::Bytes payload_bytes(const node::RecordValue& v) {
  const std::string p = node::encode_payload(v);
  return crdt::Bytes(p.begin(), p.end());
}

std::string peer_name(std::uint32_t p) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "p%02u", p);
  return buf;
}

std::string fmt(const char* f, auto... args) {
  char buf[512];
  std::snprintf(buf, sizeof buf, f, args...);
  return buf;
}

// A copy of a store (a backup, a VM snapshot, a golden image): every table's entries.
using Image = std::array<std::vector<store::KeyValue>, store::kTableCount>;

// Keys the store itself owns ("store.*" in meta): never copied over.
bool store_owned(store::Table t, std::string_view key) {
  return t == store::Table::kMeta && key.starts_with("store.");
}

// What `s` holds now (committed data only: a copy never sees an open transaction).
Result<Image> copy_tables(store::Store& s) {
  Image img;
  SHOAL_ASSIGN_OR_RETURN(auto txn, s.begin_read());
  for (store::Table t : store::kAllTables) {
    auto& out = img[static_cast<std::size_t>(t)];
    SHOAL_RETURN_IF_ERROR(txn->scan(t, store::Range::all(), [&](std::string_view k, std::string_view v) {
      if (!store_owned(t, k)) out.push_back({std::string(k), std::string(v)});
      return true;
    }));
  }
  return img;
}

// Replaces everything `s` holds by `img`, in one transaction.
Status put_tables(store::Store& s, const Image& img) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, s.begin_write());
  for (store::Table t : store::kAllTables) {
    std::vector<std::string> keys;
    SHOAL_RETURN_IF_ERROR(txn->scan(t, store::Range::all(), [&](std::string_view k, std::string_view) {
      if (!store_owned(t, k)) keys.emplace_back(k);
      return true;
    }));
    for (const std::string& k : keys) SHOAL_RETURN_IF_ERROR(txn->del(t, k));
    for (const store::KeyValue& kv : img[static_cast<std::size_t>(t)]) SHOAL_RETURN_IF_ERROR(txn->put(t, kv.key, kv.value));
  }
  return txn->commit();
}

// The replica id a store image holds (meta/node.replica), if any.
std::optional<crdt::ReplicaId> image_replica(const Image& img) {
  for (const store::KeyValue& kv : img[static_cast<std::size_t>(store::Table::kMeta)]) {
    crdt::ReplicaId r;
    if (kv.key == node::format::kReplicaKey && crdt::ReplicaId::decode(kv.value, r)) return r;
  }
  return std::nullopt;
}

// The replicated catalogue a store holds (docs/node-format.md, meta/node.catalogue).
Result<crdt::ORMap> catalogue_in(store::Store& st);

class Simulation {
 public:
  explicit Simulation(const Scenario& sc)
      : sc_(sc), root_(sc.seed), incarnation_rng_(sc.seed * 0x9E3779B97F4A7C15ull + 23), trace_(sc.trace_out), net_({0}, {}, Rng(0)) {}
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  SeedResult run();

 private:
  struct Peer {
    std::unique_ptr<store::MemoryStore> store;
    std::unique_ptr<FaultyStore> faulty;  // wraps `store`; the node writes through it
    std::unique_ptr<node::Node> node;  // null while crashed
    crdt::ReplicaId replica;
    std::uint64_t gen = 0;       // bumps on every crash and open; stale events carry old values
    Duration skew;               // wall clock offset from the peer's local time
    std::int64_t drift_ppm = 0;  // the peer's timers run at (1 + drift_ppm / 1e6) x virtual time
    MonoTime wake_at = MonoTime::from_ns(INT64_MAX);
    std::vector<std::uint8_t> view;  // view[q]: this node was told q is up
    std::optional<crdt::CausalContext> last_context;
    std::uint64_t disk_gen = 0;
    std::optional<crdt::Hlc> last_write_clock;  // of the peer's last acknowledged upsert
    bool wiped = false;  // wipe-on-restart: came back on an empty store as incarnation 1
    // The incarnation the node last issued dots under (Node::issuer): a node that learns its
    // store is an older copy, or strips a claim on its own dots, takes a new one (docs/crdt.md).
    std::uint32_t incarnation = 0;
    Duration restart_after;  // for a crash armed inside a store call: the downtime once it strikes
    // Bumps when the peer is put on another copy of a store: frames its earlier life sent and
    // that are still in flight are dropped (a restore takes longer than any network delay).
    std::uint64_t life = 0;
    // --sink: the upload on the way (at most one), and the one-way delay of the sink link.
    std::optional<node::SinkUpload> sink_inflight;
    Duration sink_delay;
    // Device replacement: how many times this peer's device was replaced (its data directory
    // lost), and its bootstrap from the sink (docs/sim.md, "Device replacement and bootstrap
    // from the sink").
    std::uint32_t replaced = 0;
    struct Boot {
      bool pending = false;  // the device must still bootstrap (a crash restarts the run at the open)
      bool active = false;   // a run is under way (its page request or reply is in flight)
      bool create = false;   // as MeshHost::bootstrap_from_sink: `c` is not here, create it from the first page
      std::string after;     // the sink's cursor
      std::set<std::string> ids;          // the ids of every page so far
      crdt::CausalContext first_context;  // the sink's context as of the first page (D57)
      std::optional<sink::BootstrapPage> page;  // the page on its way back
      Status refused;                           // b = 2: why the sink refused the page
      std::optional<crdt::Delta> at_first;      // the sink's records and context when it served the first page
      Duration delay;    // from the open to the run's start
      Duration backoff;  // before the next run after a failed one
      std::uint64_t pages = 0;
      std::uint64_t records = 0;
    } boot;
  };
  // --sink (docs/sim.md, "The sink and its outages").
  struct SinkOutage {
    MonoTime from;
    MonoTime to;
  };
  std::unique_ptr<sink::MemoryObjectStore> sink_store_;
  std::unique_ptr<sink::SinkService> sink_;
  std::vector<SinkOutage> sink_outages_;
  MonoTime sink_back_;      // the end of the last outage
  MonoTime drain_start_;
  bool sink_draining_ = false;
  double sink_loss_ = 0.0;
  Rng sink_rng_{0};
  void sink_setup();
  static sink::SinkLimits sink_limits() {
    sink::SinkLimits l;
    l.max_bootstrap_records = kBootPageRecords;
    return l;
  }
  void sink_enable(std::uint32_t p);
  bool sink_down() const;
  void sink_pump(std::uint32_t p);
  void sink_arrive(const Event& ev);
  void sink_ack(const Event& ev);
  void sink_reopen();
  // Returns true when the drain phase starts (the event loop runs again).
  bool sink_start_drain();
  bool sink_check_drained();
  void sink_checks();
  // Device replacement and bootstrap from the sink (--sink with repair; docs/sim.md, "Device
  // replacement and bootstrap from the sink"). replace(): the peer's device is stopped and its
  // data directory lost; a new device (a fresh store, a fresh replica id) starts after the
  // downtime and bootstraps `c` from the sink page by page over its sink link, as
  // MeshHost::bootstrap_from_sink does, while it catches up from peers.
  struct Replacement {
    std::uint32_t target = 0;
    Duration at;
    Duration downtime;
    Duration boot_delay;
  };
  std::vector<Replacement> replacements_;
  Rng boot_rng_{0};  // losses of bootstrap pages (their own stream)
  // Identities whose device is gone: messages addressed to them are dropped at send.
  std::vector<crdt::ReplicaId> retired_;
  // Per replaced peer: what the mesh and the sink knew of `c` when its data directory was lost
  // (every replica's context, the sink's and the oracle's), and the identities it issued under;
  // the new device must never issue a dot in it (reissued_dot).
  struct LostKnown {
    std::vector<crdt::ReplicaId> ids;
    crdt::CausalContext records;    // of `c`
    crdt::CausalContext catalogue;  // of the replicated catalogue
  };
  std::map<std::uint32_t, LostKnown> lost_known_;
  bool boot_done_in_drain_ = false;  // a bootstrap completed during the drain: wait for convergence again
  void replace(std::uint32_t i);
  void boot_start(std::uint32_t p, std::uint64_t gen);
  void boot_request(const Event& ev);
  void boot_reply(const Event& ev);
  // One page joined into the node, as mesh_host.cpp's join_bootstrap_page does.
  Status boot_join(std::uint32_t p);
  void boot_failed(std::uint32_t p, const std::string& why);
  // bootstrap_lost, bootstrap_resurrected: judged when the last page joined.
  void boot_complete(std::uint32_t p);
  bool boot_retired(const crdt::ReplicaId& r) const {
    return std::any_of(retired_.begin(), retired_.end(), [&](const crdt::ReplicaId& x) { return x.identity == r.identity; });
  }
  // reissued_dot: an acknowledged upsert of a replaced device issued a dot the mesh or the sink
  // knew before its data directory was lost.
  void check_reissue(std::uint32_t p, const crdt::Dot& dot, std::string_view id, bool catalogue = false);
  // Eviction to stubs, refills and merged cold search (--sink; docs/sim.md, "Eviction, refills
  // and merged cold search").
  std::uint64_t evict_budget_ = 0;  // each node's payload budget in bytes (0: no eviction)
  Duration hot_window_;
  bool evicting() const { return sc_.sink && evict_budget_ > 0; }
  void evict_setup();
  void sink_evict(std::uint32_t p);
  // The sink's records of `c` and its whole context, read page by page (SinkService::bootstrap).
  // nullopt when the sink holds no `c` yet; an error when a page is refused or does not decode.
  Result<std::optional<crdt::Delta>> sink_contents() const;
  // evicted_unacked: every stub `s` holds stands for an entry the sink holds, or one whose dot
  // its context covers (removed at the sink: the payload is no longer needed).
  void check_stubs_held(std::uint32_t p, const crdt::ORMap& s, const crdt::Delta* at_sink, const char* when);
  // `s` with each stub's payload replaced by the client's bytes for its dot (a stub and the entry
  // it stands for are the same CRDT state, docs/tiers.md). With `report` (the final checks), only
  // when their digest is the stub's: another digest is a stub_digest violation and the stub stays.
  // Without (the convergence check), whatever the digest: digests are judged at the end, and a
  // wrong one must not keep the mesh from converging and draining.
  crdt::ORMap unstub(const crdt::ORMap& s, std::uint32_t p, bool report);
  // A get that refills a stub from the sink, as MeshHost::get_with_cold does.
  struct ColdRead {
    node::GetResult record;
    Status cold_error;       // why a stub came back as a stub (kColdUnavailable, kChecksumMismatch)
    bool refilled = false;   // record.siblings[0] was a stub, refilled from the sink
  };
  Result<ColdRead> cold_get(std::uint32_t p, const std::string& id);
  // A refilled read's value is the client's bytes of its dot (refill_mismatch), and that dot was
  // not deleted (`removed`: by an acknowledged remove the reader must respect; cold_deleted).
  void judge_refill(std::uint32_t p, const std::string& id, const ColdRead& r, bool removed);
  // A search of `c` that includes the cold tier, merged at the node, as MeshHost::search_with_cold
  // does: the local hits and the sink's (none while it is out).
  Result<std::vector<node::ColdHit>> search_with_cold(std::uint32_t p, const std::vector<float>& q,
                                                      const std::vector<node::Hit>& local);
  // During chaos: a search with the cold tier at p never returns a cold hit whose dots p's own
  // acknowledged removes deleted (cold_deleted; the sink may not have the remove yet).
  void cold_search_read(std::uint32_t p, const std::vector<float>& q, const std::vector<node::Hit>& local);
  void loop();
  // A restore or clone (docs/sim.md, "Restores and clones"): `source`'s store is copied at
  // `copy_at`; at `at`, `target` (the same peer for a restore) is stopped, put on the copy and
  // restarted after `downtime`.
  struct Restore {
    bool clone = false;
    bool detected = false;  // the restore path took a new incarnation before the first open
    // An undetected clone (drawn clones that are not detected): the target runs on the copy under
    // the source's replica id, as a device cloned with its identity and its data directory's
    // fingerprint does; only D48's fresh incarnation at the first write keeps their dots apart.
    bool twin = false;
    bool twin_active = false;       // the twin runs under the source's id (until the heal)
    crdt::ReplicaId twin_own;       // the target's own id before it became the twin
    std::uint32_t source = 0;
    std::uint32_t target = 0;
    Duration copy_at;
    Duration at;
    Duration downtime;
    std::optional<Image> image;
    bool applied = false;  // the copy was put on `target` (or will never be)
  };
  std::vector<Restore> restores_;
  void take_copy(std::uint32_t i);
  void restore(std::uint32_t i);
  // After a restore or clone: every oracle forgets the acknowledged operations no replica holds
  // any more (Oracle::forget_unheld), and what depends on them.
  void forget_lost();
  // Peer p's state of `collection` ("" for the catalogue) as its store holds it, also while it is
  // down (read through a throwaway node on a copy of its store).
  Result<crdt::ORMap> durable_state(std::uint32_t p, std::string_view collection);
  // The state of `collection` ("" for the catalogue) in a copy of peer p's store.
  Result<crdt::ORMap> image_state(const Image& img, std::uint32_t p, std::string_view collection);
  // One collection the workload writes: its name and its oracle.
  struct Target {
    std::string_view name;
    Oracle* oracle;
  };

  void setup();
  [[nodiscard]] bool open_node(std::uint32_t p);
  // Follows a change of the node's incarnation (traced; never backwards: identity).
  void note_incarnation(std::uint32_t p);
  // A fault of the scenario file's schedule (sc_.plan->faults[i]).
  void planned_fault(std::uint32_t i);
  // Adds a line to the timeline (scenario files only).
  void mark(int peer, std::string kind, std::string detail = {}) {
    if (sc_.plan) timeline_.push_back(TimelineEvent{Duration::nanos(now_.ns()), peer, std::move(kind), std::move(detail)});
  }
  std::vector<TimelineEvent> timeline_;
  void crash(std::uint32_t p);
  // A peer whose process died inside a store call: destroyed now, restarted at once (`now`) or
  // after its drawn downtime. Returns true when it was reaped.
  bool reap(std::uint32_t p, bool now = false);
  // After a client operation failed: true when the process died in its commit and the commit
  // landed (the node is reopened at once; the caller records the operation as done).
  bool landed_restart(std::uint32_t p);
  // After a client operation returned OK: reopens the node at once when the process died inside
  // the call after its commit. False when it could not reopen (the operation is not recorded).
  bool died_after_commit(std::uint32_t p);
  StoreMode store_mode() const {
    return sc_.mutation == Mutation::kNoSyncStore ? StoreMode::kNoSync
           : sc_.mutation == Mutation::kTornCommit ? StoreMode::kTorn
                                                   : StoreMode::kHonest;
  }
  void after_input(std::uint32_t p);
  void drain(std::uint32_t p);
  void schedule_wake(std::uint32_t p);
  void refresh_views();
  // An undetected clone's links: true when the runtime would refuse the link a-b.
  void reidentify_twin(Restore& r);
  bool twin_refused(std::uint32_t a, std::uint32_t b) const;
  // True when a or b shares its replica id with another device.
  bool twin_shared(std::uint32_t a, std::uint32_t b) const;
  void deliver(Event& ev);
  void client_op();
  void data_op(std::uint32_t p, double r, const Target& t);
  void catalogue_op(std::uint32_t p);
  void check_causality(std::uint32_t p, const crdt::ORMap& before, const crdt::Entry& fresh, std::string_view id);
  void fault();
  void heal();
  bool check_converged();
  void sample_contexts();
  void final_checks();
  void client_checks(std::uint32_t p, const Target& t);
  void catalogue_checks(std::uint32_t p);
  void search_check(std::uint32_t p, Rng& rng);
  void stranger_hello();
  // A known peer turned buggy sends a well-formed delta that breaks the join laws (kind 0: one
  // dot on two records; kind 1: a context claiming the receiver's own dots beyond its counter).
  void hostile_delta(std::uint32_t kind);
  // Session guarantees of a client on peer p, checked on a read of `id` (docs/sim.md).
  void session_read(std::uint32_t p, const std::string& id);
  void search_holds(std::uint32_t p, const std::vector<node::Hit>& hits);
  // The delta path within a bound: after convergence, probe writes on random peers must reach
  // every peer within the bound of the pair (delta_bound) on the healed network.
  Duration hop_bound(std::uint32_t a, std::uint32_t b) const;
  std::vector<Duration> delta_bounds(std::uint32_t from) const;
  void start_probes();
  void probe_write(int i);
  void probe_arrivals(std::uint32_t p, const char* by);
  void probe_deadline();
  Result<crdt::ORMap> state(std::uint32_t p, std::string_view collection = kCollection);
  // The node's replicated catalogue, read from its store (docs/node-format.md, meta/node.catalogue).
  Result<crdt::ORMap> catalogue(std::uint32_t p);
  bool live(std::uint32_t p, std::string_view collection) const;
  void violation(std::string kind, std::string detail);
  node::RecordValue random_value();
  std::vector<float> random_vector(Rng& rng);
  // Large seeds: one batch of the initial load (records [first, first + 100)).
  void bulk_load(std::uint32_t first);
  std::uint32_t dim_ = kDim;
  std::optional<std::uint32_t> bulk_first_;  // set while data_op runs a bulk_load batch
  std::vector<std::vector<float>> centers_;  // large seeds: cluster centers
  std::vector<std::vector<float>> axes_;     // large seeds: kLargeIntrinsic axes per center
  node::CollectionSpec spec_of(std::string_view name) const;
  node::NodeOptions options_for(std::uint32_t p);
  // The peer's local monotonic time at virtual time `t` (its timers drift), and back.
  MonoTime local(std::uint32_t p, MonoTime t) const;
  MonoTime global(std::uint32_t p, MonoTime local_time) const;
  node::Tier tier(std::uint32_t a, std::uint32_t b) const {
    return net_.same_site(a, b) ? node::Tier::kHot : node::Tier::kWarm;
  }
  void push(MonoTime at, Event ev) { queue_.push(at, std::move(ev)); }
  std::size_t max_outbox() const { return sc_.mutation == Mutation::kTinyOutbox ? 1 : kMaxOutbox; }

  Scenario sc_;
  Rng root_;
  Rng incarnation_rng_;  // NodeOptions::entropy of every peer (its own stream)
  Trace trace_;
  Network net_;
  EventQueue<Event> queue_;
  std::vector<Peer> peers_;
  std::map<crdt::ReplicaId, std::uint32_t> index_of_;
  Oracle oracle_;            // records of "c"
  Oracle oracle_second_;     // records of "d"
  Oracle oracle_catalogue_;  // the catalogue: name -> spec, created and dropped
  // Dots of "d" that an acknowledged drop deleted: none may be seen again.
  std::set<crdt::Dot> dropped_dots_;
  // What clients asked to store, by (collection, dot): the client-side oracle.
  std::map<std::pair<std::string, crdt::Dot>, node::RecordValue> client_values_;
  std::vector<Violation> violations_;
  SeedStats stats_;
  Rng workload_rng_{0};
  Rng fault_rng_{0};
  Rng corrupt_rng_{0};
  MonoTime now_;
  MonoTime heal_at_;
  bool healed_ = false;
  std::uint32_t twins_ = 0;  // undetected clones put in place (two devices under one replica id)
  bool done_ = false;
  bool converged_ = false;
  bool views_dirty_ = false;
  // Probes: 0 before convergence, 1 while probes run, 2 after their deadline.
  int probe_phase_ = 0;
  std::int64_t converge_ms_ = 0;
  Duration probe_window_;  // from the first convergence to the probes' deadline
  struct Probe {
    std::string id;
    std::uint32_t origin = 0;
    crdt::Dot dot;
    MonoTime at;
    std::vector<std::optional<MonoTime>> arrived;  // per peer
    std::vector<Duration> bound;                  // per peer
  };
  std::vector<Probe> probes_;
  Rng hostile_rng_{0};
  // Dots the hostile peer put on the wire that no receiver may keep (kind 0), and (replica,
  // counter) claims no receiver may merge (kind 1).
  std::set<crdt::Dot> hostile_dots_;
  std::vector<crdt::Dot> unsure_claims_;  // kind-2 claims whose batch a crash struck (final_checks)
  // Per peer: the dots its client session has written or read, by id (read-your-writes,
  // monotonic reads), and the dots its acknowledged removes deleted (never returned again).
  std::vector<std::map<std::string, std::set<crdt::Dot>>> session_seen_;
  std::vector<std::set<crdt::Dot>> session_removed_;
  Rng probe_rng_{0};  // a peer was reaped: refresh the up/down views after this event
  std::uint64_t partition_gen_ = 0;
  std::uint32_t n_ = 0;
  std::uint32_t sites_ = 0;
  std::uint32_t id_pool_ = 0;
  double corrupt_rate_ = 0.0;
  Duration op_mean_;
  Duration fault_mean_;
  Duration chaos_;
  std::string scenario_line_;
};

// Both stay within int64 for runs below ~2.5 hours of virtual time (ns x 10^6).
MonoTime Simulation::local(std::uint32_t p, MonoTime t) const {
  const std::int64_t ns = t.ns();
  return MonoTime::from_ns(ns + ns / 1'000'000 * peers_[p].drift_ppm + ns % 1'000'000 * peers_[p].drift_ppm / 1'000'000);
}

MonoTime Simulation::global(std::uint32_t p, MonoTime local_time) const {
  // The first virtual time whose local time reaches `local_time`.
  if (local_time.ns() <= 0) return local_time;
  const std::int64_t rate = 1'000'000 + peers_[p].drift_ppm;
  // No overflow at any int64 time (the quotient is at most the time, the remainder's product at
  // most 1e12); before --sink's long outages this returned local_time unchanged past ~76 minutes,
  // which no run reached, so every other seed keeps its trace.
  std::int64_t t = (local_time.ns() / rate) * 1'000'000 + (local_time.ns() % rate) * 1'000'000 / rate;
  while (t > 0 && local(p, MonoTime::from_ns(t - 1)) >= local_time) --t;
  while (local(p, MonoTime::from_ns(t)) < local_time) ++t;
  return MonoTime::from_ns(t);
}

node::NodeOptions Simulation::options_for(std::uint32_t p) {
  node::NodeOptions o;
  o.identity = peers_[p].wiped ? crdt::replica_for_testing(p + 1, 1) : peers_[p].replica;
  // The node reads its local time plus its skew; the Simulation outlives every Node.
  o.wall_clock = [this, p]() { return WallTime::from_ns(kEpochNs + local(p, now_).ns() + peers_[p].skew.ns()); };
  o.build_threads = 1;
  // Index rebuilds run inline, in order, and distances use one fixed kernel table: no thread or
  // CPU feature can change a result.
  o.rebuild_executor = [](std::function<void()> job) { job(); };
  o.index_isa = index::Isa::kScalar;
  // Small, so offline periods outlast what the buffer reaches back to and repair must run;
  // without repair, large, so the delta path alone must deliver everything.
  o.delta_buffer_max = sc_.repair ? 64 : 1'000'000;
  // --sink keeps these: the buffer holds the sink's backlog (never trimmed past its cursor), and
  // at 64 entries peers' deltas overflow it in sink outages, so feeds fall back to full-state
  // uploads, whose removed dots must carry the deletes and overwrites of what the sink already
  // holds (D74): docs/sim.md, "The sink and its outages".
  o.sync.repair_enabled = sc_.repair;
  o.mutations.lww_join = sc_.mutation == Mutation::kLww;
  o.mutations.lazy_counter = sc_.mutation == Mutation::kLazyCounter;
  o.mutations.trim_before_ack = sc_.mutation == Mutation::kTrimBeforeAck;
  o.mutations.early_context_merge = sc_.mutation == Mutation::kEarlyContextMerge;
  o.mutations.hlc_ignore_remote = sc_.mutation == Mutation::kHlcIgnoreRemote;
  o.mutations.winner_by_dot = sc_.mutation == Mutation::kWinnerByDot;
  o.mutations.drop_keeps_records = sc_.mutation == Mutation::kDropKeepsRecords;
  o.mutations.recreate_keeps_hidden = sc_.mutation == Mutation::kRecreateKeepsHidden;
  o.mutations.catalogue_not_relayed = sc_.mutation == Mutation::kCatalogueNotRelayed;
  o.mutations.keep_own_claims = sc_.mutation == Mutation::kKeepOwnClaims;
  o.mutations.stale_incarnation = sc_.mutation == Mutation::kStaleIncarnation;
  o.mutations.evict_unacked = sc_.mutation == Mutation::kEvictUnacked;
  // New incarnations take a random step (docs/crdt.md, "Incarnations"): bits from the seed's own
  // stream, drawn in event order, so a seed still gives one run.
  o.entropy = [this]() { return incarnation_rng_.next_u64(); };
  return o;
}

void Simulation::violation(std::string kind, std::string detail) {
  trace_.line(now_, kNoPeer, "violation", kind + " " + detail);
  violations_.push_back({std::move(kind), std::move(detail)});
}

Result<crdt::ORMap> Simulation::state(std::uint32_t p, std::string_view collection) {
  SHOAL_ASSERT(peers_[p].node != nullptr);
  // The simulator's own reads do not move an armed crash point.
  peers_[p].faulty->set_observing(true);
  auto s = peers_[p].node->crdt_state_for_testing(collection);
  peers_[p].faulty->set_observing(false);
  return s;
}

Result<crdt::ORMap> Simulation::catalogue(std::uint32_t p) { return catalogue_in(*peers_[p].store); }

Result<crdt::ORMap> catalogue_in(store::Store& st) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, st.begin_read());
  auto bytes = txn->get(store::Table::kMeta, kCatalogueKey);
  crdt::ORMap map;
  if (!bytes.ok()) {
    if (bytes.status().code() == Code::kNotFound) return map;
    return bytes.status();
  }
  SHOAL_ASSIGN_OR_RETURN(crdt::Delta d,
                         crdt::decode_delta(std::span<const std::uint8_t>(
                             reinterpret_cast<const std::uint8_t*>(bytes->data()), bytes->size())));
  (void)map.join(d);
  return map;
}

bool Simulation::live(std::uint32_t p, std::string_view collection) const {
  return peers_[p].node != nullptr && peers_[p].node->collection_info(collection).ok();
}

std::vector<float> Simulation::random_vector(Rng& rng) {
  std::vector<float> v(dim_);
  if (centers_.empty()) {
    for (float& x : v) x = rng.uniform_float(-1.0f, 1.0f);
    return v;
  }
  // Large seeds: a cluster center plus a point of its 4-d subspace plus a little noise.
  const std::size_t c = rng.uniform(centers_.size());
  v = centers_[c];
  for (std::size_t j = 0; j < kLargeIntrinsic; ++j) {
    const float g = static_cast<float>(rng.normal(0.0, 0.3));
    const std::vector<float>& axis = axes_[c * kLargeIntrinsic + j];
    for (std::uint32_t i = 0; i < dim_; ++i) v[i] += g * axis[i];
  }
  for (float& x : v) x += static_cast<float>(rng.normal(0.0, 0.02));
  return v;
}

node::RecordValue Simulation::random_value() {
  node::RecordValue v;
  v.vector = random_vector(workload_rng_);
  // Metadata of every type and a model tag, so the client-side oracle compares them too.
  const std::uint64_t shape = workload_rng_.uniform(4);
  if (shape >= 1) v.metadata.fields.push_back({"n", static_cast<std::int64_t>(workload_rng_.uniform_range(-1000, 1000))});
  if (shape >= 2) v.metadata.fields.push_back({"s", std::string("tag-") + std::to_string(workload_rng_.uniform(100))});
  if (shape >= 3) {
    v.metadata.fields.push_back({"f", workload_rng_.uniform_double()});
    v.metadata.fields.push_back({"b", workload_rng_.bernoulli(0.5)});
  }
  v.metadata.normalize();
  if (workload_rng_.bernoulli(0.5)) v.model = "m" + std::to_string(workload_rng_.uniform(3));
  return v;
}

node::CollectionSpec Simulation::spec_of(std::string_view name) const {
  node::CollectionSpec spec;
  spec.name = std::string(name);
  spec.dimension = dim_;
  spec.metric = sc_.mutation == Mutation::kWrongMetric && name == kCollection ? node::Metric::kInnerProduct : node::Metric::kL2;
  if (sc_.large_records > 0) return spec;  // the product's default index parameters
  spec.m = 8;
  spec.ef_construction = 32;
  spec.ef_search = 32;
  return spec;
}

bool Simulation::open_node(std::uint32_t p) {
  Peer& peer = peers_[p];
  node::NodeOptions options = options_for(p);
  peer.faulty->restarted();
  // The incarnation the store holds (a crash may have landed a commit that took a new one before
  // the node could use it): the node must reopen under exactly that, never below what it used.
  std::uint32_t expected = peer.incarnation;
  bool read_refused = true;
  {
    peer.faulty->set_observing(true);
    auto txn = peer.store->begin_read();
    if (txn.ok()) {
      auto rep = (*txn)->get(store::Table::kMeta, node::format::kReplicaKey);
      crdt::ReplicaId stored;
      // A read the store's injected faults refused tells nothing: the store may hold a later one.
      read_refused = !rep.ok() && rep.status().code() != Code::kNotFound;
      if (rep.ok() && crdt::ReplicaId::decode(*rep, stored) && stored.incarnation > expected) expected = stored.incarnation;
    }
    peer.faulty->set_observing(false);
  }
  auto opened = node::Node::open(*peer.faulty, std::move(options));
  ++peer.gen;
  if (!opened.ok()) {
    trace_.line(now_, static_cast<int>(p), "open_failed", opened.status().to_string());
    return false;
  }
  peer.node = std::move(opened).value();
  crdt::ReplicaId want = peer.replica;
  want.incarnation = expected;
  // An open writes no dot, so it takes no fresh incarnation (D48): exactly the store's, unless
  // the read above was refused. (Seed 1654: a crash between create_collection's commits left a
  // collection without its catalogue entry, and the open wrote one under a fresh incarnation;
  // the create is one transaction since D56.)
  const crdt::ReplicaId& got = peer.node->issuer();
  if (read_refused ? got.identity != want.identity || got.incarnation < want.incarnation : got != want) {
    violation("identity", peer_name(p) + " reopened as " + peer.node->issuer().to_string() + ", not " + want.to_string());
  }
  peer.incarnation = peer.node->issuer().incarnation;
  std::fill(peer.view.begin(), peer.view.end(), std::uint8_t{0});
  peer.wake_at = MonoTime::from_ns(INT64_MAX);
  if (sc_.sink) sink_enable(p);
  // A replaced device that has not finished its bootstrap runs it (again) from the start: a run
  // lives in the process, as MeshHost::bootstrap_from_sink's does.
  if (peer.boot.pending) {
    peer.boot.active = false;
    push(now_ + peer.boot.delay, Event{Ev::kBootStart, p, 0, peer.gen});
  }
  return true;
}

void Simulation::setup() {
  Rng topo = root_.fork(1);
  Rng netr = root_.fork(2);
  workload_rng_ = root_.fork(3);
  fault_rng_ = root_.fork(4);
  corrupt_rng_ = root_.fork(6);
  probe_rng_ = root_.fork(8);
  hostile_rng_ = root_.fork(9);
  Rng clocks = root_.fork(7);
  n_ = sc_.peers ? std::clamp<std::uint32_t>(*sc_.peers, 1, 64) : 2 + static_cast<std::uint32_t>(topo.uniform(15));
  // Large seeds keep the mesh small (2-4 peers): every convergence check compares whole states.
  if (sc_.large_records > 0 && !sc_.peers) n_ = 2 + n_ % 3;
  const std::uint32_t max_sites = std::min<std::uint32_t>(4, n_);
  sites_ = sc_.sites ? std::clamp<std::uint32_t>(*sc_.sites, 1, n_) : 1 + static_cast<std::uint32_t>(topo.uniform(max_sites));
  std::vector<std::uint32_t> site_of(n_);
  for (std::uint32_t i = 0; i < n_; ++i) {
    site_of[i] = i < sites_ ? i : static_cast<std::uint32_t>(topo.uniform(sites_));
  }
  // Topology (docs/sim.md, "Topology"): inside a site a full mesh (D16); across sites a full
  // mesh, a chain of sites, or a star through site 0, each cross-site hop one link between the
  // sites' gateways (peer s is site s's gateway).
  Topology shape = Topology::kFullMesh;
  if (sites_ >= 2) {
    const double x = topo.uniform_double();
    shape = x < 0.35 ? Topology::kFullMesh : x < 0.7 ? Topology::kChain : Topology::kStar;
    if (sc_.plan && sc_.plan->topology) shape = static_cast<Topology>(*sc_.plan->topology);
  }
  NetworkFaults nf;
  if (sc_.faults) {
    nf.loss = topo.uniform_double() * 0.3;
    nf.duplication = topo.uniform_double() * 0.5;
    nf.reorder = topo.uniform_double() * 0.2;
    // Half the faulty seeds have lying links: up to 5% of frames altered.
    corrupt_rate_ = topo.bernoulli(0.5) ? topo.uniform_double() * 0.05 : 0.0;
  }
  net_ = Network(site_of, nf, netr, shape);
  stats_.hops = net_.site_diameter();
  id_pool_ = 8 + static_cast<std::uint32_t>(topo.uniform(41));
  op_mean_ = Duration::millis(topo.uniform_range(15, 50));
  fault_mean_ = Duration::millis(topo.uniform_range(150, 800));
  chaos_ = Duration::millis(topo.uniform_range(2000, 8000));
  if (sc_.plan) {
    chaos_ = sc_.plan->chaos;
    op_mean_ = sc_.plan->op_mean;
  }
  if (sc_.large_records > 0) {
    // Large seeds (docs/sim.md): clustered vectors of low intrinsic dimension, every id loaded
    // once in batches during chaos; the workload then updates and deletes among them.
    dim_ = std::clamp<std::uint32_t>(sc_.large_dim, 4, 1024);
    id_pool_ = sc_.large_records;
    Rng lr = root_.fork(10);
    centers_.resize(kLargeClusters);
    for (auto& c : centers_) {
      c.resize(dim_);
      for (float& x : c) x = lr.uniform_float(-1.0f, 1.0f);
    }
    axes_.resize(kLargeClusters * kLargeIntrinsic);
    for (auto& a : axes_) {
      a.resize(dim_);
      for (float& x : a) x = static_cast<float>(lr.normal(0.0, 1.0 / std::sqrt(static_cast<double>(dim_)))) * 4.0f;
    }
    chaos_ = std::max(chaos_, Duration::millis(20 + 10 * ((id_pool_ + kLargeBatch - 1) / kLargeBatch)));
  }

  peers_.resize(n_);
  session_seen_.resize(n_);
  session_removed_.resize(n_);
  std::int64_t max_skew_ms = 0;
  std::int64_t max_drift = 0;
  for (std::uint32_t i = 0; i < n_; ++i) {
    Peer& p = peers_[i];
    p.store = std::make_unique<store::MemoryStore>();
    p.faulty = std::make_unique<FaultyStore>(*p.store, store_mode());
    p.replica = crdt::replica_for_testing(i + 1, 0);
    p.view.assign(n_, 0);
    if (sc_.faults) {
      p.skew = Duration::millis(clocks.uniform_range(0, kMaxInitialSkewMs));
      p.drift_ppm = clocks.uniform_range(-kMaxDriftPpm, kMaxDriftPpm);
    }
    if (i == 0 && sc_.mutation == Mutation::kSkewBeyondBound) p.skew += Duration::seconds(400);
    max_skew_ms = std::max(max_skew_ms, p.skew.ms());
    max_drift = std::max(max_drift, p.drift_ppm < 0 ? -p.drift_ppm : p.drift_ppm);
    index_of_[p.replica] = i;
  }
  scenario_line_ = fmt("peers=%u sites=%u topo=%s hops=%u loss=%.3f dup=%.3f reorder=%.3f corrupt=%.3f ids=%u "
                       "op_mean_ms=%lld fault_mean_ms=%lld chaos_ms=%lld max_skew_ms=%lld max_drift_ppm=%lld "
                       "faults=%s repair=%s mutation=%s",
                       n_, sites_, topology_name(shape), stats_.hops, nf.loss, nf.duplication, nf.reorder,
                       corrupt_rate_, id_pool_, static_cast<long long>(op_mean_.ms()),
                       static_cast<long long>(fault_mean_.ms()), static_cast<long long>(chaos_.ms()),
                       static_cast<long long>(max_skew_ms), static_cast<long long>(max_drift),
                       sc_.faults ? "on" : "off", sc_.repair ? "on" : "off", mutation_name(sc_.mutation));
  if (sc_.large_records > 0) scenario_line_ += fmt(" large=%u dim=%u", id_pool_, dim_);
  if (sc_.sink) evict_setup();  // before the nodes open: sink_enable gives each its budget
  trace_.line(now_, kNoPeer, "scenario", scenario_line_);

  // read-only-disk: peer 0's store refuses every commit (and again after the heal).
  if (sc_.mutation == Mutation::kReadOnlyDisk) peers_[0].store->fail_next_writes(UINT32_MAX);
  for (std::uint32_t i = 0; i < n_; ++i) {
    if (!open_node(i)) {
      violation("open", peer_name(i) + " failed to open");
      continue;
    }
    // Every peer creates both collections (concurrent creates of one name merge); the catalogue
    // oracle records each create as an acknowledged operation.
    for (std::string_view name : {kCollection, kSecond}) {
      auto before = catalogue(i);
      const Status st = peers_[i].node->create_collection(spec_of(name));
      auto after = catalogue(i);
      if (!st.ok() || !before.ok() || !after.ok()) {
        violation("open", peer_name(i) + " create_collection " + std::string(name) + ": " + st.to_string());
        continue;
      }
      (void)oracle_catalogue_.upsert(peers_[i].replica, name, entries_of(*before, name), entries_of(*after, name),
                                     violations_);
    }
  }
  refresh_views();
  push(now_ + Duration::millis(1), Event{Ev::kClientOp});
  if (sc_.faults) push(now_ + Duration::millis(50), Event{Ev::kFault});
  if (sc_.mutation == Mutation::kStranger) push(now_ + Duration::millis(100), Event{Ev::kStranger});
  // Two hostile batches per faulty seed (one of each kind) at random times during chaos.
  if ((sc_.faults || sc_.mutation == Mutation::kHostileSplit) && n_ >= 2) {
    // Kind 2 (a claim on the sender's own dot) only with repair: the forged batch reaches one
    // receiver, which does not relay it to its hot peers (D16), so only repair can spread it.
    const std::uint32_t kinds = !sc_.hostile_own_context ? 1u : sc_.repair ? 3u : 2u;
    for (std::uint32_t kind = 0; kind < kinds; ++kind) {
      push(now_ + Duration::millis(hostile_rng_.uniform_range(100, std::max<std::int64_t>(200, chaos_.ms() - 100))), Event{Ev::kHostile, kind});
    }
  }
  push(now_ + Duration::millis(200), Event{Ev::kSample});
  for (std::uint32_t first = 0; sc_.large_records > 0 && first < id_pool_; first += kLargeBatch) {
    push(now_ + Duration::millis(5 + 10 * (first / kLargeBatch)), Event{Ev::kBulk, first});
  }
  if (sc_.plan) {
    for (std::uint32_t i = 0; i < sc_.plan->faults.size(); ++i) {
      const PlannedFault& f = sc_.plan->faults[i];
      if (f.kind != PlannedFault::Kind::kRestore && f.kind != PlannedFault::Kind::kClone) {
        push(now_ + f.at, Event{Ev::kPlanned, i});
        continue;
      }
      for (std::uint32_t t : f.peers) {
        Restore r;
        r.clone = f.kind == PlannedFault::Kind::kClone;
        r.detected = f.detected;
        r.target = t;
        r.source = r.clone ? f.source : t;
        r.copy_at = f.copy_at;
        r.at = f.at;
        r.downtime = f.length;
        restores_.push_back(std::move(r));
      }
    }
  }
  // Drawn restores and clones (docs/sim.md, "Restores and clones"), with repair only: a restored
  // peer has acknowledged deltas its copy lost, which its peers never send again; only repair
  // brings them back. Their own stream (not forked from the root), so other seeds keep their
  // traces.
  // Not with --sink: a restore or clone makes the mesh forget acknowledged writes the sink
  // already holds, and nothing brings them back to the mesh or removes them from the sink
  // (docs/sim.md, "The sink and its outages").
  if (!sc_.plan && sc_.faults && sc_.repair && n_ >= 2 && !sc_.sink) {
    Rng rr(sc_.seed * 0x9E3779B97F4A7C15ull + 11);
    for (int kind = 0; kind < 2; ++kind) {
      if (!rr.bernoulli(kind == 0 ? 0.25 : 0.15)) continue;
      Restore r;
      r.clone = kind == 1;
      r.target = static_cast<std::uint32_t>(rr.uniform(n_));
      r.source = r.target;
      if (r.clone) {
        r.source = static_cast<std::uint32_t>(rr.uniform(n_ - 1));
        if (r.source >= r.target) ++r.source;
      }
      // Half are undetected rollbacks by default (the node's fresh incarnation at its first write
      // closes the window they used to open, D48); --rollbacks makes them all undetected.
      r.detected = !sc_.rollbacks && rr.bernoulli(0.5);
      // Not onto a peer a restore also puts back on a copy (the copy would hold its old id).
      r.twin = r.clone && !r.detected &&
               std::none_of(restores_.begin(), restores_.end(), [&](const Restore& o) { return o.target == r.target; });
      r.copy_at = Duration::millis(chaos_.ms() / 10 + rr.uniform_range(0, chaos_.ms() * 4 / 10));
      r.at = r.copy_at + Duration::millis(rr.uniform_range(300, std::max<std::int64_t>(301, chaos_.ms() * 9 / 10 - r.copy_at.ms())));
      r.downtime = Duration::millis(rr.uniform_range(50, 2000));
      restores_.push_back(std::move(r));
    }
  }
  // Device replacements (docs/sim.md, "Device replacement and bootstrap from the sink"): in 35%
  // of --sink seeds with repair and faults, one device loses its data directory during chaos and
  // a new one bootstraps from the sink. Only with repair: the new device's peers never re-send
  // the deltas they sent the old one; the bootstrap and repair bring them. Their own stream, so
  // the other draws stay what they were.
  if (!sc_.plan && sc_.sink && sc_.faults && sc_.repair && n_ >= 2) {
    Rng rr(sc_.seed * 0x9E3779B97F4A7C15ull + 31);
    boot_rng_ = rr.fork(1);
    if (rr.bernoulli(0.35)) {
      Replacement r;
      r.target = static_cast<std::uint32_t>(rr.uniform(n_));
      r.at = Duration::millis(chaos_.ms() / 5 + rr.uniform_range(0, chaos_.ms() * 3 / 5));
      r.downtime = Duration::millis(rr.uniform_range(50, 2000));
      r.boot_delay = Duration::millis(rr.uniform_range(0, 1000));
      scenario_line_ += fmt(" replace=p%02u@%lldms", r.target, static_cast<long long>(r.at.ms()));
      replacements_.push_back(r);
    }
  }
  for (std::uint32_t i = 0; i < replacements_.size(); ++i) push(now_ + replacements_[i].at, Event{Ev::kReplace, i});
  for (std::uint32_t i = 0; i < restores_.size(); ++i) {
    push(now_ + restores_[i].copy_at, Event{Ev::kCopy, i});
    push(now_ + restores_[i].at, Event{Ev::kRestore, i});
  }
  push(now_ + chaos_, Event{Ev::kHeal});
  if (sc_.sink) sink_setup();
}

void Simulation::bulk_load(std::uint32_t first) {
  if (healed_) return;
  const auto p = static_cast<std::uint32_t>(workload_rng_.uniform(n_));
  if (peers_[p].node == nullptr) {
    // The peer is down: the batch goes to the next live one (the load must land somewhere).
    push(now_ + Duration::millis(10), Event{Ev::kBulk, first});
    return;
  }
  bulk_first_ = first;
  data_op(p, 0.6, Target{kCollection, &oracle_});
  bulk_first_.reset();
  after_input(p);
}

void Simulation::planned_fault(std::uint32_t i) {
  if (healed_) return;
  const PlannedFault& f = sc_.plan->faults[i];
  std::string who;
  for (std::uint32_t p : f.peers) who += (who.empty() ? "" : ",") + std::to_string(p);
  if (f.kind == PlannedFault::Kind::kCut) {
    const std::string desc = net_.isolate(f.peers);
    ++stats_.partitions;
    trace_.line(now_, kNoPeer, "partition", desc + fmt(" for_ms=%lld", static_cast<long long>(f.length.ms())));
    for (std::uint32_t p : f.peers) mark(static_cast<int>(p), "cut", fmt("for %lld ms", static_cast<long long>(f.length.ms())));
    push(now_ + f.length, Event{Ev::kUnpartition, 0, 0, ++partition_gen_});
    refresh_views();
    return;
  }
  for (std::uint32_t p : f.peers) {
    if (peers_[p].node == nullptr) continue;
    crash(p);
    trace_.line(now_, static_cast<int>(p), "crash", fmt("planned restart_in_ms=%lld", static_cast<long long>(f.length.ms())));
    mark(static_cast<int>(p), "crash", fmt("for %lld ms", static_cast<long long>(f.length.ms())));
    push(now_ + f.length, Event{Ev::kRestart, p, 0, peers_[p].gen});
  }
  refresh_views();
}

void Simulation::crash(std::uint32_t p) {
  Peer& peer = peers_[p];
  peer.node.reset();
  peer.faulty->crash_now();
  ++peer.gen;
  std::fill(peer.view.begin(), peer.view.end(), std::uint8_t{0});
  ++stats_.crashes;
}

bool Simulation::landed_restart(std::uint32_t p) {
  // The process died inside this client operation. When the crash caught the operation's commit
  // and the commit reached the disk, the write happened although the client got no answer: the
  // node restarts at once and the oracle records the effect as for an acknowledged one (what a
  // client learns by reading after a timeout). Otherwise nothing of it may remain.
  Peer& peer = peers_[p];
  if (peer.node == nullptr || !peer.faulty->crashed()) return false;
  const bool landed = peer.faulty->commit_fate() == CommitFate::kLanded && peer.faulty->crashed_in() == "commit";
  reap(p, landed);
  if (!landed) return false;
  if (peer.node == nullptr) {
    violation("reopen", peer_name(p) + " could not reopen after a crash whose commit landed");
    return false;
  }
  ++stats_.landed_client_ops;
  return true;
}

bool Simulation::died_after_commit(std::uint32_t p) {
  // The call returned OK, but the process died inside it after its commit (a store read the
  // node makes after committing, e.g. to index the vector it stored, struck the armed crash). No
  // answer would have reached the client, yet the write is durable: as for a landed commit, the
  // node restarts at once and the operation counts as done.
  Peer& peer = peers_[p];
  if (peer.node == nullptr || !peer.faulty->crashed()) return true;
  trace_.line(now_, static_cast<int>(p), "died_after_commit", "");
  reap(p, /*now=*/true);
  if (peer.node == nullptr) {
    violation("reopen", peer_name(p) + " could not reopen after dying past a commit");
    return false;
  }
  ++stats_.landed_client_ops;
  return true;
}

bool Simulation::reap(std::uint32_t p, bool now) {
  Peer& peer = peers_[p];
  if (peer.node == nullptr || !peer.faulty->crashed()) return false;
  const CommitFate fate = peer.faulty->commit_fate();
  ++stats_.crashes_in_op;
  if (fate == CommitFate::kLanded) ++stats_.commits_landed;
  trace_.line(now_, static_cast<int>(p), "crash_in_op",
              peer.faulty->crashed_in() + (fate == CommitFate::kLanded ? " landed" : fate == CommitFate::kLost ? " lost" : "") +
                  fmt(" restart_in_ms=%lld", static_cast<long long>(now ? 0 : peer.restart_after.ms())));
  crash(p);
  views_dirty_ = true;
  if (now) {
    if (open_node(p)) {
      trace_.line(now_, static_cast<int>(p), "restart", "at once");
    } else {
      push(now_ + Duration::millis(500), Event{Ev::kRestart, p, 0, peer.gen});
    }
  } else {
    push(now_ + peer.restart_after, Event{Ev::kRestart, p, 0, peer.gen});
  }
  return true;
}

void Simulation::after_input(std::uint32_t p) {
  if (peers_[p].node == nullptr) return;
  // A process that died inside a store call sends nothing more.
  if (reap(p)) return;
  note_incarnation(p);
  peers_[p].node->tick(local(p, now_));
  drain(p);
  schedule_wake(p);
}

void Simulation::note_incarnation(std::uint32_t p) {
  Peer& peer = peers_[p];
  const std::uint32_t now_inc = peer.node->issuer().incarnation;
  if (now_inc == peer.incarnation) return;
  if (now_inc < peer.incarnation || peer.node->issuer().identity != peer.replica.identity) {
    violation("identity", peer_name(p) + " issues under " + peer.node->issuer().to_string() + fmt(" after incarnation %u", peer.incarnation));
  }
  trace_.line(now_, static_cast<int>(p), "incarnation", peer.node->issuer().to_string());
  mark(static_cast<int>(p), "incarnation", peer.node->issuer().to_string());
  peer.incarnation = now_inc;
}

void Simulation::drain(std::uint32_t p) {
  std::vector<node::Outgoing> out = peers_[p].node->take_outbox();
  if (out.size() > max_outbox()) violation("unbounded", peer_name(p) + fmt(" outbox of %zu messages", out.size()));
  for (node::Outgoing& o : out) {
    auto it = index_of_.find(o.to);
    const char* name = transport::message_name(o.message);
    if (it == index_of_.end()) {
      violation("unknown_peer", peer_name(p) + " sent " + name + " to " + o.to.to_string());
      continue;
    }
    std::uint32_t to = it->second;
    if (!retired_.empty() && boot_retired(o.to)) {
      // A device whose data directory was lost: nobody answers under that identity any more.
      ++stats_.messages_dropped;
      trace_.line(now_, static_cast<int>(p), "send_drop", fmt("to=%s %s replaced", o.to.to_string().c_str(), name));
      continue;
    }
    if (twins_ > 0) {
      // Two devices under one replica id: the message goes on the link that is up, if any; an
      // identity a clone left behind (the target's own) has no device any more.
      for (std::uint32_t c = 0; c < n_; ++c) {
        if (peers_[c].replica == o.to && peers_[p].view[c] != 0) to = c;
      }
      if (peers_[to].replica != o.to) {
        ++stats_.messages_dropped;
        trace_.line(now_, static_cast<int>(p), "send_drop", fmt("to=%s %s retired", o.to.to_string().c_str(), name));
        continue;
      }
    }
    std::string bytes = transport::encode(o.message);
    ++stats_.messages_sent;
    stats_.bytes_sent += bytes.size();
    const std::size_t kind = o.message.index();
    if (std::holds_alternative<transport::DeltaBatch>(o.message)) stats_.delta_batch_bytes += bytes.size();
    if (kind >= 3) stats_.repair_bytes += bytes.size();
    if (bytes.size() > kMaxMessageBytes) violation("unbounded", peer_name(p) + fmt(" %s of %zu bytes", name, bytes.size()));
    LinkFate fate = net_.send(p, to, now_);
    if (fate.deliveries.empty()) {
      ++stats_.messages_dropped;
      trace_.line(now_, static_cast<int>(p), "send_drop", fmt("to=p%02u %s %zuB %s", to, name, bytes.size(), fate.drop_reason));
      continue;
    }
    trace_.line(now_, static_cast<int>(p), "send", fmt("to=p%02u %s %zuB x%zu", to, name, bytes.size(), fate.deliveries.size()));
    for (std::size_t i = 0; i < fate.deliveries.size(); ++i) {
      Event ev{Ev::kDeliver, p, to, peers_[p].life, i + 1 == fate.deliveries.size() ? std::move(bytes) : bytes};
      ev.replaced = peers_[to].replaced;
      // A lying link (before heal): the frame arrives altered.
      if (!healed_ && corrupt_rate_ > 0 && corrupt_rng_.bernoulli(corrupt_rate_) && !ev.bytes.empty()) {
        ev.original = ev.bytes;
        ev.corruption = static_cast<Corruption>(1 + corrupt_rng_.uniform(4));
        std::string& b = ev.bytes;
        switch (ev.corruption) {
          case Corruption::kBitFlip: {
            const std::uint64_t flips = 1 + corrupt_rng_.uniform(3);
            for (std::uint64_t f = 0; f < flips; ++f) {
              const std::size_t at = corrupt_rng_.uniform(b.size());
              b[at] = static_cast<char>(static_cast<unsigned char>(b[at]) ^ (1u << corrupt_rng_.uniform(8)));
            }
            break;
          }
          case Corruption::kTruncate: b.resize(corrupt_rng_.uniform(b.size())); break;
          case Corruption::kDouble: b += ev.original; break;
          case Corruption::kSplice: b += ev.original.substr(0, 1 + corrupt_rng_.uniform(ev.original.size())); break;
          case Corruption::kNone: break;
        }
        ++stats_.frames_corrupted;
      }
      push(fate.deliveries[i], std::move(ev));
    }
  }
}

void Simulation::schedule_wake(std::uint32_t p) {
  Peer& peer = peers_[p];
  std::optional<MonoTime> w = peer.node->next_wakeup();
  if (!w) return;
  // A wake-up at or before now is due at once; a small step keeps a busy node from spinning.
  // The node asks in its local (drifting) time.
  const MonoTime at = std::max(global(p, *w), now_ + Duration::micros(100));
  if (at >= peer.wake_at) return;
  peer.wake_at = at;
  push(at, Event{Ev::kWake, p, 0, peer.gen});
}

bool Simulation::twin_shared(std::uint32_t a, std::uint32_t b) const {
  for (std::uint32_t c = 0; c < n_; ++c) {
    if (c != a && peers_[c].replica.identity == peers_[a].replica.identity) return true;
    if (c != b && peers_[c].replica.identity == peers_[b].replica.identity) return true;
  }
  return false;
}

bool Simulation::twin_refused(std::uint32_t a, std::uint32_t b) const {
  if (twins_ == 0) return false;
  // Two devices under one replica id (an undetected clone): the runtime refuses a link to itself
  // and a second link to an identity already up on another device's link (mesh_host.cpp), so
  // the first link up keeps it until it goes down.
  const auto& ida = peers_[a].replica.identity;
  const auto& idb = peers_[b].replica.identity;
  if (ida == idb) return true;
  for (std::uint32_t c = 0; c < n_; ++c) {
    if (c != b && c != a && peers_[c].replica.identity == idb && peers_[a].view[c] != 0) return true;
    if (c != a && c != b && peers_[c].replica.identity == ida && peers_[b].view[c] != 0) return true;
  }
  return false;
}

void Simulation::refresh_views() {
  for (std::uint32_t a = 0; a < n_; ++a) {
    Peer& pa = peers_[a];
    if (pa.node == nullptr) continue;
    bool changed = false;
    for (std::uint32_t b = 0; b < n_; ++b) {
      if (a == b) continue;
      const bool want = net_.linked(a, b) && peers_[b].node != nullptr && !net_.detected_cut(a, b) &&
                        !net_.detected_cut(b, a) && !twin_refused(a, b);
      if (want == (pa.view[b] != 0)) continue;
      pa.view[b] = want ? 1 : 0;
      changed = true;
      if (want) {
        pa.node->peer_up(peers_[b].replica, tier(a, b), local(a, now_));
        trace_.line(now_, static_cast<int>(a), "peer_up", peer_name(b) + (tier(a, b) == node::Tier::kHot ? " hot" : " warm"));
      } else {
        pa.node->peer_down(peers_[b].replica, local(a, now_));
        trace_.line(now_, static_cast<int>(a), "peer_down", peer_name(b));
      }
    }
    if (changed) after_input(a);
  }
}

void Simulation::deliver(Event& ev) {
  const bool open = net_.deliver(ev.a, ev.b);
  Peer& to = peers_[ev.b];
  if (ev.gen != peers_[ev.a].life) {
    ++stats_.messages_dropped;
    trace_.line(now_, static_cast<int>(ev.b), "recv_drop", fmt("from=p%02u %zuB sender restored", ev.a, ev.bytes.size()));
    return;
  }
  if (ev.replaced != to.replaced) {
    // Sent to the device whose data directory was lost since (a replacement takes longer than
    // any network delay).
    ++stats_.messages_dropped;
    trace_.line(now_, static_cast<int>(ev.b), "recv_drop", fmt("from=p%02u %zuB receiver replaced", ev.a, ev.bytes.size()));
    return;
  }
  if (!open || to.node == nullptr) {
    ++stats_.messages_dropped;
    trace_.line(now_, static_cast<int>(ev.b), "recv_drop", fmt("from=p%02u %zuB %s", ev.a, ev.bytes.size(), open ? "down" : "cut"));
    return;
  }
  if (twins_ > 0 && twin_shared(ev.a, ev.b) && (to.view[ev.a] == 0 || twin_refused(ev.b, ev.a))) {
    // A link the runtime refused (two devices under one replica id) carries nothing.
    ++stats_.messages_dropped;
    trace_.line(now_, static_cast<int>(ev.b), "recv_drop", fmt("from=p%02u %zuB refused", ev.a, ev.bytes.size()));
    return;
  }
  transport::DecodeLimits limits;
  if (sc_.mutation == Mutation::kTightDecode) limits.max_payload_bytes = 32;
  Result<transport::Message> msg = transport::decode(ev.bytes, limits);
  if (sc_.mutation == Mutation::kLaxDecode) {
    // Mutation under test: a decoder that stops at the end of the first message it finds.
    for (std::size_t n = ev.bytes.size(); !msg.ok() && n-- > 1;) {
      msg = transport::decode(std::string_view(ev.bytes).substr(0, n), limits);
    }
  }
  if (!msg.ok()) {
    if (ev.corruption != Corruption::kNone) {
      ++stats_.frames_rejected;
      trace_.line(now_, static_cast<int>(ev.b), "recv_reject",
                  fmt("from=p%02u %s %zuB: %s", ev.a, corruption_name(ev.corruption), ev.bytes.size(),
                      msg.status().to_string().substr(0, 100).c_str()));
      return;
    }
    violation("codec", peer_name(ev.b) + " could not decode " + std::to_string(ev.bytes.size()) +
                           " bytes from " + peer_name(ev.a) + ": " + msg.status().to_string());
    return;
  }
  if (ev.corruption != Corruption::kNone) {
    // A truncated frame or one with trailing bytes must never decode (docs/protocol.md: the
    // message fills its input exactly).
    if (ev.corruption != Corruption::kBitFlip) {
      violation("bad_frame_accepted", peer_name(ev.b) + fmt(" decoded a %s frame of %zu bytes (sent %zu)",
                                                             corruption_name(ev.corruption), ev.bytes.size(),
                                                             ev.original.size()));
      return;
    }
    // A bit flip the codec cannot see that changed the message is the sealed channel's to refuse
    // (D19: every altered frame fails authentication); the simulator has no channel yet, so it
    // drops the frame as the channel would. A flip that left the message equal is delivered.
    if (transport::encode(*msg) != ev.original) {
      ++stats_.frames_forged;
      trace_.line(now_, static_cast<int>(ev.b), "recv_forged", fmt("from=p%02u %zuB", ev.a, ev.bytes.size()));
      return;
    }
  }
  if (sc_.mutation == Mutation::kLoseDeltas && probe_phase_ == 1 && std::holds_alternative<transport::DeltaBatch>(*msg)) {
    ++stats_.messages_dropped;
    trace_.line(now_, static_cast<int>(ev.b), "recv_drop", fmt("from=p%02u %zuB lose-deltas", ev.a, ev.bytes.size()));
    return;
  }
  ++stats_.messages_delivered;
  const Status st = to.node->receive(peers_[ev.a].replica, *msg, local(ev.b, now_));
  if (probe_phase_ == 1) probe_arrivals(ev.b, transport::message_name(*msg));
  if (!st.ok()) ++stats_.node_rejected;
  trace_.line(now_, static_cast<int>(ev.b), "recv",
              fmt("from=p%02u %s %zuB%s%s", ev.a, transport::message_name(*msg), ev.bytes.size(),
                  st.ok() ? "" : " rejected: ", st.ok() ? "" : st.to_string().substr(0, 120).c_str()));
  after_input(ev.b);
}

void Simulation::stranger_hello() {
  // A replica outside the mesh says hello to peer 0 (a hostile or misconfigured device). Whatever
  // the node answers is addressed to a replica the simulator does not know.
  if (peers_[0].node == nullptr) return;
  transport::Hello h;
  h.replica = replica_bytes(crdt::replica_for_testing(1000, 0));
  transport::CollectionSpecWire w;
  w.name = std::string(kCollection);
  w.dimension = dim_;
  w.m = 8;
  w.ef_construction = 32;
  w.ef_search = 32;
  h.collections.push_back(w);
  const Status st = peers_[0].node->receive(crdt::replica_for_testing(1000, 0), transport::Message{h}, local(0, now_));
  trace_.line(now_, 0, "stranger", st.ok() ? "hello accepted" : "hello rejected: " + st.to_string());
  after_input(0);
}

void Simulation::hostile_delta(std::uint32_t kind) {
  // A known, up peer h of target t (t was told h is up) sends t a batch through the real codec.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> pairs;
  for (std::uint32_t t = 0; t < n_; ++t) {
    if (peers_[t].node == nullptr) continue;
    for (std::uint32_t h = 0; h < n_; ++h) {
      if (h != t && peers_[t].view[h] != 0) pairs.emplace_back(h, t);
    }
  }
  if (pairs.empty()) return;
  const auto [h, t] = pairs[hostile_rng_.uniform(pairs.size())];
  auto before = state(t);
  if (!before.ok()) return;
  const crdt::ReplicaId& hr = peers_[h].replica;
  const auto wall_ms = static_cast<std::uint64_t>((kEpochNs + local(h, now_).ns() + peers_[h].skew.ns()) / 1'000'000);
  std::vector<crdt::Delta> deltas;
  crdt::Dot bad;
  std::string what;
  if (kind == 0) {
    // One dot of h's, far beyond any it issued, on two records with different payloads.
    bad = crdt::Dot{hr, 1'000'000 + stats_.hostile_sent};
    crdt::Delta d;
    d.context.add(bad);
    d.records["r0"] = {crdt::Entry{bad, crdt::Hlc::from_parts(wall_ms, 0), payload_bytes(random_value())}};
    crdt::Delta d2 = d;
    d2.records.clear();
    d2.records["r1"] = {crdt::Entry{bad, crdt::Hlc::from_parts(wall_ms, 1), payload_bytes(random_value())}};
    if (sc_.mutation == Mutation::kHostileSplit) {
      deltas = {d, d2};  // each batch alone is a legitimate write
    } else {
      d.records["r1"] = d2.records["r1"];  // not Delta::join: the join would let each side's context delete the other's entry
      deltas = {d};
    }
    what = "one dot on two records " + bad.to_string();
  } else if (kind == 2) {
    // A delete whose context claims a dot of the sender far beyond any it issued: no receiver
    // can tell it from a real one, but it reaches the sender's own replica through relays.
    bad = crdt::Dot{hr, 1'000'000 + stats_.hostile_sent};
    crdt::Delta d;
    d.context.add(bad);
    d.records["r0"] = {};
    deltas = {d};
    what = "a context claiming the sender's own " + bad.to_string();
  } else {
    // A delete whose context claims t's own dots beyond its counter.
    const crdt::ReplicaId& own = peers_[t].node->issuer();
    bad = crdt::Dot{own, before->context().max_counter(own) + 50};
    crdt::Delta d;
    d.context.add(bad);
    d.records["r0"] = {};
    deltas = {d};
    what = "a context claiming the receiver's own " + bad.to_string();
  }
  hostile_dots_.insert(bad);
  bool any_ok = false;
  for (const crdt::Delta& d : deltas) {
    transport::DeltaBatch batch;
    transport::CollectionSpecWire w;
    w.name = std::string(kCollection);
    w.dimension = dim_;
    w.m = 8;
    w.ef_construction = 32;
    w.ef_search = 32;
    batch.specs.push_back(w);
    crdt::Bytes bytes;
    crdt::encode_delta(d, bytes);
    batch.items.push_back(transport::DeltaItem{std::string(kCollection), std::string(bytes.begin(), bytes.end())});
    // Well-formed: it passes the real codec.
    auto decoded = transport::decode(transport::encode(transport::Message{batch}));
    if (!decoded.ok()) {
      violation("codec", "the hostile batch does not decode: " + decoded.status().to_string());
      return;
    }
    if (sc_.mutation == Mutation::kLenientDots) {
      // Mutation under test: the receiving side keeps the first record of a dot that appears
      // twice instead of refusing the delta.
      auto& b = std::get<transport::DeltaBatch>(*decoded);
      for (auto& item : b.items) {
        auto delta = crdt::decode_delta(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(item.delta.data()), item.delta.size()));
        if (!delta.ok()) continue;
        std::set<crdt::Dot> seen;
        for (auto& [id, entries] : delta->records) {
          std::erase_if(entries, [&](const crdt::Entry& e) { return !seen.insert(e.dot).second; });
        }
        crdt::Bytes fixed;
        crdt::encode_delta(*delta, fixed);
        item.delta.assign(fixed.begin(), fixed.end());
      }
    }
    ++stats_.hostile_sent;
    const Status st = peers_[t].node->receive(hr, *decoded, local(t, now_));
    any_ok = any_ok || st.ok();
    if (!st.ok()) ++stats_.hostile_rejected;
    trace_.line(now_, static_cast<int>(t), "hostile", fmt("from=p%02u ", h) + what + (st.ok() ? " accepted" : " rejected: " + st.to_string().substr(0, 100)));
  }
  // Kind 0 must be refused; kinds 1 and 2 are accepted (the receiver cannot refuse a relayed
  // claim without stalling the delta path), kind 1 with the claim stripped (checked below).
  if (any_ok && kind == 2) oracle_.claimed(bad);
  // The receiver died inside the batch's commit, which may have landed (sim/faulty_store.hpp):
  // as for a client operation, the outcome decides (final_checks).
  if (!any_ok && kind == 2 && peers_[t].faulty->crashed()) unsure_claims_.push_back(bad);
  if (any_ok && sc_.mutation != Mutation::kHostileSplit && kind == 0) {
    violation("hostile_accepted", peer_name(t) + " accepted from " + peer_name(h) + " " + what);
  }
  // Whatever the status said, nothing of it may be kept.
  if (peers_[t].node != nullptr && !peers_[t].faulty->crashed()) {
    auto after = state(t);
    if (after.ok()) {
      std::size_t holding = 0;
      for (const auto& [id, entries] : after->records()) {
        for (const crdt::Entry& e : entries) holding += e.dot == bad ? 1 : 0;
      }
      if (holding > 0 || (kind == 1 && after->context().contains(bad))) {
        violation("hostile_applied", peer_name(t) + " kept " + what + fmt(" (%zu records hold it)", holding));
      }
    }
  }
  after_input(t);
}

void Simulation::session_read(std::uint32_t p, const std::string& id) {
  // The client session of peer p (docs/sim.md, "Reads during chaos"). read-elsewhere sends the
  // read to another peer, as a session routed to the wrong node would be.
  std::uint32_t q = p;
  if (sc_.mutation == Mutation::kReadElsewhere && n_ >= 2) {
    q = static_cast<std::uint32_t>(workload_rng_.uniform(n_ - 1));
    if (q >= p) ++q;
    if (peers_[q].node == nullptr) return;
  }
  Result<node::GetResult> got = Status(Code::kInternal, "unread");
  if (evicting()) {
    // The session's get refills a stub from the sink, or answers kColdUnavailable while it is out.
    auto cg = cold_get(q, id);
    if (cg.ok()) {
      judge_refill(q, id, *cg, q == p && session_removed_[p].contains(cg->record.siblings.at(0).dot));
      got = std::move(cg->record);
    } else {
      got = cg.status();
    }
  } else {
    got = peers_[q].node->get(kCollection, id);
  }
  if (!got.ok() && got.status().code() != Code::kNotFound) return;  // a read fault: no answer
  ++stats_.session_reads;
  std::set<crdt::Dot> now;
  if (got.ok()) {
    for (const node::Sibling& sb : got->siblings) now.insert(sb.dot);
  }
  const crdt::Entries* live = oracle_.model().find(id);
  auto is_live = [&](const crdt::Dot& d) {
    return live != nullptr && std::any_of(live->begin(), live->end(), [&](const crdt::Entry& e) { return e.dot == d; });
  };
  std::set<crdt::Dot>& seen = session_seen_[p][id];
  for (const crdt::Dot& d : seen) {
    // A dot this session wrote or read is gone only when an acknowledged operation removed it.
    if (now.contains(d) || !is_live(d)) continue;
    violation(d.replica.identity == peers_[p].replica.identity ? "read_your_writes" : "monotonic_read",
              peer_name(p) + " reads '" + id + "' without " + d.to_string() + ", which its session " +
                  (d.replica.identity == peers_[p].replica.identity ? "wrote" : "read before") + " and no acknowledged operation removed");
    break;
  }
  for (const crdt::Dot& d : now) {
    if (session_removed_[p].contains(d)) {
      violation("deleted_returned", peer_name(p) + " returns '" + id + "' " + d.to_string() + ", which its own acknowledged remove deleted");
      break;
    }
  }
  seen.insert(now.begin(), now.end());
}

void Simulation::search_holds(std::uint32_t p, const std::vector<node::Hit>& hits) {
  // Search returns only records some replica holds.
  for (const node::Hit& h : hits) {
    bool held = false;
    for (std::uint32_t q = 0; q < n_ && !held; ++q) {
      if (peers_[q].node == nullptr || peers_[q].faulty->crashed()) continue;
      peers_[q].faulty->set_observing(true);
      auto got = peers_[q].node->get(kCollection, h.id);
      peers_[q].faulty->set_observing(false);
      held = got.ok() && !got->siblings.empty();
      if (!got.ok() && got.status().code() != Code::kNotFound) held = true;  // unreadable: not evidence
    }
    if (!held) {
      violation("search_phantom", peer_name(p) + " search returned '" + h.id + "', which no replica holds");
      return;
    }
  }
}

void Simulation::client_op() {
  if (healed_) return;
  push(now_ + Duration::nanos(static_cast<std::int64_t>(workload_rng_.exponential(static_cast<double>(op_mean_.ns())))) + Duration::micros(1),
       Event{Ev::kClientOp});
  const auto p = static_cast<std::uint32_t>(workload_rng_.uniform(n_));
  const double which = workload_rng_.uniform_double();
  const double r = workload_rng_.uniform_double();
  if (peers_[p].node == nullptr) {
    ++stats_.failed_ops;
    trace_.line(now_, static_cast<int>(p), "op_down", "");
    return;
  }
  if (which < kCatalogueOpRate) {
    catalogue_op(p);
  } else if (which < kCatalogueOpRate + kSecondShare) {
    data_op(p, r, Target{kSecond, &oracle_second_});
  } else {
    data_op(p, r, Target{kCollection, &oracle_});
  }
  after_input(p);
}

void Simulation::check_causality(std::uint32_t p, const crdt::ORMap& before, const crdt::Entry& fresh,
                                 std::string_view id) {
  // Happened-before (docs/sim.md, "Clocks"): the node's previous acknowledged write, and every
  // entry the node held when it wrote (it received them first), must carry smaller clocks.
  Peer& peer = peers_[p];
  if (peer.last_write_clock) {
    ++stats_.causal_pairs;
    if (!(*peer.last_write_clock < fresh.clock)) {
      violation("hlc_causality", peer_name(p) + " wrote '" + std::string(id) + "' at " + fresh.clock.to_string() +
                                     ", not after its previous write at " + peer.last_write_clock->to_string());
    }
  }
  peer.last_write_clock = fresh.clock;
  std::size_t reported = 0;
  for (const auto& [rid, entries] : before.records()) {
    for (const crdt::Entry& e : entries) {
      ++stats_.causal_pairs;
      if (e.clock < fresh.clock || reported >= 1) continue;
      ++reported;
      violation("hlc_causality", peer_name(p) + " wrote '" + std::string(id) + "' at " + fresh.clock.to_string() +
                                     " after holding '" + rid + "' " + e.dot.to_string() + " at " + e.clock.to_string());
    }
  }
}

void Simulation::data_op(std::uint32_t p, double r, const Target& t) {
  Peer& peer = peers_[p];
  node::Node& nd = *peer.node;
  const std::string id = "r" + std::to_string(workload_rng_.uniform(id_pool_));
  if (r >= 0.85) {
    node::RecordValue q = random_value();
    node::SearchOptions so;
    so.k = 10;
    const bool wrong = sc_.mutation == Mutation::kSearchWrongCollection && t.name == kCollection;
    auto hits = nd.search(wrong ? kSecond : t.name, q.vector, so);
    trace_.line(now_, static_cast<int>(p), "search",
                std::string(t.name) + " " + (hits.ok() ? fmt("%zu hits", hits->size()) : hits.status().to_string()));
    // A process that died inside the search (it reads the store) answered nothing: no client
    // saw these hits, and its own store, which held them, cannot be read until it restarts.
    if (t.name == kCollection && !peer.faulty->crashed()) {
      if (hits.ok()) search_holds(p, *hits);
      if (sc_.sink && hits.ok()) cold_search_read(p, q.vector, *hits);
      session_read(p, id);
    }
    return;
  }
  auto before = state(p, t.name);
  if (!before.ok()) {
    ++stats_.failed_ops;
    trace_.line(now_, static_cast<int>(p), "op_fail", std::string(t.name) + " state: " + before.status().to_string());
    return;
  }
  struct Done {
    std::string id;
    bool upsert = false;
    node::RecordValue value;
  };
  std::vector<Done> done;
  Status st;
  std::string what;
  // The quota checker: the backlog the node's quota check sees (nothing runs in between).
  // A feed not enabled (its enable_sink_feed struck by a store fault; the pump retries) checks
  // no quota: nothing to judge.
  const node::SinkFeedStatus feed_before = sc_.sink ? nd.sink_feed_status() : node::SinkFeedStatus{};
  const std::uint64_t backlog_before = feed_before.backlog_entries;
  std::vector<std::string> patterns;  // store-flip: the vectors the store must corrupt
  if (r < 0.55) {
    node::RecordValue v = random_value();
    stats_.payload_bytes += node::encode_payload(v).size();
    done.push_back({id, true, v});
    patterns.push_back(vector_bytes(v.vector));
    if (sc_.mutation == Mutation::kStoreFlip) peer.faulty->arm_for_testing(patterns);
    st = nd.upsert(t.name, id, std::move(v));
    what = "upsert";
  } else if (r < 0.65) {
    std::vector<node::RecordInput> batch;
    const std::uint64_t k = bulk_first_ ? std::min<std::uint64_t>(kLargeBatch, id_pool_ - *bulk_first_) : 2 + workload_rng_.uniform(4);
    for (std::uint64_t i = 0; i < k; ++i) {
      std::string bid = "r" + std::to_string(bulk_first_ ? *bulk_first_ + i : workload_rng_.uniform(id_pool_));
      if (std::any_of(done.begin(), done.end(), [&](const Done& d) { return d.id == bid; })) continue;
      node::RecordValue v = random_value();
      stats_.payload_bytes += node::encode_payload(v).size();
      patterns.push_back(vector_bytes(v.vector));
      done.push_back({bid, true, v});
      batch.push_back({bid, std::move(v)});
    }
    if (sc_.mutation == Mutation::kStoreFlip) peer.faulty->arm_for_testing(patterns);
    st = nd.upsert_batch(t.name, std::move(batch));
    what = "upsert_batch";
  } else {
    st = nd.remove(t.name, id);
    done.push_back({id, false, {}});
    what = "remove";
  }
  peer.faulty->disarm_for_testing();
  std::string ids;
  for (const auto& d : done) ids += d.id + ",";
  trace_.line(now_, static_cast<int>(p), what, std::string(t.name) + " " + ids + (st.ok() ? " ok" : " " + st.to_string()));
  if (sc_.sink && t.name == kCollection && feed_before.enabled) {
    // Refused for the quota only at the quota; accepted only below it (docs/tiers.md).
    if (st.detail() == Detail::kQuotaExceeded) {
      ++stats_.quota_refusals;
      if (backlog_before < kSinkQuota) {
        violation("quota", peer_name(p) + fmt(" refused %s with kQuotaExceeded at backlog %llu < quota %llu: ", what.c_str(),
                                             static_cast<unsigned long long>(backlog_before),
                                             static_cast<unsigned long long>(kSinkQuota)) + st.to_string());
      }
      ++stats_.failed_ops;
      return;  // never an acknowledged write: the oracle does not see it
    }
    if (st.ok() && backlog_before >= kSinkQuota) {
      violation("quota", peer_name(p) + fmt(" accepted %s at backlog %llu >= quota %llu", what.c_str(),
                                           static_cast<unsigned long long>(backlog_before),
                                           static_cast<unsigned long long>(kSinkQuota)));
    }
  }
  if (!st.ok() && !landed_restart(p)) {
    ++stats_.failed_ops;
    return;
  }
  if (st.ok() && !died_after_commit(p)) return;
  if (sc_.mutation == Mutation::kUnreadableAfterAck) peers_[p].store->fail_next_reads(1);
  auto after = state(p, t.name);
  if (!after.ok()) {
    violation("state_unreadable", peer_name(p) + ": " + after.status().to_string());
    return;
  }
  if (!st.ok() && *after == *before) {
    // The commit that landed was not the operation's: the node's fresh incarnation before its
    // first write after an open (D48) commits on its own, and the crash struck there. Nothing of
    // the operation happened (shoal-sim --seed 5789 --no-repair).
    trace_.line(now_, static_cast<int>(p), "landed_not_op", "");
    ++stats_.failed_ops;
    return;
  }
  for (const Done& d : done) {
    if (d.upsert) {
      // The oracle models the bytes the client sent, not what the node stored.
      crdt::Bytes sent = payload_bytes(d.value);
      if (sc_.mutation == Mutation::kTruncatedRequest && !sent.empty()) sent.pop_back();  // mutation under test
      auto dot = t.oracle->upsert(peer.node->issuer(), d.id, entries_of(*before, d.id), entries_of(*after, d.id),
                                  violations_, &sent);
      ++stats_.acked_upserts;
      mark(static_cast<int>(p), "write", d.id);
      if (dot) {
        if (t.name == kCollection && !lost_known_.empty()) check_reissue(p, *dot, d.id);
        if (t.name == kCollection) session_seen_[p][d.id].insert(*dot);
        client_values_[{std::string(t.name), *dot}] = d.value;
        for (const crdt::Entry& e : entries_of(*after, d.id)) {
          if (e.dot == *dot) check_causality(p, *before, e, d.id);
        }
      }
    } else {
      t.oracle->remove(d.id, entries_of(*before, d.id));
      if (t.name == kCollection) {
        for (const crdt::Entry& e : entries_of(*before, d.id)) {
          session_removed_[p].insert(e.dot);
          session_seen_[p][d.id].erase(e.dot);
        }
      }
      ++stats_.acked_removes;
    }
  }
}

void Simulation::catalogue_op(std::uint32_t p) {
  // Drop the second collection where it is live, (re-)create it where it is not (docs/protocol.md,
  // "Catalogue"). The catalogue oracle takes the node's catalogue entries before and after, as the
  // record oracle does; the record oracle of "d" takes the drop's and the create's effects.
  Peer& peer = peers_[p];
  node::Node& nd = *peer.node;
  auto cat_before = catalogue(p);
  if (!cat_before.ok()) {
    ++stats_.failed_ops;
    return;
  }
  const bool was_live = live(p, kSecond);
  Result<crdt::ORMap> records_before = crdt::ORMap{};
  if (was_live) {
    records_before = state(p, kSecond);
    if (!records_before.ok()) {
      ++stats_.failed_ops;
      trace_.line(now_, static_cast<int>(p), "op_fail", "d state: " + records_before.status().to_string());
      return;
    }
  }
  const Status st = was_live ? nd.drop_collection(kSecond) : nd.create_collection(spec_of(kSecond));
  trace_.line(now_, static_cast<int>(p), was_live ? "drop" : "create",
              std::string(kSecond) + (st.ok() ? " ok" : " " + st.to_string()));
  if (!st.ok() && !landed_restart(p)) {
    ++stats_.failed_ops;
    return;
  }
  if (st.ok() && !died_after_commit(p)) return;
  auto cat_after = catalogue(p);
  if (!cat_after.ok()) {
    violation("state_unreadable", peer_name(p) + " catalogue: " + cat_after.status().to_string());
    return;
  }
  if (!st.ok() && cat_before.ok() && *cat_after == *cat_before) {
    // As in data_op: the landed commit was the fresh incarnation's (D48), not the operation's.
    trace_.line(now_, static_cast<int>(p), "landed_not_op", "");
    ++stats_.failed_ops;
    return;
  }
  ++stats_.catalogue_ops;
  if (was_live) {
    oracle_catalogue_.remove(kSecond, entries_of(*cat_before, kSecond));
    // The drop deletes every record it observed, as a remove of each would.
    for (const auto& [id, entries] : records_before->records()) {
      if (entries.empty()) continue;
      oracle_second_.remove(id, entries, /*by_drop=*/true);
      for (const crdt::Entry& e : entries) dropped_dots_.insert(e.dot);
    }
    if (live(p, kSecond)) violation("collection_returned", peer_name(p) + " still lists 'd' right after dropping it");
    return;
  }
  auto cat_dot = oracle_catalogue_.upsert(peer.node->issuer(), kSecond, entries_of(*cat_before, kSecond),
                                          entries_of(*cat_after, kSecond), violations_);
  if (cat_dot && !lost_known_.empty()) check_reissue(p, *cat_dot, kSecond, /*catalogue=*/true);
  auto fresh = state(p, kSecond);
  if (!fresh.ok()) {
    violation("state_unreadable", peer_name(p) + " d after create: " + fresh.status().to_string());
    return;
  }
  // A re-create starts empty: it deleted what the hidden storage held, i.e. every entry the
  // oracle still has whose dot this node had observed (its context now covers it).
  for (const auto& [id, entries] : fresh->records()) {
    if (!entries.empty()) {
      violation("recreate_not_empty", peer_name(p) + " re-created 'd' with '" + id + "' " + entries[0].dot.to_string());
      break;
    }
  }
  std::vector<std::pair<std::string, crdt::Entries>> removed;
  for (const auto& [id, entries] : oracle_second_.model().records()) {
    crdt::Entries covered;
    for (const crdt::Entry& e : entries) {
      if (fresh->context().contains(e.dot)) covered.push_back(e);
    }
    if (!covered.empty()) removed.emplace_back(id, std::move(covered));
  }
  for (const auto& [id, entries] : removed) oracle_second_.remove(id, entries);
}

void Simulation::fault() {
  if (healed_) return;
  Rng& r = fault_rng_;
  push(now_ + Duration::nanos(static_cast<std::int64_t>(r.exponential(static_cast<double>(fault_mean_.ns())))) + Duration::micros(1),
       Event{Ev::kFault});
  const double x = r.uniform_double();
  const auto p = static_cast<std::uint32_t>(r.uniform(n_));
  if (x < 0.25) {
    if (n_ < 2) return;
    const auto shape = static_cast<PartitionShape>(r.uniform(5));
    const std::string desc = net_.partition(shape);
    ++stats_.partitions;
    const Duration d = Duration::millis(r.uniform_range(200, 4000));
    trace_.line(now_, kNoPeer, "partition", desc + fmt(" for_ms=%lld", static_cast<long long>(d.ms())));
    push(now_ + d, Event{Ev::kUnpartition, 0, 0, ++partition_gen_});
    refresh_views();
  } else if (x < 0.40) {
    if (n_ < 2) return;
    auto q = static_cast<std::uint32_t>(r.uniform(n_ - 1));
    if (q >= p) ++q;
    const Duration extra = Duration::millis(r.uniform_range(50, 1000));
    const Duration d = Duration::millis(r.uniform_range(100, 3000));
    net_.clog(p, q, extra, now_ + d);
    trace_.line(now_, static_cast<int>(p), "clog", fmt("to=p%02u extra_ms=%lld for_ms=%lld", q,
                                                       static_cast<long long>(extra.ms()), static_cast<long long>(d.ms())));
  } else if (x < 0.60) {
    if (peers_[p].node == nullptr) return;
    // Long offline periods outlast what a 64-entry delta buffer reaches back to.
    const bool long_offline = sc_.repair && r.bernoulli(0.3);
    const Duration d = long_offline ? Duration::millis(r.uniform_range(5000, 20000))
                                    : Duration::millis(r.uniform_range(50, 2000));
    if (!long_offline && r.bernoulli(0.5)) {
      // The crash strikes inside the node's next store calls (sim/faulty_store.hpp): in a
      // client write, a peer's batch, a progress write or an open; a commit it catches lands or
      // not (half each).
      const bool commits_only = r.bernoulli(0.5);
      const auto at = static_cast<std::uint32_t>(1 + r.uniform(commits_only ? 4 : 40));
      const bool land = r.bernoulli(0.5);
      peers_[p].faulty->arm_crash_at(at, land, commits_only);
      peers_[p].restart_after = d;
      trace_.line(now_, static_cast<int>(p), "crash_armed", fmt("at_%s=%u commit_lands=%d restart_in_ms=%lld", commits_only ? "commit" : "call", at, land ? 1 : 0,
                                                                static_cast<long long>(d.ms())));
      return;
    }
    crash(p);
    trace_.line(now_, static_cast<int>(p), "crash", fmt("restart_in_ms=%lld", static_cast<long long>(d.ms())));
    push(now_ + d, Event{Ev::kRestart, p, 0, peers_[p].gen});
    refresh_views();
  } else if (x < 0.75) {
    // A clock jump, forwards or backwards (NTP step, RTC reset), kept within the skew bound.
    const Duration jump = Duration::millis(static_cast<std::int64_t>(r.normal(0.0, 5000.0)));
    Duration& skew = peers_[p].skew;
    const Duration extra = (p == 0 && sc_.mutation == Mutation::kSkewBeyondBound) ? Duration::seconds(400) : Duration();
    skew = std::clamp(skew + jump - extra, Duration(), Duration::millis(kMaxSkewMs)) + extra;
    trace_.line(now_, static_cast<int>(p), "clock_jump", fmt("by_ms=%lld skew_ms=%lld", static_cast<long long>(jump.ms()),
                                                            static_cast<long long>(skew.ms())));
  } else if (x < 0.90) {
    store::MemoryStore& st = *peers_[p].store;
    st.set_capacity_bytes(st.used_bytes() + r.uniform(2000));
    const Duration d = Duration::millis(r.uniform_range(200, 3000));
    trace_.line(now_, static_cast<int>(p), "disk_full", fmt("used=%llu for_ms=%lld", static_cast<unsigned long long>(st.used_bytes()),
                                                           static_cast<long long>(d.ms())));
    push(now_ + d, Event{Ev::kDiskRestore, p, 0, ++peers_[p].disk_gen});
  } else if (x < 0.95) {
    const auto k = static_cast<std::uint32_t>(1 + r.uniform(3));
    peers_[p].store->fail_next_writes(k);
    trace_.line(now_, static_cast<int>(p), "io_fail", fmt("next_writes=%u", k));
  } else {
    // Reads fail too (a bad sector, EIO): whatever reads them must return a status, change
    // nothing, and the next reads work.
    const auto k = static_cast<std::uint32_t>(1 + r.uniform(3));
    peers_[p].store->fail_next_reads(k);
    trace_.line(now_, static_cast<int>(p), "read_fail", fmt("next_reads=%u", k));
  }
}

void Simulation::take_copy(std::uint32_t i) {
  Restore& r = restores_[i];
  // Whatever the disk holds, also while the peer is down. The simulator's own reads leave
  // injected read faults for the node.
  store::MemoryStore& st = *peers_[r.source].store;
  const std::uint32_t pending = st.pending_read_faults();
  st.fail_next_reads(0);
  auto img = copy_tables(st);
  st.fail_next_reads(pending);
  if (!img.ok()) {
    trace_.line(now_, static_cast<int>(r.source), "copy_failed", img.status().to_string());
    return;
  }
  r.image = std::move(img).value();
  const auto rep = image_replica(*r.image);
  trace_.line(now_, static_cast<int>(r.source), "copy", fmt("for=p%02u %s replica=%s", r.target, r.clone ? "clone" : "restore",
                                                            rep ? rep->to_string().c_str() : "none"));
  mark(static_cast<int>(r.source), "copy", r.clone ? fmt("image for p%02u", r.target) : std::string("backup"));
}

void Simulation::restore(std::uint32_t i) {
  Restore& r = restores_[i];
  const std::uint32_t t = r.target;
  Peer& peer = peers_[t];
  if (healed_ || !r.image) {
    trace_.line(now_, static_cast<int>(t), "restore_skipped", healed_ ? "healed" : "no copy");
    if (r.image && !r.applied) {
      r.applied = true;  // this copy will never come back: what only it held is gone
      forget_lost();
    }
    return;
  }
  r.applied = true;
  // The device is stopped (if it runs), its disk is replaced by the copy, and it starts again
  // after the downtime. Faults pending on the old disk go with it.
  if (peer.node != nullptr) {
    crash(t);
  } else {
    ++peer.gen;  // a restart already scheduled for the old disk is void
  }
  if (r.twin) {
    // Peers see the old identity go down before the device comes back under the source's.
    refresh_views();
    r.twin_own = peer.replica;
    r.twin_own.incarnation = peer.incarnation;
    peer.replica = peers_[r.source].replica;
    r.twin_active = true;
    ++twins_;
    ++stats_.twins;
  }
  ++peer.life;
  ++peer.disk_gen;
  peer.store->set_capacity_bytes(UINT64_MAX);
  peer.store->fail_next_writes(0);
  peer.store->fail_next_reads(0);
  peer.faulty->disarm_crash();
  Image img = *r.image;
  const std::optional<crdt::ReplicaId> held = image_replica(img);
  std::string how = r.twin ? fmt("undetected, as p%02u's replica", r.source) : std::string("undetected");
  if (!r.twin && (r.clone || r.detected)) {
    // What the data directory's open does for a copy it detects (node/runtime/data_dir.hpp): a
    // new incarnation above every one this device used, written before the node opens. The
    // simulator keeps the peer's identity bytes (peers are named by them here); the runtime also
    // draws new ones.
    crdt::ReplicaId next = peer.replica;
    next.incarnation = std::max(peer.incarnation, held && held->identity == peer.replica.identity ? held->incarnation : 0) + 1;
    auto& meta = img[static_cast<std::size_t>(store::Table::kMeta)];
    bool found = false;
    for (store::KeyValue& kv : meta) {
      if (kv.key == node::format::kReplicaKey) {
        kv.value = next.encode();
        found = true;
      }
    }
    if (!found) {
      meta.push_back({std::string(node::format::kReplicaKey), next.encode()});
      std::sort(meta.begin(), meta.end(), [](const store::KeyValue& a, const store::KeyValue& b) { return a.key < b.key; });
    }
    how = "new incarnation " + next.to_string();
  }
  if (sc_.mutation == Mutation::kRestoreDiskFull) peer.store->fail_next_writes(1);  // mutation under test
  if (Status st = put_tables(*peer.store, img); !st.ok()) {
    violation("restore", peer_name(t) + " could not be put on the copy: " + st.to_string());
    return;
  }
  if (auto now_held = image_replica(img)) peer.incarnation = now_held->incarnation;
  // The device's history went back: its sessions, its last clock and its context samples start
  // again from the copy.
  session_seen_[t].clear();
  session_removed_[t].clear();
  peer.last_write_clock.reset();
  peer.last_context.reset();
  ++(r.clone ? stats_.clones : stats_.restores);
  trace_.line(now_, static_cast<int>(t), r.clone ? "clone" : "restore",
              fmt("of=p%02u copy_at_ms=%lld %s restart_in_ms=%lld", r.source, static_cast<long long>(r.copy_at.ms()), how.c_str(),
                  static_cast<long long>(r.downtime.ms())));
  mark(static_cast<int>(t), r.clone ? "clone" : "restore",
       fmt("copy of p%02u from %lld ms, %s, down %lld ms", r.source, static_cast<long long>(r.copy_at.ms()), how.c_str(),
           static_cast<long long>(r.downtime.ms())));
  forget_lost();
  push(now_ + r.downtime, Event{Ev::kRestart, t, 0, peer.gen});
  refresh_views();
}

Result<crdt::ORMap> Simulation::durable_state(std::uint32_t p, std::string_view collection) {
  if (collection.empty()) return catalogue(p);
  if (peers_[p].node != nullptr) return state(p, collection);
  SHOAL_ASSIGN_OR_RETURN(Image img, copy_tables(*peers_[p].store));
  return image_state(img, p, collection);
}

Result<crdt::ORMap> Simulation::image_state(const Image& img, std::uint32_t p, std::string_view collection) {
  store::MemoryStore scratch;
  SHOAL_RETURN_IF_ERROR(put_tables(scratch, img));
  if (collection.empty()) return catalogue_in(scratch);
  SHOAL_ASSIGN_OR_RETURN(auto nd, node::Node::open(scratch, options_for(p)));
  return nd->crdt_state_for_testing(collection);
}

void Simulation::forget_lost() {
  // An acknowledged operation survives when some replica's store still includes its effect (it
  // got there directly or through others), or a copy of a store that may still be put back does;
  // otherwise nobody holds it and the mesh converges without it. Frames the restored peer's
  // earlier life sent are dropped (see Peer::life); every other frame in flight carries what its
  // sender holds.
  std::vector<std::uint32_t> pending(n_);
  for (std::uint32_t p = 0; p < n_; ++p) {
    pending[p] = peers_[p].store->pending_read_faults();
    peers_[p].store->fail_next_reads(0);
  }
  std::uint64_t forgotten = 0;
  auto judge = [&](Oracle& o, std::string_view coll) {
    std::vector<crdt::ORMap> states;
    auto add = [&](Result<crdt::ORMap> s, std::uint32_t p, const char* what) {
      if (s.ok()) {
        states.push_back(std::move(s).value());
        return true;
      }
      if (s.status().detail() == Detail::kNoSuchCollection) return true;  // never held it
      violation("state_unreadable", peer_name(p) + " " + what + " during a restore: " + s.status().to_string());
      return false;
    };
    for (std::uint32_t p = 0; p < n_; ++p) {
      if (!add(durable_state(p, coll), p, "store")) return;
    }
    for (const Restore& r : restores_) {
      if (r.image && !r.applied && !add(image_state(*r.image, r.source, coll), r.source, "copy")) return;
    }
    if (sc_.sink && sink_ != nullptr && coll == kCollection) {
      // The sink holds what it acknowledged: a replaced device bootstraps it back (docs/sim.md,
      // "Device replacement and bootstrap from the sink").
      auto at_sink = sink_contents();
      if (!at_sink.ok()) {
        violation("sink_state", "the sink's records during a restore or replacement: " + at_sink.status().to_string());
        return;
      }
      if (*at_sink) {
        crdt::ORMap m;
        (void)m.join(**at_sink);
        states.push_back(std::move(m));
      }
    }
    forgotten += o.forget_unheld(
        [&](const crdt::Delta& d) {
          return std::any_of(states.begin(), states.end(), [&](const crdt::ORMap& s) { return Oracle::includes(s, d); });
        },
        violations_);
  };
  judge(oracle_, kCollection);
  judge(oracle_second_, kSecond);
  judge(oracle_catalogue_, "");
  dropped_dots_ = oracle_second_.dropped_dots();
  for (std::uint32_t p = 0; p < n_; ++p) peers_[p].store->fail_next_reads(pending[p]);
  stats_.ops_forgotten = forgotten;
  trace_.line(now_, kNoPeer, "forget", fmt("%llu acknowledged operations no replica holds", static_cast<unsigned long long>(forgotten)));
  mark(-1, "forget", fmt("%llu acknowledged operations no replica holds any more", static_cast<unsigned long long>(forgotten)));
}

void Simulation::reidentify_twin(Restore& r) {
  // The undetected clone is found (two devices under one id are refused on every shared peer's
  // link, and the runtime logs it) and given an id of its own, as a data directory that detects
  // a copy does: the target's own identity bytes (peers are named by them here) at an incarnation
  // above the one it had. It stops, its store's replica row is rewritten, and the heal reopens it.
  // Without this, a peer whose link to one device was refused for good could never converge.
  const std::uint32_t t = r.target;
  Peer& peer = peers_[t];
  if (peer.node != nullptr) {
    peer.node.reset();
    ++peer.gen;
    std::fill(peer.view.begin(), peer.view.end(), std::uint8_t{0});
  }
  refresh_views();
  crdt::ReplicaId next = r.twin_own;
  next.incarnation = r.twin_own.incarnation + 1;
  // The rewrite is the operator's, not the node's: injected write failures meant for the node
  // are set aside for it and stay pending after (seed 495 drew one here, and the reopen then
  // found the clone's old id).
  const std::uint32_t write_faults = peer.store->pending_write_faults();
  peer.store->fail_next_writes(0);
  Status st = [&]() -> Status {
    SHOAL_ASSIGN_OR_RETURN(auto txn, peer.store->begin_write());
    SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kMeta, node::format::kReplicaKey, next.encode()));
    return txn->commit();
  }();
  peer.store->fail_next_writes(write_faults);
  if (!st.ok()) violation("restore", peer_name(t) + " could not be given its own id: " + st.to_string());
  peer.replica = r.twin_own;
  peer.replica.incarnation = 0;
  peer.incarnation = next.incarnation;
  r.twin_active = false;
  --twins_;
  trace_.line(now_, static_cast<int>(t), "twin_found", "own id " + next.to_string());
  mark(static_cast<int>(t), "twin found", "own id " + next.to_string());
}

void Simulation::heal() {
  healed_ = true;
  heal_at_ = now_;
  net_.heal();
  ++partition_gen_;
  trace_.line(now_, kNoPeer, "heal", "");
  mark(-1, "heal");
  for (Restore& r : restores_) {
    if (r.twin_active) reidentify_twin(r);
  }
  for (std::uint32_t p = 0; p < n_; ++p) {
    peers_[p].store->set_capacity_bytes(UINT64_MAX);
    peers_[p].store->fail_next_writes(p == 0 && sc_.mutation == Mutation::kReadOnlyDisk ? UINT32_MAX : 0);
    peers_[p].store->fail_next_reads(0);
    peers_[p].faulty->disarm_crash();
    reap(p);
    ++peers_[p].disk_gen;
    if (peers_[p].node == nullptr) {
      if (open_node(p)) {
        trace_.line(now_, static_cast<int>(p), "restart", "at heal");
        mark(static_cast<int>(p), "restart", "at heal");
      } else {
        violation("reopen", peer_name(p) + " failed to reopen at heal");
      }
    }
  }
  refresh_views();
  push(now_ + Duration::millis(10), Event{Ev::kCheck});
}

bool Simulation::check_converged() {
  for (std::uint32_t p = 0; p < n_; ++p) {
    if (peers_[p].node == nullptr) return false;
  }
  // The catalogue first: every node holds the same one, so "d" is live everywhere or nowhere.
  auto cat0 = catalogue(0);
  if (!cat0.ok()) return false;
  for (std::uint32_t p = 1; p < n_; ++p) {
    auto c = catalogue(p);
    if (!c.ok() || !(*c == *cat0)) return false;
  }
  std::vector<std::string_view> names{kCollection};
  if (live(0, kSecond)) names.push_back(kSecond);
  for (std::string_view name : names) {
    std::optional<std::uint64_t> root;
    for (std::uint32_t p = 0; p < n_; ++p) {
      auto r = peers_[p].node->digest_root(name);
      if (!r.ok()) return false;
      if (root && *root != *r) return false;
      root = *r;
    }
    auto first = state(0, name);
    if (!first.ok()) return false;
    // A stub and the entry it stands for are one CRDT state (docs/tiers.md, "Eviction"): with
    // eviction, states are compared with each stub read as the client's payload of its dot.
    const bool stubs = evicting() && name == kCollection;
    if (stubs) first = unstub(*first, 0, false);
    for (std::uint32_t p = 1; p < n_; ++p) {
      auto s = state(p, name);
      if (s.ok() && stubs) s = unstub(*s, p, false);
      if (!s.ok() || !(*s == *first)) return false;
    }
  }
  return true;
}

void Simulation::sample_contexts() {
  for (std::uint32_t p = 0; p < n_; ++p) {
    Peer& peer = peers_[p];
    if (peer.node == nullptr) continue;
    auto s = state(p);
    if (!s.ok()) {
      // An injected read fault; sampled next time.
      trace_.line(now_, static_cast<int>(p), "sample_fail", s.status().to_string().substr(0, 100));
      continue;
    }
    if (peer.last_context && !s->context().includes(*peer.last_context)) {
      violation("context_shrank", peer_name(p) + " context lost dots: was " +
                                      peer.last_context->to_string().substr(0, 160) + " now " +
                                      s->context().to_string().substr(0, 160));
    }
    peer.last_context = s->context();
  }
}

void Simulation::search_check(std::uint32_t p, Rng& rng) {
  // Exact k-NN over the oracle's winners is the reference. With eviction, over those the node
  // does not hold as stubs: an evicted record leaves the local index (the search with the cold
  // tier, judged by cold_merge, finds it).
  std::set<std::string> stubbed;
  if (evicting()) {
    auto s = state(p);
    if (s.ok()) {
      for (const auto& [id, entries] : s->records()) {
        const crdt::Entry* w = crdt::winner(entries);
        if (w != nullptr && node::is_stub_payload(node::format::as_view(w->payload))) stubbed.insert(id);
      }
    }
  }
  std::vector<std::string> ids;
  std::vector<float> base;
  for (const auto& [id, entries] : oracle_.model().records()) {
    const crdt::Entry* w = crdt::winner(entries);
    if (w == nullptr || stubbed.contains(id)) continue;
    auto v = node::decode_payload(std::string_view(reinterpret_cast<const char*>(w->payload.data()), w->payload.size()));
    if (!v.ok() || v->vector.size() != dim_) {
      violation("payload", "oracle winner of '" + id + "' does not decode");
      return;
    }
    ids.push_back(id);
    base.insert(base.end(), v->vector.begin(), v->vector.end());
  }
  double found = 0, wanted = 0;
  for (int qi = 0; qi < 3; ++qi) {
    const std::vector<float> q = random_vector(rng);
    auto exact = index::exact_knn(index::scalar_kernels(), index::Metric::kL2, base, dim_, q, 10);
    node::SearchOptions so;
    so.k = 10;
    so.with_metadata = false;
    auto hits = peers_[p].node->search(kCollection, q, so);
    if (!hits.ok()) {
      violation("search", peer_name(p) + ": " + hits.status().to_string());
      return;
    }
    if (hits->size() != exact.size()) {
      violation("search", peer_name(p) + fmt(": %zu hits, exact search over the model has %zu", hits->size(), exact.size()));
    }
    for (const auto& nb : exact) {
      wanted += 1;
      const std::string& want = ids[nb.label];
      if (std::any_of(hits->begin(), hits->end(), [&](const node::Hit& h) { return h.id == want; })) found += 1;
    }
  }
  const double recall = wanted == 0 ? 1.0 : found / wanted;
  trace_.line(now_, static_cast<int>(p), "search_check", fmt("recall=%.3f", recall));
  if (recall < 0.95) violation("search_recall", peer_name(p) + fmt(": recall@10 %.3f < 0.95", recall));
}

void Simulation::client_checks(std::uint32_t p, const Target& t) {
  // The client-side oracle (docs/sim.md): through the node's own get(), every record the model
  // holds reads back as exactly what the client wrote for each sibling (vector bytes, metadata,
  // model tag), the winner first in the documented order; a record the model deleted is absent.
  std::map<std::string, std::size_t> counts;
  auto report = [&](const char* kind, std::string detail) {
    if (++counts[kind] <= 3) violation(kind, peer_name(p) + " " + std::string(t.name) + ": " + std::move(detail));
  };
  node::Node& nd = *peers_[p].node;
  // With eviction, gets of `c` refill stubs from the sink (cold_get): the sink is back and
  // drained, so every stub winner must refill (refill) with the client's bytes (refill_mismatch).
  const bool cold = evicting() && t.name == kCollection;
  for (const auto& [id, entries] : t.oracle->model().records()) {
    Result<node::GetResult> got = Status(Code::kInternal, "unread");
    bool refilled = false;
    if (cold) {
      auto cg = cold_get(p, id);
      if (cg.ok()) {
        refilled = cg->refilled;
        judge_refill(p, id, *cg, entries.empty());
        // Judged once the sink is back and drained (a seed that did not converge never drains).
        if (!cg->cold_error.ok() && sink_draining_) {
          report("refill", "'" + id + "' does not refill from the sink: " + cg->cold_error.to_string());
        }
        got = std::move(cg->record);
      } else {
        got = cg.status();
      }
    } else {
      got = nd.get(t.name, id);
    }
    if (entries.empty()) {
      if (got.ok()) report("client_mismatch", "'" + id + "' was deleted by an acknowledged operation but reads back");
      continue;
    }
    if (!got.ok()) {
      report("client_mismatch", "'" + id + "' does not read back: " + got.status().to_string());
      continue;
    }
    if (got->siblings.size() != entries.size()) {
      report("client_mismatch", "'" + id + fmt("' has %zu siblings, the clients' writes leave %zu", got->siblings.size(), entries.size()));
      continue;
    }
    const crdt::Entry* best = &entries[0];
    for (const crdt::Entry& e : entries) {
      if (wins_over(e, *best)) best = &e;
    }
    if (!(got->siblings[0].dot == best->dot)) {
      report("winner_order", "'" + id + "' reads " + got->siblings[0].dot.to_string() + " as the winner, the highest clock is " +
                                 best->dot.to_string() + " at " + best->clock.to_string());
    }
    for (const node::Sibling& s : got->siblings) {
      auto it = client_values_.find({std::string(t.name), s.dot});
      if (it == client_values_.end()) {
        report("client_mismatch", "'" + id + "' " + s.dot.to_string() + " was never written by a client");
        continue;
      }
      const node::RecordValue& want = it->second;
      if (s.evicted) {
        // A stub (a sibling get does not refill, or a winner the sink could not give): its digest.
        if (sink::payload_digest(node::format::as_view(payload_bytes(want))) != s.digest) {
          report("stub_digest", "'" + id + "' " + s.dot.to_string() + ": the stub's digest is not the digest of the payload the client wrote");
        }
        if (!(s.value.metadata == want.metadata) || s.value.model != want.model) {
          report("client_mismatch", "'" + id + "' " + s.dot.to_string() + " is a stub with other metadata or model than the client wrote");
        }
        continue;
      }
      if (refilled && &s == &got->siblings[0]) continue;  // judge_refill judged it
      const bool same_vector = s.value.vector.size() == want.vector.size() &&
                               std::memcmp(s.value.vector.data(), want.vector.data(), want.vector.size() * sizeof(float)) == 0;
      if (!same_vector || !(s.value.metadata == want.metadata) || s.value.model != want.model) {
        report("client_mismatch", "'" + id + "' " + s.dot.to_string() + " reads back other bytes than the client wrote (" +
                                      (same_vector ? "metadata or model" : "vector") + ")");
      }
    }
  }
  for (const auto& [kind, n] : counts) {
    if (n > 3) violation(kind, peer_name(p) + " " + std::string(t.name) + ": " + std::to_string(n - 3) + " more");
  }
}

void Simulation::catalogue_checks(std::uint32_t p) {
  // No dropped collection comes back: the node's catalogue equals the oracle's, and the API shows
  // "d" exactly when the oracle's catalogue has it.
  auto cat = catalogue(p);
  if (!cat.ok()) {
    violation("state_unreadable", peer_name(p) + " catalogue: " + cat.status().to_string());
    return;
  }
  oracle_catalogue_.check_replica(peer_name(p), *cat, violations_, 5, "catalogue:");
  const bool want = oracle_catalogue_.model().find(kSecond) != nullptr &&
                    !oracle_catalogue_.model().find(kSecond)->empty();
  const bool have = live(p, kSecond);
  if (want != have) {
    violation(have ? "collection_returned" : "collection_missing",
              peer_name(p) + (have ? " shows 'd', which the acknowledged operations dropped"
                                   : " does not show 'd', which an acknowledged create left live"));
  }
  if (!have || !want) return;
  auto s = state(p, kSecond);
  if (!s.ok()) {
    violation("state_unreadable", peer_name(p) + " d: " + s.status().to_string());
    return;
  }
  // No record a drop deleted returns (also in a re-created collection).
  for (const auto& [id, entries] : s->records()) {
    for (const crdt::Entry& e : entries) {
      if (dropped_dots_.contains(e.dot)) {
        violation("drop_resurrected", peer_name(p) + " 'd' holds '" + id + "' " + e.dot.to_string() + ", deleted by a drop");
      }
    }
  }
  oracle_second_.check_replica(peer_name(p), *s, violations_, 5, "d:");
}

void Simulation::final_checks() {
  // A claim whose batch was struck by a crash inside its commit joined if the commit landed:
  // then the converged replicas hold it (if only some do, convergence failed already).
  for (const crdt::Dot& d : unsure_claims_) {
    for (std::uint32_t p = 0; p < n_; ++p) {
      if (peers_[p].node == nullptr) continue;
      auto s = state(p);
      if (s.ok() && s->context().contains(d)) {
        oracle_.claimed(d);
        trace_.line(now_, kNoPeer, "claim_landed", d.to_string());
        break;
      }
    }
  }
  for (std::uint32_t p = 0; p < n_; ++p) {
    if (peers_[p].node == nullptr) continue;
    auto s = state(p);
    if (!s.ok()) {
      violation("state_unreadable", peer_name(p) + ": " + s.status().to_string());
      continue;
    }
    const std::size_t before = violations_.size();
    // With eviction, stubs are judged by their digest (stub_digest), then as the entries they stand for.
    oracle_.check_replica(peer_name(p), evicting() ? unstub(*s, p, true) : *s, violations_);
    catalogue_checks(p);
    client_checks(p, Target{kCollection, &oracle_});
    if (live(p, kSecond)) client_checks(p, Target{kSecond, &oracle_second_});
    for (std::size_t i = before; i < violations_.size(); ++i) {
      trace_.line(now_, static_cast<int>(p), "violation", violations_[i].kind + " " + violations_[i].detail);
    }
    // Once converged every replica is equal: checking one is checking all; report it once.
    if (converged_ && violations_.size() > before) break;
  }
  if (converged_) {
    Rng rng = root_.fork(5);
    for (std::uint32_t p = 0; p < n_; ++p) search_check(p, rng);
  }
}

// One hop of the delta path on the healed network (no loss, no reordering, no clogs), from the
// product's SyncOptions: a hot peer is pushed at once, a warm one at the next warm push; a batch
// lost just before heal is resent after the retransmit time; then the batch, its ack and the
// next batch each cross the link once more (at most 4 one-way delays of the link: hot 5 ms base
// plus half of it as jitter, warm 80 ms plus 40). Timers drift by up to 1%.
Duration Simulation::hop_bound(std::uint32_t a, std::uint32_t b) const {
  const node::SyncOptions o;
  const Duration d = tier(a, b) == node::Tier::kHot
                         ? o.retransmit_hot + Duration::micros(4 * 7500)
                         : o.warm_push_interval + o.retransmit_warm + Duration::millis(4 * 120);
  return d + Duration::nanos(d.ns() / 100) + Duration::millis(1);
}

// The bound from `from` to every peer: the shortest path over the topology's links weighted by
// hop_bound (relays included: a gateway passes on what it receives).
std::vector<Duration> Simulation::delta_bounds(std::uint32_t from) const {
  const Duration inf = Duration::seconds(1'000'000);
  std::vector<Duration> dist(n_, inf);
  std::vector<std::uint8_t> done(n_, 0);
  dist[from] = Duration();
  for (std::uint32_t round = 0; round < n_; ++round) {
    std::uint32_t u = n_;
    for (std::uint32_t i = 0; i < n_; ++i) {
      if (!done[i] && dist[i] < inf && (u == n_ || dist[i] < dist[u])) u = i;
    }
    if (u == n_) break;
    done[u] = 1;
    for (std::uint32_t v = 0; v < n_; ++v) {
      if (v != u && net_.linked(u, v) && dist[u] + hop_bound(u, v) < dist[v]) dist[v] = dist[u] + hop_bound(u, v);
    }
  }
  return dist;
}

void Simulation::start_probes() {
  probe_phase_ = 1;
  if (sc_.mutation == Mutation::kFullAfterHeal) {  // mutation under test
    for (Peer& peer : peers_) peer.store->set_capacity_bytes(peer.store->used_bytes());
  }
  Duration worst;
  for (std::uint32_t a = 0; a < n_; ++a) {
    for (const Duration& d : delta_bounds(a)) worst = std::max(worst, d);
  }
  for (int i = 0; i < kProbes; ++i) {
    push(now_ + Duration::millis(10) + Duration::nanos(kProbeSpacing.ns() * i), Event{Ev::kProbe, static_cast<std::uint32_t>(i)});
  }
  const Duration until = Duration::millis(20) + Duration::nanos(kProbeSpacing.ns() * (kProbes - 1)) + worst;
  probe_window_ = until + (now_ - heal_at_);
  push(now_ + until, Event{Ev::kProbeDeadline});
  trace_.line(now_, kNoPeer, "probes", fmt("n=%d worst_bound_ms=%lld", kProbes, static_cast<long long>(worst.ms())));
}

void Simulation::probe_write(int i) {
  const auto p = static_cast<std::uint32_t>(probe_rng_.uniform(n_));
  Peer& peer = peers_[p];
  if (peer.node == nullptr) return;
  const std::string id = "probe" + std::to_string(i);
  auto before = state(p);
  node::RecordValue v = random_value();
  const crdt::Bytes sent = payload_bytes(v);
  const Status st = peer.node->upsert(kCollection, id, v);
  trace_.line(now_, static_cast<int>(p), "probe", id + (st.ok() ? " ok" : " " + st.to_string()));
  auto after = state(p);
  if (!st.ok() || !before.ok() || !after.ok()) {
    violation("delta_probe", peer_name(p) + " could not write " + id + " on the healed mesh: " + st.to_string());
    return;
  }
  auto dot = oracle_.upsert(peer.node->issuer(), id, entries_of(*before, id), entries_of(*after, id), violations_, &sent);
  ++stats_.acked_upserts;
  if (dot) {
    client_values_[{std::string(kCollection), *dot}] = v;
    Probe pr;
    pr.id = id;
    pr.origin = p;
    pr.dot = *dot;
    pr.at = now_;
    pr.arrived.assign(n_, std::nullopt);
    pr.arrived[p] = now_;
    pr.bound = delta_bounds(p);
    probes_.push_back(std::move(pr));
  }
  after_input(p);
}

void Simulation::probe_arrivals(std::uint32_t p, const char* by) {
  if (peers_[p].node == nullptr) return;
  for (Probe& pr : probes_) {
    if (pr.arrived[p]) continue;
    peers_[p].faulty->set_observing(true);
    auto got = peers_[p].node->get(kCollection, pr.id);
    peers_[p].faulty->set_observing(false);
    if (!got.ok()) continue;
    bool holds = false;
    for (const node::Sibling& s : got->siblings) holds = holds || s.dot == pr.dot;
    if (!holds) continue;
    pr.arrived[p] = now_;
    ++stats_.probe_arrivals;
    const bool by_delta = std::string_view(by) == "delta_batch";
    if (!by_delta) ++stats_.probe_by_repair;
    const Duration took = now_ - pr.at;
    trace_.line(now_, static_cast<int>(p), "probe_arrived", fmt("%s from=p%02u after_ms=%.1f bound_ms=%lld by=%s", pr.id.c_str(), pr.origin,
                                                                static_cast<double>(took.ns()) / 1e6, static_cast<long long>(pr.bound[p].ms()), by));
    const double ratio = static_cast<double>(took.ns()) / static_cast<double>(pr.bound[p].ns());
    if (ratio > stats_.probe_max_ratio) {
      stats_.probe_max_ratio = ratio;
      stats_.probe_max_ms = took.ms();
      stats_.probe_bound_ms = pr.bound[p].ms();
    }
  }
}

void Simulation::probe_deadline() {
  int reported = 0, late = 0;
  for (const Probe& pr : probes_) {
    for (std::uint32_t q = 0; q < n_; ++q) {
      const bool ok = pr.arrived[q] && *pr.arrived[q] - pr.at <= pr.bound[q];
      if (ok) continue;
      ++late;
      if (++reported > 3) continue;
      violation("delta_late", pr.id + " written on " + peer_name(pr.origin) + " " + pr.dot.to_string() + (pr.arrived[q] ? " reached " : " had not reached ") +
                                  peer_name(q) + fmt(" %s ms (bound %lld ms)", pr.arrived[q] ? fmt("after %.1f", static_cast<double>((*pr.arrived[q] - pr.at).ns()) / 1e6).c_str() : "within",
                                                     static_cast<long long>(pr.bound[q].ms())));
    }
  }
  if (late > 3) violation("delta_late", fmt("%d more (probe, peer) pairs late", late - 3));
  probe_phase_ = 2;
  push(now_ + Duration::millis(10), Event{Ev::kCheck});
}

SeedResult Simulation::run() {
  setup();
  loop();
  if (!done_) violation("not_converged", "event queue ran dry before convergence");
  if (sc_.sink && sink_start_drain()) {
    loop();
    if (!done_) violation("sink_not_drained", "event queue ran dry during the sink drain");
  }
  final_checks();
  if (sc_.sink && sink_draining_) sink_checks();

  SeedResult res;
  res.seed = sc_.seed;
  res.peers = n_;
  res.sites = sites_;
  res.violations = std::move(violations_);
  res.converged = converged_;
  res.converge_ms = converged_ ? converge_ms_ : 0;
  stats_.max_in_flight = net_.max_in_flight();
  stats_.records = oracle_.model().size();
  res.stats = stats_;
  res.scenario = scenario_line_;
  res.trace_hash = trace_.hash();
  res.timeline = std::move(timeline_);
  return res;
}

void Simulation::loop() {
  while (!done_ && !queue_.empty()) {
    auto item = queue_.pop();
    now_ = item.at;
    Event& ev = item.payload;
    ++stats_.events;
    switch (ev.kind) {
      case Ev::kDeliver:
        deliver(ev);
        break;
      case Ev::kWake: {
        Peer& peer = peers_[ev.a];
        if (peer.node == nullptr || peer.gen != ev.gen) break;
        if (peer.wake_at == now_) peer.wake_at = MonoTime::from_ns(INT64_MAX);
        trace_.line(now_, static_cast<int>(ev.a), "wake", "");
        after_input(ev.a);
        break;
      }
      case Ev::kClientOp:
        client_op();
        break;
      case Ev::kFault:
        fault();
        break;
      case Ev::kStranger:
        stranger_hello();
        break;
      case Ev::kRestart:
        if (healed_ || peers_[ev.a].node != nullptr || peers_[ev.a].gen != ev.gen) break;
        if (sc_.mutation == Mutation::kWipeOnRestart && !peers_[ev.a].wiped) {
          // The device comes back with an empty disk and a new incarnation.
          Peer& peer = peers_[ev.a];
          peer.store = std::make_unique<store::MemoryStore>();
          peer.faulty = std::make_unique<FaultyStore>(*peer.store, store_mode());
          peer.wiped = true;
          trace_.line(now_, static_cast<int>(ev.a), "wiped", "");
        }
        if (open_node(ev.a)) {
          trace_.line(now_, static_cast<int>(ev.a), "restart", "");
          mark(static_cast<int>(ev.a), "restart");
          refresh_views();
        } else {
          // E.g. a full disk; try again shortly (the event keeps the new generation).
          push(now_ + Duration::millis(500), Event{Ev::kRestart, ev.a, 0, peers_[ev.a].gen});
        }
        break;
      case Ev::kUnpartition:
        if (healed_ || ev.gen != partition_gen_) break;
        net_.clear_partition();
        trace_.line(now_, kNoPeer, "unpartition", "");
        mark(-1, "uncut");
        refresh_views();
        break;
      case Ev::kDiskRestore:
        if (healed_ || ev.gen != peers_[ev.a].disk_gen) break;
        peers_[ev.a].store->set_capacity_bytes(UINT64_MAX);
        trace_.line(now_, static_cast<int>(ev.a), "disk_ok", "");
        break;
      case Ev::kHeal:
        heal();
        break;
      case Ev::kCheck:
        if (check_converged()) {
          if (!converged_) {
            converged_ = true;
            converge_ms_ = (now_ - heal_at_).ms();
            trace_.line(now_, kNoPeer, "converged", fmt("after_ms=%lld", static_cast<long long>(converge_ms_)));
            mark(-1, "converged", fmt("%lld ms after heal", static_cast<long long>(converge_ms_)));
          }
          // --sink: no probes (a probe write at a node whose sink backlog is at its quota is
          // refused, as it must be, while the sink is still out).
          // Nor with an undetected clone: a peer whose link to one of the two devices was refused
          // hears the other's changes only through repair (hot peers do not relay, D16).
          if (probe_phase_ == 0 && !sc_.sink && twins_ == 0) {
            start_probes();
            break;
          }
          done_ = true;
        } else if (now_ - heal_at_ > sc_.max_converge + (probe_phase_ == 2 ? probe_window_ : Duration())) {
          done_ = true;
          converged_ = false;
          violation("not_converged", fmt("replicas differ %lld ms after heal", static_cast<long long>((now_ - heal_at_).ms())));
        } else {
          push(now_ + Duration::millis(20), Event{Ev::kCheck});
        }
        break;
      case Ev::kHostile:
        if (!healed_) hostile_delta(ev.a);
        break;
      case Ev::kPlanned:
        planned_fault(ev.a);
        break;
      case Ev::kBulk:
        bulk_load(ev.a);
        break;
      case Ev::kCopy:
        take_copy(ev.a);
        break;
      case Ev::kRestore:
        restore(ev.a);
        break;
      case Ev::kProbe:
        probe_write(static_cast<int>(ev.a));
        break;
      case Ev::kProbeDeadline:
        probe_deadline();
        break;
      case Ev::kSample:
        if (healed_) break;
        sample_contexts();
        push(now_ + Duration::millis(200), Event{Ev::kSample});
        break;
      case Ev::kSinkPump:
        sink_pump(ev.a);
        break;
      case Ev::kSinkArrive:
        sink_arrive(ev);
        break;
      case Ev::kSinkAck:
        sink_ack(ev);
        break;
      case Ev::kSinkBack:
        trace_.line(now_, kNoPeer, "sink_back", "");
        sink_reopen();
        break;
      case Ev::kReplace:
        replace(ev.a);
        break;
      case Ev::kBootStart:
        boot_start(ev.a, ev.gen);
        break;
      case Ev::kBootReq:
        boot_request(ev);
        break;
      case Ev::kBootReply:
        boot_reply(ev);
        break;
      case Ev::kSinkCheck:
        if (sink_check_drained()) {
          done_ = true;
        } else if (now_ - drain_start_ > kMaxSinkDrain) {
          done_ = true;
          violation("sink_not_drained", fmt("backlogs left %lld s after the drain started",
                                            static_cast<long long>((now_ - drain_start_).ms() / 1000)));
        } else {
          push(now_ + Duration::millis(100), Event{Ev::kSinkCheck});
        }
        break;
    }
    // A process that died inside a store call during this event is gone now.
    for (std::uint32_t p = 0; p < n_; ++p) reap(p);
    if (views_dirty_) {
      views_dirty_ = false;
      refresh_views();
    }
  }
}

// --- The sink (docs/sim.md, "The sink and its outages") ---

void Simulation::sink_setup() {
  // Its own stream (not forked from the root), so the other concerns draw what they drew before.
  sink_rng_ = Rng(sc_.seed * 0x9E3779B97F4A7C15ull + 15);
  sink_store_ = std::make_unique<sink::MemoryObjectStore>();
  auto opened = sink::SinkService::open(*sink_store_, sink_limits());
  if (!opened.ok()) {
    violation("sink", "the sink failed to open: " + opened.status().to_string());
    return;
  }
  sink_ = std::move(opened).value();
  sink_loss_ = sc_.faults ? sink_rng_.uniform_double() * 0.1 : 0.0;
  for (std::uint32_t p = 0; p < n_; ++p) {
    peers_[p].sink_delay = Duration::millis(sink_rng_.uniform_range(20, 200));
    push(now_ + Duration::millis(sink_rng_.uniform_range(1, 50)), Event{Ev::kSinkPump, p});
  }
  // 1-3 outages starting during chaos: short ones (0.2-4 s) or long ones (1 minute to 7 days).
  const int outages = sc_.faults ? 1 + static_cast<int>(sink_rng_.uniform(3)) : 0;
  for (int i = 0; i < outages; ++i) {
    const MonoTime from = now_ + Duration::millis(sink_rng_.uniform_range(0, chaos_.ms()));
    const std::int64_t ms = sink_rng_.bernoulli(0.6) ? sink_rng_.uniform_range(200, 4000)
                                                     : sink_rng_.uniform_range(60'000, kMaxSinkOutageMs);
    sink_outages_.push_back(SinkOutage{from, from + Duration::millis(ms)});
    sink_back_ = std::max(sink_back_, from + Duration::millis(ms));
    stats_.sink_outage_ms = std::max(stats_.sink_outage_ms, ms);
    push(from + Duration::millis(ms), Event{Ev::kSinkBack});
    scenario_line_ += fmt(" sink_outage=%lld+%lldms", static_cast<long long>(from.ns() / 1'000'000), static_cast<long long>(ms));
  }
  scenario_line_ += fmt(" sink_loss=%.3f", sink_loss_);
  trace_.line(now_, kNoPeer, "sink", scenario_line_);
}

void Simulation::sink_enable(std::uint32_t p) {
  node::Node& nd = *peers_[p].node;
  node::TierPolicies policies = nd.tier_policies();
  policies.collections[std::string(kCollection)].sink = true;
  if (evicting()) policies.collections[std::string(kCollection)].hot_window = hot_window_;
  if (Status st = nd.set_tier_policies(std::move(policies)); !st.ok()) {
    violation("sink", peer_name(p) + " set_tier_policies: " + st.to_string());
    return;
  }
  if (evicting()) {
    // As the uploader does (node/mesh/sink_uploader.cpp): the sink's digest, BLAKE2b-256.
    node::EvictionOptions e;
    e.payload_budget_bytes = evict_budget_;
    if (sc_.mutation == Mutation::kStubWrongDigest) {
      e.payload_digest = [](std::string_view payload) { return sink::payload_digest(payload.substr(0, payload.size() - 1)); };
    } else {
      e.payload_digest = [](std::string_view payload) { return sink::payload_digest(payload); };
    }
    if (Status st = nd.set_eviction(std::move(e)); !st.ok()) {
      violation("sink", peer_name(p) + " set_eviction: " + st.to_string());
      return;
    }
  }
  node::SinkFeedOptions o;
  // sink-quota-off: the quota the node checks is the buffer's bound, not the 40 expected.
  o.quota_entries = sc_.mutation == Mutation::kSinkQuotaOff ? options_for(p).delta_buffer_max : kSinkQuota;
  o.max_upload_entries = 16;
  if (Status st = nd.enable_sink_feed(o); !st.ok()) {
    // A store fault can strike the read or the persist: the pump tries again.
    trace_.line(now_, static_cast<int>(p), "sink_enable_failed", st.to_string());
  }
  peers_[p].sink_inflight.reset();
}

bool Simulation::sink_down() const {
  return std::any_of(sink_outages_.begin(), sink_outages_.end(),
                     [&](const SinkOutage& o) { return now_ >= o.from && now_ < o.to; });
}

void Simulation::sink_pump(std::uint32_t p) {
  if (!sink_draining_ && done_) return;
  push(now_ + kSinkPumpEvery, Event{Ev::kSinkPump, p});
  Peer& peer = peers_[p];
  if (peer.node == nullptr || peer.faulty->crashed() || peer.sink_inflight) return;
  if (!peer.node->sink_feed_status().enabled) {
    sink_enable(p);
    if (!peer.node->sink_feed_status().enabled) return;
  }
  if (evicting()) {
    // Eviction's turn. The uploader takes it only while its feed has nothing to send
    // (node/mesh/sink_uploader.cpp, step()), which spares the uploads a wait; the simulator
    // takes it at every pump with nothing in flight, also while uploads wait or the sink is out,
    // because what keeps unacknowledged records from eviction must be the node's own rule, not
    // the driver's timing (evicted_unacked; docs/sim.md, "Eviction, refills and merged cold search").
    sink_evict(p);
    if (peer.node == nullptr || peer.faulty->crashed()) return;
  }
  auto up = peer.node->next_sink_upload();
  if (!up.ok()) {
    trace_.line(now_, static_cast<int>(p), "sink_next_failed", up.status().to_string());
    return;
  }
  if (!*up) return;
  node::SinkUpload& u = **up;
  trace_.line(now_, static_cast<int>(p), "sink_send",
              fmt("kind=%d seq=%llu..%llu bytes=%zu", static_cast<int>(u.kind), static_cast<unsigned long long>(u.first_seq),
                  static_cast<unsigned long long>(u.last_seq), u.delta.size()));
  Event ev{Ev::kSinkArrive, p, 0, peer.gen, u.delta};
  ev.original = u.collection;
  ev.replaced = peer.replaced;
  ev.removed = u.removed;
  // As the uploader does (node/mesh/sink_uploader.cpp, send()): the collection's spec, whose
  // metric the sink checks the upload under and which it keeps for bootstraps (D62).
  if (auto info = peer.node->collection_info(u.collection); info.ok()) ev.spec = info->spec;
  peer.sink_inflight = std::move(u);
  push(now_ + peer.sink_delay, std::move(ev));
}

void Simulation::sink_arrive(const Event& ev) {
  Peer& peer = peers_[ev.a];
  const bool ack_anyway = sc_.mutation == Mutation::kSinkAckUnapplied;
  bool taken = false;
  if (ev.replaced != peer.replaced) {
    // The upload of a device whose data directory was lost since: dropped with it (a
    // replacement takes longer than the sink link's delay).
    trace_.line(now_, static_cast<int>(ev.a), "sink_lost", "replaced");
    return;
  }
  if (sink_ == nullptr || sink_down() || (!healed_ && sink_rng_.bernoulli(sink_loss_))) {
    trace_.line(now_, static_cast<int>(ev.a), "sink_lost", sink_down() ? "outage" : "loss");
  } else if (ev.bytes.empty() && ev.removed.empty()) {
    taken = true;  // nothing to store: acknowledged at once (as SinkService::apply_delta does)
  } else {
    // Before the heal, 5% of puts fail (half of them after the object was stored).
    if (!healed_ && sink_rng_.bernoulli(0.05)) sink_store_->fail_next_writes(1, sink_rng_.bernoulli(0.5));
    const std::int64_t wall = kEpochNs + now_.ns();
    Status st;
    if (!ev.bytes.empty()) {
      auto ack = sink_->apply_delta(ev.original, ev.bytes, wall,
                                    ev.spec ? std::optional<index::Metric>(ev.spec->metric) : std::nullopt, ev.spec);
      st = ack.status();
    }
    // The removed dots (D74), piece after piece as the uploader sends them (sink-removed-dropped:
    // never delivered, though acknowledged).
    if (sc_.mutation != Mutation::kSinkRemovedDropped) {
      for (std::size_t i = 0; st.ok() && i < ev.removed.size(); ++i) {
        auto ranges = sink_->check_removed(ev.original, ev.removed[i]);
        st = ranges.status();
        if (st.ok()) st = sink_->remove_dots(ev.original, *ranges, wall).status();
      }
    }
    sink_store_->fail_next_writes(0, false);
    if (st.ok()) {
      taken = true;
      ++stats_.sink_uploads;
    } else {
      trace_.line(now_, static_cast<int>(ev.a), "sink_refused", st.to_string());
    }
  }
  if (!taken) ++stats_.sink_lost;
  const bool back = (taken || ack_anyway) && !(!healed_ && sink_rng_.bernoulli(sink_loss_));
  // The acknowledgement, or the driver's timeout after the same round trip.
  push(now_ + peer.sink_delay, Event{Ev::kSinkAck, ev.a, back ? 1u : 0u, ev.gen});
}

void Simulation::sink_ack(const Event& ev) {
  Peer& peer = peers_[ev.a];
  if (peer.node == nullptr || peer.gen != ev.gen || !peer.sink_inflight) return;
  node::SinkUpload up = std::move(*peer.sink_inflight);
  peer.sink_inflight.reset();
  if (ev.b == 0 || sc_.mutation == Mutation::kSinkAcksDropped) {
    trace_.line(now_, static_cast<int>(ev.a), "sink_timeout", "");
    return;
  }
  const Status st = peer.node->sink_acked(up);
  trace_.line(now_, static_cast<int>(ev.a), "sink_acked", st.ok() ? fmt("through=%llu backlog=%llu",
              static_cast<unsigned long long>(peer.node->sink_feed_status().uploaded_through),
              static_cast<unsigned long long>(peer.node->sink_feed_status().backlog_entries)) : st.to_string());
  if (st.ok()) ++stats_.sink_acks;
  after_input(ev.a);
}

void Simulation::sink_reopen() {
  // The sink comes back as a new process: its state is rebuilt from the object store.
  if (sink_ == nullptr) return;
  sink_.reset();
  if (sc_.mutation == Mutation::kSinkStoreUnreachable) sink_store_->set_unreachable(true);
  auto opened = sink::SinkService::open(*sink_store_, sink_limits());
  if (!opened.ok()) {
    violation("sink", "the sink failed to reopen: " + opened.status().to_string());
    return;
  }
  sink_ = std::move(opened).value();
}

bool Simulation::sink_start_drain() {
  if (!done_ || !converged_ || sink_ == nullptr) return false;
  // The mesh converged and the workload stopped. If the sink is still out, the devices sit idle
  // until it returns (up to 7 simulated days): virtual time jumps there, as for a suspended
  // machine; what was in flight is dropped (a network that lost it).
  done_ = false;
  sink_draining_ = true;
  queue_ = EventQueue<Event>();
  const bool jump = now_ < sink_back_;
  if (jump) {
    trace_.line(now_, kNoPeer, "sink_jump", fmt("to_ms=%lld", static_cast<long long>(sink_back_.ns() / 1'000'000)));
    now_ = sink_back_;
    sink_reopen();
  }
  drain_start_ = now_;
  for (std::uint32_t p = 0; p < n_; ++p) {
    Peer& peer = peers_[p];
    ++peer.gen;  // events of the old queue are gone; nothing stale may match
    peer.wake_at = MonoTime::from_ns(INT64_MAX);
    peer.sink_inflight.reset();
    if (peer.node == nullptr) continue;
    after_input(p);
    push(now_ + Duration::millis(1 + p), Event{Ev::kSinkPump, p});
    if (peer.boot.pending) {
      // A bootstrap that waited for the sink (or was under way): run again now that it is back.
      peer.boot.active = false;
      peer.boot.backoff = Duration();
      push(now_ + Duration::millis(1 + p), Event{Ev::kBootStart, p, 0, peer.gen});
    }
  }
  push(now_ + Duration::millis(100), Event{Ev::kSinkCheck});
  return true;
}

bool Simulation::sink_check_drained() {
  for (std::uint32_t p = 0; p < n_; ++p) {
    const Peer& peer = peers_[p];
    if (peer.node == nullptr) continue;
    const node::SinkFeedStatus fs = peer.node->sink_feed_status();
    if (!fs.enabled || fs.backlog_entries > 0 || fs.full_state_pending || peer.sink_inflight) return false;
    if (peer.boot.pending) return false;
  }
  // A bootstrap that completed during the drain brought records the mesh may not have had (held
  // only by the sink and the lost device): the mesh must converge again before the checkers run.
  return !boot_done_in_drain_ || check_converged();
}

void Simulation::sink_checks() {
  // bootstrap: every replaced device finished its bootstrap once the sink was back.
  for (std::uint32_t p = 0; p < n_; ++p) {
    if (peers_[p].boot.pending) violation("bootstrap", peer_name(p) + " never completed its bootstrap from the sink");
  }
  // quota: after the sink returned and the feeds drained, every node's backlog is 0.
  for (std::uint32_t p = 0; p < n_; ++p) {
    if (peers_[p].node == nullptr) continue;
    const node::SinkFeedStatus fs = peers_[p].node->sink_feed_status();
    if (fs.backlog_entries > 0 || fs.full_state_pending) {
      violation("quota", peer_name(p) + fmt(": backlog %llu (full state pending: %d) after the drain",
                                           static_cast<unsigned long long>(fs.backlog_entries), fs.full_state_pending ? 1 : 0));
    }
  }
  // sink_state: the sink's live records of `c` are the oracle's (ids, dots and payloads).
  auto contents = sink_contents();
  if (!contents.ok()) violation("sink_state", contents.status().to_string());
  const bool have = contents.ok();
  const crdt::RecordMap at_sink = have && *contents ? (*contents)->records : crdt::RecordMap{};
  // evicted_unacked at the end: every stub any node holds, the sink holds (or removed).
  for (std::uint32_t p = 0; p < n_ && have && evicting(); ++p) {
    if (peers_[p].node == nullptr) continue;
    auto st = state(p);
    if (!st.ok()) continue;  // final_checks reported it
    check_stubs_held(p, *st, *contents ? &**contents : nullptr, "after the drain");
    for (const auto& [id, entries] : st->records()) {
      for (const crdt::Entry& e : entries) stats_.stubs_at_end += node::is_stub_payload(node::format::as_view(e.payload)) ? 1 : 0;
    }
  }
  if (have) {
    std::map<std::string, std::size_t> counts;
    auto report = [&](const char* what, std::string detail) {
      if (++counts[what] <= 3) violation("sink_state", std::move(detail));
    };
    std::size_t live = 0;
    for (const auto& [id, entries] : oracle_.model().records()) {
      if (entries.empty()) {
        if (at_sink.count(id) != 0) report("deleted", "'" + id + "' was deleted by an acknowledged operation but the sink holds it");
        continue;
      }
      ++live;
      auto it = at_sink.find(id);
      if (it == at_sink.end()) {
        report("missing", "'" + id + "' is live in the oracle but not at the sink");
        continue;
      }
      std::size_t extra = 0, missing = 0, other = 0;
      for (const crdt::Entry& e : it->second) {
        auto m = std::find_if(entries.begin(), entries.end(), [&](const crdt::Entry& o) { return o.dot == e.dot; });
        if (m == entries.end()) ++extra;
        else if (m->payload != e.payload) ++other;
      }
      for (const crdt::Entry& e : entries) {
        if (std::none_of(it->second.begin(), it->second.end(), [&](const crdt::Entry& o) { return o.dot == e.dot; })) ++missing;
      }
      if (extra + missing + other > 0) {
        report("differs", "'" + id + fmt("': the sink's entries differ from the oracle's (%zu extra, %zu missing, %zu other payload)",
                                         extra, missing, other));
      }
    }
    for (const auto& [id, entries] : at_sink) {
      if (!oracle_.model().records().contains(id)) report("phantom", "'" + id + "' is at the sink but never written");
    }
    stats_.sink_records = at_sink.size();
    trace_.line(now_, kNoPeer, "sink_state", fmt("sink=%zu oracle=%zu", at_sink.size(), live));
  }
  // cold_search: the sink's cold search equals exact search over the oracle's live records.
  std::vector<std::string> ids;
  std::vector<float> base;
  for (const auto& [id, entries] : oracle_.model().records()) {
    const crdt::Entry* w = crdt::winner(entries);
    if (w == nullptr) continue;
    auto v = node::decode_payload(std::string_view(reinterpret_cast<const char*>(w->payload.data()), w->payload.size()));
    if (!v.ok() || v->vector.size() != dim_) return;  // search_check reported it
    ids.push_back(id);
    base.insert(base.end(), v->vector.begin(), v->vector.end());
  }
  Rng qr = sink_rng_.fork(1);
  const index::Metric metric = sc_.mutation == Mutation::kColdWrongMetric ? index::Metric::kInnerProduct : index::Metric::kL2;
  for (int qi = 0; qi < 3; ++qi) {
    const std::vector<float> q = random_vector(qr);
    auto exact = index::exact_knn(index::scalar_kernels(), index::Metric::kL2, base, dim_, q, 10);
    auto cold = sink_->cold_search(kCollection, q, 10, metric);
    std::string want, got;
    for (const auto& nb : exact) want += ids[nb.label] + ",";
    if (!cold.ok()) {
      if (!(ids.empty() && cold.status().detail() == Detail::kNoSuchCollection)) {
        violation("cold_search", "the sink's cold search failed: " + cold.status().to_string());
      }
    }
    if (cold.ok()) {
      for (const auto& h : cold->hits) got += h.id + ",";
    } else {
      got = want;  // reported above, or no record anywhere
    }
    if (want != got) violation("cold_search", fmt("query %d: the sink answered [%s], exact search over the oracle [%s]", qi, got.c_str(), want.c_str()));
    // cold_merge, cold_deleted: every node's search with the cold tier (its local hits merged
    // with the sink's, Node::merge_cold_hits) is exact search over the oracle's live records,
    // whatever each node evicted; never a deleted record.
    for (std::uint32_t p = 0; p < n_; ++p) {
      if (peers_[p].node == nullptr) continue;
      node::SearchOptions so;
      so.k = 10;
      so.with_metadata = false;
      auto local = peers_[p].node->search(kCollection, q, so);
      auto merged = local.ok() ? search_with_cold(p, q, *local) : Result<std::vector<node::ColdHit>>(local.status());
      if (!merged.ok()) {
        violation("cold_merge", peer_name(p) + fmt(" query %d: ", qi) + merged.status().to_string());
        continue;
      }
      ++stats_.cold_searches;
      std::string mine;
      for (const node::ColdHit& h : *merged) {
        mine += h.id + ",";
        stats_.cold_hits += h.cold ? 1 : 0;
        const crdt::Entries* e = oracle_.model().find(h.id);
        if (e == nullptr || e->empty()) {
          violation("cold_deleted", peer_name(p) + fmt(" query %d: the search with the cold tier returned '", qi) + h.id +
                                        (h.cold ? "' (cold)" : "' (local)") + ", which no acknowledged write left live");
        }
      }
      if (mine != want) {
        violation("cold_merge", peer_name(p) + fmt(" query %d: local and cold hits merged [%s], exact search over the oracle [%s]",
                                                   qi, mine.c_str(), want.c_str()));
      }
    }
  }
}

// --- Eviction to stubs, refills and merged cold search (docs/sim.md, "Eviction, refills and
// merged cold search") ---

void Simulation::evict_setup() {
  // Its own stream, so the sink's draws (sink_setup) stay what they were.
  Rng er(sc_.seed * 0x9E3779B97F4A7C15ull + 16);
  // 80% of --sink seeds evict: each node keeps the vectors of 0..16 records of `c` (a budget of
  // 1 byte keeps none) and may stub a record whose winner is older than a hot window of 0..3 s,
  // so eviction starts within chaos (2..8 s) and again after the drain.
  if (!er.bernoulli(0.8)) {
    scenario_line_ += " evict=off";
    return;
  }
  const std::uint64_t kept = er.uniform(17);
  evict_budget_ = std::max<std::uint64_t>(1, kept * dim_ * sizeof(float));
  hot_window_ = Duration::millis(er.uniform_range(0, 3000));
  stats_.evict_budget_bytes = evict_budget_;
  stats_.hot_window_ms = hot_window_.ms();
  scenario_line_ += fmt(" evict_budget=%llu hot_window_ms=%lld", static_cast<unsigned long long>(evict_budget_),
                        static_cast<long long>(hot_window_.ms()));
}

void Simulation::sink_evict(std::uint32_t p) {
  // As the uploader does while its feed is idle (node/mesh/sink_uploader.cpp, evict()): one step,
  // and another at once while still over the budget and progressing.
  Peer& peer = peers_[p];
  std::uint64_t evicted = 0;
  for (int i = 0; i < 64; ++i) {
    auto step = peer.node->evict_step();
    if (!step.ok()) {
      trace_.line(now_, static_cast<int>(p), "evict_failed", step.status().to_string());
      break;
    }
    evicted += step->evicted;
    if (!step->over_budget || step->evicted == 0 || peer.faulty->crashed()) break;
  }
  if (peer.faulty->crashed()) {
    after_input(p);  // the process died inside a step: reaped, restarted after its downtime
    return;
  }
  if (evicted == 0) return;
  stats_.evicted += evicted;
  const node::EvictionStatus es = peer.node->eviction_status();
  trace_.line(now_, static_cast<int>(p), "evict",
              fmt("evicted=%llu stubs=%llu held=%llu", static_cast<unsigned long long>(evicted),
                  static_cast<unsigned long long>(es.evicted_records), static_cast<unsigned long long>(es.held_bytes)));
  auto s = state(p);
  auto contents = sink_contents();
  if (!s.ok() || !contents.ok()) return;  // an injected read fault: judged at the end
  check_stubs_held(p, *s, *contents ? &**contents : nullptr, "right after eviction");
}

Result<std::optional<crdt::Delta>> Simulation::sink_contents() const {
  if (sink_ == nullptr) return Status(Code::kUnavailable, "the sink is not open");
  crdt::Delta all;
  std::string after;
  for (int page = 0; page < 10'000; ++page) {
    auto got = sink_->bootstrap(kCollection, after);
    if (!got.ok()) {
      if (got.status().detail() == Detail::kNoSuchCollection) return std::optional<crdt::Delta>();
      return Status(got.status().code(), "bootstrap: " + got.status().to_string());
    }
    if (!got->segment.empty()) {
      auto seg = sink::decode_segment(got->segment);
      if (!seg.ok()) return Status(seg.status().code(), "bootstrap page does not decode: " + seg.status().to_string());
      crdt::Delta d = sink::segment_to_delta(*seg);
      for (auto& [id, entries] : d.records) all.records[id] = std::move(entries);
    }
    if (!got->context.empty()) {
      // The first page's and the last's: the collection's whole context then (the last covers more).
      auto ctx = sink::bootstrap_context(kCollection, got->context);
      if (!ctx.ok()) return Status(ctx.status().code(), "bootstrap context: " + ctx.status().to_string());
      all.context = std::move(*ctx);
    }
    if (got->done) break;
    after = got->next_after;
  }
  return std::optional<crdt::Delta>(std::move(all));
}

void Simulation::check_stubs_held(std::uint32_t p, const crdt::ORMap& s, const crdt::Delta* at_sink, const char* when) {
  int reported = 0;
  for (const auto& [id, entries] : s.records()) {
    for (const crdt::Entry& e : entries) {
      if (!node::is_stub_payload(node::format::as_view(e.payload))) continue;
      bool held = false;
      if (at_sink != nullptr) {
        auto it = at_sink->records.find(id);
        held = at_sink->context.contains(e.dot) ||
               (it != at_sink->records.end() &&
                std::any_of(it->second.begin(), it->second.end(), [&](const crdt::Entry& o) { return o.dot == e.dot; }));
      }
      if (held) continue;
      if (++reported <= 3) {
        violation("evicted_unacked", peer_name(p) + " holds '" + id + "' " + e.dot.to_string() + " as a stub " + when +
                                         ", but the sink neither holds nor removed that entry");
      }
    }
  }
  if (reported > 3) violation("evicted_unacked", peer_name(p) + fmt(": %d more stubs the sink does not hold", reported - 3));
}

crdt::ORMap Simulation::unstub(const crdt::ORMap& s, std::uint32_t p, bool report) {
  crdt::Delta d;
  d.context = s.context();
  int reported = 0;
  for (const auto& [id, entries] : s.records()) {
    crdt::Entries out = entries;
    for (crdt::Entry& e : out) {
      if (!node::is_stub_payload(node::format::as_view(e.payload))) continue;
      auto stub = node::decode_stub_payload(node::format::as_view(e.payload));
      auto want = client_values_.find({std::string(kCollection), e.dot});
      if (want == client_values_.end() || !stub.ok()) continue;  // phantom or payload_mismatch then
      crdt::Bytes bytes = payload_bytes(want->second);
      if (report && sink::payload_digest(node::format::as_view(bytes)) != stub->digest) {
        if (++reported <= 3) {
          violation("stub_digest", peer_name(p) + " '" + id + "' " + e.dot.to_string() +
                                       ": the stub's digest is not the digest of the payload the client wrote");
        }
        continue;
      }
      e.payload = std::move(bytes);
    }
    d.records.emplace(id, std::move(out));
  }
  if (reported > 3) violation("stub_digest", peer_name(p) + fmt(": %d more stubs with another digest", reported - 3));
  crdt::ORMap m;
  (void)m.join(d);
  return m;
}

Result<Simulation::ColdRead> Simulation::cold_get(std::uint32_t p, const std::string& id) {
  // MeshHost::get_with_cold on the simulated sink: a stub winner is fetched from the sink (an
  // instant call; none while the sink is out) and checked against the stub (Node::check_refill).
  node::Node& nd = *peers_[p].node;
  SHOAL_ASSIGN_OR_RETURN(node::GetResult got, nd.get(kCollection, id));
  ColdRead out;
  out.record = std::move(got);
  node::Sibling& stub = out.record.siblings.at(0);
  if (!stub.evicted) return out;
  auto unavailable = [&](const std::string& why) {
    ++stats_.cold_unavailable;
    out.cold_error = Status(Detail::kColdUnavailable, "record '" + id + "' is evicted and the sink cannot give it: " + why);
    trace_.line(now_, static_cast<int>(p), "refill", id + " cold_unavailable " + why);
    return out;
  };
  if (sink_ == nullptr || sink_down()) return unavailable("the sink is out");
  const std::string ids[] = {id};
  auto fetched = sink_->fetch(kCollection, ids);
  if (!fetched.ok()) return unavailable(fetched.status().to_string());
  if (fetched->empty() || !fetched->at(0).found) return unavailable("the sink does not have it");
  const std::string& payload = fetched->at(0).payload;
  // refill-unchecked: the sink's payload is taken as it is, whichever version it holds.
  auto value = sc_.mutation == Mutation::kRefillUnchecked ? node::decode_payload(payload) : nd.check_refill(id, stub, payload);
  if (!value.ok()) {
    ++stats_.refills_refused;
    out.cold_error = value.status();
    trace_.line(now_, static_cast<int>(p), "refill", id + " refused " + value.status().to_string());
    return out;
  }
  stub.value = std::move(*value);
  stub.evicted = false;
  out.refilled = true;
  ++stats_.refills;
  trace_.line(now_, static_cast<int>(p), "refill", id + " " + stub.dot.to_string());
  return out;
}

void Simulation::judge_refill(std::uint32_t p, const std::string& id, const ColdRead& r, bool removed) {
  if (!r.refilled) return;
  const node::Sibling& s = r.record.siblings.at(0);
  if (removed) {
    violation("cold_deleted", peer_name(p) + " refilled '" + id + "' " + s.dot.to_string() + ", which an acknowledged remove deleted");
  }
  auto want = client_values_.find({std::string(kCollection), s.dot});
  const bool same = want != client_values_.end() && s.value.vector.size() == want->second.vector.size() &&
                    std::memcmp(s.value.vector.data(), want->second.vector.data(), s.value.vector.size() * sizeof(float)) == 0 &&
                    s.value.metadata == want->second.metadata && s.value.model == want->second.model;
  if (!same) {
    violation("refill_mismatch", peer_name(p) + " refilled '" + id + "' " + s.dot.to_string() +
                                     " from the sink with other bytes than the client wrote for that entry");
  }
}

void Simulation::cold_search_read(std::uint32_t p, const std::vector<float>& q, const std::vector<node::Hit>& local) {
  auto merged = search_with_cold(p, q, local);
  if (!merged.ok()) return;  // a read fault: no answer
  ++stats_.cold_searches;
  crdt::CausalContext removed;
  for (const crdt::Dot& d : session_removed_[p]) removed.add(d);
  for (const node::ColdHit& h : *merged) {
    if (!h.cold) continue;
    ++stats_.cold_hits;
    auto dots = crdt::decode_context(std::span(reinterpret_cast<const std::uint8_t*>(h.dots.data()), h.dots.size()));
    if (dots.ok() && !dots->empty() && removed.includes(*dots)) {
      violation("cold_deleted", peer_name(p) + " searched with the cold tier and got '" + h.id + "' " + dots->to_string() +
                                    " from the sink, which its own acknowledged remove deleted");
      return;
    }
  }
}

Result<std::vector<node::ColdHit>> Simulation::search_with_cold(std::uint32_t p, const std::vector<float>& q,
                                                                const std::vector<node::Hit>& local) {
  // MeshHost::search_with_cold: the sink's exact search, same metric and k (none while the sink
  // is out, or before it holds `c`: the local hits come back alone), merged at the node.
  std::vector<node::ColdHit> cold;
  if (sink_ != nullptr && !sink_down() && sc_.mutation != Mutation::kMergeLocalOnly) {
    auto got = sink_->cold_search(kCollection, q, 10, index::Metric::kL2);
    if (got.ok()) {
      for (sink::ColdHit& h : got->hits) cold.push_back(node::ColdHit{std::move(h.id), h.distance, std::move(h.dots), false});
    }
  }
  if (sc_.mutation == Mutation::kMergeUnjudged) {
    // Mutation under test: by distance alone, no rule for records held or removed here.
    std::vector<node::ColdHit> out;
    for (const node::Hit& h : local) out.push_back(node::ColdHit{h.id, h.distance, {}, false});
    for (node::ColdHit& h : cold) {
      h.cold = true;
      out.push_back(std::move(h));
    }
    std::stable_sort(out.begin(), out.end(), [](const node::ColdHit& a, const node::ColdHit& b) {
      return a.distance != b.distance ? a.distance < b.distance : a.id < b.id;
    });
    if (out.size() > 10) out.resize(10);
    return out;
  }
  return peers_[p].node->merge_cold_hits(kCollection, local, cold, 10);
}

// --- Device replacement and bootstrap from the sink (docs/sim.md) ---

void Simulation::replace(std::uint32_t i) {
  const Replacement& r = replacements_[i];
  const std::uint32_t t = r.target;
  Peer& peer = peers_[t];
  if (healed_) {
    trace_.line(now_, static_cast<int>(t), "replace_skipped", "healed");
    return;
  }
  // What the mesh and the sink knew of `c` when the data directory was lost: every replica's
  // context (from its store, also while it is down), the sink's and the oracle's. The new device
  // must never issue a dot of it (reissued_dot). The simulator's reads leave injected read
  // faults for the nodes.
  LostKnown& lost = lost_known_[t];
  lost.ids.push_back(peer.replica);
  lost.records.merge(oracle_.model().context());
  lost.catalogue.merge(oracle_catalogue_.model().context());
  for (std::uint32_t p = 0; p < n_; ++p) {
    const std::uint32_t pending = peers_[p].store->pending_read_faults();
    peers_[p].store->fail_next_reads(0);
    auto st = durable_state(p, kCollection);
    auto cat = catalogue(p);
    peers_[p].store->fail_next_reads(pending);
    if (st.ok()) lost.records.merge(st->context());
    if (cat.ok()) lost.catalogue.merge(cat->context());
  }
  if (auto at_sink = sink_contents(); at_sink.ok() && *at_sink) lost.records.merge((*at_sink)->context);
  // The device stops and its disk is gone: peers see its identity go down.
  const crdt::ReplicaId old = peer.replica;
  if (peer.node != nullptr) peer.node.reset();
  ++peer.gen;
  std::fill(peer.view.begin(), peer.view.end(), std::uint8_t{0});
  refresh_views();
  ++peer.replaced;
  ++peer.life;
  ++peer.disk_gen;
  peer.store = std::make_unique<store::MemoryStore>();
  peer.faulty = std::make_unique<FaultyStore>(*peer.store, store_mode());
  // The new device's data directory draws fresh identity bytes (node/runtime/data_dir.hpp), so it
  // is a new replica: nothing it issues can be a dot of the old one, whatever its counter. The
  // simulator names it by a number of its own. replace-same-replica keeps the old id at
  // incarnation 0 (mutation under test).
  if (sc_.mutation != Mutation::kReplaceSameReplica) {
    retired_.push_back(old);
    peer.replica = crdt::replica_for_testing(10000ull * peer.replaced + t + 1, 0);
    index_of_[peer.replica] = t;
  }
  peer.incarnation = 0;
  peer.wiped = false;
  peer.sink_inflight.reset();
  peer.last_write_clock.reset();
  peer.last_context.reset();
  session_seen_[t].clear();
  session_removed_[t].clear();
  peer.boot = Peer::Boot{};
  peer.boot.pending = true;
  peer.boot.delay = r.boot_delay;
  ++stats_.replacements;
  trace_.line(now_, static_cast<int>(t), "replace",
              fmt("old=%s new=%s restart_in_ms=%lld boot_delay_ms=%lld", old.to_string().c_str(), peer.replica.to_string().c_str(),
                  static_cast<long long>(r.downtime.ms()), static_cast<long long>(r.boot_delay.ms())));
  mark(static_cast<int>(t), "replace", "data directory lost, new device " + peer.replica.to_string());
  // What only the lost device held is gone; what the sink holds is not (forget_lost counts the
  // sink as a holder of `c`).
  forget_lost();
  stats_.ops_forgotten_replace = stats_.ops_forgotten;
  push(now_ + r.downtime, Event{Ev::kRestart, t, 0, peer.gen});
}

void Simulation::boot_start(std::uint32_t p, std::uint64_t gen) {
  Peer& peer = peers_[p];
  Peer::Boot& b = peer.boot;
  if (peer.node == nullptr || peer.gen != gen || !b.pending || b.active || peer.faulty->crashed()) return;
  // MeshHost::bootstrap_from_sink: a collection the device lacks is created from the first page.
  b.active = true;
  b.create = !peer.node->collection_info(kCollection).ok();
  b.after.clear();
  b.ids.clear();
  b.first_context = crdt::CausalContext();
  b.page.reset();
  b.at_first.reset();
  b.pages = 0;
  b.records = 0;
  ++stats_.boot_attempts;
  trace_.line(now_, static_cast<int>(p), "boot_start", b.create ? "create" : "");
  push(now_ + peer.sink_delay, Event{Ev::kBootReq, p, 0, gen});
}

void Simulation::boot_request(const Event& ev) {
  // The page request reaches the sink over the device's sink link (its delay and loss, the
  // sink's outages), as a Sink.bootstrap call does.
  Peer& peer = peers_[ev.a];
  Peer::Boot& b = peer.boot;
  if (peer.gen != ev.gen || !b.active) return;  // the device died meanwhile: nobody waits for the answer
  std::uint32_t outcome = 1;
  if (sink_ == nullptr || sink_down() || (!healed_ && boot_rng_.bernoulli(sink_loss_))) {
    outcome = 0;
  } else {
    auto page = sink_->bootstrap(kCollection, b.after);
    if (!page.ok()) {
      b.refused = page.status();
      outcome = 2;
    } else {
      if (b.after.empty()) {
        // What the sink holds as it serves the first page: bootstrap_lost and
        // bootstrap_resurrected judge the device against it.
        auto at = sink_contents();
        b.at_first = at.ok() && *at ? std::move(**at) : crdt::Delta{};
      }
      b.page = std::move(page).value();
      if (!healed_ && boot_rng_.bernoulli(sink_loss_)) outcome = 0;  // the answer is lost
    }
  }
  push(now_ + peer.sink_delay, Event{Ev::kBootReply, ev.a, outcome, ev.gen});
}

void Simulation::boot_failed(std::uint32_t p, const std::string& why) {
  // The call fails (MeshHost returns the error); the operator or the app runs it again, from the
  // start, after a backoff.
  Peer& peer = peers_[p];
  Peer::Boot& b = peer.boot;
  b.active = false;
  b.page.reset();
  b.backoff = b.backoff.ns() == 0 ? kBootRetryFirst : std::min(kBootRetryMax, b.backoff + b.backoff);
  trace_.line(now_, static_cast<int>(p), "boot_failed", why + fmt(" retry_in_ms=%lld", static_cast<long long>(b.backoff.ms())));
  push(now_ + b.backoff, Event{Ev::kBootStart, p, 0, peer.gen});
}

void Simulation::boot_reply(const Event& ev) {
  const std::uint32_t p = ev.a;
  Peer& peer = peers_[p];
  Peer::Boot& b = peer.boot;
  if (peer.node == nullptr || peer.gen != ev.gen || !b.active || peer.faulty->crashed()) return;
  if (ev.b == 0) {
    boot_failed(p, "lost");
    return;
  }
  if (ev.b == 2) {
    boot_failed(p, "refused: " + b.refused.to_string());
    return;
  }
  const std::uint64_t gen = peer.gen;
  const Status st = boot_join(p);
  if (peer.gen != gen || peer.node == nullptr || peer.faulty->crashed()) {
    // The process died inside the join (reaped after this event) or was reopened at once after
    // a landed create: the reopened device runs the bootstrap again from the start.
    b.active = false;
    trace_.line(now_, static_cast<int>(p), "boot_died", st.to_string());
    return;
  }
  if (!st.ok()) {
    // The sink cannot say how to create `c` yet, the catalogue brought it meanwhile, or the disk
    // refused: run again. Anything else is a page the product refused.
    const bool again = st.detail() == Detail::kNoSuchCollection || st.detail() == Detail::kAlreadyExists ||
                       st.code() == Code::kIo || st.code() == Code::kUnavailable || st.code() == Code::kOverloaded;
    if (!again) violation("bootstrap", peer_name(p) + " refused the sink's page: " + st.to_string());
    boot_failed(p, st.to_string());
    return;
  }
  note_incarnation(p);
  ++b.pages;
  ++stats_.boot_pages;
  const bool done = b.page->done || sc_.mutation == Mutation::kBootOnePage;
  std::string next = b.page->next_after;
  b.page.reset();
  if (done) {
    boot_complete(p);
  } else if (next <= b.after) {
    violation("bootstrap", peer_name(p) + ": the sink's bootstrap cursor did not advance");
    b.active = false;
    b.pending = false;
  } else {
    b.after = std::move(next);
    push(now_ + peer.sink_delay, Event{Ev::kBootReq, p, 0, gen});
  }
  after_input(p);
}

Status Simulation::boot_join(std::uint32_t p) {
  // mesh_host.cpp's join_bootstrap_page, on the simulated sink's page: the same sink and node
  // calls (sink::bootstrap_context, sink::bootstrap_page_delta, Node::create_collection,
  // Node::join_sink_page) in the same order.
  Peer& peer = peers_[p];
  Peer::Boot& b = peer.boot;
  const sink::BootstrapPage& page = *b.page;
  if (b.create) {
    if (page.dimension == 0 || !page.metric) {
      return Status(Detail::kNoSuchCollection,
                    std::string("the sink cannot say how to create c (") +
                        (page.dimension == 0 ? "no live record" : "no upload told it the metric") + ")");
    }
    // The index options the sink keeps (D62), else this device's defaults; the identity, dimension
    // and metric are the page's.
    node::CollectionSpec spec = page.spec.value_or(node::CollectionSpec{});
    spec.name = std::string(kCollection);
    spec.dimension = page.dimension;
    spec.metric = *page.metric;
    // A create is a catalogue operation: the catalogue oracle records it as setup's are.
    auto before = catalogue(p);
    if (!before.ok()) return before.status();
    Status st = peer.node->create_collection(spec);
    if (!st.ok() && !landed_restart(p)) return st;
    if (st.ok() && !died_after_commit(p)) return Status(Code::kUnavailable, "could not reopen after the create");
    auto after = catalogue(p);
    if (!after.ok()) return after.status();
    auto dot = oracle_catalogue_.upsert(peer.node->issuer(), kCollection, entries_of(*before, kCollection),
                                        entries_of(*after, kCollection), violations_);
    if (dot) check_reissue(p, *dot, kCollection, /*catalogue=*/true);
    ++stats_.catalogue_ops;
    trace_.line(now_, static_cast<int>(p), "boot_create", fmt("dim=%u metric=%d spec=%s", spec.dimension,
                                                              static_cast<int>(spec.metric), page.spec ? "sink" : "default"));
    if (!st.ok()) return Status(Code::kUnavailable, "the process died in the create; its commit landed");
    b.create = false;
    ++stats_.boot_created;
  }
  // boot-unjudged (mutation under test): no page is the last, and no first context.
  const bool unjudged = sc_.mutation == Mutation::kBootUnjudged;
  const bool done = !unjudged && (page.done || sc_.mutation == Mutation::kBootOnePage);
  if (b.after.empty() && !unjudged) {
    SHOAL_ASSIGN_OR_RETURN(b.first_context, sink::bootstrap_context(kCollection, page.context));
  }
  const std::size_t before_ids = b.ids.size();
  SHOAL_ASSIGN_OR_RETURN(crdt::Delta delta, sink::bootstrap_page_delta(kCollection, page.segment, page.context, done, b.ids));
  b.records += b.ids.size() - before_ids;
  return peer.node->join_sink_page(kCollection, std::move(delta), done, b.ids, b.first_context);
}

void Simulation::boot_complete(std::uint32_t p) {
  Peer& peer = peers_[p];
  Peer::Boot& b = peer.boot;
  b.active = false;
  b.pending = false;
  b.backoff = Duration();
  ++stats_.bootstraps;
  stats_.boot_records += b.records;
  if (sink_draining_) boot_done_in_drain_ = true;
  trace_.line(now_, static_cast<int>(p), "boot_done", fmt("pages=%llu records=%llu", static_cast<unsigned long long>(b.pages),
                                                          static_cast<unsigned long long>(b.records)));
  mark(static_cast<int>(p), "bootstrap", fmt("%llu pages", static_cast<unsigned long long>(b.pages)));
  auto s = state(p, kCollection);
  if (!s.ok()) {
    violation("state_unreadable", peer_name(p) + " after its bootstrap: " + s.status().to_string());
    return;
  }
  const crdt::Delta first = b.at_first ? *b.at_first : crdt::Delta{};
  b.at_first.reset();
  auto holds = [](const crdt::RecordMap& m, const std::string& id, const crdt::Dot& dot) {
    auto it = m.find(id);
    return it != m.end() && std::any_of(it->second.begin(), it->second.end(), [&](const crdt::Entry& e) { return e.dot == dot; });
  };
  int lost = 0;
  int back = 0;
  // bootstrap_lost: every entry the sink held when it served the first page is on the device
  // now, unless the device saw it removed by an acknowledged operation (the oracle removed it).
  for (const auto& [id, entries] : first.records) {
    for (const crdt::Entry& e : entries) {
      if (holds(s->records(), id, e.dot)) continue;
      if (s->context().contains(e.dot) && oracle_.model().context().contains(e.dot) && oracle_.entry(id, e.dot) == nullptr) continue;
      if (++lost <= 3) {
        violation("bootstrap_lost", peer_name(p) + " lacks '" + id + "' " + e.dot.to_string() + " after its bootstrap" +
                                        (s->context().contains(e.dot) ? " (covered by its context)" : "") +
                                        ", which the sink held at the first page and no acknowledged operation removed");
      }
    }
  }
  // bootstrap_resurrected: no entry on the device whose dot the sink's first context covers and
  // that the sink no longer held then (removed at the sink before the bootstrap began).
  for (const auto& [id, entries] : s->records()) {
    for (const crdt::Entry& e : entries) {
      if (!first.context.contains(e.dot) || holds(first.records, id, e.dot)) continue;
      if (++back <= 3) {
        violation("bootstrap_resurrected", peer_name(p) + " holds '" + id + "' " + e.dot.to_string() +
                                               " after its bootstrap, which the sink had removed before its first page");
      }
    }
  }
  if (lost > 3) violation("bootstrap_lost", peer_name(p) + fmt(": %d more", lost - 3));
  if (back > 3) violation("bootstrap_resurrected", peer_name(p) + fmt(": %d more", back - 3));
}

void Simulation::check_reissue(std::uint32_t p, const crdt::Dot& dot, std::string_view id, bool catalogue) {
  auto it = lost_known_.find(p);
  if (it == lost_known_.end()) return;
  const crdt::CausalContext& known = catalogue ? it->second.catalogue : it->second.records;
  for (const crdt::ReplicaId& old : it->second.ids) {
    if (old.identity == dot.replica.identity && known.contains(dot)) {
      violation("reissued_dot", peer_name(p) + (catalogue ? " wrote the catalogue entry of '" : " wrote '") + std::string(id) +
                                    "' under " + dot.to_string() +
                                    ", a dot the mesh or the sink knew before its data directory was lost");
      return;
    }
  }
}

}  // namespace

SeedResult run_seed(const Scenario& scenario) {
  auto sim = std::make_unique<Simulation>(scenario);
  return sim->run();
}

}  // namespace shoal::sim

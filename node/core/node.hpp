// node/core/node.hpp: one Shoal node on one device: collections of records, durable in a Store,
// searchable through one VectorIndex per collection.
//
// Role: the data path. An upsert is validated, turned into a CRDT delta (crdt/), and the delta is
// joined into the stored state inside one store write transaction together with the new causal
// context and a delta-buffer entry; the write is acknowledged only after that transaction
// commits (durably). Only then is the in-memory mirror (labels, metadata, digests) and the index
// updated. Local writes, peers' deltas and repair slices all go through join_in_txn(), so there
// is one code path from a delta to the store and the index.
//
// Derived state: the index, the id<->label map, the metadata mirror used by filters, and the
// repair digests are all rebuilt from the store at open. The index may start from its snapshot
// (docs/index.md) when that snapshot covers a delta-buffer position the buffer still reaches
// back to; the deltas after it are replayed. Otherwise it is rebuilt.
//
// Thread rules: one owner, no locks (docs/architecture.md). Const methods (get, search, the
// listings and statistics) only read, so several threads may run them at once while no non-const
// method runs; node/runtime/shared_node.hpp is the thread-safe wrapper that the C API, the CLI
// and the daemon use. The one exception is IndexWork::run(), which may run on another thread
// while the owner goes on (see IndexWork). Time comes from the injected wall clock, identity from the options: the
// core reads no clock, no random source and no file.
// Ownership: the Node owns its indexes; the Store and the SnapshotStore are the caller's and
// must outlive the Node.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.hpp"
#include "common/status.hpp"
#include "common/time.hpp"
#include "crdt/hlc.hpp"
#include "crdt/or_map.hpp"
#include "crdt/replica.hpp"
#include "node/core/record.hpp"
#include "node/core/spec.hpp"
#include "node/core/delta_buffer.hpp"
#include "node/core/replicated_set.hpp"
#include "node/core/snapshot_store.hpp"
#include "node/core/sync_engine.hpp"
#include "index/types.hpp"
#include "node/store/store.hpp"
#include "transport/messages.hpp"

namespace shoal::index {
class HnswIndex;
}

namespace shoal::node {

struct CollectionInfo {
  CollectionSpec spec;
  std::uint32_t id = 0;
  std::uint64_t live_records = 0;
  std::uint64_t index_bytes = 0;
};

// Test-only faults that the simulator's checkers must catch (tests/sim). All off in production.
struct MutationsForTesting {
  // Join keeps only the single latest entry (last writer wins), ignoring causal contexts.
  bool lww_join = false;
  // The collection state (context with the dot counter) is persisted only every 4th write.
  bool lazy_counter = false;
  // A delta leaves the buffer as soon as it was sent once, before the peer acknowledged it.
  bool trim_before_ack = false;
  // A repair session merges the sender's context at its first reply, before reconciling.
  bool early_context_merge = false;
  // The hybrid clock ignores the clocks of what peers send (hlc_causality must fire).
  bool hlc_ignore_remote = false;
  // get() orders siblings by dot instead of the winner order (winner_order must fire).
  bool winner_by_dot = false;
  // A drop removes the catalogue entry but keeps the records (drop_resurrected must fire).
  bool drop_keeps_records = false;
  // A re-create keeps what the dropped collection still held (recreate_not_empty must fire).
  bool recreate_keeps_hidden = false;
  // Catalogue changes learnt from peers are not relayed (catalogue convergence must fail).
  bool catalogue_not_relayed = false;
  // A peer's context claiming our own dots beyond our counter is joined as it came, not
  // stripped (the simulator's hostile_applied must fire under --hostile-own-context).
  bool keep_own_claims = false;
  // A node issues dots under the incarnation it opened with instead of taking a fresh one at
  // its first local write (the simulator's dot_reused must fire when a peer is rolled back).
  bool stale_incarnation = false;
  // Eviction ignores the sink's acknowledgements (tests/sink/evict_test.cpp must catch it).
  bool evict_unacked = false;
};

struct NodeOptions {
  // Where index snapshots live; null: none (every open rebuilds). Must outlive the node.
  SnapshotStore* snapshots = nullptr;
  // The revocation set this node replicates (node/runtime/revocation_replica.hpp); null: the
  // node neither keeps nor forwards revocations. Must outlive the node.
  ReplicatedSet* revocations = nullptr;
  Limits limits;
  // The wall clock for hybrid logical clocks. Required (the runtime passes the real clock, the
  // simulator virtual time).
  std::function<WallTime()> wall_clock;
  // Keep at most this many entries in the delta buffer when no peer needs older ones.
  std::uint64_t delta_buffer_max = 100'000;
  // Threads used to rebuild an index at open (bulk insert).
  unsigned build_threads = 2;
  Logger* logger = nullptr;  // nullable
  SyncOptions sync;
  MutationsForTesting mutations;
  // Runs the index's background rebuild jobs; null: a thread per index. The simulator runs them
  // inline, in order, for determinism.
  std::function<void(std::function<void()>)> rebuild_executor;
  // Pins the distance kernels' instruction set (the simulator pins it); unset: the best the CPU
  // has.
  std::optional<index::Isa> index_isa;
  // Index upkeep off the write path: 0 (the default, and the simulator's) updates the index
  // before a write returns (D10). Above 0, a committed write queues its index operations
  // (IndexOp) and returns; search scans the queue exactly and merges it with the graph, so a
  // write is still visible to the next search; whoever drives the node applies the queue
  // (take_index_work / finish_index_work, or drain_index). The value is the queue's bound in
  // operations, which the driver enforces by holding writers back (the core never waits):
  // node/runtime/shared_node.hpp. The embedded runtime sets it (OpenDataDir::open_node).
  std::size_t index_queue_max = 0;
  // With snapshots: save_snapshots keeps a collection's snapshot (writes nothing) while at most
  // this many labels changed since it was written (the index_dirty table, replayed at the next
  // open; docs/node-format.md, "The index's dirty set"), so closing costs O(changes).
  std::size_t snapshot_dirty_max = 2048;
  // Replica identity to use when the store has none yet. Required for a new store (the runtime
  // draws one from the OS; the simulator and tests pass their own); ignored once stored.
  std::optional<crdt::ReplicaId> identity;
  // Random bits for new incarnations (docs/crdt.md, "Incarnations"): the runtime passes the
  // OS's, the simulator a seeded stream. Null: bits mixed from the wall clock, which keeps
  // copies apart only when they draw at different nanoseconds.
  std::function<std::uint64_t()> entropy;
};

struct RecordInput {
  std::string id;
  RecordValue value;
};

// One local write of a group committed together (Node::write_group): an upsert of `records`
// (validated first by Node::check_upsert) or, when `remove_id` is set, a delete.
struct WriteRequest {
  std::string collection;
  std::vector<RecordInput> records;
  std::optional<std::string> remove_id;
};

// One queued index operation of a committed write: add (or replace) `vector` under `label`, or,
// when `vector` is empty, remove the label.
struct IndexOp {
  std::uint64_t label = 0;
  std::vector<float> vector;
};

// What IndexWork::run calls around each change it makes to the index (one single insert, one
// parallel batch, one removal), on the thread that runs the work; `enter` and `leave` are set
// together or not at all. SharedNode uses it to hold its index gate exclusively meanwhile, so that
// a search waiting for the index's lock does so before it takes the node's lock, not while it
// holds it (node/runtime/shared_node.hpp, "Index gate").
struct IndexChangeBracket {
  std::function<void()> enter;
  std::function<void()> leave;
};

// A slice from the front of one collection's index queue, taken by Node::take_index_work and
// applied by run() on any thread WITHOUT the node (it touches only the collection's HnswIndex,
// which has its own lock and which nothing else changes while the work is out), then handed back
// to Node::finish_index_work, which drops it from the queue. Until then search keeps answering
// for these operations from the queue, so applying them never changes what a search returns.
class IndexWork {
 public:
  // Applies the operations in order; adds in runs of up to `threads` threads. The first index
  // error (logged by finish_index_work; the index is rebuilt from the store at the next open).
  // `stop` (optional; thread-safe) ends the work early when it returns true, asked before each
  // single insert and before each parallel batch (which then runs whole): a closing node does not
  // wait for a slice whose operations the next open replays anyway (D65). Then only applied()
  // operations, a prefix, are in the index; the rest stay queued, untouched, for later (an add
  // not applied is applied once; no operation is ever applied twice). `bracket` (optional)
  // surrounds each change to the index.
  [[nodiscard]] Status run(unsigned threads, const std::function<bool()>& stop = {},
                           const IndexChangeBracket& bracket = {});
  std::size_t size() const noexcept { return ops_.size(); }
  // The operations from the front that are in the index: all of them unless `stop` ended run().
  std::size_t applied() const noexcept { return applied_; }

 private:
  friend class Node;
  index::HnswIndex* index_ = nullptr;
  std::uint32_t cid_ = 0;
  std::vector<IndexOp> ops_;
  std::size_t applied_ = 0;
};

struct Sibling {
  RecordValue value;
  crdt::Hlc clock;
  crdt::Dot dot;
  // An evicted entry (a stub, docs/tiers.md "Eviction"): `value` has the metadata and model but
  // no vector; the sink holds the payload whose BLAKE2b-256 digest is `digest`.
  bool evicted = false;
  PayloadDigest digest{};
};

struct GetResult {
  // siblings[0] is the winner; more than one means concurrent upserts (docs/crdt.md).
  std::vector<Sibling> siblings;
};

struct Hit {
  std::string id;
  float distance = 0.0f;
  Metadata metadata;
  std::string model;
};

// A hit from the cold-tier sink's search (Sink.coldSearch): the record's id, its distance under
// the collection's metric, and its entries' dots at the sink (crdt::encode_context bytes).
struct ColdHit {
  std::string id;
  float distance = 0.0f;
  std::string dots;
  bool cold = false;  // in merge_cold_hits' answer: true when the hit came from the sink
};

struct SearchOptions {
  std::uint32_t k = 10;
  std::uint32_t ef = 0;  // 0: the collection's ef_search
  Filter filter;
  // Copy each hit's metadata and model tag into the result (callers that need only ids and
  // distances, such as shoal_search, turn it off).
  bool with_metadata = true;
};

struct NodeStats {
  std::uint64_t collections = 0;
  std::uint64_t live_records = 0;
  std::uint64_t delta_buffer_entries = 0;
  std::uint64_t last_delta_seq = 0;
  std::uint64_t index_bytes = 0;
  std::string replica;  // the id new dots are issued under
  // Peers' hybrid clocks beyond the skew bound that the node refused to follow (the data joined).
  std::uint64_t remote_clocks_refused = 0;
  // Dots of ours beyond our counter that peers' contexts claimed and the node stripped
  // (node_sync_host.cpp, strip_own_claims).
  std::uint64_t own_claims_stripped = 0;
  // Incarnations of ours that peers named too far above ours to be true, and that the node
  // ignored (node_sync_host.cpp, implausible_incarnation).
  std::uint64_t implausible_incarnations = 0;
  // Incarnations taken on peers' claims on our dots since open (a context's stripped claim, a
  // hello's counter), past the first one (which stands for the one the first write would take),
  // and claims that moved the node no more, past that bound or the ceiling (node_sync_host.cpp,
  // claim_may_move; D68).
  std::uint64_t claim_incarnations = 0;
  std::uint64_t claims_unheeded = 0;
  // Records held as stubs (their payloads evicted to the sink) and the vector bytes they free.
  std::uint64_t evicted_records = 0;
  std::uint64_t evicted_bytes = 0;
};

// One record changed, as the delta buffer recorded it (Node::changes_after).
struct Change {
  std::uint64_t seq = 0;             // the delta buffer entry it came from
  std::string collection;
  std::string id;
  bool deleted = false;              // the delta removed the record (an upsert otherwise)
  std::optional<crdt::ReplicaId> origin;  // the peer it came from; nullopt for a local write
};

// One page of a collection's live records (Node::records_after), for export through the daemon:
// page by page, so neither side holds more than a page whatever the collection's size.
struct RecordsPage {
  std::vector<RecordInput> records;  // each record's winning value, in store order
  bool more = false;                 // records may follow: ask again after the last one's id
};
// About the most bytes of records one page gathers (a 65,536-d vector alone is 256 KiB; a local
// API message may carry 16 MiB).
inline constexpr std::size_t kRecordsPageBytes = std::size_t{4} << 20;

struct ChangeBatch {
  std::vector<Change> changes;
  std::uint64_t next = 0;  // pass as `after` to continue
  bool gap = false;        // entries after `after` were already trimmed: some changes are not here
};

// The cold tier's upload feed (node/core/node_sink_feed.cpp; docs/tiers.md, "The sink feed";
// D41): the delta buffer's entries of collections whose tier policy has `sink` go to the sink
// in buffer order, and the sink's durable acknowledgement moves a persisted cursor
// (meta/node.sink_uploaded_through). Entries after the cursor are never trimmed; local writes
// to a sink collection are refused with kQuotaExceeded once `quota_entries` entries wait.
struct SinkFeedOptions {
  std::uint64_t quota_entries = 50'000;         // 1..NodeOptions::delta_buffer_max
  std::size_t max_upload_bytes = std::size_t{4} << 20;  // per upload (at least one entry goes)
  std::size_t max_upload_entries = 256;         // buffer entries per upload
};

// One step of the feed. kDelta and kFullChunk carry a delta of one collection
// (crdt::encode_delta bytes, the sink's pushDelta) to send; an empty `delta` (entries of other
// collections only, or an empty collection) has nothing to send and is acknowledged at once, as
// are kFullDone and kGap.
struct SinkUpload {
  enum class Kind {
    kDelta,      // consecutive buffer entries first_seq..last_seq joined
    kFullChunk,  // records of `collection` after the previous chunk, their dots as the context
    kFullDone,   // every sink collection was sent whole: the delta path resumes after last_seq
    kGap,        // the buffer dropped entries the sink never got: a full-state upload starts
  };
  Kind kind = Kind::kDelta;
  std::string collection;
  std::string delta;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;   // kDelta: pass the upload to sink_acked once the sink acknowledged
  std::uint64_t entries = 0;    // buffer entries of `collection` joined
  std::uint64_t records = 0;    // records named
  std::string next_key;         // kFullChunk: where the next chunk starts; empty: the last one
  std::uint64_t left_out = 0;   // records whose stubs were left out (their dots are off the context)
  // kFullChunk, the last of its collection (D74): the dots of the collection's context that no
  // entry held here carries (removed here: overwritten or deleted), as crdt::encode_dot_ranges
  // pieces, sent after `delta` (each its own message); the sink removes every entry it holds of
  // the collection whose dot is in them. Empty: nothing removed. Sent even with an empty `delta`.
  std::vector<std::string> removed;
};

struct SinkFeedStatus {
  bool enabled = false;
  std::uint64_t uploaded_through = 0;   // the buffer sequence the sink acknowledged through
  std::uint64_t backlog_entries = 0;    // buffer entries after it (every collection)
  std::uint64_t quota_entries = 0;
  bool full_state_pending = false;      // a full-state upload is under way or due
  std::uint64_t uploads_acked = 0;      // since open
  std::uint64_t bytes_acked = 0;
  std::uint64_t quota_refusals = 0;     // local writes refused with kQuotaExceeded
  // Out-of-order dots in the acknowledged-dot sets (every collection): what the sets cost beyond
  // two integers per replica; stays bounded under overwrites (D57).
  std::uint64_t acked_cloud_dots = 0;
};

// Eviction to stubs (node/core/node_evict.cpp; docs/tiers.md, "Eviction"; D49, D68): while the
// vectors this device holds take more than `payload_budget_bytes`, or the indexes of its sink
// collections more memory than `memory_budget_bytes`, records of sink collections whose winner is
// older than the collection's hot window (TierPolicy::hot_window) and whose every entry the sink
// acknowledged are turned into stubs, a bounded number per step.
struct EvictionOptions {
  // Bytes of vectors held locally (dimension x 4 per record that is not a stub) above which
  // eviction runs. 0: no payload budget. At most kMaxPayloadBudgetBytes.
  std::uint64_t payload_budget_bytes = 0;
  // Bytes of index memory (codes, graph and label map: HnswIndex::memory, what
  // shoal_collection_info reports as index_bytes) of the sink collections' records that are not
  // stubs, above which eviction runs. Each collection's index memory counts in proportion to the
  // records it must hold among the elements it stores: an evicted record's element stays in the
  // graph, marked deleted, until the background rebuild drops it (when more than a quarter are
  // deleted), so its share is counted freed at once. 0: no memory budget. At most
  // kMaxPayloadBudgetBytes.
  std::uint64_t memory_budget_bytes = 0;
  // Records examined per evict_step (1..1,000,000): bounds one step's work and transaction.
  std::size_t max_records_per_step = 1024;
  // BLAKE2b-256 of a payload (the sink's digest, sink::payload_digest): injected so the node core
  // and libshoal link no hash library. Required when the budget is not 0.
  std::function<PayloadDigest(std::string_view)> payload_digest;
};
inline constexpr std::uint64_t kMaxPayloadBudgetBytes = std::uint64_t{1} << 50;

struct EvictStep {
  std::uint64_t examined = 0;   // records looked at
  std::uint64_t evicted = 0;    // records turned into stubs
  std::uint64_t bytes = 0;      // vector bytes freed
  bool over_budget = false;     // still over the budget after this step
};

struct EvictionStatus {
  std::uint64_t budget_bytes = 0;
  std::uint64_t held_bytes = 0;        // vector bytes held locally
  std::uint64_t memory_budget_bytes = 0;
  std::uint64_t index_held_bytes = 0;  // index memory of sink collections' records (the memory budget's measure)
  std::uint64_t evicted_records = 0;   // stubs held
  std::uint64_t evicted_bytes = 0;     // vector bytes the stubs stand for
  std::uint64_t evictions = 0;         // records evicted since open
  std::uint64_t skipped_unacked = 0;   // since open: old enough, but not acknowledged by the sink
};

// How the open went, per collection: "snapshot" (loaded and caught up), "rebuilt", "empty".
struct OpenReport {
  std::map<std::string, std::string> index_source;
  std::map<std::string, std::string> snapshot_rejected;  // why a snapshot was not used
  std::map<std::string, std::size_t> snapshot_replayed;  // labels replayed on a loaded snapshot
  // How each collection's docs, labels and digests were obtained: "state" (its open state file,
  // with the labels changed since replayed; no record scan) or "scan" (every record read).
  std::map<std::string, std::string> state_source;
  std::map<std::string, std::string> state_rejected;  // why an open state file was not used
};

class Node final : private SyncHost {
 public:
  // Opens a node on `store` (which must outlive the node: the simulator keeps a store across a
  // node's crash and restart), storing options.identity as its replica id on first use.
  // Statuses: kInvalidArgument when options.wall_clock is missing, or options.identity for a new
  // store; the store's; kCorruption for undecodable catalogue, context or record bytes (naming
  // the key).
  [[nodiscard]] static Result<std::unique_ptr<Node>> open(store::Store& store, NodeOptions options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const OpenReport& open_report() const noexcept { return open_report_; }
  const crdt::ReplicaId& replica() const noexcept override { return replica_; }
  // The replica id new dots are issued under (see check_own_counters).
  const crdt::ReplicaId& issuer() const noexcept { return issuer_; }

  // --- Collections ---
  // Collections replicate like data (docs/protocol.md, "Catalogue"): the catalogue is an
  // observed-remove map from name to spec. A create (re-create after a drop included) starts
  // empty; a drop removes the collection and every record it observed, on every peer.
  // Statuses: kInvalidArgument (name, dimension 1..4096, parameters), kAlreadyExists;
  // kConflict when re-creating a dropped name with another dimension or metric; store's.
  [[nodiscard]] Status create_collection(const CollectionSpec& spec);
  // Removes the collection and all its records. kNoSuchCollection when absent.
  [[nodiscard]] Status drop_collection(std::string_view name);
  std::vector<CollectionInfo> list_collections() const;
  [[nodiscard]] Result<CollectionInfo> collection_info(std::string_view name) const;

  // --- Records. Every rejected request leaves the store unchanged. ---
  // Durable when OK. Statuses: kNoSuchCollection; the validation details of validate_record()
  // and validate_record_id(); kTooLarge for a batch above limits.max_batch_records; store's
  // (kIo/kMapFull, kIo/kDiskFull...).
  [[nodiscard]] Status upsert(std::string_view collection, std::string_view id, RecordValue value);
  // All or nothing. A later duplicate of an id in the same batch replaces the earlier one.
  [[nodiscard]] Status upsert_batch(std::string_view collection, std::vector<RecordInput> records);
  // kNoSuchRecord when there is no live record with this id.
  [[nodiscard]] Status remove(std::string_view collection, std::string_view id);

  // --- Group commit (the runtime batches concurrent writers: node/runtime/shared_node.hpp) ---
  // Validates an upsert before it joins a group (normalizing the metadata in place), exactly as
  // upsert_batch does: kNoSuchCollection, kTooLarge for the batch size, validate_record_id() and
  // validate_record() details. Reads only.
  [[nodiscard]] Status check_upsert(std::string_view collection, std::vector<RecordInput>& records) const;
  // Validates a delete's id and collection before it joins a group. Reads only.
  [[nodiscard]] Status check_remove(std::string_view collection, std::string_view id) const;
  // Applies the requests (each validated by check_upsert / check_remove) in order in ONE store
  // write transaction with ONE durable commit; statuses[i] is request i's. A request that fails
  // on its own (its collection was dropped meanwhile, a delete of an id that is not there, a
  // stored record that does not decode) gets its status and leaves no trace, and the others go
  // on. A store failure inside the shared transaction, or of its commit, fails every request
  // that had joined it, and changes nothing. Later requests see the effects of earlier ones.
  [[nodiscard]] std::vector<Status> write_group(std::span<WriteRequest> requests);
  // write_group in three steps, so that a driver can wait for the disk without excluding
  // readers: begin_group does everything up to the commit (statuses as write_group's so far) and
  // returns true when there is a transaction to commit; commit_group commits it (the durable
  // sync), and touches nothing but that transaction, so const methods may run meanwhile (they
  // see the state before the group, in memory and in the store alike); end_group applies the
  // group to memory, or on a failed commit gives each joined request that status. Between
  // begin_group and end_group no other non-const method may run but the index queue's
  // (take_index_work, finish_index_work); writes assert it.
  [[nodiscard]] bool begin_group(std::span<WriteRequest> requests, std::vector<Status>& statuses);
  [[nodiscard]] Status commit_group();
  void end_group(const Status& committed, std::vector<Status>& statuses);

  // --- The index queue (NodeOptions::index_queue_max > 0) ---
  // Operations committed but not yet in an index, over all collections.
  std::size_t index_backlog() const noexcept { return index_backlog_; }
  std::size_t index_queue_max() const noexcept { return options_.index_queue_max; }
  unsigned build_threads() const noexcept { return options_.build_threads; }
  // Up to `max_ops` operations from the front of one collection's queue (the collections take
  // turns), or nothing when every queue is empty. At most one IndexWork may be out at a time
  // (asserted), and it must come back through finish_index_work before drain_index,
  // save_snapshots or the node's destruction.
  std::optional<IndexWork> take_index_work(std::size_t max_ops);
  // Drops the work's applied operations (IndexWork::applied) from its queue; logs `result` if it
  // is an error.
  void finish_index_work(const IndexWork& work, const Status& result);
  // Applies every queued operation on the calling thread (tests, and drivers that need the
  // index complete).
  void drain_index();
  // kNoSuchCollection, kNoSuchRecord; kCorruption if stored bytes do not decode.
  [[nodiscard]] Result<GetResult> get(std::string_view collection, std::string_view id) const;
  // The live records of `collection` after the record `after` in store order (the order of
  // export; "" for the first), each with its winning value: at most `max_records`, and no more
  // once about `max_bytes` are gathered (always at least one record when any is left). One read
  // transaction per page; a record written between pages is seen if it sorts after the page.
  // Statuses: kNoSuchCollection; kCorruption if stored bytes do not decode.
  [[nodiscard]] Result<RecordsPage> records_after(std::string_view collection, std::string_view after,
                                                  std::size_t max_records, std::size_t max_bytes) const;
  // The k nearest live records (winners only) that match the filter, closest first.
  // Statuses: kNoSuchCollection; query validation (dimension, NaN/Inf, zero under cosine);
  // kOutOfRange/kTooLarge for k or ef.
  // The record changes in the delta buffer after sequence `after`, at most `max_entries` buffer
  // entries (local writes and those applied from peers; catalogue entries are left out). The
  // buffer is trimmed once every peer acknowledged it, so a reader that falls behind sees `gap`.
  [[nodiscard]] Result<ChangeBatch> changes_after(std::uint64_t after, std::size_t max_entries) const;
  std::uint64_t last_change() const noexcept { return buffer_.last(); }
  [[nodiscard]] Result<std::vector<Hit>> search(std::string_view collection,
                                                std::span<const float> query,
                                                const SearchOptions& options) const;

  // --- The sink feed (SinkFeedOptions above). The driver (node/mesh/sink_uploader.cpp) asks for
  // the next upload, sends it, and reports the sink's durable acknowledgement. ---
  // Turns the feed on (or updates its options). Statuses: kOutOfRange naming the limit and the
  // value for a quota outside 1..delta_buffer_max; the store's (reading the cursor).
  [[nodiscard]] Status enable_sink_feed(const SinkFeedOptions& options);
  // The next upload after the acknowledged cursor, or nullopt when nothing waits. Statuses: the
  // store's; kCorruption for an undecodable buffer entry.
  [[nodiscard]] Result<std::optional<SinkUpload>> next_sink_upload() const;
  // The sink acknowledged `upload` durably: the cursor moves (persisted) and the buffer may be
  // trimmed up to it. An acknowledgement for an older cursor than the current one is ignored.
  [[nodiscard]] Status sink_acked(const SinkUpload& upload);
  SinkFeedStatus sink_feed_status() const;

  // --- Eviction to stubs (EvictionOptions above). The driver (the mesh host's timer) calls
  // evict_step until it reports no longer over budget; tests call it directly. ---
  // Statuses: kOutOfRange naming the limit and the value; kInvalidArgument for a budget without
  // payload_digest. Nothing changes on error.
  [[nodiscard]] Status set_eviction(EvictionOptions options);
  // One bounded step: examines at most max_records_per_step records (resuming where the last step
  // stopped) and evicts those eligible, in one transaction, while over the budget. Eviction is
  // local: the CRDT state, contexts, digests and the delta buffer do not change. Statuses: the
  // store's (nothing evicted then).
  [[nodiscard]] Result<EvictStep> evict_step();
  EvictionStatus eviction_status() const;
  // Checks a payload fetched from the sink for a stub sibling (get's `evicted`): its digest must
  // be the stub's. Returns the decoded record value. Statuses: kChecksumMismatch naming the id;
  // decode_payload's. The stub stays a stub (get does not re-store what it refills: D49).
  [[nodiscard]] Result<RecordValue> check_refill(std::string_view id, const Sibling& stub, std::string_view payload) const;
  // Cold search's merge (docs/tiers.md, "Cold search"): `local` (this node's answer, closest
  // first) and the sink's `cold` hits for the same query, metric and k, as one answer of at most
  // k hits, closest first (ties by id). A cold hit is left out when the record is live here (the
  // local version answers for it) or when every dot it carries is in this collection's context
  // (this node saw that version and removed it: a delete the sink has not received yet); the
  // others are records this node does not hold. Statuses: kNoSuchCollection; kMalformed for dots
  // that do not decode (naming the id).
  [[nodiscard]] Result<std::vector<ColdHit>> merge_cold_hits(std::string_view collection, const std::vector<Hit>& local,
                                                             const std::vector<ColdHit>& cold, std::uint32_t k) const;
  // Bootstrap from the sink (docs/tiers.md, "Bootstrap from the sink"): joins one page of the
  // sink's records of `collection` (Sink.bootstrap: each record's entries with their dots as the
  // context). A page before the last judges the records it names by `first_context` too (D67:
  // entries the sink had seen then and no longer holds go). With `last`, `page.context` is the sink's whole context
  // of the collection (it covers the dots of records deleted there), which judges the records the
  // page names, and each record held here whose id is not in `sink_ids` (the ids of every page) is
  // judged against `first_context`, the sink's context as of the first page (D57): its entries
  // the sink had seen then and did not hold go (deleted elsewhere), the others (writes the sink
  // had not received, or received after their key's page went by) stay. An empty
  // `first_context` (a sink from before D57) removes nothing. With `last` the collection's
  // context also takes in `first_context` (D67; not the delta buffer), less claims on this
  // node's own dots beyond its counter, so deletes only the sink knows are known here.
  // Validated as a peer's delta is,
  // then joined as a repair (D50): a context claiming
  // this node's own dots beyond its counter is stripped and the node takes a new incarnation in
  // the same transaction (docs/crdt.md, "Incarnations"; within its bounds), so a device restored
  // from the sink never issues a dot twice. The change enters the delta buffer as a local one (peers and the
  // sink feed get it; their joins are idempotent). Statuses: kNoSuchCollection; a peer delta's
  // validation statuses (nothing changed); the store's.
  [[nodiscard]] Status join_sink_page(std::string_view collection, crdt::Delta page, bool last,
                                      const std::set<std::string>& sink_ids,
                                      const crdt::CausalContext& first_context);

  // --- Synchronisation (sans-I/O: the driver delivers messages, time and peer events, and sends
  // what take_outbox() returns). Peers are named by their replica ids. See SyncEngine. ---
  void peer_up(const crdt::ReplicaId& peer, Tier tier, MonoTime now) { sync_.peer_up(peer, tier, now); }
  void peer_down(const crdt::ReplicaId& peer, MonoTime now) { sync_.peer_down(peer, now); }
  // Applies a peer's message. Invalid content (undecodable deltas, a collection whose dimension
  // differs) is rejected with a Status and changes nothing; the driver may drop the peer.
  [[nodiscard]] Status receive(const crdt::ReplicaId& from, const transport::Message& message, MonoTime now) {
    return sync_.receive(from, message, now, wall_now());
  }
  // Retransmissions, scheduled pushes and repairs due at `now`.
  void tick(MonoTime now) { sync_.tick(now); }
  std::vector<Outgoing> take_outbox() { return sync_.take_outbox(); }
  // The earliest time tick() has work to do, if any.
  std::optional<MonoTime> next_wakeup() const { return sync_.next_wakeup(); }
  std::vector<PeerProgress> peer_progress() const { return sync_.peer_progress(); }
  SyncStats sync_stats() const { return sync_.stats(); }
  // What each collection sends warm peers (node/core/tier_policy.hpp). kOutOfRange (nothing
  // changed) for a policy outside the documented limits.
  // A collection that turns `sink` while the feed runs gets its records uploaded whole (a
  // full-state upload that keeps the delta cursor: node_sink_feed.cpp, D57).
  [[nodiscard]] Status set_tier_policies(TierPolicies policies);
  const TierPolicies& tier_policies() const noexcept { return sync_.tier_policies(); }

  // --- Revocations (see ReplicatedSet) ---
  // Joins `encoded` (e.g. a revocation signed by the mesh authority, from the operator) into the
  // replicated set, persists it and tells every up peer. Statuses: kUnimplemented without
  // options.revocations; the set's decode errors; the store's.
  [[nodiscard]] Status add_revocations(std::string_view encoded);

  // Brings every collection's index snapshot and open state file up to date (if
  // options.snapshots is set), in O(changes) where it can (D45, D65): a collection whose snapshot
  // is valid and whose changed labels (the index_dirty table) are at most snapshot_dirty_max
  // keeps its snapshot and its index queue as they are (the queued operations are committed and
  // named in index_dirty, so the next open replays them), and writes only a missing open state.
  // Any other collection first applies its queue, then writes its snapshot and open state and
  // empties its changed labels.
  [[nodiscard]] Status save_snapshots();
  NodeStats stats() const;

  // The CRDT state of a collection rebuilt from the store, for tests and the simulator's
  // checkers (O(records)).
  [[nodiscard]] Result<crdt::ORMap> crdt_state_for_testing(std::string_view collection) const;
  // The repair digest root of a collection (kept incrementally).
  [[nodiscard]] Result<std::uint64_t> digest_root(std::string_view collection) const;

 private:
  struct Collection;
  struct Pending;
  struct OpenGroup;
  Node(store::Store& store, NodeOptions options);

  // The two halves of a request in write_group: a check that only reads (a failure leaves the
  // transaction as it was), then the join, whose failure poisons the whole transaction.
  Status prepare_request(store::WriteTxn& txn, Collection& c, const WriteRequest& r);
  Status join_request(store::WriteTxn& txn, Collection& c, const WriteRequest& r, Pending& pending,
                      DeltaBuffer::Cursor& cursor, crdt::HybridClock& clock);
  // Search's exact half over the collection's index queue: its hits, and (through `queued`) the
  // sorted labels the graph must not answer for.
  std::vector<index::Neighbor> search_queue(const Collection& c, std::span<const float> query, std::size_t k,
                                            const index::LabelPredicate* filter,
                                            std::vector<std::uint64_t>& queued) const;

  Status load();
  Status load_identity();
  Status load_catalogue();
  index::IndexParams node_index_params(const CollectionSpec& spec) const;
  Status load_collection(Collection& c);
  // The collection's docs, labels, digests and largest clock from its open state file, with the
  // index_dirty table's labels re-read from their records; false (and `c` as it was) when there
  // is none to use, and open scans the records instead.
  Result<bool> load_open_state(Collection& c);
  // A stored record into the collection's memory (docs, labels, digests, largest clock).
  Status load_record(Collection& c, std::string_view id, const format::StoredRecord& rec);
  // Takes a label's doc out of the collection's memory (the inverse of load_record).
  void forget_doc(Collection& c, std::uint64_t label);
  // Writes the open state file of `c` from memory.
  Status save_open_state(const Collection& c);
  Status load_index(Collection& c);
  // Creates the collection's float source and lets the snapshot store start loading its snapshot
  // (SnapshotStore::prefetch), with room for the changed labels.
  Status prefetch_index(Collection& c);
  // The labels of the index_dirty table for `c`, ascending.
  Result<std::vector<std::uint64_t>> dirty_labels(const Collection& c);
  // Replays the labels changed since the loaded snapshot (`touched`, from index_dirty) on
  // c.index: current vectors in batches on build_threads threads, stubs out of the graph.
  Status replay_dirty(Collection& c, const std::vector<std::uint64_t>& touched);
  // Applies one collection's index queue on the calling thread (save_snapshots).
  void drain_collection(Collection& c);
  Status mark_index_dirty_kept();
  // Any collection we hold storage for, dropped (hidden) ones included: the sync engine's view.
  Collection* find(std::string_view name) const;
  Collection* find_by_id(std::uint32_t cid) const;
  // A live collection (in the catalogue): the API's view.
  Result<Collection*> find_or_error(std::string_view name) const;
  bool live(std::string_view name) const { return catalogue_.find(name) != nullptr; }
  // Storage for a collection (hidden until the catalogue makes it live) inside the caller's
  // transaction, under collection id `id`; install_storage makes it known once that commits.
  Result<std::unique_ptr<Collection>> new_storage(store::WriteTxn& txn, const CollectionSpec& spec, std::uint32_t id);
  Collection* install_storage(std::unique_ptr<Collection> c);
  // Storage a peer's request names, made in that request's own transaction and installed only
  // once it commits (node_sync_host.cpp): a request rejected later leaves no storage behind.
  struct StagedStorage;
  // The collection a peer's spec names: ours (kConflict if its dimension or metric differs), one
  // staged earlier in the same request, or new storage staged in `txn`.
  Result<Collection*> storage_for(store::WriteTxn& txn, const transport::CollectionSpecWire& spec,
                                  StagedStorage& staged);
  void install_staged(StagedStorage& staged);

  // --- The one path from a delta to the store (local writes, peers' deltas, repairs) ---
  enum class JoinKind {
    kDelta,   // a delta: merge its whole context; buffer it as is
    kRepair,  // a repair slice: add only the received entries' dots; buffer what changed
  };
  // Joins `remote` (entries of `ids`, judged by `remote_ctx`) into collection `c` inside `txn`,
  // appending the change to the delta buffer; the in-memory effects go to `pending`, applied
  // after commit by apply_pending().
  Status join_in_txn(store::WriteTxn& txn, Collection& c, const std::vector<std::string>& ids,
                     const crdt::RecordMap& remote, const crdt::CausalContext& remote_ctx, JoinKind kind,
                     Pending& pending, DeltaBuffer::Cursor& cursor, const Origin* origin);
  Status apply_delta_in_txn(store::WriteTxn& txn, Collection& c, const crdt::Delta& delta, Pending& pending,
                            DeltaBuffer::Cursor& cursor, const Origin* origin);
  // Joins a whole catalogue state into `cat` inside `txn`; when that changed anything, writes it
  // and buffers the whole result (the catalogue travels as whole states, never as deltas: a
  // relayed delta could not carry the dots of entries a drop removed that the relay never held).
  Status join_catalogue_in_txn(store::WriteTxn& txn, crdt::ORMap& cat, const crdt::ORMap& theirs,
                               DeltaBuffer::Cursor& cursor, const Origin* origin);
  // Decodes and validates a peer's catalogue state (Hello or delta batch) and stages storage for
  // the collections it names in `txn`.
  Result<crdt::ORMap> peer_catalogue(const Origin& origin, std::string_view bytes, store::WriteTxn& txn,
                                     StagedStorage& staged);
  // A delta naming every stored record of `c` with no entries: deletes all it observed.
  Result<crdt::Delta> delete_all_delta(store::WriteTxn& txn, const Collection& c) const;
  // The per-record join rule (or the LWW mutation under test).
  bool join_record(crdt::Entries& local, const crdt::CausalContext& local_ctx,
                   std::span<const crdt::Entry> remote, const crdt::CausalContext& remote_ctx) const;
  // Writes the collection's state (context, label counter, clock) when the transaction changed it.
  Status write_state(store::WriteTxn& txn, const Collection& c, const Pending& pending, crdt::Hlc hlc);
  // After commit: the buffer's extent, then the collections' memory and indexes.
  void commit_cursor(const DeltaBuffer::Cursor& cursor);
  void apply_pending(Collection& c, Pending& pending);
  // Validates a peer's delta for `c` exactly as an app's write.
  Status validate_peer_delta(const Collection& c, const crdt::Delta& delta) const;
  Status validate_catalogue(const crdt::Delta& d) const;
  WallTime wall_now() const { return options_.wall_clock(); }
  // Moves the hybrid clock past every entry received from a peer.
  void observe_clocks(const crdt::RecordMap& records);

  // --- SyncHost (the sync engine's view of the data) ---
  transport::Hello hello(const crdt::ReplicaId& to) const override;
  Status check_own_counters(const std::vector<transport::CounterWire>& counters) override;
  // Strips from a peer's context the dots of issuer_ above `ours`' counter for it (dots no
  // version of this store issued: forged, or this store is an older copy), keeping those its
  // entries carry; counts them. True when any were stripped: the caller then writes
  // new_incarnation() in the same transaction if claim_may_move(), and calls claim_answered()
  // once it commits, so those counters are never issued.
  bool strip_own_claims(const crdt::CausalContext& ours, const crdt::RecordMap& records,
                        crdt::CausalContext& theirs, const crdt::ReplicaId& from);
  // A new incarnation of our identity, written to meta/node.replica in `txn`: above every one
  // this store knows of it (issuer_, `floor`, its contexts' rows) by a random step of
  // 1..kIncarnationSpread, so two copies of one store do not pick the same one.
  Result<crdt::ReplicaId> new_incarnation(store::WriteTxn& txn, std::uint32_t floor = 0) const;
  // True (counted, logged once) when `inc`, an incarnation of ours a peer named, is too far above
  // ours to be believed (node_sync_host.cpp, kMaxIncarnationLead).
  bool implausible_incarnation(std::uint32_t inc, std::string_view where) const;
  // Before this process's first local dot: a new incarnation in its own durable transaction,
  // unless one was taken since open. A store copied or put back (a restore, a VM snapshot, a
  // cloned image) may have issued dots after its copy under the incarnation it holds; those
  // counters are never issued again (docs/crdt.md, "Incarnations", D48).
  Status ensure_fresh_issuer();
  // Whether a peer's claim on our dots may move us to a new incarnation now: always while we
  // issue under the incarnation we opened with; then at most kMaxClaimIncarnations times per
  // process life, and only below kIncarnationCeiling (node_sync_host.cpp; docs/crdt.md,
  // "Incarnations"; D68).
  bool claim_may_move() const;
  // After the request that carried a claim committed: we issue under `next` (taken in that
  // request's transaction), or, with none, the claim was stripped but not heeded (counted,
  // logged once). `why` is logged.
  void claim_answered(const std::optional<crdt::ReplicaId>& next, std::string_view why);
  Result<bool> join_revocations(std::string_view encoded) override;
  Status load_revocations();
  std::vector<std::string> collection_names() const override;
  std::optional<transport::CollectionSpecWire> collection_spec(std::uint32_t cid) const override;
  Status ensure_collection(const transport::CollectionSpecWire& spec) override;
  Status apply_peer_batch(const Origin& origin, const transport::DeltaBatch& batch) override;
  Status join_catalogue_state(const Origin& origin, std::string_view bytes) override;
  const crdt::DigestTree* digests(std::string_view collection) const override;
  std::optional<std::string> encoded_context(std::string_view collection) const override;
  Result<std::string> bucket_slice(std::string_view collection, std::span<const std::uint32_t> buckets) const override;
  Status apply_repair_slice(const Origin& origin, std::string_view collection, std::span<const std::uint32_t> buckets,
                            std::string_view slice) override;
  Status merge_context(std::string_view collection, const crdt::CausalContext& ctx) override;

  store::Store* store_;  // not owned
  NodeOptions options_;
  crdt::ReplicaId replica_;  // the id the node was opened with: how drivers and peers name it
  // The id this node issues dots under: replica_, or a newer incarnation once a peer showed that
  // this store is an older copy of itself (check_own_counters). Persisted as meta/node.replica.
  crdt::ReplicaId issuer_;
  // True once issuer_ is an incarnation this process took (ensure_fresh_issuer, or a claim's:
  // claim_answered).
  bool fresh_issuer_ = false;
  // Incarnations claims moved the node to since open, past the one that replaced the opened
  // incarnation (bounded: claim_may_move), and claims that moved it no more.
  std::uint64_t claim_incarnations_ = 0;
  std::uint64_t claims_unheeded_ = 0;
  bool claims_unheeded_logged_ = false;
  crdt::HybridClock clock_;
  // Every collection we hold storage for (live or dropped), by name.
  std::map<std::string, std::unique_ptr<Collection>, std::less<>> collections_;
  // Which collections exist: an observed-remove map from name to encoded spec, replicated.
  crdt::ORMap catalogue_;
  std::uint32_t next_collection_id_ = 1;
  DeltaBuffer buffer_;
  SyncEngine sync_;
  OpenReport open_report_;
  // The sink feed (node_sink_feed.cpp).
  struct SinkFeed {
    bool enabled = false;
    SinkFeedOptions options;
    std::uint64_t cursor = 0;       // persisted: meta/node.sink_uploaded_through
    bool full_state = false;        // a full-state upload is due or under way (persisted with it)
    std::string full_collection;    // the collection being sent whole, and where it stands
    std::string full_key;
    std::uint64_t full_through = 0; // the buffer sequence the full-state snapshot covers
    std::uint64_t uploads_acked = 0;
    std::uint64_t bytes_acked = 0;
    std::uint64_t quota_refusals = 0;
  };
  SinkFeed sink_;
  // Per collection id (dots are numbered per collection), every dot the sink acknowledged for it
  // (D57), persisted as meta/node.sink_acked.<cid>: what eviction may stub (node_evict.cpp).
  std::map<std::uint32_t, crdt::CausalContext> sink_acked_;
  // A full-state upload that keeps the delta cursor (a collection turned `sink`): started now, or
  // after the one under way (whose chunks may have passed the collection's name).
  bool sink_full_again_ = false;
  void start_sink_catch_up();
  [[nodiscard]] Status load_sink_feed();  // enable_sink_feed's start: the persisted feed, the catch-up
  [[nodiscard]] Status forget_sink_acked(const TierPolicies& policies);
  Status note_sink_acked(const SinkUpload& upload, store::WriteTxn& txn);
  struct Eviction {
    EvictionOptions options;
    std::string next_collection;  // where the next step resumes
    std::string next_key;
    std::uint64_t evictions = 0;
    std::uint64_t skipped_unacked = 0;
  };
  Eviction evict_;
  std::uint64_t held_vector_bytes() const;
  // The index memory that `c`'s records not evicted account for, and one record's share of it
  // (node_evict.cpp; EvictionOptions::memory_budget_bytes).
  struct IndexShare {
    std::uint64_t held = 0;
    std::uint64_t each = 0;
  };
  IndexShare index_share(const Collection& c) const;
  std::uint64_t held_index_bytes() const;
  Status check_sink_quota(const Collection& c);
  Status persist_sink_feed();
  std::uint64_t lazy_counter_writes_ = 0;  // MutationsForTesting::lazy_counter
  std::uint64_t remote_clocks_refused_ = 0;
  std::uint64_t own_claims_stripped_ = 0;
  mutable std::uint64_t implausible_incarnations_ = 0;
  mutable bool implausible_logged_ = false;
  bool own_claims_logged_ = false;  // the first stripped claim is logged, later ones only counted
  std::size_t index_backlog_ = 0;       // sum of the collections' queue lengths
  bool index_dirty_kept_ = false;       // meta/node.index_dirty_kept: the index_dirty table is kept
  bool index_work_out_ = false;         // an IndexWork is out (take_index_work)
  std::unique_ptr<OpenGroup> open_group_;  // between begin_group and end_group
  std::uint32_t next_work_cid_ = 0;     // take_index_work starts its turn here
};

}  // namespace shoal::node

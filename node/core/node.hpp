// node/core/node.hpp: one Shoal node on one device: collections of records, durable in a Store,
// searchable through one VectorIndex per collection.
//
// Role: the data path. An upsert is validated, turned into a CRDT delta (crdt/), and the delta is
// joined into the stored state inside one store write transaction together with the new causal
// context and a delta-buffer entry; the write is acknowledged only after that transaction
// commits (durably). Only then is the in-memory mirror (labels, metadata, digests) and the index
// updated. Local writes and (later) peers' deltas go through the same apply_delta() join, so
// there is one code path from a delta to the store and the index.
//
// Derived state: the index, the id<->label map, the metadata mirror used by filters, and the
// repair digests are all rebuilt from the store at open. The index may start from its snapshot
// (docs/index.md) when that snapshot covers a delta-buffer position the buffer still reaches
// back to; the deltas after it are replayed. Otherwise it is rebuilt.
//
// Thread rules: every public method may be called from any thread. Writes are serialised by an
// exclusive lock; get(), search() and the listings share a reader lock, so searches run in
// parallel with each other. The lock prefers writers (common/rw_lock.hpp): a write waits only for
// the reads already running, never for a stream of new ones. Time comes from the injected wall clock only (the simulator injects
// virtual time).
// Ownership: the Node owns its indexes; the Store is the caller's and must outlive the Node.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <memory>
#include <optional>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.hpp"
#include "common/rw_lock.hpp"
#include "common/status.hpp"
#include "common/time.hpp"
#include "crdt/hlc.hpp"
#include "crdt/or_map.hpp"
#include "crdt/replica.hpp"
#include "node/core/record.hpp"
#include "index/types.hpp"
#include "node/store/store.hpp"
#include "transport/messages.hpp"

namespace shoal::node {

struct CollectionSpec {
  std::string name;
  std::uint32_t dimension = 0;
  Metric metric = Metric::kL2;
  std::uint32_t m = 16;
  std::uint32_t ef_construction = 200;
  std::uint32_t ef_search = 64;
  // Int8 scalar quantization of the graph; the range comes from the first vectors (see docs).
  bool quantize = false;
  float quant_min = 0.0f;
  float quant_max = 0.0f;
};

struct CollectionInfo {
  CollectionSpec spec;
  std::uint32_t id = 0;
  std::uint64_t live_records = 0;
  std::uint64_t index_bytes = 0;
};

// How close a peer is (DESIGN.md section 5): hot peers (same site) get every delta at once;
// warm peers (other sites) on a schedule.
enum class Tier : std::uint8_t { kHot = 0, kWarm = 1 };

struct SyncOptions {
  // A delta batch not acknowledged within this time is sent again.
  Duration retransmit_hot = Duration::millis(300);
  Duration retransmit_warm = Duration::seconds(2);
  // Warm peers get the buffered deltas at most this often.
  Duration warm_push_interval = Duration::seconds(2);
  // Each peer is compared by digest (repair pulled from it) this often, and when it comes up.
  Duration repair_interval_hot = Duration::seconds(30);
  Duration repair_interval_warm = Duration::seconds(20);
  // A repair session with no reply for this long is abandoned (merging no context).
  Duration repair_timeout = Duration::seconds(5);
  bool repair_enabled = true;
  std::size_t max_batch_entries = 256;
  std::size_t max_batch_bytes = std::size_t{1} << 20;
  std::size_t buckets_per_query = 64;
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
};

struct NodeOptions {
  // Where index snapshots live (one file per collection). Empty: no snapshots.
  std::string snapshot_dir;
  Limits limits;
  // The wall clock for hybrid logical clocks. Null: the real clock (now_wall()).
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
  // Replica identity to use when the store has none yet (the simulator sets it); empty: random.
  std::optional<crdt::ReplicaId> identity;
};

// A message the node wants sent; the driver encodes it (transport/codec.hpp) and delivers it.
struct Outgoing {
  crdt::ReplicaId to;
  transport::Message message;
};

struct PeerProgress {
  crdt::ReplicaId peer;
  Tier tier = Tier::kHot;
  bool up = false;
  std::uint64_t acked_seq = 0;  // the peer has applied our delta buffer up to here
  std::uint64_t behind = 0;     // our last delta sequence minus acked_seq
  WallTime last_seen;           // last message from the peer (persisted)
};

struct SyncStats {
  std::uint64_t delta_batches_sent = 0;
  std::uint64_t delta_items_sent = 0;
  std::uint64_t delta_bytes_sent = 0;   // encoded delta bytes in batches
  std::uint64_t repair_sessions_started = 0;
  std::uint64_t repair_sessions_completed = 0;
  std::uint64_t repair_sessions_abandoned = 0;
  std::uint64_t buckets_repaired = 0;
  std::uint64_t repair_bytes_received = 0;  // slice bytes
  std::uint64_t messages_rejected = 0;      // undecodable or invalid content from peers
};

struct RecordInput {
  std::string id;
  RecordValue value;
};

struct Sibling {
  RecordValue value;
  crdt::Hlc clock;
  crdt::Dot dot;
};

struct GetResult {
  // siblings[0] is the winner; more than one means concurrent upserts (DESIGN.md 3).
  std::vector<Sibling> siblings;
};

struct Hit {
  std::string id;
  float distance = 0.0f;
  Metadata metadata;
  std::string model;
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
  std::string replica;
};

// How the open went, per collection: "snapshot" (loaded and caught up), "rebuilt", "empty".
struct OpenReport {
  std::map<std::string, std::string> index_source;
  std::map<std::string, std::string> snapshot_rejected;  // why a snapshot was not used
};

class Node {
 public:
  // Opens a node on `store` (which must outlive the node: the simulator keeps a store across a
  // node's crash and restart), creating its identity on first use. Statuses: the store's;
  // kCorruption for undecodable catalogue, context or record bytes (naming the key).
  [[nodiscard]] static Result<std::unique_ptr<Node>> open(store::Store& store, NodeOptions options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const OpenReport& open_report() const noexcept { return open_report_; }
  const crdt::ReplicaId& replica() const noexcept { return replica_; }

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
  // kNoSuchCollection, kNoSuchRecord; kCorruption if stored bytes do not decode.
  [[nodiscard]] Result<GetResult> get(std::string_view collection, std::string_view id) const;
  // The k nearest live records (winners only) that match the filter, closest first.
  // Statuses: kNoSuchCollection; query validation (dimension, NaN/Inf, zero under cosine);
  // kOutOfRange/kTooLarge for k or ef.
  [[nodiscard]] Result<std::vector<Hit>> search(std::string_view collection,
                                                std::span<const float> query,
                                                const SearchOptions& options) const;

  // --- Synchronisation (sans-I/O: the driver delivers messages, time and peer events, and sends
  // what take_outbox() returns). Peers are named by their replica ids. ---
  void peer_up(const crdt::ReplicaId& peer, Tier tier, MonoTime now);
  void peer_down(const crdt::ReplicaId& peer, MonoTime now);
  // Applies a peer's message. Invalid content (undecodable deltas, a collection whose dimension
  // differs) is rejected with a Status and changes nothing; the driver may drop the peer.
  [[nodiscard]] Status receive(const crdt::ReplicaId& from, const transport::Message& message,
                               MonoTime now);
  // Retransmissions, scheduled pushes and repairs due at `now`.
  void tick(MonoTime now);
  std::vector<Outgoing> take_outbox();
  // The earliest time tick() has work to do, if any.
  std::optional<MonoTime> next_wakeup() const;
  std::vector<PeerProgress> peer_progress() const;
  SyncStats sync_stats() const;

  // Writes an index snapshot for every collection (if options.snapshot_dir is set).
  [[nodiscard]] Status save_snapshots();
  NodeStats stats() const;

  // The CRDT state of a collection rebuilt from the store, for tests and the simulator's
  // checkers (O(records)).
  [[nodiscard]] Result<crdt::ORMap> crdt_state_for_testing(std::string_view collection) const;
  // The repair digest root of a collection (kept incrementally).
  [[nodiscard]] Result<std::uint64_t> digest_root(std::string_view collection) const;

 private:
  struct Collection;
  Node(store::Store& store, NodeOptions options);

  Status load();
  index::IndexParams node_index_params(const CollectionSpec& spec) const;
  Status load_collection(Collection& c);
  // Any collection we hold storage for, dropped (hidden) ones included: the sync engine's view.
  Collection* find(std::string_view name) const;
  // A live collection (in the catalogue): the API's view.
  Result<Collection*> find_or_error(std::string_view name) const;
  struct Pending;
  struct BufferCursor;
  struct Origin;
  struct PeerState;
  struct RepairSession;
  bool live(std::string_view name) const { return catalogue_.find(name) != nullptr; }
  // The catalogue (docs/node-format.md): loaded at open, written with every change to it.
  Status load_catalogue();
  Status put_catalogue(store::WriteTxn& txn, const crdt::ORMap& catalogue) const;
  // A delta naming every stored record of `c` with no entries: deletes all it observed.
  Result<crdt::Delta> delete_all_delta(store::WriteTxn& txn, const Collection& c) const;
  // Joins a catalogue delta from a peer (or a local create/drop) into `cat` inside `txn` and
  // appends it to the delta buffer when it changed anything.
  Status apply_catalogue_delta_in_txn(store::WriteTxn& txn, crdt::ORMap& cat, const crdt::Delta& delta,
                                      BufferCursor& cursor, const Origin* origin);
  transport::Hello make_hello() const;
  // Joins a peer's whole catalogue (from its Hello); relays what changed on the delta path.
  Status join_catalogue_state(PeerState& p, std::string_view bytes);
  // Joins `delta` into collection `c` inside `txn`, appending it to the delta buffer when it
  // changed anything; records the in-memory effects in `pending` (applied after commit).
  Status apply_delta_in_txn(store::WriteTxn& txn, Collection& c, const crdt::Delta& delta,
                            Pending& pending, BufferCursor& cursor, const Origin* origin);
  // Appends one delta to the buffer inside `txn` (and trims it to its bound).
  // Collection id 0 is the catalogue.
  Status append_delta(store::WriteTxn& txn, std::uint32_t cid, const crdt::Delta& delta,
                      BufferCursor& cursor, const Origin* origin);
  // The per-record join rule (or the LWW mutation under test).
  bool join_record(crdt::Entries& local, const crdt::CausalContext& local_ctx,
                   std::span<const crdt::Entry> remote, const crdt::CausalContext& remote_ctx) const;
  void apply_pending(Collection& c, Pending& pending);
  BufferCursor cursor() const;
  void commit_cursor(const BufferCursor& cursor);
  Result<Collection*> create_collection_locked(const CollectionSpec& spec);

  // Sync engine internals (sync.cpp); all run under the exclusive lock.
  Status load_peers();
  PeerState& peer_state(const crdt::ReplicaId& peer);
  Status persist_peer(const PeerState& p);
  void push_to(PeerState& p, MonoTime now, bool retransmit);
  void start_repair(PeerState& p, const std::string& collection, MonoTime now);
  Status on_hello(PeerState& p, const transport::Hello& m, MonoTime now);
  Status on_delta_batch(PeerState& p, const transport::DeltaBatch& m, MonoTime now);
  Status on_delta_ack(PeerState& p, const transport::DeltaAck& m, MonoTime now);
  Status on_digest_query(PeerState& p, const transport::DigestQuery& m);
  Status on_digest_reply(PeerState& p, const transport::DigestReply& m, MonoTime now);
  Status on_bucket_query(PeerState& p, const transport::BucketQuery& m);
  Status on_bucket_reply(PeerState& p, const transport::BucketReply& m, MonoTime now);
  void send_next_repair_step(RepairSession& s, MonoTime now);
  void finish_repair(RepairSession& s, bool completed);
  Status trim_buffer();
  Result<Collection*> ensure_collection(const transport::CollectionSpecWire& spec);
  // Writes the collection's state (context, label counter, clock) when the transaction changed it.
  Status write_state(store::WriteTxn& txn, const Collection& c, const Pending& pending, crdt::Hlc hlc);
  WallTime wall_now() const;

  store::Store* store_;  // not owned
  NodeOptions options_;
  crdt::ReplicaId replica_;
  mutable RwLock mu_;  // writer-preferring: searches cannot starve writes
  crdt::HybridClock clock_;                                     // guarded by mu_ (exclusive)
  // Every collection we hold storage for (live or dropped), by name.
  std::map<std::string, std::unique_ptr<Collection>, std::less<>> collections_;
  // Which collections exist: an observed-remove map from name to encoded spec, replicated.
  crdt::ORMap catalogue_;
  std::uint32_t next_collection_id_ = 1;
  std::uint64_t delta_seq_ = 0;      // the last sequence written to the delta buffer
  std::uint64_t delta_oldest_ = 1;   // the oldest sequence still in the buffer
  OpenReport open_report_;
  std::uint64_t lazy_counter_writes_ = 0;  // MutationsForTesting::lazy_counter

  // Sync engine state (sync.cpp).
  std::map<crdt::ReplicaId, std::unique_ptr<PeerState>> peers_;
  std::map<std::uint64_t, std::unique_ptr<RepairSession>> sessions_;
  std::uint64_t next_session_ = 1;
  std::vector<Outgoing> outbox_;
  SyncStats sync_stats_;
  bool push_pending_ = false;  // a local commit added deltas that hot peers have not been sent
};

}  // namespace shoal::node

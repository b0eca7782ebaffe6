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
// parallel with each other. Time comes from the injected wall clock only (the simulator injects
// virtual time).
// Ownership: the Node owns its indexes; the Store is the caller's and must outlive the Node.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
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
#include "node/store/store.hpp"

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
  // Statuses: kInvalidArgument (name, dimension 1..4096, parameters), kAlreadyExists; store's.
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
  Status load_collection(Collection& c);
  Status build_index(Collection& c, std::uint64_t store_seq);
  Collection* find(std::string_view name) const;
  Result<Collection*> find_or_error(std::string_view name) const;
  // Joins `delta` into collection `c` inside `txn`, appending it to the delta buffer when it
  // changed anything; records the in-memory effects in `pending` (applied after commit).
  struct Pending;
  Status apply_delta_in_txn(store::WriteTxn& txn, Collection& c, const crdt::Delta& delta,
                            Pending& pending);
  void apply_pending(Collection& c, Pending& pending);
  // Writes the collection's state (context, label counter, clock) when the transaction changed it.
  Status write_state(store::WriteTxn& txn, const Collection& c, const Pending& pending, crdt::Hlc hlc);
  Status commit_delta(Collection& c, const crdt::Delta& delta);
  WallTime wall_now() const;

  store::Store* store_;  // not owned
  NodeOptions options_;
  crdt::ReplicaId replica_;
  mutable std::shared_mutex mu_;
  crdt::HybridClock clock_;                                     // guarded by mu_ (exclusive)
  std::map<std::string, std::unique_ptr<Collection>, std::less<>> collections_;
  std::uint32_t next_collection_id_ = 1;
  std::uint64_t delta_seq_ = 0;      // the last sequence written to the delta buffer
  std::uint64_t delta_oldest_ = 1;   // the oldest sequence still in the buffer
  OpenReport open_report_;
};

}  // namespace shoal::node

// sink/sink_service.hpp: the cold-tier sink's state machine: a replica of the cold collections'
// CRDT state, kept in an ObjectStore as segments and deltas, with cold search, fetch, bootstrap
// and compaction (issue 15; docs/sink.md).
//
// Role: what `shoal-sink` serves through the `Sink` capability (transport/sink.capnp). It is
// sans-I/O apart from its one storage dependency, the ObjectStore it is given (LMDB by default,
// S3 when configured, the memory store in tests); no sockets, clocks (wall time is passed in),
// threads or randomness.
//
// The state. Per collection, the sink keeps the CRDT state (records with their entries, and one
// causal context) in a store::Store of its own, the state env (DATA_DIR/state on LMDB for
// shoal-sink; a MemoryStore of the service's own when none is given), not in memory (D54, D60).
// Records join one by one with crdt::join_entries against the collection's context, as the node
// joins a peer's delta (crdt/or_map.hpp: a delta's context covers only the records it names), so
// every object joins in any order, duplicates included, and the result is the same.
// What reaches the sink:
//   - a segment upload (sink/segment.hpp): each record's entries, with their dots as the
//     context (a record the sink already holds keeps its other entries: an upload is a delta of
//     the entries it carries, never a delete);
//   - a delta (crdt::encode_delta bytes, exactly what peers push): an upsert or a delete after
//     upload, which reaches the sink like any delta; a deleted record leaves the state (and cold
//     search) at once, and its payload leaves the object store at the next compaction;
//   - removed dots (D74): the dots a member's full-state upload says it removed; every entry the
//     sink holds of the collection with such a dot goes, stored first as delta objects of the
//     shape of a peer's delete (remove_dots).
// Both are written to the object store first, under a new key, and joined into the state only
// after the put returned OK, in one state transaction that also records the object as applied:
// an acknowledgement means durable. The object store is the source of truth: open() joins the
// objects the state env has not applied (a crash between the put and the state commit), and
// rebuilds the state env from every object when it is empty, half built or disagrees with the
// objects (docs/sink-format.md, "The state env"). The collection's metric and spec are settings,
// not CRDT state: each lives as its newest object (below). The state env keeps the metric with
// the collection's counters; the spec (a few dozen bytes) is read from
// its object at every open, so the state env never holds a second copy to disagree. Object keys:
//   seg/<collection>/<seq>   an uploaded or compacted segment
//   dlt/<collection>/<seq>   a delta (crdt::encode_delta bytes)
//   ctx/<collection>/<seq>   written by compaction: u64 little-endian `base`, then the
//                            collection's whole causal context (crdt::encode_context bytes).
//                            With the segments numbered base..seq-1 it is the whole state at
//                            compaction time, so the dots of deleted records stay covered
//   spc/<collection>/<seq>   the metric the latest upload said (one byte, D53)
//   idx/<collection>/<seq>   the spec the latest upload said (the node's catalogue encoding of
//                            a spec, node::format::encode_spec, with id 0; D62)
// where <seq> is 20 decimal digits, one counter for the whole sink (the highest seen + 1 at open).
// A rebuild gives the same state: the newest compaction's state (its segments, then its context)
// first, then every other object joined as the delta it is (an older object the compaction
// already folded is judged by that context, so nothing dead comes back).
//
// Compaction rewrites a collection whose objects hold anything dead (a deleted or superseded
// entry, or any delta object): it writes the live records as new segments, then the context,
// then removes the older objects. A crash between those steps leaves objects that join to the
// same state (joins are idempotent), and the next compaction removes them.
//
// Cold search is exact, over the winner of every live record, with the same kernels and metric
// numbering as the node's search (index::exact_knn), so its hits merge with the local ones. It
// scans the state env's vector slabs in place (LMDB's map: page cache, not heap): each winner's
// vector is stored once, in the node's slabs (node/core/vector_store.hpp, D52), at a label that is
// dense per collection (a delete moves the last record into the freed slot, D66), and elided from
// its record; fetch and bootstrap read records from the state env with the vector put back. The heap holds, per collection, a few counters and
// the causal context, and per request what that request carries.
//
// Limits: every request is checked against SinkLimits before it touches the store; a refused
// request names the limit and the value seen and changes nothing.
//
// Thread rules: one thread at a time (shoal-sink calls it from its loop thread).
// Ownership: the ObjectStore and the state Store must outlive the service. Results are values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "crdt/codec.hpp"
#include "crdt/or_map.hpp"
#include "index/types.hpp"
#include "node/store/store.hpp"
#include "node/core/spec.hpp"
#include "sink/object_store.hpp"
#include "sink/segment.hpp"

namespace shoal::sink {

struct SinkLimits {
  // Collections the sink holds.
  std::size_t max_collections = 1024;
  // Collection names: the node's rule (1..64 bytes of [A-Za-z0-9_.-], not starting with '.').
  std::size_t max_collection_name_bytes = 64;
  std::uint32_t max_k = 1000;
  std::uint32_t max_dimension = 4096;
  // Ids in one fetch.
  std::size_t max_fetch_ids = 1000;
  // One uploaded segment and one delta (the RPC message limit of links is 16 MiB + 64 KiB).
  std::size_t max_upload_bytes = std::size_t{16} << 20;
  std::size_t max_delta_bytes = std::size_t{16} << 20;
  // Records in one bootstrap page, and the payload bytes one page may carry (a page holds at
  // least one record).
  std::size_t max_bootstrap_records = 4096;
  std::size_t max_bootstrap_bytes = std::size_t{4} << 20;
  // Ranges in one removed-dots message (D74; a range takes at most 39 bytes, so 262,144 fit
  // well under the RPC message limit).
  std::size_t max_removed_ranges = 262144;
  // Records per segment written by compaction.
  std::size_t max_compacted_segment_records = 65536;
  SegmentLimits segment;
};

struct UploadAck {
  std::string key;        // the object that holds it
  std::uint64_t seq = 0;  // its sequence number
  std::uint32_t records = 0;
  std::uint64_t bytes = 0;
};

// How current the sink's answer is: the newest object it joined, and when.
struct Freshness {
  std::uint64_t objects = 0;       // objects of this collection in the store
  std::uint64_t last_seq = 0;      // the newest acknowledged object of this collection
  std::int64_t last_ack_wall_ns = 0;
  std::uint64_t records = 0;       // live records of this collection
};

struct ColdHit {
  std::string id;
  float distance = 0.0f;
  // The dots of the record's entries at the sink (crdt::encode_context bytes): a member judges
  // with them whether it has seen this version of the record and removed it since (a delete the
  // sink has not received yet), so that a cold hit never brings back what the member deleted.
  std::string dots;
};

struct ColdSearchResult {
  std::vector<ColdHit> hits;  // closest first, ties by id
  Freshness freshness;
};

struct FetchedRecord {
  std::string id;
  bool found = false;
  // The winner's payload (the node's payload encoding, node/core/record.hpp), its clock and its
  // BLAKE2b-256 digest (what an evicted record's stub keeps).
  std::string payload;
  std::uint64_t hlc = 0;
  PayloadDigest digest{};
  std::string object;  // the object (segment or delta) that holds the winner: the sink's index
};

struct BootstrapPage {
  // The records after the cursor, as an encoded segment (its records' entries are the sink's).
  std::string segment;
  // On the first page (after == "") and the last: the collection's whole causal context then
  // (crdt::encode_context bytes), which also covers the dots of deleted records, so a restored
  // replica never resurrects them. The first page's judges records no page names (D57).
  std::string context;
  std::string next_after;  // pass as `after` for the next page
  bool done = false;
  // What a device needs to create the collection before it restores it (docs/tiers.md,
  // "Bootstrap from the sink"): the live records' dimension (0: none live), and the metric the
  // members' uploads said (nullopt: none said one).
  std::uint32_t dimension = 0;
  std::optional<index::Metric> metric;
  // The collection's spec as the latest upload that said one gave it (D62; nullopt: none did):
  // a device creates the collection with its index options (m, ef_construction, ef_search,
  // quantization).
  std::optional<node::CollectionSpec> spec;
};

struct CollectionStatus {
  std::string name;
  std::uint64_t records = 0;
  std::uint64_t segments = 0;
  std::uint64_t deltas = 0;
  std::uint64_t bytes = 0;
};

struct SinkStatus {
  std::uint64_t records = 0;
  std::uint64_t objects = 0;
  std::uint64_t bytes_stored = 0;      // bytes of every object the sink holds
  std::uint64_t payload_bytes = 0;     // payload bytes of the live records' entries
  // Backlog seen: objects written since the last compaction that compaction would fold or drop
  // (delta objects, and segments holding dead entries).
  std::uint64_t backlog_objects = 0;
  std::uint64_t uploads = 0;           // acknowledged segment uploads since open
  std::uint64_t deltas = 0;            // acknowledged deltas since open
  std::uint64_t last_ack_seq = 0;
  std::int64_t last_ack_wall_ns = 0;
  std::string store_kind;
  std::vector<CollectionStatus> collections;
};

struct CompactionReport {
  std::uint64_t collections = 0;       // rewritten
  std::uint64_t objects_removed = 0;
  std::uint64_t objects_written = 0;
  std::uint64_t bytes_before = 0;
  std::uint64_t bytes_after = 0;
};

class SinkService {
 public:
  // Lists the objects of `store` and brings the state env `state` up to them: joins the objects
  // it has not applied, or rebuilds it from every object when it is empty, was left half built,
  // or names an applied object that is gone with no newer compaction to explain it (the store
  // was replaced). `state` nullptr: a MemoryStore of the service's own (rebuilt at every open).
  // Statuses: the stores' (kUnavailable, kIo...); kCorruption naming the key for an object that
  // does not decode.
  [[nodiscard]] static Result<std::unique_ptr<SinkService>> open(ObjectStore& store, SinkLimits limits = {},
                                                                 store::Store* state = nullptr);
  ~SinkService();
  SinkService(const SinkService&) = delete;
  SinkService& operator=(const SinkService&) = delete;

  // Stores `segment_bytes` (an encoded segment) and joins it. Durable when OK.
  // Statuses: kInvalidArgument/kTooLarge (bytes, records, k...), decode_segment's, kMalformed
  // (an id, or a payload that is not the node's payload encoding, naming the record),
  // kDimensionMismatch (a vector whose dimension differs from the collection's), kTooLarge
  // (max_collections), the store's. Nothing changes on error. `metric`: the collection's metric on
  // the uploading member, whose record rules apply (node::validate_record: under cosine a zero
  // vector is refused with kZeroVector naming the record); nullopt (a member that did not say):
  // l2's rules. `spec`: the collection's spec on the member (D62), kept for bootstrap; checked
  // first (node::validate_spec under these limits; its name must be the upload's collection, its
  // metric `metric` when said, its dimension the records': kInvalidArgument, kOutOfRange...,
  // kDimensionMismatch otherwise); nullopt: not said, the one kept stays.
  [[nodiscard]] Result<UploadAck> upload_segment(std::string_view segment_bytes, std::int64_t now_wall_ns,
                                                 std::optional<index::Metric> metric = std::nullopt,
                                                 const std::optional<node::CollectionSpec>& spec = std::nullopt);

  // Stores a delta for `collection` and joins it: how deletes and later upserts reach the sink.
  // Statuses: as upload_segment's; kMalformed when the bytes do not decode (crdt::decode_delta's
  // reason in the message). An empty delta is
  // acknowledged without a write (and its spec is not kept). `metric` and `spec` as upload_segment's.
  [[nodiscard]] Result<UploadAck> apply_delta(std::string_view collection, std::string_view delta_bytes,
                                              std::int64_t now_wall_ns,
                                              std::optional<index::Metric> metric = std::nullopt,
                                              const std::optional<node::CollectionSpec>& spec = std::nullopt);

  // D74: a member's full-state upload says which dots of `collection` it removed (the dots of its
  // context that none of its entries carries; crdt::encode_dot_ranges bytes). Checks them
  // without touching anything: kInvalidArgument (the name), kTooLarge (bytes above
  // max_delta_bytes, ranges above max_removed_ranges: the limit and the value seen), kMalformed
  // (the bytes do not decode: decode_dot_ranges's reason).
  [[nodiscard]] Result<std::vector<crdt::DotRange>> check_removed(std::string_view collection,
                                                                  std::string_view removed_bytes) const;
  // Removes every entry the sink holds of `collection` whose dot is in `ranges` (checked by
  // check_removed), whichever record holds it: a record left with no entry leaves the state.
  // Stored as delta objects before they join (each names the records it changes with no
  // entries and the removed dots as its context, as a peer's delete does), so it is durable when
  // OK and an open rebuilds it; idempotent (a second call finds nothing and writes nothing).
  // Returns the last delta's Ack (seq 0: nothing held was removed) with `records` the records
  // changed. Statuses: apply_delta's; on error the deltas acknowledged before stay (each is a
  // sound removal on its own) and a retry finishes the rest.
  [[nodiscard]] Result<UploadAck> remove_dots(std::string_view collection, std::span<const crdt::DotRange> ranges,
                                              std::int64_t now_wall_ns);
  // The k nearest live records (winners) of `collection` to `query` under `metric`, exactly.
  // Statuses: kNoSuchCollection; kOutOfRange (k = 0), kTooLarge (k above max_k);
  // kDimensionMismatch; kNonFinite; kZeroVector (cosine).
  [[nodiscard]] Result<ColdSearchResult> cold_search(std::string_view collection, std::span<const float> query,
                                                     std::uint32_t k, index::Metric metric) const;

  // The winners of `ids`; absent ids come back with found = false. Statuses: kNoSuchCollection,
  // kTooLarge (max_fetch_ids), kMalformed (an id breaking the record id rules).
  [[nodiscard]] Result<std::vector<FetchedRecord>> fetch(std::string_view collection,
                                                         std::span<const std::string> ids) const;

  // One page of the collection's records with ids after `after` ("" to start). Statuses:
  // kNoSuchCollection.
  [[nodiscard]] Result<BootstrapPage> bootstrap(std::string_view collection, std::string_view after) const;

  // Rewrites every collection with dead data (see above). Statuses: the store's; on error the
  // state is unchanged and the objects already written are harmless (they join to the same state).
  [[nodiscard]] Result<CompactionReport> compact();

  SinkStatus status() const;
  std::vector<std::string> collections() const;
  const SinkLimits& limits() const noexcept { return limits_; }
  // How the last open() found the state env: rebuilt from every object (true), or brought up to
  // date by joining only the objects it had not applied (false); and how many objects it joined.
  bool rebuilt_at_open() const noexcept { return rebuilt_; }
  std::uint64_t joined_at_open() const noexcept { return joined_at_open_; }

 private:
  struct Collection;
  explicit SinkService(ObjectStore& store, SinkLimits limits, store::Store& state);

  Status load();
  // Clears the state env, then joins every object of `listing` (by collection) into it.
  struct Found;
  using Listing = std::map<std::string, std::vector<Found>, std::less<>>;
  Status rebuild(Listing& listing);
  // Reads the state env's collections; joins the objects it has not applied. Statuses: kCorruption
  // when the state env disagrees with the objects (the caller rebuilds).
  Status catch_up(Listing& listing);
  Status clear_state();
  Status check_collection_name(std::string_view name) const;
  // Validates the records a delta or segment brings for `c` (ids, payload encoding, dimension,
  // and the node's record rules under `metric`, l2's when nullopt); returns the dimension they use
  // (0 when they carry no entry).
  Result<std::uint32_t> validate_records(const Collection* c, std::string_view collection,
                                         const crdt::RecordMap& records, std::optional<index::Metric> metric) const;
  Result<Collection*> collection_for_write(std::string_view name);
  // Checks an upload's `spec` (see upload_segment) against its collection, metric and the
  // dimension its records use (0: none).
  Status check_spec(std::string_view collection, const std::optional<node::CollectionSpec>& spec,
                    std::optional<index::Metric> metric, std::uint32_t dimension) const;
  // Stores `metric` as `c`'s (a kSpecKind object) when an upload said one that differs from the
  // one known; best effort (the upload is acknowledged either way).
  void remember_metric(Collection& c, std::optional<index::Metric> metric);
  // The same for an upload's spec (a kIndexKind object, D62).
  void remember_spec(Collection& c, const std::optional<node::CollectionSpec>& spec);
  // Puts `bytes` as the newest object of `kind` for `c`, then removes the one at `key` (best
  // effort) and sets `key` to the new one. False (nothing changed) when the put failed.
  bool replace_setting(Collection& c, std::string_view kind, std::string_view bytes, std::string& key);
  const Collection* find(std::string_view name) const;
  std::string next_key(std::string_view kind, std::string_view collection);
  // Reads the spec object `f` (kIndexKind) into `c.spec` and `c.spec_key`.
  Status read_spec(Collection& c, const Found& f);
  // Reads and decodes one object of `c` (a segment, a delta or a context object) as a delta.
  Result<std::pair<crdt::Delta, std::uint64_t>> read_object(const Collection& c, const Found& f);
  // One state transaction: joins `delta` into `c` (from object `key`, "" for none), records the
  // object as applied, and writes `c`'s counters and context. `c` changes only when it committed.
  Status apply(Collection& c, const crdt::Delta& delta, std::string_view key, std::uint64_t bytes);
  // Frees `label`'s slot of `w` (labels 1..w.records, dense): the record in the last slot moves
  // into it (its vector, its label entry, the label in its record), so the slabs stay full and
  // the slot a delete freed is the next one given (D66). The caller decrements w.records.
  static Status free_label(store::WriteTxn& txn, const Collection& w, std::uint64_t label);
  // apply() for an object just put under `key` (creating the collection); on failure the
  // object is taken back out of the object store (best effort) and nothing else changed.
  Result<Collection*> join_stored(std::string_view collection, const crdt::Delta& delta, const std::string& key,
                                  std::uint64_t bytes);
  Result<std::uint64_t> compact_one(Collection& c, CompactionReport& report);

  ObjectStore& store_;
  SinkLimits limits_;
  std::unique_ptr<store::Store> own_state_;
  store::Store& state_;
  std::map<std::string, std::unique_ptr<Collection>, std::less<>> collections_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t uploads_ = 0;
  std::uint64_t deltas_ = 0;
  std::uint64_t last_ack_seq_ = 0;
  std::int64_t last_ack_wall_ns_ = 0;
  bool rebuilt_ = false;
  std::uint64_t joined_at_open_ = 0;
};

// The state env of shoal-sink (DATA_DIR/state): the service's state on LMDB through the node's
// store::LmdbStore. An env that does not open (damaged, not LMDB, another schema version) is
// removed and created empty, and `discarded` says why: the state is derived from the objects, and
// SinkService::open rebuilds it. Statuses: kIo (the directory cannot be removed), and
// LmdbStore::open's when a fresh env does not open either.
struct StateEnv {
  std::unique_ptr<store::Store> store;
  std::string discarded;
};
[[nodiscard]] Result<StateEnv> open_state_env(const std::string& path);

// A bootstrap page in the CRDT form a node joins (node::Node::join_sink_page): its records with
// their dots as the context, and on the last page (`done`) the collection's whole context too.
// Adds the page's record ids to `ids` (the last join needs every page's). Statuses:
// decode_segment's; kMalformed (a segment of another collection; a context that does not decode).
[[nodiscard]] Result<crdt::Delta> bootstrap_page_delta(std::string_view collection, std::string_view segment,
                                                       std::string_view context, bool done,
                                                       std::set<std::string>& ids);
// A bootstrap page's context bytes decoded (empty bytes: the empty context, as a sink from before
// D57 sends on a first page that is not the last). Statuses: kMalformed.
[[nodiscard]] Result<crdt::CausalContext> bootstrap_context(std::string_view collection, std::string_view context);

// Converts between the segment form and the CRDT form of records. A segment's records carry
// their entries' dots as the context. Statuses (to_delta): kCorruption for an invalid counter.
crdt::Delta segment_to_delta(const Segment& segment);
// The records of `records` (entries only) as a segment of `collection`, entries in segment order.
Segment records_to_segment(std::string_view collection, const crdt::RecordMap& records);

}  // namespace shoal::sink

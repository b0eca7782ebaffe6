// node/core/vector_store.hpp: float vectors apart from their records (docs/node-format.md,
// "Vectors apart from their records"; docs/decisions.md, D43).
//
// Role: the winning entry's vector of each record lives once, in the store's `vectors` table,
// keyed by (collection id, label) and 4-byte aligned, so that the index reads the floats it
// re-ranks with in place from the store's memory map (StoreFloatSource) instead of keeping a
// copy in RAM or in its snapshot. The record in the `records` table then holds the winner's
// payload with its vector elided (a dimension field of kElidedDimension and no floats). Every
// reader of stored records goes through read_record(), which puts the vector back, so the rest of
// the node (sync, repair, get, the sink feed) sees the same bytes as before; every writer goes
// through put_record()/del_record(). An elided payload never leaves the node, and one from a
// peer is refused (decode_payload rejects it: its dimension does not fit).
//
// Thread rules: the functions are pure over the transaction they are given. A StoreFloatSource
// is called from any thread (searches, the index thread, the rebuild thread); each reader holds
// one read transaction and belongs to one thread for one operation.
//
// Ownership: a StoreFloatSource refers to the Store (which outlives it) and owns the pointer cache
// of the newest snapshot its readers saw (VectorPointerCache), shared with those readers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.hpp"
#include "index/float_source.hpp"
#include "node/core/node_format.hpp"
#include "node/store/store.hpp"

namespace shoal::node::format {

// The meta key that says every record's winner vector is in the vectors table (u8 1). Absent in
// data directories written before it: Node::open migrates them (migrate_vectors).
inline constexpr std::string_view kVectorsApartKey = "node.vectors_apart";
// The meta key that says the index_dirty table is kept (u8 1): every label changed since a
// collection's snapshot was written is in it. Absent: snapshots are not trusted (rebuilt).
inline constexpr std::string_view kIndexDirtyKey = "node.index_dirty_kept";
// The meta key that says every stored vector is in the vector_slabs table (u8 1). Absent in data
// directories written before it: Node::open migrates them (migrate_vector_slabs).
inline constexpr std::string_view kVectorSlabsKey = "node.vector_slabs";
// The payload's dimension field when the vector is in the vector_slabs table.
inline constexpr std::uint32_t kElidedDimension = 0xffffffffu;

// u32be collection id, u64be label (12 bytes): the key of the index_dirty table, of the vectors
// table before schema version 5, and (with the slab's first label) of the vector_slabs table.
std::string vector_key(std::uint32_t cid, std::uint64_t label);

// --- Vector slabs (docs/node-format.md, "Vector slabs"; docs/decisions.md, D52) ---
//
// The vectors of labels [first, first + n) of a collection share one vector_slabs value, keyed
// by vector_key(cid, first), first a multiple of n = slab_vectors(dimension):
//   k x dimension x f32 (slot i = label first + i; zeros when absent), then a presence bitmap
//   of all n slots (bit i%8 of byte i/8; ceil(n/8) bytes, zero-padded to a multiple of 4), then
//   u32 n and u32 dimension (little-endian).
// k (1..n) is what the value's size says: writers store the slots up to the last present one, and
// at least as many as make the value 2,048 bytes (schema version 7; before, always n), so a
// single write into the slab that is filling rewrites its filled part only.
// So a 3,136-byte vector no longer takes a 4 KiB page of its own, and a slot's floats are 4-byte
// aligned in the map whenever the value is (it is: slabs live on overflow pages).

// Vectors per slab for this dimension: the smallest n whose slab, on LMDB's 4 KiB overflow pages
// (16-byte header), leaves at most 2% of its pages unused, among slabs too big for a leaf page and
// at most 64 KiB (or one vector); else the least wasteful of those. Part of the format: a
// collection's slabs all use it. 784 -> 9 (7 pages), 128 -> 55 (7 pages).
std::uint32_t slab_vectors(std::uint32_t dimension) noexcept;
// A label's vector in place (valid as get_view's are), kNotFound when it has none. Statuses:
// kCorruption for a slab of the wrong size or shape; the store's.
[[nodiscard]] Result<std::string_view> get_vector(store::ReadView& view, std::uint32_t cid, std::uint32_t dimension,
                                                  std::uint64_t label);
// Stores `floats` (dimension = its size / 4) as `label`'s vector, rewriting its slab.
[[nodiscard]] Status put_vector(store::WriteTxn& txn, std::uint32_t cid, std::uint64_t label, std::string_view floats);
// Removes `label`'s vector (a no-op when it has none); a slab left empty is deleted.
[[nodiscard]] Status del_vector(store::WriteTxn& txn, std::uint32_t cid, std::uint64_t label);
// Visits every stored vector of a collection in label order (views valid during the call);
// `visit` returns false to stop. Statuses: kCorruption for a malformed slab; the store's.
[[nodiscard]] Status scan_vectors(store::ReadView& view, std::uint32_t cid, std::uint32_t dimension,
                                  store::FunctionRef<bool(std::uint64_t label, std::string_view floats)> visit);

// Decodes a stored record and puts the winner's vector back from the vectors table when it was
// moved there. `view` is the transaction the record was read in. Statuses: those of
// decode_record; kCorruption when the vector is missing or of the wrong size; the store's.
[[nodiscard]] Result<StoredRecord> read_record(store::ReadView& view, std::uint32_t cid, std::string_view key,
                                               std::string_view value);
// Writes a record whose entries are whole (as read_record returns them or a peer sent them): the
// winner's vector to the vectors table under `label`, the record with that vector elided.
// Statuses: the store's; kInternal if the winner's payload is already elided (a bug).
[[nodiscard]] Status put_record(store::WriteTxn& txn, std::uint32_t cid, std::string_view key, std::uint64_t label,
                                const crdt::Entries& entries);
// The two halves of put_record and read_record, shared with the sink's state env (D66), which
// keys its records its own way: elide_winner_vector moves the winner's vector out of `entries`
// (the winner's payload is then elided, as put_record stores it) and returns its floats, or ""
// when there is none to move (no winner, or an evicted record's stub); kInternal when it is
// elided already or shorter than its dimension says. restore_winner_vector puts `floats` back
// into the elided winner; kInternal when the winner is not elided, kCorruption for floats that
// are no vector.
[[nodiscard]] Result<std::string> elide_winner_vector(crdt::Entries& entries);
[[nodiscard]] Status restore_winner_vector(crdt::Entries& entries, std::string_view floats);
// Deletes a record and its vector (label 0: none was stored).
[[nodiscard]] Status del_record(store::WriteTxn& txn, std::uint32_t cid, std::string_view key, std::uint64_t label);
// The payload of a stored entry, elided or not (the vector is then empty). For readers that need
// the metadata and model only (the open scan).
[[nodiscard]] Result<RecordValue> decode_stored_payload(const crdt::Entry& e);
// True when `payload` is an elided one.
bool payload_elided(const crdt::Bytes& payload) noexcept;

// Moves the winner's vector of every record whose payload still holds it into the vectors
// table, `batch` records per transaction (each record once: a crash in between resumes where it
// stopped), then writes kVectorsApartKey. Returns the number of records moved. A no-op when the
// key is present. Statuses: the store's; those of decode_record.
[[nodiscard]] Result<std::uint64_t> migrate_vectors(store::Store& store, std::size_t batch = 4096);
// Moves every vector of the per-label vectors table (schema version 4 and older) into slabs,
// `batch` vectors per transaction (each moved vector leaves the vectors table in the same
// transaction, so a crash resumes), then writes kVectorSlabsKey. Returns the number moved. A no-op
// when the key is present. Statuses: kCorruption for a malformed entry; the store's.
[[nodiscard]] Result<std::uint64_t> migrate_vector_slabs(store::Store& store, std::size_t batch = 4096);

}  // namespace shoal::node::format

namespace shoal::node {

// Where the vectors of one snapshot lie in the store's map, by label: filled by the readers of
// that snapshot as they look vectors up, so that the next search re-ranks its candidates with one
// load each instead of a B-tree descent (mdb_get) each. Valid for the readers whose transaction
// has the same store::ReadTxn::Stamp: LMDB frees no page of a snapshot while a reader holds it,
// so a pointer found by one reader of the snapshot is good for every later reader of it, and a
// write makes a new snapshot (a new stamp, a new cache), so no reader after a write can see a
// vector's old floats through it. Labels below kLabels only (the rest are looked up each time).
// Thread rules: find and remember from any thread, concurrently (atomic slots; chunks of slots
// are allocated on first use and installed with a compare-and-swap).
class VectorPointerCache {
 public:
  static constexpr std::size_t kChunkLabels = 4096;  // 32 KiB of slots per chunk
  static constexpr std::size_t kChunks = 1024;       // an 8 KiB directory
  static constexpr std::uint64_t kLabels = std::uint64_t{kChunkLabels} * kChunks;

  explicit VectorPointerCache(store::ReadTxn::Stamp stamp) noexcept : stamp_(stamp) {}
  ~VectorPointerCache();
  VectorPointerCache(const VectorPointerCache&) = delete;
  VectorPointerCache& operator=(const VectorPointerCache&) = delete;

  store::ReadTxn::Stamp stamp() const noexcept { return stamp_; }
  // The vector's bytes in the map, or nullptr when not remembered yet.
  const char* find(std::uint64_t label) const noexcept;
  // Remembers where `label`'s vector lies in this snapshot (a no-op past kLabels, or when a
  // chunk cannot be allocated).
  void remember(std::uint64_t label, const char* p) noexcept;

 private:
  using Slot = std::atomic<const char*>;
  store::ReadTxn::Stamp stamp_;
  std::array<std::atomic<Slot*>, kChunks> chunks_{};
};

// The vectors of one collection, read in place: the node's index::FloatSource.
class StoreFloatSource final : public index::FloatSource {
 public:
  StoreFloatSource(store::Store& store, std::uint32_t cid, std::uint32_t dimension) noexcept
      : store_(&store), cid_(cid), dimension_(dimension) {}
  ~StoreFloatSource() override;
  // One read transaction; nullptr when the store cannot open one (the index then uses codes).
  // The reader shares the pointer cache of its snapshot when that is the newest one seen (a
  // reader of a newer snapshot replaces it; a reader of an older one does without).
  std::unique_ptr<index::FloatReader> reader() const override;

 private:
  store::Store* store_;  // not owned; outlives this
  std::uint32_t cid_;
  std::uint32_t dimension_;
  // The newest snapshot's cache. Shared (the one mutable-shared exception to STYLE 4): every
  // reader of that snapshot holds it for its life, so a reader of a newer snapshot can replace it
  // here while older readers finish with theirs; its slots are atomics. Read and replaced only
  // through the shared_ptr atomic access functions (std::atomic_load,
  // std::atomic_compare_exchange_weak; the core takes no lock of its own), not
  // std::atomic<std::shared_ptr>: libstdc++ 12's load() releases its internal spin lock with a
  // relaxed store, so its read of the pointer is not ordered before a replacing writer's store
  // (ThreadSanitizer reports the race; on a weakly ordered CPU such as arm64 the read may pair
  // the new pointer with the old count, D63).
  mutable std::shared_ptr<VectorPointerCache> cache_;
};

}  // namespace shoal::node

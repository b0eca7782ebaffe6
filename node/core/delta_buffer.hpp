// node/core/delta_buffer.hpp: the node's durable, bounded delta buffer (docs/protocol.md).
//
// Role: every change that altered the node's state (a local write, or a peer's delta or repair
// that was new here) is appended under the next sequence number, with its origin, inside the
// transaction that made the change; the sync engine reads the entries after a peer's
// acknowledged position and trims what every peer has acknowledged. Entries live in the store's
// deltas table (docs/node-format.md); this object holds only the extent. A collection's entry is a
// skeleton (dots, clocks, context; no payloads): whoever sends it rebuilds it from the records'
// current state with delta_of / delta_bytes (docs/crdt.md, "Delta-buffer entries without
// payloads"; D51). Catalogue entries are kept whole (the catalogue has no record store).
//
// Invariants (asserted): 1 <= oldest <= last + 1 (oldest == last + 1: empty); the extent only
// moves forward; a transaction's cursor is committed only after that transaction committed.
// Thread rules: one owner (the node core).
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/status.hpp"
#include "crdt/or_map.hpp"
#include "crdt/replica.hpp"
#include "node/core/node_format.hpp"
#include "node/store/store.hpp"

namespace shoal::node {

// Who a delta came from: not sent back to that peer, and (from a hot peer) not relayed to other
// hot peers, which hear it from the origin directly.
struct Origin {
  crdt::ReplicaId peer;
  bool hot = false;
};

class DeltaBuffer {
 public:
  // Where the buffer stands inside one write transaction (shared by everything the transaction
  // appends); committed back with commit() after the transaction commits.
  struct Cursor {
    std::uint64_t last = 0;    // the last sequence written
    std::uint64_t oldest = 1;  // the oldest sequence still present
  };

  // `max_entries`: the bound; peers further behind are repaired by digest (>= 1).
  explicit DeltaBuffer(std::uint64_t max_entries);

  // Reads the extent from the store.
  [[nodiscard]] Status load(store::ReadView& txn);

  // Rewrites every whole collection entry (as data directories before schema version 4 wrote
  // them) as a skeleton, `batch` entries per transaction (a crash in between resumes: rewritten
  // entries are skeletons already), then writes format::kBufferSkeletonsKey. A no-op when the key
  // is present. Returns the number of entries rewritten. Statuses: kCorruption for an
  // undecodable entry; the store's.
  [[nodiscard]] static Result<std::uint64_t> migrate(store::Store& store, std::size_t batch = 4096);

  std::uint64_t last() const noexcept { return last_; }
  std::uint64_t oldest() const noexcept { return oldest_; }
  std::uint64_t size() const noexcept { return last_ + 1 - oldest_; }
  Cursor cursor() const noexcept { return Cursor{last_, oldest_}; }

  // Appends `delta` (of collection `cid`, from `origin` or local when null) inside `txn`, and
  // drops the oldest entries beyond the bound. A collection's delta is stored as a skeleton: the
  // transaction must already hold its records' new state (the payloads are read back from there).
  [[nodiscard]] Status append(store::WriteTxn& txn, Cursor& cursor, std::uint32_t cid, const Origin* origin,
                              const crdt::Delta& delta) const;
  // Takes a committed transaction's cursor. Returns true when entries were added.
  bool commit(const Cursor& cursor);

  // Removes the entries through `seq` (inclusive) in a transaction of their own.
  [[nodiscard]] Status trim_through(store::Store& store, std::uint64_t seq);
  // Test mutation (MutationsForTesting::trim_before_ack): drops entries (first, last] at once.
  void drop_for_testing(store::Store& store, std::uint64_t first, std::uint64_t last);

  // Visits up to `max` entries after sequence `after`, in order, as stored (a skeleton's
  // payloads are empty: send only delta_of / delta_bytes); `visit` returns false to stop.
  // kCorruption for an undecodable entry.
  using EntryVisitor = store::FunctionRef<bool(std::uint64_t seq, const format::BufferEntry& entry)>;
  [[nodiscard]] Status scan(store::ReadView& txn, std::uint64_t after, std::size_t max, EntryVisitor visit) const;

  // The delta to send for `entry`, read in `txn` (the transaction it was scanned in): a whole
  // entry as stored; a skeleton re-hydrated from the records' current state: each of its entries
  // whose dot is still live is sent with the payload the store holds for it (a dot's payload never
  // changes), a dot no longer live only in the context (removed here since; the removal is
  // causally known), so the result is a sub-state of the current state: a valid delta.
  // Statuses: kCorruption for undecodable bytes; those of format::read_record; the store's.
  [[nodiscard]] static Result<crdt::Delta> delta_of(store::ReadView& txn, const format::BufferEntry& entry);
  // delta_of's encoding: `entry.stored` itself for a whole entry, else encoded into `scratch`
  // (the view is valid while `scratch` and the transaction are).
  [[nodiscard]] static Result<std::string_view> delta_bytes(store::ReadView& txn, const format::BufferEntry& entry,
                                                            std::string& scratch);

 private:
  void check() const;

  std::uint64_t max_entries_;
  std::uint64_t last_ = 0;
  std::uint64_t oldest_ = 1;
};

}  // namespace shoal::node

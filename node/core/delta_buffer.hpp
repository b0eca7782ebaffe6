// node/core/delta_buffer.hpp: the node's durable, bounded delta buffer (docs/protocol.md).
//
// Role: every change that altered the node's state (a local write, or a peer's delta or repair
// that was new here) is appended under the next sequence number, with its origin, inside the
// transaction that made the change; the sync engine reads the entries after a peer's
// acknowledged position and trims what every peer has acknowledged. Entries live in the store's
// deltas table (docs/node-format.md); this object holds only the extent.
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

  std::uint64_t last() const noexcept { return last_; }
  std::uint64_t oldest() const noexcept { return oldest_; }
  std::uint64_t size() const noexcept { return last_ + 1 - oldest_; }
  Cursor cursor() const noexcept { return Cursor{last_, oldest_}; }

  // Appends `delta` (of collection `cid`, from `origin` or local when null) inside `txn`, and
  // drops the oldest entries beyond the bound.
  [[nodiscard]] Status append(store::WriteTxn& txn, Cursor& cursor, std::uint32_t cid, const Origin* origin,
                              const crdt::Delta& delta) const;
  // Takes a committed transaction's cursor. Returns true when entries were added.
  bool commit(const Cursor& cursor);

  // Removes the entries through `seq` (inclusive) in a transaction of their own.
  [[nodiscard]] Status trim_through(store::Store& store, std::uint64_t seq);
  // Test mutation (MutationsForTesting::trim_before_ack): drops entries (first, last] at once.
  void drop_for_testing(store::Store& store, std::uint64_t first, std::uint64_t last);

  // Visits up to `max` entries after sequence `after`, in order; `visit` returns false to stop.
  // kCorruption for an undecodable entry.
  using EntryVisitor = store::FunctionRef<bool(std::uint64_t seq, const format::BufferEntry& entry)>;
  [[nodiscard]] Status scan(store::ReadView& txn, std::uint64_t after, std::size_t max, EntryVisitor visit) const;

 private:
  void check() const;

  std::uint64_t max_entries_;
  std::uint64_t last_ = 0;
  std::uint64_t oldest_ = 1;
};

}  // namespace shoal::node

// crdt/causal_context.hpp: the causal context, the set of dots a replica has seen.
//
// Role: a CausalContext is a set of dots stored compactly, per replica, as a contiguous prefix
// 1..contiguous (the version vector) plus a sorted "cloud" of dots received out of order. Adding
// the missing dots compacts the cloud into the prefix. A dot in the context has been seen:
// either its entry is still in the state, or it was removed (overwritten or deleted). That is how
// the OR-map keeps no tombstones: a removed entry is just a covered dot with no entry, and once
// gaps fill the whole history of a replica costs two integers, however many deletes it made.
//
// Invariants (canonical form, so equal sets compare equal and encode identically):
//   - a row exists only if it holds at least one dot;
//   - every cloud counter c satisfies c > contiguous + 1, and the cloud is strictly increasing.
// Thread rules: values; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "crdt/replica.hpp"

namespace shoal::crdt {

class CausalContext {
 public:
  struct Row {
    std::uint64_t contiguous = 0;      // dots 1..contiguous are in the set
    std::vector<std::uint64_t> cloud;  // further dots, sorted, each > contiguous + 1

    friend bool operator==(const Row&, const Row&) = default;
  };
  using Rows = std::map<ReplicaId, Row>;

  CausalContext() = default;

  bool contains(const Dot& dot) const noexcept;
  // Adds one dot (precondition: dot.counter >= 1) and compacts.
  void add(const Dot& dot);
  // Removes one dot, if present (a dot inside the prefix splits it: the counters after it move to
  // the cloud, so erasing from a long prefix costs its length). The sink feed takes the dots of
  // records it leaves out of an upload off the upload's context (node_sink_feed.cpp).
  void erase(const Dot& dot);
  // Set union with `other`, compacted.
  void merge(const CausalContext& other);
  // True when every dot of `other` is in this context.
  bool includes(const CausalContext& other) const noexcept;

  // Removes the dots of `replica` above `counter` and returns how many there were (a node strips
  // claims on its own dots beyond what it issued from a peer's context: node_sync_host.cpp).
  std::uint64_t drop_above(const ReplicaId& replica, std::uint64_t counter);

  // The largest counter seen for `replica` (0 if none).
  std::uint64_t max_counter(const ReplicaId& replica) const noexcept;
  // The next dot `replica` should issue: max_counter + 1. Only the replica itself issues dots;
  // the node persists the counter with the write it names.
  Dot next_dot(const ReplicaId& replica) const noexcept;

  bool empty() const noexcept { return rows_.empty(); }
  std::size_t replica_count() const noexcept { return rows_.size(); }
  // Number of out-of-order dots over all replicas: zero once every gap has filled.
  std::size_t cloud_size() const noexcept;
  const Rows& rows() const noexcept { return rows_; }

  // Installs a row from a decoder. Returns false (and changes nothing) unless the row is
  // canonical and the replica has no row yet. Used by crdt/codec.cpp only.
  bool set_row_for_decoder(const ReplicaId& replica, Row row);

  friend bool operator==(const CausalContext&, const CausalContext&) = default;

  // "{0a1b2c3d/0:5+[7,9]}", for test failures and traces.
  std::string to_string() const;

 private:
  static void compact(Row& row);
  Rows rows_;
};

}  // namespace shoal::crdt

// crdt/or_map.hpp: deltas and the in-memory observed-remove map of records.
//
// Role: a collection's replicated state (docs/crdt.md). An ORMap maps record ids to entries (see
// crdt/entries.hpp), with one causal context and a DigestTree kept up to date on every change.
// The node keeps the same state in its store instead (records keyed by id, the context apart)
// and drives the same free functions record by record; ORMap is the in-memory form used by
// tests, benchmarks and the simulator's checkers, and the reference for what the node must do.
//
// A Delta is a small state: the entries of the records it names, plus a causal context. For an
// upsert it names the id with the new entry, and its context holds the new dot and the dots of
// the entries the upsert replaced. For a delete it names the id with no entries, and its context
// holds the dots of the removed entries. Invariant: every dot in a delta's context belongs to a
// record the delta names, so joining it touches only those records (which is what lets the node
// apply it with one store read per named record). Deltas join with each other into bigger deltas
// (batches for a peer); the result keeps the invariant.
//
// Semantics (proved by tests/crdt): join is commutative, associative and idempotent; joining a
// delta equals joining the state after the mutation that made it; any order, duplication or
// loss-then-resend of deltas converges. No tombstones are stored: a deleted record leaves no
// entry, only covered dots in the context, which compact as gaps fill.
// Thread rules: values; an ORMap belongs to one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>

#include "common/status.hpp"
#include "crdt/causal_context.hpp"
#include "crdt/digest.hpp"
#include "crdt/hlc.hpp"
#include "crdt/entries.hpp"

namespace shoal::crdt {

// Record id -> entries, ordered by id (deterministic iteration).
using RecordMap = std::map<std::string, Entries, std::less<>>;

struct Delta {
  RecordMap records;  // named records; an empty list names a delete
  CausalContext context;

  bool empty() const noexcept { return records.empty() && context.empty(); }
  // Joins `other` into this delta (same rule as the state join, keeping named-but-empty ids).
  void join(const Delta& other);

  friend bool operator==(const Delta&, const Delta&) = default;
};

// Statuses: OK; kTooLarge / kOutOfRange for an id outside 1..kMaxRecordIdBytes bytes.
[[nodiscard]] Status validate_record_id(std::string_view id);

class ORMap {
 public:
  // Precondition: validate(digest_config) is OK.
  explicit ORMap(DigestConfig digest_config = {});

  // --- Local mutations (the replica `self` is the caller's own) ---

  // Writes `payload` under `id` with a fresh dot of `self` and clock `clock` (from the replica's
  // HybridClock::tick). Replaces every entry of `id` this replica has observed. Returns the delta
  // to ship. Statuses: validate_record_id's.
  [[nodiscard]] Result<Delta> upsert(const ReplicaId& self, std::string_view id, Bytes payload,
                                     Hlc clock);
  // Removes every entry of `id` this replica has observed. The delta names `id` with no entries
  // and carries the removed dots in its context; deleting an absent record gives an empty delta.
  // Statuses: validate_record_id's.
  [[nodiscard]] Result<Delta> remove(std::string_view id);

  // --- Joins. Each returns true if the state changed. ---

  // Joins a delta (or a batch of joined deltas): touches only the records it names.
  bool join(const Delta& delta);
  // Joins another replica's whole state.
  bool join_state(const ORMap& other);

  // Repair (see crdt/digest.hpp): joins `slice` restricted to `buckets`. `slice` must hold ALL
  // the sender's records in those buckets and the sender's context at that snapshot (as made by
  // slice_buckets()). Local records of those buckets are joined against the slice; only the dots
  // of received entries are added to the context. Call merge_context(earliest sender context)
  // once every differing bucket is done. Precondition: buckets < digests().leaf_count().
  bool join_repair(const Delta& slice, std::span<const std::uint32_t> buckets);
  // The records of `buckets` with this replica's whole context: what a repair sender ships.
  Delta slice_buckets(std::span<const std::uint32_t> buckets) const;
  // The last step of a completed repair session.
  void merge_context(const CausalContext& context);

  // The whole state in Delta form, e.g. to encode a full sync. Its context covers dots of
  // records it does not name, so it breaks the delta invariant: the receiver applies it with
  // join_repair over every bucket, then merge_context (together: the full state join), never
  // with join().
  Delta to_delta() const;

  // --- Reads ---

  // The entries (siblings) of `id`; nullptr if it has none. Lives until the next mutation.
  const Entries* find(std::string_view id) const noexcept;
  // The deterministic winner of `id`; nullptr if none. Lives until the next mutation.
  const Entry* winner(std::string_view id) const noexcept;
  std::size_t size() const noexcept { return records_.size(); }
  const RecordMap& records() const noexcept { return records_; }
  const CausalContext& context() const noexcept { return context_; }
  const DigestTree& digests() const noexcept { return digests_; }

  // Full-state check for tests and debug builds: entries valid, every entry's dot in the
  // context, no dot in two places, no empty record, digests equal a recomputation.
  bool check_invariants_for_testing() const;

  // Equal records and contexts (digests follow from records).
  friend bool operator==(const ORMap& a, const ORMap& b) {
    return a.records_ == b.records_ && a.context_ == b.context_;
  }

  // Multi-line dump for test failures.
  std::string to_string() const;

 private:
  // Joins one record and keeps records_ and digests_ in step. `remote_ctx` judges local entries.
  bool join_one(std::string_view id, std::span<const Entry> remote,
                const CausalContext& remote_ctx);

  RecordMap records_;
  CausalContext context_;
  DigestTree digests_;
};

}  // namespace shoal::crdt

// crdt/entries.hpp: the entries of one record id (its multi-value register) and the per-record join.
//
// Role: the value of one record id is a list of Entries (dot, hybrid logical clock, opaque
// payload bytes), sorted by dot. Usually it holds one entry; concurrent upserts leave several,
// the "siblings". An empty list means the record does not exist (it was never written, or every
// entry was removed). The payload (vector, metadata, model tag) is opaque here.
//
// The per-record join is the whole conflict rule of the observed-remove map (docs/crdt.md): an
// entry survives if both sides have it, or if one side has it and the other side's context does
// not cover its dot. join_entries() applies it to one record, so the node can keep each record's
// entries in its store, keyed by record id, keep the causal context separately, and apply a
// delta record by record:
//
//   for each (id, remote_entries) in delta.records:       // ids named by the delta
//     local = load(id)                                     // empty if absent
//     if join_entries(local, local_ctx, remote_entries, delta.context):
//       store(id, local); digests.update_record(id, before, local)
//   local_ctx.merge(delta.context)                         // only after every record
//
// The contexts passed to join_entries are the ones from *before* the delta: merge the remote
// context into the local one only after all records are joined. For repair (restricted joins),
// see crdt/digest.hpp: there the receiver adds only the dots of the entries it received
// (add_entry_dots) and merges the sender's context at the very end of the session.
//
// Invariants of an Entries value: sorted by dot, strictly (no duplicate dots); every dot's
// counter >= 1. Decoders enforce them on bytes from disk or peers.
// Thread rules: values and pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/causal_context.hpp"
#include "crdt/hlc.hpp"
#include "crdt/replica.hpp"

namespace shoal::crdt {

// Opaque payload bytes.
using Bytes = std::vector<std::uint8_t>;

// Record ids are 1..256 bytes; decoders and ORMap::upsert refuse others.
inline constexpr std::size_t kMaxRecordIdBytes = 256;
// Payloads above this are refused by decoders (a vector plus 40 KiB of metadata fits easily).
inline constexpr std::size_t kMaxPayloadBytes = std::size_t{16} << 20;

struct Entry {
  Dot dot;
  Hlc clock;
  Bytes payload;

  friend bool operator==(const Entry&, const Entry&) = default;
};

// Sorted by dot, no duplicates.
using Entries = std::vector<Entry>;

// True when `entries` is sorted strictly by dot and every counter is >= 1.
bool entries_valid(std::span<const Entry> entries) noexcept;

// Joins one record: `remote` (from a replica whose context is `remote_ctx`) into `local` (whose
// replica's context is `local_ctx`). Keeps entries present on both sides, local entries whose dot
// `remote_ctx` does not cover, and remote entries whose dot `local_ctx` does not cover. Returns
// true if `local` changed. Preconditions: both lists satisfy entries_valid(); `local` does not
// alias `remote`. Neither context is modified.
bool join_entries(Entries& local, const CausalContext& local_ctx, std::span<const Entry> remote,
                  const CausalContext& remote_ctx);

// Adds the dot of every entry of `entries` to `ctx`: what a receiver does for a record received
// in a repair session, instead of merging the sender's whole context (docs/crdt.md).
void add_entry_dots(CausalContext& ctx, std::span<const Entry> entries);

// The deterministic winner among siblings: highest clock, then highest replica id, then highest
// counter. Returns nullptr for an empty record. The pointer lives as long as `entries` is
// unchanged.
const Entry* winner(std::span<const Entry> entries) noexcept;
// True when `a` loses to `b` in the winner order.
bool loses_to(const Entry& a, const Entry& b) noexcept;

}  // namespace shoal::crdt

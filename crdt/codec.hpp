// crdt/codec.hpp: the compact, versioned binary encoding of dots, contexts, entries and deltas.
//
// Role: the node stores encode_entries() bytes as a record's value in its store and
// encode_context() bytes as the collection's context; the sync engine carries encode_delta()
// bytes inside its messages (repair slices are deltas too). The format is specified in prose in
// docs/crdt.md ("Binary format"); any change to it needs a new format version.
//
// Decoders take bytes from disk or peers: they never crash or assert on any input, validate
// every length against the remaining bytes and the limits, and return a Status. Statuses:
//   kTruncated (corruption)        the input ends early;
//   kCorruption                    a value breaks the format (overlong varint, bad order,
//                                  a zero or too large counter, a non-canonical context, an
//                                  entry whose dot the delta's context does not cover, trailing
//                                  bytes);
//   kTooLarge (invalid argument)   an id or payload above kMaxRecordIdBytes / kMaxPayloadBytes,
//                                  or an empty id;
//   kVersionMismatch (version)     an unknown format version byte.
// A decoded value satisfies every invariant the rest of crdt/ relies on, so it can be joined
// without further checks.
// Thread rules: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.hpp"
#include "crdt/causal_context.hpp"
#include "crdt/or_map.hpp"
#include "crdt/entries.hpp"

namespace shoal::crdt {

// The first byte of every top-level encoding.
inline constexpr std::uint8_t kFormatVersion = 1;

// Each encoder appends to `out`.
void encode_dot(const Dot& dot, Bytes& out);
void encode_context(const CausalContext& ctx, Bytes& out);
// One record's value: its entries (not its id).
void encode_entries(std::span<const Entry> entries, Bytes& out);
void encode_delta(const Delta& delta, Bytes& out);

[[nodiscard]] Result<Dot> decode_dot(std::span<const std::uint8_t> bytes);
[[nodiscard]] Result<CausalContext> decode_context(std::span<const std::uint8_t> bytes);
[[nodiscard]] Result<Entries> decode_entries(std::span<const std::uint8_t> bytes);
[[nodiscard]] Result<Delta> decode_delta(std::span<const std::uint8_t> bytes);

// Removed dots as ranges (D74): what a full-state sink upload tells the sink it removed. Each range
// is the counters first..last of one replica; a list is sorted by (replica, first), its ranges of
// one replica neither overlap nor touch, and 1 <= first <= last < 2^62. Encoding: the version
// byte, the range count, then per range the replica, `first` and `last - first` (varints).
struct DotRange {
  ReplicaId replica;
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  friend bool operator==(const DotRange&, const DotRange&) = default;
};
// Encodes `ranges`, which must already be in that canonical form.
void encode_dot_ranges(std::span<const DotRange> ranges, Bytes& out);
// Statuses: decode_context's, kTooLarge naming `max_ranges` and the count seen, kCorruption for
// ranges out of order, overlapping or touching, or outside 1..2^62-1.
[[nodiscard]] Result<std::vector<DotRange>> decode_dot_ranges(std::span<const std::uint8_t> bytes,
                                                              std::size_t max_ranges);
// True when `dot` lies in one of `ranges` (canonical): a binary search.
bool ranges_contain(std::span<const DotRange> ranges, const Dot& dot) noexcept;

// Varint (unsigned LEB128) helpers, exposed for tests and for other formats that embed these.
void put_varint(std::uint64_t value, Bytes& out);

}  // namespace shoal::crdt

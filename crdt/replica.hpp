// crdt/replica.hpp: replica ids and dots, the names of every write in a collection.
//
// Role: a ReplicaId names one life of one device: the 16-byte identity (derived outside crdt/,
// from the device's identity key) plus an incarnation number. A device restored from a backup or
// re-imaged must start a new incarnation, so it can never reissue a dot that its earlier life
// already used. A Dot (replica, counter) names exactly one upsert; counters start at 1 and grow
// by one per upsert of that replica. A dot is never reused for another write.
// Ordering: ReplicaId and Dot are totally ordered (identity bytes, then incarnation, then
// counter); that order is used for determinism only (sorted entries, sibling tie-breaks).
// Thread rules: values; no shared state.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace shoal::crdt {

// Dot counters at or above this are refused by decoders, so `counter + 1` never overflows.
inline constexpr std::uint64_t kMaxCounter = std::uint64_t{1} << 62;

struct ReplicaId {
  static constexpr std::size_t kIdentityBytes = 16;

  std::array<std::uint8_t, kIdentityBytes> identity{};
  std::uint32_t incarnation = 0;

  friend auto operator<=>(const ReplicaId&, const ReplicaId&) = default;
  friend bool operator==(const ReplicaId&, const ReplicaId&) = default;

  // "0a1b2c3d/7": the first 4 identity bytes in hex and the incarnation, for traces.
  std::string to_string() const;

  // The one binary form of a replica id, used on disk and on the wire: the identity bytes, then
  // the incarnation as a little-endian u32.
  static constexpr std::size_t kEncodedBytes = kIdentityBytes + 4;
  std::string encode() const;
  // False unless `in` is exactly kEncodedBytes long.
  [[nodiscard]] static bool decode(std::string_view in, ReplicaId& out) noexcept;
};

// A replica id whose identity is `n` in little-endian in the first 8 bytes. For tests, the
// simulator and benchmarks; real ids come from identity keys.
ReplicaId replica_for_testing(std::uint64_t n, std::uint32_t incarnation = 0) noexcept;

struct Dot {
  ReplicaId replica;
  std::uint64_t counter = 0;  // >= 1 in any valid dot

  friend auto operator<=>(const Dot&, const Dot&) = default;
  friend bool operator==(const Dot&, const Dot&) = default;

  std::string to_string() const;
};

}  // namespace shoal::crdt

// sink/segment.hpp: the segment, the sink's versioned, checksummed unit of cold data.
//
// Role: the sink stores a collection's cold records as segments, one object each. A segment
// holds records with their CRDT entries exactly as the node stores them (dot, hybrid logical
// clock, payload bytes; the payload is opaque here) and a BLAKE2b-256 digest of each payload, so
// an evicted record's stub can be matched and re-filled from it. docs/sink-format.md is the
// byte-level specification; this header and that page must agree.
//
// Decoding is strict: every length is bounded by SegmentLimits before it is used, the trailer
// checksum (XXH64) is checked before anything else is read, ids must be strictly ascending,
// each record's dots strictly ascending, every payload digest must match, and nothing may follow
// the trailer. Statuses: kCorruption/kBadMagic, kUnimplemented/kVersionMismatch,
// kCorruption/kChecksumMismatch (the trailer, or a payload digest naming the record),
// kCorruption/kTruncated, kCorruption (ordering, counts, flags), kInvalidArgument/kTooLarge
// (a length above a limit, naming the limit and the value). encode() checks the same rules.
//
// Thread rules: pure functions. Ownership: values.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"

namespace shoal::sink {

inline constexpr std::string_view kSegmentMagic = "SHOALSEG";
inline constexpr std::uint16_t kSegmentVersion = 1;
inline constexpr std::size_t kReplicaBytes = 20;
inline constexpr std::size_t kPayloadDigestBytes = 32;

using ReplicaBytes = std::array<std::uint8_t, kReplicaBytes>;
using PayloadDigest = std::array<std::uint8_t, kPayloadDigestBytes>;

struct SegmentDot {
  ReplicaBytes replica{};
  std::uint64_t counter = 0;  // >= 1
  friend auto operator<=>(const SegmentDot&, const SegmentDot&) = default;
};

struct SegmentEntry {
  SegmentDot dot;
  std::uint64_t hlc = 0;
  std::string payload;  // the node's encoded payload, opaque here
  friend bool operator==(const SegmentEntry&, const SegmentEntry&) = default;
};

struct SegmentRecord {
  std::string id;
  std::vector<SegmentEntry> entries;  // sorted by dot, at least one
  friend bool operator==(const SegmentRecord&, const SegmentRecord&) = default;
};

struct Segment {
  std::string collection;
  std::vector<SegmentRecord> records;  // sorted by id (bytewise), unique
  friend bool operator==(const Segment&, const Segment&) = default;
};

struct SegmentLimits {
  std::size_t max_collection_bytes = 255;
  std::size_t max_id_bytes = 1024;
  std::size_t max_entries_per_record = 1024;
  std::size_t max_payload_bytes = std::size_t{16} << 20;
  std::size_t max_records = std::size_t{1} << 20;
  std::size_t max_segment_bytes = std::size_t{64} << 20;
};

// BLAKE2b-256 (libsodium crypto_generichash, no key) of a payload.
PayloadDigest payload_digest(std::string_view payload);

[[nodiscard]] Result<std::string> encode_segment(const Segment& segment,
                                                 const SegmentLimits& limits = {});
[[nodiscard]] Result<Segment> decode_segment(std::string_view bytes,
                                             const SegmentLimits& limits = {});

// The collection a segment names, read from its header without decoding the rest (so the sink
// checks a member's access before it parses the bytes). Checks only the header's bounds and the
// magic; decode_segment checks the rest. Statuses: kCorruption/kTruncated, kCorruption/kBadMagic.
[[nodiscard]] Result<std::string> segment_collection(std::string_view segment_bytes);

}  // namespace shoal::sink

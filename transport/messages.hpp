// transport/messages.hpp: the sync protocol's messages as plain C++ values.
//
// Role: what peers say to each other (docs/protocol.md). The sync engine (node/core) builds and
// consumes these structs; transport/codec.hpp turns them into Cap'n Proto bytes and back
// (transport/sync.capnp), enforcing size, nesting and traversal limits. CRDT payloads travel as
// opaque byte strings encoded by crdt/codec (deltas, contexts); transport knows nothing of CRDTs.
// Replica ids travel as 20 bytes: the 16-byte identity and the little-endian u32 incarnation.
// Thread rules: values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace shoal::transport {

inline constexpr std::uint32_t kProtocolVersion = 1;

// A collection's parameters, so a peer can create a collection it has not seen yet.
struct CollectionSpecWire {
  std::string name;
  std::uint32_t dimension = 0;
  std::uint8_t metric = 0;  // 0 l2, 1 ip, 2 cosine (metric_to_wire_byte, node/core/record.hpp)
  std::uint32_t m = 16;
  std::uint32_t ef_construction = 200;
  std::uint32_t ef_search = 64;
  bool quantize = false;
  float quant_min = 0.0f;
  float quant_max = 0.0f;
  friend bool operator==(const CollectionSpecWire&, const CollectionSpecWire&) = default;
};

// The highest counter of the receiver's dots the sender holds in one collection ("" for the
// catalogue), and the incarnation of the receiver's replica it counts (as the receiver last
// announced it). No incarnation: a sender from before the field, read as the receiver's current.
struct CounterWire {
  std::string collection;
  std::uint64_t counter = 0;
  std::optional<std::uint32_t> incarnation;
  friend bool operator==(const CounterWire&, const CounterWire&) = default;
};

// Sent when a peer comes up and on every repair round: who I am, and my collections (every
// collection I hold storage for, dropped ones included, so repair can carry their deletes).
struct Hello {
  std::string replica;  // 20 bytes
  std::uint32_t protocol_version = kProtocolVersion;
  std::vector<CollectionSpecWire> collections;
  // The replicated catalogue's whole state (crdt::encode_delta of an observed-remove map from
  // collection name to spec): which collections exist. Empty from a sender that has none.
  std::string catalogue;
  // Per collection, the highest counter of the receiver's replica id (as it last announced it)
  // that the sender holds. A receiver whose own counter is lower was restored from an older copy
  // of itself and takes a new incarnation before it issues another dot (docs/crdt.md).
  std::vector<CounterWire> your_counters;
  // The sender's whole revocation set (security/revocation.hpp's wire form), or empty. A node
  // whose set grew sends a Hello to every up peer at once.
  std::string revocations;
  friend bool operator==(const Hello&, const Hello&) = default;
};

// A delta for one collection; an empty collection name carries a delta of the catalogue.
struct DeltaItem {
  std::string collection;
  std::string delta;  // crdt::encode_delta bytes
  friend bool operator==(const DeltaItem&, const DeltaItem&) = default;
};

// The sender's delta-buffer entries (first_seq, last_seq] for this peer (entries the peer does
// not need may be left out); the receiver applies them all, then acknowledges last_seq.
struct DeltaBatch {
  std::uint64_t first_seq = 0;  // exclusive
  std::uint64_t last_seq = 0;   // inclusive
  std::vector<CollectionSpecWire> specs;  // the collections the items name
  std::vector<DeltaItem> items;
  friend bool operator==(const DeltaBatch&, const DeltaBatch&) = default;
};

// "I have durably applied your buffer up to last_seq."
struct DeltaAck {
  std::uint64_t last_seq = 0;
  friend bool operator==(const DeltaAck&, const DeltaAck&) = default;
};

// Repair (digest path), pulled by the receiver of the digests. Asks for the children digests of
// the nodes `indices` at `level` of the sender's digest tree (level 0 is the root).
struct DigestQuery {
  std::uint64_t session = 0;
  std::string collection;
  std::uint32_t level = 0;
  std::vector<std::uint32_t> indices;
  friend bool operator==(const DigestQuery&, const DigestQuery&) = default;
};

struct DigestReply {
  std::uint64_t session = 0;
  std::string collection;
  bool has_collection = false;
  std::uint32_t level = 0;               // the level of the queried nodes
  std::vector<std::uint32_t> indices;    // the queried nodes
  std::vector<std::uint64_t> digests;    // their children, in order (fanout per index)
  std::uint64_t root = 0;
  std::uint32_t leaf_bits = 0;
  std::uint32_t fanout_bits = 0;
  // The sender's causal context at this reply's snapshot (crdt::encode_context); the receiver
  // merges the context of the session's FIRST reply once every differing bucket is reconciled.
  std::string context;
  friend bool operator==(const DigestReply&, const DigestReply&) = default;
};

struct BucketQuery {
  std::uint64_t session = 0;
  std::string collection;
  std::vector<std::uint32_t> buckets;
  friend bool operator==(const BucketQuery&, const BucketQuery&) = default;
};

// All the sender's records of `buckets`, and its context, from one snapshot (crdt::encode_delta).
struct BucketReply {
  std::uint64_t session = 0;
  std::string collection;
  std::vector<std::uint32_t> buckets;
  std::string slice;
  friend bool operator==(const BucketReply&, const BucketReply&) = default;
};

using Message = std::variant<Hello, DeltaBatch, DeltaAck, DigestQuery, DigestReply, BucketQuery, BucketReply>;

// A short name for traces: "hello", "delta_batch", ...
const char* message_name(const Message& m) noexcept;

}  // namespace shoal::transport

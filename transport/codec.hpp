// transport/codec.hpp: the sync messages (transport/messages.hpp) to Cap'n Proto bytes and back.
//
// Role: the one place where sync messages become bytes (transport/sync.capnp, specified in
// docs/protocol.md). The simulator and, later, the Asio sessions pass every message through these
// two functions. Bytes from peers are hostile: decode() bounds the work and memory it spends by
// DecodeLimits, never crashes, asserts or throws on any input, and returns a Status instead.
// This header does not expose Cap'n Proto: users need neither capnp headers nor generated code.
//
// Wire form: one Cap'n Proto message in the standard flat-array serialization (segment table,
// then segments), whose root is an Envelope. Framing and encryption are added around it by the
// session layer (security/channel.hpp; not wired yet); they are not part of these bytes.
// Thread rules: pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.hpp"
#include "transport/messages.hpp"

namespace shoal::transport {

// Every bound decode() enforces. The defaults suit the sync protocol; a caller may tighten them
// (e.g. a session before the peer is trusted) or loosen them (a larger batch), keeping
// traversal_limit_words at about twice the message words.
struct DecodeLimits {
  // The whole encoded message, segment table included.
  std::size_t max_message_bytes = std::size_t{16} << 20;
  // Cap'n Proto's read budget: words of the message that may be read, counted again each time
  // they are read (stops amplification through shared pointers and zero-sized list elements).
  std::uint64_t traversal_limit_words = std::uint64_t{4} << 20;
  // Cap'n Proto's pointer depth limit (struct and list pointers count; blobs do not). Our
  // deepest path, root -> Envelope -> DeltaBatch -> items -> DeltaItem, needs 4 (a test pins it).
  int nesting_limit = 16;
  // DigestQuery.indices, DigestReply.indices, BucketQuery.buckets, BucketReply.buckets.
  std::size_t max_indices = std::size_t{1} << 20;
  // DigestReply.digests.
  std::size_t max_digests = std::size_t{1} << 20;
  // DeltaBatch.items.
  std::size_t max_items = 100000;
  // Hello.collections, Hello.yourCounters and DeltaBatch.specs.
  std::size_t max_specs = 4096;
  // Every collection name (specs, items, queries, replies).
  std::size_t max_collection_name_bytes = 64;
  // Each CRDT payload: DeltaItem.delta, DigestReply.context, BucketReply.slice.
  std::size_t max_payload_bytes = std::size_t{16} << 20;
};

// Hello.replica is exactly this many bytes (the 16-byte identity and the u32 incarnation).
inline constexpr std::size_t kReplicaWireBytes = 20;

// Encodes `message` as one flat-array Cap'n Proto message. Never fails. The encoder does not
// check DecodeLimits: a sender keeps its messages within the limits its peers decode with (the
// sync engine sizes its batches), or the peer rejects them. Deterministic: equal messages give
// equal bytes.
[[nodiscard]] std::string encode(const Message& message);

// Decodes bytes made by encode(). `bytes` may have any alignment and any length (a copy into an
// aligned buffer is made when needed). Statuses:
//   kTooLarge (invalid argument)  the input is above max_message_bytes, or a list, name or
//                                 payload is above its limit, or the traversal or nesting limit
//                                 is exceeded; the message names the limit and the value seen;
//   kTruncated (corruption)       the input is shorter than its segment table says (empty input
//                                 included);
//   kMalformed (invalid argument) the bytes are not a well-formed Envelope: a bad segment table,
//                                 trailing bytes after the message, an out-of-bounds or wrongly
//                                 typed pointer, a Hello replica that is not 20 bytes;
//   kUnimplemented                the Envelope carries a message kind this build does not know
//                                 (a newer peer);
//   kOverloaded                   memory ran out while decoding.
// The returned message owns its data (nothing points into `bytes`).
[[nodiscard]] Result<Message> decode(std::string_view bytes, const DecodeLimits& limits = {});

}  // namespace shoal::transport

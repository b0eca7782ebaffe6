// node/core/node_format.hpp: every on-disk encoding of a node's store, in one place
// (docs/node-format.md is its specification; a change here is a format change).
//
// Role: keys and values of the store's tables (catalogue, records, contexts, deltas, peers, meta)
// and the replicated catalogue's entries. Everything else in node/core reads and writes the store
// through these functions. Decoders treat their input as untrusted: they check every length and
// version and return kCorruption naming the key, never assert.
// Thread rules: pure functions and values.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "common/status.hpp"
#include "common/time.hpp"
#include "crdt/causal_context.hpp"
#include "crdt/digest.hpp"
#include "crdt/hlc.hpp"
#include "crdt/or_map.hpp"
#include "crdt/entries.hpp"
#include "crdt/replica.hpp"
#include "node/core/record.hpp"
#include "node/core/spec.hpp"

namespace shoal::node {

namespace format {

// --- meta keys ---
inline constexpr std::string_view kReplicaKey = "node.replica";
inline constexpr std::string_view kNextCollectionKey = "node.next_collection_id";
// The replicated catalogue (an observed-remove map from collection name to encoded spec), stored
// whole as crdt::encode_delta of its state.
inline constexpr std::string_view kCatalogueKey = "node.catalogue";
// The replicated revocation set (node/core/replicated_set.hpp), stored whole as its encoding.
inline constexpr std::string_view kRevocationsKey = "node.revocations";
// The highest delta-buffer sequence ever trimmed (encode_u64_be), written in each trim's
// transaction: a buffer trimmed empty still knows its last sequence at the next open, so a
// sequence is never issued twice (peers' positions refer to them). Absent: nothing was trimmed.
inline constexpr std::string_view kDeltaTrimmedKey = "node.delta_trimmed_through";
// Says every collection's delta-buffer entry is a skeleton (u8 1; schema version 4). Absent in
// data directories written before: Node::open rewrites their entries (DeltaBuffer::migrate).
inline constexpr std::string_view kBufferSkeletonsKey = "node.buffer_skeletons";
// Delta-buffer entries of the catalogue carry this collection id, which no collection takes (ids
// start at 1).
inline constexpr std::uint32_t kCatalogueCid = 0;
// A handful of collections: 16 buckets are plenty (the catalogue is never repaired by digest; it
// travels whole in every Hello).
inline constexpr crdt::DigestConfig kCatalogueDigestConfig{4, 2};

// The repair digest shape of every collection: 65,536 leaf buckets (about 1.5 records per bucket
// at 100,000 records, so a 1% divergence moves ~1.5% of the records), fan-out 16. Part of the
// sync protocol: both peers must use the same (DigestReply carries it and is checked).
inline constexpr crdt::DigestConfig kDigestConfig{16, 4};
static_assert(kDigestConfig.leaf_bits <= 16, "the bucket must fit the key's 2 bytes");

// --- little helpers ---
template <typename T>
inline void put_le(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
template <typename T>
[[nodiscard]] inline bool get_le(std::string_view& in, T& v) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(&v, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}
std::string u32_be(std::uint32_t v);
inline std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_view(const crdt::Bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline crdt::Bytes to_bytes(std::string_view s) { return crdt::Bytes(s.begin(), s.end()); }

// --- records table: key (u32be collection id, u16be repair bucket, id) ---
// Records are keyed so that one repair bucket of one collection is one contiguous range scan.
inline constexpr std::size_t kRecordKeyPrefix = 4 + 2;
std::string bucket_prefix(std::uint32_t cid, std::uint32_t bucket);
std::string record_key(std::uint32_t cid, std::string_view id);
inline std::string collection_prefix(std::uint32_t cid) { return u32_be(cid); }
inline std::string_view id_of_record_key(std::string_view key) { return key.substr(kRecordKeyPrefix); }

struct StoredRecord {
  std::uint64_t label = 0;  // the index label; 0: none yet
  crdt::Entries entries;
};
std::string encode_record(std::uint64_t label, const crdt::Entries& entries);
[[nodiscard]] Result<StoredRecord> decode_record(std::string_view in, std::string_view key_for_errors);
// The record payload (vector, metadata, model) of one entry; for an evicted record's stub
// (is_stub_payload), its metadata and model with an empty vector.
[[nodiscard]] Result<RecordValue> decode_entry_payload(const crdt::Entry& e);

// --- catalogue table: name -> spec with the local collection id ---
std::string encode_spec(const CollectionSpec& s, std::uint32_t id);
[[nodiscard]] Result<std::pair<CollectionSpec, std::uint32_t>> decode_spec(std::string_view name,
                                                                           std::string_view in);

// --- contexts table: u32be collection id -> the collection's state besides its records ---
struct CollectionState {
  std::uint64_t next_label = 1;
  crdt::Hlc hlc;  // the last hybrid clock this collection persisted
  crdt::CausalContext ctx;
};
std::string encode_collection_state(std::uint64_t next_label, crdt::Hlc hlc, const crdt::CausalContext& ctx);
[[nodiscard]] Result<CollectionState> decode_collection_state(std::string_view in, std::string_view key_for_errors);

// --- open state: what opening a collection needs besides its index (docs/node-format.md,
// "Open state files"; D59), saved beside the index snapshot so that open reads no record ---
struct OpenStateHeader {
  std::uint32_t cid = 0;
  std::uint64_t covered_position = 0;  // the delta buffer's last sequence when it was saved
  std::uint64_t next_label = 1;
  crdt::Hlc max_clock;  // the largest clock of any entry the collection held
  std::uint64_t docs = 0;
};
struct OpenStateDoc {
  std::uint64_t label = 0;
  std::uint64_t digest = 0;  // crdt::record_digest of the record's entries
  bool evicted = false;
  std::string id;
  std::string model;
  Metadata metadata;
};
// An encoder that appends docs one by one (ascending labels), so that no second copy of the
// collection's state is built first.
class OpenStateWriter {
 public:
  OpenStateWriter(std::uint32_t cid, std::uint64_t covered_position, std::uint64_t next_label, crdt::Hlc max_clock,
                  std::uint64_t docs);
  void add(std::uint64_t label, std::uint64_t digest, bool evicted, std::string_view id, std::string_view model,
           const Metadata& metadata);
  // The file's bytes, with its checksum; the writer is spent.
  std::string finish();

 private:
  std::string out_;
  std::size_t count_at_ = 0;
  std::uint64_t expected_ = 0, added_ = 0;
};
// Checks the magic, version, checksum and every length, then calls `each` for every doc in
// order. kCorruption (naming `path_for_errors`) for anything malformed; kVersionMismatch for
// another version. `each` may stop the decode by returning an error, which is returned.
[[nodiscard]] Result<OpenStateHeader> decode_open_state(std::string_view in, std::string_view path_for_errors,
                                                        const std::function<Status(OpenStateDoc&&)>& each);

// --- deltas table: u64be sequence -> one delta-buffer entry ---
struct BufferEntry {
  std::uint32_t cid = 0;
  bool has_origin = false;
  bool origin_hot = false;
  // The delta is a skeleton: its entries keep their dots and clocks but not their payloads, which
  // the record store holds (docs/crdt.md, "Delta-buffer entries without payloads"). Send only
  // what DeltaBuffer::delta_of / delta_bytes rebuild from the record's current state.
  bool skeleton = false;
  crdt::ReplicaId origin;
  std::string_view stored;  // the encode_delta bytes as stored; views the value it was decoded from
};
// `origin` null: a local change. `skeleton`: the delta's payloads are left out (flag bit 2).
std::string encode_buffer_entry(std::uint32_t cid, const crdt::ReplicaId* origin, bool origin_hot,
                                const crdt::Delta& delta, bool skeleton);
[[nodiscard]] Result<BufferEntry> decode_buffer_entry(std::string_view v);

// --- peers table: replica id -> progress ---
struct PeerRecord {
  Tier tier = Tier::kHot;
  std::uint64_t acked = 0;
  WallTime last_seen;
};
std::string encode_peer(const PeerRecord& p);
[[nodiscard]] Result<PeerRecord> decode_peer(std::string_view v);

// --- meta ---
std::string encode_u32(std::uint32_t v);
[[nodiscard]] Result<std::uint32_t> decode_u32(std::string_view v, std::string_view key_for_errors);

// --- the replicated catalogue (meta/node.catalogue) ---
std::string encode_catalogue(const crdt::ORMap& catalogue);
[[nodiscard]] Result<crdt::ORMap> decode_catalogue(std::string_view in);
// An ORMap from a whole state in Delta form (ORMap::to_delta, which breaks the delta invariant):
// the restricted join over every bucket, then the context.
crdt::ORMap ormap_from_state(const crdt::Delta& state, crdt::DigestConfig config);

}  // namespace format
}  // namespace shoal::node

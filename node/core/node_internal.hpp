// node/core/node_internal.hpp: the node core's private pieces shared by node.cpp (local data
// path) and sync.cpp (the sync engine): key and value encodings of docs/node-format.md, the
// per-collection in-memory state, and the pending effects of a write transaction.
// Not a public header: included only by node/core/*.cpp.
// Thread rules: as Node (guarded by its lock).
#pragma once

#include <cstring>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "crdt/codec.hpp"
#include "crdt/digest.hpp"
#include "index/hnsw_index.hpp"
#include "node/core/node.hpp"

namespace shoal::node {

using store::Table;

// A collection spec an app or a peer may create: name, dimension and index parameters in limits.
[[nodiscard]] Status validate_spec(const CollectionSpec& spec, const Limits& limits);

namespace detail {

constexpr std::uint8_t kCatalogueVersion = 1;
constexpr std::uint8_t kRecordVersion = 1;
constexpr std::string_view kReplicaKey = "node.replica";
constexpr std::string_view kNextCollectionKey = "node.next_collection_id";
// The replicated catalogue (an observed-remove map from collection name to encoded spec), stored
// whole under this meta key as crdt::encode_delta of its state. Its deltas sit in the delta
// buffer under collection id 0, which no collection takes (ids start at 1).
constexpr std::string_view kCatalogueKey = "node.catalogue";
constexpr std::uint32_t kCatalogueCid = 0;
// A handful of collections: 16 buckets are plenty (the catalogue is never repaired by digest; it
// travels whole in every Hello).
constexpr crdt::DigestConfig kCatalogueDigestConfig{4, 2};

template <typename T>
inline void put_le(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.append(b, sizeof(T));
}
template <typename T>
inline bool get_le(std::string_view& in, T& v) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(&v, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}

inline std::string u32_be(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  return s;
}

// Records are keyed (collection id, repair bucket, record id), all big-endian, so one repair
// bucket of one collection is one contiguous range scan (docs/storage.md).
constexpr std::size_t kRecordKeyPrefix = 4 + 2;
// The repair digest shape of every collection: 65,536 leaf buckets (about 1.5 records per bucket
// at 100,000 records, so a 1% divergence moves ~1.5% of the records), fan-out 16. Part of the
// sync protocol: both peers must use the same (DigestReply carries it and is checked).
constexpr crdt::DigestConfig kDigestConfig{16, 4};
static_assert(kDigestConfig.leaf_bits <= 16, "the bucket must fit the key's 2 bytes");

inline std::string bucket_prefix(std::uint32_t cid, std::uint32_t bucket) {
  std::string k = u32_be(cid);
  k += static_cast<char>((bucket >> 8) & 0xff);
  k += static_cast<char>(bucket & 0xff);
  return k;
}

inline std::string record_key(std::uint32_t cid, std::string_view id) {
  std::string k = bucket_prefix(cid, crdt::bucket_of(id, kDigestConfig.leaf_bits));
  k += id;
  return k;
}

// A collection's durable state besides its records, written with every change to it (one small
// value, so a write touches few pages): u8 version | u64 next label | u64 last HLC | context.
constexpr std::uint8_t kCollectionStateVersion = 1;

inline std::string encode_collection_state(std::uint64_t next_label, crdt::Hlc hlc,
                                    const crdt::CausalContext& ctx) {
  crdt::Bytes b;
  crdt::encode_context(ctx, b);
  std::string out;
  out.reserve(17 + b.size());
  out += static_cast<char>(kCollectionStateVersion);
  std::uint64_t raw = hlc.raw();
  out.append(reinterpret_cast<const char*>(&next_label), 8);
  out.append(reinterpret_cast<const char*>(&raw), 8);
  out.append(reinterpret_cast<const char*>(b.data()), b.size());
  return out;
}

inline std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_view(const crdt::Bytes& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

inline index::IndexParams index_params(const CollectionSpec& s) {
  index::IndexParams p;
  p.dimension = s.dimension;
  p.metric = to_index_metric(s.metric);
  p.m = s.m;
  p.ef_construction = s.ef_construction;
  p.ef_search = s.ef_search;
  if (s.quantize) {
    p.quantization = index::Quantization::kInt8;
    p.quant_min = s.quant_min;
    p.quant_max = s.quant_max;
  }
  return p;
}

inline std::string encode_spec(const CollectionSpec& s, std::uint32_t id) {
  std::string out;
  put_le<std::uint8_t>(out, kCatalogueVersion);
  put_le<std::uint32_t>(out, id);
  put_le<std::uint32_t>(out, s.dimension);
  put_le<std::uint8_t>(out, static_cast<std::uint8_t>(s.metric));
  put_le<std::uint32_t>(out, s.m);
  put_le<std::uint32_t>(out, s.ef_construction);
  put_le<std::uint32_t>(out, s.ef_search);
  put_le<std::uint8_t>(out, s.quantize ? 1 : 0);
  put_le<float>(out, s.quant_min);
  put_le<float>(out, s.quant_max);
  return out;
}

inline Result<std::pair<CollectionSpec, std::uint32_t>> decode_spec(std::string_view name,
                                                             std::string_view in) {
  CollectionSpec s;
  s.name = std::string(name);
  std::uint8_t version = 0, metric = 0, quantize = 0;
  std::uint32_t id = 0;
  if (!get_le(in, version) || version != kCatalogueVersion || !get_le(in, id) ||
      !get_le(in, s.dimension) || !get_le(in, metric) || metric > 2 || !get_le(in, s.m) ||
      !get_le(in, s.ef_construction) || !get_le(in, s.ef_search) || !get_le(in, quantize) ||
      quantize > 1 || !get_le(in, s.quant_min) || !get_le(in, s.quant_max) || !in.empty()) {
    return Status(Code::kCorruption, "undecodable collection entry", "catalogue/" + s.name);
  }
  s.metric = static_cast<Metric>(metric);
  s.quantize = quantize == 1;
  return std::pair{s, id};
}

// An ORMap from a whole state in Delta form (ORMap::to_delta, which breaks the delta invariant):
// the restricted join over every bucket, then the context.
inline crdt::ORMap ormap_from_state(const crdt::Delta& state, crdt::DigestConfig config) {
  crdt::ORMap m(config);
  std::vector<std::uint32_t> all(std::size_t{1} << config.leaf_bits);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint32_t>(i);
  (void)m.join_repair(state, all);
  m.merge_context(state.context);
  return m;
}

inline crdt::Bytes to_bytes(std::string_view s) { return crdt::Bytes(s.begin(), s.end()); }

inline std::string encode_record(std::uint64_t label, const crdt::Entries& entries) {
  crdt::Bytes b;
  crdt::encode_entries(entries, b);
  std::string out;
  out.reserve(9 + b.size());
  put_le<std::uint8_t>(out, kRecordVersion);
  put_le<std::uint64_t>(out, label);
  out += as_view(b);
  return out;
}

struct StoredRecord {
  std::uint64_t label = 0;
  crdt::Entries entries;
};

inline Result<StoredRecord> decode_record(std::string_view in, std::string_view key_for_errors) {
  StoredRecord r;
  std::uint8_t version = 0;
  if (!get_le(in, version) || version != kRecordVersion || !get_le(in, r.label) || r.label == 0) {
    return Status(Code::kCorruption, "undecodable record header", std::string(key_for_errors));
  }
  auto entries = crdt::decode_entries(as_bytes(in));
  if (!entries.ok()) return entries.status().with_context(std::string(key_for_errors));
  r.entries = std::move(entries).value();
  return r;
}

inline Result<RecordValue> decode_entry_payload(const crdt::Entry& e) {
  return decode_payload(as_view(e.payload));
}

}  // namespace detail

// Per-collection in-memory state; all of it is derived from the store.
struct Node::Collection {
  CollectionSpec spec;
  std::uint32_t id = 0;
  crdt::CausalContext ctx;
  crdt::DigestTree digests{detail::kDigestConfig};
  std::unique_ptr<index::HnswIndex> index;
  struct Doc {
    std::string id;  // empty: no live record has this label
    Metadata metadata;
    std::string model;
  };
  std::vector<Doc> docs;  // by label (label 0 unused)
  std::unordered_map<std::string, std::uint64_t> labels;  // lookups only; never iterated
  std::uint64_t next_label = 1;
  std::uint64_t live = 0;

  Doc& doc(std::uint64_t label) {
    if (docs.size() <= label) docs.resize(label + 1);
    return docs[label];
  }
  std::string snapshot_path(const std::string& dir) const {
    return dir + "/collection-" + std::to_string(id) + ".hnsw";
  }
};

// Effects of a write transaction, applied to memory only after it commits.
struct Node::Pending {
  struct Change {
    std::string id;
    std::uint64_t label = 0;
    crdt::Entries before;
    crdt::Entries after;
  };
  crdt::CausalContext ctx;
  std::vector<Change> changes;
  std::uint64_t next_label = 1;
  bool state_dirty = false;  // the collection state (context, label counter) must be written
};

// Where the delta buffer stands inside one write transaction (shared by every collection the
// transaction touches); copied back to the node after commit.
struct Node::BufferCursor {
  std::uint64_t seq = 0;     // the last sequence written
  std::uint64_t oldest = 1;  // the oldest sequence still present
};

// Who a delta came from: not sent back to that peer, and (from a hot peer) not relayed to other
// hot peers, which hear it from the origin directly.
struct Node::Origin {
  crdt::ReplicaId peer;
  bool hot = false;
};

namespace detail {

// Delta-buffer entry: u32 collection id | u8 flags (bit 0: has origin, bit 1: origin is hot) |
// [20-byte origin replica] | crdt::encode_delta bytes.
inline std::string encode_replica(const crdt::ReplicaId& r) {
  std::string out(reinterpret_cast<const char*>(r.identity.data()), r.identity.size());
  put_le<std::uint32_t>(out, r.incarnation);
  return out;
}

inline bool decode_replica(std::string_view in, crdt::ReplicaId& out) {
  if (in.size() != crdt::ReplicaId::kIdentityBytes + 4) return false;
  std::memcpy(out.identity.data(), in.data(), crdt::ReplicaId::kIdentityBytes);
  std::memcpy(&out.incarnation, in.data() + crdt::ReplicaId::kIdentityBytes, 4);
  return true;
}

struct BufferEntry {
  std::uint32_t cid = 0;
  bool has_origin = false;
  bool origin_hot = false;
  crdt::ReplicaId origin;
  std::string_view delta;  // views the value it was decoded from
};

inline Result<BufferEntry> decode_buffer_entry(std::string_view v) {
  BufferEntry e;
  std::uint8_t flags = 0;
  if (!get_le(v, e.cid) || !get_le(v, flags) || flags > 3) {
    return Status(Code::kCorruption, "bad delta buffer entry header");
  }
  e.has_origin = (flags & 1) != 0;
  e.origin_hot = (flags & 2) != 0;
  if (e.has_origin) {
    if (v.size() < 20 || !decode_replica(v.substr(0, 20), e.origin)) {
      return Status(Code::kCorruption, "bad delta buffer entry origin");
    }
    v.remove_prefix(20);
  }
  e.delta = v;
  return e;
}

}  // namespace detail


}  // namespace shoal::node

namespace shoal::node {

// Per-peer sync state. acked and last_seen are persisted (peers table); the rest is transient.
struct Node::PeerState {
  crdt::ReplicaId id;
  Tier tier = Tier::kHot;
  bool up = false;
  std::uint64_t acked = 0;
  std::uint64_t persisted_acked = 0;
  bool durable = false;  // the peers table holds an entry for this peer
  WallTime last_seen;
  MonoTime last_persist;
  bool in_flight = false;  // a delta batch awaits its acknowledgement
  std::uint64_t in_flight_last = 0;
  MonoTime sent_at;
  MonoTime next_push;    // warm peers: the next scheduled push
  MonoTime next_repair;  // the next digest comparison with this peer
};

// One repair session pulling a collection from a peer (docs/protocol.md, "Repair").
struct Node::RepairSession {
  std::uint64_t id = 0;
  crdt::ReplicaId peer;
  std::string collection;
  // The context of the sender's first (earliest) reply: merged once every differing bucket is
  // reconciled, never earlier, and not at all if the session is abandoned (DESIGN.md 4).
  std::optional<crdt::CausalContext> first_context;
  // Queries sent and not yet answered, by query number (the low bits of the message's session
  // field), with the digest level each asked about. A reply is accepted once, and only for a
  // query in this map: duplicated or stale replies from the network are ignored, so the session
  // can never finish (and merge first_context) while a differing bucket is still unanswered.
  std::map<std::uint32_t, std::uint32_t> outstanding;
  std::uint32_t next_query = 0;
  std::vector<std::uint32_t> buckets;  // differing buckets not yet requested
  MonoTime last_activity;
};

}  // namespace shoal::node

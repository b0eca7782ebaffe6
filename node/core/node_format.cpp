#include "node/core/node_format.hpp"

#include <vector>

#include "common/assert.hpp"
#include "common/hash.hpp"
#include "common/log.hpp"
#include "crdt/codec.hpp"

namespace shoal::node::format {

namespace {
constexpr std::uint8_t kCatalogueVersion = 1;
constexpr std::uint8_t kRecordVersion = 1;
constexpr std::uint8_t kCollectionStateVersion = 1;
constexpr std::uint8_t kPeerVersion = 1;
}  // namespace

std::string u32_be(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((v >> (24 - 8 * i)) & 0xff);
  return s;
}

std::string bucket_prefix(std::uint32_t cid, std::uint32_t bucket) {
  std::string k = u32_be(cid);
  k += static_cast<char>((bucket >> 8) & 0xff);
  k += static_cast<char>(bucket & 0xff);
  return k;
}

std::string record_key(std::uint32_t cid, std::string_view id) {
  std::string k = bucket_prefix(cid, crdt::bucket_of(id, kDigestConfig.leaf_bits));
  k += id;
  return k;
}

std::string encode_record(std::uint64_t label, const crdt::Entries& entries) {
  crdt::Bytes b;
  crdt::encode_entries(entries, b);
  std::string out;
  out.reserve(9 + b.size());
  put_le<std::uint8_t>(out, kRecordVersion);
  put_le<std::uint64_t>(out, label);
  out += as_view(b);
  return out;
}

Result<StoredRecord> decode_record(std::string_view in, std::string_view key_for_errors) {
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

Result<RecordValue> decode_entry_payload(const crdt::Entry& e) {
  if (!is_stub_payload(as_view(e.payload))) return decode_payload(as_view(e.payload));
  SHOAL_ASSIGN_OR_RETURN(auto stub, decode_stub_payload(as_view(e.payload)));
  return std::move(stub.value);
}

std::string encode_spec(const CollectionSpec& s, std::uint32_t id) {
  std::string out;
  put_le<std::uint8_t>(out, kCatalogueVersion);
  put_le<std::uint32_t>(out, id);
  put_le<std::uint32_t>(out, s.dimension);
  put_le<std::uint8_t>(out, metric_to_catalogue_byte(s.metric));
  put_le<std::uint32_t>(out, s.m);
  put_le<std::uint32_t>(out, s.ef_construction);
  put_le<std::uint32_t>(out, s.ef_search);
  put_le<std::uint8_t>(out, s.quantize ? 1 : 0);
  put_le<float>(out, s.quant_min);
  put_le<float>(out, s.quant_max);
  return out;
}

Result<std::pair<CollectionSpec, std::uint32_t>> decode_spec(std::string_view name, std::string_view in) {
  CollectionSpec s;
  s.name = std::string(name);
  std::uint8_t version = 0, metric = 0, quantize = 0;
  std::uint32_t id = 0;
  if (!get_le(in, version) || version != kCatalogueVersion || !get_le(in, id) || !get_le(in, s.dimension) ||
      !get_le(in, metric) || !metric_from_catalogue_byte(metric) || !get_le(in, s.m) || !get_le(in, s.ef_construction) ||
      !get_le(in, s.ef_search) || !get_le(in, quantize) || quantize > 1 || !get_le(in, s.quant_min) ||
      !get_le(in, s.quant_max) || !in.empty()) {
    return Status(Code::kCorruption, "undecodable collection entry", "catalogue/" + s.name);
  }
  s.metric = *metric_from_catalogue_byte(metric);
  s.quantize = quantize == 1;
  return std::pair{s, id};
}

std::string encode_collection_state(std::uint64_t next_label, crdt::Hlc hlc, const crdt::CausalContext& ctx) {
  crdt::Bytes b;
  crdt::encode_context(ctx, b);
  std::string out;
  out.reserve(17 + b.size());
  put_le<std::uint8_t>(out, kCollectionStateVersion);
  put_le<std::uint64_t>(out, next_label);
  put_le<std::uint64_t>(out, hlc.raw());
  out += as_view(b);
  return out;
}

Result<CollectionState> decode_collection_state(std::string_view v, std::string_view key_for_errors) {
  CollectionState st;
  std::uint8_t version = 0;
  std::uint64_t hlc = 0;
  if (!get_le(v, version) || version != kCollectionStateVersion || !get_le(v, st.next_label) || !get_le(v, hlc)) {
    return Status(Code::kCorruption, "undecodable collection state", std::string(key_for_errors));
  }
  st.hlc = crdt::Hlc::from_raw(hlc);
  auto ctx = crdt::decode_context(as_bytes(v));
  if (!ctx.ok()) return ctx.status().with_context(std::string(key_for_errors));
  st.ctx = std::move(ctx).value();
  return st;
}

// u32 collection id | u8 flags (bit 0: has origin, bit 1: origin is hot, bit 2: skeleton) |
// [origin replica] | crdt::encode_delta bytes.
std::string encode_buffer_entry(std::uint32_t cid, const crdt::ReplicaId* origin, bool origin_hot,
                                const crdt::Delta& delta, bool skeleton) {
  std::string entry;
  put_le<std::uint32_t>(entry, cid);
  const unsigned flags = (origin == nullptr ? 0u : (origin_hot ? 3u : 1u)) | (skeleton ? 4u : 0u);
  put_le<std::uint8_t>(entry, static_cast<std::uint8_t>(flags));
  if (origin != nullptr) entry += origin->encode();
  crdt::Bytes b;
  if (skeleton) {
    // Dots and clocks only: no payload is copied (the record store holds them).
    crdt::Delta bones;
    bones.context = delta.context;
    for (const auto& [id, entries] : delta.records) {
      crdt::Entries& out = bones.records[id];
      out.reserve(entries.size());
      for (const auto& e : entries) out.push_back(crdt::Entry{e.dot, e.clock, {}});
    }
    crdt::encode_delta(bones, b);
  } else {
    crdt::encode_delta(delta, b);
  }
  entry += as_view(b);
  return entry;
}

Result<BufferEntry> decode_buffer_entry(std::string_view v) {
  BufferEntry e;
  std::uint8_t flags = 0;
  if (!get_le(v, e.cid) || !get_le(v, flags) || flags > 7) {
    return Status(Code::kCorruption, "bad delta buffer entry header");
  }
  e.has_origin = (flags & 1) != 0;
  e.origin_hot = (flags & 2) != 0;
  e.skeleton = (flags & 4) != 0;
  if (e.has_origin) {
    constexpr std::size_t n = crdt::ReplicaId::kEncodedBytes;
    if (v.size() < n || !crdt::ReplicaId::decode(v.substr(0, n), e.origin)) {
      return Status(Code::kCorruption, "bad delta buffer entry origin");
    }
    v.remove_prefix(n);
  }
  e.stored = v;
  return e;
}

std::string encode_peer(const PeerRecord& p) {
  std::string v;
  put_le<std::uint8_t>(v, kPeerVersion);
  put_le<std::uint8_t>(v, static_cast<std::uint8_t>(p.tier));
  put_le<std::uint64_t>(v, p.acked);
  put_le<std::int64_t>(v, p.last_seen.ns());
  return v;
}

Result<PeerRecord> decode_peer(std::string_view v) {
  PeerRecord p;
  std::uint8_t version = 0, tier = 0;
  std::int64_t seen = 0;
  if (!get_le(v, version) || version != kPeerVersion || !get_le(v, tier) || tier > 1 || !get_le(v, p.acked) ||
      !get_le(v, seen) || !v.empty()) {
    return Status(Code::kCorruption, "undecodable peer entry", "peers");
  }
  p.tier = static_cast<Tier>(tier);
  p.last_seen = WallTime::from_ns(seen);
  return p;
}

std::string encode_u32(std::uint32_t v) {
  std::string out;
  put_le<std::uint32_t>(out, v);
  return out;
}

Result<std::uint32_t> decode_u32(std::string_view v, std::string_view key_for_errors) {
  std::uint32_t out = 0;
  if (!get_le(v, out) || !v.empty()) return Status(Code::kCorruption, "undecodable counter", std::string(key_for_errors));
  return out;
}

std::string encode_catalogue(const crdt::ORMap& catalogue) {
  crdt::Bytes b;
  crdt::encode_delta(catalogue.to_delta(), b);
  return std::string(as_view(b));
}

Result<crdt::ORMap> decode_catalogue(std::string_view in) {
  auto state = crdt::decode_delta(as_bytes(in));
  if (!state.ok()) return Status(Code::kCorruption, state.status().message(), "meta/node.catalogue");
  return ormap_from_state(*state, kCatalogueDigestConfig);
}

crdt::ORMap ormap_from_state(const crdt::Delta& state, crdt::DigestConfig config) {
  crdt::ORMap m(config);
  std::vector<std::uint32_t> all(std::size_t{1} << config.leaf_bits);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint32_t>(i);
  (void)m.join_repair(state, all);
  m.merge_context(state.context);
  return m;
}

// --- open state ---

namespace {
constexpr char kOpenStateMagic[8] = {'S', 'H', 'O', 'A', 'L', 'D', 'O', 'C'};
constexpr std::uint32_t kOpenStateVersion = 1;
constexpr std::size_t kOpenStateCountOffset = 8 + 4 + 4 + 8 + 8 + 8;
}  // namespace

OpenStateWriter::OpenStateWriter(std::uint32_t cid, std::uint64_t covered_position, std::uint64_t next_label,
                                 crdt::Hlc max_clock, std::uint64_t docs)
    : expected_(docs) {
  out_.append(kOpenStateMagic, sizeof(kOpenStateMagic));
  put_le<std::uint32_t>(out_, kOpenStateVersion);
  put_le<std::uint32_t>(out_, cid);
  put_le<std::uint64_t>(out_, covered_position);
  put_le<std::uint64_t>(out_, next_label);
  put_le<std::uint64_t>(out_, max_clock.raw());
  count_at_ = out_.size();
  SHOAL_ASSERT(count_at_ == kOpenStateCountOffset);
  put_le<std::uint64_t>(out_, docs);
}

void OpenStateWriter::add(std::uint64_t label, std::uint64_t digest, bool evicted, std::string_view id,
                          std::string_view model, const Metadata& metadata) {
  SHOAL_ASSERT(id.size() <= 0xffff);
  put_le<std::uint64_t>(out_, label);
  put_le<std::uint64_t>(out_, digest);
  put_le<std::uint8_t>(out_, evicted ? 1 : 0);
  put_le<std::uint16_t>(out_, static_cast<std::uint16_t>(id.size()));
  out_ += id;
  // Model and metadata as a record payload without a vector (decode_payload reads it back).
  RecordValue v;
  v.model = std::string(model);
  v.metadata = metadata;
  const std::string value = encode_payload(v);
  put_le<std::uint32_t>(out_, static_cast<std::uint32_t>(value.size()));
  out_ += value;
  ++added_;
}

std::string OpenStateWriter::finish() {
  SHOAL_ASSERT(added_ == expected_);
  put_le<std::uint64_t>(out_, hash64(out_));
  return std::move(out_);
}

Result<OpenStateHeader> decode_open_state(std::string_view in, std::string_view path_for_errors,
                                          const std::function<Status(OpenStateDoc&&)>& each) {
  auto corrupt = [&](const std::string& why) {
    return Status(Code::kCorruption, "open state file: " + why, std::string(path_for_errors));
  };
  if (in.size() < kOpenStateCountOffset + 8 + 8 || std::memcmp(in.data(), kOpenStateMagic, 8) != 0) {
    return corrupt("no header");
  }
  std::uint64_t sum = 0;
  std::memcpy(&sum, in.data() + in.size() - 8, 8);
  if (sum != hash64(in.data(), in.size() - 8)) return corrupt("checksum does not match");
  std::string_view v = in.substr(8, in.size() - 16);
  OpenStateHeader h;
  std::uint32_t version = 0;
  std::uint64_t clock = 0;
  (void)get_le(v, version);
  if (version != kOpenStateVersion) {
    return Status(Detail::kVersionMismatch,
                  str_cat("open state file version ", version, ", this build reads ", kOpenStateVersion),
                  std::string(path_for_errors));
  }
  if (!get_le(v, h.cid) || !get_le(v, h.covered_position) || !get_le(v, h.next_label) || !get_le(v, clock) ||
      !get_le(v, h.docs)) {
    return corrupt("truncated header");
  }
  h.max_clock = crdt::Hlc::from_raw(clock);
  // Each doc takes at least 8 + 8 + 1 + 2 + 1 + 4 bytes: a count beyond that is a lie.
  if (h.docs > v.size() / 24 || h.next_label > (std::uint64_t{1} << 40)) {
    return corrupt(str_cat(h.docs, " docs and next label ", h.next_label, " in ", in.size(), " bytes"));
  }
  std::uint64_t previous = 0;
  for (std::uint64_t i = 0; i < h.docs; ++i) {
    OpenStateDoc d;
    std::uint8_t flags = 0;
    std::uint16_t id_len = 0;
    std::uint32_t value_len = 0;
    if (!get_le(v, d.label) || !get_le(v, d.digest) || !get_le(v, flags) || !get_le(v, id_len) || v.size() < id_len) {
      return corrupt(str_cat("doc ", i, " truncated"));
    }
    if (d.label <= previous || d.label >= h.next_label || flags > 1 || id_len == 0) {
      return corrupt(str_cat("doc ", i, ": label ", d.label, " after ", previous, ", next label ", h.next_label,
                             ", flags ", int{flags}, ", id of ", id_len, " bytes"));
    }
    previous = d.label;
    d.evicted = flags == 1;
    d.id.assign(v.data(), id_len);
    v.remove_prefix(id_len);
    if (!get_le(v, value_len) || v.size() < value_len) return corrupt(str_cat("doc ", i, " truncated"));
    auto value = decode_payload(v.substr(0, value_len));
    if (!value.ok()) return corrupt(str_cat("doc ", i, ": ", value.status().message()));
    if (!value->vector.empty()) return corrupt(str_cat("doc ", i, " holds a vector"));
    v.remove_prefix(value_len);
    d.model = std::move(value->model);
    d.metadata = std::move(value->metadata);
    SHOAL_RETURN_IF_ERROR(each(std::move(d)));
  }
  if (!v.empty()) return corrupt(str_cat(v.size(), " bytes after the last doc"));
  return h;
}

}  // namespace shoal::node::format

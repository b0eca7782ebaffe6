// sink/sink_service.cpp: see sink_service.hpp.
#include "sink/sink_service.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "common/log.hpp"
#include "crdt/codec.hpp"
#include "index/exact_index.hpp"
#include "index/kernels.hpp"
#include "index/topk.hpp"
#include "node/core/node_format.hpp"
#include "node/core/record.hpp"
#include "node/core/vector_store.hpp"
#include "node/store/lmdb_store.hpp"
#include "node/store/memory_store.hpp"

namespace shoal::sink {

namespace {

constexpr std::string_view kSegmentKind = "seg";
constexpr std::string_view kDeltaKind = "dlt";
constexpr std::string_view kContextKind = "ctx";
// The collection's metric as the members' uploads said it (one byte, the metric wire byte),
// kept so that a bootstrap can create the collection on a device that lacks it. Not part of the
// CRDT state: compaction keeps the newest, and a newer one replaces it.
constexpr std::string_view kSpecKind = "spc";
// The collection's whole spec as the latest upload said it (D62: its index options too), in the
// node's catalogue encoding with id 0; kept like the metric, beside it (a sink from before it
// leaves these keys alone, as every key it does not know).
constexpr std::string_view kIndexKind = "idx";
constexpr std::size_t kSeqDigits = 20;

std::string_view as_view(const crdt::Bytes& b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}

std::span<const std::uint8_t> as_bytes(std::string_view s) {
  return std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

SegmentDot segment_dot(const crdt::Dot& d) {
  SegmentDot s;
  const std::string r = d.replica.encode();
  std::copy(r.begin(), r.end(), s.replica.begin());
  s.counter = d.counter;
  return s;
}

crdt::Dot crdt_dot(const SegmentDot& s) {
  crdt::Dot d;
  const bool ok = crdt::ReplicaId::decode(
      std::string_view(reinterpret_cast<const char*>(s.replica.data()), s.replica.size()), d.replica);
  SHOAL_ASSERT(ok);  // the array is exactly 20 bytes
  d.counter = s.counter;
  return d;
}

// Parses "<kind>/<collection>/<20 digits>"; false for any other key (left alone by the sink).
bool parse_key(std::string_view key, std::string_view& kind, std::string_view& collection, std::uint64_t& seq) {
  const auto first = key.find('/');
  const auto last = key.rfind('/');
  if (first == std::string_view::npos || first == last) return false;
  kind = key.substr(0, first);
  collection = key.substr(first + 1, last - first - 1);
  const std::string_view digits = key.substr(last + 1);
  if (digits.size() != kSeqDigits || collection.empty()) return false;
  seq = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return false;
    seq = seq * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  return kind == kSegmentKind || kind == kDeltaKind || kind == kContextKind || kind == kSpecKind || kind == kIndexKind;
}

std::size_t entry_count(const crdt::RecordMap& records) {
  std::size_t n = 0;
  for (const auto& [id, entries] : records) n += entries.size();
  return n;
}

}  // namespace

crdt::Delta segment_to_delta(const Segment& segment) {
  crdt::Delta d;
  for (const SegmentRecord& r : segment.records) {
    crdt::Entries entries;
    entries.reserve(r.entries.size());
    for (const SegmentEntry& e : r.entries) {
      crdt::Entry ce;
      ce.dot = crdt_dot(e.dot);
      ce.clock = crdt::Hlc::from_raw(e.hlc);
      ce.payload.assign(e.payload.begin(), e.payload.end());
      d.context.add(ce.dot);
      entries.push_back(std::move(ce));
    }
    // crdt orders dots by (identity, incarnation as an integer, counter); the segment by the 20
    // encoded bytes (incarnation little-endian): sort again for the CRDT's order.
    std::sort(entries.begin(), entries.end(), [](const crdt::Entry& a, const crdt::Entry& b) { return a.dot < b.dot; });
    d.records.emplace(r.id, std::move(entries));
  }
  return d;
}

Result<crdt::Delta> bootstrap_page_delta(std::string_view collection, std::string_view segment,
                                         std::string_view context, bool done, std::set<std::string>& ids) {
  crdt::Delta delta;
  if (!segment.empty()) {
    auto seg = decode_segment(segment);
    if (!seg.ok()) return seg.status().with_context(str_cat("the sink's bootstrap page of '", collection, "'"));
    if (seg->collection != collection) {
      return Status(Detail::kMalformed, str_cat("the sink's bootstrap page names collection '", seg->collection,
                                                "', asked for '", collection, "'"));
    }
    delta = segment_to_delta(*seg);
    for (const auto& r : seg->records) ids.insert(r.id);
  }
  if (done) {
    SHOAL_ASSIGN_OR_RETURN(crdt::CausalContext ctx, bootstrap_context(collection, context));
    delta.context.merge(ctx);
  }
  return delta;
}

Result<crdt::CausalContext> bootstrap_context(std::string_view collection, std::string_view context) {
  if (context.empty()) return crdt::CausalContext();
  auto ctx = crdt::decode_context(as_bytes(context));
  if (!ctx.ok()) {
    return Status(Detail::kMalformed, str_cat("the sink's context of '", collection, "' does not decode: ",
                                              ctx.status().to_string()));
  }
  return std::move(*ctx);
}

Segment records_to_segment(std::string_view collection, const crdt::RecordMap& records) {
  Segment s;
  s.collection = std::string(collection);
  for (const auto& [id, entries] : records) {
    if (entries.empty()) continue;
    SegmentRecord r;
    r.id = id;
    for (const crdt::Entry& e : entries) {
      SegmentEntry se;
      se.dot = segment_dot(e.dot);
      se.hlc = e.clock.raw();
      se.payload.assign(e.payload.begin(), e.payload.end());
      r.entries.push_back(std::move(se));
    }
    std::sort(r.entries.begin(), r.entries.end(),
              [](const SegmentEntry& a, const SegmentEntry& b) { return a.dot < b.dot; });
    s.records.push_back(std::move(r));
  }
  return s;
}

// The state env's layout (docs/sink-format.md, "The state env"); `C` is the collection's name,
// `\0` a zero byte (no collection name holds one), `cid` the collection's number in the env (u32,
// from 1) and `label` its record's slot (u64, 1..records: dense, D66):
//   records      C \0 id    -> u8 length, the object holding the winner, then the node's record
//                              encoding (node::format::encode_record: the label, the entries with
//                              the winner's vector elided, node/core/vector_store.hpp)
//   vector_slabs cid label -> the winners' vectors, several to a value (the node's slabs, D52)
//   index_dirty  cid label -> the id of the record whose vector is in that slot (the labels)
//   contexts     C         -> the collection's causal context (crdt::encode_context bytes)
//   catalogue    C         -> the collection's counters (encode_counters)
//   deltas       C \0 key  -> an object the state has applied: u64 bytes, u64 entries (big-endian)
//   meta         sink.state_version -> "2" once a rebuild finished (absent, or main's "1" from
//                before the slabs: rebuild at open); sink.next_cid -> u64be, the next cid
namespace {

constexpr std::string_view kStateVersionKey = "sink.state_version";
constexpr std::string_view kStateVersion = "2";
constexpr std::string_view kNextCidKey = "sink.next_cid";
constexpr store::Table kLabels = store::Table::kIndexDirty;
constexpr std::uint8_t kNoMetric = 255;

std::string in_collection(std::string_view collection, std::string_view key) {
  std::string s(collection);
  s += '\0';
  s += key;
  return s;
}

store::Range collection_range(std::string_view collection) { return store::Range::prefix(in_collection(collection, "")); }

// `entries` as stored: the winner's vector elided (it is in the slabs, under `label`).
std::string encode_record(std::string_view holder, std::uint64_t label, const crdt::Entries& entries) {
  SHOAL_ASSERT(holder.size() < 256);  // object keys are at most 89 bytes
  std::string out(1, static_cast<char>(holder.size()));
  out += holder;
  out += node::format::encode_record(label, entries);
  return out;
}

struct StoredRecord {
  std::string holder;
  std::uint64_t label = 0;
  crdt::Entries entries;  // the winner's vector elided unless read with read_whole
};

Result<StoredRecord> decode_record(std::string_view key, std::string_view v) {
  const std::size_t n = v.empty() ? 0 : static_cast<std::uint8_t>(v[0]);
  if (v.empty() || v.size() < 1 + n) return Status(Code::kCorruption, "state record shorter than its header", std::string(key));
  StoredRecord r;
  r.holder = std::string(v.substr(1, n));
  auto rec = node::format::decode_record(v.substr(1 + n), key);
  if (!rec.ok()) return Status(Code::kCorruption, "state record does not decode: " + rec.status().to_string(), std::string(key));
  r.label = rec->label;
  r.entries = std::move(rec->entries);
  const crdt::Entry* w = crdt::winner(r.entries);
  if (r.entries.empty() || !crdt::entries_valid(r.entries) || !node::format::payload_elided(w->payload)) {
    return Status(Code::kCorruption, "state record has invalid entries", std::string(key));
  }
  return r;
}

std::string slot_key(std::uint32_t cid, std::uint64_t label) { return node::format::vector_key(cid, label); }

// A state record with its winner's vector put back from the collection's slabs (fetch,
// bootstrap, compaction and the join see whole payloads). `view` is the one `v` was read in.
Result<StoredRecord> read_whole(store::ReadView& view, std::uint32_t cid, std::uint32_t dimension, std::string_view key,
                                std::string_view v) {
  SHOAL_ASSIGN_OR_RETURN(StoredRecord r, decode_record(key, v));
  auto floats = node::format::get_vector(view, cid, dimension, r.label);
  if (!floats.ok()) {
    return Status(Code::kCorruption, "state record's vector: " + floats.status().to_string(), std::string(key));
  }
  SHOAL_RETURN_IF_ERROR(node::format::restore_winner_vector(r.entries, *floats).with_context(std::string(key)));
  return r;
}

std::uint64_t payload_size(const crdt::Entries& entries) {
  std::uint64_t n = 0;
  for (const crdt::Entry& e : entries) n += e.payload.size();
  return n;
}

struct ObjectInfo {
  std::uint64_t bytes = 0;
  std::uint64_t entries = 0;
};

std::string encode_object(const ObjectInfo& o) { return store::encode_u64_be(o.bytes) + store::encode_u64_be(o.entries); }

Result<ObjectInfo> decode_object(std::string_view key, std::string_view v) {
  if (v.size() != 16) return Status(Code::kCorruption, str_cat("applied-object entry of ", v.size(), " bytes, not 16"), std::string(key));
  return ObjectInfo{*store::decode_u64_be(v.substr(0, 8)), *store::decode_u64_be(v.substr(8))};
}

}  // namespace

struct SinkService::Found {
  std::string key;
  std::string_view kind;
  std::uint64_t seq = 0;
};

// What the heap keeps of a collection: counters and the context; records live in the state env.
struct SinkService::Collection {
  std::string name;
  std::uint32_t cid = 0;                    // its slabs' and labels' key (0: none given yet)
  crdt::CausalContext context;
  std::uint32_t dimension = 0;              // the live records' (0: none live)
  std::optional<index::Metric> metric;      // as uploads said it (a kSpecKind object)
  std::string metric_key;                   // the object that holds it ("" before one is stored)
  // Not in the state env: read from the newest kIndexKind object at open (D62).
  std::optional<node::CollectionSpec> spec;  // as uploads said it
  std::string spec_key;                      // the object that holds it
  std::uint64_t records = 0;                // live records
  std::uint64_t live_entries = 0;
  std::uint64_t payload_bytes = 0;          // of the live entries
  std::uint64_t segment_entries = 0;        // entries carried by the segment objects
  std::uint64_t segments = 0;
  std::uint64_t deltas = 0;
  std::uint64_t contexts = 0;
  std::uint64_t object_bytes = 0;           // of the applied objects (not the metric's)
  // Not in the state env: from the object listing at open, then each acknowledgement.
  std::uint64_t last_seq = 0;
  std::int64_t last_ack_wall_ns = 0;

  std::uint64_t objects() const { return segments + deltas + contexts; }
  // Anything compaction would fold or drop: delta objects, more than one context, or segment
  // entries that are no longer live (deleted, superseded, or carried twice).
  bool dirty() const { return deltas > 0 || contexts > 1 || segment_entries != live_entries; }

  std::string encode_counters() const {
    std::string out;
    for (std::uint64_t v : {std::uint64_t{dimension}, std::uint64_t{metric ? node::metric_to_wire_byte(*metric) : kNoMetric},
                            records, live_entries, payload_bytes, segment_entries, segments, deltas, contexts,
                            object_bytes, std::uint64_t{cid}}) {
      out += store::encode_u64_be(v);
    }
    return out + metric_key;
  }
  Status decode_counters(std::string_view v) {
    constexpr std::size_t kFields = 11;
    if (v.size() < kFields * 8) return Status(Code::kCorruption, "collection counters truncated", name);
    std::uint64_t f[kFields];
    for (std::size_t i = 0; i < kFields; ++i) f[i] = *store::decode_u64_be(v.substr(i * 8, 8));
    dimension = static_cast<std::uint32_t>(f[0]);
    metric.reset();
    if (f[1] != kNoMetric) {
      metric = f[1] <= 255 ? node::metric_from_wire_byte(static_cast<std::uint8_t>(f[1])) : std::nullopt;
      if (!metric) return Status(Code::kCorruption, str_cat("collection counters name metric byte ", f[1]), name);
    }
    records = f[2];
    live_entries = f[3];
    payload_bytes = f[4];
    segment_entries = f[5];
    segments = f[6];
    deltas = f[7];
    contexts = f[8];
    object_bytes = f[9];
    if (f[10] == 0 || f[10] > UINT32_MAX) return Status(Code::kCorruption, str_cat("collection counters name cid ", f[10]), name);
    cid = static_cast<std::uint32_t>(f[10]);
    metric_key = std::string(v.substr(kFields * 8));
    return ok_status();
  }
  void count_object(std::string_view kind, const ObjectInfo& o, int sign) {
    const auto add = [sign](std::uint64_t& x, std::uint64_t d) { x = sign > 0 ? x + d : x - d; };
    add(object_bytes, o.bytes);
    if (kind == kSegmentKind) {
      add(segments, 1);
      add(segment_entries, o.entries);
    } else if (kind == kDeltaKind) {
      add(deltas, 1);
    } else {
      add(contexts, 1);
    }
  }
};

SinkService::SinkService(ObjectStore& store, SinkLimits limits, store::Store& state)
    : store_(store), limits_(std::move(limits)), state_(state) {}
SinkService::~SinkService() = default;

Result<std::unique_ptr<SinkService>> SinkService::open(ObjectStore& store, SinkLimits limits, store::Store* state) {
  std::unique_ptr<store::Store> own;
  if (state == nullptr) {
    own = std::make_unique<store::MemoryStore>();
    state = own.get();
  }
  std::unique_ptr<SinkService> s(new SinkService(store, std::move(limits), *state));
  s->own_state_ = std::move(own);
  SHOAL_RETURN_IF_ERROR(s->load());
  return s;
}

Status SinkService::load() {
  Listing listing;
  // One listing of everything (not one per kind: a prefix holding '/' is a query moto 5.2
  // re-encodes before it checks the signature, docs/sink-format.md); other keys are left alone.
  SHOAL_ASSIGN_OR_RETURN(auto keys, store_.list(""));
  for (std::string& key : keys) {
    std::string_view k, coll;
    std::uint64_t seq = 0;
    if (!parse_key(key, k, coll, seq) || !check_collection_name(coll).ok()) continue;
    const std::string_view kind_const = k == kSegmentKind  ? kSegmentKind
                                        : k == kDeltaKind  ? kDeltaKind
                                        : k == kSpecKind   ? kSpecKind
                                        : k == kIndexKind  ? kIndexKind
                                                           : kContextKind;
    listing[std::string(coll)].push_back(Found{std::move(key), kind_const, seq});
  }
  for (auto& [name, found] : listing) {
    std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.seq < b.seq; });
    for (const Found& f : found) next_seq_ = std::max(next_seq_, f.seq + 1);
  }
  bool complete = false;
  {
    SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_read());
    auto v = txn->get(store::Table::kMeta, kStateVersionKey);
    if (v.ok()) {
      complete = *v == kStateVersion;
    } else if (v.status().code() != Code::kNotFound) {
      return v.status().with_context("the sink's state");
    }
  }
  Status st = complete ? catch_up(listing) : Status(Code::kNotFound, "no complete state");
  if (!st.ok()) {
    if (complete && st.code() != Code::kCorruption) return st;  // an I/O error: not the state's fault
    collections_.clear();
    joined_at_open_ = 0;
    rebuilt_ = true;
    SHOAL_RETURN_IF_ERROR(rebuild(listing));
  }
  for (auto& [name, found] : listing) {
    auto it = collections_.find(name);
    if (it == collections_.end()) continue;
    for (const Found& f : found) {
      if (f.kind == kSpecKind || f.kind == kIndexKind) continue;
      last_ack_seq_ = std::max(last_ack_seq_, f.seq);
      it->second->last_seq = std::max(it->second->last_seq, f.seq);
    }
  }
  return ok_status();
}

Status SinkService::clear_state() {
  // The vectors table too: an env from before the slabs (D66) kept a vector per record there.
  for (store::Table t : {store::Table::kRecords, store::Table::kVectors, store::Table::kVectorSlabs, kLabels,
                         store::Table::kContexts, store::Table::kCatalogue, store::Table::kDeltas}) {
    for (;;) {  // in batches, so no transaction holds a whole table's keys
      SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_write());
      SHOAL_ASSIGN_OR_RETURN(auto batch, txn->collect(t, store::Range::all().limited(4096)));
      if (batch.empty()) break;
      for (const auto& kv : batch) SHOAL_RETURN_IF_ERROR(txn->del(t, kv.key));
      SHOAL_RETURN_IF_ERROR(txn->commit());
    }
  }
  SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_write());
  SHOAL_RETURN_IF_ERROR(txn->del(store::Table::kMeta, kStateVersionKey));
  SHOAL_RETURN_IF_ERROR(txn->del(store::Table::kMeta, kNextCidKey));
  return txn->commit();
}

// Every payload must decode: the join and cold search take stored payloads as validated (they
// were, at upload), and an object changed in the store since is bad input, not a reason to abort.
static Status check_payloads(const crdt::Delta& d, const std::string& key) {
  for (const auto& [id, entries] : d.records) {
    for (const crdt::Entry& e : entries) {
      if (auto v = node::decode_payload(as_view(e.payload)); !v.ok()) {
        return Status(Code::kCorruption,
                      str_cat("record '", node::escape_for_message(id), "': ", v.status().to_string()), key);
      }
    }
  }
  return ok_status();
}

Result<std::pair<crdt::Delta, std::uint64_t>> SinkService::read_object(const Collection& c, const Found& f) {
  SHOAL_ASSIGN_OR_RETURN(std::string bytes, store_.get(f.key));
  if (f.kind == kSegmentKind) {
    auto seg = decode_segment(bytes, limits_.segment);
    if (!seg.ok()) return Status(Code::kCorruption, "segment object does not decode: " + seg.status().to_string(), f.key);
    if (seg->collection != c.name) {
      return Status(Code::kCorruption, "segment of collection '" + seg->collection + "' under another key", f.key);
    }
    crdt::Delta delta = segment_to_delta(*seg);
    SHOAL_RETURN_IF_ERROR(check_payloads(delta, f.key));
    return std::pair{std::move(delta), std::uint64_t{bytes.size()}};
  }
  if (f.kind == kContextKind) {
    // u64 little-endian base, then the whole context: joined as a delta naming no record.
    if (bytes.size() < 8) return Status(Detail::kTruncated, "context object shorter than its 8-byte header", f.key);
    auto ctx = crdt::decode_context(as_bytes(std::string_view(bytes).substr(8)));
    if (!ctx.ok()) return Status(Code::kCorruption, "context object does not decode: " + ctx.status().to_string(), f.key);
    crdt::Delta d;
    d.context = std::move(*ctx);
    return std::pair{std::move(d), std::uint64_t{bytes.size()}};
  }
  auto d = crdt::decode_delta(as_bytes(bytes));
  if (!d.ok()) return Status(Code::kCorruption, "delta object does not decode: " + d.status().to_string(), f.key);
  SHOAL_RETURN_IF_ERROR(check_payloads(*d, f.key));
  return std::pair{std::move(*d), std::uint64_t{bytes.size()}};
}

Status SinkService::read_spec(Collection& c, const Found& f) {
  SHOAL_ASSIGN_OR_RETURN(std::string bytes, store_.get(f.key));
  auto spec = node::format::decode_spec(c.name, bytes);
  if (!spec.ok()) return Status(Code::kCorruption, "spec object does not decode: " + spec.status().to_string(), f.key);
  c.spec = std::move(spec->first);
  c.spec_key = f.key;
  return ok_status();
}

namespace {
std::uint64_t context_base(std::string_view bytes) {
  std::uint64_t base = 0;
  for (int i = 7; i >= 0; --i) base = (base << 8) | static_cast<std::uint8_t>(bytes[static_cast<std::size_t>(i)]);
  return base;
}
}  // namespace

Status SinkService::rebuild(Listing& listing) {
  SHOAL_RETURN_IF_ERROR(clear_state());
  for (auto& [name, found] : listing) {
    auto fresh = std::make_unique<Collection>();
    fresh->name = name;
    Collection& c = *fresh;
    collections_.emplace(name, std::move(fresh));
    // The newest compaction: its context object names the first sequence number of its segments.
    std::uint64_t base = 0, top = 0;
    const Found* newest_ctx = nullptr;
    for (auto it = found.rbegin(); it != found.rend(); ++it) {
      if (it->kind != kContextKind) continue;
      SHOAL_ASSIGN_OR_RETURN(std::string bytes, store_.get(it->key));
      if (bytes.size() < 8) return Status(Detail::kTruncated, "context object shorter than its 8-byte header", it->key);
      base = context_base(bytes);
      top = it->seq;
      newest_ctx = &*it;
      break;
    }
    // Two passes, one object in memory at a time (D54): first the newest compaction's segments
    // then its context, which together are the compacted state; then every other object in
    // sequence order, each joined as the delta it is. An object older than the compaction whose
    // entries are dead there is judged by the compacted context, so nothing dead comes back; the
    // index of which object holds each winner follows the same order: the compacted state first.
    auto in_compaction = [&](const Found& f) {
      return (f.kind == kSegmentKind && top != 0 && f.seq >= base && f.seq < top) || &f == newest_ctx;
    };
    for (const Found& f : found) {
      if (f.kind == kSpecKind) {  // sorted by seq: the newest is read last
        SHOAL_ASSIGN_OR_RETURN(std::string bytes, store_.get(f.key));
        auto m = bytes.size() == 1 ? node::metric_from_wire_byte(static_cast<std::uint8_t>(bytes[0])) : std::nullopt;
        if (!m) return Status(Code::kCorruption, str_cat("metric object of ", bytes.size(), " bytes is no metric byte"), f.key);
        c.metric = *m;
        c.metric_key = f.key;
        continue;
      }
      if (f.kind == kIndexKind) {  // the same for the spec, which the state env does not keep
        SHOAL_RETURN_IF_ERROR(read_spec(c, f));
        continue;
      }
      if (!in_compaction(f)) continue;
      SHOAL_ASSIGN_OR_RETURN(auto got, read_object(c, f));
      SHOAL_RETURN_IF_ERROR(apply(c, got.first, f.key, got.second));
    }
    for (const Found& f : found) {
      if (in_compaction(f) || f.kind == kSpecKind || f.kind == kIndexKind) continue;
      SHOAL_ASSIGN_OR_RETURN(auto got, read_object(c, f));
      SHOAL_RETURN_IF_ERROR(apply(c, got.first, f.key, got.second));
    }
    // The counters with the metric (a spec object read after the last join, or the only object).
    SHOAL_RETURN_IF_ERROR(apply(c, crdt::Delta{}, "", 0));
  }
  SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_write());
  SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kMeta, kStateVersionKey, kStateVersion));
  return txn->commit();
}

Status SinkService::catch_up(Listing& listing) {
  {
    SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_read());
    Status bad;
    SHOAL_RETURN_IF_ERROR(txn->scan(store::Table::kCatalogue, store::Range::all(), [&](std::string_view k, std::string_view v) {
      auto c = std::make_unique<Collection>();
      c->name = std::string(k);
      bad = c->decode_counters(v);
      if (!bad.ok()) return false;
      collections_.emplace(c->name, std::move(c));
      return true;
    }));
    SHOAL_RETURN_IF_ERROR(bad);
    for (auto& [name, c] : collections_) {
      SHOAL_ASSIGN_OR_RETURN(std::string ctx, txn->get(store::Table::kContexts, name));
      auto decoded = crdt::decode_context(as_bytes(ctx));
      if (!decoded.ok()) return Status(Code::kCorruption, "state context does not decode", name);
      c->context = std::move(*decoded);
    }
  }
  for (auto& [name, c] : collections_) {
    if (listing.find(name) == listing.end()) {
      return Status(Code::kCorruption, "the state holds a collection with no object", name);
    }
  }
  for (auto& [name, found] : listing) {
    Collection* c = nullptr;
    auto it = collections_.find(name);
    if (it == collections_.end()) {
      auto fresh = std::make_unique<Collection>();
      fresh->name = name;
      c = fresh.get();
      collections_.emplace(name, std::move(fresh));
    } else {
      c = it->second.get();
    }
    // The objects the state applied that are gone: removed by a compaction (a context object of
    // a later sequence exists), or the object store is not the one the state was built from.
    std::set<std::string, std::less<>> listed;
    std::uint64_t newest_ctx = 0;
    for (const Found& f : found) {
      listed.insert(f.key);
      if (f.kind == kContextKind) newest_ctx = std::max(newest_ctx, f.seq);
    }
    std::vector<std::pair<std::string, ObjectInfo>> gone;
    std::set<std::string, std::less<>> applied;
    {
      SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_read());
      Status bad;
      const std::string prefix = in_collection(name, "");
      SHOAL_RETURN_IF_ERROR(txn->scan(store::Table::kDeltas, collection_range(name), [&](std::string_view k, std::string_view v) {
        const std::string_view key = k.substr(prefix.size());
        if (listed.count(key) != 0) {
          applied.insert(std::string(key));
          return true;
        }
        std::string_view kind, coll;
        std::uint64_t seq = 0;
        auto info = decode_object(key, v);
        if (!info.ok() || !parse_key(key, kind, coll, seq) || seq >= newest_ctx) {
          bad = Status(Code::kCorruption, "an object the state applied is gone from the object store", std::string(key));
          return false;
        }
        gone.emplace_back(std::string(key), *info);
        return true;
      }));
      SHOAL_RETURN_IF_ERROR(bad);
    }
    if (!gone.empty()) {  // a compaction's removals the state had not recorded
      SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_write());
      Collection w = *c;
      for (const auto& [key, info] : gone) {
        std::string_view kind, coll;
        std::uint64_t seq = 0;
        (void)parse_key(key, kind, coll, seq);
        w.count_object(kind == kSegmentKind ? kSegmentKind : kind == kDeltaKind ? kDeltaKind : kContextKind, info, -1);
        SHOAL_RETURN_IF_ERROR(txn->del(store::Table::kDeltas, in_collection(name, key)));
      }
      SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kCatalogue, name, w.encode_counters()));
      SHOAL_RETURN_IF_ERROR(txn->commit());
      *c = std::move(w);
    }
    for (const Found& f : found) {
      if (f.kind == kIndexKind) {  // sorted by seq: the newest is read last
        SHOAL_RETURN_IF_ERROR(read_spec(*c, f));
        continue;
      }
      if (f.kind == kSpecKind) {
        if (f.key > c->metric_key || c->metric_key.empty()) {  // same collection and width: by seq
          SHOAL_ASSIGN_OR_RETURN(std::string bytes, store_.get(f.key));
          auto m = bytes.size() == 1 ? node::metric_from_wire_byte(static_cast<std::uint8_t>(bytes[0])) : std::nullopt;
          if (!m) return Status(Code::kCorruption, str_cat("metric object of ", bytes.size(), " bytes is no metric byte"), f.key);
          c->metric = *m;
          c->metric_key = f.key;
          SHOAL_RETURN_IF_ERROR(apply(*c, crdt::Delta{}, "", 0));
        }
        continue;
      }
      if (applied.count(f.key) != 0) continue;
      // Put before a crash took the state commit with it (or by hand): joined now, idempotently.
      SHOAL_ASSIGN_OR_RETURN(auto got, read_object(*c, f));
      SHOAL_RETURN_IF_ERROR(apply(*c, got.first, f.key, got.second));
      ++joined_at_open_;
    }
  }
  return ok_status();
}

Status SinkService::check_collection_name(std::string_view name) const {
  node::Limits l;
  l.max_collection_name_bytes = limits_.max_collection_name_bytes;
  return node::validate_collection_name(name, l);
}

Result<std::uint32_t> SinkService::validate_records(const Collection* c, std::string_view collection,
                                                    const crdt::RecordMap& records,
                                                    std::optional<index::Metric> metric) const {
  node::Limits l;
  l.max_dimension = limits_.max_dimension;
  std::uint32_t dim = c != nullptr ? c->dimension : 0;
  for (const auto& [id, entries] : records) {
    SHOAL_RETURN_IF_ERROR(node::validate_record_id(id, l).with_context(std::string(collection)));
    if (!crdt::entries_valid(entries)) {
      return Status(Detail::kMalformed, "entries of record '" + node::escape_for_message(id) +
                                            "' are not sorted by dot or carry a zero counter");
    }
    for (const crdt::Entry& e : entries) {
      // A segment's counter is any u64 >= 1, but the CRDT's decoders refuse kMaxCounter and up:
      // the sink would store a context that neither a restored node (bootstrap) nor the sink
      // itself (its compaction's context object, at the next open) could decode.
      if (e.dot.counter >= crdt::kMaxCounter) {
        return Status(Detail::kOutOfRange, str_cat("record '", node::escape_for_message(id), "' has dot counter ",
                                                   e.dot.counter, ", limit ", crdt::kMaxCounter - 1));
      }
      auto v = node::decode_payload(as_view(e.payload));
      if (!v.ok()) {
        return Status(v.status().detail(), "payload of record '" + node::escape_for_message(id) +
                                               "' is not a record: " + v.status().message());
      }
      const auto n = static_cast<std::uint32_t>(v->vector.size());
      if (n == 0 || n > limits_.max_dimension) {
        return Status(Detail::kTooLarge, str_cat("record '", node::escape_for_message(id), "' has dimension ", n,
                                                 ", limit 1..", limits_.max_dimension));
      }
      if (dim == 0) dim = n;
      if (n != dim) {
        return Status(Detail::kDimensionMismatch, str_cat("record '", node::escape_for_message(id), "' has dimension ",
                                                          n, ", collection '", collection, "' has ", dim));
      }
      // The node's one check for records from apps and peers (finite values, metadata, model
      // tag), so cold search never scores a NaN, under the collection's metric as the member
      // said it (the sink keeps no collection spec): cosine refuses the zero vector. A member that
      // did not say gets l2's rules, which refuse the least.
      Status valid = node::validate_record(*v, n, metric.value_or(index::Metric::kL2), l);
      if (!valid.ok()) {
        return Status(valid.detail(), "record '" + node::escape_for_message(id) + "': " + valid.message());
      }
    }
  }
  return dim;
}

const SinkService::Collection* SinkService::find(std::string_view name) const {
  auto it = collections_.find(name);
  return it == collections_.end() ? nullptr : it->second.get();
}

std::string SinkService::next_key(std::string_view kind, std::string_view collection) {
  char digits[kSeqDigits + 1];
  std::snprintf(digits, sizeof digits, "%020" PRIu64, next_seq_++);
  return str_cat(kind, "/", collection, "/", digits);
}

Status SinkService::apply(Collection& c, const crdt::Delta& delta, std::string_view key, std::uint64_t bytes) {
  Collection w = c;
  SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_write());
  if (w.cid == 0) {  // the collection's first transaction: its number in the env, from the meta counter
    std::uint64_t next = 1;
    auto got = txn->get(store::Table::kMeta, kNextCidKey);
    if (got.ok()) {
      auto n = store::decode_u64_be(*got);
      if (!n.ok() || *n == 0 || *n > UINT32_MAX) return Status(Code::kCorruption, "the state's next cid is no cid", std::string(kNextCidKey));
      next = *n;
    } else if (got.status().code() != Code::kNotFound) {
      return got.status();
    }
    w.cid = static_cast<std::uint32_t>(next);
    SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kMeta, kNextCidKey, store::encode_u64_be(next + 1)));
  }
  for (const auto& [id, remote] : delta.records) {
    const std::string rk = in_collection(c.name, id);
    StoredRecord local;
    auto got = txn->get(store::Table::kRecords, rk);
    const bool existed = got.ok();
    if (existed) {
      SHOAL_ASSIGN_OR_RETURN(local, read_whole(*txn, w.cid, w.dimension, rk, *got));
    } else if (got.status().code() != Code::kNotFound) {
      return got.status();
    }
    const crdt::Dot old_winner = existed ? crdt::winner(local.entries)->dot : crdt::Dot{};
    const std::uint64_t old_entries = local.entries.size();
    const std::uint64_t old_payload = payload_size(local.entries);
    // The node's join of one record (crdt/or_map.hpp): the delta's context judges the entries
    // held here, the collection's context the delta's.
    if (!crdt::join_entries(local.entries, w.context, remote, delta.context)) continue;
    w.live_entries = w.live_entries - old_entries + local.entries.size();
    w.payload_bytes = w.payload_bytes - old_payload + payload_size(local.entries);
    if (local.entries.empty()) {
      SHOAL_RETURN_IF_ERROR(free_label(*txn, w, local.label));
      SHOAL_RETURN_IF_ERROR(txn->del(store::Table::kRecords, rk));
      --w.records;
      continue;
    }
    if (!existed) local.label = ++w.records;  // the first free slot (labels are dense)
    const crdt::Entry* win = crdt::winner(local.entries);
    // The index: the object that holds the winner, when this object brought it.
    const bool here = std::any_of(remote.begin(), remote.end(), [&](const crdt::Entry& e) { return e.dot == win->dot; });
    if (here && !key.empty()) local.holder = std::string(key);
    const bool new_winner = !existed || !(win->dot == old_winner);
    SHOAL_ASSIGN_OR_RETURN(const std::string floats, node::format::elide_winner_vector(local.entries));
    if (new_winner) {
      const auto dim = static_cast<std::uint32_t>(floats.size() / sizeof(float));
      if (w.dimension == 0) w.dimension = dim;
      // The live winners share one dimension (uploads are checked against it): an object changed
      // in the store since that breaks it would put a vector of another size in the slabs (D58).
      if (dim != w.dimension) {
        return Status(Code::kCorruption, str_cat("record '", node::escape_for_message(id), "' has a vector of dimension ",
                                                 dim, ", collection '", c.name, "' has ", w.dimension),
                      std::string(key));
      }
      SHOAL_RETURN_IF_ERROR(node::format::put_vector(*txn, w.cid, local.label, floats));
      if (!existed) SHOAL_RETURN_IF_ERROR(txn->put(kLabels, slot_key(w.cid, local.label), id));
    }
    SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kRecords, rk, encode_record(local.holder, local.label, local.entries)));
  }
  // The dimension is the live records' (they all share it, validate_records sees to that): with
  // none live the collection has none, so a device that deleted everything and recreated the
  // collection with another dimension is taken, and open() never keeps the dimension of records
  // deleted since.
  if (w.records == 0) w.dimension = 0;
  w.context.merge(delta.context);
  if (!key.empty()) {
    std::string_view kind, coll;
    std::uint64_t seq = 0;
    const bool parsed = parse_key(key, kind, coll, seq);
    SHOAL_ASSERT(parsed);
    const std::string_view k = kind == kSegmentKind ? kSegmentKind : kind == kDeltaKind ? kDeltaKind : kContextKind;
    const ObjectInfo info{bytes, k == kSegmentKind ? entry_count(delta.records) : 0};
    const std::string ok = in_collection(c.name, key);
    auto prior = txn->get(store::Table::kDeltas, ok);
    if (prior.status().code() == Code::kNotFound) {  // a rebuild may apply an object twice: count it once
      w.count_object(k, info, +1);
      SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kDeltas, ok, encode_object(info)));
    } else if (!prior.ok()) {
      return prior.status();
    }
  }
  crdt::Bytes ctx;
  crdt::encode_context(w.context, ctx);
  SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kContexts, c.name, as_view(ctx)));
  SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kCatalogue, c.name, w.encode_counters()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  c = std::move(w);
  return ok_status();
}

Status SinkService::free_label(store::WriteTxn& txn, const Collection& w, std::uint64_t label) {
  const std::uint64_t last = w.records;
  if (label == 0 || label > last) {
    return Status(Code::kCorruption, str_cat("state record of label ", label, ", the collection has ", last), w.name);
  }
  if (label != last) {
    SHOAL_ASSIGN_OR_RETURN(const std::string moved_id, txn.get(kLabels, slot_key(w.cid, last)));
    SHOAL_ASSIGN_OR_RETURN(const std::string_view view, node::format::get_vector(txn, w.cid, w.dimension, last));
    const std::string floats(view);  // the view ends at the next write
    SHOAL_RETURN_IF_ERROR(node::format::put_vector(txn, w.cid, label, floats));
    SHOAL_RETURN_IF_ERROR(txn.put(kLabels, slot_key(w.cid, label), moved_id));
    const std::string mk = in_collection(w.name, moved_id);
    SHOAL_ASSIGN_OR_RETURN(const std::string mv, txn.get(store::Table::kRecords, mk));
    SHOAL_ASSIGN_OR_RETURN(StoredRecord moved, decode_record(mk, mv));
    if (moved.label != last) {
      return Status(Code::kCorruption, str_cat("label ", last, " names a record of label ", moved.label), mk);
    }
    SHOAL_RETURN_IF_ERROR(txn.put(store::Table::kRecords, mk, encode_record(moved.holder, label, moved.entries)));
  }
  SHOAL_RETURN_IF_ERROR(node::format::del_vector(txn, w.cid, last));
  return txn.del(kLabels, slot_key(w.cid, last));
}

Result<SinkService::Collection*> SinkService::collection_for_write(std::string_view name) {
  SHOAL_RETURN_IF_ERROR(check_collection_name(name));
  auto it = collections_.find(name);
  if (it != collections_.end()) return it->second.get();
  if (collections_.size() >= limits_.max_collections) {
    return Status(Detail::kTooLarge, str_cat("the sink holds ", collections_.size(), " collections, limit ",
                                             limits_.max_collections, "; refused '", name, "'"));
  }
  auto fresh = std::make_unique<Collection>();
  fresh->name = std::string(name);
  Collection* c = fresh.get();
  collections_.emplace(fresh->name, std::move(fresh));
  return c;
}

Status SinkService::check_spec(std::string_view collection, const std::optional<node::CollectionSpec>& spec,
                               std::optional<index::Metric> metric, std::uint32_t dimension) const {
  if (!spec) return ok_status();
  node::Limits l;
  l.max_collection_name_bytes = limits_.max_collection_name_bytes;
  l.max_dimension = limits_.max_dimension;
  SHOAL_RETURN_IF_ERROR(node::validate_spec(*spec, l).with_context("the upload's spec"));
  if (spec->name != collection) {
    return Status(Code::kInvalidArgument, str_cat("the upload's spec names collection '", node::escape_for_message(spec->name),
                                                  "', the upload is of '", collection, "'"));
  }
  if (metric && spec->metric != *metric) {
    return Status(Code::kInvalidArgument,
                  str_cat("the upload's spec says metric ", unsigned(node::metric_to_wire_byte(spec->metric)),
                          ", its metric byte ", unsigned(node::metric_to_wire_byte(*metric))));
  }
  if (dimension != 0 && spec->dimension != dimension) {
    return Status(Detail::kDimensionMismatch, str_cat("the upload's spec says dimension ", spec->dimension,
                                                      ", its records have ", dimension));
  }
  return ok_status();
}

bool SinkService::replace_setting(Collection& c, std::string_view kind, std::string_view bytes, std::string& key) {
  // After the upload's own object, which is acknowledged whatever happens here: a put that fails
  // leaves the setting unknown (or the old one), and the next upload that says it tries again.
  std::string fresh = next_key(kind, c.name);
  if (!store_.put(fresh, bytes).ok()) return false;
  // The older one, best effort: at open the newest wins anyway.
  if (!key.empty()) (void)store_.remove(key);
  key = std::move(fresh);
  return true;
}

void SinkService::remember_metric(Collection& c, std::optional<index::Metric> metric) {
  if (!metric || c.metric == metric) return;
  const char byte = static_cast<char>(node::metric_to_wire_byte(*metric));
  if (!replace_setting(c, kSpecKind, std::string_view(&byte, 1), c.metric_key)) return;
  c.metric = metric;
  // The counters carry the metric. When this commit fails the state env keeps the older one, and
  // the next open reads the newest metric object anyway (catch_up), so both agree again.
  (void)apply(c, crdt::Delta{}, "", 0);
}

void SinkService::remember_spec(Collection& c, const std::optional<node::CollectionSpec>& spec) {
  if (!spec) return;
  const std::string bytes = node::format::encode_spec(*spec, 0);
  if (c.spec && node::format::encode_spec(*c.spec, 0) == bytes) return;
  if (replace_setting(c, kIndexKind, bytes, c.spec_key)) c.spec = spec;
}

// After the object's put: joins it into the state; when the state commit fails, takes the object
// back out (best effort: an object left behind is joined at the next open) and says so.
Result<SinkService::Collection*> SinkService::join_stored(std::string_view collection, const crdt::Delta& delta,
                                                         const std::string& key, std::uint64_t bytes) {
  const bool is_new = find(collection) == nullptr;
  SHOAL_ASSIGN_OR_RETURN(Collection * c, collection_for_write(collection));
  Status st = apply(*c, delta, key, bytes);
  if (st.ok()) return c;
  if (is_new) collections_.erase(std::string(collection));
  const bool removed = store_.remove(key).ok();
  return st.with_context(str_cat("the sink's state (object ", key,
                                 removed ? " taken back" : " kept: joined at the next open", ")"));
}

Result<UploadAck> SinkService::upload_segment(std::string_view segment_bytes, std::int64_t now_wall_ns,
                                              std::optional<index::Metric> metric,
                                              const std::optional<node::CollectionSpec>& spec) {
  if (segment_bytes.size() > limits_.max_upload_bytes) {
    return Status(Detail::kTooLarge,
                  str_cat("segment of ", segment_bytes.size(), " bytes, limit ", limits_.max_upload_bytes));
  }
  SHOAL_ASSIGN_OR_RETURN(Segment seg, decode_segment(segment_bytes, limits_.segment));
  SHOAL_RETURN_IF_ERROR(check_collection_name(seg.collection));
  if (seg.records.empty()) return Status(Detail::kOutOfRange, "segment of '" + seg.collection + "' has no records");
  crdt::Delta delta = segment_to_delta(seg);
  const Collection* existing = find(seg.collection);
  SHOAL_ASSIGN_OR_RETURN(const std::uint32_t dimension, validate_records(existing, seg.collection, delta.records, metric));
  SHOAL_RETURN_IF_ERROR(check_spec(seg.collection, spec, metric, dimension));
  if (existing == nullptr && collections_.size() >= limits_.max_collections) {
    return Status(Detail::kTooLarge, str_cat("the sink holds ", collections_.size(), " collections, limit ",
                                             limits_.max_collections, "; refused '", seg.collection, "'"));
  }
  const std::uint64_t seq = next_seq_;
  std::string key = next_key(kSegmentKind, seg.collection);
  SHOAL_RETURN_IF_ERROR(store_.put(key, segment_bytes));
  SHOAL_ASSIGN_OR_RETURN(Collection * c, join_stored(seg.collection, delta, key, segment_bytes.size()));
  c->last_seq = seq;
  c->last_ack_wall_ns = now_wall_ns;
  last_ack_seq_ = seq;
  last_ack_wall_ns_ = now_wall_ns;
  ++uploads_;
  remember_metric(*c, metric);
  remember_spec(*c, spec);
  return UploadAck{std::move(key), seq, static_cast<std::uint32_t>(seg.records.size()), segment_bytes.size()};
}

Result<UploadAck> SinkService::apply_delta(std::string_view collection, std::string_view delta_bytes,
                                           std::int64_t now_wall_ns, std::optional<index::Metric> metric,
                                           const std::optional<node::CollectionSpec>& spec) {
  SHOAL_RETURN_IF_ERROR(check_collection_name(collection));
  if (delta_bytes.size() > limits_.max_delta_bytes) {
    return Status(Detail::kTooLarge, str_cat("delta of ", delta_bytes.size(), " bytes, limit ", limits_.max_delta_bytes));
  }
  auto decoded = crdt::decode_delta(as_bytes(delta_bytes));
  if (!decoded.ok()) {
    return Status(Detail::kMalformed, "delta of '" + std::string(collection) + "' does not decode: " +
                                          decoded.status().to_string());
  }
  crdt::Delta delta = std::move(*decoded);
  if (delta.empty()) return UploadAck{};
  const Collection* existing = find(collection);
  SHOAL_ASSIGN_OR_RETURN(const std::uint32_t dimension, validate_records(existing, collection, delta.records, metric));
  SHOAL_RETURN_IF_ERROR(check_spec(collection, spec, metric, dimension));
  if (existing == nullptr && collections_.size() >= limits_.max_collections) {
    return Status(Detail::kTooLarge, str_cat("the sink holds ", collections_.size(), " collections, limit ",
                                             limits_.max_collections, "; refused '", collection, "'"));
  }
  const std::uint64_t seq = next_seq_;
  std::string key = next_key(kDeltaKind, collection);
  SHOAL_RETURN_IF_ERROR(store_.put(key, delta_bytes));
  SHOAL_ASSIGN_OR_RETURN(Collection * c, join_stored(collection, delta, key, delta_bytes.size()));
  c->last_seq = seq;
  c->last_ack_wall_ns = now_wall_ns;
  last_ack_seq_ = seq;
  last_ack_wall_ns_ = now_wall_ns;
  ++deltas_;
  remember_metric(*c, metric);
  remember_spec(*c, spec);
  return UploadAck{std::move(key), seq, static_cast<std::uint32_t>(delta.records.size()), delta_bytes.size()};
}

Result<ColdSearchResult> SinkService::cold_search(std::string_view collection, std::span<const float> query,
                                                  std::uint32_t k, index::Metric metric) const {
  const Collection* c = find(collection);
  if (c == nullptr) return Status(Detail::kNoSuchCollection, "the sink holds no collection '" + std::string(collection) + "'");
  if (k == 0) return Status(Detail::kOutOfRange, "k is 0, must be 1.." + std::to_string(limits_.max_k));
  if (k > limits_.max_k) return Status(Detail::kTooLarge, str_cat("k is ", k, ", limit ", limits_.max_k));
  ColdSearchResult out;
  out.freshness = Freshness{c->objects(), c->last_seq, c->last_ack_wall_ns, c->records};
  if (c->dimension == 0) return out;
  SHOAL_RETURN_IF_ERROR(node::validate_vector(query, c->dimension, metric));
  // One scan of the collection's slabs in place, in label order (D66): several vectors to a page
  // run, read from the map as the node's float source reads them. Labels say nothing of ids, so
  // the k nearest are kept by (distance, label), and the smallest distance left out is noted: when
  // it equals the k-th's, a tie crosses the cut and a second scan settles it by id, as a scan in
  // id order did.
  SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_read());
  const index::KernelTable& kernels = index::best_kernels();
  const std::size_t dim = c->dimension;
  using index::Neighbor;
  using index::detail::TopK;
  std::vector<Neighbor> heap;
  heap.reserve(k + 1);
  float left_out = std::numeric_limits<float>::infinity();
  std::vector<float> aligned(dim);
  const auto distance = [&](std::string_view floats) {
    const float* p = reinterpret_cast<const float*>(floats.data());
    if (reinterpret_cast<std::uintptr_t>(floats.data()) % alignof(float) != 0) {  // the memory store's values
      std::memcpy(aligned.data(), floats.data(), floats.size());
      p = aligned.data();
    }
    return index::detail::float_distance(kernels, metric, query.data(), p, dim);
  };
  SHOAL_RETURN_IF_ERROR(node::format::scan_vectors(
      *txn, c->cid, c->dimension, [&](std::uint64_t label, std::string_view floats) {
        const Neighbor n{label, distance(floats)};
        if (heap.size() < k) {
          heap.push_back(n);
          std::push_heap(heap.begin(), heap.end(), TopK::less);
        } else if (TopK::less(n, heap.front())) {
          left_out = std::min(left_out, heap.front().distance);
          std::pop_heap(heap.begin(), heap.end(), TopK::less);
          heap.back() = n;
          std::push_heap(heap.begin(), heap.end(), TopK::less);
        } else {
          left_out = std::min(left_out, n.distance);
        }
        return true;
      }));
  std::sort_heap(heap.begin(), heap.end(), TopK::less);
  if (!heap.empty() && heap.size() == k && left_out == heap.back().distance) {
    // The tie at the cut: every record at the k-th distance competes by id for what is left.
    const float cut = heap.back().distance;
    while (!heap.empty() && heap.back().distance == cut) heap.pop_back();
    SHOAL_RETURN_IF_ERROR(node::format::scan_vectors(*txn, c->cid, c->dimension,
                                                     [&](std::uint64_t label, std::string_view floats) {
                                                       if (distance(floats) == cut) heap.push_back(Neighbor{label, cut});
                                                       return true;
                                                     }));
  }
  struct Hit {
    float distance;
    std::string id;
  };
  std::vector<Hit> hits;
  hits.reserve(heap.size());
  for (const Neighbor& n : heap) {
    auto id = txn->get(kLabels, slot_key(c->cid, n.label));
    if (!id.ok()) {
      return Status(Code::kCorruption, str_cat("the state's slot ", n.label, " names no record: ", id.status().to_string()),
                    std::string(collection));
    }
    hits.push_back(Hit{n.distance, std::move(*id)});
  }
  std::sort(hits.begin(), hits.end(),
            [](const Hit& a, const Hit& b) { return a.distance < b.distance || (a.distance == b.distance && a.id < b.id); });
  if (hits.size() > k) hits.resize(k);
  for (Hit& h : hits) {
    const std::string rk = in_collection(collection, h.id);
    SHOAL_ASSIGN_OR_RETURN(std::string_view value, txn->get_view(store::Table::kRecords, rk));
    SHOAL_ASSIGN_OR_RETURN(StoredRecord r, decode_record(rk, value));
    crdt::CausalContext dots;
    for (const auto& e : r.entries) dots.add(e.dot);
    crdt::Bytes bytes;
    crdt::encode_context(dots, bytes);
    out.hits.push_back(ColdHit{std::move(h.id), h.distance, std::string(as_view(bytes))});
  }
  return out;
}

Result<std::vector<FetchedRecord>> SinkService::fetch(std::string_view collection,
                                                      std::span<const std::string> ids) const {
  const Collection* c = find(collection);
  if (c == nullptr) return Status(Detail::kNoSuchCollection, "the sink holds no collection '" + std::string(collection) + "'");
  if (ids.size() > limits_.max_fetch_ids) {
    return Status(Detail::kTooLarge, str_cat("fetch of ", ids.size(), " ids, limit ", limits_.max_fetch_ids));
  }
  node::Limits l;
  for (const std::string& id : ids) SHOAL_RETURN_IF_ERROR(node::validate_record_id_for_lookup(id, l));
  SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_read());
  std::vector<FetchedRecord> out;
  out.reserve(ids.size());
  for (const std::string& id : ids) {
    FetchedRecord r;
    r.id = id;
    const std::string rk = in_collection(collection, id);
    auto got = txn->get_view(store::Table::kRecords, rk);
    if (got.ok()) {
      SHOAL_ASSIGN_OR_RETURN(StoredRecord s, read_whole(*txn, c->cid, c->dimension, rk, *got));
      const crdt::Entry* w = crdt::winner(s.entries);
      r.found = true;
      r.payload.assign(w->payload.begin(), w->payload.end());
      r.hlc = w->clock.raw();
      r.digest = payload_digest(r.payload);
      r.object = std::move(s.holder);
    } else if (got.status().code() != Code::kNotFound) {
      return got.status();
    }
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<crdt::DotRange>> SinkService::check_removed(std::string_view collection,
                                                               std::string_view removed_bytes) const {
  SHOAL_RETURN_IF_ERROR(check_collection_name(collection));
  if (removed_bytes.size() > limits_.max_delta_bytes) {
    return Status(Detail::kTooLarge, str_cat("removed dots of ", removed_bytes.size(), " bytes, limit ",
                                             limits_.max_delta_bytes));
  }
  auto ranges = crdt::decode_dot_ranges(as_bytes(removed_bytes), limits_.max_removed_ranges);
  if (!ranges.ok()) {
    if (ranges.status().detail() == Detail::kTooLarge) return ranges.status();
    return Status(Detail::kMalformed, "removed dots of '" + std::string(collection) + "' do not decode: " +
                                          ranges.status().to_string());
  }
  return std::move(*ranges);
}

Result<UploadAck> SinkService::remove_dots(std::string_view collection, std::span<const crdt::DotRange> ranges,
                                           std::int64_t now_wall_ns) {
  const Collection* c = find(collection);
  UploadAck ack;
  if (c == nullptr || ranges.empty()) return ack;  // nothing held
  // The records holding a removed dot, each as a peer's delete names it: no entries, the removed
  // dots as the context (its other entries are not covered, so they stay). Read first, then
  // joined in deltas of bounded size.
  std::vector<crdt::Delta> batches(1);
  std::size_t batch_bytes = 0;
  Status bad;
  {
    SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_read());
    SHOAL_RETURN_IF_ERROR(txn->scan(store::Table::kRecords, collection_range(collection),
                                    [&](std::string_view key, std::string_view v) {
                                      auto r = decode_record(key, v);
                                      if (!r.ok()) {
                                        bad = r.status();
                                        return false;
                                      }
                                      bool named = false;
                                      for (const crdt::Entry& e : r->entries) {
                                        if (!crdt::ranges_contain(ranges, e.dot)) continue;
                                        if (!named) {
                                          const std::size_t id_bytes = key.size() - collection.size() - 1;
                                          if (batch_bytes + id_bytes + 64 > limits_.max_delta_bytes / 2) {
                                            batches.emplace_back();
                                            batch_bytes = 0;
                                          }
                                          batches.back().records.emplace(std::string(key.substr(collection.size() + 1)),
                                                                         crdt::Entries{});
                                          batch_bytes += id_bytes + 8;
                                          named = true;
                                        }
                                        batches.back().context.add(e.dot);
                                        batch_bytes += 32;
                                      }
                                      return true;
                                    }));
    SHOAL_RETURN_IF_ERROR(bad);
  }
  std::uint32_t changed = 0;
  for (const crdt::Delta& d : batches) {
    if (d.records.empty()) continue;
    crdt::Bytes out;
    crdt::encode_delta(d, out);
    SHOAL_ASSIGN_OR_RETURN(ack, apply_delta(collection, std::string_view(reinterpret_cast<const char*>(out.data()), out.size()),
                                            now_wall_ns));
    changed += static_cast<std::uint32_t>(d.records.size());
  }
  ack.records = changed;
  return ack;
}

Result<BootstrapPage> SinkService::bootstrap(std::string_view collection, std::string_view after) const {
  const Collection* c = find(collection);
  if (c == nullptr) return Status(Detail::kNoSuchCollection, "the sink holds no collection '" + std::string(collection) + "'");
  SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_read());
  crdt::RecordMap page;
  std::size_t bytes = 0;
  bool more = false;
  Status bad;
  store::Range range = collection_range(collection);
  if (!after.empty()) range.begin = in_collection(collection, after) + std::string(1, '\0');  // ids after `after`
  SHOAL_RETURN_IF_ERROR(txn->scan(store::Table::kRecords, range, [&](std::string_view key, std::string_view v) {
    auto r = read_whole(*txn, c->cid, c->dimension, key, v);
    if (!r.ok()) {
      bad = r.status();
      return false;
    }
    std::size_t rb = key.size() - collection.size() - 1;
    for (const crdt::Entry& e : r->entries) rb += e.payload.size() + 64;
    if (!page.empty() && (page.size() >= limits_.max_bootstrap_records || bytes + rb > limits_.max_bootstrap_bytes)) {
      more = true;
      return false;
    }
    page.emplace(std::string(key.substr(collection.size() + 1)), std::move(r->entries));
    bytes += rb;
    return true;
  }));
  SHOAL_RETURN_IF_ERROR(bad);
  BootstrapPage out;
  out.dimension = c->dimension;
  out.metric = c->metric;
  out.spec = c->spec;
  out.done = !more;
  if (!page.empty()) {
    out.next_after = page.rbegin()->first;
    SHOAL_ASSIGN_OR_RETURN(out.segment, encode_segment(records_to_segment(collection, page), limits_.segment));
  } else {
    out.next_after = std::string(after);
  }
  // The last page's context judges the records it names; the first page's judges the records the
  // device holds that no page named (Node::join_sink_page): a record reaching this sink after
  // its key's page went by is covered by a later context, though it was never deleted.
  if (out.done || after.empty()) {
    crdt::Bytes ctx;
    crdt::encode_context(c->context, ctx);
    out.context.assign(ctx.begin(), ctx.end());
  }
  return out;
}

Result<std::uint64_t> SinkService::compact_one(Collection& c, CompactionReport& report) {
  // 1. The live records as new segments, numbered from `base` on, read from the state env one
  // segment at a time (a snapshot: nothing writes meanwhile, the service has one thread).
  const std::uint64_t base = next_seq_;
  std::vector<std::pair<std::string, ObjectInfo>> old_objects;
  std::vector<std::pair<std::string, ObjectInfo>> fresh;  // in id order: each segment's last id
  std::vector<std::string> last_ids;
  std::uint64_t written = 0;
  {
    SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_read());
    const std::string prefix = in_collection(c.name, "");
    SHOAL_RETURN_IF_ERROR(txn->scan(store::Table::kDeltas, collection_range(c.name), [&](std::string_view k, std::string_view v) {
      auto info = decode_object(k, v);
      old_objects.emplace_back(std::string(k.substr(prefix.size())), info.ok() ? *info : ObjectInfo{});
      return true;
    }));
    crdt::RecordMap part;
    std::size_t part_bytes = 0;
    auto flush = [&]() -> Status {
      if (part.empty()) return ok_status();
      SHOAL_ASSIGN_OR_RETURN(std::string bytes, encode_segment(records_to_segment(c.name, part), limits_.segment));
      std::string key = next_key(kSegmentKind, c.name);
      SHOAL_RETURN_IF_ERROR(store_.put(key, bytes));
      last_ids.push_back(part.rbegin()->first);
      fresh.emplace_back(std::move(key), ObjectInfo{bytes.size(), entry_count(part)});
      written += bytes.size();
      ++report.objects_written;
      part.clear();
      part_bytes = 0;
      return ok_status();
    };
    Status st;
    SHOAL_RETURN_IF_ERROR(txn->scan(store::Table::kRecords, collection_range(c.name), [&](std::string_view k, std::string_view v) {
      auto r = read_whole(*txn, c.cid, c.dimension, k, v);
      if (!r.ok()) {
        st = r.status();
        return false;
      }
      const std::string_view id = k.substr(prefix.size());
      std::size_t rb = id.size() + 8;
      for (const crdt::Entry& e : r->entries) rb += e.payload.size() + 72;
      if (!part.empty() && (part.size() >= limits_.max_compacted_segment_records ||
                            part_bytes + rb + 64 > limits_.segment.max_segment_bytes)) {
        st = flush();
        if (!st.ok()) return false;
      }
      part.emplace(std::string(id), std::move(r->entries));
      part_bytes += rb;
      return true;
    }));
    SHOAL_RETURN_IF_ERROR(st);
    SHOAL_RETURN_IF_ERROR(flush());
  }
  // 2. The context, so deleted records' dots stay covered once their deltas are gone.
  crdt::Bytes ctx;
  for (int i = 0; i < 8; ++i) ctx.push_back(static_cast<std::uint8_t>(base >> (8 * i)));
  crdt::encode_context(c.context, ctx);
  std::string ctx_key = next_key(kContextKind, c.name);
  SHOAL_RETURN_IF_ERROR(store_.put(ctx_key, as_view(ctx)));
  fresh.emplace_back(ctx_key, ObjectInfo{ctx.size(), 0});
  written += ctx.size();
  ++report.objects_written;
  // 3. One state transaction records the new objects and which one holds each winner, in
  // batches of records read and rewritten (the old objects stay recorded until removed).
  Collection w = c;
  {
    SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_write());
    for (const auto& [key, info] : fresh) {
      w.count_object(key.starts_with(kSegmentKind) ? kSegmentKind : kContextKind, info, +1);
      SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kDeltas, in_collection(c.name, key), encode_object(info)));
    }
    std::size_t seg = 0;
    store::Range range = collection_range(c.name);
    for (;;) {
      SHOAL_ASSIGN_OR_RETURN(auto batch, txn->collect(store::Table::kRecords, store::Range(range).limited(4096)));
      if (batch.empty()) break;
      for (const auto& kv : batch) {
        const std::string_view id = std::string_view(kv.key).substr(c.name.size() + 1);
        while (seg < last_ids.size() && last_ids[seg] < id) ++seg;
        SHOAL_ASSERT(seg < last_ids.size());  // every record is in a segment just written
        SHOAL_ASSIGN_OR_RETURN(StoredRecord r, decode_record(kv.key, kv.value));
        SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kRecords, kv.key, encode_record(fresh[seg].first, r.label, r.entries)));
      }
      range.begin = batch.back().key + std::string(1, '\0');
    }
    SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kCatalogue, c.name, w.encode_counters()));
    SHOAL_RETURN_IF_ERROR(txn->commit());
    c = w;
  }
  // 4. The old objects. A failure here leaves some behind; they join to the same state, and the
  // state keeps them recorded until a later compaction removes them.
  Status first_error;
  {
    SHOAL_ASSIGN_OR_RETURN(auto txn, state_.begin_write());
    for (const auto& [key, info] : old_objects) {
      Status st = store_.remove(key);
      if (!st.ok()) {
        if (first_error.ok()) first_error = st.with_context(key);
        continue;
      }
      std::string_view kind, coll;
      std::uint64_t seq = 0;
      (void)parse_key(key, kind, coll, seq);
      w.count_object(kind == kSegmentKind ? kSegmentKind : kind == kDeltaKind ? kDeltaKind : kContextKind, info, -1);
      SHOAL_RETURN_IF_ERROR(txn->del(store::Table::kDeltas, in_collection(c.name, key)));
      ++report.objects_removed;
    }
    SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kCatalogue, c.name, w.encode_counters()));
    // Not committed (a crash, a failed commit): open finds the removed objects gone, with a newer
    // compaction to explain it, and forgets them then.
    SHOAL_RETURN_IF_ERROR(txn->commit());
    c = std::move(w);
  }
  if (!first_error.ok()) return first_error;
  return written;
}

Result<CompactionReport> SinkService::compact() {
  CompactionReport report;
  for (auto& [name, c] : collections_) {
    report.bytes_before += c->object_bytes;
    if (c->dirty()) {
      SHOAL_RETURN_IF_ERROR(compact_one(*c, report).status());
      ++report.collections;
    }
    report.bytes_after += c->object_bytes;
  }
  return report;
}

SinkStatus SinkService::status() const {
  SinkStatus s;
  s.uploads = uploads_;
  s.deltas = deltas_;
  s.last_ack_seq = last_ack_seq_;
  s.last_ack_wall_ns = last_ack_wall_ns_;
  s.store_kind = std::string(store_.kind());
  for (const auto& [name, c] : collections_) {
    CollectionStatus cs;
    cs.name = name;
    cs.records = c->records;
    cs.bytes = c->object_bytes;
    cs.segments = c->segments;
    cs.deltas = c->deltas;
    s.payload_bytes += c->payload_bytes;
    s.records += cs.records;
    s.objects += c->objects();
    s.bytes_stored += cs.bytes;
    if (c->dirty()) s.backlog_objects += c->deltas + c->segments;
    s.collections.push_back(std::move(cs));
  }
  return s;
}

Result<StateEnv> open_state_env(const std::string& path) {
  store::LmdbStoreOptions o;
  o.path = path;
  // The map grows by doubling as the state does (LmdbStore); its ceiling is address space, not
  // disk, so it is set far above any sink's data (the node's 16 GiB default would stop a sink at
  // about 6 GiB of 784-d payload, docs/sink.md).
  o.map_size_max_bytes = std::uint64_t{1} << 40;
  StateEnv env;
  auto opened = store::LmdbStore::open(o);
  if (!opened.ok()) {
    env.discarded = opened.status().to_string();
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) return Status(Code::kIo, str_cat("cannot remove the sink's state env ", path, ": ", ec.message()));
    opened = store::LmdbStore::open(o);
    if (!opened.ok()) return opened.status().with_context("the sink's state env " + path);
  }
  env.store = std::move(*opened);
  return env;
}

std::vector<std::string> SinkService::collections() const {
  std::vector<std::string> out;
  for (const auto& [name, c] : collections_) out.push_back(name);
  return out;
}

}  // namespace shoal::sink

// sink/sink_service.cpp: see sink_service.hpp.
#include "sink/sink_service.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "common/log.hpp"
#include "crdt/codec.hpp"
#include "index/exact_index.hpp"
#include "index/kernels.hpp"
#include "node/core/node_format.hpp"
#include "node/core/record.hpp"

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

struct SinkService::Object {
  std::uint64_t bytes = 0;
  std::string_view kind;  // one of the k*Kind constants
  std::uint64_t entries = 0;  // entries a segment carried
};

struct SinkService::Collection {
  std::string name;
  crdt::Delta state;                                // records (live only) and the whole context
  std::uint32_t dimension = 0;                      // the live records' (0: none live)
  std::optional<index::Metric> metric;              // as uploads said it (a kSpecKind object)
  std::string metric_key;                           // the object that holds it ("" before one is stored)
  std::optional<node::CollectionSpec> spec;         // as uploads said it (a kIndexKind object, D62)
  std::string spec_key;                             // the object that holds it
  std::map<std::string, Object, std::less<>> objects;  // key -> what it holds (not metric_key)
  std::map<std::string, std::string, std::less<>> holder;  // record id -> object holding its winner
  std::uint64_t segment_entries = 0;  // entries carried by the segment objects
  std::uint64_t last_seq = 0;
  std::int64_t last_ack_wall_ns = 0;
  // Search cache: the winners' vectors, rebuilt when `version` moved past `cached_version`.
  std::uint64_t version = 0;
  mutable std::uint64_t cached_version = ~std::uint64_t{0};
  mutable std::vector<float> vectors;
  mutable std::vector<std::string> ids;

  std::uint64_t live_entries() const { return entry_count(state.records); }
  std::uint64_t delta_objects() const {
    std::uint64_t n = 0;
    for (const auto& [k, o] : objects) n += o.kind == kDeltaKind ? 1 : 0;
    return n;
  }
  std::uint64_t context_objects() const {
    std::uint64_t n = 0;
    for (const auto& [k, o] : objects) n += o.kind == kContextKind ? 1 : 0;
    return n;
  }
  // Anything compaction would fold or drop: delta objects, more than one context, or segment
  // entries that are no longer live (deleted, superseded, or carried twice).
  bool dirty() const {
    return delta_objects() > 0 || context_objects() > 1 || segment_entries != live_entries();
  }
};

SinkService::SinkService(ObjectStore& store, SinkLimits limits) : store_(store), limits_(std::move(limits)) {}
SinkService::~SinkService() = default;

Result<std::unique_ptr<SinkService>> SinkService::open(ObjectStore& store, SinkLimits limits) {
  std::unique_ptr<SinkService> s(new SinkService(store, std::move(limits)));
  SHOAL_RETURN_IF_ERROR(s->load());
  return s;
}

Status SinkService::load() {
  struct Found {
    std::string key;
    std::string_view kind;
    std::uint64_t seq = 0;
  };
  std::map<std::string, std::vector<Found>, std::less<>> by_collection;
  // One listing of everything (not one per kind: a prefix holding '/' is a query moto 5.2
  // re-encodes before it checks the signature, docs/sink-format.md); other keys are left alone.
  SHOAL_ASSIGN_OR_RETURN(auto keys, store_.list(""));
  for (std::string& key : keys) {
    std::string_view k, coll;
    std::uint64_t seq = 0;
    if (!parse_key(key, k, coll, seq)) continue;
    const std::string_view kind_const = k == kSegmentKind  ? kSegmentKind
                                        : k == kDeltaKind  ? kDeltaKind
                                        : k == kSpecKind   ? kSpecKind
                                        : k == kIndexKind  ? kIndexKind
                                                           : kContextKind;
    by_collection[std::string(coll)].push_back(Found{std::move(key), kind_const, seq});
  }
  for (auto& [name, found] : by_collection) {
    auto fresh = std::make_unique<Collection>();
    fresh->name = name;
    Collection& c = *fresh;
    collections_.emplace(name, std::move(fresh));
    std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.seq < b.seq; });
    // The newest compaction: its context object names the first sequence number of its segments.
    std::uint64_t base = 0, top = 0;
    crdt::Delta compacted;
    for (auto it = found.rbegin(); it != found.rend(); ++it) {
      if (it->kind != kContextKind) continue;
      SHOAL_ASSIGN_OR_RETURN(std::string bytes, store_.get(it->key));
      if (bytes.size() < 8) return Status(Detail::kTruncated, "context object shorter than its 8-byte header", it->key);
      for (int i = 7; i >= 0; --i) base = (base << 8) | static_cast<std::uint8_t>(bytes[static_cast<std::size_t>(i)]);
      auto ctx = crdt::decode_context(as_bytes(std::string_view(bytes).substr(8)));
      if (!ctx.ok()) return Status(Code::kCorruption, "context object does not decode: " + ctx.status().to_string(), it->key);
      compacted.context = std::move(*ctx);
      top = it->seq;
      break;
    }
    // Two passes, so that memory holds the state and one decoded object at a time, never every
    // object decoded at once (a restart's peak, D54): first the newest compaction's segments,
    // which with its context are the compacted state; then every other object in sequence order,
    // each joined as the delta it is as soon as it is read. Delta::join is the state join, so
    // the others' order does not change the state, and an object older than the compaction whose
    // entries are dead there is judged by the compacted context; the index of which object holds
    // each winner (`holder`) follows the same order as before: the compacted state first.
    auto in_compaction = [&](const Found& f) {
      return f.kind == kSegmentKind && top != 0 && f.seq >= base && f.seq < top;
    };
    auto read_object = [&](const Found& f) -> Result<std::pair<crdt::Delta, std::uint64_t>> {
      SHOAL_ASSIGN_OR_RETURN(std::string bytes, store_.get(f.key));
      if (f.kind == kSegmentKind) {
        auto seg = decode_segment(bytes, limits_.segment);
        if (!seg.ok()) return Status(Code::kCorruption, "segment object does not decode: " + seg.status().to_string(), f.key);
        if (seg->collection != c.name) {
          return Status(Code::kCorruption, "segment of collection '" + seg->collection + "' under another key", f.key);
        }
        return std::pair{segment_to_delta(*seg), std::uint64_t{bytes.size()}};
      }
      auto d = crdt::decode_delta(as_bytes(bytes));
      if (!d.ok()) return Status(Code::kCorruption, "delta object does not decode: " + d.status().to_string(), f.key);
      return std::pair{std::move(*d), std::uint64_t{bytes.size()}};
    };
    for (const Found& f : found) {
      next_seq_ = std::max(next_seq_, f.seq + 1);
      if (f.kind == kSpecKind) {  // sorted by seq: the newest is read last
        SHOAL_ASSIGN_OR_RETURN(std::string bytes, store_.get(f.key));
        auto m = bytes.size() == 1 ? node::metric_from_wire_byte(static_cast<std::uint8_t>(bytes[0])) : std::nullopt;
        if (!m) return Status(Code::kCorruption, str_cat("metric object of ", bytes.size(), " bytes is no metric byte"), f.key);
        c.metric = *m;
        c.metric_key = f.key;
        continue;
      }
      if (f.kind == kIndexKind) {  // the same for the spec
        SHOAL_ASSIGN_OR_RETURN(std::string bytes, store_.get(f.key));
        auto spec = node::format::decode_spec(c.name, bytes);
        if (!spec.ok()) return Status(Code::kCorruption, "spec object does not decode", f.key);
        c.spec = std::move(spec->first);
        c.spec_key = f.key;
        continue;
      }
      last_ack_seq_ = std::max(last_ack_seq_, f.seq);
      c.last_seq = std::max(c.last_seq, f.seq);
      if (!in_compaction(f)) continue;
      SHOAL_ASSIGN_OR_RETURN(auto got, read_object(f));
      auto& [delta, bytes] = got;
      // One of the newest compaction's segments: part of the state that context describes.
      const std::uint64_t n = entry_count(delta.records);
      for (auto& [id, entries] : delta.records) {
        c.holder[id] = f.key;
        compacted.records[id] = std::move(entries);
      }
      c.objects[f.key] = Object{bytes, kSegmentKind, n};
      c.segment_entries += n;
    }
    if (top != 0) {
      // The state is empty, so the compacted state is the join; moved, not copied.
      c.state = std::move(compacted);
      join(c, crdt::Delta{}, std::string(), 0, false);
    }
    for (const Found& f : found) {
      if (in_compaction(f) || f.kind == kSpecKind || f.kind == kIndexKind) continue;
      if (f.kind == kContextKind) {
        auto got = store_.get(f.key);
        if (!got.ok()) return got.status().with_context(f.key);
        c.objects[f.key] = Object{got->size(), kContextKind, 0};
        continue;
      }
      SHOAL_ASSIGN_OR_RETURN(auto got, read_object(f));
      auto& [delta, bytes] = got;
      if (f.kind == kSegmentKind) c.segment_entries += entry_count(delta.records);
      join(c, delta, f.key, bytes, f.kind == kDeltaKind);
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

void SinkService::join(Collection& c, const crdt::Delta& delta, std::string key, std::uint64_t bytes, bool is_delta) {
  c.state.join(delta);
  // Delta::join keeps named-but-empty ids (a delete); the state keeps live records only.
  for (auto it = c.state.records.begin(); it != c.state.records.end();) {
    if (it->second.empty()) {
      c.holder.erase(it->first);
      it = c.state.records.erase(it);
    } else {
      ++it;
    }
  }
  // The index: the object that holds each named record's winner, when this object brought it.
  for (const auto& [id, entries] : delta.records) {
    auto live = c.state.records.find(id);
    if (live == c.state.records.end()) continue;
    const crdt::Entry* w = crdt::winner(live->second);
    const bool here = std::any_of(entries.begin(), entries.end(), [&](const crdt::Entry& e) { return e.dot == w->dot; });
    if (here && !key.empty()) c.holder[id] = key;
  }
  // The dimension is the live records' (they all share it, validate_records sees to that): with
  // none live the collection has none, so a device that deleted everything and recreated the
  // collection with another dimension is taken, and open() never keeps the dimension of records
  // deleted since.
  c.dimension = 0;
  if (!c.state.records.empty()) {
    auto v = node::decode_payload(as_view(crdt::winner(c.state.records.begin()->second)->payload));
    SHOAL_ASSERT(v.ok());  // validated before it was stored
    c.dimension = static_cast<std::uint32_t>(v->vector.size());
  }
  ++c.version;
  if (key.empty()) return;
  Object& o = c.objects[key];
  o.bytes = bytes;
  o.kind = is_delta ? kDeltaKind : kSegmentKind;
  o.entries = is_delta ? 0 : entry_count(delta.records);
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
  if (replace_setting(c, kSpecKind, std::string_view(&byte, 1), c.metric_key)) c.metric = metric;
}

void SinkService::remember_spec(Collection& c, const std::optional<node::CollectionSpec>& spec) {
  if (!spec) return;
  const std::string bytes = node::format::encode_spec(*spec, 0);
  if (c.spec && node::format::encode_spec(*c.spec, 0) == bytes) return;
  if (replace_setting(c, kIndexKind, bytes, c.spec_key)) c.spec = spec;
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
  SHOAL_ASSIGN_OR_RETURN(Collection * c, collection_for_write(seg.collection));
  c->segment_entries += entry_count(delta.records);
  join(*c, delta, key, segment_bytes.size(), false);
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
  SHOAL_ASSIGN_OR_RETURN(Collection * c, collection_for_write(collection));
  join(*c, delta, key, delta_bytes.size(), true);
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
  out.freshness = Freshness{c->objects.size(), c->last_seq, c->last_ack_wall_ns, c->state.records.size()};
  if (c->dimension == 0) return out;
  SHOAL_RETURN_IF_ERROR(node::validate_vector(query, c->dimension, metric));
  if (c->cached_version != c->version) {
    c->vectors.clear();
    c->ids.clear();
    for (const auto& [id, entries] : c->state.records) {
      const crdt::Entry* w = crdt::winner(entries);
      auto v = node::decode_payload(as_view(w->payload));
      SHOAL_ASSERT(v.ok());  // validated before it was stored
      c->vectors.insert(c->vectors.end(), v->vector.begin(), v->vector.end());
      c->ids.push_back(id);
    }
    c->cached_version = c->version;
  }
  auto near = index::exact_knn(index::best_kernels(), metric, c->vectors, c->dimension, query, k);
  for (const auto& n : near) {
    const std::string& id = c->ids[n.label];
    crdt::CausalContext dots;
    for (const auto& e : c->state.records.at(id)) dots.add(e.dot);
    crdt::Bytes bytes;
    crdt::encode_context(dots, bytes);
    out.hits.push_back(ColdHit{id, n.distance, std::string(as_view(bytes))});
  }
  // exact_knn breaks ties by row, and rows are in id order: ties come out by id.
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
  std::vector<FetchedRecord> out;
  out.reserve(ids.size());
  for (const std::string& id : ids) {
    FetchedRecord r;
    r.id = id;
    auto it = c->state.records.find(id);
    if (it != c->state.records.end()) {
      const crdt::Entry* w = crdt::winner(it->second);
      r.found = true;
      r.payload.assign(w->payload.begin(), w->payload.end());
      r.hlc = w->clock.raw();
      r.digest = payload_digest(r.payload);
      auto h = c->holder.find(id);
      if (h != c->holder.end()) r.object = h->second;
    }
    out.push_back(std::move(r));
  }
  return out;
}

Result<BootstrapPage> SinkService::bootstrap(std::string_view collection, std::string_view after) const {
  const Collection* c = find(collection);
  if (c == nullptr) return Status(Detail::kNoSuchCollection, "the sink holds no collection '" + std::string(collection) + "'");
  crdt::RecordMap page;
  std::size_t bytes = 0;
  auto it = after.empty() ? c->state.records.begin() : c->state.records.upper_bound(after);
  for (; it != c->state.records.end(); ++it) {
    std::size_t rb = it->first.size();
    for (const crdt::Entry& e : it->second) rb += e.payload.size() + 64;
    if (!page.empty() && (page.size() >= limits_.max_bootstrap_records || bytes + rb > limits_.max_bootstrap_bytes)) break;
    page.emplace(it->first, it->second);
    bytes += rb;
  }
  BootstrapPage out;
  out.dimension = c->dimension;
  out.metric = c->metric;
  out.spec = c->spec;
  out.done = it == c->state.records.end();
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
    crdt::encode_context(c->state.context, ctx);
    out.context.assign(ctx.begin(), ctx.end());
  }
  return out;
}

Result<std::uint64_t> SinkService::compact_one(Collection& c, CompactionReport& report) {
  // 1. The live records as new segments, numbered from `base` on.
  const std::uint64_t base = next_seq_;
  std::vector<std::string> old_keys;
  for (const auto& [key, o] : c.objects) old_keys.push_back(key);
  std::map<std::string, Object, std::less<>> fresh;
  std::map<std::string, std::string, std::less<>> holder;
  std::uint64_t written = 0;
  crdt::RecordMap part;
  auto flush = [&]() -> Status {
    if (part.empty()) return ok_status();
    SHOAL_ASSIGN_OR_RETURN(std::string bytes, encode_segment(records_to_segment(c.name, part), limits_.segment));
    std::string key = next_key(kSegmentKind, c.name);
    SHOAL_RETURN_IF_ERROR(store_.put(key, bytes));
    for (const auto& [id, e] : part) holder[id] = key;
    fresh[key] = Object{bytes.size(), kSegmentKind, entry_count(part)};
    written += bytes.size();
    ++report.objects_written;
    part.clear();
    return ok_status();
  };
  std::size_t part_bytes = 0;
  for (const auto& [id, entries] : c.state.records) {
    std::size_t rb = id.size() + 8;
    for (const crdt::Entry& e : entries) rb += e.payload.size() + 72;
    if (!part.empty() && (part.size() >= limits_.max_compacted_segment_records ||
                          part_bytes + rb + 64 > limits_.segment.max_segment_bytes)) {
      SHOAL_RETURN_IF_ERROR(flush());
      part_bytes = 0;
    }
    part.emplace(id, entries);
    part_bytes += rb;
  }
  SHOAL_RETURN_IF_ERROR(flush());
  // 2. The context, so deleted records' dots stay covered once their deltas are gone.
  crdt::Bytes ctx;
  for (int i = 0; i < 8; ++i) ctx.push_back(static_cast<std::uint8_t>(base >> (8 * i)));
  crdt::encode_context(c.state.context, ctx);
  std::string ctx_key = next_key(kContextKind, c.name);
  SHOAL_RETURN_IF_ERROR(store_.put(ctx_key, as_view(ctx)));
  fresh[ctx_key] = Object{ctx.size(), kContextKind, 0};
  written += ctx.size();
  ++report.objects_written;
  // 3. The old objects. A failure here leaves some behind; they join to the same state.
  Status first_error;
  for (const std::string& key : old_keys) {
    Status st = store_.remove(key);
    if (!st.ok()) {
      if (first_error.ok()) first_error = st.with_context(key);
      fresh[key] = c.objects[key];
      continue;
    }
    ++report.objects_removed;
  }
  c.objects = std::move(fresh);
  c.holder = std::move(holder);
  c.segment_entries = 0;
  for (const auto& [k, o] : c.objects) c.segment_entries += o.kind == kSegmentKind ? o.entries : 0;
  if (!first_error.ok()) return first_error;
  return written;
}

Result<CompactionReport> SinkService::compact() {
  CompactionReport report;
  for (auto& [name, c] : collections_) {
    for (const auto& [k, o] : c->objects) report.bytes_before += o.bytes;
    if (c->dirty()) {
      SHOAL_RETURN_IF_ERROR(compact_one(*c, report).status());
      ++report.collections;
    }
    for (const auto& [k, o] : c->objects) report.bytes_after += o.bytes;
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
    cs.records = c->state.records.size();
    for (const auto& [k, o] : c->objects) {
      cs.bytes += o.bytes;
      if (o.kind == kSegmentKind) ++cs.segments;
      if (o.kind == kDeltaKind) ++cs.deltas;
    }
    for (const auto& [id, entries] : c->state.records) {
      for (const crdt::Entry& e : entries) s.payload_bytes += e.payload.size();
    }
    s.records += cs.records;
    s.objects += c->objects.size();
    s.bytes_stored += cs.bytes;
    if (c->dirty()) {
      s.backlog_objects += cs.deltas;
      for (const auto& [k, o] : c->objects) s.backlog_objects += o.kind == kSegmentKind ? 1 : 0;
    }
    s.collections.push_back(std::move(cs));
  }
  return s;
}

std::vector<std::string> SinkService::collections() const {
  std::vector<std::string> out;
  for (const auto& [name, c] : collections_) out.push_back(name);
  return out;
}

}  // namespace shoal::sink

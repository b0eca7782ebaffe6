// libFuzzer target: the sink's entry points (sink/sink_service.hpp) on a MemoryObjectStore, with
// what a member can send over the Sink capability (transport/sink.capnp) minus the socket: each
// input is a program of up to 48 calls (upload a segment: raw bytes, raw bytes re-sealed with a
// correct checksum, or a segment built from the input with valid or odd payloads, dots and ids;
// push a delta: raw bytes or one built from the input, deletes included; each upload with a metric
// byte or none, and with a collection spec or none, the spec's fields from the input (name,
// dimension, metric and index options in and out of range: D53's metric checks and D62's spec
// checks); cold search with any query, k and metric byte; fetch; a full bootstrap; compaction; a
// reopen of the service from the store; a store write failure before the next call). Proves, by not
// crashing under ASan+UBSan and by trapping on a broken rule, that:
//   - no call crashes or reads out of bounds, whatever the bytes claim;
//   - a refused call changes nothing (the state, read back through bootstrap, and the store's
//     objects are the same before and after);
//   - the metric and spec an accepted upload said are the ones bootstrap pages say;
//   - compaction changes no state, and a reopen from the store gives back the same state (what
//     the sink acknowledged is what it holds, with the metric and spec kept beside it);
//   - bootstrap pages decode as segments, carry ascending ids and end with a context that decodes
//     as a node decodes it; cold search returns at most k hits, closest first, each a live record.
// The collection and record names come mostly from small sets, so calls meet the same records.
// Seeds: tests/fuzz/corpus/fuzz_sink_service; regressions: tests/fuzz/regressions/sink_service_*.
#include <fuzzer/FuzzedDataProvider.h>

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/codec.hpp"
#include "node/core/node_format.hpp"
#include "node/core/record.hpp"
#include "node/store/memory_store.hpp"
#include "sink/memory_object_store.hpp"
#include "sink/segment.hpp"
#include "sink/sink_service.hpp"

namespace {

using namespace shoal;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr int kMaxCalls = 48;

sink::SinkLimits fuzz_limits() {
  sink::SinkLimits l;
  l.max_collections = 3;
  l.max_k = 8;
  l.max_fetch_ids = 6;
  l.max_upload_bytes = 1 << 16;
  l.max_delta_bytes = 1 << 16;
  // Small pages and compacted segments, so paging and multi-segment compaction are reached.
  l.max_bootstrap_records = 3;
  l.max_bootstrap_bytes = 2048;
  l.max_compacted_segment_records = 2;
  return l;
}

std::string pick_collection(FuzzedDataProvider& in) {
  static const char* const kNames[] = {"c0", "c1", "c2", "c3"};
  if (in.ConsumeIntegralInRange<int>(0, 15) == 0) return in.ConsumeRandomLengthString(80);
  return kNames[in.ConsumeIntegralInRange<int>(0, 3)];
}

std::string pick_id(FuzzedDataProvider& in) {
  if (in.ConsumeIntegralInRange<int>(0, 15) == 0) return in.ConsumeRandomLengthString(300);
  return "r" + std::to_string(in.ConsumeIntegralInRange<int>(0, 7));
}

float pick_float(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 7)) {
    case 0: {  // any bit pattern: NaN, infinities, denormals
      const std::uint32_t bits = in.ConsumeIntegral<std::uint32_t>();
      float f;
      std::memcpy(&f, &bits, sizeof f);
      return f;
    }
    case 1:
      return 0.0f;
    default:
      return static_cast<float>(in.ConsumeIntegralInRange<int>(-8, 8));
  }
}

std::vector<float> pick_vector(FuzzedDataProvider& in) {
  const std::size_t dim = in.ConsumeIntegralInRange<int>(0, 31) == 0
                              ? in.ConsumeIntegralInRange<std::size_t>(0, 5000)
                              : in.ConsumeIntegralInRange<std::size_t>(1, 3);
  std::vector<float> v(dim);
  for (float& x : v) x = pick_float(in);
  return v;
}

std::string pick_payload(FuzzedDataProvider& in) {
  if (in.ConsumeIntegralInRange<int>(0, 15) == 0) return in.ConsumeRandomLengthString(64);
  node::RecordValue r;
  r.vector = pick_vector(in);
  if (in.ConsumeBool()) r.model = in.ConsumeRandomLengthString(8);
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) {
    r.metadata.fields.emplace_back(in.ConsumeRandomLengthString(8), node::MetaValue{double(pick_float(in))});
    r.metadata.normalize();
  }
  return node::encode_payload(r);
}

crdt::Dot pick_dot(FuzzedDataProvider& in) {
  crdt::Dot d;
  d.replica.identity[0] = in.ConsumeIntegralInRange<std::uint8_t>(0, 2);
  d.replica.incarnation = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? in.ConsumeIntegral<std::uint32_t>() : 0;
  d.counter = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? in.ConsumeIntegral<std::uint64_t>()
                                                         : in.ConsumeIntegralInRange<std::uint64_t>(1, 6);
  return d;
}

// An upload's metric: not said (the server's 255), or one the server lets through (it refuses an
// unknown byte before the service).
std::optional<index::Metric> pick_metric(FuzzedDataProvider& in) {
  return node::metric_from_wire_byte(in.ConsumeIntegralInRange<std::uint8_t>(0, 3));  // 3: not said
}

// An upload's spec (D62): none, or one mostly like the upload's (its collection, dimension 1..3,
// the metric said), with fields from the input that are sometimes out of range or disagree.
std::optional<node::CollectionSpec> pick_spec(FuzzedDataProvider& in, std::optional<index::Metric> metric) {
  if (in.ConsumeBool()) return std::nullopt;
  node::CollectionSpec s;
  s.name = pick_collection(in);
  s.dimension = in.ConsumeIntegralInRange<int>(0, 7) == 0 ? in.ConsumeIntegral<std::uint32_t>()
                                                           : in.ConsumeIntegralInRange<std::uint32_t>(1, 3);
  const auto m = node::metric_from_wire_byte(in.ConsumeIntegralInRange<std::uint8_t>(0, 2));
  s.metric = metric && in.ConsumeIntegralInRange<int>(0, 7) != 0 ? *metric : *m;
  const bool odd = in.ConsumeIntegralInRange<int>(0, 3) == 0;
  s.m = odd ? in.ConsumeIntegral<std::uint32_t>() : in.ConsumeIntegralInRange<std::uint32_t>(2, 64);
  s.ef_construction = odd ? in.ConsumeIntegral<std::uint32_t>() : in.ConsumeIntegralInRange<std::uint32_t>(1, 400);
  s.ef_search = odd ? in.ConsumeIntegral<std::uint32_t>() : in.ConsumeIntegralInRange<std::uint32_t>(1, 400);
  s.quantize = in.ConsumeBool();
  if (in.ConsumeIntegralInRange<int>(0, 3) == 0) {
    s.quant_min = pick_float(in);
    s.quant_max = pick_float(in);
  }
  return s;
}

// A segment built from the input: records in id order, entries in segment dot order, digests
// right, so it decodes and the service's own checks (ids, payloads, counters, dimension) decide.
std::string built_segment(FuzzedDataProvider& in) {
  std::map<std::string, std::map<sink::SegmentDot, sink::SegmentEntry>> records;
  const int n = in.ConsumeIntegralInRange<int>(0, 4);
  for (int i = 0; i < n; ++i) {
    const std::string id = pick_id(in);
    const int entries = in.ConsumeIntegralInRange<int>(1, 2);
    for (int e = 0; e < entries; ++e) {
      const crdt::Dot d = pick_dot(in);
      sink::SegmentEntry se;
      const std::string r = d.replica.encode();
      std::copy(r.begin(), r.end(), se.dot.replica.begin());
      se.dot.counter = d.counter == 0 ? 1 : d.counter;
      se.hlc = in.ConsumeIntegral<std::uint64_t>();
      se.payload = pick_payload(in);
      records[id][se.dot] = std::move(se);
    }
  }
  sink::Segment seg;
  seg.collection = pick_collection(in);
  for (auto& [id, entries] : records) {
    sink::SegmentRecord r;
    r.id = id;
    for (auto& [dot, e] : entries) r.entries.push_back(std::move(e));
    seg.records.push_back(std::move(r));
  }
  auto bytes = sink::encode_segment(seg);
  return bytes.ok() ? *bytes : std::string();
}

// A delta built from the input: upserts (entries with their dots in the context) and deletes
// (an id with no entries, dots in the context only), encoded as peers push them.
std::string built_delta(FuzzedDataProvider& in) {
  crdt::Delta d;
  const int n = in.ConsumeIntegralInRange<int>(0, 4);
  for (int i = 0; i < n; ++i) {
    const std::string id = pick_id(in);
    crdt::Entries& entries = d.records[id];
    const bool remove = in.ConsumeBool();
    const int dots = in.ConsumeIntegralInRange<int>(1, 2);
    for (int e = 0; e < dots; ++e) {
      crdt::Dot dot = pick_dot(in);
      if (dot.counter == 0 || dot.counter >= crdt::kMaxCounter) dot.counter = 1;
      d.context.add(dot);
      if (remove) continue;
      if (std::any_of(entries.begin(), entries.end(), [&](const crdt::Entry& x) { return x.dot == dot; })) continue;
      crdt::Entry entry;
      entry.dot = dot;
      entry.clock = crdt::Hlc::from_raw(in.ConsumeIntegral<std::uint64_t>());
      const std::string p = pick_payload(in);
      entry.payload.assign(p.begin(), p.end());
      entries.push_back(std::move(entry));
    }
    std::sort(entries.begin(), entries.end(), [](const crdt::Entry& a, const crdt::Entry& b) { return a.dot < b.dot; });
  }
  if (in.ConsumeBool()) {  // a dot in the context only: a delete of what this delta does not name
    crdt::Dot extra = pick_dot(in);
    if (extra.counter == 0 || extra.counter >= crdt::kMaxCounter) extra.counter = 1;
    d.context.add(extra);
  }
  crdt::Bytes out;
  crdt::encode_delta(d, out);
  return std::string(out.begin(), out.end());
}

// The whole state as the sink serves it: every collection's bootstrap pages and its context.
// Checks on the way that pages decode, ids ascend past the cursor, and paging ends.
std::string state_of(const sink::SinkService& s) {
  std::string out;
  for (const std::string& c : s.collections()) {
    out += c;
    out += '\n';
    std::string after;
    for (std::size_t page = 0;; ++page) {
      require(page <= 1 + (std::size_t{1} << 16));
      auto p = s.bootstrap(c, after);
      require(p.ok());
      if (page == 0) {  // what a device creates the collection from: kept like the records
        out += std::to_string(p->dimension) + '/';
        out += p->metric ? std::to_string(node::metric_to_wire_byte(*p->metric)) : std::string("-");
        out += p->spec ? node::format::encode_spec(*p->spec, 0) : std::string("-");
        out += '\n';
      }
      if (!p->segment.empty()) {
        auto seg = sink::decode_segment(p->segment);
        require(seg.ok());
        require(seg->collection == c);
        for (const auto& r : seg->records) {
          require(after.empty() || r.id > after);
          after = r.id;
        }
        require(after == p->next_after);
        out += p->segment;
      } else {
        require(p->done);
      }
      if (p->done) {
        // The context a restored node joins: it must decode as the node decodes it.
        require(crdt::decode_context(std::span<const std::uint8_t>(
                                         reinterpret_cast<const std::uint8_t*>(p->context.data()), p->context.size()))
                    .ok());
        out += p->context;
        break;
      }
    }
  }
  return out;
}

struct Run {
  sink::MemoryObjectStore store;
  // The state env, kept across reopens (open joins what it has not applied); `fresh` opens
  // rebuild it from the objects instead, which must give the same state.
  store::MemoryStore state;
  std::unique_ptr<sink::SinkService> service;
  std::int64_t now_ns = 1;

  void open(bool fresh = false) {
    service.reset();
    auto s = sink::SinkService::open(store, fuzz_limits(), fresh ? nullptr : &state);
    // Everything in the store was written by the service itself: it must always open again.
    require(s.ok());
    service = std::move(*s);
  }

  // Runs a write; a refused one must leave the state and the store's objects as they were. An
  // accepted one that wrote an object (seq > 0) must have kept the metric and spec it said.
  template <typename F>
  void write(F&& call, std::optional<index::Metric> metric = std::nullopt,
             const std::optional<node::CollectionSpec>& spec = std::nullopt) {
    const std::string before = state_of(*service);
    const std::uint64_t objects = store.object_count();
    auto r = call();
    if (!r.ok()) {
      require(state_of(*service) == before);
      require(store.object_count() == objects);
    } else if (r->seq != 0) {
      check_kept(r->key, metric, spec);
    }
    ++now_ns;
  }

  // After an accepted upload held in object `key` ("seg/C/..." or "dlt/C/..."): bootstrap pages
  // of C say the metric and spec it said. (Whether its records passed the rules of that metric is
  // not checked here: a record may keep an older upload's entry under the same dot, which the
  // join keeps, so the winner need not be the payload this upload's check saw.)
  void check_kept(const std::string& key, std::optional<index::Metric> metric,
                  const std::optional<node::CollectionSpec>& spec) {
    const auto first = key.find('/');
    const auto last = key.rfind('/');
    require(first != std::string::npos && last > first);
    const std::string c = key.substr(first + 1, last - first - 1);
    auto p = service->bootstrap(c, "");
    require(p.ok());
    if (metric) require(p->metric == metric);
    if (spec) require(p->spec && node::format::encode_spec(*p->spec, 0) == node::format::encode_spec(*spec, 0));
  }

  void cold_search(FuzzedDataProvider& in) {
    const std::string c = pick_collection(in);
    std::vector<float> q = pick_vector(in);
    const auto k = in.ConsumeIntegralInRange<std::uint32_t>(0, 10);
    const auto metric = node::metric_from_wire_byte(in.ConsumeIntegralInRange<std::uint8_t>(0, 3));
    if (!metric) return;  // the server refuses an unknown metric byte before the service
    auto r = service->cold_search(c, q, k, *metric);
    if (!r.ok()) return;
    require(r->hits.size() <= k);
    require(r->hits.size() <= r->freshness.records);
    for (std::size_t i = 1; i < r->hits.size(); ++i) {
      require(!(r->hits[i].distance < r->hits[i - 1].distance));
    }
    std::vector<std::string> ids;
    for (const auto& h : r->hits) ids.push_back(h.id);
    auto f = service->fetch(c, std::span<const std::string>(ids.data(), std::min(ids.size(), fuzz_limits().max_fetch_ids)));
    require(f.ok());
    for (const auto& rec : *f) require(rec.found);
  }

  void fetch(FuzzedDataProvider& in) {
    const std::string c = pick_collection(in);
    std::vector<std::string> ids(in.ConsumeIntegralInRange<std::size_t>(0, 8));
    for (std::string& id : ids) id = pick_id(in);
    auto r = service->fetch(c, ids);
    if (!r.ok()) return;
    require(r->size() == ids.size());
    for (std::size_t i = 0; i < ids.size(); ++i) {
      const sink::FetchedRecord& f = (*r)[i];
      require(f.id == ids[i]);
      if (f.found) require(f.digest == sink::payload_digest(f.payload));
    }
  }

  // D74: removed dots, as raw bytes or as ranges over the dots pick_dot draws. Refused ones
  // change nothing; an accepted removal leaves no entry with such a dot, and a second one finds
  // nothing and writes nothing.
  void remove_dots(FuzzedDataProvider& in) {
    const std::string c = pick_collection(in);
    std::string bytes;
    if (in.ConsumeBool()) {
      bytes = in.ConsumeRandomLengthString(512);
    } else {
      std::vector<crdt::DotRange> ranges;
      const int n = in.ConsumeIntegralInRange<int>(0, 4);
      for (int i = 0; i < n; ++i) {
        const crdt::Dot d = pick_dot(in);
        ranges.push_back(crdt::DotRange{d.replica, d.counter, d.counter + in.ConsumeIntegralInRange<std::uint64_t>(0, 3)});
      }
      std::sort(ranges.begin(), ranges.end(), [](const crdt::DotRange& a, const crdt::DotRange& b) {
        return a.replica != b.replica ? a.replica < b.replica : a.first < b.first;
      });
      crdt::Bytes out;
      crdt::encode_dot_ranges(ranges, out);  // may be out of canonical form: then refused
      bytes.assign(out.begin(), out.end());
    }
    const std::string before = state_of(*service);
    const std::uint64_t objects = store.object_count();
    auto checked = service->check_removed(c, bytes);
    if (!checked.ok()) {
      require(state_of(*service) == before);
      require(store.object_count() == objects);
      return;
    }
    auto r = service->remove_dots(c, *checked, now_ns);
    ++now_ns;
    if (!r.ok()) return;  // a failed put: the deltas before it stay, each a sound removal
    const std::string after = state_of(*service);
    auto again = service->remove_dots(c, *checked, now_ns);
    require(again.ok() && again->seq == 0 && again->records == 0);
    require(state_of(*service) == after);
    auto page = service->bootstrap(c, "");
    if (!page.ok() || page->segment.empty()) return;
    auto seg = sink::decode_segment(page->segment, fuzz_limits().segment);
    require(seg.ok());
    for (const auto& [id, entries] : sink::segment_to_delta(*seg).records) {
      for (const crdt::Entry& e : entries) require(!crdt::ranges_contain(*checked, e.dot));
    }
  }

  void step(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 11)) {
      case 0: {
        const std::string bytes = in.ConsumeRandomLengthString(4096);
        (void)sink::segment_collection(bytes);
        write([&] { return service->upload_segment(bytes, now_ns); });
        break;
      }
      case 1: {  // raw bytes with a correct trailer, so the record parser is reached
        std::string bytes = in.ConsumeRandomLengthString(4096);
        const std::uint64_t h = XXH64(bytes.data(), bytes.size(), 0);
        for (int i = 0; i < 8; ++i) bytes += static_cast<char>(static_cast<std::uint8_t>(h >> (8 * i)));
        const auto metric = pick_metric(in);
        write([&] { return service->upload_segment(bytes, now_ns, metric); }, metric);
        break;
      }
      case 2:
      case 3: {
        const std::string bytes = built_segment(in);
        const auto metric = pick_metric(in);
        const auto spec = pick_spec(in, metric);
        write([&] { return service->upload_segment(bytes, now_ns, metric, spec); }, metric, spec);
        break;
      }
      case 4: {
        const std::string c = pick_collection(in);
        const std::string bytes = in.ConsumeRandomLengthString(4096);
        write([&] { return service->apply_delta(c, bytes, now_ns); });
        break;
      }
      case 5: {
        const std::string c = pick_collection(in);
        const std::string bytes = built_delta(in);
        const auto metric = pick_metric(in);
        const auto spec = pick_spec(in, metric);
        write([&] { return service->apply_delta(c, bytes, now_ns, metric, spec); }, metric, spec);
        break;
      }
      case 6:
        cold_search(in);
        break;
      case 7:
        fetch(in);
        break;
      case 8: {  // compaction keeps the state, and so does a reopen after it
        // A compaction a store failure stopped half way leaves objects that join to the same state.
        const std::string before = state_of(*service);
        (void)service->compact();
        require(state_of(*service) == before);
        open();
        require(state_of(*service) == before);
        break;
      }
      case 9: {  // a reopen on the state env, then one that rebuilds it: the same state
        const std::string before = state_of(*service);
        open();
        require(state_of(*service) == before);
        open(true);
        require(state_of(*service) == before);
        open();
        break;
      }
      case 10:  // the next write fails (not applied), as a store outage would
        store.fail_next_writes(1, false);
        break;
      case 11:
        remove_dots(in);
        break;
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Run run;
  run.open();
  for (int i = 0; i < kMaxCalls && in.remaining_bytes() > 0; ++i) run.step(in);
  // Whatever happened, the store reopens to the state the service holds.
  const std::string before = state_of(*run.service);
  run.open();
  require(state_of(*run.service) == before);
  return 0;
}

// tests/sink/sink_fixture.hpp: a real node (node::Node on the in-memory store) whose records are
// uploaded to the sink, and the helpers the sink tests share: each case's seeded generator (the
// seed reported with any failure), a sink service on a memory object store that took a filled
// node's records (`Uploaded`, most cases' start), its CRDT state cut into segments (what the
// node's uploader will send), the delta of a delete (crdt::ORMap::remove on the node's state, the
// function the node's own delete is checked against), exact search over the node's live records
// (the oracle cold search must equal, `check_cold_equals_exact`), a peer's delta batch into a
// node, a restore of bootstrap pages into a fresh node (the collection created there first)
// through the node's peer-delta path, the feed drained into a sink, and a temporary directory.
// Thread rules: one test thread.
#pragma once

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "crdt/codec.hpp"
#include "index/exact_index.hpp"
#include "index/kernels.hpp"
#include "node/core/node.hpp"
#include "node/core/record.hpp"
#include "node/core/tier_policy.hpp"
#include "node/store/memory_store.hpp"
#include "sink/memory_object_store.hpp"
#include "sink/segment.hpp"
#include "sink/sink_service.hpp"
#include "transport/messages.hpp"

// Declares `rng`, seeded with Catch's --rng-seed (42 without one), and reports the seed with every
// failure of the enclosing case, so a failing case reruns with `--rng-seed N`.
#define SHOAL_SINK_TEST_RNG(rng)                                    \
  const std::uint64_t rng##_seed = ::shoal::sink_test::seed_of(); \
  INFO("seed " << rng##_seed);                                     \
  ::shoal::Rng rng(rng##_seed)

namespace shoal::sink_test {

// The wall time (ns) the tests' uploads are acknowledged at.
inline constexpr std::int64_t kNow = 1'800'000'000'000'000'000;

inline std::uint64_t seed_of() {
  const std::uint64_t s = Catch::rngSeed();
  return s == 0 ? 42 : s;
}

// A fresh directory under the temp dir, removed at the end of the test.
struct TempDir {
  std::string path;
  explicit TempDir(const char* prefix = "shoal-sink-test") {
    std::string t = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    REQUIRE(mkdtemp(t.data()) != nullptr);
    path = t;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

inline std::unique_ptr<sink::SinkService> open_service(sink::ObjectStore& store, sink::SinkLimits limits = {}) {
  auto s = sink::SinkService::open(store, limits);
  INFO(s.status().to_string());
  REQUIRE(s.ok());
  return std::move(*s);
}

inline node::NodeOptions node_options(std::uint64_t replica) {
  node::NodeOptions o;
  std::int64_t t = 1'700'000'000'000'000'000;
  o.wall_clock = [t]() mutable { return WallTime::from_ns(t += 1000); };
  o.identity = crdt::replica_for_testing(replica);
  return o;
}

struct TestNode {
  store::MemoryStore store;
  std::unique_ptr<node::Node> node;

  explicit TestNode(std::uint64_t replica) {
    auto n = node::Node::open(store, node_options(replica));
    REQUIRE(n.ok());
    node = std::move(*n);
  }
  node::Node& operator*() { return *node; }
  node::Node* operator->() { return node.get(); }
};

inline node::RecordValue random_value(Rng& rng, std::uint32_t dim, int i) {
  node::RecordValue v;
  v.vector.resize(dim);
  for (auto& x : v.vector) x = rng.uniform_float(-1, 1);
  v.metadata.fields.emplace_back("i", static_cast<std::int64_t>(i));
  v.metadata.fields.emplace_back("tag", std::string(i % 2 == 0 ? "even" : "odd"));
  v.model = "test-model";
  return v;
}

// "r0000", "r0001", ...: the ids `fill` gives (`prefix` and four digits).
inline std::string id_of(int i, const char* prefix = "r") {
  char b[32];
  std::snprintf(b, sizeof b, "%s%04d", prefix, i);
  return b;
}

// Creates `collection` (default index settings).
inline void create(node::Node& node, const std::string& collection, std::uint32_t dim,
                   node::Metric metric = node::Metric::kL2) {
  node::CollectionSpec spec;
  spec.name = collection;
  spec.dimension = dim;
  spec.metric = metric;
  REQUIRE(node.create_collection(spec).ok());
}

// Creates `collection` on `to` with the settings it has on `from` (as an operator does on a new
// device before a restore).
inline void create_like(const node::Node& from, node::Node& to, const std::string& collection) {
  auto info = from.collection_info(collection);
  REQUIRE(info.ok());
  REQUIRE(to.create_collection(info->spec).ok());
}

// Creates `collection` and fills it with `n` records "r0000".. of random vectors.
inline void fill(node::Node& node, const std::string& collection, std::uint32_t dim, node::Metric metric, int n,
                 Rng& rng) {
  create(node, collection, dim, metric);
  std::vector<node::RecordInput> batch;
  for (int i = 0; i < n; ++i) batch.push_back({id_of(i), random_value(rng, dim, i)});
  REQUIRE(node.upsert_batch(collection, std::move(batch)).ok());
}

// The node's records of `collection` as encoded segments of at most `per_segment` records.
inline std::vector<std::string> segments_of(node::Node& node, const std::string& collection, std::size_t per_segment) {
  auto state = node.crdt_state_for_testing(collection);
  REQUIRE(state.ok());
  std::vector<std::string> out;
  crdt::RecordMap part;
  auto flush = [&] {
    if (part.empty()) return;
    auto bytes = sink::encode_segment(sink::records_to_segment(collection, part));
    REQUIRE(bytes.ok());
    out.push_back(std::move(*bytes));
    part.clear();
  };
  for (const auto& [id, entries] : state->records()) {
    part.emplace(id, entries);
    if (part.size() >= per_segment) flush();
  }
  flush();
  return out;
}

inline std::string encode(const crdt::Delta& d) {
  crdt::Bytes b;
  crdt::encode_delta(d, b);
  return std::string(b.begin(), b.end());
}

// Deletes `id` on the node and returns the delta of that delete (the node's observed entries'
// dots, no entries), as a peer receives it.
inline std::string delete_delta(node::Node& node, const std::string& collection, const std::string& id) {
  auto state = node.crdt_state_for_testing(collection);
  REQUIRE(state.ok());
  auto d = state->remove(id);
  REQUIRE(d.ok());
  REQUIRE(node.remove(collection, id).ok());
  return encode(*d);
}

// Upserts `id` on the node and returns the delta of that upsert.
inline std::string upsert_delta(node::Node& node, const std::string& collection, const std::string& id,
                                node::RecordValue value) {
  crdt::Delta d;
  {
    auto before = node.crdt_state_for_testing(collection);
    REQUIRE(before.ok());
    // The upsert replaces every entry the node observed: their dots go in the context.
    if (const crdt::Entries* old = before->find(id)) crdt::add_entry_dots(d.context, *old);
  }
  REQUIRE(node.upsert(collection, id, value).ok());
  auto state = node.crdt_state_for_testing(collection);
  REQUIRE(state.ok());
  const crdt::Entries* e = state->find(id);
  REQUIRE(e != nullptr);
  d.records.emplace(id, *e);
  crdt::add_entry_dots(d.context, *e);
  return encode(d);
}

struct Exact {
  std::vector<std::string> ids;
  std::vector<float> distances;
};

// The exact k nearest live records of the node (winners), with the kernels cold search uses.
inline Exact exact_search(node::Node& node, const std::string& collection, std::span<const float> query,
                          std::uint32_t k, node::Metric metric) {
  auto state = node.crdt_state_for_testing(collection);
  REQUIRE(state.ok());
  std::vector<float> base;
  std::vector<std::string> ids;
  std::size_t dim = query.size();
  for (const auto& [id, entries] : state->records()) {
    const crdt::Entry* w = crdt::winner(entries);
    auto v = node::decode_payload(std::string_view(reinterpret_cast<const char*>(w->payload.data()), w->payload.size()));
    REQUIRE(v.ok());
    base.insert(base.end(), v->vector.begin(), v->vector.end());
    ids.push_back(id);
  }
  Exact out;
  for (const auto& n : index::exact_knn(index::best_kernels(), metric, base, dim, query, k)) {
    out.ids.push_back(ids[n.label]);
    out.distances.push_back(n.distance);
  }
  return out;
}

// Cold search at the sink equals exact search over the node's live records (same ids, order and
// distances) for `queries` random queries of `dim`, each with k = `k`, or 1..20 drawn when 0.
inline void check_cold_equals_exact(sink::SinkService& sink, node::Node& node, const std::string& collection,
                                    node::Metric metric, std::uint32_t dim, Rng& rng, int queries,
                                    std::uint32_t k = 0) {
  for (int q = 0; q < queries; ++q) {
    std::vector<float> query(dim);
    for (auto& x : query) x = rng.uniform_float(-1, 1);
    const std::uint32_t kq = k != 0 ? k : 1 + static_cast<std::uint32_t>(rng.uniform(20));
    auto cold = sink.cold_search(collection, query, kq, metric);
    REQUIRE(cold.ok());
    const Exact exact = exact_search(node, collection, query, kq, metric);
    REQUIRE(cold->hits.size() == exact.ids.size());
    for (std::size_t i = 0; i < exact.ids.size(); ++i) {
      CHECK(cold->hits[i].id == exact.ids[i]);
      CHECK(cold->hits[i].distance == exact.distances[i]);
    }
  }
}

// `deltas` (crdt::encode_delta bytes) of collection `spec.name`, received by `to` in one delta
// batch from the peer `from` (brought up as a hot peer), as the sync engine receives them.
inline void receive_from_peer(node::Node& to, const node::CollectionSpec& spec, const std::vector<std::string>& deltas,
                              std::uint64_t from) {
  const crdt::ReplicaId peer = crdt::replica_for_testing(from);
  transport::DeltaBatch batch;
  transport::CollectionSpecWire w;
  w.name = spec.name;
  w.dimension = spec.dimension;
  w.metric = node::metric_to_wire_byte(spec.metric);
  w.m = spec.m;
  w.ef_construction = spec.ef_construction;
  w.ef_search = spec.ef_search;
  w.quantize = spec.quantize;
  batch.specs.push_back(w);
  for (const auto& d : deltas) batch.items.push_back({spec.name, d});
  batch.first_seq = 0;
  batch.last_seq = 1;
  to.peer_up(peer, node::Tier::kHot, MonoTime::from_ns(1));
  Status st = to.receive(peer, transport::Message(batch), MonoTime::from_ns(2));
  INFO(st.to_string());
  REQUIRE(st.ok());
  (void)to.take_outbox();
}

// Restores bootstrap pages into `fresh` as a peer's delta batch from `from` (each page's
// records with their dots as context, then the whole context on the last page).
inline void restore(node::Node& fresh, const node::CollectionSpec& spec, const std::vector<sink::BootstrapPage>& pages,
                    std::uint64_t from) {
  // The operator creates the collection on the new device, then restores its records.
  REQUIRE(fresh.create_collection(spec).ok());
  std::vector<std::string> deltas;
  for (const auto& page : pages) {
    if (!page.segment.empty()) {
      auto seg = sink::decode_segment(page.segment);
      REQUIRE(seg.ok());
      deltas.push_back(encode(sink::segment_to_delta(*seg)));
    }
    if (page.done && !page.context.empty()) {  // the first page's context is the sink's earlier one
      auto ctx = crdt::decode_context(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(page.context.data()), page.context.size()));
      REQUIRE(ctx.ok());
      crdt::Delta d;
      d.context = *ctx;
      deltas.push_back(encode(d));
    }
  }
  receive_from_peer(fresh, spec, deltas, from);
}

// Starts `n`'s sink feed for `collection` (its policy `sink = true`, with `hot_window` for
// eviction; every other collection stays home), with `options`.
inline void feed_to_sink(node::Node& n, const std::string& collection, node::SinkFeedOptions options = {},
                         Duration hot_window = node::TierPolicy{}.hot_window) {
  node::TierPolicies policies;
  node::TierPolicy t;
  t.sink = true;
  t.hot_window = hot_window;
  policies.collections.emplace(collection, t);
  REQUIRE(n.set_tier_policies(policies).ok());
  Status st = n.enable_sink_feed(options);
  INFO(st.to_string());
  REQUIRE(st.ok());
}

// Runs `n`'s sink feed until it has nothing left: each upload with a delta goes to `sink` and is
// acknowledged after the sink took it, as the mesh's uploader does (an upload the sink refuses,
// such as one carrying a stub, fails the test). Returns the uploads sent.
// `send_removed` false: a full-state upload's removed dots (D74) never reach the sink, as with a
// member or a sink from before them.
inline int drain(node::Node& n, sink::SinkService& sink, std::int64_t now_wall_ns = kNow, bool send_removed = true) {
  int sent = 0;
  for (int guard = 0; guard < 100'000; ++guard) {
    auto up = n.next_sink_upload();
    INFO(up.status().to_string());
    REQUIRE(up.ok());
    if (!*up) return sent;
    if (!(*up)->delta.empty()) {
      auto ack = sink.apply_delta((*up)->collection, (*up)->delta, now_wall_ns);
      INFO(ack.status().to_string());
      REQUIRE(ack.ok());
      ++sent;
    }
    for (const std::string& piece : (*up)->removed) {
      if (!send_removed) break;
      auto ranges = sink.check_removed((*up)->collection, piece);
      INFO(ranges.status().to_string());
      REQUIRE(ranges.ok());
      auto ack = sink.remove_dots((*up)->collection, *ranges, now_wall_ns);
      INFO(ack.status().to_string());
      REQUIRE(ack.ok());
    }
    REQUIRE(n.sink_acked(**up).ok());
  }
  FAIL("the sink feed never ran dry");
  return sent;
}

// Every bootstrap page of `collection`, in order (the last one `done`).
inline std::vector<sink::BootstrapPage> bootstrap_pages(const sink::SinkService& sink, const std::string& collection) {
  std::vector<sink::BootstrapPage> pages;
  std::string after;
  for (int guard = 0; guard < 1000; ++guard) {
    auto p = sink.bootstrap(collection, after);
    REQUIRE(p.ok());
    after = p->next_after;
    const bool done = p->done;
    pages.push_back(std::move(*p));
    if (done) return pages;
  }
  FAIL("the bootstrap did not end");
  return pages;
}

// Joins every bootstrap page of `collection` into `node` as shoald's bootstrap does
// (MeshHost::bootstrap_from_sink): sink::bootstrap_page_delta, then Node::join_sink_page.
// `between_pages` runs after each page but the last (writes racing the bootstrap).
inline void bootstrap_into(node::Node& node, const sink::SinkService& sink, const std::string& collection,
                           const std::function<void()>& between_pages = {}) {
  std::set<std::string> ids;
  std::string after;
  crdt::CausalContext first;
  for (int guard = 0; guard < 1000; ++guard) {
    auto page = sink.bootstrap(collection, after);
    REQUIRE(page.ok());
    if (after.empty()) {
      auto ctx = sink::bootstrap_context(collection, page->context);
      REQUIRE(ctx.ok());
      first = std::move(*ctx);
    }
    auto delta = sink::bootstrap_page_delta(collection, page->segment, page->context, page->done, ids);
    REQUIRE(delta.ok());
    Status st = node.join_sink_page(collection, std::move(*delta), page->done, ids, first);
    INFO(st.to_string());
    REQUIRE(st.ok());
    if (page->done) return;
    if (between_pages) between_pages();
    after = page->next_after;
  }
  FAIL("the bootstrap did not end");
}

// The start most sink-service cases share: node 1 filled with `records` random records of
// `collection` (`fill`), and a sink service with `limits` on a memory object store. `upload`
// sends the node's records as segments.
struct Uploaded {
  TestNode n{1};
  sink::MemoryObjectStore store;
  std::unique_ptr<sink::SinkService> sink;

  Uploaded(Rng& rng, const std::string& collection, std::uint32_t dim, node::Metric metric, int records,
           sink::SinkLimits limits = {}) {
    fill(*n, collection, dim, metric, records, rng);
    sink = open_service(store, limits);
  }
  // Uploads the node's records of `collection` in segments of at most `per_segment` records.
  void upload(const std::string& collection, std::size_t per_segment, std::int64_t now = kNow) {
    for (const auto& seg : segments_of(*n, collection, per_segment)) REQUIRE(sink->upload_segment(seg, now).ok());
  }
};

}  // namespace shoal::sink_test

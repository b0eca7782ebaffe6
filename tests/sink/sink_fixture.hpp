// tests/sink/sink_fixture.hpp: a real node (node::Node on the in-memory store) whose records are
// uploaded to the sink, and the helpers the sink tests share: its CRDT state cut into segments
// (what the node's uploader will send), the delta of a delete (crdt::ORMap::remove on the node's
// state, the function the node's own delete is checked against), exact search over the node's
// live records (the oracle cold search must equal), and a restore of bootstrap pages into a
// fresh node (the collection created there first) through the node's peer-delta path.
// Thread rules: one test thread.
#pragma once

#include <catch2/catch.hpp>

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
#include "node/store/memory_store.hpp"
#include "sink/segment.hpp"
#include "sink/sink_service.hpp"
#include "transport/messages.hpp"

namespace shoal::sink_test {

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

// Creates `collection` and fills it with `n` records "r0000".. of random vectors.
inline void fill(node::Node& node, const std::string& collection, std::uint32_t dim, node::Metric metric, int n,
                 Rng& rng) {
  node::CollectionSpec spec;
  spec.name = collection;
  spec.dimension = dim;
  spec.metric = metric;
  REQUIRE(node.create_collection(spec).ok());
  std::vector<node::RecordInput> batch;
  for (int i = 0; i < n; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "r%04d", i);
    batch.push_back({id, random_value(rng, dim, i)});
  }
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

// Restores bootstrap pages into `fresh` as a peer's delta batch from `from` (each page's
// records with their dots as context, then the whole context on the last page).
inline void restore(node::Node& fresh, const node::CollectionSpec& spec, const std::vector<sink::BootstrapPage>& pages,
                    std::uint64_t from) {
  const crdt::ReplicaId peer = crdt::replica_for_testing(from);
  // The operator creates the collection on the new device, then restores its records.
  REQUIRE(fresh.create_collection(spec).ok());
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
  for (const auto& page : pages) {
    if (!page.segment.empty()) {
      auto seg = sink::decode_segment(page.segment);
      REQUIRE(seg.ok());
      batch.items.push_back({spec.name, encode(sink::segment_to_delta(*seg))});
    }
    if (page.done && !page.context.empty()) {  // the first page's context is the sink's earlier one
      auto ctx = crdt::decode_context(std::span<const std::uint8_t>(
          reinterpret_cast<const std::uint8_t*>(page.context.data()), page.context.size()));
      REQUIRE(ctx.ok());
      crdt::Delta d;
      d.context = *ctx;
      batch.items.push_back({spec.name, encode(d)});
    }
  }
  batch.first_seq = 0;
  batch.last_seq = 1;
  fresh.peer_up(peer, node::Tier::kHot, MonoTime::from_ns(1));
  Status st = fresh.receive(peer, transport::Message(batch), MonoTime::from_ns(2));
  INFO(st.to_string());
  REQUIRE(st.ok());
  (void)fresh.take_outbox();
}

// Runs `n`'s sink feed until it has nothing left: each upload with a delta goes to `sink` and is
// acknowledged after the sink took it. Returns the uploads sent.
inline int drain(node::Node& n, sink::SinkService& sink, std::int64_t now_wall_ns) {
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
    REQUIRE(n.sink_acked(**up).ok());
  }
  FAIL("the sink feed never ran dry");
  return sent;
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

}  // namespace shoal::sink_test

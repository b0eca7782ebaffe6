// tests/sink/sink_slab_test.cpp: the state env's vectors in the node's slabs (D66; docs/sink-format.md,
// "The state env"), fed with a real node's records. Proves, by reading the env's tables after
// each step: every live winner's vector is stored once, in a slab slot named by a dense label
// (1..records), and nowhere else in the env (records hold it elided); a delete frees its slot by
// moving the last record into it, so the slabs stay full and new records reuse the slots; a
// deleted record's floats leave the env at the delete and the object store at the compaction;
// cold search over the slabs breaks ties by id as exact search over the node does, also when a
// tie crosses the cut of k; a failed state commit of a delete changes no table, and a kill after
// a delete's object put is replayed at open into valid slabs; and a state env from before the
// slabs (state version 1, a vector per record in the vectors table) is rebuilt at open into this
// layout, equal to a fresh rebuild.
// Random data uses the seed printed with each case.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>

#include "node/core/node_format.hpp"
#include "node/core/vector_store.hpp"
#include "node/store/memory_store.hpp"
#include "sink/lmdb_object_store.hpp"
#include "sink/memory_object_store.hpp"
#include "sink_fixture.hpp"

using namespace shoal;
using namespace shoal::sink_test;
using sink::SinkService;

namespace {

constexpr const char* kColl = "slabs";

std::unique_ptr<SinkService> open_on(sink::ObjectStore& objects, store::Store* state) {
  auto s = SinkService::open(objects, {}, state);
  INFO(s.status().to_string());
  REQUIRE(s.ok());
  return std::move(*s);
}

std::string floats_of(const node::RecordValue& v) {
  return std::string(reinterpret_cast<const char*>(v.vector.data()), v.vector.size() * sizeof(float));
}

// The node's live winners' vectors by id (what the env must hold, once each).
std::map<std::string, std::string> node_vectors(node::Node& n) {
  auto state = n.crdt_state_for_testing(kColl);
  REQUIRE(state.ok());
  std::map<std::string, std::string> out;
  for (const auto& [id, entries] : state->records()) {
    const crdt::Entry* w = crdt::winner(entries);
    auto v = node::decode_payload(std::string_view(reinterpret_cast<const char*>(w->payload.data()), w->payload.size()));
    REQUIRE(v.ok());
    out.emplace(id, floats_of(*v));
  }
  return out;
}

// Reads the env's tables and checks the layout against the node's live records: each record's
// label is one of 1..records and names it back in the labels table; its slot holds its vector;
// no other slot is filled; its stored winner payload is elided; the slabs are exactly the ones
// labels 1..records need. Returns the number of slabs.
std::size_t check_layout(store::Store& state, node::Node& n, std::uint32_t dim) {
  const auto want = node_vectors(n);
  auto txn = state.begin_read();
  REQUIRE(txn.ok());
  std::map<std::uint64_t, std::string> by_label;
  const std::string prefix = std::string(kColl) + '\0';
  REQUIRE((*txn)->scan(store::Table::kRecords, store::Range::prefix(prefix), [&](std::string_view k, std::string_view v) {
    const std::size_t holder = static_cast<std::uint8_t>(v[0]);
    auto rec = node::format::decode_record(v.substr(1 + holder), k);
    REQUIRE(rec.ok());
    CHECK(node::format::payload_elided(crdt::winner(rec->entries)->payload));
    CHECK(by_label.emplace(rec->label, std::string(k.substr(prefix.size()))).second);
    return true;
  }).ok());
  REQUIRE(by_label.size() == want.size());
  if (!by_label.empty()) {
    CHECK(by_label.begin()->first == 1);
    CHECK(by_label.rbegin()->first == by_label.size());  // dense: 1..records
  }
  std::map<std::uint64_t, std::string> labels;
  REQUIRE((*txn)->scan(store::Table::kIndexDirty, store::Range::all(), [&](std::string_view k, std::string_view v) {
    auto label = store::decode_u64_be(k.substr(4));
    REQUIRE(label.ok());
    labels.emplace(*label, std::string(v));
    return true;
  }).ok());
  CHECK(labels == by_label);
  std::uint32_t cid = 0;
  std::size_t slabs = 0;
  REQUIRE((*txn)->scan(store::Table::kVectorSlabs, store::Range::all(), [&](std::string_view k, std::string_view) {
    cid = (std::uint32_t{std::uint8_t(k[0])} << 24) | (std::uint32_t{std::uint8_t(k[1])} << 16) |
          (std::uint32_t{std::uint8_t(k[2])} << 8) | std::uint32_t{std::uint8_t(k[3])};
    ++slabs;
    return true;
  }).ok());
  if (by_label.empty()) {
    CHECK(slabs == 0);
    return 0;
  }
  std::map<std::uint64_t, std::string> in_slabs;
  REQUIRE(node::format::scan_vectors(**txn, cid, dim, [&](std::uint64_t label, std::string_view f) {
    in_slabs.emplace(label, std::string(f));
    return true;
  }).ok());
  REQUIRE(in_slabs.size() == by_label.size());  // no slot filled but the live ones
  for (const auto& [label, id] : by_label) {
    INFO("record " << id << " label " << label);
    CHECK(in_slabs[label] == want.at(id));
  }
  const std::uint64_t per_slab = node::format::slab_vectors(dim);
  CHECK(slabs == by_label.size() / per_slab + 1);  // the slabs of labels 0..records, no more
  CHECK((*txn)->count(store::Table::kVectors).value() == 0);
  return slabs;
}

// Whether any value of the env's tables, or any object, holds `floats`.
bool env_holds(store::Store& state, std::string_view floats) {
  auto txn = state.begin_read();
  REQUIRE(txn.ok());
  bool found = false;
  for (store::Table t : store::kAllTables) {
    REQUIRE((*txn)->scan(t, store::Range::all(), [&](std::string_view, std::string_view v) {
      found = found || v.find(floats) != std::string_view::npos;
      return !found;
    }).ok());
  }
  return found;
}

bool objects_hold(sink::ObjectStore& objects, std::string_view floats) {
  auto keys = objects.list("");
  REQUIRE(keys.ok());
  for (const auto& k : *keys) {
    auto bytes = objects.get(k);
    REQUIRE(bytes.ok());
    if (bytes->find(floats) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("the state env holds each live winner's vector once, in full slabs, and deletes free slots that new records reuse",
          "[sink][service][state][slabs]") {
  SHOAL_SINK_TEST_RNG(rng);
  constexpr std::uint32_t kDim = 64;
  const std::uint64_t per_slab = node::format::slab_vectors(kDim);
  const int kRecords = static_cast<int>(per_slab * 3);
  TestNode n(1);
  fill(*n, kColl, kDim, node::Metric::kL2, kRecords, rng);
  sink::MemoryObjectStore objects;
  store::MemoryStore state;
  auto sink = open_on(objects, &state);
  for (const auto& s : segments_of(*n, kColl, 50)) REQUIRE(sink->upload_segment(s, kNow).ok());
  const std::size_t full = check_layout(state, *n, kDim);
  CHECK(full == 4);  // labels 1..3n: slabs from 0, n, 2n and 3n
  // Deletes at random slots, one delta each: the last record moves into each freed slot.
  for (int d = 0; d < 25; ++d) {
    const std::string id = id_of(static_cast<int>(rng.uniform(static_cast<std::uint64_t>(kRecords))));
    if (node_vectors(*n).count(id) == 0) continue;
    REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, id), kNow).ok());
  }
  check_layout(state, *n, kDim);
  // New records and upserts: new ones take the slots after the last, upserts keep theirs.
  for (int i = 0; i < 25; ++i) {
    REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, id_of(i, "new"), random_value(rng, kDim, i)), kNow).ok());
  }
  const std::string upserted = node_vectors(*n).begin()->first;
  REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, upserted, random_value(rng, kDim, 7)), kNow).ok());
  CHECK(check_layout(state, *n, kDim) <= full + 1);
  check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, kDim, rng, 10);
  // Everything deleted: no slab, no label left; a collection that starts again starts at label 1.
  for (const auto& [id, v] : node_vectors(*n)) REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, id), kNow).ok());
  CHECK(check_layout(state, *n, kDim) == 0);
  REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, "again", random_value(rng, kDim, 1)), kNow).ok());
  CHECK(check_layout(state, *n, kDim) == 1);
  // Reopened on the same env and rebuilt from the objects: the same records and search.
  auto reopened = open_on(objects, &state);
  CHECK_FALSE(reopened->rebuilt_at_open());
  check_cold_equals_exact(*reopened, *n, kColl, node::Metric::kL2, kDim, rng, 3);
  store::MemoryStore fresh;
  auto rebuilt = open_on(objects, &fresh);
  check_layout(fresh, *n, kDim);
  check_cold_equals_exact(*rebuilt, *n, kColl, node::Metric::kL2, kDim, rng, 3);
}

TEST_CASE("a deleted record's vector leaves the state env at the delete and the object store at the compaction",
          "[sink][service][state][slabs][compaction]") {
  SHOAL_SINK_TEST_RNG(rng);
  constexpr std::uint32_t kDim = 32;
  TestNode n(1);
  fill(*n, kColl, kDim, node::Metric::kL2, 80, rng);
  sink::MemoryObjectStore objects;
  store::MemoryStore state;
  auto sink = open_on(objects, &state);
  for (const auto& s : segments_of(*n, kColl, 30)) REQUIRE(sink->upload_segment(s, kNow).ok());
  const auto before = node_vectors(*n);
  const std::vector<std::string> gone{id_of(3), id_of(41), id_of(79)};  // one of them the last label
  for (const auto& id : gone) {
    REQUIRE(env_holds(state, before.at(id)));  // the search finds what is there
    REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, id), kNow).ok());
    CHECK_FALSE(env_holds(state, before.at(id)));
    CHECK(objects_hold(objects, before.at(id)));  // until the compaction
  }
  check_layout(state, *n, kDim);
  auto report = sink->compact();
  REQUIRE(report.ok());
  CHECK(report->collections == 1);
  for (const auto& id : gone) {
    INFO(id);
    CHECK_FALSE(objects_hold(objects, before.at(id)));
    CHECK_FALSE(env_holds(state, before.at(id)));
  }
  for (const auto& [id, v] : node_vectors(*n)) CHECK(objects_hold(objects, v));  // the live ones stay
  check_layout(state, *n, kDim);
  auto reopened = open_on(objects, &state);
  CHECK_FALSE(reopened->rebuilt_at_open());
  check_cold_equals_exact(*reopened, *n, kColl, node::Metric::kL2, kDim, rng, 5);
}

TEST_CASE("deletes that move slots survive a failed state commit unchanged and a kill before the state commit is replayed into the same slabs",
          "[sink][service][state][slabs][lmdb]") {
  SHOAL_SINK_TEST_RNG(rng);
  constexpr std::uint32_t kDim = 16;
  TestNode n(1);
  fill(*n, kColl, kDim, node::Metric::kL2, 50, rng);
  const TempDir tmp("shoal-sink-slab");
  auto objects = sink::LmdbObjectStore::open(tmp.path + "/objects");
  REQUIRE(objects.ok());
  {  // a failed state commit of a delete (which moves the last record into its slot) changes nothing
    sink::MemoryObjectStore mem;
    store::MemoryStore state;
    auto sink = open_on(mem, &state);
    for (const auto& s : segments_of(*n, kColl, 20)) REQUIRE(sink->upload_segment(s, kNow).ok());
    const auto hash = store::state_hash(state);
    REQUIRE(hash.ok());
    const std::uint64_t count = mem.object_count();
    state.fail_next_writes(1);
    auto state_of_node = n->crdt_state_for_testing(kColl);
    REQUIRE(state_of_node.ok());
    auto del = state_of_node->remove(id_of(2));  // the delta only: the node keeps the record
    REQUIRE(del.ok());
    REQUIRE_FALSE(sink->apply_delta(kColl, encode(*del), kNow).ok());
    CHECK(mem.object_count() == count);
    CHECK(*store::state_hash(state) == *hash);
    check_layout(state, *n, kDim);
    check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, kDim, rng, 5);
  }
  {
    auto env = sink::open_state_env(tmp.path + "/state");
    REQUIRE(env.ok());
    auto sink = open_on(**objects, env->store.get());
    for (const auto& s : segments_of(*n, kColl, 20)) REQUIRE(sink->upload_segment(s, kNow).ok());
    REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, id_of(7)), kNow).ok());
  }
  // What a kill right after the object store's puts leaves: two deletes and an upsert the state
  // env never joined (the sink's key sequence continues from the highest key).
  std::vector<std::string> pending{delete_delta(*n, kColl, id_of(0)), delete_delta(*n, kColl, id_of(30)),
                                   upsert_delta(*n, kColl, "late", random_value(rng, kDim, 9))};
  for (const auto& d : pending) {
    auto keys = (*objects)->list("");
    REQUIRE(keys.ok());
    std::uint64_t top = 0;
    for (const auto& k : *keys) top = std::max<std::uint64_t>(top, std::stoull(k.substr(k.rfind('/') + 1)));
    char digits[21];
    std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(top + 1));
    REQUIRE((*objects)->put(str_cat("dlt/", kColl, "/", digits), d).ok());
  }
  auto env = sink::open_state_env(tmp.path + "/state");
  REQUIRE(env.ok());
  auto sink = open_on(**objects, env->store.get());
  CHECK_FALSE(sink->rebuilt_at_open());
  CHECK(sink->joined_at_open() == 3);
  check_layout(*env->store, *n, kDim);
  check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, kDim, rng, 10);
  store::MemoryStore fresh;  // equal to a rebuild from the objects
  auto rebuilt = open_on(**objects, &fresh);
  CHECK(rebuilt->rebuilt_at_open());
  const auto pages = bootstrap_pages(*sink, kColl);
  const auto fresh_pages = bootstrap_pages(*rebuilt, kColl);
  REQUIRE(pages.size() == fresh_pages.size());
  for (std::size_t i = 0; i < pages.size(); ++i) CHECK(pages[i].segment == fresh_pages[i].segment);
}

TEST_CASE("cold search over the slabs breaks distance ties by id, as exact search does, also across the cut of k",
          "[sink][service][state][slabs]") {
  SHOAL_SINK_TEST_RNG(rng);
  constexpr std::uint32_t kDim = 8;
  TestNode n(1);
  create(*n, kColl, kDim);
  // Three distinct vectors shared by 60 records: every query ties in groups of 20.
  std::vector<node::RecordValue> shared;
  for (int v = 0; v < 3; ++v) shared.push_back(random_value(rng, kDim, v));
  std::vector<node::RecordInput> batch;
  for (int i = 0; i < 60; ++i) batch.push_back({id_of(i), shared[static_cast<std::size_t>(i % 3)]});
  REQUIRE(n->upsert_batch(kColl, std::move(batch)).ok());
  sink::MemoryObjectStore objects;
  store::MemoryStore state;
  auto sink = open_on(objects, &state);
  // Uploaded last segment first and then deletes: labels far from id order.
  auto segs = segments_of(*n, kColl, 7);
  std::reverse(segs.begin(), segs.end());
  for (const auto& s : segs) REQUIRE(sink->upload_segment(s, kNow).ok());
  for (int i : {0, 4, 8, 30}) REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, id_of(i)), kNow).ok());
  check_layout(state, *n, kDim);
  check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, kDim, rng, 40);
  for (std::uint32_t k : {1u, 5u, 19u, 20u, 21u, 56u, 57u}) check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, kDim, rng, 2, k);
  check_cold_equals_exact(*sink, *n, kColl, node::Metric::kCosine, kDim, rng, 10);
}

TEST_CASE("a state env from before the slabs (state version 1, a vector per record) is rebuilt at open into the slab layout",
          "[sink][service][state][slabs][lmdb]") {
  SHOAL_SINK_TEST_RNG(rng);
  constexpr std::uint32_t kDim = 16;
  TestNode n(1);
  fill(*n, kColl, kDim, node::Metric::kL2, 40, rng);
  const TempDir tmp("shoal-sink-slab");
  auto objects = sink::LmdbObjectStore::open(tmp.path + "/objects");
  REQUIRE(objects.ok());
  {
    auto env = sink::open_state_env(tmp.path + "/state");
    REQUIRE(env.ok());
    auto sink = open_on(**objects, env->store.get());
    for (const auto& s : segments_of(*n, kColl, 16)) REQUIRE(sink->upload_segment(s, kNow).ok());
    REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, id_of(5)), kNow).ok());
  }
  {  // What main's code (D60) left: state version 1, each winner's vector in the vectors table
     // under C \0 id, records as u8 length, holder, entries with whole payloads, 10 counters.
    auto env = sink::open_state_env(tmp.path + "/state");
    REQUIRE(env.ok());
    store::Store& st = *env->store;
    for (store::Table t : store::kAllTables) {
      auto txn = st.begin_write();
      REQUIRE(txn.ok());
      auto all = (*txn)->collect(t, store::Range::all());
      REQUIRE(all.ok());
      for (const auto& kv : *all) {
        if (!kv.key.starts_with("store.")) REQUIRE((*txn)->del(t, kv.key).ok());  // the store's own meta stays
      }
      REQUIRE((*txn)->commit().ok());
    }
    auto txn = st.begin_write();
    REQUIRE(txn.ok());
    auto state = n->crdt_state_for_testing(kColl);
    REQUIRE(state.ok());
    const std::string holder = "seg/slabs/00000000000000000001";
    for (const auto& [id, entries] : state->records()) {
      const std::string key = std::string(kColl) + '\0' + id;
      crdt::Bytes b;
      crdt::encode_entries(entries, b);
      std::string v(1, static_cast<char>(holder.size()));
      v += holder;
      v.append(reinterpret_cast<const char*>(b.data()), b.size());
      REQUIRE((*txn)->put(store::Table::kRecords, key, v).ok());
      REQUIRE((*txn)->put(store::Table::kVectors, key, node_vectors(*n).at(id)).ok());
    }
    REQUIRE((*txn)->put(store::Table::kCatalogue, kColl, std::string(80, '\0')).ok());
    REQUIRE((*txn)->put(store::Table::kMeta, "sink.state_version", "1").ok());
    REQUIRE((*txn)->commit().ok());
  }
  auto env = sink::open_state_env(tmp.path + "/state");
  REQUIRE(env.ok());
  CHECK(env->discarded.empty());
  auto sink = open_on(**objects, env->store.get());
  CHECK(sink->rebuilt_at_open());
  check_layout(*env->store, *n, kDim);  // the vectors table emptied, the slabs filled
  check_cold_equals_exact(*sink, *n, kColl, node::Metric::kL2, kDim, rng, 10);
  store::MemoryStore fresh;
  auto rebuilt = open_on(**objects, &fresh);
  const auto pages = bootstrap_pages(*sink, kColl);
  const auto fresh_pages = bootstrap_pages(*rebuilt, kColl);
  REQUIRE(pages.size() == fresh_pages.size());
  for (std::size_t i = 0; i < pages.size(); ++i) {
    CHECK(pages[i].segment == fresh_pages[i].segment);
    CHECK(pages[i].context == fresh_pages[i].context);
  }
  // And reopened once more: trusted as it is now.
  sink.reset();
  auto again = open_on(**objects, env->store.get());
  CHECK_FALSE(again->rebuilt_at_open());
  check_layout(*env->store, *n, kDim);
}

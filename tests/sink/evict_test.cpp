// tests/sink/evict_test.cpp: eviction to stubs (node/core/node_evict.cpp; docs/tiers.md,
// "Eviction"; D49) on a real LMDB store, fed to a real SinkService the way the mesh's uploader
// drives it. Proves: nothing the sink has not acknowledged is evicted (the mutation that ignores
// the acknowledgements is caught), nor anything within the hot window; the budget is respected
// when enough is eligible; an evicted record leaves local search but cold search's merge brings
// it back, marked cold; get of a stub returns its metadata flagged evicted, and the sink's
// payload refills it only when its digest matches; the CRDT state's dots, context and repair
// digests are the same with or without the payloads; stubs sent to peers never replace a peer's
// payload, and a peer that receives only a stub holds a stub; a reopen keeps the stubs (and the
// index without them); the feed never uploads a stub; bad options are refused naming the value.
// Random data uses the seed printed with each case.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "node/core/tier_policy.hpp"
#include "node/store/lmdb_store.hpp"
#include "node/store/memory_store.hpp"
#include "sink/memory_object_store.hpp"
#include "sink_fixture.hpp"

using namespace shoal;
using namespace shoal::sink_test;
using sink::SinkService;

namespace {

constexpr std::int64_t kHourNs = std::int64_t{3600} * 1'000'000'000;
constexpr std::uint32_t kDim = 8;
constexpr std::uint64_t kRecordBytes = kDim * sizeof(float);

// Tier policies sending `names` to the sink, with a one-hour hot window.
node::TierPolicies sink_policy_set(const std::vector<std::string>& names) {
  node::TierPolicies p;
  for (const std::string& name : names) {
    node::TierPolicy t;
    t.sink = true;
    t.hot_window = Duration::seconds(3600);
    p.collections.emplace(name, t);
  }
  return p;
}

// A node on a real LMDB store with a wall clock the test moves.
struct Device {
  std::unique_ptr<store::LmdbStore> store;
  std::shared_ptr<std::int64_t> now = std::make_shared<std::int64_t>(1'700'000'000'000'000'000);
  std::unique_ptr<node::Node> node;
  node::MutationsForTesting mutations;
  std::uint64_t replica = 1;
  std::vector<std::string> sinks{"cold"};  // the collections that go to the sink when it opens

  explicit Device(const std::string& dir, std::uint64_t replica_id = 1) : replica(replica_id) {
    store::LmdbStoreOptions o;
    o.path = dir;
    auto st = store::LmdbStore::open(o);
    INFO(st.status().to_string());
    REQUIRE(st.ok());
    store = std::move(*st);
    open();
  }
  void open() {
    node.reset();
    auto o = node_options(replica);
    auto clock = now;
    o.wall_clock = [clock] { return WallTime::from_ns(*clock += 1000); };
    o.mutations = mutations;
    auto n = node::Node::open(*store, o);
    INFO(n.status().to_string());
    REQUIRE(n.ok());
    node = std::move(*n);
    // As shoald starts: the config's policies, then the feed.
    REQUIRE(node->set_tier_policies(sink_policy_set(sinks)).ok());
    Status st = node->enable_sink_feed({});
    INFO(st.to_string());
    REQUIRE(st.ok());
  }
  void budget(std::uint64_t bytes) {
    node::EvictionOptions e;
    e.payload_budget_bytes = bytes;
    e.max_records_per_step = 16;  // several steps for these tests' sizes
    e.payload_digest = [](std::string_view p) { return sink::payload_digest(p); };
    REQUIRE(node->set_eviction(e).ok());
  }
  // Runs evict_step until it evicts nothing more; returns the records evicted.
  std::uint64_t evict() {
    std::uint64_t total = 0;
    for (int idle = 0; idle < 64;) {
      auto step = node->evict_step();
      INFO(step.status().to_string());
      REQUIRE(step.ok());
      total += step->evicted;
      if (!step->over_budget) break;
      idle = step->evicted == 0 ? idle + 1 : 0;
    }
    return total;
  }
};

void write(node::Node& n, const char* prefix, int count, Rng& rng, std::map<std::string, node::RecordValue>& values) {
  std::vector<node::RecordInput> batch;
  for (int i = 0; i < count; ++i) {
    auto v = random_value(rng, kDim, i);
    values[id_of(i, prefix)] = v;
    batch.push_back({id_of(i, prefix), v});
  }
  REQUIRE(n.upsert_batch("cold", std::move(batch)).ok());
}

bool evicted(node::Node& n, const std::string& id) {
  auto g = n.get("cold", id);
  REQUIRE(g.ok());
  return g->siblings.at(0).evicted;
}

// The state's ids, dots and context: what must not change when payloads are evicted.
struct Shape {
  std::map<std::string, std::vector<crdt::Dot>> dots;
  crdt::CausalContext ctx;
  std::uint64_t root = 0;
  friend bool operator==(const Shape&, const Shape&) = default;
};
Shape shape_of(node::Node& n) {
  auto st = n.crdt_state_for_testing("cold");
  REQUIRE(st.ok());
  Shape s;
  for (const auto& [id, entries] : st->records()) {
    for (const auto& e : entries) s.dots[id].push_back(e.dot);
  }
  s.ctx = st->context();
  auto root = n.digest_root("cold");
  REQUIRE(root.ok());
  s.root = *root;
  return s;
}

// Sends `n`'s whole state of "cold" to `to` as a peer's delta batch (records with their entries,
// context the dots they carry), the way a repair slice carries what the sender's store holds.
void send_state(node::Node& n, node::Node& to, std::uint64_t from) {
  auto st = n.crdt_state_for_testing("cold");
  REQUIRE(st.ok());
  crdt::Delta d;
  d.records = st->records();
  for (const auto& [id, entries] : d.records) crdt::add_entry_dots(d.context, entries);
  auto info = n.collection_info("cold");
  REQUIRE(info.ok());
  receive_from_peer(to, info->spec, {encode(d)}, from);
}

// A device with 100 records acknowledged two hours ago ("old"), 10 acknowledged just now
// ("hot", within the one-hour hot window) and 20 the sink has not acknowledged ("late").
struct Scenario {
  TempDir dir{"shoal-evict"};
  sink::MemoryObjectStore objects;
  std::unique_ptr<SinkService> sink;
  std::map<std::string, node::RecordValue> values;
  std::unique_ptr<Device> dev;

  explicit Scenario(Rng& rng, bool evict_unacked = false) {
    sink = open_service(objects);
    dev = std::make_unique<Device>(dir.path);
    if (evict_unacked) {
      dev->mutations.evict_unacked = true;
      dev->open();
    }
    create(*dev->node, "cold", kDim);
    write(*dev->node, "old", 100, rng, values);
    drain(*dev->node, *sink);
    *dev->now += 2 * kHourNs;
    write(*dev->node, "hot", 10, rng, values);
    drain(*dev->node, *sink);
    write(*dev->node, "late", 20, rng, values);
  }
  node::Node& node() { return *dev->node; }
};

}  // namespace

TEST_CASE("eviction stubs acknowledged records older than the hot window until the budget is met, and nothing "
          "unacknowledged",
          "[sink][evict]") {
  SHOAL_SINK_TEST_RNG(rng);

  SECTION("the budget is met; the hot and the unacknowledged stay whole; the CRDT shape is unchanged") {
    Scenario s(rng);
    const Shape before = shape_of(s.node());
    // 130 records held; a budget of 60 needs 70 evicted, and 100 are eligible.
    s.dev->budget(60 * kRecordBytes);
    CHECK(s.dev->evict() == 70);
    const auto status = s.node().eviction_status();
    CHECK(status.held_bytes == 60 * kRecordBytes);
    CHECK(status.evicted_records == 70);
    CHECK(s.node().stats().evicted_records == 70);
    CHECK(s.node().stats().evicted_bytes == 70 * kRecordBytes);
    for (int i = 0; i < 10; ++i) CHECK_FALSE(evicted(s.node(), id_of(i, "hot")));
    for (int i = 0; i < 20; ++i) CHECK_FALSE(evicted(s.node(), id_of(i, "late")));
    // Dots, context and repair digests are those of the state with every payload.
    CHECK(shape_of(s.node()) == before);
  }
  SECTION("a budget nothing can meet: every eligible record goes and nothing else") {
    Scenario s(rng);
    s.dev->budget(1);
    CHECK(s.dev->evict() == 100);
    for (int i = 0; i < 100; ++i) CHECK(evicted(s.node(), id_of(i, "old")));
    for (int i = 0; i < 10; ++i) CHECK_FALSE(evicted(s.node(), id_of(i, "hot")));
    for (int i = 0; i < 20; ++i) CHECK_FALSE(evicted(s.node(), id_of(i, "late")));
  }
  SECTION("once all are old, the unacknowledged still stay whole") {
    Scenario s(rng);
    *s.dev->now += 2 * kHourNs;
    s.dev->budget(1);
    CHECK(s.dev->evict() == 110);
    for (int i = 0; i < 20; ++i) CHECK_FALSE(evicted(s.node(), id_of(i, "late")));
    CHECK(s.node().eviction_status().skipped_unacked >= 20);
    // The sink takes them: now they go too.
    drain(s.node(), *s.sink);
    CHECK(s.dev->evict() == 20);
  }
  SECTION("mutation: eviction ignoring the acknowledgements stubs what the sink lacks (the checks above catch it)") {
    Scenario s(rng, /*evict_unacked=*/true);
    *s.dev->now += 2 * kHourNs;
    s.dev->budget(1);
    CHECK(s.dev->evict() == 130);
    CHECK(evicted(s.node(), id_of(0, "late")));
  }
}

TEST_CASE("an evicted record leaves local search, cold search brings it back; get returns its metadata, refills only "
          "with the digest's payload; a reopen keeps the stubs",
          "[sink][evict]") {
  SHOAL_SINK_TEST_RNG(rng);
  Scenario s(rng);
  s.dev->budget(1);
  REQUIRE(s.dev->evict() == 100);

  auto check_device = [&](node::Node& n) {
    // Local search for an evicted record's own vector does not find it; the merge with the
    // sink's answer does, marked cold.
    const std::string id = id_of(7, "old");
    const auto& v = s.values.at(id).vector;
    node::SearchOptions so;
    so.k = 5;
    auto local = n.search("cold", v, so);
    REQUIRE(local.ok());
    for (const auto& h : *local) CHECK(h.id.rfind("old", 0) != 0);
    // A filtered search (whose planner may scan the matching labels exactly) skips stubs too.
    auto filter = node::parse_filter("tag=even");
    REQUIRE(filter.ok());
    so.filter = *filter;
    auto filtered = n.search("cold", v, so);
    INFO(filtered.status().to_string());
    REQUIRE(filtered.ok());
    CHECK(filtered->size() == 5);
    for (const auto& h : *filtered) CHECK(h.id.rfind("old", 0) != 0);
    so.filter = node::Filter{};
    auto cold = s.sink->cold_search("cold", v, 5, node::Metric::kL2);
    REQUIRE(cold.ok());
    std::vector<node::ColdHit> hits;
    for (const auto& h : cold->hits) hits.push_back(node::ColdHit{h.id, h.distance, h.dots, false});
    auto merged = n.merge_cold_hits("cold", *local, hits, 5);
    REQUIRE(merged.ok());
    REQUIRE_FALSE(merged->empty());
    CHECK(merged->front().id == id);
    CHECK(merged->front().cold);
    CHECK(merged->front().distance == 0.0f);

    // get: the metadata, no vector, flagged evicted.
    auto g = n.get("cold", id);
    REQUIRE(g.ok());
    const node::Sibling& stub = g->siblings.at(0);
    CHECK(stub.evicted);
    CHECK(stub.value.vector.empty());
    CHECK(stub.value.metadata == s.values.at(id).metadata);
    CHECK(stub.value.model == s.values.at(id).model);
    // The sink's payload refills it; a payload that is not the one evicted is refused.
    auto fetched = s.sink->fetch("cold", std::vector<std::string>{id});
    REQUIRE(fetched.ok());
    REQUIRE((*fetched)[0].found);
    CHECK((*fetched)[0].digest == stub.digest);
    auto refill = n.check_refill(id, stub, (*fetched)[0].payload);
    REQUIRE(refill.ok());
    CHECK(*refill == s.values.at(id));
    auto other = s.sink->fetch("cold", std::vector<std::string>{id_of(8, "old")});
    REQUIRE(other.ok());
    CHECK(n.check_refill(id, stub, (*other)[0].payload).status().detail() == Detail::kChecksumMismatch);
    // A record not evicted is whole.
    auto whole = n.get("cold", id_of(0, "late"));
    REQUIRE(whole.ok());
    CHECK_FALSE(whole->siblings.at(0).evicted);
    CHECK(whole->siblings.at(0).value == s.values.at(id_of(0, "late")));
  };
  check_device(s.node());
  const Shape before = shape_of(s.node());
  // A reopen (the index rebuilt from the vectors table, without the stubs) keeps them.
  s.dev->open();
  s.dev->budget(1);
  CHECK(s.node().eviction_status().evicted_records == 100);
  CHECK(shape_of(s.node()) == before);
  check_device(s.node());
  // The feed never uploads a stub: a full-state upload (as after a hole) sends only whole records,
  // and the sink keeps every payload.
  REQUIRE(s.node().upsert("cold", id_of(3, "old"), s.values.at(id_of(4, "old"))).ok());
  drain(s.node(), *s.sink);
  CHECK(s.sink->status().records == 130);
  CHECK_FALSE(evicted(s.node(), id_of(3, "old")));  // overwritten: a new whole entry
}

TEST_CASE("stubs join like full entries: a peer's payload is never replaced by a stub, a peer that receives only stubs "
          "holds stubs, and the repair digests agree",
          "[sink][evict]") {
  SHOAL_SINK_TEST_RNG(rng);
  Scenario s(rng);
  TempDir dir_b("shoal-evict"), dir_c("shoal-evict");
  Device b(dir_b.path, 2), c(dir_c.path, 3);
  // The operator creates the collection on each peer (as a restore does), then data arrives.
  for (Device* d : {&b, &c}) create(*d->node, "cold", kDim);
  // b got every record whole before the eviction; c gets the evicting device's state after it.
  send_state(s.node(), *b.node, 1);
  s.dev->budget(1);
  REQUIRE(s.dev->evict() == 100);
  send_state(s.node(), *b.node, 1);
  send_state(s.node(), *c.node, 1);
  const std::uint64_t root = shape_of(s.node()).root;
  CHECK(shape_of(*b.node).root == root);
  CHECK(shape_of(*c.node).root == root);
  CHECK(shape_of(*b.node).dots == shape_of(s.node()).dots);
  CHECK(shape_of(*c.node).dots == shape_of(s.node()).dots);
  for (int i = 0; i < 100; ++i) {
    const std::string id = id_of(i, "old");
    auto gb = b.node->get("cold", id);
    REQUIRE(gb.ok());
    CHECK_FALSE(gb->siblings.at(0).evicted);
    CHECK(gb->siblings.at(0).value == s.values.at(id));
    CHECK(evicted(*c.node, id));
  }
  CHECK(c.node->eviction_status().evicted_records == 100);
  // b finds the records by local search; c, holding stubs, does not.
  node::SearchOptions so;
  so.k = 1;
  auto hb = b.node->search("cold", s.values.at("old0005").vector, so);
  REQUIRE(hb.ok());
  REQUIRE(hb->size() == 1);
  CHECK((*hb)[0].id == "old0005");
  auto hc = c.node->search("cold", s.values.at("old0005").vector, so);
  REQUIRE(hc.ok());
  for (const auto& h : *hc) CHECK(h.id != "old0005");
}

TEST_CASE("eviction options outside their limits are refused naming the value", "[sink][evict]") {
  TempDir dir{"shoal-evict"};
  Device d(dir.path);
  node::EvictionOptions e;
  e.payload_budget_bytes = node::kMaxPayloadBudgetBytes + 1;
  e.payload_digest = [](std::string_view p) { return sink::payload_digest(p); };
  Status st = d.node->set_eviction(e);
  CHECK(st.detail() == Detail::kOutOfRange);
  CHECK_THAT(st.message(), Catch::Contains(std::to_string(node::kMaxPayloadBudgetBytes + 1)));
  e.payload_budget_bytes = 1000;
  e.max_records_per_step = 0;
  CHECK(d.node->set_eviction(e).detail() == Detail::kOutOfRange);
  e.max_records_per_step = 10;
  e.payload_digest = nullptr;
  CHECK(d.node->set_eviction(e).code() == Code::kInvalidArgument);
  node::TierPolicy t;
  t.hot_window = Duration::seconds(-1);
  CHECK(node::validate(t).detail() == Detail::kOutOfRange);
}

TEST_CASE("a stub payload round-trips, keeps the dimension's offset, and a malformed one is refused with its offset",
          "[sink][evict]") {
  Rng rng(7);
  const node::RecordValue v = random_value(rng, kDim, 3);
  const std::string full = node::encode_payload(v);
  const node::PayloadDigest digest = sink::payload_digest(full);
  auto stub = node::make_stub_payload(full, digest);
  REQUIRE(stub.ok());
  CHECK(node::is_stub_payload(*stub));
  CHECK_FALSE(node::is_stub_payload(full));
  auto back = node::decode_stub_payload(*stub);
  REQUIRE(back.ok());
  CHECK(back->dimension == kDim);
  CHECK(back->digest == digest);
  CHECK(back->value.metadata == v.metadata);
  CHECK(back->value.model == v.model);
  CHECK(back->value.vector.empty());
  // decode_payload refuses a stub: only readers that know stubs take one.
  CHECK(node::decode_payload(*stub).status().detail() == Detail::kVersionMismatch);
  for (std::size_t cut = 0; cut < stub->size(); ++cut) {
    auto bad = node::decode_stub_payload(std::string_view(*stub).substr(0, cut));
    CHECK_FALSE(bad.ok());
  }
  CHECK(node::validate_stub(*back, kDim + 1, node::Limits{}).detail() == Detail::kDimensionMismatch);
}

namespace {

void write_to(node::Node& n, const char* collection, const char* prefix, int count, Rng& rng) {
  std::vector<node::RecordInput> batch;
  for (int i = 0; i < count; ++i) batch.push_back({id_of(i, prefix), random_value(rng, kDim, i)});
  REQUIRE(n.upsert_batch(collection, std::move(batch)).ok());
}

void sink_policies(node::Node& n, std::initializer_list<const char*> names) {
  REQUIRE(n.set_tier_policies(sink_policy_set(std::vector<std::string>(names.begin(), names.end()))).ok());
}

bool evicted_in(node::Node& n, const char* collection, const std::string& id) {
  auto g = n.get(collection, id);
  REQUIRE(g.ok());
  return g->siblings.at(0).evicted;
}

}  // namespace

// Issue 15 review, item 1 (D57): dots are numbered per collection, so "cold"'s acknowledged dots
// D:1..50 are also the dots of "docs"'s records, which the sink never received. Proves eviction
// judges each record against its own collection's acknowledgements only, that a collection
// turned sink=true gets its existing records uploaded, and that only then they may go.
TEST_CASE("eviction counts only acknowledgements of the record's own collection; a collection turned sink=true is "
          "uploaded whole before anything of it is evicted",
          "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  TempDir dir{"shoal-evict"};
  sink::MemoryObjectStore objects;
  auto opened = SinkService::open(objects);
  REQUIRE(opened.ok());
  auto sink = std::move(*opened);
  Device dev(dir.path);
  create(*dev.node, "cold", kDim);
  create(*dev.node, "docs", kDim);
  write_to(*dev.node, "cold", "c", 50, rng);
  write_to(*dev.node, "docs", "d", 50, rng);
  drain(*dev.node, *sink);  // "cold" goes up; "docs" (no sink) stays home
  REQUIRE(sink->status().records == 50);
  sink_policies(*dev.node, {"cold", "docs"});  // the operator's SIGHUP
  *dev.now += 2 * kHourNs;
  dev.budget(1);
  CHECK(dev.evict() == 50);
  for (int i = 0; i < 50; ++i) {
    CHECK(evicted_in(*dev.node, "cold", id_of(i, "c")));
    CHECK_FALSE(evicted_in(*dev.node, "docs", id_of(i, "d")));
  }
  // The feed sends "docs" whole now; once the sink has it, its records may go.
  drain(*dev.node, *sink);
  CHECK(sink->status().records == 100);
  CHECK(dev.evict() == 50);
  for (int i = 0; i < 50; ++i) CHECK(evicted_in(*dev.node, "docs", id_of(i, "d")));
  // The acknowledgements are kept per collection across a reopen.
  dev.open();
  CHECK(dev.node->eviction_status().evicted_records == 100);
}

// Issue 15 review, item 3: an upload that leaves out a record with a stub must not claim that
// record's other entries' dots, or the sink drops them when they arrive later. Device a holds r
// as [a1 (stub), b1]; its upload leaves r out; b's own upload of r:[b1] must still land.
TEST_CASE("an upload leaving out a record with a stub does not claim its other entries' dots", "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  TempDir dir_a("shoal-evict"), dir_b("shoal-evict");
  sink::MemoryObjectStore objects;
  auto opened = SinkService::open(objects);
  REQUIRE(opened.ok());
  auto sink = std::move(*opened);
  Device a(dir_a.path, 1), b(dir_b.path, 2);
  create(*a.node, "cold", kDim);
  create(*b.node, "cold", kDim);
  write_to(*a.node, "cold", "r", 1, rng);
  drain(*a.node, *sink);
  REQUIRE(sink->status().records == 1);
  *a.now += 2 * kHourNs;
  a.budget(1);
  REQUIRE(a.evict() == 1);
  write_to(*b.node, "cold", "r", 1, rng);  // concurrent with a's r
  {
    // b1 reaches a through a repair join (here a bootstrap page, which joins as the digest path's
    // repair does): a buffers r with its whole current state, a: r = [a1 stub, b1].
    auto st = b.node->crdt_state_for_testing("cold");
    REQUIRE(st.ok());
    crdt::Delta d;
    d.records = st->records();
    for (const auto& [id, entries] : d.records) crdt::add_entry_dots(d.context, entries);
    REQUIRE(a.node->join_sink_page("cold", std::move(d), false, {}, {}).ok());
  }
  drain(*a.node, *sink);
  CHECK(sink->status().records == 1);
  drain(*b.node, *sink);  // b's first run sends "cold" whole: r = [b1]
  auto page = sink->bootstrap("cold", "");
  REQUIRE(page.ok());
  std::set<std::string> ids;
  auto delta = sink::bootstrap_page_delta("cold", page->segment, "", false, ids);
  REQUIRE(delta.ok());
  REQUIRE(delta->records.contains(id_of(0, "r")));
  CHECK(delta->records.at(id_of(0, "r")).size() == 2);  // a1 and b1
}

// D69 (simulator seed 829): a device that takes a peer's stub of a record before its own
// concurrent entry of that record reached the sink must still upload that entry. Device a's r =
// [a1] is acknowledged and evicted; b writes b1 concurrently, then takes a's stub by a repair
// join, b: r = [a1 (stub), b1], before b's first upload. Every device that holds the stub would
// leave r out if the whole record went, so b1 would never reach the sink; b's upload must carry
// b1 without claiming a1 (the sink keeps its copy of a1).
TEST_CASE("an upload carries a record's whole entries beside a stub it leaves out", "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  TempDir dir_a("shoal-evict"), dir_b("shoal-evict");
  sink::MemoryObjectStore objects;
  auto opened = SinkService::open(objects);
  REQUIRE(opened.ok());
  auto sink = std::move(*opened);
  Device a(dir_a.path, 1), b(dir_b.path, 2);
  create(*a.node, "cold", kDim);
  create(*b.node, "cold", kDim);
  write_to(*a.node, "cold", "r", 1, rng);
  drain(*a.node, *sink);
  REQUIRE(sink->status().records == 1);
  *a.now += 2 * kHourNs;
  a.budget(1);
  REQUIRE(a.evict() == 1);
  write_to(*b.node, "cold", "r", 1, rng);  // concurrent with a's r
  send_state(*a.node, *b.node, 1);         // b: r = [a1 stub, b1]
  const std::string r = id_of(0, "r");
  {
    auto got = b.node->get("cold", r);
    REQUIRE(got.ok());
    REQUIRE(got->siblings.size() == 2);
    const bool one_stub = got->siblings[0].evicted != got->siblings[1].evicted;
    REQUIRE(one_stub);
  }
  drain(*b.node, *sink);
  auto page = sink->bootstrap("cold", "");
  REQUIRE(page.ok());
  std::set<std::string> ids;
  auto delta = sink::bootstrap_page_delta("cold", page->segment, "", false, ids);
  REQUIRE(delta.ok());
  REQUIRE(delta->records.contains(r));
  const crdt::Entries& at_sink = delta->records.at(r);
  CHECK(at_sink.size() == 2);  // a1 kept, b1 carried
  for (const crdt::Entry& e : at_sink) CHECK_FALSE(node::is_stub_payload(node::format::as_view(e.payload)));
  CHECK(b.node->sink_feed_status().backlog_entries == 0);
}

// Issue 15 review, item 4: the acknowledged-dot set stays compact under repeated overwrites (the
// dots of entries overwritten before any upload carried them would otherwise stay holes forever).
TEST_CASE("the acknowledged-dot set stays compact under repeated overwrites", "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  TempDir dir{"shoal-evict"};
  sink::MemoryObjectStore objects;
  auto opened = SinkService::open(objects);
  REQUIRE(opened.ok());
  auto sink = std::move(*opened);
  Device dev(dir.path);
  create(*dev.node, "cold", kDim);
  for (int round = 0; round < 30; ++round) {
    write_to(*dev.node, "cold", "r", 20, rng);
    write_to(*dev.node, "cold", "r", 20, rng);  // overwrites the round's first write before any upload
    drain(*dev.node, *sink);
  }
  const auto st = dev.node->sink_feed_status();
  INFO("acked cloud " << st.acked_cloud_dots);
  CHECK(st.acked_cloud_dots == 0);
}

// Issue 15 review, item 5: a budget exceeded only by collections that never go to the sink is
// not the eviction's to meet: a step examines nothing (it scanned 1,024 records under the
// exclusive lock on every idle poll).
TEST_CASE("vectors of collections without the sink do not count against the eviction budget", "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  TempDir dir{"shoal-evict"};
  Device dev(dir.path);
  create(*dev.node, "cold", kDim);
  create(*dev.node, "plain", kDim);
  write_to(*dev.node, "plain", "p", 40, rng);
  write_to(*dev.node, "cold", "c", 2, rng);
  *dev.now += 2 * kHourNs;
  dev.budget(4 * kRecordBytes);
  auto step = dev.node->evict_step();
  REQUIRE(step.ok());
  CHECK(step->examined == 0);
  CHECK_FALSE(step->over_budget);
  CHECK(dev.node->eviction_status().held_bytes == 2 * kRecordBytes);
}

// While a collection does not go to the sink, the feed moves its cursor past that collection's
// writes. Proves that a collection turned sink=false (SIGHUP) and back to true at a restart is
// sent whole again, so the sink gets the records written meanwhile (before the fix the
// acknowledgements it kept from before made the feed's start take it as uploaded: the sink never
// got them, and a device restored from it lacked them), and that they are then evictable.
TEST_CASE("a collection turned sink=false and back to true across a restart is uploaded whole again",
          "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  TempDir dir{"shoal-evict"};
  sink::MemoryObjectStore objects;
  auto sink = open_service(objects);
  Device dev(dir.path);
  create(*dev.node, "cold", kDim);
  write_to(*dev.node, "cold", "a", 10, rng);
  drain(*dev.node, *sink);
  REQUIRE(sink->status().records == 10);
  sink_policies(*dev.node, {});  // the operator's SIGHUP: "cold" stays home
  write_to(*dev.node, "cold", "b", 10, rng);
  drain(*dev.node, *sink);  // skips "cold"'s writes
  REQUIRE(sink->status().records == 10);
  dev.open();  // restarted with "cold" going to the sink again
  drain(*dev.node, *sink);
  CHECK(sink->status().records == 20);
  *dev.now += 2 * kHourNs;
  dev.budget(1);
  CHECK(dev.evict() == 20);
}

// Proves that a collection turned sink=true while the process was down, during a full-state
// upload that had already passed its name (collections go in name order), is sent whole after
// that upload: its writes are behind the cursor the upload ends at. Before the fix the feed's
// start looked for such collections only when no full-state upload was under way.
TEST_CASE("a collection turned sink=true while down, behind a full-state upload under way, is sent after it",
          "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  TempDir dir{"shoal-evict"};
  sink::MemoryObjectStore objects;
  auto sink = open_service(objects);
  Device dev(dir.path);
  create(*dev.node, "aaa", kDim);
  create(*dev.node, "bbb", kDim);
  create(*dev.node, "cold", kDim);
  write_to(*dev.node, "aaa", "a", 10, rng);
  write_to(*dev.node, "bbb", "b", 10, rng);
  write_to(*dev.node, "cold", "c", 10, rng);
  drain(*dev.node, *sink);  // "cold" only; the cursor passes every write
  REQUIRE(sink->status().records == 10);
  sink_policies(*dev.node, {"bbb", "cold"});  // SIGHUP: "bbb" turns sink, a full-state upload starts
  // The upload's chunks of "bbb" and "cold" are acknowledged; the process stops before its end.
  for (int chunks = 0; chunks < 2;) {
    auto up = dev.node->next_sink_upload();
    REQUIRE(up.ok());
    REQUIRE(up->has_value());
    REQUIRE((*up)->kind == node::SinkUpload::Kind::kFullChunk);
    if (!(*up)->delta.empty()) {
      REQUIRE(sink->apply_delta((*up)->collection, (*up)->delta, kNow).ok());
      ++chunks;
    }
    REQUIRE(dev.node->sink_acked(**up).ok());
  }
  REQUIRE(dev.node->sink_feed_status().full_state_pending);
  REQUIRE(sink->status().records == 20);
  dev.sinks = {"aaa", "bbb", "cold"};  // "aaa" turned sink while down
  dev.open();
  drain(*dev.node, *sink);
  CHECK(sink->status().records == 30);
}

// Proves that a sink feed start that failed on a store fault runs whole when tried again (an
// app's second shoal_mesh_start, the simulator's pump): before the fix the failed try left the
// feed marked enabled, so the retry returned at once and skipped the start's catch-up, here of a
// collection turned sink while the device was down, in a data directory from before D57 (the
// start deletes its old acknowledged-dot set: the write the fault strikes); the sink never got it.
TEST_CASE("a sink feed start that failed on a store fault runs whole when tried again", "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  store::MemoryStore ms;
  sink::MemoryObjectStore objects;
  auto sink = open_service(objects);
  {
    auto n = node::Node::open(ms, node_options(1));
    REQUIRE(n.ok());
    REQUIRE((*n)->enable_sink_feed({}).ok());  // no collection goes to the sink
    create(**n, "cold", kDim);
    write_to(**n, "cold", "c", 10, rng);
    drain(**n, *sink);  // nothing sent; the cursor passes the writes
    REQUIRE(sink->status().records == 0);
  }
  {
    auto w = ms.begin_write();
    REQUIRE(w.ok());
    crdt::Bytes empty;
    crdt::encode_context(crdt::CausalContext(), empty);
    REQUIRE((*w)->put(store::Table::kMeta, "node.sink_acked", std::string(empty.begin(), empty.end())).ok());
    REQUIRE((*w)->commit().ok());
  }
  auto n = node::Node::open(ms, node_options(1));
  REQUIRE(n.ok());
  REQUIRE((*n)->set_tier_policies(sink_policy_set({"cold"})).ok());  // turned sink while down
  ms.fail_next_writes(1);
  CHECK_FALSE((*n)->enable_sink_feed({}).ok());
  REQUIRE((*n)->enable_sink_feed({}).ok());
  drain(**n, *sink);
  CHECK(sink->status().records == 10);
}

// Proves that an acknowledgement arriving after its collection stopped going to the sink (an
// upload in flight at the SIGHUP) does not give it an acknowledged-dot set again: with one, the
// restart that turns it back on took it as uploaded, and the sink never got the records written
// while it was off (10 of 20 before the fix).
TEST_CASE("an acknowledgement arriving after its collection stopped going to the sink does not mark it uploaded",
          "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  TempDir dir{"shoal-evict"};
  sink::MemoryObjectStore objects;
  auto sink = open_service(objects);
  Device dev(dir.path);
  create(*dev.node, "cold", kDim);
  write_to(*dev.node, "cold", "a", 10, rng);
  auto up = dev.node->next_sink_upload();
  REQUIRE(up.ok());
  REQUIRE(up->has_value());
  REQUIRE_FALSE((*up)->delta.empty());
  REQUIRE(sink->apply_delta((*up)->collection, (*up)->delta, kNow).ok());
  sink_policies(*dev.node, {});  // the SIGHUP lands while the upload's acknowledgement is on its way
  REQUIRE(dev.node->sink_acked(**up).ok());
  write_to(*dev.node, "cold", "b", 10, rng);
  drain(*dev.node, *sink);
  REQUIRE(sink->status().records == 10);
  dev.open();  // restarted with "cold" going to the sink again
  drain(*dev.node, *sink);
  CHECK(sink->status().records == 20);
}

// D72 (noticed in D69): a stub entry exists only after the sink acknowledged its payload (one
// sink per mesh, D49), but its dot is never in this device's acknowledged set when the stub came
// from a peer (this device never had the payload to upload). Device a's r = [a1] is acknowledged
// and evicted; b writes b1 concurrently and later (b1 wins), takes a's stub by a repair join, b:
// r = [b1, a1 (stub)]. Proves that b, over its budget and past the hot window, evicts r once the
// sink acknowledged b1 (before the fix it kept r whole for good: 0 evicted), and that a whole
// entry the sink has not acknowledged still blocks it, b's own winner or a peer's concurrent
// loser c1 alike, until the sink takes it.
TEST_CASE("a record holding a peer's stub beside whole entries is evicted once the sink acknowledged every whole entry",
          "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  TempDir dir_a("shoal-evict"), dir_b("shoal-evict"), dir_c("shoal-evict");
  sink::MemoryObjectStore objects;
  auto sink = open_service(objects);
  Device a(dir_a.path, 1), b(dir_b.path, 2), c(dir_c.path, 3);
  for (Device* d : {&a, &b, &c}) create(*d->node, "cold", kDim);
  const std::string r = id_of(0, "r");
  write_to(*a.node, "cold", "r", 1, rng);
  drain(*a.node, *sink);
  *a.now += 2 * kHourNs;
  a.budget(1);
  REQUIRE(a.evict() == 1);
  *b.now += std::int64_t{60} * 1'000'000'000;  // b1 is written after a1: it wins
  write_to(*b.node, "cold", "r", 1, rng);
  send_state(*a.node, *b.node, 1);  // b: r = [b1, a1 stub]
  auto siblings = [&](node::Node& n) {
    auto got = n.get("cold", r);
    REQUIRE(got.ok());
    return got->siblings;
  };
  {
    const auto held = siblings(*b.node);
    REQUIRE(held.size() == 2);
    REQUIRE_FALSE(held[0].evicted);  // the winner, b1, is whole
    REQUIRE(held[1].evicted);        // a1 is a stub
  }
  *b.now += 2 * kHourNs;
  b.budget(1);

  SECTION("b1 acknowledged: the record goes, the stub needing nothing") {
    drain(*b.node, *sink);
    CHECK(b.evict() == 1);
    const auto held = siblings(*b.node);
    REQUIRE(held.size() == 2);
    CHECK(held[0].evicted);
    CHECK(held[1].evicted);
    CHECK(b.node->eviction_status().evicted_records == 1);
  }
  SECTION("b1 not acknowledged: the record stays whole until the sink takes it") {
    const std::uint64_t skipped = b.node->eviction_status().skipped_unacked;
    CHECK(b.evict() == 0);
    CHECK_FALSE(siblings(*b.node)[0].evicted);
    CHECK(b.node->eviction_status().skipped_unacked > skipped);
    drain(*b.node, *sink);
    CHECK(b.evict() == 1);
    CHECK(siblings(*b.node)[0].evicted);
  }
  SECTION("a peer's concurrent whole entry not acknowledged here blocks it too") {
    drain(*b.node, *sink);
    write_to(*c.node, "cold", "r", 1, rng);  // c1, concurrent with a1 and b1, loses to b1
    send_state(*c.node, *b.node, 3);          // b: r = [b1, c1, a1 stub]; c1 not uploaded by b yet
    REQUIRE(siblings(*b.node).size() == 3);
    CHECK(b.evict() == 0);
    CHECK_FALSE(siblings(*b.node)[0].evicted);
    drain(*b.node, *sink);  // b's upload carries c1 (and leaves a1 out)
    CHECK(b.evict() == 1);
    for (const node::Sibling& s : siblings(*b.node)) CHECK(s.evicted);
  }
}

// Proves that a restart uploads nothing the sink already acknowledged when a sink collection is
// held only as stubs (D68). A full-state chunk of such a collection leaves every record out (a
// stub is never uploaded) and so carries no delta at all, and the acknowledgement of a chunk
// with no delta gave the collection no acknowledged-dot set: the feed's start took it as never
// uploaded and sent every sink collection whole again, at every restart (the second section: the
// 10 records of "more", one upload at each restart, before the fix). The first section (stubs
// received from a peer, uploaded on the delta path, whose uploads carry an empty delta) passed
// before too; it stays as the other way a device comes to hold only stubs.
TEST_CASE("a restart uploads nothing already acknowledged when a sink collection holds only stubs", "[sink][evict]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  Rng rng(seed);
  sink::MemoryObjectStore objects;
  auto sink = open_service(objects);
  TempDir dir{"shoal-evict"};
  SECTION("stubs received from a peer that evicted them") {
    TempDir dir_a{"shoal-evict"};
    Device a(dir_a.path, 1);
    create(*a.node, "cold", kDim);
    write_to(*a.node, "cold", "c", 20, rng);
    drain(*a.node, *sink);
    *a.now += 2 * kHourNs;
    a.budget(1);
    REQUIRE(a.evict() == 20);
    Device b(dir.path, 2);
    b.sinks = {"cold", "more"};
    b.open();
    create(*b.node, "cold", kDim);
    create(*b.node, "more", kDim);
    write_to(*b.node, "more", "m", 10, rng);
    drain(*b.node, *sink);
    send_state(*a.node, *b.node, 1);  // b holds "cold" as 20 stubs
    REQUIRE(b.node->eviction_status().evicted_records == 20);
    drain(*b.node, *sink);
    for (int restart = 0; restart < 2; ++restart) {
      b.open();
      CHECK(drain(*b.node, *sink) == 0);
    }
  }
  SECTION("stubs evicted here, in a collection turned sink=false and back on") {
    Device d(dir.path);
    d.sinks = {"cold", "more"};
    d.open();
    create(*d.node, "cold", kDim);
    create(*d.node, "more", kDim);
    write_to(*d.node, "cold", "c", 20, rng);
    drain(*d.node, *sink);
    *d.now += 2 * kHourNs;
    write_to(*d.node, "more", "m", 10, rng);
    drain(*d.node, *sink);
    d.budget(1);  // "more" is within the hot window: only "cold" goes
    REQUIRE(d.evict() == 20);
    sink_policies(*d.node, {"more"});  // the operator's SIGHUP: "cold" stays home
    d.open();  // restarted with "cold" going to the sink again: sent whole once (it holds stubs only)
    drain(*d.node, *sink);
    for (int restart = 0; restart < 2; ++restart) {
      d.open();
      CHECK(drain(*d.node, *sink) == 0);
    }
  }
  CHECK(sink->status().records == 30);
}

// Proves the memory budget (EvictionOptions::memory_budget_bytes, shoald's
// sink.memory_budget_bytes; D68): with no payload budget, a device whose sink collections' index
// memory is over it evicts acknowledged records older than the hot window until it fits, charging
// each record its index's memory over the elements it stores; it never evicts an unacknowledged
// record nor one within the hot window, however far over the budget it stays; and a budget over
// 2^50 is refused naming the value.
TEST_CASE("a memory budget over the sink collections' index memory evicts acknowledged old records until it fits, "
          "and never an unacknowledged one",
          "[sink][evict]") {
  SHOAL_SINK_TEST_RNG(rng);
  Scenario s(rng);
  auto memory_budget = [&](std::uint64_t bytes) {
    node::EvictionOptions e;
    e.memory_budget_bytes = bytes;
    e.max_records_per_step = 16;
    e.payload_digest = [](std::string_view p) { return sink::payload_digest(p); };
    REQUIRE(s.node().set_eviction(e).ok());
  };
  const std::uint64_t index_bytes = s.node().collection_info("cold")->index_bytes;
  const auto before = s.node().eviction_status();
  REQUIRE(before.index_held_bytes > 0);
  CHECK(before.index_held_bytes <= index_bytes);
  const std::uint64_t each = before.index_held_bytes / 130;  // 130 records, none evicted
  REQUIRE(each > 0);
  SECTION("a budget of 60 records' share evicts 70 of the 100 eligible") {
    memory_budget(60 * each);
    CHECK(s.dev->evict() == 70);
    const auto after = s.node().eviction_status();
    CHECK(after.memory_budget_bytes == 60 * each);
    CHECK(after.index_held_bytes <= 60 * each);
    CHECK(after.evicted_records == 70);
  }
  SECTION("a budget no eviction can meet evicts every eligible record and nothing else") {
    memory_budget(1);
    CHECK(s.dev->evict() == 100);
    for (int i = 0; i < 10; ++i) CHECK_FALSE(evicted(s.node(), id_of(i, "hot")));
    // Two hours on, "hot" is old too; "late" is old but still unacknowledged: it stays.
    *s.dev->now += 2 * kHourNs;
    CHECK(s.dev->evict() == 10);
    auto step = s.node().evict_step();
    REQUIRE(step.ok());
    CHECK(step->over_budget);
    CHECK(step->evicted == 0);
    for (int i = 0; i < 20; ++i) CHECK_FALSE(evicted(s.node(), id_of(i, "late")));
    CHECK(s.node().eviction_status().skipped_unacked > 0);
    // What is left is charged for the 20 records the index must still hold.
    CHECK(s.node().eviction_status().index_held_bytes <= 20 * (index_bytes / 130 + 1));
  }
  SECTION("a budget over the limit is refused naming the value, and nothing changes") {
    node::EvictionOptions e;
    e.memory_budget_bytes = node::kMaxPayloadBudgetBytes + 1;
    e.payload_digest = [](std::string_view p) { return sink::payload_digest(p); };
    const Status st = s.node().set_eviction(e);
    CHECK(st.detail() == Detail::kOutOfRange);
    CHECK_THAT(st.message(), Catch::Contains(std::to_string(node::kMaxPayloadBudgetBytes + 1)));
    e.memory_budget_bytes = 1;
    e.payload_digest = nullptr;
    CHECK(s.node().set_eviction(e).code() == Code::kInvalidArgument);
    CHECK(s.node().eviction_status().memory_budget_bytes == 0);
    CHECK(s.dev->evict() == 0);
  }
}

// The same budget under the mutation that ignores the sink's acknowledgements evicts the
// unacknowledged records: the check above is what keeps them (a memory budget reaches the same
// acknowledgement test as the payload one).
TEST_CASE("a memory budget under the evict-unacked mutation evicts unacknowledged records", "[sink][evict]") {
  SHOAL_SINK_TEST_RNG(rng);
  Scenario s(rng, /*evict_unacked=*/true);
  *s.dev->now += 2 * kHourNs;
  node::EvictionOptions e;
  e.memory_budget_bytes = 1;
  e.payload_digest = [](std::string_view p) { return sink::payload_digest(p); };
  REQUIRE(s.node().set_eviction(e).ok());
  CHECK(s.dev->evict() == 130);
  CHECK(evicted(s.node(), id_of(0, "late")));
}

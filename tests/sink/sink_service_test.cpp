// tests/sink/sink_service_test.cpp: the sink's state machine (sink/sink_service.hpp) on the
// memory and LMDB object stores, fed with a real node's records. Proves: an upload is
// acknowledged only once the store has it (a failed put acknowledges nothing and changes
// nothing); cold search equals exact search over the node's live records (same ids, same
// distances, same order) under each metric; a delete after upload removes the record from cold
// search at once and, after compaction, its payload from every object, and a re-upload of the old
// segment does not resurrect it (the context is kept); fetch returns winners with their digest
// and reports absent ids; bootstrap pages restore the collection into a fresh node with the same
// CRDT state; a reopened sink has the same state; every malformed request (NaN vectors and dot
// counters past the CRDT's limit included) gets a typed error naming the limit and changes
// nothing; a collection emptied at the sink takes records of another dimension. Random data uses the seed printed with each case.
#include <catch2/catch.hpp>

#include <filesystem>
#include <set>

#include "sink/lmdb_object_store.hpp"
#include "sink/memory_object_store.hpp"
#include "sink_fixture.hpp"

using namespace shoal;
using namespace shoal::sink_test;
using sink::SinkService;

namespace {

constexpr const char* kColl = "photos";
// Every object's bytes, to look for a payload.
bool any_object_contains(sink::ObjectStore& store, std::string_view needle) {
  auto keys = store.list("");
  REQUIRE(keys.ok());
  for (const auto& k : *keys) {
    auto v = store.get(k);
    REQUIRE(v.ok());
    if (v->find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string winner_payload(node::Node& node, const std::string& id) {
  auto state = node.crdt_state_for_testing(kColl);
  REQUIRE(state.ok());
  const crdt::Entry* w = state->winner(id);
  REQUIRE(w != nullptr);
  return std::string(w->payload.begin(), w->payload.end());
}

void check_cold_equals_exact(SinkService& sink, node::Node& node, node::Metric metric, std::uint32_t dim, Rng& rng,
                             int queries) {
  sink_test::check_cold_equals_exact(sink, node, kColl, metric, dim, rng, queries);
}

}  // namespace

TEST_CASE("uploaded segments are acknowledged after the store has them, and cold search equals exact search",
          "[sink][service]") {
  const std::uint64_t seed = seed_of();
  INFO("seed " << seed);
  for (node::Metric metric : {node::Metric::kL2, node::Metric::kInnerProduct, node::Metric::kCosine}) {
    Rng rng(seed);
    TestNode n(1);
    fill(*n, kColl, 8, metric, 300, rng);
    sink::MemoryObjectStore store;
    auto sink = open_service(store);
    std::uint64_t last = 0;
    for (const std::string& seg : segments_of(*n, kColl, 64)) {
      auto ack = sink->upload_segment(seg, kNow);
      REQUIRE(ack.ok());
      CHECK(ack->seq > last);
      last = ack->seq;
      // Durable before the ack: the store returns the very bytes under the acknowledged key.
      auto stored = store.get(ack->key);
      REQUIRE(stored.ok());
      CHECK(*stored == seg);
    }
    CHECK(sink->status().records == 300);
    CHECK(sink->status().uploads == 5);
    check_cold_equals_exact(*sink, *n, metric, 8, rng, 30);
    auto r = sink->cold_search(kColl, std::vector<float>(8, 0.5f), 5, metric);
    REQUIRE(r.ok());
    CHECK(r->freshness.records == 300);
    CHECK(r->freshness.last_seq == last);
    CHECK(r->freshness.last_ack_wall_ns == kNow);
  }
}

TEST_CASE("a put the store fails is not acknowledged and changes nothing", "[sink][service]") {
  SHOAL_SINK_TEST_RNG(rng);
  Uploaded u(rng, kColl, 4, node::Metric::kL2, 40);
  auto& [n, store, sink] = u;
  auto segs = segments_of(*n, kColl, 20);
  REQUIRE(sink->upload_segment(segs[0], kNow).ok());
  store.fail_next_writes(1, false);
  auto refused = sink->upload_segment(segs[1], kNow);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kIo);
  CHECK(sink->status().records == 20);
  store.set_unreachable(true);
  CHECK(sink->upload_segment(segs[1], kNow).status().code() == Code::kUnavailable);
  store.set_unreachable(false);
  CHECK(sink->status().records == 20);
  REQUIRE(sink->upload_segment(segs[1], kNow).ok());
  CHECK(sink->status().records == 40);
}

TEST_CASE("a delete after upload leaves cold search at once and the object store after compaction; nothing resurrects",
          "[sink][service]") {
  SHOAL_SINK_TEST_RNG(rng);
  Uploaded u(rng, kColl, 6, node::Metric::kL2, 100);
  auto& [n, store, sink] = u;
  const auto segs = segments_of(*n, kColl, 30);
  for (const auto& s : segs) REQUIRE(sink->upload_segment(s, kNow).ok());

  const std::string victim = "r0042";
  const std::string payload = winner_payload(*n, victim);
  // The victim's own vector as the query: before the delete it is the nearest hit.
  auto value = node::decode_payload(payload);
  REQUIRE(value.ok());
  auto before = sink->cold_search(kColl, value->vector, 1, node::Metric::kL2);
  REQUIRE(before.ok());
  REQUIRE(before->hits.at(0).id == victim);

  auto ack = sink->apply_delta(kColl, delete_delta(*n, kColl, victim), kNow + 1);
  REQUIRE(ack.ok());
  CHECK(ack->key.rfind("dlt/photos/", 0) == 0);
  auto after = sink->cold_search(kColl, value->vector, 100, node::Metric::kL2);
  REQUIRE(after.ok());
  CHECK(after->hits.size() == 99);
  for (const auto& h : after->hits) CHECK(h.id != victim);
  check_cold_equals_exact(*sink, *n, node::Metric::kL2, 6, rng, 10);
  auto f = sink->fetch(kColl, std::vector<std::string>{victim});
  REQUIRE(f.ok());
  CHECK_FALSE(f->at(0).found);
  // Not compacted yet: the payload is still in its segment, and the status says so.
  CHECK(any_object_contains(store, payload));
  CHECK(sink->status().backlog_objects > 0);

  auto report = sink->compact();
  REQUIRE(report.ok());
  CHECK(report->collections == 1);
  CHECK(report->objects_removed == segs.size() + 1);  // the segments and the delta
  CHECK_FALSE(any_object_contains(store, payload));
  CHECK(sink->status().backlog_objects == 0);
  CHECK(sink->status().records == 99);
  // Nothing more to do the second time.
  auto again = sink->compact();
  REQUIRE(again.ok());
  CHECK(again->collections == 0);

  // A late retry of the old upload does not bring the deleted record back: the compacted
  // context still covers its dot.
  for (const auto& s : segs) REQUIRE(sink->upload_segment(s, kNow + 2).ok());
  CHECK(sink->status().records == 99);
  auto retried = sink->fetch(kColl, std::vector<std::string>{victim});
  REQUIRE(retried.ok());
  CHECK_FALSE(retried->at(0).found);

  // And a reopened sink agrees, even with an old segment back in the store (as when a crash
  // interrupted the compaction's removals): the compacted context judges it.
  const std::string old_key = "seg/photos/00000000000000000001";
  REQUIRE(store.put(old_key, segs[1]).ok());
  auto reopened = open_service(store);
  CHECK(reopened->status().records == 99);
  auto gone = reopened->fetch(kColl, std::vector<std::string>{victim});
  REQUIRE(gone.ok());
  CHECK_FALSE(gone->at(0).found);
  check_cold_equals_exact(*reopened, *n, node::Metric::kL2, 6, rng, 10);
}

// Proves open() rebuilds exactly the state the running sink had, whatever mix of objects the store
// holds: a compaction (its context and segments), later segments and deltas (upserts, deletes,
// a re-upload), and a segment older than the compaction put back: the same records with the same
// entries, the same context, and for each record the same object named as holding its winner.
// open() joins one object at a time after the compacted state (D54); this pins what it rebuilds.
TEST_CASE("a reopened sink has the running sink's state: records, context and which object holds each winner",
          "[sink][service]") {
  SHOAL_SINK_TEST_RNG(rng);
  Uploaded u(rng, kColl, 4, node::Metric::kL2, 60);
  auto& [n, store, sink] = u;
  const auto segs = segments_of(*n, kColl, 16);
  for (const auto& s : segs) REQUIRE(sink->upload_segment(s, kNow).ok());
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0001"), kNow).ok());
  REQUIRE(sink->compact().ok());
  for (int i : {2, 17, 40}) REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, id_of(i), random_value(rng, 4, i)), kNow).ok());
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0018"), kNow).ok());
  REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, "new", random_value(rng, 4, 99)), kNow).ok());
  for (const auto& s : segments_of(*n, kColl, 25)) REQUIRE(sink->upload_segment(s, kNow).ok());
  REQUIRE(store.put("seg/photos/00000000000000000002", segs[0]).ok());  // older than the compaction

  std::vector<std::string> ids;
  for (int i = 0; i < 60; ++i) ids.push_back(id_of(i));
  ids.push_back("new");
  auto reopened = open_service(store);
  CHECK(reopened->status().records == 59);
  CHECK(reopened->status().records == sink->status().records);
  CHECK(reopened->status().objects == sink->status().objects + 1);  // the segment put back
  auto a = sink->fetch(kColl, ids);
  auto b = reopened->fetch(kColl, ids);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    INFO(ids[i]);
    CHECK((*a)[i].found == ((ids[i] != "r0001") && (ids[i] != "r0018")));
    CHECK((*b)[i].found == (*a)[i].found);
    CHECK((*b)[i].payload == (*a)[i].payload);
    CHECK((*b)[i].hlc == (*a)[i].hlc);
    CHECK((*b)[i].object == (*a)[i].object);
  }
  const auto pa = bootstrap_pages(*sink, kColl);
  const auto pb = bootstrap_pages(*reopened, kColl);
  REQUIRE(pa.size() == pb.size());
  for (std::size_t i = 0; i < pa.size(); ++i) {
    CHECK(pa[i].segment == pb[i].segment);  // the same records with the same entries
    CHECK(pa[i].context == pb[i].context);  // the same causal context
  }
  check_cold_equals_exact(*reopened, *n, node::Metric::kL2, 4, rng, 10);
}

// Proves a collection's dimension at the sink is its live records': once every record is
// deleted, uploads of another dimension are taken (a device that recreated the collection),
// cold search takes queries of the new dimension, and a reopened sink, with the old records'
// objects still in the store (not compacted), agrees.
TEST_CASE("a collection emptied at the sink takes records of another dimension, also after a reopen",
          "[sink][service]") {
  SHOAL_SINK_TEST_RNG(rng);
  Uploaded u(rng, kColl, 6, node::Metric::kL2, 8);
  auto& [old_node, store, sink] = u;
  u.upload(kColl, 4);
  TestNode new_node(2);
  fill(*new_node, kColl, 3, node::Metric::kL2, 5, rng);
  const auto new_segs = segments_of(*new_node, kColl, 5);
  // While 6-d records live, 3-d ones are refused, and nothing changes.
  CHECK(sink->upload_segment(new_segs.at(0), kNow).status().detail() == Detail::kDimensionMismatch);
  CHECK(sink->status().records == 8);
  for (int i = 0; i < 8; ++i) {
    REQUIRE(sink->apply_delta(kColl, delete_delta(*old_node, kColl, id_of(i)), kNow + 1).ok());
  }
  REQUIRE(sink->status().records == 0);
  for (const auto& s : new_segs) REQUIRE(sink->upload_segment(s, kNow + 2).ok());
  CHECK(sink->status().records == 5);
  check_cold_equals_exact(*sink, *new_node, node::Metric::kL2, 3, rng, 5);
  auto reopened = open_service(store);
  CHECK(reopened->status().records == 5);
  check_cold_equals_exact(*reopened, *new_node, node::Metric::kL2, 3, rng, 5);
}

TEST_CASE("an upsert after upload replaces the record at the sink", "[sink][service]") {
  SHOAL_SINK_TEST_RNG(rng);
  Uploaded u(rng, kColl, 4, node::Metric::kL2, 20);
  auto& [n, store, sink] = u;
  u.upload(kColl, 20);
  const std::string old_payload = winner_payload(*n, "r0003");
  node::RecordValue v = random_value(rng, 4, 999);
  REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, "r0003", v), kNow).ok());
  CHECK(sink->status().records == 20);
  auto f = sink->fetch(kColl, std::vector<std::string>{"r0003"});
  REQUIRE(f.ok());
  REQUIRE(f->at(0).found);
  auto got = node::decode_payload(f->at(0).payload);
  REQUIRE(got.ok());
  CHECK(got->vector == v.vector);
  CHECK(f->at(0).object.rfind("dlt/", 0) == 0);
  CHECK(any_object_contains(store, old_payload));
  REQUIRE(sink->compact().ok());
  // The superseded payload left the store with compaction; the new one and the others stay.
  CHECK_FALSE(any_object_contains(store, old_payload));
  CHECK(any_object_contains(store, winner_payload(*n, "r0003")));
  CHECK(any_object_contains(store, winner_payload(*n, "r0000")));
  check_cold_equals_exact(*sink, *n, node::Metric::kL2, 4, rng, 10);
}

TEST_CASE("fetch returns each winner with its metadata, clock and digest; absent ids are not found",
          "[sink][service]") {
  SHOAL_SINK_TEST_RNG(rng);
  Uploaded u(rng, kColl, 5, node::Metric::kCosine, 50);
  auto& [n, store, sink] = u;
  u.upload(kColl, 16);
  const std::vector<std::string> ids = {"r0007", "nope", "r0049"};
  auto f = sink->fetch(kColl, ids);
  REQUIRE(f.ok());
  REQUIRE(f->size() == 3);
  for (std::size_t i : {std::size_t{0}, std::size_t{2}}) {
    const auto& r = f->at(i);
    REQUIRE(r.found);
    CHECK(r.id == ids[i]);
    auto local = n->get(kColl, ids[i]);
    REQUIRE(local.ok());
    auto v = node::decode_payload(r.payload);
    REQUIRE(v.ok());
    CHECK(*v == local->siblings.at(0).value);
    CHECK(r.hlc == local->siblings.at(0).clock.raw());
    CHECK(r.digest == sink::payload_digest(r.payload));
    CHECK(r.object.rfind("seg/photos/", 0) == 0);
  }
  CHECK(f->at(1).id == "nope");
  CHECK_FALSE(f->at(1).found);
}

TEST_CASE("bootstrap pages restore the collection into a fresh node with the same CRDT state", "[sink][service]") {
  SHOAL_SINK_TEST_RNG(rng);
  sink::SinkLimits limits;
  limits.max_bootstrap_records = 17;  // several pages
  Uploaded u(rng, kColl, 8, node::Metric::kL2, 120, limits);
  auto& [n, store, sink] = u;
  u.upload(kColl, 50);
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0010"), kNow).ok());
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0011"), kNow).ok());

  const std::vector<sink::BootstrapPage> pages = bootstrap_pages(*sink, kColl);
  CHECK(pages.size() == 7);  // 118 records, 17 a page
  TestNode fresh(2);
  auto spec = n->collection_info(kColl);
  REQUIRE(spec.ok());
  restore(*fresh, spec->spec, pages, 9);
  auto a = n->crdt_state_for_testing(kColl);
  auto b = fresh->crdt_state_for_testing(kColl);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->records() == b->records());
  CHECK(a->context() == b->context());
  auto info = fresh->collection_info(kColl);
  REQUIRE(info.ok());
  CHECK(info->live_records == 118);
  CHECK_FALSE(fresh->get(kColl, "r0010").ok());
}

void bootstrap_into(node::Node& node, const SinkService& sink, const std::function<void()>& between_pages = {}) {
  sink_test::bootstrap_into(node, sink, kColl, between_pages);
}

TEST_CASE("join_sink_page restores the sink's records, removes what the sink deleted, and keeps writes it never saw",
          "[sink][service][bootstrap]") {
  SHOAL_SINK_TEST_RNG(rng);
  sink::SinkLimits limits;
  limits.max_bootstrap_records = 7;  // several pages
  Uploaded u(rng, kColl, 8, node::Metric::kL2, 60, limits);
  auto& [n, store, sink] = u;
  const auto all = segments_of(*n, kColl, 100);
  for (const auto& seg : all) REQUIRE(sink->upload_segment(seg, kNow).ok());

  // The device to restore holds an old copy of r0005 (which the sink will see deleted) and a
  // write of its own the sink never received.
  TestNode fresh(2);
  create_like(*n, *fresh, kColl);
  std::set<std::string> none;
  auto old = sink::bootstrap_page_delta(kColl, all.front(), "", false, none);
  REQUIRE(old.ok());
  REQUIRE(fresh->join_sink_page(kColl, std::move(*old), false, none, {}).ok());
  REQUIRE(fresh->upsert(kColl, "mine", random_value(rng, 8, 99)).ok());
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0005"), kNow).ok());
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0006"), kNow).ok());

  bootstrap_into(*fresh, *sink);
  CHECK_FALSE(fresh->get(kColl, "r0005").ok());  // deleted at the sink: removed here too
  CHECK_FALSE(fresh->get(kColl, "r0006").ok());
  CHECK(fresh->get(kColl, "mine").ok());          // the sink never saw it: kept
  auto info = fresh->collection_info(kColl);
  REQUIRE(info.ok());
  CHECK(info->live_records == 58 + 1);
  auto a = n->crdt_state_for_testing(kColl);
  auto b = fresh->crdt_state_for_testing(kColl);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  for (const auto& [id, entries] : a->records()) {
    const crdt::Entries* got = b->find(id);
    REQUIRE(got != nullptr);
    CHECK(*got == entries);
  }
  CHECK(b->context().includes(a->context()));
  // Joining it all again changes nothing.
  bootstrap_into(*fresh, *sink);
  auto again = fresh->crdt_state_for_testing(kColl);
  REQUIRE(again.ok());
  CHECK(again->records() == b->records());
  CHECK(again->context() == b->context());
}

// Proves the buffer entries a bootstrap leaves are deltas a full-state joiner can take: a device
// whose sink feed is on (as shoald's is when it bootstraps) uploads them back to the sink, and the
// sink still holds every record it held (the last page's context covers earlier pages' records;
// joined as a delta, it made the sink drop all but the last page's).
TEST_CASE("a bootstrapped device's feed uploads its bootstrap back to the sink without removing anything there",
          "[sink][service][bootstrap]") {
  SHOAL_SINK_TEST_RNG(rng);
  sink::SinkLimits limits;
  limits.max_bootstrap_records = 6;  // several pages
  Uploaded u(rng, kColl, 8, node::Metric::kL2, 40, limits);
  auto& [n, store, sink] = u;
  u.upload(kColl, 100);
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0003"), kNow).ok());
  REQUIRE(sink->status().records == 39);

  TestNode fresh(2);
  create_like(*n, *fresh, kColl);
  feed_to_sink(*fresh, kColl);
  drain(*fresh, *sink, kNow);  // the first run: the (empty) collection whole
  bootstrap_into(*fresh, *sink);
  CHECK(fresh->collection_info(kColl)->live_records == 39);
  CHECK(drain(*fresh, *sink, kNow + 1) >= 1);  // the bootstrap's entries went back up
  CHECK(sink->status().records == 39);
  std::vector<std::string> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(id_of(i));
  auto fetched = sink->fetch(kColl, ids);
  REQUIRE(fetched.ok());
  for (const auto& f : *fetched) CHECK(f.found == (f.id != "r0003"));
}

// Issue 15 review, item 2: a bootstrap's pages are fetched over time, and a record can reach the
// sink after its key's page went by. Proves such a write, judged against the sink's context as of
// the first page (which does not cover it), survives on the device and, after its feed uploads the
// bootstrap's entries, at the sink; a delete at the sink before the bootstrap still removes.
TEST_CASE("a write reaching the sink between two bootstrap pages survives the bootstrap on the device and at the sink",
          "[sink][service][bootstrap]") {
  Rng rng(seed_of());
  TestNode n(1);
  fill(*n, kColl, 8, node::Metric::kL2, 40, rng);
  sink::MemoryObjectStore store;
  sink::SinkLimits limits;
  limits.max_bootstrap_records = 6;  // several pages
  auto sink = open_service(store, limits);
  for (const auto& seg : segments_of(*n, kColl, 100)) REQUIRE(sink->upload_segment(seg, kNow).ok());

  TestNode fresh(2);
  create_like(*n, *fresh, kColl);
  // The device held r0010 before; the sink deleted it before the bootstrap began.
  std::set<std::string> none;
  auto old = sink::bootstrap_page_delta(kColl, segments_of(*n, kColl, 100).front(), "", false, none);
  REQUIRE(old.ok());
  REQUIRE(fresh->join_sink_page(kColl, std::move(*old), false, none, {}).ok());
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0010"), kNow).ok());
  feed_to_sink(*fresh, kColl);
  drain(*fresh, *sink, kNow);
  bool written = false;
  bootstrap_into(*fresh, *sink, [&] {
    if (written) return;
    written = true;
    // After the first page (r0000..r0005): a write whose key that page covered reaches the sink.
    REQUIRE(fresh->upsert(kColl, "r0002x", random_value(rng, 8, 77)).ok());
    drain(*fresh, *sink, kNow + 1);
  });
  CHECK(fresh->get(kColl, "r0002x").ok());
  CHECK_FALSE(fresh->get(kColl, "r0010").ok());
  drain(*fresh, *sink, kNow + 2);
  auto fetched = sink->fetch(kColl, std::vector<std::string>{"r0002x", "r0010"});
  REQUIRE(fetched.ok());
  CHECK(fetched->at(0).found);
  CHECK_FALSE(fetched->at(1).found);
}

// D67, found by shoal-sim's device replacements (--sink seeds 3, 10, 12, 31): a replaced device
// caught a stale version of a record from a peer before its bootstrap, and the lost device had
// been the only one besides the sink to hold the overwrite. Proves that a record named on a page
// before the last keeps no entry the sink had removed before the first page (the page was judged
// by its own dots alone, so the stale sibling stayed), and that the device's context learns the
// sink's first context, so the removal of a record it never held is known here and a stale copy
// arriving later is not taken in (before, only the dots of received entries entered it).
TEST_CASE("a bootstrap removes stale entries of records on earlier pages and learns what the sink removed",
          "[sink][service][bootstrap]") {
  SHOAL_SINK_TEST_RNG(rng);
  sink::SinkLimits limits;
  limits.max_bootstrap_records = 6;  // 7 pages: r0001 is on the first, r0020 on the fourth
  Uploaded u(rng, kColl, 8, node::Metric::kL2, 40, limits);
  auto& [n, store, sink] = u;
  const auto all = segments_of(*n, kColl, 100);
  u.upload(kColl, 100);

  // The new device holds the old version of r0001 only (a peer's stale copy).
  TestNode fresh(2);
  create_like(*n, *fresh, kColl);
  std::set<std::string> none;
  auto old = sink::bootstrap_page_delta(kColl, all.front(), "", false, none);
  REQUIRE(old.ok());
  crdt::Delta stale;
  stale.records["r0001"] = old->records.at("r0001");
  crdt::add_entry_dots(stale.context, stale.records["r0001"]);
  const crdt::Entries old_r0001 = stale.records["r0001"];
  REQUIRE(fresh->join_sink_page(kColl, stale, false, none, {}).ok());
  // At the sink: r0001 overwritten, r0020 deleted (the device never held r0020).
  REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, "r0001", random_value(rng, 8, 5)), kNow).ok());
  auto removed = n->crdt_state_for_testing(kColl);
  REQUIRE(removed.ok());
  const crdt::Entries r0020 = *removed->find("r0020");
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0020"), kNow).ok());

  bootstrap_into(*fresh, *sink);
  auto a = n->crdt_state_for_testing(kColl);
  auto b = fresh->crdt_state_for_testing(kColl);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(b->find("r0001") != nullptr);
  CHECK(*b->find("r0001") == *a->find("r0001"));  // one entry, the sink's: the stale one went
  CHECK(b->records() == a->records());
  CHECK(b->context() == a->context());
  for (const crdt::Entry& e : r0020) CHECK(b->context().contains(e.dot));
  // The stale copies arriving again (from a peer that never heard) change nothing.
  crdt::Delta again = stale;
  again.records["r0020"] = r0020;
  crdt::add_entry_dots(again.context, r0020);
  std::set<std::string> later;
  REQUIRE(fresh->join_sink_page(kColl, again, false, later, {}).ok());
  auto c = fresh->crdt_state_for_testing(kColl);
  REQUIRE(c.ok());
  CHECK(c->records() == a->records());
  CHECK_FALSE(fresh->get(kColl, "r0020").ok());
  CHECK(old_r0001 != *a->find("r0001"));
}

TEST_CASE("a device restored from the sink under its own replica id takes a new incarnation and never reissues a dot",
          "[sink][service][bootstrap]") {
  SHOAL_SINK_TEST_RNG(rng);
  Uploaded u(rng, kColl, 4, node::Metric::kL2, 12);
  auto& [n, store, sink] = u;
  u.upload(kColl, 100);
  // A delete: the sink's context now names a dot of replica 1 that no record carries.
  REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0011"), kNow).ok());
  REQUIRE(n->upsert(kColl, "later", random_value(rng, 4, 50)).ok());
  REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, "again", random_value(rng, 4, 51)), kNow).ok());

  // The same replica id on an empty store (a replaced device given the old identity): its own
  // counter is 0, the sink's context claims its dots beyond.
  TestNode same(1);
  create_like(*n, *same, kColl);
  const std::uint64_t stripped_before = same->stats().own_claims_stripped;
  bootstrap_into(*same, *sink);
  CHECK(same->stats().own_claims_stripped > stripped_before);
  CHECK_FALSE(same->get(kColl, "r0011").ok());
  CHECK(same->get(kColl, "again").ok());

  // Its next write's dot is of a new incarnation: never one the sink (or the old device) holds.
  REQUIRE(same->upsert(kColl, "fresh-write", random_value(rng, 4, 60)).ok());
  auto state = same->crdt_state_for_testing(kColl);
  REQUIRE(state.ok());
  const crdt::Entries* e = state->find("fresh-write");
  REQUIRE(e != nullptr);
  REQUIRE(e->size() == 1);
  const crdt::Dot dot = e->front().dot;
  CHECK(dot.replica.identity == crdt::replica_for_testing(1).identity);
  CHECK(dot.replica.incarnation > 0);
  auto old = n->crdt_state_for_testing(kColl);
  REQUIRE(old.ok());
  CHECK_FALSE(old->context().contains(dot));
}

TEST_CASE("a sink on LMDB reopens with the same state", "[sink][service][lmdb]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 60, rng);
  const TempDir tmp("shoal-sink-svc");
  const std::filesystem::path dir = tmp.path;
  {
    auto store = sink::LmdbObjectStore::open(dir.string());
    REQUIRE(store.ok());
    auto sink = open_service(**store);
    for (const auto& s : segments_of(*n, kColl, 25)) REQUIRE(sink->upload_segment(s, kNow).ok());
    REQUIRE(sink->apply_delta(kColl, delete_delta(*n, kColl, "r0001"), kNow).ok());
  }
  {
    auto store = sink::LmdbObjectStore::open(dir.string());
    REQUIRE(store.ok());
    auto sink = open_service(**store);
    CHECK(sink->status().records == 59);
    CHECK(sink->status().store_kind == "lmdb");
    check_cold_equals_exact(*sink, *n, node::Metric::kL2, 4, rng, 10);
    REQUIRE(sink->compact().ok());
  }
  {
    auto store = sink::LmdbObjectStore::open(dir.string());
    REQUIRE(store.ok());
    auto sink = open_service(**store);
    CHECK(sink->status().records == 59);
    CHECK(sink->status().objects == 2);  // one segment of the 59 records, and the context
    check_cold_equals_exact(*sink, *n, node::Metric::kL2, 4, rng, 10);
  }
}

TEST_CASE("uploads are checked under the collection's metric: cosine refuses a zero vector naming the record",
          "[sink][service][metric]") {
  // The node refuses a zero vector only under cosine (node::validate_record); the sink applies the
  // same rule under the metric the member says (sink.capnp's metric byte), so cold search under
  // cosine never scores a vector without a direction.
  Rng rng(seed_of());
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 3, rng);
  sink::MemoryObjectStore store;
  auto sink = open_service(store);
  const auto segs = segments_of(*n, kColl, 10);
  REQUIRE(sink->upload_segment(segs[0], kNow, node::Metric::kCosine).ok());  // no zero vector: taken
  const auto objects_before = store.object_count();

  node::RecordValue zero;
  zero.vector = {0, 0, 0, 0};
  const std::string delta = upsert_delta(*n, kColl, "zero-vec", zero);
  const std::string with_zero = segments_of(*n, kColl, 10)[0];
  for (const Status& st : {sink->apply_delta(kColl, delta, kNow, node::Metric::kCosine).status(),
                           sink->upload_segment(with_zero, kNow, node::Metric::kCosine).status()}) {
    INFO(st.to_string());
    CHECK(st.detail() == Detail::kZeroVector);
    CHECK(st.message().find("zero-vec") != std::string::npos);
  }
  // Refused: nothing stored, nothing joined.
  CHECK(store.object_count() == objects_before);
  CHECK(sink->status().records == 3);
  CHECK(sink->fetch(kColl, std::vector<std::string>{"zero-vec"})->at(0).found == false);

  // The same delta under l2 or ip, or from a member that does not say (l2's rules), is taken.
  REQUIRE(sink->apply_delta(kColl, delta, kNow, node::Metric::kL2).ok());
  CHECK(sink->status().records == 4);
  REQUIRE(sink->apply_delta(kColl, delta, kNow, node::Metric::kInnerProduct).ok());
  REQUIRE(sink->apply_delta(kColl, delta, kNow).ok());
  REQUIRE(sink->upload_segment(with_zero, kNow).ok());
  CHECK(sink->status().records == 4);
}

TEST_CASE("the sink keeps the metric uploads said, across a reopen and a compaction, and bootstrap pages say it",
          "[sink][service][metric][bootstrap]") {
  // What lets a device that lacks a collection create it before a bootstrap (MeshHost::
  // bootstrap_from_sink): the live records' dimension and the metric the members said.
  Rng rng(seed_of());
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 5, rng);
  sink::MemoryObjectStore store;
  const auto segs = segments_of(*n, kColl, 10);
  {
    auto sink = open_service(store);
    REQUIRE(sink->upload_segment(segs[0], kNow).ok());  // no metric said
    auto page = sink->bootstrap(kColl, "");
    REQUIRE(page.ok());
    CHECK(page->dimension == 4);
    CHECK_FALSE(page->metric.has_value());
    REQUIRE(sink->upload_segment(segs[0], kNow, node::Metric::kInnerProduct).ok());
    page = sink->bootstrap(kColl, "");
    REQUIRE(page.ok());
    CHECK(page->metric == node::Metric::kInnerProduct);
  }
  {
    auto sink = open_service(store);  // reopened: the metric object is read back
    auto page = sink->bootstrap(kColl, "");
    REQUIRE(page.ok());
    CHECK(page->metric == node::Metric::kInnerProduct);
    CHECK(page->dimension == 4);
    CHECK(sink->status().records == 5);
    auto report = sink->compact();
    INFO(report.status().to_string());
    REQUIRE(report.ok());
  }
  {
    auto sink = open_service(store);  // compaction kept it
    auto page = sink->bootstrap(kColl, "");
    REQUIRE(page.ok());
    CHECK(page->metric == node::Metric::kInnerProduct);
    // A member that says another metric replaces it; one object of it stays in the store.
    REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, "r-new", random_value(rng, 4, 99)), kNow,
                              node::Metric::kCosine)
                .ok());
    CHECK(sink->bootstrap(kColl, "")->metric == node::Metric::kCosine);
  }
  auto sink = open_service(store);
  CHECK(sink->bootstrap(kColl, "")->metric == node::Metric::kCosine);
  auto keys = store.list("spc/");
  REQUIRE(keys.ok());
  CHECK(keys->size() == 1);
}

TEST_CASE("the sink keeps the spec uploads said (index options), across a reopen and a compaction, refuses a "
          "spec that disagrees with its upload, and bootstrap pages say it (D62)",
          "[sink][service][metric][bootstrap]") {
  // What lets a bootstrap create a collection with its members' index options, not the defaults.
  Rng rng(seed_of());
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 5, rng);
  sink::MemoryObjectStore store;
  const auto segs = segments_of(*n, kColl, 10);
  node::CollectionSpec spec;
  spec.name = kColl;
  spec.dimension = 4;
  spec.metric = node::Metric::kL2;
  spec.m = 8;
  spec.ef_construction = 50;
  spec.ef_search = 20;
  spec.quantize = false;
  auto same_options = [](const node::CollectionSpec& a, const node::CollectionSpec& b) {
    return a.name == b.name && a.dimension == b.dimension && a.metric == b.metric && a.m == b.m &&
           a.ef_construction == b.ef_construction && a.ef_search == b.ef_search && a.quantize == b.quantize &&
           a.quant_min == b.quant_min && a.quant_max == b.quant_max;
  };
  {
    auto sink = open_service(store);
    REQUIRE(sink->upload_segment(segs[0], kNow, node::Metric::kL2).ok());  // no spec said (a member before D62)
    CHECK_FALSE(sink->bootstrap(kColl, "")->spec.has_value());

    // Refused, naming what disagrees, and nothing stored: another collection's name, another metric
    // than the byte, another dimension than the records', an index option out of range.
    const auto objects = store.object_count();
    auto bad = spec;
    bad.name = "other";
    auto r = sink->upload_segment(segs[0], kNow, node::Metric::kL2, bad);
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().find("other") != std::string::npos);
    bad = spec;
    bad.metric = node::Metric::kCosine;
    CHECK(sink->upload_segment(segs[0], kNow, node::Metric::kL2, bad).status().code() == Code::kInvalidArgument);
    bad = spec;
    bad.dimension = 5;
    r = sink->upload_segment(segs[0], kNow, node::Metric::kL2, bad);
    CHECK(r.status().detail() == Detail::kDimensionMismatch);
    CHECK(r.status().message().find("dimension 5") != std::string::npos);
    bad = spec;
    bad.m = 100000;
    r = sink->apply_delta(kColl, upsert_delta(*n, kColl, "r-bad", random_value(rng, 4, 98)), kNow, node::Metric::kL2, bad);
    CHECK(r.status().detail() == Detail::kOutOfRange);
    CHECK(r.status().message().find("100000") != std::string::npos);
    CHECK(store.object_count() == objects);
    CHECK_FALSE(sink->bootstrap(kColl, "")->spec.has_value());

    REQUIRE(sink->upload_segment(segs[0], kNow, node::Metric::kL2, spec).ok());
    auto page = sink->bootstrap(kColl, "");
    REQUIRE(page.ok());
    REQUIRE(page->spec.has_value());
    CHECK(same_options(*page->spec, spec));
  }
  {
    auto sink = open_service(store);  // reopened: the spec object is read back
    REQUIRE(sink->bootstrap(kColl, "")->spec.has_value());
    CHECK(same_options(*sink->bootstrap(kColl, "")->spec, spec));
    REQUIRE(sink->compact().ok());
  }
  {
    auto sink = open_service(store);  // compaction kept it
    CHECK(same_options(*sink->bootstrap(kColl, "")->spec, spec));
    // A newer spec replaces it (a delta says it); one object of it stays in the store.
    spec.m = 24;
    spec.quantize = true;
    REQUIRE(sink->apply_delta(kColl, upsert_delta(*n, kColl, "r-new", random_value(rng, 4, 99)), kNow, node::Metric::kL2,
                              spec)
                .ok());
    CHECK(same_options(*sink->bootstrap(kColl, "")->spec, spec));
  }
  auto sink = open_service(store);
  CHECK(same_options(*sink->bootstrap(kColl, "")->spec, spec));
  auto keys = store.list("idx/");
  REQUIRE(keys.ok());
  CHECK(keys->size() == 1);
}

TEST_CASE("malformed requests get typed errors naming the limit, and change nothing", "[sink][service]") {
  SHOAL_SINK_TEST_RNG(rng);
  sink::SinkLimits limits;
  limits.max_collections = 1;
  limits.max_upload_bytes = 64 * 1024;
  Uploaded u(rng, kColl, 4, node::Metric::kL2, 10, limits);
  auto& [n, store, sink] = u;
  const auto segs = segments_of(*n, kColl, 10);
  REQUIRE(sink->upload_segment(segs[0], kNow).ok());
  const auto objects_before = store.object_count();

  // Segments.
  CHECK(sink->upload_segment("not a segment at all", kNow).status().detail() == Detail::kBadMagic);
  std::string flipped = segs[0];
  flipped[flipped.size() / 2] ^= 0x01;
  CHECK(sink->upload_segment(flipped, kNow).status().detail() == Detail::kChecksumMismatch);
  auto big = sink->upload_segment(std::string(64 * 1024 + 1, 'x'), kNow);
  CHECK(big.status().detail() == Detail::kTooLarge);
  CHECK(big.status().message().find("65537") != std::string::npos);
  CHECK(big.status().message().find("65536") != std::string::npos);
  {
    // A record whose payload is not the node's payload encoding.
    sink::Segment s;
    s.collection = kColl;
    sink::SegmentRecord r;
    r.id = "zz";
    sink::SegmentEntry e;
    e.dot.replica[0] = 7;
    e.dot.counter = 1;
    e.payload = "garbage";
    r.entries.push_back(e);
    s.records.push_back(r);
    auto bytes = sink::encode_segment(s);
    REQUIRE(bytes.ok());
    auto st = sink->upload_segment(*bytes, kNow).status();
    CHECK(st.detail() == Detail::kVersionMismatch);  // its first byte is no payload version
    CHECK(st.message().find("zz") != std::string::npos);
    // The record "zz" with `vector` under the dot counter `counter`, uploaded.
    node::RecordValue v;
    auto upload_zz = [&](std::vector<float> vector, std::uint64_t counter) {
      v.vector = std::move(vector);
      s.records[0].entries[0].payload = node::encode_payload(v);
      s.records[0].entries[0].dot.counter = counter;
      auto encoded = sink::encode_segment(s);
      REQUIRE(encoded.ok());
      return u.sink->upload_segment(*encoded, kNow).status();  // u.sink: clang-14 refuses a lambda capturing a structured binding
    };
    // A vector of another dimension.
    st = upload_zz({1, 2, 3}, 1);
    CHECK(st.detail() == Detail::kDimensionMismatch);
    CHECK(st.message().find("dimension 3") != std::string::npos);
    // A NaN in a vector: the node's record check, so cold search never scores one.
    st = upload_zz({1, 2, std::numeric_limits<float>::quiet_NaN(), 4}, 1);
    CHECK(st.detail() == Detail::kNonFinite);
    CHECK(st.message().find("zz") != std::string::npos);
    // A dot counter the CRDT's decoders refuse (found by fuzz_sink_service: accepted, it made the
    // bootstrap context undecodable, and after a compaction the sink could not reopen).
    st = upload_zz({1, 2, 3, 4}, crdt::kMaxCounter);
    CHECK(st.detail() == Detail::kOutOfRange);
    CHECK(st.message().find(std::to_string(crdt::kMaxCounter)) != std::string::npos);
    CHECK(st.message().find(std::to_string(crdt::kMaxCounter - 1)) != std::string::npos);
    s.records[0].entries[0].dot.counter = 1;
    // Another collection, past max_collections.
    s.collection = "other";
    v.vector = {1, 2, 3, 4};
    s.records[0].entries[0].payload = node::encode_payload(v);
    bytes = sink::encode_segment(s);
    REQUIRE(bytes.ok());
    CHECK(sink->upload_segment(*bytes, kNow).status().detail() == Detail::kTooLarge);
    // A bad collection name.
    s.collection = ".hidden";
    bytes = sink::encode_segment(s);
    REQUIRE(bytes.ok());
    CHECK(sink->upload_segment(*bytes, kNow).status().code() == Code::kInvalidArgument);
  }
  // Deltas.
  CHECK(sink->apply_delta(kColl, "\x01garbage", kNow).status().detail() == Detail::kMalformed);
  CHECK(sink->apply_delta("bad/name", "", kNow).status().code() == Code::kInvalidArgument);
  // Searches.
  const std::vector<float> q4(4, 0.1f);
  CHECK(sink->cold_search("missing", q4, 3, node::Metric::kL2).status().detail() == Detail::kNoSuchCollection);
  CHECK(sink->cold_search(kColl, q4, 0, node::Metric::kL2).status().detail() == Detail::kOutOfRange);
  auto kbig = sink->cold_search(kColl, q4, 1001, node::Metric::kL2);
  CHECK(kbig.status().detail() == Detail::kTooLarge);
  CHECK(kbig.status().message().find("1001") != std::string::npos);
  CHECK(sink->cold_search(kColl, std::vector<float>(5, 0.1f), 3, node::Metric::kL2).status().detail() ==
        Detail::kDimensionMismatch);
  CHECK(sink->cold_search(kColl, std::vector<float>{0, 0, 0, std::numeric_limits<float>::quiet_NaN()}, 3,
                          node::Metric::kL2)
            .status()
            .detail() == Detail::kNonFinite);
  CHECK(sink->cold_search(kColl, std::vector<float>(4, 0.0f), 3, node::Metric::kCosine).status().detail() ==
        Detail::kZeroVector);
  // Fetch and bootstrap.
  CHECK(sink->fetch(kColl, std::vector<std::string>(1001, "a")).status().detail() == Detail::kTooLarge);
  CHECK(sink->fetch(kColl, std::vector<std::string>{""}).status().code() == Code::kInvalidArgument);
  CHECK(sink->fetch("missing", std::vector<std::string>{"a"}).status().detail() == Detail::kNoSuchCollection);
  CHECK(sink->bootstrap("missing", "").status().detail() == Detail::kNoSuchCollection);

  CHECK(store.object_count() == objects_before);
  CHECK(sink->status().records == 10);
  CHECK(sink->collections() == std::vector<std::string>{kColl});
}

// Proves that a stored object whose record payload does not decode (a delta object, which carries
// no checksum, changed in the object store; or a segment written so) makes open() fail with
// kCorruption naming the object, instead of aborting the sink (a SHOAL_ASSERT in the join: the
// payloads were taken as validated at upload).
TEST_CASE("a stored object whose payload does not decode fails the sink's open with kCorruption, never aborts",
          "[sink][service]") {
  sink::MemoryObjectStore store;
  crdt::Delta bad;
  crdt::Entry e;
  e.dot = crdt::Dot{crdt::replica_for_testing(1), 1};
  e.clock = crdt::Hlc::from_raw(1);
  e.payload = crdt::Bytes{0x7f, 0x01, 0x02};  // no payload version byte this build writes
  bad.records["r0"] = {e};
  bad.context.add(e.dot);
  REQUIRE(store.put("dlt/photos/00000000000000000001", encode(bad)).ok());
  auto opened = SinkService::open(store);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.status().code() == Code::kCorruption);
  CHECK_THAT(opened.status().to_string(), Catch::Contains("dlt/photos/00000000000000000001"));
}

// Proves that stored objects leaving live records of two dimensions (written past the upload
// checks, or changed in the store) fail the sink's open with kCorruption naming the dimensions:
// cold search lays the live vectors out as rows of the collection's one dimension and would read
// past them.
TEST_CASE("stored objects leaving live records of two dimensions fail the sink's open with kCorruption",
          "[sink][service]") {
  SHOAL_SINK_TEST_RNG(rng);
  sink::MemoryObjectStore store;
  int seq = 1;
  for (std::uint32_t dim : {4u, 8u}) {
    crdt::Delta d;
    crdt::Entry e;
    e.dot = crdt::Dot{crdt::replica_for_testing(1), static_cast<std::uint64_t>(seq)};
    e.clock = crdt::Hlc::from_raw(static_cast<std::uint64_t>(seq));
    const std::string payload = node::encode_payload(random_value(rng, dim, seq));
    e.payload.assign(payload.begin(), payload.end());
    d.records[id_of(seq)] = {e};
    d.context.add(e.dot);
    REQUIRE(store.put(str_cat("dlt/photos/0000000000000000000", seq), encode(d)).ok());
    ++seq;
  }
  auto opened = SinkService::open(store);
  REQUIRE_FALSE(opened.ok());
  CHECK(opened.status().code() == Code::kCorruption);
  CHECK_THAT(opened.status().to_string(), Catch::Contains("dimension 8"));
}

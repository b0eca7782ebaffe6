// tests/sink/sink_feed_test.cpp: the node's side of the cold tier, sans-I/O (node/core/
// node_sink_feed.cpp), feeding a real SinkService on a memory object store, the way the mesh's
// uploader drives it (every upload applied with SinkService::apply_delta, then acknowledged).
// Proves: the first run sends each sink collection whole (in chunks) and the sink then equals the
// node (cold search equals exact search, fetch returns the node's winners); later upserts and
// deletes reach the sink as deltas, and a deleted record leaves cold search; collections without
// the sink policy never reach it; local writes to a sink collection are refused with
// kQuotaExceeded (naming the backlog and the quota) while the sink has not taken the backlog, the
// refused write changes nothing, and writes resume after the acknowledgement; the cursor
// survives a reopen; a buffer that dropped entries the sink never got starts a full-state upload;
// an acknowledgement the node did not ask for (stale) moves nothing. Random data uses the seed
// printed with each case.
#include <catch2/catch.hpp>

#include <set>

#include "node/core/tier_policy.hpp"
#include "sink/memory_object_store.hpp"
#include "sink_fixture.hpp"

using namespace shoal;
using namespace shoal::sink_test;
using node::SinkUpload;
using sink::SinkService;

namespace {

void check_sink_equals_node(SinkService& sink, node::Node& n, const std::string& coll, std::uint32_t dim, Rng& rng) {
  auto state = n.crdt_state_for_testing(coll);
  REQUIRE(state.ok());
  const auto live = state->records().size();
  REQUIRE(sink.status().records >= live);
  check_cold_equals_exact(sink, n, coll, node::Metric::kL2, dim, rng, 8, 10);
  std::vector<std::string> ids;
  for (const auto& [id, entries] : state->records()) ids.push_back(id);
  for (std::size_t i = 0; i < ids.size(); i += 100) {
    std::vector<std::string> some(ids.begin() + static_cast<std::ptrdiff_t>(i),
                                  ids.begin() + static_cast<std::ptrdiff_t>(std::min(ids.size(), i + 100)));
    auto got = sink.fetch(coll, some);
    REQUIRE(got.ok());
    for (const auto& r : *got) {
      REQUIRE(r.found);
      const crdt::Entry* w = state->winner(r.id);
      REQUIRE(w != nullptr);
      CHECK(r.payload == std::string(w->payload.begin(), w->payload.end()));
    }
  }
}

}  // namespace

TEST_CASE("the first run sends sink collections whole, then deltas; the sink equals the node; others stay home",
          "[sink][feed]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, "cold", 16, node::Metric::kL2, 600, rng);
  fill(*n, "local", 16, node::Metric::kL2, 50, rng);
  node::SinkFeedOptions o;
  o.max_upload_bytes = 16 * 1024;  // several chunks for 600 records of 16-d
  feed_to_sink(*n, "cold", o);
  CHECK(n->sink_feed_status().full_state_pending);

  sink::MemoryObjectStore store;
  auto opened = open_service(store);
  SinkService& sink = *opened;
  const int chunks = drain(*n, sink);
  CHECK(chunks > 1);
  CHECK_FALSE(n->sink_feed_status().full_state_pending);
  CHECK(n->sink_feed_status().backlog_entries == 0);
  CHECK(sink.status().records == 600);
  check_sink_equals_node(sink, *n, "cold", 16, rng);
  // The collection without the sink policy never went.
  CHECK(sink.cold_search("local", std::vector<float>(16, 0.5f), 1, node::Metric::kL2).status().detail() ==
        Detail::kNoSuchCollection);

  // Later writes go as deltas: upserts of new and old ids, deletes; writes to "local" are skipped.
  std::vector<node::RecordInput> batch;
  for (int i = 0; i < 40; ++i) batch.push_back({"new" + std::to_string(i), random_value(rng, 16, i)});
  REQUIRE(n->upsert_batch("cold", std::move(batch)).ok());
  REQUIRE(n->upsert("cold", "r0001", random_value(rng, 16, 1)).ok());
  REQUIRE(n->remove("cold", "r0002").ok());
  REQUIRE(n->remove("cold", "new3").ok());
  REQUIRE(n->upsert("local", "l-new", random_value(rng, 16, 1)).ok());
  CHECK(n->sink_feed_status().backlog_entries == 44);  // one buffer entry per record written, "local" included
  CHECK(drain(*n, sink) >= 1);
  CHECK(n->sink_feed_status().backlog_entries == 0);
  CHECK(sink.status().records == 600 + 40 - 2);
  check_sink_equals_node(sink, *n, "cold", 16, rng);
  auto gone = sink.fetch("cold", std::vector<std::string>{"r0002", "new3"});
  REQUIRE(gone.ok());
  CHECK_FALSE((*gone)[0].found);
  CHECK_FALSE((*gone)[1].found);
}

TEST_CASE("local writes to a sink collection are refused at the quota and resume after the acknowledgement",
          "[sink][feed][quota]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, "cold", 8, node::Metric::kL2, 10, rng);
  fill(*n, "local", 8, node::Metric::kL2, 1, rng);
  node::SinkFeedOptions o;
  o.quota_entries = 5;
  feed_to_sink(*n, "cold", o);
  sink::MemoryObjectStore store;
  auto sink = open_service(store);
  drain(*n, *sink);

  // The sink is away: nothing is acknowledged. Five writes wait, the sixth is refused.
  for (int i = 0; i < 5; ++i) REQUIRE(n->upsert("cold", "w" + std::to_string(i), random_value(rng, 8, i)).ok());
  const std::uint64_t seq = n->stats().last_delta_seq;
  Status refused = n->upsert("cold", "w5", random_value(rng, 8, 5));
  INFO(refused.to_string());
  CHECK(refused.detail() == Detail::kQuotaExceeded);
  CHECK(refused.message().find("quota 5") != std::string::npos);
  CHECK(refused.message().find("5 delta buffer entries") != std::string::npos);
  CHECK(n->remove("cold", "r0001").detail() == Detail::kQuotaExceeded);
  CHECK(n->stats().last_delta_seq == seq);  // nothing changed
  CHECK(n->get("cold", "w5").status().detail() == Detail::kNoSuchRecord);
  CHECK(n->sink_feed_status().quota_refusals == 2);
  // A collection that does not go to the sink is not held back.
  CHECK(n->upsert("local", "x", random_value(rng, 8, 0)).ok());

  // The uploads the feed offers now are acknowledged: writes resume.
  drain(*n, *sink);
  CHECK(n->upsert("cold", "w5", random_value(rng, 8, 5)).ok());
  CHECK(sink->status().records == 15);
}

TEST_CASE("the sink cursor survives a reopen, a stale acknowledgement moves nothing, and a dropped entry restarts a "
          "full-state upload",
          "[sink][feed]") {
  SHOAL_SINK_TEST_RNG(rng);
  store::MemoryStore st;
  sink::MemoryObjectStore objects;
  auto opened = open_service(objects);
  SinkService& sink = *opened;
  auto options = node_options(1);
  options.delta_buffer_max = 8;
  std::uint64_t cursor = 0;
  {
    auto n = node::Node::open(st, options);
    REQUIRE(n.ok());
    fill(**n, "cold", 8, node::Metric::kL2, 20, rng);
    node::SinkFeedOptions o;
    o.quota_entries = 8;
    feed_to_sink(**n, "cold", o);
    drain(**n, sink);
    REQUIRE((*n)->upsert("cold", "a", random_value(rng, 8, 0)).ok());
    auto up = (*n)->next_sink_upload();
    REQUIRE(up.ok());
    REQUIRE(*up);
    CHECK((*up)->kind == SinkUpload::Kind::kDelta);
    // Not acknowledged before the "crash". A stale acknowledgement (an older range) is ignored.
    SinkUpload stale = **up;
    stale.first_seq = 1;
    stale.last_seq = 1;
    REQUIRE((*n)->sink_acked(stale).ok());
    cursor = (*n)->sink_feed_status().uploaded_through;
    CHECK((*n)->sink_feed_status().backlog_entries == 1);
  }
  {
    auto n = node::Node::open(st, options);
    REQUIRE(n.ok());
    node::SinkFeedOptions o;
    o.quota_entries = 8;
    feed_to_sink(**n, "cold", o);
    CHECK((*n)->sink_feed_status().uploaded_through == cursor);
    CHECK_FALSE((*n)->sink_feed_status().full_state_pending);
    drain(**n, sink);
    CHECK(sink.status().records == 21);
  }
  {
    // Without the feed (a device whose sink is not configured for a while) the buffer drops
    // entries at its bound; when the feed runs again the sink's hole is filled by a full state.
    auto n = node::Node::open(st, options);
    REQUIRE(n.ok());
    for (int i = 0; i < 12; ++i) REQUIRE((*n)->upsert("cold", "b" + std::to_string(i), random_value(rng, 8, i)).ok());
    node::SinkFeedOptions o;
    o.quota_entries = 8;
    feed_to_sink(**n, "cold", o);
    auto up = (*n)->next_sink_upload();
    REQUIRE(up.ok());
    REQUIRE(*up);
    CHECK((*up)->kind == SinkUpload::Kind::kGap);
    drain(**n, sink);
    CHECK_FALSE((*n)->sink_feed_status().full_state_pending);
    CHECK(sink.status().records == 33);
    check_sink_equals_node(sink, **n, "cold", 8, rng);
  }
}

TEST_CASE("a quota outside its limits is refused naming the value", "[sink][feed]") {
  TestNode n(1);
  node::SinkFeedOptions o;
  o.quota_entries = 0;
  Status st = n->enable_sink_feed(o);
  CHECK(st.detail() == Detail::kOutOfRange);
  CHECK(st.message().find("quota_entries 0 outside 1..100000") != std::string::npos);
  o.quota_entries = 100'001;
  CHECK(n->enable_sink_feed(o).detail() == Detail::kOutOfRange);
  CHECK_FALSE(n->sink_feed_status().enabled);
}

TEST_CASE("cold hits merge with local ones: a live record answers locally, a record deleted here but not yet at the "
          "sink stays out, a record this node never held comes in",
          "[sink][feed][cold]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode a(1);
  fill(*a, "cold", 8, node::Metric::kL2, 40, rng);
  feed_to_sink(*a, "cold");
  sink::MemoryObjectStore store;
  auto opened = open_service(store);
  SinkService& sink = *opened;
  drain(*a, sink);

  // Another device's record reaches the sink (not this node): it must come in.
  TestNode b(2);
  fill(*b, "cold", 8, node::Metric::kL2, 0, rng);
  feed_to_sink(*b, "cold");
  node::RecordValue far = random_value(rng, 8, 0);
  for (auto& x : far.vector) x = 0.0f;  // next to the query below
  REQUIRE(b->upsert("cold", "from-b", far).ok());
  drain(*b, sink);
  // A delete here the sink has not received (the feed is not drained).
  REQUIRE(a->remove("cold", "r0003").ok());

  const std::vector<float> query(8, 0.0f);
  auto local = a->search("cold", query, node::SearchOptions{45, 200, {}, false});
  REQUIRE(local.ok());
  auto cold = sink.cold_search("cold", query, 45, node::Metric::kL2);
  REQUIRE(cold.ok());
  std::vector<node::ColdHit> cold_hits;
  for (const auto& h : cold->hits) cold_hits.push_back({h.id, h.distance, h.dots, true});
  auto merged = a->merge_cold_hits("cold", *local, cold_hits, 45);
  INFO(merged.status().to_string());
  REQUIRE(merged.ok());
  // Every live local record once (from the local answer), "from-b" from the sink, never r0003.
  CHECK(merged->size() == 40);
  std::set<std::string> ids;
  for (const auto& h : *merged) {
    CHECK(ids.insert(h.id).second);
    CHECK(h.cold == (h.id == "from-b"));
  }
  CHECK(ids.count("from-b") == 1);
  CHECK(ids.count("r0003") == 0);
  CHECK((*merged)[0].id == "from-b");  // the closest: distance 0
  for (std::size_t i = 1; i < merged->size(); ++i) CHECK((*merged)[i - 1].distance <= (*merged)[i].distance);
  // k bounds the answer.
  auto top = a->merge_cold_hits("cold", *local, cold_hits, 3);
  REQUIRE(top.ok());
  CHECK(top->size() == 3);
  // Dots that do not decode are refused naming the id.
  std::vector<node::ColdHit> bad{{"zz", 0.0f, "\x01\x02", true}};
  auto refused = a->merge_cold_hits("cold", *local, bad, 3);
  CHECK(refused.status().detail() == Detail::kMalformed);
  CHECK(refused.status().message().find("'zz'") != std::string::npos);
}

namespace {

// What the sink holds of `id` after the hole scenario below: the number of its entries (0: gone).
std::size_t sink_entries_of(const SinkService& sink, const std::string& coll, const std::string& id) {
  for (const sink::BootstrapPage& p : bootstrap_pages(sink, coll)) {
    if (p.segment.empty()) continue;
    auto seg = sink::decode_segment(p.segment, sink::SegmentLimits{});
    REQUIRE(seg.ok());
    for (const auto& r : seg->records) {
      if (r.id == id) return r.entries.size();
    }
  }
  return 0;
}

struct HoleOutcome {
  std::size_t deleted_entries = 0;      // entries the sink holds of the record deleted in the hole
  std::size_t overwritten_entries = 0;  // entries it holds of the record overwritten in the hole
  std::size_t concurrent_entries = 0;   // entries of a record only another replica wrote
  std::uint64_t records = 0;
};

// A node feeds a sink, then (feed off) deletes r0003 and overwrites r0005 while its buffer drops
// those entries at its bound; when the feed runs again the buffer has a hole and the feed sends
// the collection whole. `send_removed`: whether the removed dots of that upload reach the sink.
HoleOutcome run_hole(bool send_removed, Rng& rng) {
  store::MemoryStore st;
  sink::MemoryObjectStore objects;
  auto opened = open_service(objects);
  SinkService& sink = *opened;
  auto options = node_options(1);
  options.delta_buffer_max = 8;
  node::SinkFeedOptions o;
  o.quota_entries = 8;
  o.max_upload_bytes = 2048;  // several chunks, and a range piece of 51 ranges
  {
    auto n = node::Node::open(st, options);
    REQUIRE(n.ok());
    fill(**n, "cold", 8, node::Metric::kL2, 40, rng);
    feed_to_sink(**n, "cold", o);
    drain(**n, sink);
    REQUIRE(sink_entries_of(sink, "cold", "r0003") == 1);
    // A record another member wrote and uploaded, which this node never saw: not its to remove.
    TestNode other(2);
    create_like(**n, *other, "cold");
    REQUIRE(sink.apply_delta("cold", upsert_delta(*other, "cold", "x-other", random_value(rng, 8, 99)), kNow).ok());
  }
  {
    auto n = node::Node::open(st, options);
    REQUIRE(n.ok());
    REQUIRE((*n)->remove("cold", "r0003").ok());
    REQUIRE((*n)->upsert("cold", "r0005", random_value(rng, 8, 5)).ok());
    for (int i = 0; i < 12; ++i) REQUIRE((*n)->upsert("cold", "b" + std::to_string(i), random_value(rng, 8, i)).ok());
    feed_to_sink(**n, "cold", o);
    auto up = (*n)->next_sink_upload();
    REQUIRE(up.ok());
    REQUIRE(*up);
    REQUIRE((*up)->kind == SinkUpload::Kind::kGap);
    drain(**n, sink, kNow, send_removed);
    CHECK_FALSE((*n)->sink_feed_status().full_state_pending);
    // The sink's winner of the overwritten record is the node's either way.
    auto state = (*n)->crdt_state_for_testing("cold");
    REQUIRE(state.ok());
    const std::vector<std::string> ids{"r0005"};
    auto got = sink.fetch("cold", ids);
    REQUIRE(got.ok());
    REQUIRE(got->at(0).found);
    const crdt::Entry* w = state->winner("r0005");
    REQUIRE(w != nullptr);
    CHECK(got->at(0).payload == std::string(w->payload.begin(), w->payload.end()));
  }
  HoleOutcome out;
  out.deleted_entries = sink_entries_of(sink, "cold", "r0003");
  out.overwritten_entries = sink_entries_of(sink, "cold", "r0005");
  out.concurrent_entries = sink_entries_of(sink, "cold", "x-other");
  out.records = sink.status().records;
  // The removal is durable: a sink reopened on its objects (the state rebuilt) holds the same.
  auto again = open_service(objects);
  CHECK(sink_entries_of(*again, "cold", "r0003") == out.deleted_entries);
  CHECK(sink_entries_of(*again, "cold", "r0005") == out.overwritten_entries);
  return out;
}

}  // namespace

// Proves D74: a delete and an overwrite the buffer lost in a hole reach the sink through the
// full-state upload's removed dots (without them, as before D74, the deleted record stays at the
// sink and the overwritten one keeps its old entry beside the new); a record only another
// replica wrote stays; the removal survives a reopen of the sink.
TEST_CASE("a delete and an overwrite lost in a buffer hole reach the sink as removed dots", "[sink][feed]") {
  SHOAL_SINK_TEST_RNG(rng);
  const HoleOutcome without = run_hole(false, rng);
  CHECK(without.deleted_entries == 1);
  CHECK(without.overwritten_entries == 2);
  const HoleOutcome with = run_hole(true, rng);
  CHECK(with.deleted_entries == 0);
  CHECK(with.overwritten_entries == 1);
  CHECK(with.concurrent_entries == 1);
  CHECK(with.records == 40 - 1 + 12 + 1);
}

// Proves D74's bound and validation: removed dots over the limit, out of order or undecodable are
// refused with the limit and the value seen, and the sink is unchanged; a second removal of the
// same dots writes nothing (idempotent).
TEST_CASE("removed dots are bounded and validated, and their removal is idempotent", "[sink][feed]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, "cold", 8, node::Metric::kL2, 10, rng);
  sink::MemoryObjectStore objects;
  sink::SinkLimits limits;
  limits.max_removed_ranges = 2;
  auto opened = open_service(objects, limits);
  SinkService& sink = *opened;
  feed_to_sink(*n, "cold");
  drain(*n, sink);
  const std::uint64_t objects_before = sink.status().objects;
  const crdt::ReplicaId r1 = crdt::replica_for_testing(1);
  const auto encoded = [](std::vector<crdt::DotRange> ranges) {
    crdt::Bytes b;
    crdt::encode_dot_ranges(ranges, b);
    return std::string(b.begin(), b.end());
  };
  auto too_many = sink.check_removed("cold", encoded({{r1, 1, 1}, {r1, 3, 3}, {r1, 5, 5}}));
  REQUIRE_FALSE(too_many.ok());
  CHECK(too_many.status().detail() == Detail::kTooLarge);
  CHECK(too_many.status().message().find("3 removed-dot ranges") != std::string::npos);
  CHECK(too_many.status().message().find("limit 2") != std::string::npos);
  auto unordered = sink.check_removed("cold", encoded({{r1, 5, 6}, {r1, 1, 2}}));
  REQUIRE_FALSE(unordered.ok());
  CHECK(unordered.status().detail() == Detail::kMalformed);
  auto touching = sink.check_removed("cold", encoded({{r1, 1, 2}, {r1, 3, 4}}));
  CHECK(touching.status().detail() == Detail::kMalformed);
  CHECK(sink.check_removed("cold", "\x01\x05").status().detail() == Detail::kMalformed);
  CHECK(sink.check_removed("no/such", encoded({{r1, 1, 1}})).status().code() == Code::kInvalidArgument);
  CHECK(sink.status().objects == objects_before);
  CHECK(sink.status().records == 10);

  // Remove the entries with dots 2..3 of replica 1 (records r0001 and r0002, written in order).
  auto ranges = sink.check_removed("cold", encoded({{r1, 2, 3}}));
  REQUIRE(ranges.ok());
  auto first = sink.remove_dots("cold", *ranges, kNow);
  REQUIRE(first.ok());
  CHECK(first->records == 2);
  CHECK(first->seq != 0);
  CHECK(sink.status().records == 8);
  const std::uint64_t objects_after = sink.status().objects;
  auto second = sink.remove_dots("cold", *ranges, kNow);
  REQUIRE(second.ok());
  CHECK(second->records == 0);
  CHECK(second->seq == 0);
  CHECK(sink.status().objects == objects_after);
  // A collection the sink does not hold: nothing to remove.
  auto none = sink.remove_dots("absent", *ranges, kNow);
  REQUIRE(none.ok());
  CHECK(none->records == 0);
}

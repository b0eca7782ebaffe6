// tests/mesh/sink_uplink_test.cpp: a device's link to its cold-tier sink on real loopback sockets
// (node/mesh/sink_uploader.cpp driving node/core/node_sink_feed.cpp, against sink::SinkServer,
// the code shoal-sink runs): the Noise XX handshake with certificates, the sealed channel,
// Cap'n Proto RPC. Proves: a mesh host configured with a sink uploads its sink collection's
// records and deletes (the sink's live records and fetch follow the node), and nothing of a
// collection without the sink policy; while the sink is down, local writes to the sink
// collection are accepted up to the quota and then refused with kQuotaExceeded, which changes
// nothing; when the sink comes back the backlog drains and writes are accepted again; a device
// that is not a sink at the configured address is never sent anything; the cursor survives a
// restart of the node (no second full-state upload); a revocation a device holds reaches the
// sink, which closes the revoked device's link; a device over its payload budget evicts what the
// sink acknowledged (driven by the uploader's timer), and get refills a stub from the live sink
// and fails typed ("cold, unavailable", with the metadata) while the sink is down.
#include <catch2/catch.hpp>

#include "mesh_fixture.hpp"
#include "sink/memory_object_store.hpp"
#include "sink/sink_server.hpp"
#include "sink/sink_service.hpp"

using namespace shoal;
using namespace shoal::mesh_test;

namespace {

constexpr const char* kCold = "cold";
constexpr const char* kLocal = "local";

node::RecordValue value(float x) {
  node::RecordValue r;
  r.vector = {x, 1.0f, 0.5f, 0.25f};
  r.metadata.fields.emplace_back("x", static_cast<double>(x));
  return r;
}

void create(Host& h, const char* name) {
  node::CollectionSpec spec;
  spec.name = name;
  spec.dimension = 4;
  REQUIRE(h.db().create_collection(spec).ok());
}

// A sink on loopback (SinkServer over a memory object store that outlives restarts of it).
struct TestSink {
  Cluster& cluster;
  security::Identity identity = fresh_identity();
  sink::MemoryObjectStore store;
  std::unique_ptr<sink::SinkService> service;
  std::unique_ptr<sink::SinkServer> server;
  std::uint16_t port = 0;

  explicit TestSink(Cluster& c) : cluster(c) {}
  ~TestSink() { stop(); }

  void start() {
    auto s = sink::SinkService::open(store);
    REQUIRE(s.ok());
    service = std::move(*s);
    sink::SinkCredentials creds;
    creds.identity = &identity;
    creds.certificate = cluster.authority().certify(identity, security::DeviceRole::kSink);
    creds.anchor = cluster.authority().anchor;
    sink::SinkServerOptions o;
    o.listen_port = port;  // 0 the first time; the same port after a restart
    auto srv = sink::SinkServer::start(cluster.loop(), *service, std::move(creds), o, test_logger());
    INFO(srv.status().to_string());
    REQUIRE(srv.ok());
    server = std::move(*srv);
    port = server->port();
  }
  void stop() {
    server.reset();
    service.reset();
  }
  std::uint64_t records() { return service ? service->status().records : 0; }
};

std::function<void(node::MeshOptions&)> with_sink(std::uint16_t port, std::uint64_t quota) {
  return [port, quota](node::MeshOptions& o) {
    node::SinkUploaderOptions s;
    s.host = "127.0.0.1";
    s.port = port;
    s.poll = Duration::millis(20);
    s.backoff_min = Duration::millis(20);
    s.backoff_max = Duration::millis(200);
    s.call_timeout = Duration::seconds(5);
    o.sink = s;
    o.sink_feed.quota_entries = quota;
    node::TierPolicies p;
    node::TierPolicy cold;
    cold.sink = true;
    p.collections.emplace(kCold, cold);
    o.tier_policies = p;
  };
}

node::SinkFeedStatus feed(Host& h) {
  return h.db().read([](const node::Node& n) { return n.sink_feed_status(); });
}

}  // namespace

TEST_CASE("a device uploads its sink collection, refuses writes at the quota while the sink is down, and drains "
          "when it returns",
          "[mesh][sink]") {
  Cluster c;
  TestSink sink(c);
  sink.start();
  Host& a = c.add(security::DeviceRole::kMember, true, with_sink(sink.port, 20));
  create(a, kCold);
  create(a, kLocal);
  std::vector<node::RecordInput> batch;
  for (int i = 0; i < 50; ++i) batch.push_back({"r" + std::to_string(i), value(static_cast<float>(i))});
  REQUIRE(a.db().upsert_batch(kCold, std::move(batch)).ok());
  REQUIRE(a.db().upsert(kLocal, "stays-home", value(1)).ok());
  // One write group may pass the quota (it was checked before the group); the sink takes it.
  REQUIRE(c.run_until([&] { return sink.records() == 50 && feed(a).backlog_entries == 0; }));
  for (int i = 0; i < 5; ++i) REQUIRE(a.db().remove(kCold, "r" + std::to_string(i)).ok());
  REQUIRE(c.run_until([&] { return sink.records() == 45 && feed(a).backlog_entries == 0; }));
  CHECK(a.mesh->sink_stats()->connected);
  CHECK(a.mesh->sink_stats()->uploads >= 1);
  auto fetched = sink.service->fetch(kCold, std::vector<std::string>{"r0", "r5"});
  REQUIRE(fetched.ok());
  CHECK_FALSE((*fetched)[0].found);  // deleted after upload: gone at the sink too
  CHECK((*fetched)[1].found);
  CHECK(sink.service->fetch(kLocal, std::vector<std::string>{"stays-home"}).status().detail() ==
        Detail::kNoSuchCollection);

  // The sink goes away. Twenty writes wait for it (the quota); the next is refused.
  sink.stop();
  REQUIRE(c.run_until([&] { return !a.mesh->sink_stats()->connected; }));
  int accepted = 0;
  Status refused;
  for (int i = 0; i < 100 && refused.ok(); ++i) {
    refused = a.db().upsert(kCold, "w" + std::to_string(i), value(static_cast<float>(i)));
    if (refused.ok()) ++accepted;
  }
  INFO(refused.to_string());
  CHECK(accepted == 20);
  CHECK(refused.detail() == Detail::kQuotaExceeded);
  CHECK(refused.message().find("quota 20") != std::string::npos);
  CHECK_FALSE(a.db().get(kCold, "w20").ok());  // the refused write changed nothing
  CHECK(a.db().upsert(kLocal, "still-ok", value(2)).ok());  // other collections are not held back

  // The sink returns (same port, same object store): the backlog drains; writes resume.
  sink.start();
  REQUIRE(c.run_until([&] { return sink.records() == 65 && feed(a).backlog_entries == 0; }));
  CHECK(a.db().upsert(kCold, "w20", value(20)).ok());
  REQUIRE(c.run_until([&] { return sink.records() == 66; }));

  // A restart of the node resumes from its cursor: no full-state upload again.
  const std::uint64_t through = feed(a).uploaded_through;
  c.stop(a);
  c.start(a);
  CHECK(feed(a).uploaded_through == through);
  CHECK_FALSE(feed(a).full_state_pending);
  REQUIRE(a.db().upsert(kCold, "after-restart", value(3)).ok());
  REQUIRE(c.run_until([&] { return sink.records() == 67 && feed(a).backlog_entries == 0; }));
}

// Proves the mesh's revocations reach the sink through its members: a device that learns a
// revocation pushes its set to the sink, which closes the revoked device's link to it and
// refuses it from then on.
TEST_CASE("a revocation a device holds reaches its sink, which closes the revoked device's link", "[mesh][sink]") {
  Cluster c;
  TestSink sink(c);
  sink.start();
  Host& a = c.add(security::DeviceRole::kMember, true, with_sink(sink.port, 100));
  Host& b = c.add(security::DeviceRole::kMember, true, with_sink(sink.port, 100));
  REQUIRE(c.run_until([&] { return a.mesh->sink_stats()->connected && b.mesh->sink_stats()->connected; }));
  CHECK(sink.server->revocations().size() == 0);
  REQUIRE(a.db().write([&](node::Node& n) { return n.add_revocations(c.authority().revoke(b.identity)); }).ok());
  REQUIRE(c.run_until([&] { return sink.server->stats().revoked_closed == 1; }));
  CHECK(sink.server->revocations().contains(b.identity.public_key()));
  REQUIRE(c.run_until([&] { return a.mesh->sink_stats()->sink_revocations == 1; }));
  REQUIRE(c.run_until([&] { return !b.mesh->sink_stats()->connected; }));
  // b keeps redialing and is refused at each handshake; a stays connected.
  REQUIRE(c.run_until([&] { return sink.server->stats().links_opened >= 2 && b.mesh->sink_stats()->dial_failures >= 2; }));
  CHECK_FALSE(b.mesh->sink_stats()->connected);
  CHECK(a.mesh->sink_stats()->connected);
}

TEST_CASE("a device at the sink's address that is not a sink is sent nothing", "[mesh][sink]") {
  Cluster c;
  Host& other = c.add();  // a member, listening
  Host& a = c.add(security::DeviceRole::kMember, true, with_sink(other.port(), 20));
  create(a, kCold);
  REQUIRE(a.db().upsert(kCold, "x", value(1)).ok());
  REQUIRE(c.run_until([&] { return a.mesh->sink_stats()->dial_failures >= 2; }));
  const auto st = *a.mesh->sink_stats();
  CHECK_FALSE(st.connected);
  CHECK(st.uploads == 0);
  CHECK(st.last_error.find("not a sink") != std::string::npos);
  CHECK(feed(a).backlog_entries > 0);
}

TEST_CASE("a peer's acknowledgements do not trim what the sink has not taken: deletes made while it is down reach it",
          "[mesh][sink]") {
  Cluster c;
  TestSink sink(c);
  sink.start();
  Host& b = c.add();
  Host& a = c.add(security::DeviceRole::kMember, true, with_sink(sink.port, 100));
  c.dial(a, b);
  REQUIRE(c.run_until([&] { return c.up_peers(a) == 1 && c.up_peers(b) == 1; }));
  create(a, kCold);
  for (int i = 0; i < 10; ++i) REQUIRE(a.db().upsert(kCold, "r" + std::to_string(i), value(static_cast<float>(i))).ok());
  REQUIRE(c.run_until([&] { return sink.records() == 10 && feed(a).backlog_entries == 0; }));

  sink.stop();
  REQUIRE(c.run_until([&] { return !a.mesh->sink_stats()->connected; }));
  for (int i = 0; i < 5; ++i) REQUIRE(a.db().remove(kCold, "r" + std::to_string(i)).ok());
  for (int i = 0; i < 60; ++i) REQUIRE(a.db().upsert(kCold, "w" + std::to_string(i), value(static_cast<float>(i))).ok());
  // b has every entry (and acknowledged them); a keeps them all for the sink.
  REQUIRE(c.run_until([&] { return b.db().get(kCold, "w59").ok(); }));
  // Peers' positions are persisted at most once a second, and only persisted positions trim: one
  // more write after that lets b's acknowledgement trim everything it has, were it not for the
  // sink's cursor.
  c.run_for(Duration::millis(1200));
  REQUIRE(a.db().upsert(kCold, "w60", value(60)).ok());
  REQUIRE(c.run_until([&] { return b.db().get(kCold, "w60").ok(); }));
  c.run_for(Duration::millis(300));
  CHECK(a.db().stats().delta_buffer_entries >= 66);

  sink.start();
  REQUIRE(c.run_until([&] { return feed(a).backlog_entries == 0 && !feed(a).full_state_pending; }));
  CHECK(sink.records() == 66);
  auto fetched = sink.service->fetch(kCold, std::vector<std::string>{"r0", "r4", "r5"});
  REQUIRE(fetched.ok());
  CHECK_FALSE((*fetched)[0].found);
  CHECK_FALSE((*fetched)[1].found);
  CHECK((*fetched)[2].found);
}

TEST_CASE("a search that includes the cold tier merges the sink's hits over the link; without a sink it says why",
          "[mesh][sink][cold]") {
  Cluster c;
  TestSink sink(c);
  sink.start();
  Host& a = c.add(security::DeviceRole::kMember, true, with_sink(sink.port, 100));
  Host& b = c.add(security::DeviceRole::kMember, true, with_sink(sink.port, 100));
  Host& lone = c.add();  // no sink configured
  create(a, kCold);
  create(b, kCold);
  create(lone, kCold);
  for (int i = 0; i < 20; ++i) REQUIRE(a.db().upsert(kCold, "a" + std::to_string(i), value(static_cast<float>(i))).ok());
  REQUIRE(b.db().upsert(kCold, "b-local", value(100)).ok());
  REQUIRE(c.run_until([&] { return sink.records() == 21 && feed(a).backlog_entries == 0; }));

  // b never peered with a: a's records reach b's answer only from the sink.
  node::SearchOptions o;
  o.k = 3;
  auto got = c.loop().run_until(b.mesh->search_with_cold(kCold, {0.0f, 1.0f, 0.5f, 0.25f}, o));
  INFO(got.status().to_string());
  REQUIRE(got.ok());
  CHECK(got->cold_error.ok());
  REQUIRE(got->sink);
  CHECK(got->sink->records == 21);
  REQUIRE(got->hits.size() == 3);
  CHECK(got->hits[0].id == "a0");  // value(0) is the query itself
  CHECK(got->hits[1].id == "a1");
  CHECK(got->hits[2].id == "a2");
  for (const auto& h : got->hits) CHECK(h.cold);
  // b's own record answers locally, not as a cold copy.
  auto near_b = c.loop().run_until(b.mesh->search_with_cold(kCold, {100.0f, 1.0f, 0.5f, 0.25f}, o));
  REQUIRE(near_b.ok());
  CHECK(near_b->hits[0].id == "b-local");
  CHECK_FALSE(near_b->hits[0].cold);

  auto alone = c.loop().run_until(lone.mesh->search_with_cold(kCold, {0.0f, 1.0f, 0.5f, 0.25f}, o));
  REQUIRE(alone.ok());
  CHECK(alone->hits.empty());
  CHECK(alone->cold_error.code() == Code::kUnavailable);
  CHECK(alone->cold_error.message().find("no sink is configured") != std::string::npos);
  // A bad query fails as a local search does.
  auto bad = c.loop().run_until(b.mesh->search_with_cold(kCold, {1.0f}, o));
  CHECK(bad.status().detail() == Detail::kDimensionMismatch);
}

TEST_CASE("a device over its payload budget evicts what the sink took; get refills from the live sink and is cold, "
          "unavailable while it is down",
          "[mesh][sink][evict]") {
  Cluster c;
  TestSink sink(c);
  sink.start();
  auto base = with_sink(sink.port, 100);
  Host& a = c.add(security::DeviceRole::kMember, true, [&](node::MeshOptions& o) {
    base(o);
    o.sink->payload_budget_bytes = 5 * 4 * sizeof(float);  // room for 5 records of dimension 4
    o.tier_policies->collections[kCold].hot_window = Duration::zero();
  });
  create(a, kCold);
  for (int i = 0; i < 20; ++i) REQUIRE(a.db().upsert(kCold, "r" + std::to_string(i), value(static_cast<float>(i))).ok());
  auto stubs = [&] { return a.db().read([](const node::Node& n) { return n.eviction_status().evicted_records; }); };
  REQUIRE(c.run_until([&] { return sink.records() == 20 && stubs() == 15; }));
  CHECK(a.db().read([](const node::Node& n) { return n.eviction_status().held_bytes; }) == 5 * 4 * sizeof(float));

  std::string evicted_id;
  for (int i = 0; i < 20 && evicted_id.empty(); ++i) {
    auto g = a.db().get(kCold, "r" + std::to_string(i));
    REQUIRE(g.ok());
    if (g->siblings[0].evicted) evicted_id = "r" + std::to_string(i);
  }
  REQUIRE_FALSE(evicted_id.empty());
  const float x = static_cast<float>(std::stoi(evicted_id.substr(1)));
  auto refilled = c.loop().run_until(a.mesh->get_with_cold(kCold, evicted_id));
  INFO(refilled.status().to_string());
  REQUIRE(refilled.ok());
  CHECK(refilled->cold_error.ok());
  CHECK_FALSE(refilled->record.siblings[0].evicted);
  CHECK(refilled->record.siblings[0].value == value(x));
  // The store keeps the stub (get does not re-store).
  CHECK(a.db().get(kCold, evicted_id)->siblings[0].evicted);

  sink.stop();
  REQUIRE(c.run_until([&] { return !a.mesh->sink_stats()->connected; }));
  auto cold = c.loop().run_until(a.mesh->get_with_cold(kCold, evicted_id));
  REQUIRE(cold.ok());
  CHECK(cold->cold_error.detail() == Detail::kColdUnavailable);
  CHECK(cold->record.siblings[0].evicted);
  CHECK(cold->record.siblings[0].value.vector.empty());
  CHECK(cold->record.siblings[0].value.metadata == value(x).metadata);
}

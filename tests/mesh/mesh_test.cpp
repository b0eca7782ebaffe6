// tests/mesh/mesh_test.cpp: hosts sync over real loopback TCP, through the Noise handshake, the
// sealed channel and Cap'n Proto RPC (node/mesh/mesh_host.hpp), each with its own LMDB data
// directory. Every check is on data (digests, records, search results) or on the links' state;
// no check depends on how fast anything happens (the loops only give up after a long bound).
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <capnp/message.h>

#include "mesh_fixture.hpp"
#include "transport/link.hpp"
#include "transport/rpc.capnp.h"

using namespace shoal;
using namespace shoal::mesh_test;
using node::RecordValue;

namespace {

constexpr const char* kCollection = "photos";

void create(Host& h, std::uint32_t dim = 4) {
  node::CollectionSpec spec;
  spec.name = kCollection;
  spec.dimension = dim;
  REQUIRE(h.db().create_collection(spec).ok());
}

RecordValue value(float x) {
  RecordValue r;
  r.vector = {x, 1.0f, 0.5f, 0.25f};
  r.metadata.fields.emplace_back("x", static_cast<double>(x));
  return r;
}

std::uint64_t root(Host& h) {
  auto r = h.db().digest_root(kCollection);
  return r.ok() ? *r : 0;
}

std::uint64_t live(Host& h) {
  auto info = h.db().collection_info(kCollection);
  return info.ok() ? info->live_records : 0;
}

bool same_data(Cluster& c) {
  for (std::size_t i = 1; i < c.size(); ++i) {
    if (!c[i].db().collection_info(kCollection).ok()) return false;
    if (root(c[i]) != root(c[0])) return false;
  }
  return c[0].db().collection_info(kCollection).ok();
}

bool has(Host& h, const std::string& id) { return h.db().get(kCollection, id).ok(); }

// What a hand-driven test peer serves: it answers the host's introduction, hellos and pings, so the
// host keeps the link up while the test makes its own calls (an error capability would make the
// host close the link when its introduction fails, racing the test's call).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class QuietReader final : public transport::rpc::ReplicaReader::Server {
 protected:
  kj::Promise<void> hello(HelloContext) override { return kj::READY_NOW; }
  kj::Promise<void> ping(PingContext) override { return kj::READY_NOW; }
};
class QuietGate final : public transport::rpc::Gate::Server {
 public:
  explicit QuietGate(std::string replica) : replica_(std::move(replica)) {}

 protected:
  kj::Promise<void> introduce(IntroduceContext ctx) override {
    auto r = ctx.getResults();
    r.getIntro().setReplica(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(replica_.data()), replica_.size()));
    r.getIntro().setMinProtocol(1);
    r.getIntro().setMaxProtocol(1);
    r.setProtocol(1);
    r.setReplica(kj::heap<QuietReader>());
    return kj::READY_NOW;
  }

 private:
  std::string replica_;
};
#pragma GCC diagnostic pop

}  // namespace

TEST_CASE("two hosts on loopback: upserts, batches and deletes on either side reach the other; digests end equal",
          "[mesh]") {
  Cluster c;
  Host& a = c.add();
  Host& b = c.add();
  c.dial(b, a);
  REQUIRE(c.run_until([&] { return c.up_peers(a) == 1 && c.up_peers(b) == 1; }));

  create(a);
  for (int i = 0; i < 50; ++i) REQUIRE(a.db().upsert(kCollection, "a" + std::to_string(i), value(float(i))).ok());
  REQUIRE(c.run_until([&] { return live(b) == 50; }));

  std::vector<node::RecordInput> batch;
  for (int i = 0; i < 30; ++i) batch.push_back({"b" + std::to_string(i), value(100.0f + float(i))});
  REQUIRE(b.db().upsert_batch(kCollection, std::move(batch)).ok());
  REQUIRE(a.db().remove(kCollection, "a7").ok());
  REQUIRE(b.db().remove(kCollection, "b3").ok());

  REQUIRE(c.run_until([&] { return live(a) == 78 && live(b) == 78 && same_data(c); }));
  CHECK_FALSE(has(a, "b3"));
  CHECK_FALSE(has(b, "a7"));
  CHECK(has(a, "b29"));

  // Search on each host finds the other's writes.
  node::SearchOptions so;
  so.k = 1;
  const std::vector<float> q_b = {110.0f, 1.0f, 0.5f, 0.25f};
  auto hits = a.db().search(kCollection, q_b, so);
  REQUIRE(hits.ok());
  REQUIRE(hits->size() == 1);
  CHECK(hits->front().id == "b10");
  const std::vector<float> q_a = {20.0f, 1.0f, 0.5f, 0.25f};
  hits = b.db().search(kCollection, q_a, so);
  REQUIRE(hits.ok());
  REQUIRE(hits->size() == 1);
  CHECK(hits->front().id == "a20");

  // The bytes went through the sealed channel, both ways.
  for (auto& p : a.mesh->peers()) {
    CHECK(p.bytes.messages_in > 0);
    CHECK(p.bytes.messages_out > 0);
  }
}

TEST_CASE("three hosts: writes on any host reach every other; a restarted host catches up and loses nothing",
          "[mesh]") {
  Cluster c;
  Host& a = c.add();
  Host& b = c.add();
  Host& d = c.add();
  c.dial(b, a);
  c.dial(d, a);
  c.dial(d, b);
  REQUIRE(c.run_until([&] { return c.up_peers(a) == 2 && c.up_peers(b) == 2 && c.up_peers(d) == 2; }));
  create(a);
  int n = 0;
  for (Host* h : {&a, &b, &d}) {
    REQUIRE(c.run_until([&] { return h->db().collection_info(kCollection).ok(); }));
    for (int i = 0; i < 20; ++i, ++n) REQUIRE(h->db().upsert(kCollection, "r" + std::to_string(n), value(float(n + 1))).ok());
  }
  REQUIRE(c.run_until([&] { return live(a) == 60 && live(b) == 60 && live(d) == 60 && same_data(c); }));

  // d goes away (its store closed cleanly), the others write and delete, d comes back.
  c.stop(d);
  REQUIRE(c.run_until([&] { return c.up_peers(a) == 1 && c.up_peers(b) == 1; }));
  for (int i = 0; i < 25; ++i) REQUIRE(a.db().upsert(kCollection, "late" + std::to_string(i), value(float(i))).ok());
  REQUIRE(b.db().remove(kCollection, "r0").ok());
  c.start(d, {{"127.0.0.1", a.port(), node::Tier::kHot}, {"127.0.0.1", b.port(), node::Tier::kHot}});
  REQUIRE(c.run_until([&] { return live(d) == 84 && same_data(c); }));
  CHECK_FALSE(has(d, "r0"));
  CHECK(has(d, "late24"));
}

TEST_CASE("simultaneous dials leave one link per pair, and it carries the sync", "[mesh]") {
  Cluster c;
  Host& a = c.add();
  Host& b = c.add();
  c.dial(a, b);
  c.dial(b, a);
  REQUIRE(c.run_until([&] { return c.up_peers(a) == 1 && c.up_peers(b) == 1; }));
  c.run_for(Duration::millis(500));  // any duplicate left would show now
  CHECK(a.mesh->peers().size() == 1);
  CHECK(b.mesh->peers().size() == 1);
  CHECK(c.up_peers(a) == 1);
  create(b);
  REQUIRE(b.db().upsert(kCollection, "x", value(1.0f)).ok());
  REQUIRE(c.run_until([&] { return has(a, "x"); }));
}

TEST_CASE("a peer with no common protocol version is refused, and both sides say why", "[mesh]") {
  Cluster c;
  Host& a = c.add();
  Host& b = c.add(security::DeviceRole::kMember, true, [](node::MeshOptions& o) {
    o.min_protocol = 2;
    o.max_protocol = 3;
  });
  c.dial(b, a);
  REQUIRE(c.run_until([&] { return a.mesh->stats().version_refusals > 0 && b.mesh->stats().version_refusals > 0; }));
  CHECK(c.up_peers(a) == 0);
  CHECK(c.up_peers(b) == 0);
}

TEST_CASE("revoking a device closes its live link at once, and its next handshake is refused", "[mesh]") {
  Cluster c;
  Host& a = c.add();
  Host& b = c.add();
  c.dial(b, a);
  REQUIRE(c.run_until([&] { return c.up_peers(a) == 1; }));
  REQUIRE(a.db().write([&](node::Node& n) { return n.add_revocations(c.authority().revoke(b.identity)); }).ok());
  REQUIRE(c.run_until([&] { return a.mesh->stats().revoked_closed == 1; }));
  CHECK(c.up_peers(a) == 0);
  // b keeps redialing; a's handshake refuses every attempt (the revoked certificate).
  REQUIRE(c.run_until([&] { return a.mesh->stats().listener.handshakes_failed >= 2; }));
  CHECK(c.up_peers(a) == 0);
  CHECK(c.up_peers(b) == 0);
}

TEST_CASE("a reader's capability has no write method: pushDeltas from it is unimplemented; it still syncs down",
          "[mesh]") {
  Cluster c;
  Host& a = c.add();
  Host& r = c.add(security::DeviceRole::kReader);
  c.dial(r, a);
  REQUIRE(c.run_until([&] { return c.up_peers(a) == 1 && c.up_peers(r) == 1; }));
  create(a);
  REQUIRE(a.db().upsert(kCollection, "down", value(1.0f)).ok());
  REQUIRE(c.run_until([&] { return has(r, "down"); }));

  // A write on the reader never reaches a (it has no method to push with).
  REQUIRE(r.db().upsert(kCollection, "up", value(2.0f)).ok());
  c.run_for(Duration::seconds(1));
  CHECK_FALSE(has(a, "up"));

  // Directly: a reader-certified link asks for Replica.pushDeltas on what a hands it.
  security::Identity rid = fresh_identity();
  transport::LinkSecurity sec;
  sec.identity = &rid;
  sec.certificate = c.authority().certify(rid, security::DeviceRole::kReader);
  sec.anchor = &c.authority().anchor;
  security::RevocationSet none;
  sec.revocations = [&]() -> const security::RevocationSet& { return none; };
  sec.trusted_now = [] { return now_wall(); };
  auto link = c.loop().run_until(transport::dial(c.loop(), "127.0.0.1", a.port(), sec, {}));
  const std::string fake = crdt::replica_for_testing(77).encode();
  link->serve(kj::heap<QuietGate>(fake));
  auto gate = link->peer_bootstrap().castAs<transport::rpc::Gate>();
  auto req = gate.introduceRequest();
  req.getIntro().setReplica(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(fake.data()), fake.size()));
  req.getIntro().setMinProtocol(1);
  req.getIntro().setMaxProtocol(1);
  auto replica = req.send().getReplica().castAs<transport::rpc::Replica>();
  auto push = replica.pushDeltasRequest();
  push.getBatch().setFirstSeq(0);
  push.getBatch().setLastSeq(1);
  bool refused = false;
  kj::Exception::Type type = kj::Exception::Type::FAILED;
  try {
    c.loop().run_until(push.send().ignoreResult());
  } catch (const kj::Exception& e) {
    refused = true;
    type = e.getType();
  }
  CHECK(refused);
  CHECK(type == kj::Exception::Type::UNIMPLEMENTED);
  CHECK_FALSE(has(a, "up"));
}

TEST_CASE("a member's pushDeltas for a collection its certificate cannot write is refused", "[mesh]") {
  Cluster c;
  Host& a = c.add();
  create(a);
  security::Identity rid = fresh_identity();
  transport::LinkSecurity sec;
  sec.identity = &rid;
  sec.certificate = c.authority().certify(rid, security::DeviceRole::kMember, {{"other", security::kReadWrite}});
  sec.anchor = &c.authority().anchor;
  security::RevocationSet none;
  sec.revocations = [&]() -> const security::RevocationSet& { return none; };
  sec.trusted_now = [] { return now_wall(); };
  auto link = c.loop().run_until(transport::dial(c.loop(), "127.0.0.1", a.port(), sec, {}));
  const std::string fake = crdt::replica_for_testing(78).encode();
  link->serve(kj::heap<QuietGate>(fake));
  auto gate = link->peer_bootstrap().castAs<transport::rpc::Gate>();
  auto req = gate.introduceRequest();
  req.getIntro().setReplica(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(fake.data()), fake.size()));
  req.getIntro().setMinProtocol(1);
  req.getIntro().setMaxProtocol(1);
  auto replica = req.send().getReplica().castAs<transport::rpc::Replica>();
  auto push = replica.pushDeltasRequest();
  push.getBatch().setFirstSeq(0);
  push.getBatch().setLastSeq(1);
  auto items = push.getBatch().initItems(1);
  const std::string name = kCollection;
  items[0].setCollection(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(name.data()), name.size()));
  Status st;
  try {
    c.loop().run_until(push.send().ignoreResult());
  } catch (const kj::Exception& e) {
    st = transport::status_of(e);
  }
  CHECK(st.detail() == Detail::kWrongRole);
  CHECK(st.message().find("photos") != std::string::npos);
  CHECK(a.mesh->stats().calls_refused >= 1);
}

TEST_CASE("Replica.search answers a peer's k-NN query on a collection its certificate may read, and refuses others",
          "[mesh]") {
  Cluster c;
  Host& a = c.add();
  create(a);
  for (int i = 0; i < 30; ++i) REQUIRE(a.db().upsert(kCollection, "s" + std::to_string(i), value(float(i))).ok());
  auto ask = [&](std::vector<security::Grant> grants) -> Result<std::vector<std::string>> {
    security::Identity rid = fresh_identity();
    transport::LinkSecurity sec;
    sec.identity = &rid;
    sec.certificate = c.authority().certify(rid, security::DeviceRole::kReader, std::move(grants));
    sec.anchor = &c.authority().anchor;
    security::RevocationSet none;
    sec.revocations = [&]() -> const security::RevocationSet& { return none; };
    sec.trusted_now = [] { return now_wall(); };
    auto link = c.loop().run_until(transport::dial(c.loop(), "127.0.0.1", a.port(), sec, {}));
    const std::string fake = crdt::replica_for_testing(90).encode();
    link->serve(kj::heap<QuietGate>(fake));
    auto req = link->peer_bootstrap().castAs<transport::rpc::Gate>().introduceRequest();
    req.getIntro().setReplica(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(fake.data()), fake.size()));
    req.getIntro().setMinProtocol(1);
    req.getIntro().setMaxProtocol(1);
    auto s = req.send().getReplica().searchRequest();
    const std::string name = kCollection;
    s.setCollection(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(name.data()), name.size()));
    auto q = s.initQuery(4);
    q.set(0, 12.2f);
    q.set(1, 1.0f);
    q.set(2, 0.5f);
    q.set(3, 0.25f);
    s.setK(3);
    try {
      auto r = c.loop().run_until(s.send());
      std::vector<std::string> ids;
      for (auto h : r.getHits()) ids.emplace_back(reinterpret_cast<const char*>(h.getId().begin()), h.getId().size());
      return ids;
    } catch (const kj::Exception& e) {
      return transport::status_of(e);
    }
  };
  auto ok = ask({{"photos", security::kRead}});
  REQUIRE(ok.ok());
  REQUIRE(ok->size() == 3);
  CHECK(ok->front() == "s12");
  auto refused = ask({{"other", security::kRead}});
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().detail() == Detail::kWrongRole);
}

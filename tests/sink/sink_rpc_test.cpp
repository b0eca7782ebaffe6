// tests/sink/sink_rpc_test.cpp: the Sink capability over real loopback links (TCP, the Noise XX
// handshake with certificates, the sealed channel, Cap'n Proto RPC), served by a SinkServer in
// this process and by the shoal-sink program. Proves: a member's uploads are acknowledged with
// the key the store holds; cold search over RPC equals exact search over the node's records; a
// delete pushed after upload leaves cold search, and compaction removes its payload from the
// store; fetch and status answer; bootstrap over RPC restores a collection into a fresh node; a
// reader, another sink and a member without a grant are refused (kWrongRole); malformed calls
// get typed errors and change nothing; a member's revocation set reaches the sink (the revoked
// device's link closes, forged entries are dropped, the set is saved); shoal-sink started from a TOML file serves a member, keeps
// its objects across a restart, and exits 0 on SIGTERM. Loopback only.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <capnp/message.h>
#include <signal.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>

#include "security/certificate.hpp"
#include "security/identity.hpp"
#include "security/key_file.hpp"
#include "sink/memory_object_store.hpp"
#include "sink/sink_config.hpp"
#include "sink/sink_server.hpp"
#include "../mesh/test_authority.hpp"
#include "sink_fixture.hpp"
#include "node/core/node_state.hpp"
#include "transport/codec_wire.hpp"
#include "transport/link.hpp"
#include "transport/rpc.capnp.h"
#include "transport/sink.capnp.h"

using namespace shoal;
using namespace shoal::sink_test;
using shoal::mesh_test::Authority;
using shoal::mesh_test::fresh_identity;
namespace sr = shoal::transport::sinkrpc;

namespace {

constexpr const char* kColl = "photos";

capnp::Data::Reader bytes_of(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}
std::string str_of(capnp::Data::Reader d) { return std::string(reinterpret_cast<const char*>(d.begin()), d.size()); }

// Runs `promise` and returns the Status it failed with (OK when it succeeded).
template <typename P>
Status status_of_call(transport::KjLoop& loop, P&& promise) {
  try {
    loop.run_until(kj::mv(promise).ignoreResult());
    return ok_status();
  } catch (const kj::Exception& e) {
    return transport::status_of(e);
  }
}

class Rig {
 public:
  Rig() : loop_(io_) {}
  ~Rig() {
    server_.reset();
    clients_.clear();
  }

  transport::KjLoop& loop() { return loop_; }
  Authority& authority() { return authority_; }
  sink::MemoryObjectStore& store() { return store_; }
  sink::SinkService& service() { return *service_; }
  sink::SinkServer& server() { return *server_; }

  void start(sink::SinkLimits limits = {}, const security::Identity* revoked = nullptr,
             sink::SinkServerOptions options = {}) {
    auto s = sink::SinkService::open(store_, limits);
    REQUIRE(s.ok());
    service_ = std::move(*s);
    sink::SinkCredentials creds;
    creds.identity = &sink_identity_;
    creds.certificate = authority_.certify(sink_identity_, security::DeviceRole::kSink);
    creds.anchor = authority_.anchor;
    if (revoked != nullptr) {
      creds.revocations.insert_unverified(security::make_revocation(
          authority_.anchor.mesh_id, revoked->public_key(), now_wall().ns() / 1'000'000'000, authority_.key));
    }
    auto srv = sink::SinkServer::start(loop_, *service_, std::move(creds), std::move(options), nullptr);
    INFO(srv.status().to_string());
    REQUIRE(srv.ok());
    server_ = std::move(*srv);
  }

  // Dials the sink as a device with `role` and `grants` and introduces itself; returns the
  // introduction's promise for the Sink capability.
  capnp::RemotePromise<transport::rpc::Gate::IntroduceResults> introduce(
      security::DeviceRole role, std::vector<security::Grant> grants = {{"*", security::kReadWrite}},
      const std::array<std::uint8_t, security::kSeedBytes>* seed = nullptr) {
    auto c = std::make_unique<Conn>();
    if (seed != nullptr) {
      auto id = security::Identity::from_seed(*seed);
      REQUIRE(id.ok());
      c->identity = std::move(*id);
    }
    c->sec.identity = &c->identity;
    c->sec.certificate = authority_.certify(c->identity, role, std::move(grants));
    c->sec.anchor = &authority_.anchor;
    c->sec.revocations = [p = c.get()]() -> const security::RevocationSet& { return p->none; };
    c->sec.trusted_now = [] { return now_wall(); };
    c->link = loop_.run_until(transport::dial(loop_, "127.0.0.1", server_->port(), c->sec, {}));
    auto gate = c->link->peer_bootstrap().castAs<transport::rpc::Gate>();
    auto req = gate.introduceRequest();
    const std::string me = crdt::replica_for_testing(clients_.size() + 100).encode();
    req.getIntro().setReplica(bytes_of(me));
    req.getIntro().setMinProtocol(1);
    req.getIntro().setMaxProtocol(1);
    clients_.push_back(std::move(c));
    return req.send();
  }

  sr::Sink::Client member(std::vector<security::Grant> grants = {{"*", security::kReadWrite}}) {
    auto intro = introduce(security::DeviceRole::kMember, std::move(grants));
    auto result = loop_.run_until(kj::mv(intro));
    return result.getSink();
  }

 private:
  struct Conn {
    security::Identity identity = fresh_identity();
    security::RevocationSet none;
    transport::LinkSecurity sec;
    kj::Own<transport::Link> link;
  };

  boost::asio::io_context io_;
  transport::KjLoop loop_;
  Authority authority_;
  security::Identity sink_identity_ = fresh_identity();
  sink::MemoryObjectStore store_;
  std::unique_ptr<sink::SinkService> service_;
  std::unique_ptr<sink::SinkServer> server_;
  std::vector<std::unique_ptr<Conn>> clients_;
};

std::string upload(transport::KjLoop& loop, sr::Sink::Client& sink, const std::string& segment) {
  auto req = sink.uploadSegmentRequest();
  req.setSegment(bytes_of(segment));
  auto resp = loop.run_until(req.send());
  return resp.getAck().getKey();
}

std::vector<std::pair<std::string, float>> cold_search(transport::KjLoop& loop, sr::Sink::Client& sink,
                                                       const std::vector<float>& q, std::uint32_t k,
                                                       node::Metric metric) {
  auto req = sink.coldSearchRequest();
  req.setCollection(kColl);
  auto ql = req.initQuery(static_cast<unsigned>(q.size()));
  for (unsigned i = 0; i < q.size(); ++i) ql.set(i, q[i]);
  req.setK(k);
  req.setMetric(node::metric_to_wire_byte(metric));
  auto resp = loop.run_until(req.send());
  std::vector<std::pair<std::string, float>> out;
  for (auto h : resp.getHits()) out.emplace_back(str_of(h.getId()), h.getDistance());
  return out;
}

}  // namespace

TEST_CASE("a member uploads segments over a link and gets durable acks; cold search over RPC equals exact search",
          "[sink][rpc]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 16, node::Metric::kCosine, 400, rng);
  Rig rig;
  rig.start();
  auto sink = rig.member();
  for (const auto& seg : segments_of(*n, kColl, 100)) {
    const std::string key = upload(rig.loop(), sink, seg);
    auto stored = rig.store().get(key);  // the ack names an object the store already holds
    REQUIRE(stored.ok());
    CHECK(*stored == seg);
  }
  for (int q = 0; q < 20; ++q) {
    std::vector<float> query(16);
    for (auto& x : query) x = rng.uniform_float(-1, 1);
    auto cold = cold_search(rig.loop(), sink, query, 10, node::Metric::kCosine);
    const Exact exact = exact_search(*n, kColl, query, 10, node::Metric::kCosine);
    REQUIRE(cold.size() == exact.ids.size());
    for (std::size_t i = 0; i < cold.size(); ++i) {
      CHECK(cold[i].first == exact.ids[i]);
      CHECK(cold[i].second == exact.distances[i]);
    }
  }
  auto st = rig.loop().run_until(sink.statusRequest().send());
  CHECK(st.getStatus().getRecords() == 400);
  CHECK(st.getStatus().getUploads() == 4);
  CHECK(st.getStatus().getBytesStored() > 0);
  CHECK(st.getStatus().getLastAckSeq() == 4);
  CHECK(std::string(st.getStatus().getStoreKind().cStr()) == "memory");
}

TEST_CASE("a delete pushed after upload leaves cold search; compaction removes its payload; fetch answers",
          "[sink][rpc]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 50, rng);
  Rig rig;
  rig.start();
  auto sink = rig.member();
  for (const auto& seg : segments_of(*n, kColl, 50)) upload(rig.loop(), sink, seg);
  auto state = n->crdt_state_for_testing(kColl);
  REQUIRE(state.ok());
  const crdt::Entry* w = state->winner("r0005");
  REQUIRE(w != nullptr);
  const std::string payload(w->payload.begin(), w->payload.end());
  auto value = node::decode_payload(payload);
  REQUIRE(value.ok());

  auto push = sink.pushDeltaRequest();
  push.setCollection(kColl);
  const std::string delta = delete_delta(*n, kColl, "r0005");
  push.setDelta(bytes_of(delta));
  auto ack = rig.loop().run_until(push.send());
  CHECK(ack.getAck().getSeq() == 2);
  auto hits = cold_search(rig.loop(), sink, value->vector, 50, node::Metric::kL2);
  CHECK(hits.size() == 49);
  for (const auto& h : hits) CHECK(h.first != "r0005");

  auto fetch = sink.fetchRequest();
  fetch.setCollection(kColl);
  auto ids = fetch.initIds(2);
  ids.set(0, bytes_of("r0005"));
  ids.set(1, bytes_of("r0006"));
  auto got = rig.loop().run_until(fetch.send());
  REQUIRE(got.getRecords().size() == 2);
  CHECK_FALSE(got.getRecords()[0].getFound());
  REQUIRE(got.getRecords()[1].getFound());
  auto v6 = node::decode_payload(str_of(got.getRecords()[1].getPayload()));
  REQUIRE(v6.ok());
  auto local = n->get(kColl, "r0006");
  REQUIRE(local.ok());
  CHECK(*v6 == local->siblings.at(0).value);

  auto has_payload = [&] {
    auto keys = rig.store().list("");
    REQUIRE(keys.ok());
    for (const auto& k : *keys) {
      if (rig.store().get(k)->find(payload) != std::string::npos) return true;
    }
    return false;
  };
  CHECK(has_payload());
  REQUIRE(rig.service().compact().ok());
  CHECK_FALSE(has_payload());
  CHECK(cold_search(rig.loop(), sink, value->vector, 50, node::Metric::kL2).size() == 49);
}

TEST_CASE("bootstrap over RPC restores a collection into a fresh node", "[sink][rpc]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 8, node::Metric::kL2, 90, rng);
  Rig rig;
  sink::SinkLimits limits;
  limits.max_bootstrap_records = 25;
  rig.start(limits);
  auto sink = rig.member();
  for (const auto& seg : segments_of(*n, kColl, 40)) upload(rig.loop(), sink, seg);
  std::vector<sink::BootstrapPage> pages;
  std::string after;
  for (int guard = 0; guard < 20; ++guard) {
    auto req = sink.bootstrapRequest();
    req.setCollection(kColl);
    req.setAfter(bytes_of(after));
    auto page = rig.loop().run_until(req.send());
    sink::BootstrapPage p;
    p.segment = str_of(page.getSegment());
    p.context = str_of(page.getContext());
    p.next_after = str_of(page.getNextAfter());
    p.done = page.getDone();
    after = p.next_after;
    pages.push_back(p);
    if (p.done) break;
  }
  REQUIRE(pages.back().done);
  CHECK(pages.size() == 4);
  TestNode fresh(2);
  auto info = n->collection_info(kColl);
  REQUIRE(info.ok());
  {
    // The collection's spec said with an upload comes back on every page (D62).
    auto spec = info->spec;
    spec.m = 12;
    spec.ef_search = 33;
    auto req = sink.uploadSegmentRequest();
    req.setSegment(bytes_of(segments_of(*n, kColl, 40)[0]));
    req.setMetric(node::metric_to_wire_byte(spec.metric));
    transport::write(req.initSpec(), node::to_wire(spec));
    rig.loop().run_until(req.send());
    auto page = sink.bootstrapRequest();
    page.setCollection(kColl);
    auto got = rig.loop().run_until(page.send());
    REQUIRE(got.hasSpec());
    auto back = transport::read(got.getSpec());
    REQUIRE(back.ok());
    CHECK(*back == node::to_wire(spec));
  }
  restore(*fresh, info->spec, pages, 9);
  auto a = n->crdt_state_for_testing(kColl);
  auto b = fresh->crdt_state_for_testing(kColl);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->records() == b->records());
  node::SearchOptions so;
  so.k = 1;
  auto v = n->get(kColl, "r0033");
  REQUIRE(v.ok());
  auto hit = fresh->search(kColl, v->siblings.at(0).value.vector, so);
  REQUIRE(hit.ok());
  REQUIRE(hit->size() == 1);
  CHECK(hit->at(0).id == "r0033");
}

TEST_CASE("a reader or another sink is refused at introduce; a member is refused collections it has no grant for",
          "[sink][rpc]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 10, rng);
  Rig rig;
  rig.start();
  for (auto role : {security::DeviceRole::kReader, security::DeviceRole::kSink}) {
    Status st = status_of_call(rig.loop(), rig.introduce(role));
    CHECK(st.detail() == Detail::kWrongRole);
    CHECK(st.message().find("members only") != std::string::npos);
  }
  CHECK(rig.server().stats().introductions_refused == 2);
  // Their links are closed by the sink (the bound only decides when to give up).
  rig.loop().run_while([&] { return rig.server().links() == 0; }, 1'000'000);
  CHECK(rig.server().links() == 0);
  CHECK(rig.server().stats().links_closed == 2);

  // A member that may read "photos" but write only "other".
  auto sink = rig.member({{"other", security::kReadWrite}, {kColl, security::kRead}});
  auto req = sink.uploadSegmentRequest();
  const auto segs = segments_of(*n, kColl, 10);
  req.setSegment(bytes_of(segs[0]));
  Status st = status_of_call(rig.loop(), req.send());
  CHECK(st.detail() == Detail::kWrongRole);
  CHECK(st.message().find("may not write collection 'photos'") != std::string::npos);
  auto push = sink.pushDeltaRequest();
  push.setCollection(kColl);
  CHECK(status_of_call(rig.loop(), push.send()).detail() == Detail::kWrongRole);
  CHECK(rig.store().object_count() == 0);

  // A member with no grant on "photos" at all cannot read it either.
  rig.service().upload_segment(segs[0], 1).status().ok();
  auto blind = rig.member({{"other", security::kReadWrite}});
  auto search = blind.coldSearchRequest();
  search.setCollection(kColl);
  search.initQuery(4);
  search.setK(1);
  Status sst = status_of_call(rig.loop(), search.send());
  CHECK(sst.detail() == Detail::kWrongRole);
  CHECK(sst.message().find("may not read") != std::string::npos);
}

TEST_CASE("a revoked member's connection is refused at the handshake", "[sink][rpc]") {
  std::array<std::uint8_t, security::kSeedBytes> seed{};
  randombytes_buf(seed.data(), seed.size());
  auto revoked = security::Identity::from_seed(seed);
  REQUIRE(revoked.ok());
  Rig rig;
  rig.start({}, &*revoked);
  bool refused = false;
  try {
    rig.loop().run_until(rig.introduce(security::DeviceRole::kMember, {{"*", security::kReadWrite}}, &seed));
  } catch (const kj::Exception&) {
    refused = true;
  }
  CHECK(refused);
  CHECK(rig.server().stats().links_opened == 0);
  // Another member of the same mesh still gets in.
  auto sink = rig.member();
  CHECK(rig.loop().run_until(sink.statusRequest().send()).getStatus().getRecords() == 0);
}

// Proves the sink replicates revocations from members (Sink.revocations): an entry signed by the
// authority joins, closes the revoked member's open link and refuses its next handshake; an entry
// signed by anyone else is dropped and counted; bytes that do not decode are refused with a typed
// error and change nothing; the joined set is saved and load_revocations reads it back (a damaged
// file is an error naming it, never an empty set).
TEST_CASE("a member's revocation set reaches the sink: the revoked device's link closes and stays out, forged entries are dropped, the set is saved",
          "[sink][rpc]") {
  const std::string dir = (std::filesystem::temp_directory_path() / ("shoal-sink-rev-" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/revocations.bin";
  std::array<std::uint8_t, security::kSeedBytes> victim_seed{};
  randombytes_buf(victim_seed.data(), victim_seed.size());
  auto victim_id = security::Identity::from_seed(victim_seed);
  REQUIRE(victim_id.ok());

  Rig rig;
  sink::SinkServerOptions so;
  so.revocations_path = path;
  rig.start({}, nullptr, so);
  auto victim = rig.loop().run_until(
      rig.introduce(security::DeviceRole::kMember, {{"*", security::kReadWrite}}, &victim_seed)).getSink();
  CHECK(rig.loop().run_until(victim.statusRequest().send()).getStatus().getRecords() == 0);
  auto pusher = rig.member();

  // Undecodable bytes: a typed error, nothing joined, nothing saved.
  {
    auto req = pusher.revocationsRequest();
    const std::string junk = "not a revocation set";
    req.setSet(bytes_of(junk));
    Status st = status_of_call(rig.loop(), req.send());
    INFO(st.to_string());
    CHECK(st.detail() == Detail::kBadMagic);
    CHECK(rig.server().revocations().size() == 0);
    CHECK_FALSE(std::filesystem::exists(path));
  }

  // One real entry and one forged by a key that is not the authority's.
  security::RevocationSet pushed;
  pushed.insert_unverified(security::make_revocation(rig.authority().anchor.mesh_id, victim_id->public_key(),
                                                     now_wall().ns() / 1'000'000'000, rig.authority().key));
  const security::Identity bystander = fresh_identity();
  const security::Identity forger = fresh_identity();
  pushed.insert_unverified(security::make_revocation(rig.authority().anchor.mesh_id, bystander.public_key(),
                                                     now_wall().ns() / 1'000'000'000, forger));
  const auto encoded = security::encode_revocations(pushed);
  auto req = pusher.revocationsRequest();
  req.setSet(capnp::Data::Reader(encoded.data(), encoded.size()));
  auto resp = rig.loop().run_until(req.send());
  CHECK(resp.getSize() == 1);
  CHECK(resp.getRejected() == 1);
  CHECK(rig.server().revocations().contains(victim_id->public_key()));
  CHECK_FALSE(rig.server().revocations().contains(bystander.public_key()));
  CHECK(rig.server().stats().revocations_rejected == 1);

  // The victim's open link is closed (soon after the answer went out), and it cannot come back.
  rig.loop().run_until(rig.loop().timer().afterDelay(400 * kj::MILLISECONDS));
  CHECK(rig.server().stats().revoked_closed == 1);
  Status after = status_of_call(rig.loop(), victim.statusRequest().send());
  CHECK_FALSE(after.ok());
  bool refused = false;
  try {
    rig.loop().run_until(rig.introduce(security::DeviceRole::kMember, {{"*", security::kReadWrite}}, &victim_seed));
  } catch (const kj::Exception&) {
    refused = true;
  }
  CHECK(refused);
  // The pusher was not revoked and still works.
  CHECK(rig.loop().run_until(pusher.statusRequest().send()).getStatus().getRecords() == 0);

  // Saved: what a restarted sink starts with.
  auto saved = sink::load_revocations(path, rig.authority().anchor);
  REQUIRE(saved.ok());
  CHECK(saved->size() == 1);
  CHECK(saved->contains(victim_id->public_key()));
  // A missing file is an empty set; a damaged one is an error naming the file.
  auto none = sink::load_revocations(dir + "/absent.bin", rig.authority().anchor);
  REQUIRE(none.ok());
  CHECK(none->size() == 0);
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << "damaged";
  }
  auto damaged = sink::load_revocations(path, rig.authority().anchor);
  REQUIRE_FALSE(damaged.ok());
  CHECK(damaged.status().message().find(path) != std::string::npos);
  // Entries of another authority in the file are an error too, not silently dropped.
  {
    const auto bytes = security::encode_revocations(pushed);
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  auto mixed = sink::load_revocations(path, rig.authority().anchor);
  REQUIRE_FALSE(mixed.ok());
  CHECK(mixed.status().detail() == Detail::kBadSignature);
  std::filesystem::remove_all(dir);
}

// Proves D74 over the link: pushDelta's `removed` removes the entries with those dots whatever
// record holds them, and acknowledges with the removal's object; removed dots over the limit
// are refused naming it and the count, before the call's delta is stored.
TEST_CASE("removed dots over RPC remove the entries they name; bad ones refuse the whole call", "[sink][rpc]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 10, rng);
  Rig rig;
  sink::SinkLimits limits;
  limits.max_removed_ranges = 1;
  rig.start(limits);
  auto sink = rig.member();
  upload(rig.loop(), sink, segments_of(*n, kColl, 10)[0]);
  const auto objects = rig.store().object_count();
  const crdt::ReplicaId r1 = crdt::replica_for_testing(1);
  const auto ranges = [](std::vector<crdt::DotRange> v) {
    crdt::Bytes b;
    crdt::encode_dot_ranges(v, b);
    return std::string(b.begin(), b.end());
  };

  auto over = sink.pushDeltaRequest();
  over.setCollection(kColl);
  const std::string up = upsert_delta(*n, kColl, "new-one", random_value(rng, 4, 3));
  over.setDelta(bytes_of(up));
  const std::string two = ranges({{r1, 1, 1}, {r1, 3, 3}});
  over.setRemoved(bytes_of(two));
  Status os = status_of_call(rig.loop(), over.send());
  CHECK(os.detail() == Detail::kTooLarge);
  CHECK(os.message().find("2 removed-dot ranges") != std::string::npos);
  CHECK(os.message().find("limit 1") != std::string::npos);
  CHECK(rig.store().object_count() == objects);
  CHECK(rig.service().status().records == 10);

  // Dots 1..2 of replica 1: the entries of r0000 and r0001 (written in that order).
  auto push = sink.pushDeltaRequest();
  push.setCollection(kColl);
  push.setDelta(bytes_of(up));
  const std::string one = ranges({{r1, 1, 2}});
  push.setRemoved(bytes_of(one));
  auto ack = rig.loop().run_until(push.send());
  CHECK(ack.getAck().getRecords() == 2);
  CHECK(rig.service().status().records == 10 - 2 + 1);
  auto fetch = sink.fetchRequest();
  fetch.setCollection(kColl);
  auto ids = fetch.initIds(3);
  ids.set(0, bytes_of("r0000"));
  ids.set(1, bytes_of("r0001"));
  ids.set(2, bytes_of("r0002"));
  auto got = rig.loop().run_until(fetch.send());
  REQUIRE(got.getRecords().size() == 3);
  CHECK_FALSE(got.getRecords()[0].getFound());
  CHECK_FALSE(got.getRecords()[1].getFound());
  CHECK(got.getRecords()[2].getFound());
}

TEST_CASE("malformed calls over RPC get typed errors naming the limit and change nothing", "[sink][rpc]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 4, node::Metric::kL2, 10, rng);
  Rig rig;
  sink::SinkLimits limits;
  limits.max_fetch_ids = 8;
  rig.start(limits);
  auto sink = rig.member();
  upload(rig.loop(), sink, segments_of(*n, kColl, 10)[0]);
  const auto objects = rig.store().object_count();

  auto garbage = sink.uploadSegmentRequest();
  garbage.setSegment(bytes_of("SHOALSEG but nothing else"));
  CHECK(status_of_call(rig.loop(), garbage.send()).code() == Code::kCorruption);

  auto metric = sink.coldSearchRequest();
  metric.setCollection(kColl);
  metric.initQuery(4).set(0, 1.0f);
  metric.setK(3);
  metric.setMetric(7);
  Status ms = status_of_call(rig.loop(), metric.send());
  CHECK(ms.detail() == Detail::kOutOfRange);
  CHECK(ms.message().find("metric byte 7") != std::string::npos);

  // An upload's metric byte: out of range refused naming it; under cosine a zero vector is
  // refused naming the record (the node's rule, sink_service_test.cpp has the service's side).
  node::RecordValue zero;
  zero.vector = {0, 0, 0, 0};
  const std::string zero_delta = upsert_delta(*n, kColl, "zero-vec", zero);
  auto bad_metric = sink.pushDeltaRequest();
  bad_metric.setCollection(kColl);
  bad_metric.setDelta(bytes_of(zero_delta));
  bad_metric.setMetric(9);
  Status bm = status_of_call(rig.loop(), bad_metric.send());
  CHECK(bm.detail() == Detail::kOutOfRange);
  CHECK(bm.message().find("metric byte 9") != std::string::npos);
  auto cosine = sink.pushDeltaRequest();
  cosine.setCollection(kColl);
  cosine.setDelta(bytes_of(zero_delta));
  cosine.setMetric(node::metric_to_wire_byte(node::Metric::kCosine));
  Status cz = status_of_call(rig.loop(), cosine.send());
  CHECK(cz.detail() == Detail::kZeroVector);
  CHECK(cz.message().find("zero-vec") != std::string::npos);

  // An upload's spec (D62): a metric the node does not know is refused naming it; one that
  // disagrees with the metric byte is refused too; nothing is kept.
  auto info = n->collection_info(kColl);
  REQUIRE(info.ok());
  auto bad_spec = sink.pushDeltaRequest();
  bad_spec.setCollection(kColl);
  bad_spec.setDelta(bytes_of(upsert_delta(*n, kColl, "spec-vec", random_value(rng, 4, 7))));
  auto wire = node::to_wire(info->spec);
  wire.metric = 7;
  transport::write(bad_spec.initSpec(), wire);
  Status bsp = status_of_call(rig.loop(), bad_spec.send());
  CHECK(bsp.detail() == Detail::kUnknownName);
  CHECK(bsp.message().find("metric 7") != std::string::npos);
  auto other_metric = sink.pushDeltaRequest();
  other_metric.setCollection(kColl);
  other_metric.setDelta(bytes_of(upsert_delta(*n, kColl, "spec-vec", random_value(rng, 4, 7))));
  other_metric.setMetric(node::metric_to_wire_byte(node::Metric::kInnerProduct));
  transport::write(other_metric.initSpec(), node::to_wire(info->spec));  // says l2
  CHECK(status_of_call(rig.loop(), other_metric.send()).code() == Code::kInvalidArgument);
  auto no_spec = sink.bootstrapRequest();
  no_spec.setCollection(kColl);
  CHECK_FALSE(rig.loop().run_until(no_spec.send()).hasSpec());

  auto k0 = sink.coldSearchRequest();
  k0.setCollection(kColl);
  k0.initQuery(4).set(0, 1.0f);
  k0.setK(0);
  CHECK(status_of_call(rig.loop(), k0.send()).detail() == Detail::kOutOfRange);

  auto longq = sink.coldSearchRequest();
  longq.setCollection(kColl);
  longq.initQuery(5000);
  longq.setK(1);
  Status lq = status_of_call(rig.loop(), longq.send());
  CHECK(lq.detail() == Detail::kTooLarge);
  CHECK(lq.message().find("5000") != std::string::npos);

  auto many = sink.fetchRequest();
  many.setCollection(kColl);
  many.initIds(9);
  Status fs = status_of_call(rig.loop(), many.send());
  CHECK(fs.detail() == Detail::kTooLarge);
  CHECK(fs.message().find("limit 8") != std::string::npos);

  auto name = sink.pushDeltaRequest();
  name.setCollection(std::string(65, 'x'));
  CHECK(status_of_call(rig.loop(), name.send()).detail() == Detail::kTooLarge);

  auto bad_delta = sink.pushDeltaRequest();
  bad_delta.setCollection(kColl);
  bad_delta.setDelta(bytes_of("\x01\xff\xff\xff\xff\xff"));
  CHECK(status_of_call(rig.loop(), bad_delta.send()).detail() == Detail::kMalformed);

  auto missing = sink.bootstrapRequest();
  missing.setCollection("missing");
  CHECK(status_of_call(rig.loop(), missing.send()).detail() == Detail::kNoSuchCollection);

  CHECK(rig.store().object_count() == objects);
  CHECK(rig.service().status().records == 10);
  CHECK(rig.server().stats().calls_refused >= 8);
}

TEST_CASE("shoal-sink's configuration: defaults, relative paths, and every problem named with its position and value",
          "[sink][config]") {
  auto ok = sink::parse_sink_config(
      "[sink]\ndata_dir = \"data\"\ncertificate = \"/etc/shoal/sink.cert\"\nlisten = \"[::1]:7500\"\n"
      "[limits]\nmax_k = 50\n",
      "/etc/shoal/shoal-sink.toml");
  INFO(ok.status().to_string());
  REQUIRE(ok.ok());
  CHECK(ok->data_dir == "/etc/shoal/data");
  CHECK(ok->listen_address == "::1");
  CHECK(ok->listen_port == 7500);
  CHECK(ok->store_kind == "lmdb");
  CHECK(ok->compact_interval_s == 3600);
  CHECK(ok->limits.max_k == 50);

  auto bad = sink::parse_sink_config(
      "[sink]\ndata_dir = \"d\"\nlisten = \"0.0.0.0:99999\"\ncolour = 3\n[store]\nkind = \"s3\"\n", "/x/s.toml");
  REQUIRE_FALSE(bad.ok());
  const std::string& m = bad.status().message();
  CHECK(m.find("/x/s.toml:3:1: key sink.listen = \"0.0.0.0:99999\": port must be 0..65535") != std::string::npos);
  CHECK(m.find("/x/s.toml:4:1: key sink.colour = 3: unknown key; [sink] has data_dir, certificate") != std::string::npos);
  CHECK(m.find("/x/s.toml: key sink.certificate: required") != std::string::npos);
  CHECK(m.find("key store.s3_bucket: required when store.kind = \"s3\"") != std::string::npos);
  // The status's detail and subject are the first problem's in file order (line 3).
  CHECK(bad.status().detail() == Detail::kOutOfRange);

  // A typo is answered with the key it likely meant, and a bad value of a required key is
  // reported once, as bad, not also as missing.
  auto typo = sink::parse_sink_config("[sink]\ndata_dir = \"\"\ncertificate = \"c\"\nlisen = \"[::1]:1\"\n[stor]\n",
                                      "/x/s.toml");
  REQUIRE_FALSE(typo.ok());
  const std::string& t = typo.status().message();
  CHECK(t.find("/x/s.toml:2:1: key sink.data_dir = \"\": must not be empty; expected a path") != std::string::npos);
  CHECK(t.find("sink.data_dir: required") == std::string::npos);
  CHECK(t.find("/x/s.toml:4:1: key sink.lisen = \"[::1]:1\": unknown key (did you mean sink.listen?)") != std::string::npos);
  CHECK(t.find("/x/s.toml:5:2: table [stor]: unknown table (did you mean [store]?)") != std::string::npos);

  auto syntax = sink::parse_sink_config("[sink\n", "/x/s.toml");
  CHECK(syntax.status().detail() == Detail::kMalformed);
  auto range = sink::parse_sink_config(
      "[sink]\ndata_dir = \"d\"\ncertificate = \"c\"\n[limits]\nmax_upload_bytes = 99999999999\n", "/x/s.toml");
  REQUIRE_FALSE(range.ok());
  CHECK(range.status().message().find("limits.max_upload_bytes = 99999999999: must be 1024..16777216") !=
        std::string::npos);
}

TEST_CASE("shoal-sink's configuration file: a missing file names the OS reason, a file past the limit is refused "
          "unread, as shoald's",
          "[sink][config]") {
  const auto dir = std::filesystem::temp_directory_path() / ("shoal_sink_config_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string absent = (dir / "absent.toml").string();
  const Status missing = sink::load_sink_config(absent).status();
  CHECK(missing.code() == Code::kIo);
  CHECK(missing.message().find(absent + ": cannot open the config file: No such file or directory") !=
        std::string::npos);
  const std::string big = (dir / "big.toml").string();
  {
    std::ofstream out(big);
    out << "# " << std::string(sink::kMaxSinkConfigBytes, 'x') << "\n";
  }
  const Status too_large = sink::load_sink_config(big).status();
  CHECK(too_large.detail() == Detail::kTooLarge);
  CHECK(too_large.message().find("larger than 1048576 bytes") != std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST_CASE("shoal-sink's configuration refuses hostile TOML (not UTF-8, numbers past 64 bits, tables, arrays and "
          "deep nesting where a value belongs) with a typed status naming the file, never a crash",
          "[sink][config]") {
  const std::string kFile = "/x/s.toml";
  const std::string kOk = "[sink]\ndata_dir = \"d\"\ncertificate = \"c\"\n";
  std::string deep = "[sink]\ndata_dir = ";
  for (int i = 0; i < 2000; ++i) deep += '[';
  for (int i = 0; i < 2000; ++i) deep += ']';
  deep += "\ncertificate = \"c\"\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a string that is not UTF-8", kOk + "[store]\ns3_region = \"r\xff\"\n"},
      {"a key that is not UTF-8", kOk + "[limits]\n\"\xc3\x28\" = 1\n"},
      {"a NUL byte", kOk + std::string("[limits]\nmax_k = 1\0\n", 20)},
      {"an integer past 64 bits", kOk + "[limits]\nmax_k = 99999999999999999999\n"},
      {"the lowest 64-bit integer", kOk + "[limits]\nmax_k = -9223372036854775808\n"},
      {"a float where an integer belongs", kOk + "[limits]\nmax_k = 1e999\n"},
      {"a table where a string belongs", kOk + "[store]\nkind = { a = 1 }\n"},
      {"a sub-table where a string belongs", kOk + "[sink.listen]\nhost = \"::1\"\n"},
      {"an array where a path belongs", "[sink]\ndata_dir = [\"a\"]\ncertificate = \"c\"\n"},
      {"an array where a boolean belongs", kOk + "[store]\ns3_create_bucket = [true]\n"},
      {"a table given as an array of tables", "[[sink]]\ndata_dir = \"d\"\ncertificate = \"c\"\n"},
      {"a root key where a table belongs", "sink = 3\n"},
      {"arrays nested 2,000 deep", deep},
      {"a port of 20 digits", kOk + "listen = \"[::1]:99999999999999999999\"\n"},
  };
  for (const auto& [what, text] : cases) {
    INFO(what);
    Result<sink::SinkConfig> r = sink::SinkConfig{};
    REQUIRE_NOTHROW(r = sink::parse_sink_config(text, kFile));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() != Code::kOk);
    CHECK(r.status().message().find(kFile) != std::string::npos);
  }
}

TEST_CASE("packaging/shoal-sink.toml (the package's conffile) parses, shows the true defaults and every documented key",
          "[sink][config][docs]") {
  auto read = [](const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    REQUIRE(f);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  const std::string text = read(std::string(SHOAL_SOURCE_DIR) + "/packaging/shoal-sink.toml");
  auto shipped = sink::parse_sink_config(text, "/etc/shoal/shoal-sink.toml");
  INFO(shipped.status().to_string());
  REQUIRE(shipped.ok());
  CHECK(shipped->data_dir == "/var/lib/shoal-sink");
  CHECK(shipped->certificate == "/etc/shoal/sink.cert");

  // Every setting is shown commented out as "#key = value" (prose comments have a space after
  // '#'): uncommented, they must parse and give the defaults (the S3 ones are examples).
  const std::string all_text = std::regex_replace(text, std::regex("(^|\n)#([a-z_])"), "$1$2");
  auto all = sink::parse_sink_config(all_text, "/etc/shoal/shoal-sink.toml");
  INFO(all.status().to_string());
  REQUIRE(all.ok());
  const sink::SinkConfig defaults;
  CHECK(all->listen_address == defaults.listen_address);
  CHECK(all->listen_port == defaults.listen_port);
  CHECK(all->log_level == defaults.log_level);
  CHECK(all->compact_interval_s == defaults.compact_interval_s);
  CHECK(all->store_kind == defaults.store_kind);
  CHECK(all->lmdb_map_size_mb == defaults.lmdb_map_size_mb);
  CHECK(all->s3_region == defaults.s3_region);
  CHECK(all->s3_create_bucket == defaults.s3_create_bucket);
  CHECK(all->limits.max_collections == defaults.limits.max_collections);
  CHECK(all->limits.max_k == defaults.limits.max_k);
  CHECK(all->limits.max_fetch_ids == defaults.limits.max_fetch_ids);
  CHECK(all->limits.max_upload_bytes == defaults.limits.max_upload_bytes);

  // Every key of docs/sink.md's configuration table is in the file.
  const std::string doc = read(std::string(SHOAL_SOURCE_DIR) + "/docs/sink.md");
  const auto start = doc.find("### Configuration (TOML)");
  REQUIRE(start != std::string::npos);
  const std::string section = doc.substr(start, doc.find("\n## ", start) - start);
  std::size_t keys = 0;
  const std::regex row("\\n\\| (`[^|]*`) \\|");
  for (auto it = std::sregex_iterator(section.begin(), section.end(), row); it != std::sregex_iterator(); ++it) {
    const std::string cell = (*it)[1];
    const std::regex name("`(?:[a-z]+\\.)?([a-z0-9_]+)`");
    for (auto k = std::sregex_iterator(cell.begin(), cell.end(), name); k != std::sregex_iterator(); ++k) {
      const std::string leaf = (*k)[1];
      INFO(leaf);
      CHECK(std::regex_search(all_text, std::regex("(^|\n)" + leaf + " = ")));
      ++keys;
    }
  }
  CHECK(keys == 17);
}

#ifdef SHOAL_SINK_BINARY
namespace {

struct Process {
  pid_t pid = -1;
  FILE* out = nullptr;
  std::uint16_t port = 0;
};

Process spawn_sink(const std::string& config) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  Process p;
  p.pid = ::fork();
  REQUIRE(p.pid >= 0);
  if (p.pid == 0) {
    ::dup2(fds[1], 1);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execl(SHOAL_SINK_BINARY, "shoal-sink", "--config", config.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[1]);
  p.out = ::fdopen(fds[0], "r");
  char line[512];
  while (std::fgets(line, sizeof line, p.out) != nullptr) {
    unsigned port = 0;
    if (std::sscanf(line, "shoal-sink: ready port=%u", &port) == 1) {
      p.port = static_cast<std::uint16_t>(port);
      break;
    }
  }
  REQUIRE(p.port != 0);
  return p;
}

int stop(Process& p) {
  ::kill(p.pid, SIGTERM);
  int status = 0;
  REQUIRE(::waitpid(p.pid, &status, 0) == p.pid);
  std::fclose(p.out);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("shoal-sink from a TOML file serves a member, keeps its objects across a restart, and exits 0 on SIGTERM",
          "[sink][rpc][process]") {
  SHOAL_SINK_TEST_RNG(rng);
  TestNode n(1);
  fill(*n, kColl, 8, node::Metric::kL2, 120, rng);
  const auto dir = std::filesystem::temp_directory_path() / ("shoal-sink-proc-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "data");
  std::filesystem::permissions(dir / "data", std::filesystem::perms::owner_all);
  Authority authority;
  const security::Identity sink_id = fresh_identity();
  REQUIRE(security::write_key_file((dir / "data" / security::kIdentityFileName).string(), sink_id,
                                   security::KeyKind::kDevice)
              .ok());
  {
    const auto cert = authority.certify(sink_id, security::DeviceRole::kSink);
    std::ofstream f(dir / "sink.cert", std::ios::binary);
    f.write(reinterpret_cast<const char*>(cert.data()), static_cast<std::streamsize>(cert.size()));
    std::ofstream c(dir / "sink.toml");
    c << "[sink]\ndata_dir = \"data\"\ncertificate = \"sink.cert\"\nlisten = \"127.0.0.1:0\"\nlog_level = \"error\"\n"
         "[store]\nkind = \"lmdb\"\nlmdb_map_size_mb = 64\n";
  }
  const std::string config = (dir / "sink.toml").string();

  boost::asio::io_context io;
  transport::KjLoop loop(io);
  security::Identity me = fresh_identity();
  security::RevocationSet none;
  transport::LinkSecurity sec;
  sec.identity = &me;
  sec.certificate = authority.certify(me, security::DeviceRole::kMember);
  sec.anchor = &authority.anchor;
  sec.revocations = [&]() -> const security::RevocationSet& { return none; };
  sec.trusted_now = [] { return now_wall(); };
  auto connect = [&](std::uint16_t port) {
    auto link = loop.run_until(transport::dial(loop, "127.0.0.1", port, sec, {}));
    auto req = link->peer_bootstrap().castAs<transport::rpc::Gate>().introduceRequest();
    const std::string rid = crdt::replica_for_testing(5).encode();
    req.getIntro().setReplica(bytes_of(rid));
    req.getIntro().setMinProtocol(1);
    req.getIntro().setMaxProtocol(1);
    auto sink = loop.run_until(req.send()).getSink();
    return std::make_pair(kj::mv(link), sink);
  };
  std::vector<float> query(8, 0.25f);
  const Exact exact = exact_search(*n, kColl, query, 5, node::Metric::kL2);
  {
    Process p = spawn_sink(config);
    auto [link, sink] = connect(p.port);
    for (const auto& seg : segments_of(*n, kColl, 50)) upload(loop, sink, seg);
    auto hits = cold_search(loop, sink, query, 5, node::Metric::kL2);
    REQUIRE(hits.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) CHECK(hits[i].first == exact.ids[i]);
    link->close();
    CHECK(stop(p) == 0);
  }
  {
    Process p = spawn_sink(config);
    auto [link, sink] = connect(p.port);
    auto st = loop.run_until(sink.statusRequest().send());
    CHECK(st.getStatus().getRecords() == 120);
    CHECK(std::string(st.getStatus().getStoreKind().cStr()) == "lmdb");
    auto hits = cold_search(loop, sink, query, 5, node::Metric::kL2);
    REQUIRE(hits.size() == 5);
    for (std::size_t i = 0; i < 5; ++i) CHECK(hits[i].first == exact.ids[i]);
    link->close();
    CHECK(stop(p) == 0);
  }
  std::filesystem::remove_all(dir);
}
#endif

// tests/mesh/cancel_test.cpp: cancellation safety of the kj-on-Asio transport (issue 13: "the
// adapter owns its buffers, so cancellation is safe (test it under ASan with cancellations in
// flight)").
//
// What it proves (memory safety only under a sanitizer: CI's ASan build runs it as an ordinary
// ctest test; under a plain build it proves the behaviour checks below):
//   1. Dropping a dial promise at every point of the handshake (after 0, 1, 2, ... loop turns) to
//      a real host touches no freed memory; the host settles with no pending handshake, no link
//      left over, every accepted connection accounted for, and it still serves an enrolled peer.
//      A dial dropped while the other end is silent still closes its socket (by its handshake
//      timeout): a cancelled dial leaks no connection.
//   2. Destroying a Link (either side) while its read is pending and calls' bytes are arriving in
//      both directions touches no freed memory, and the other side sees the disconnect.
//   3. Destroying a MeshHost (the sender or the receiver) while pushDeltas calls are in flight
//      touches no freed memory, and after a restart the two hosts converge with every write
//      (nothing acknowledged is lost).
// No check depends on timing: the turn counts only choose where the cancellation lands, and the
// loop's bound (60 s) only decides when to give up.
#include <catch2/catch.hpp>

#include <capnp/message.h>
#include <kj/async.h>

#include <chrono>

#include "hostile_net.hpp"
#include "transport/rpc.capnp.h"

using namespace shoal;
using namespace shoal::mesh_test;

namespace {

constexpr const char* kColl = "cancel";

void create(Host& h) {
  node::CollectionSpec spec;
  spec.name = kColl;
  spec.dimension = 4;
  REQUIRE(h.db().create_collection(spec).ok());
}

std::uint64_t root(Host& h) {
  auto r = h.db().digest_root(kColl);
  return r.ok() ? *r : 0;
}

std::uint64_t live(Host& h) {
  auto info = h.db().collection_info(kColl);
  return info.ok() ? info->live_records : 0;
}

// Runs up to n handlers, stopping early once the loop has been idle for 20 ms (the cancellation
// then lands after everything that could happen has happened; an idle loop would otherwise block
// until the next timer).
void turns(Cluster& c, std::size_t n) {
  auto& io = c.loop().io();
  for (std::size_t i = 0; i < n; ++i) {
    if (io.stopped()) io.restart();
    if (io.poll_one() > 0) continue;
    if (io.stopped()) io.restart();
    if (io.run_one_for(std::chrono::milliseconds(20)) == 0) break;
  }
  c.loop().kick();  // re-arms the kj timers' Asio timer, as KjLoop::run_while does
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
// Answers introduce with the caller's own Intro (a large replica field makes large replies).
class EchoGate final : public transport::rpc::Gate::Server {
 protected:
  kj::Promise<void> introduce(IntroduceContext context) override {
    auto in = context.getParams().getIntro();
    auto out = context.getResults().initIntro();
    out.setReplica(in.getReplica());
    out.setMinProtocol(in.getMinProtocol());
    out.setMaxProtocol(in.getMaxProtocol());
    return kj::READY_NOW;
  }
};
#pragma GCC diagnostic pop

// A call whose request and reply each carry `bytes` bytes.
kj::Promise<void> big_call(transport::rpc::Gate::Client gate, std::size_t bytes) {
  auto req = gate.introduceRequest();
  auto data = req.getIntro().initReplica(static_cast<unsigned>(bytes));
  std::memset(data.begin(), 0x5a, data.size());
  return req.send().ignoreResult().then([] {}, [](kj::Exception&&) {});
}

}  // namespace

TEST_CASE("dropping a dial promise at every point of the handshake is safe and leaks no connection",
          "[mesh][cancel]") {
  Cluster c;
  Host& a = c.add(security::DeviceRole::kMember, true,
                  [](node::MeshOptions& o) { o.link.handshake_timeout = Duration::seconds(1); });
  Device member(c.authority().anchor, [&](const security::Identity& id) { return c.authority().certify(id); });
  const auto before = a.mesh->stats().listener;

  for (std::size_t n = 0; n < 40; ++n) {
    auto p = transport::dial(c.loop(), "127.0.0.1", a.port(), member.sec, {})
                 .eagerlyEvaluate([](kj::Exception&&) { return kj::Own<transport::Link>(); });
    turns(c, n);
  }  // each promise dropped here, wherever its dial had got to
  // The host settles: nothing pending, no link left, every connection accounted for.
  REQUIRE(c.run_until([&] {
    auto s = a.mesh->stats().listener;
    return s.pending == 0 && a.mesh->peers().empty() &&
           s.accepted - before.accepted == (s.handshakes_ok - before.handshakes_ok) +
                                               (s.handshakes_failed - before.handshakes_failed) +
                                               (s.refused_pending - before.refused_pending);
  }));
  CHECK(a.mesh->stats().listener.accepted - before.accepted <= 40);

  // A dial dropped while the other end never answers still closes its socket.
  int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(lfd >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(::listen(lfd, 8) == 0);
  socklen_t len = sizeof sa;
  REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&sa), &len) == 0);
  transport::LinkOptions quick;
  quick.handshake_timeout = Duration::millis(300);
  {
    auto p = transport::dial(c.loop(), "127.0.0.1", ntohs(sa.sin_port), member.sec, quick)
                 .eagerlyEvaluate([](kj::Exception&&) { return kj::Own<transport::Link>(); });
    turns(c, 3);
  }
  ::fcntl(lfd, F_SETFL, ::fcntl(lfd, F_GETFL) | O_NONBLOCK);
  int sfd = -1;
  std::vector<std::uint8_t> got;
  bool eof = false;
  REQUIRE(c.run_until([&] {
    if (sfd < 0) sfd = ::accept(lfd, nullptr, nullptr);
    if (sfd < 0) return false;
    std::uint8_t buf[512];
    ssize_t r = ::recv(sfd, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) got.insert(got.end(), buf, buf + r);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) eof = true;
    return eof;
  }));
  CHECK(got.size() > 0);  // the dial had sent its first handshake message
  if (sfd >= 0) ::close(sfd);
  ::close(lfd);

  // The host is unharmed.
  create(a);
  Host& b = c.add();
  c.dial(b, a);
  REQUIRE(c.run_until([&] { return c.up_peers(b) == 1 && b.db().collection_info(kColl).ok(); }));
}

TEST_CASE("destroying a Link while its read is pending and bytes are arriving is safe", "[mesh][cancel]") {
  Cluster c;
  Device server_dev(c.authority().anchor, [&](const security::Identity& id) { return c.authority().certify(id); });
  Device client_dev(c.authority().anchor, [&](const security::Identity& id) { return c.authority().certify(id); });

  const std::size_t points[] = {0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144};
  for (std::size_t i = 0; i < std::size(points); ++i) {
    const bool kill_client = i % 2 == 0;
    INFO("after " << points[i] << " turns, destroying the " << (kill_client ? "dialing" : "accepting") << " side");
    kj::Own<transport::Link> server;
    auto listener = transport::listen(
        c.loop(), "127.0.0.1", 0, server_dev.sec, {}, {},
        [&](kj::Own<transport::Link> l) {
          l->serve(kj::heap<EchoGate>());
          server = kj::mv(l);
        },
        {});
    REQUIRE(listener.ok());
    auto client = c.loop().run_until(transport::dial(c.loop(), "127.0.0.1", (*listener)->port(), client_dev.sec, {}));
    client->serve(kj::heap<EchoGate>());
    REQUIRE(c.run_until([&] { return server.get() != nullptr; }));

    // Calls both ways, 256 KiB each way per call: replies and requests keep arriving.
    auto to_server = client->peer_bootstrap().castAs<transport::rpc::Gate>();
    auto to_client = server->peer_bootstrap().castAs<transport::rpc::Gate>();
    kj::Vector<kj::Promise<void>> calls;
    for (int k = 0; k < 8; ++k) {
      calls.add(big_call(to_server, 256 << 10).eagerlyEvaluate(nullptr));
      calls.add(big_call(to_client, 256 << 10).eagerlyEvaluate(nullptr));
    }
    turns(c, points[i]);

    kj::Own<transport::Link>& victim = kill_client ? client : server;
    kj::Own<transport::Link>& other = kill_client ? server : client;
    bool other_saw_it = false;
    auto watch = other->on_disconnect()
                     .then([&] { other_saw_it = true; }, [&](kj::Exception&&) { other_saw_it = true; })
                     .eagerlyEvaluate(nullptr);
    victim = nullptr;  // its socket read may be in flight, its buffers half full
    turns(c, 5);       // Asio handlers of the destroyed link run now
    calls = kj::Vector<kj::Promise<void>>();
    to_server = nullptr;
    to_client = nullptr;
    REQUIRE(c.run_until([&] { return other_saw_it; }));
    other = nullptr;
    listener->reset();
    turns(c, 5);
  }
}

TEST_CASE("destroying a MeshHost with calls in flight is safe and loses no write", "[mesh][cancel]") {
  Cluster c;
  Host& a = c.add();
  Host& b = c.add();
  c.dial(b, a);
  REQUIRE(c.run_until([&] { return c.up_peers(a) == 1 && c.up_peers(b) == 1; }));
  create(a);
  REQUIRE(c.run_until([&] { return b.db().collection_info(kColl).ok(); }));

  std::uint64_t expected = 0;
  const std::size_t points[] = {0, 1, 2, 4, 8, 16, 32, 64, 128, 256};
  for (std::size_t i = 0; i < std::size(points); ++i) {
    Host& writer = i % 4 < 2 ? a : b;
    Host& victim = i % 2 == 0 ? a : b;
    Host& survivor = &victim == &a ? b : a;
    INFO("after " << points[i] << " turns, destroying " << (&victim == &a ? "a" : "b") << " (writer "
                  << (&writer == &a ? "a" : "b") << ")");
    std::vector<node::RecordInput> batch;
    for (int k = 0; k < 200; ++k) {
      node::RecordValue v;
      v.vector = {float(k), float(i), 0.5f, 0.25f};
      batch.push_back({"p" + std::to_string(i) + "-" + std::to_string(k), v});
    }
    REQUIRE(writer.db().upsert_batch(kColl, std::move(batch)).ok());
    expected += 200;
    turns(c, points[i]);
    c.stop(victim);  // the MeshHost goes with pushes, acks or digest calls in flight
    REQUIRE(c.run_until([&] { return c.up_peers(survivor) == 0; }));
    c.start(victim, {{"127.0.0.1", survivor.port(), node::Tier::kHot}});
    REQUIRE(c.run_until([&] {
      return c.up_peers(a) >= 1 && c.up_peers(b) >= 1 && live(a) == expected && live(b) == expected &&
             root(a) == root(b);
    }));
  }
}

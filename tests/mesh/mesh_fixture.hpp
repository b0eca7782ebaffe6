// tests/mesh/mesh_fixture.hpp: hosts on real loopback sockets for the mesh tests: a test mesh
// authority, data directories in a temporary folder, one KjLoop on an io_context shared by every
// host of the process, and helpers that run the loop until a condition holds (with a generous
// bound that only decides when to give up, never what passes).
// Thread rules: one test thread runs the loop and touches the hosts.
#pragma once

#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <sodium.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "node/mesh/mesh_host.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/runtime/revocation_replica.hpp"
#include "security/certificate.hpp"
#include "security/identity.hpp"
#include "security/revocation.hpp"
#include "test_authority.hpp"
#include "transport/kj_loop.hpp"

namespace shoal::mesh_test {

inline std::string temp_dir(const std::string& name) {
  static int counter = 0;
  auto p = std::filesystem::temp_directory_path() /
           ("shoal-mesh-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" + name);
  std::filesystem::remove_all(p);
  return p.string();
}

// Log lines go to stderr only when SHOAL_TEST_LOG is set.
inline Logger* test_logger() {
  static Logger logger(std::getenv("SHOAL_TEST_LOG") ? LogLevel::kDebug : LogLevel::kOff);
  return &logger;
}

struct Host {
  std::string dir;
  security::Identity identity = fresh_identity();
  std::vector<std::uint8_t> certificate;
  std::unique_ptr<node::RevocationReplica> revocations;
  std::unique_ptr<node::OpenDataDir> data;
  std::unique_ptr<node::MeshHost> mesh;

  node::SharedNode& db() { return data->node(); }
  std::uint16_t port() const { return mesh->port(); }
};

// Options fit for tests: quick keepalive and redial, so losses are noticed in well under a second.
inline node::MeshOptions test_options() {
  node::MeshOptions o;
  o.ping_interval = Duration::millis(300);
  o.call_timeout = Duration::seconds(3);
  o.backoff_min = Duration::millis(50);
  o.backoff_max = Duration::millis(500);
  return o;
}

class Cluster {
 public:
  Cluster() : loop_(io_) {}
  ~Cluster() {
    for (auto& h : hosts_) stop(*h);
  }

  transport::KjLoop& loop() { return loop_; }
  Authority& authority() { return authority_; }
  Host& operator[](std::size_t i) { return *hosts_.at(i); }
  std::size_t size() const { return hosts_.size(); }

  // A host with its own data directory; started at once unless `start` is false.
  Host& add(security::DeviceRole role = security::DeviceRole::kMember, bool start = true,
            std::function<void(node::MeshOptions&)> tweak = {}) {
    auto h = std::make_unique<Host>();
    h->dir = temp_dir("host" + std::to_string(hosts_.size()));
    h->certificate = authority_.certify(h->identity, role);
    Host& ref = *h;
    hosts_.push_back(std::move(h));
    tweaks_.push_back(std::move(tweak));
    if (start) this->start(ref);
    return ref;
  }

  // Opens the data directory (again) and starts the mesh host, dialing `peers`.
  void start(Host& h, std::vector<node::MeshPeerAddress> peers = {}) {
    h.revocations = std::make_unique<node::RevocationReplica>(authority_.anchor);
    node::DataDirOptions d;
    d.node.build_threads = 1;
    d.node.revocations = h.revocations.get();
    auto opened = node::open_data_dir(h.dir, std::move(d));
    INFO(opened.status().to_string());
    REQUIRE(opened.ok());
    h.data = std::move(*opened);
    node::MeshOptions o = test_options();
    o.peers = std::move(peers);
    if (auto& t = tweaks_[index_of(h)]) t(o);
    node::MeshCredentials c;
    c.identity = &h.identity;
    c.certificate = h.certificate;
    c.anchor = authority_.anchor;
    auto m = node::MeshHost::start(loop_, h.db(), *h.revocations, std::move(c), std::move(o), test_logger());
    INFO(m.status().to_string());
    REQUIRE(m.ok());
    h.mesh = std::move(*m);
  }

  void stop(Host& h) {
    h.mesh.reset();
    h.data.reset();
    h.revocations.reset();
  }

  void dial(Host& from, const Host& to, node::Tier tier = node::Tier::kHot) {
    from.mesh->add_peer(node::MeshPeerAddress{"127.0.0.1", to.port(), tier});
  }

  // Runs the loop until `done()` or until `give_up_after` of wall time; returns done().
  bool run_until(const std::function<bool()>& done, Duration give_up_after = Duration::seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(give_up_after.ns());
    return loop_.run_while([&] { return done() || std::chrono::steady_clock::now() > deadline; },
                           std::size_t(-1)) &&
           done();
  }
  // Runs the loop for `d` of wall time (to let something that must NOT happen have its chance).
  void run_for(Duration d) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(d.ns());
    loop_.run_while([&] { return std::chrono::steady_clock::now() > deadline; }, std::size_t(-1));
  }

  std::size_t up_peers(Host& h) {
    std::size_t n = 0;
    for (const auto& p : h.mesh->peers()) n += p.up ? 1 : 0;
    return n;
  }

 private:
  std::size_t index_of(const Host& h) const {
    for (std::size_t i = 0; i < hosts_.size(); ++i) {
      if (hosts_[i].get() == &h) return i;
    }
    FAIL("unknown host");
    return 0;
  }

  boost::asio::io_context io_;
  transport::KjLoop loop_;
  Authority authority_;
  std::vector<std::unique_ptr<Host>> hosts_;
  std::vector<std::function<void(node::MeshOptions&)>> tweaks_;
};

}  // namespace shoal::mesh_test

// tests/mesh/mesh_peer.cpp: shoal-mesh-peer, one mesh host as its own process, driven by line
// commands on stdin, for the multi-process, kill -9 and network-namespace tests and the mesh
// benchmark. It runs the product's parts unchanged (the data directory, the mesh host, the
// links); only the control channel is a test's (the daemon's local API is issue 14).
//
//   shoal-mesh-peer --data DIR --print-device-key         create/read DIR/identity.key, print it
//   shoal-mesh-peer --data DIR --certificate FILE [--listen ADDR:PORT] [--peer HOST:PORT[:warm]]...
//                   [--discover IFACE_IPV4]     (mDNS: announce, and dial the devices of our mesh found)
//
// The trust anchor is the certificate's own mesh id and issuer (the device trusts the authority
// that enrolled it). On start it prints `ready port=P device=HEX replica=R`. Commands (one per
// line; every answer is one line, written after the request is durable):
//   create NAME DIM                      -> ok create
//   put NAME ID X                        -> ok put ID          (vector X,1,..: DIM values)
//   batch NAME PREFIX FIRST N            -> ok batch N         (ids PREFIX<FIRST..FIRST+N-1>)
//   del NAME ID                          -> ok del ID
//   peer HOST PORT                       -> ok peer
//   state NAME                           -> state coll=0|1 live=N root=R up=K
//   has NAME ID                          -> has ID 1|0
//   search NAME X                        -> hit ID|none
//   revoke FILE                          -> ok revoke          (joins a `shoal mesh revoke` file)
//   quit                                 -> (clean stop, exit 0)
// Errors answer `err <status>`. Thread rules: the loop runs on the main thread; a reader thread
// turns lines into work: writes go straight to the thread-safe SharedNode, mesh calls are posted.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/hex.hpp"
#include "common/log.hpp"
#include "node/mesh/mesh_host.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/runtime/revocation_replica.hpp"
#include "security/certificate.hpp"
#include "security/key_file.hpp"
#include "transport/kj_loop.hpp"

using namespace shoal;

namespace {

std::mutex out_mu;
void say(const std::string& line) {
  std::lock_guard lock(out_mu);
  std::cout << line << "\n" << std::flush;
}

bool split_host_port(const std::string& text, std::string& host, std::uint16_t& port, std::string& rest) {
  auto c = text.find(':');
  if (c == std::string::npos) return false;
  host = text.substr(0, c);
  std::string p = text.substr(c + 1);
  auto c2 = p.find(':');
  if (c2 != std::string::npos) {
    rest = p.substr(c2 + 1);
    p = p.substr(0, c2);
  }
  try {
    const unsigned long v = std::stoul(p);
    if (v > 65535) return false;
    port = static_cast<std::uint16_t>(v);
  } catch (...) {
    return false;
  }
  return true;
}

[[noreturn]] void die(const std::string& why) {
  std::cerr << "shoal-mesh-peer: " << why << "\n";
  std::exit(2);
}

node::RecordValue value_of(float x, std::uint32_t dim) {
  node::RecordValue v;
  v.vector.assign(dim, 1.0f);
  v.vector[0] = x;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string data, cert_path, listen = "127.0.0.1:0";
  std::vector<node::MeshPeerAddress> peers;
  bool print_key = false;
  std::string discover;  // mDNS on the interface with this IPv4 address ("" = off)
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--data") data = next();
    else if (a == "--certificate") cert_path = next();
    else if (a == "--listen") listen = next();
    else if (a == "--print-device-key") print_key = true;
    else if (a == "--discover") discover = next();
    else if (a == "--peer") {
      node::MeshPeerAddress p;
      std::string rest;
      if (!split_host_port(next(), p.host, p.port, rest)) die("--peer needs HOST:PORT[:warm]");
      p.tier = rest == "warm" ? node::Tier::kWarm : node::Tier::kHot;
      peers.push_back(p);
    } else {
      die("unknown option " + a);
    }
  }
  if (data.empty()) die("give --data DIR");
  std::error_code mkdir_ec;
  std::filesystem::create_directories(data, mkdir_ec);
  auto identity = security::load_or_create_identity(data);
  if (!identity.ok()) die(identity.status().to_string());
  if (print_key) {
    std::cout << common::to_hex(identity->public_key()) << "\n";
    return 0;
  }
  if (cert_path.empty()) die("give --certificate FILE");
  std::ifstream f(cert_path, std::ios::binary);
  std::vector<std::uint8_t> cert_bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto cert = security::decode_certificate(cert_bytes);
  if (!cert.ok()) die(cert.status().with_context(cert_path).to_string());
  security::TrustAnchor anchor;
  anchor.mesh_id = cert->mesh_id;
  anchor.authorities = {cert->issuer_key};

  std::string lhost;
  std::uint16_t lport = 0;
  std::string rest;
  if (!split_host_port(listen, lhost, lport, rest)) die("--listen needs ADDR:PORT");

  Logger logger(std::getenv("SHOAL_LOG") ? LogLevel::kDebug : LogLevel::kWarn);
  node::RevocationReplica revocations(anchor);
  node::DataDirOptions dopts;
  dopts.node.revocations = &revocations;
  dopts.node.logger = &logger;
  auto dir = node::open_data_dir(data, std::move(dopts));
  if (!dir.ok()) die(dir.status().to_string());
  node::SharedNode& db = (*dir)->node();

  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  transport::KjLoop loop(io);
  node::MeshOptions mo;
  mo.listen_address = lhost;
  mo.listen_port = lport;
  mo.peers = peers;
  mo.ping_interval = Duration::millis(500);
  mo.call_timeout = Duration::seconds(5);
  mo.backoff_min = Duration::millis(50);
  mo.backoff_max = Duration::seconds(1);
  if (!discover.empty()) {
    mo.discovery = true;
    mo.discovery_options.interface_address = discover;
    mo.discovery_options.refresh = Duration::seconds(1);
    mo.discovery_options.record_ttl = Duration::seconds(3);
  }
  node::MeshCredentials creds;
  creds.identity = &*identity;
  creds.certificate = cert_bytes;
  creds.anchor = anchor;
  auto mesh = node::MeshHost::start(loop, db, revocations, std::move(creds), mo, &logger);
  if (!mesh.ok()) die(mesh.status().to_string());
  say("ready port=" + std::to_string((*mesh)->port()) + " device=" + common::to_hex(identity->public_key()) +
      " replica=" + db.replica().to_string());

  std::atomic<bool> quitting{false};
  auto quit = [&] {
    if (quitting.exchange(true)) return;
    loop.post([&] {
      (*mesh)->stop();
      guard.reset();
      io.stop();
    });
  };
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) quit();
  });

  std::thread reader([&] {
    std::string line;
    while (!quitting && std::getline(std::cin, line)) {
      std::istringstream in(line);
      std::string cmd, name;
      in >> cmd >> name;
      auto report = [&](const Status& st, const std::string& ok) { say(st.ok() ? ok : "err " + st.to_string()); };
      if (cmd == "quit") break;
      if (cmd == "create") {
        std::uint32_t dim = 0;
        in >> dim;
        node::CollectionSpec spec;
        spec.name = name;
        spec.dimension = dim;
        report(db.create_collection(spec), "ok create");
      } else if (cmd == "put") {
        std::string id;
        float x = 0;
        in >> id >> x;
        auto info = db.collection_info(name);
        if (!info.ok()) { report(info.status(), ""); continue; }
        report(db.upsert(name, id, value_of(x, info->spec.dimension)), "ok put " + id);
      } else if (cmd == "batch") {
        std::string prefix;
        long first = 0, n = 0;
        in >> prefix >> first >> n;
        auto info = db.collection_info(name);
        if (!info.ok()) { report(info.status(), ""); continue; }
        std::vector<node::RecordInput> batch;
        for (long i = first; i < first + n; ++i) {
          batch.push_back({prefix + std::to_string(i), value_of(static_cast<float>(i), info->spec.dimension)});
        }
        report(db.upsert_batch(name, std::move(batch)), "ok batch " + std::to_string(n));
      } else if (cmd == "del") {
        std::string id;
        in >> id;
        report(db.remove(name, id), "ok del " + id);
      } else if (cmd == "has") {
        std::string id;
        in >> id;
        say("has " + id + (db.get(name, id).ok() ? " 1" : " 0"));
      } else if (cmd == "search") {
        float x = 0;
        in >> x;
        auto info = db.collection_info(name);
        if (!info.ok()) { report(info.status(), ""); continue; }
        node::SearchOptions so;
        so.k = 1;
        auto q = value_of(x, info->spec.dimension).vector;
        auto hits = db.search(name, q, so);
        if (!hits.ok()) { report(hits.status(), ""); continue; }
        say(hits->empty() ? "hit none" : "hit " + hits->front().id);
      } else if (cmd == "revoke") {
        std::ifstream rf(name, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(rf)), std::istreambuf_iterator<char>());
        if (!rf) { report(Status(Code::kIo, "cannot read " + name), ""); continue; }
        report(db.write([&](node::Node& n) { return n.add_revocations(bytes); }), "ok revoke");
      } else if (cmd == "peer") {
        std::string host = name;
        unsigned port = 0;
        in >> port;
        loop.post([&, host, port] { (*mesh)->add_peer({host, static_cast<std::uint16_t>(port), node::Tier::kHot}); });
        say("ok peer");
      } else if (cmd == "state") {
        loop.post([&, name] {
          auto info = db.collection_info(name);
          auto root = db.digest_root(name);
          std::size_t up = 0;
          for (const auto& p : (*mesh)->peers()) up += p.up ? 1 : 0;
          say("state coll=" + std::string(info.ok() ? "1" : "0") +
              " live=" + std::to_string(info.ok() ? info->live_records : 0) +
              " root=" + std::to_string(root.ok() ? *root : 0) + " up=" + std::to_string(up));
        });
      } else if (!cmd.empty()) {
        say("err unknown command " + cmd);
      }
    }
    quit();
  });
  io.run();
  mesh->reset();
  reader.detach();  // it may be blocked reading stdin; the process exits now
  dir->reset();
  std::fflush(stdout);
  std::_Exit(0);
}

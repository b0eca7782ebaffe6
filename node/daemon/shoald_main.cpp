// node/daemon/shoald_main.cpp: shoald, the Shoal daemon on a gateway (docs/operations.md,
// "Running shoald").
//
//   shoald [--config FILE]            run (default /etc/shoal/shoald.toml)
//   shoald --config FILE --check      parse the configuration, print what is wrong, exit
//   shoald --config FILE --print-device-key
//                                     create (or read) DATA_DIR/identity.key and print its public
//                                     key, for `shoal mesh enrol --device-key ...`
//   shoald --config FILE --backup DEST [--compact]
//                                     ask the daemon running with FILE for a consistent copy of
//                                     its store in DEST (it keeps serving); exit 0 when written
//   shoald --version
//
// One thread runs everything (docs/mesh.md): the Asio io_context with the kj loop on it, the mesh
// host (links, discovery), the local API on the Unix socket and the metrics endpoint. SIGTERM and
// SIGINT stop it cleanly (links closed with their close frames, mDNS goodbye sent, the data
// directory closed with its index snapshots written); SIGHUP reloads what can be reloaded (the
// log level, the configured peers; anything else is logged as needing a restart). With
// NOTIFY_SOCKET set (systemd Type=notify) it reports READY=1, RELOADING=1 and STOPPING=1.
// Exit codes: 0 clean stop; 1 a failure at start (the reason on stderr); 2 a usage or
// configuration error.
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <grp.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>

#include "common/log.hpp"
#include "node/daemon/config.hpp"
#include "node/daemon/http_server.hpp"
#include "node/daemon/local_api.hpp"
#include "node/daemon/metrics.hpp"
#include "node/daemon/status.hpp"
#include "node/daemon/status_page.hpp"
#include "node/mesh/mesh_host.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/runtime/revocation_replica.hpp"
#include "security/certificate.hpp"
#include "security/key_file.hpp"
#include "transport/kj_loop.hpp"
#include "transport/link.hpp"
#include "transport/local_link.hpp"
#include "transport/node_api.capnp.h"

#ifndef SHOAL_VERSION_STRING
#define SHOAL_VERSION_STRING "0.0.0"
#endif

using namespace shoal;

namespace {

std::string hex(std::span<const std::uint8_t> b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (auto x : b) {
    s += d[x >> 4];
    s += d[x & 15];
  }
  return s;
}

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "shoald: " << why << "\n"
            << "usage: shoald [--config FILE] [--check | --print-device-key | --backup DEST [--compact]] | --version\n";
  std::exit(2);
}

node::MeshOptions mesh_options(const daemon::DaemonConfig& c) {
  node::MeshOptions o;
  o.listen_address = c.listen_address;
  o.listen_port = c.listen_port;
  for (const auto& p : c.peers) o.peers.push_back(node::MeshPeerAddress{p.host, p.port, p.tier});
  o.discovery = c.discovery;
  o.discovery_options.interface_address = c.discovery_interface;
  o.ping_interval = c.ping_interval;
  o.call_timeout = c.call_timeout;
  o.backoff_max = c.backoff_max;
  o.listener.max_links = c.max_links;
  o.listener.max_pending_handshakes = c.max_pending_handshakes;
  return o;
}

std::uint64_t dir_bytes(const std::string& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec); !ec && it != std::filesystem::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

// What the metrics and the status page show, taken on the loop thread.
daemon::DaemonSnapshot take_snapshot(node::SharedNode& db, node::MeshHost& mesh, const std::string& device,
                                     const std::string& data_dir) {
  daemon::DaemonSnapshot s;
  s.device = device;
  s.replica = db.replica().to_string();
  s.taken_unix_ms = now_wall().ns() / 1'000'000;
  std::vector<node::PeerProgress> progress;
  node::NodeStats ns;
  node::SyncStats ss;
  std::vector<node::CollectionInfo> colls;
  db.read([&](const node::Node& n) {
    progress = n.peer_progress();
    ns = n.stats();
    ss = n.sync_stats();
    colls = n.list_collections();
  });
  const MonoTime now = now_mono();
  for (const auto& p : mesh.peers()) {
    daemon::PeerSnapshot ps;
    ps.device = p.device;
    ps.replica = p.replica;
    ps.remote = p.remote;
    ps.role = p.role;
    ps.tier = p.tier == node::Tier::kHot ? daemon::PeerTier::kHot : daemon::PeerTier::kWarm;
    ps.up = p.up;
    ps.bytes_in = p.bytes.bytes_in;
    ps.bytes_out = p.bytes.bytes_out;
    ps.messages_in = p.bytes.messages_in;
    ps.messages_out = p.bytes.messages_out;
    if (p.last_delta) ps.lag_seconds = (now - *p.last_delta).seconds_f();
    for (const auto& pr : progress) {
      if (pr.peer.to_string() == p.replica) {
        ps.lag_entries = pr.behind;
        if (pr.last_seen.ns() > 0) ps.last_contact_unix_ms = pr.last_seen.ns() / 1'000'000;
      }
    }
    s.peers.push_back(std::move(ps));
  }
  // Peers the engine knows that have no link now: partitioned.
  for (const auto& pr : progress) {
    bool linked = false;
    for (const auto& p : s.peers) linked = linked || p.replica == pr.peer.to_string();
    if (linked) continue;
    daemon::PeerSnapshot ps;
    ps.device = pr.peer.to_string();
    ps.replica = pr.peer.to_string();
    ps.tier = pr.tier == node::Tier::kHot ? daemon::PeerTier::kHot : daemon::PeerTier::kWarm;
    ps.lag_entries = pr.behind;
    if (pr.last_seen.ns() > 0) ps.last_contact_unix_ms = pr.last_seen.ns() / 1'000'000;
    s.peers.push_back(std::move(ps));
  }
  auto ms = mesh.stats();
  s.handshake_failures = ms.handshake_failures;
  s.discovered_devices = ms.discovered;
  s.store_bytes = dir_bytes(data_dir + "/store");
  for (const auto& c : colls) s.collections.push_back(daemon::CollectionSnapshot{c.spec.name, c.live_records, c.index_bytes});
  s.delta_buffer_entries = ns.delta_buffer_entries;
  s.repair_sessions_started = ss.repair_sessions_started;
  s.repair_sessions_completed = ss.repair_sessions_completed;
  s.repair_sessions_abandoned = ss.repair_sessions_abandoned;
  return s;
}

// shoald --backup DEST: asks the daemon running with this configuration (through its local API
// socket) to write a consistent copy of its store while it keeps serving.
int backup_running(const std::string& socket, std::string dest, bool compact) {
  std::error_code ec;
  dest = std::filesystem::absolute(dest, ec).string();
  boost::asio::io_context io;
  transport::KjLoop loop(io);
  try {
    auto link = loop.run_until(transport::connect_local(loop, socket, {}));
    link->serve(capnp::Capability::Client(KJ_EXCEPTION(FAILED, "a backup client serves nothing")));
    auto req = link->peer_bootstrap().castAs<transport::api::Node>().backupRequest();
    req.setDest(dest);
    req.setCompact(compact);
    auto r = loop.run_until(req.send());
    std::cout << "backed up replica " << r.getReplica().cStr() << " to " << dest << "/store (" << r.getCopyBytes()
              << " bytes, store " << r.getSourceBytes() << " bytes)\n";
    return 0;
  } catch (const kj::Exception& e) {
    std::cerr << "shoald: backup through " << socket << ": " << transport::status_of(e).to_string() << "\n";
    return 1;
  }
}

Result<gid_t> group_id(const std::string& name) {
  struct group* g = ::getgrnam(name.c_str());
  if (g == nullptr) return Status(Detail::kUnknownName, "api.socket_group: no group named '" + name + "'");
  return g->gr_gid;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path = "/etc/shoal/shoald.toml";
  bool check = false, print_key = false, compact = false;
  std::string backup_dest;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" || a == "-c") {
      if (i + 1 >= argc) usage("--config needs a file");
      config_path = argv[++i];
    } else if (a == "--check") {
      check = true;
    } else if (a == "--print-device-key") {
      print_key = true;
    } else if (a == "--backup") {
      if (i + 1 >= argc) usage("--backup needs a destination directory");
      backup_dest = argv[++i];
    } else if (a == "--compact") {
      compact = true;
    } else if (a == "--version") {
      std::cout << "shoald " << SHOAL_VERSION_STRING << "\n";
      return 0;
    } else if (a == "--help" || a == "-h") {
      std::cout << "usage: shoald [--config FILE] [--check | --print-device-key] | --version\n";
      return 0;
    } else {
      usage("unknown option '" + a + "'");
    }
  }

  auto config = daemon::load_config(config_path);
  if (!config.ok()) {
    std::cerr << "shoald: " << config.status().message() << "\n";
    return 2;
  }
  if (check) {
    std::cout << "shoald: " << config_path << " is valid\n";
    return 0;
  }
  daemon::DaemonConfig cfg = *config;
  if (!backup_dest.empty()) return backup_running(cfg.socket, backup_dest, compact);

  {
    // The data directory holds the identity key: make it (owner only) before the key.
    std::error_code ec;
    std::filesystem::create_directories(cfg.data_dir, ec);
    if (ec) {
      std::cerr << "shoald: cannot create node.data_dir " << cfg.data_dir << ": " << ec.message() << "\n";
      return 1;
    }
    std::filesystem::permissions(cfg.data_dir, std::filesystem::perms::owner_all, ec);
  }
  auto identity = security::load_or_create_identity(cfg.data_dir);
  if (!identity.ok()) {
    std::cerr << "shoald: " << identity.status().to_string() << "\n";
    return 1;
  }
  if (print_key) {
    std::cout << hex(identity->public_key()) << "\n";
    return 0;
  }

  Logger logger(cfg.log_level);
  std::ifstream f(cfg.certificate, std::ios::binary);
  std::vector<std::uint8_t> cert_bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof()) {
    std::cerr << "shoald: cannot read node.certificate " << cfg.certificate << "\n";
    return 1;
  }
  auto cert = security::decode_certificate(cert_bytes);
  if (!cert.ok()) {
    std::cerr << "shoald: node.certificate " << cfg.certificate << ": " << cert.status().to_string() << "\n";
    return 1;
  }
  if (cert->device_key != identity->public_key()) {
    std::cerr << "shoald: node.certificate " << cfg.certificate << " was issued for device "
              << security::key_label(cert->device_key) << ", but this data directory's identity is "
              << security::key_label(identity->public_key()) << " (enrol this device: shoald --print-device-key)\n";
    return 1;
  }
  // The device trusts the authority that enrolled it (docs/mesh.md, "The trust anchor").
  security::TrustAnchor anchor;
  anchor.mesh_id = cert->mesh_id;
  anchor.authorities = {cert->issuer_key};

  node::RevocationReplica revocations(anchor);
  node::DataDirOptions dopts;
  dopts.node.revocations = &revocations;
  dopts.node.logger = &logger;
  auto dir = node::open_data_dir(cfg.data_dir, std::move(dopts));
  if (!dir.ok()) {
    std::cerr << "shoald: " << dir.status().to_string() << "\n";
    return 1;
  }
  node::SharedNode& db = (*dir)->node();
  if (!(*dir)->new_incarnation_reason().empty()) {
    SHOAL_LOG(&logger, kWarn, "shoald", "new incarnation: ", (*dir)->new_incarnation_reason());
  }

  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  int exit_code = 0;
  {
    transport::KjLoop loop(io);
    node::MeshCredentials creds;
    creds.identity = &*identity;
    creds.certificate = cert_bytes;
    creds.anchor = anchor;
    auto mesh = node::MeshHost::start(loop, db, revocations, std::move(creds), mesh_options(cfg), &logger);
    if (!mesh.ok()) {
      std::cerr << "shoald: mesh: " << mesh.status().to_string() << "\n";
      return 1;
    }

    transport::LocalListenerOptions lo;
    lo.mode = cfg.socket_mode;
    lo.max_clients = cfg.max_clients;
    if (cfg.socket_group) {
      auto g = group_id(*cfg.socket_group);
      if (!g.ok()) {
        std::cerr << "shoald: " << g.status().message() << "\n";
        return 2;
      }
      lo.group = *g;
    }
    daemon::ApiPolicy policy{static_cast<std::uint32_t>(::getuid()), cfg.allow_uids, cfg.allow_gids};
    daemon::MetricsRegistry registry;
    daemon::LocalApiHooks hooks;
    hooks.search_seconds = [&registry](double s) { registry.observe_search(s); };
    hooks.write_seconds = [&registry](double s) { registry.observe_write(s); };
    hooks.backup = [&dir](const std::string& dest, bool compact) { return (*dir)->backup_to(dest, compact); };
    auto api = daemon::LocalApi::start(loop, db, mesh->get(), cfg.socket, lo, policy, hooks, &logger);
    if (!api.ok()) {
      std::cerr << "shoald: api.socket: " << api.status().to_string() << "\n";
      return 1;
    }

    // Metrics and the status page: a snapshot each second, served on metrics.listen.
    const std::string device_label = security::key_label(identity->public_key());
    daemon::DaemonSnapshot last = take_snapshot(db, **mesh, device_label, cfg.data_dir);
    registry.update(last);
    std::unique_ptr<daemon::HttpServer> http;
    auto start_http = [&]() -> Status {
      http.reset();
      if (!cfg.metrics_enabled) return {};
      daemon::HttpServerOptions ho;
      ho.address = cfg.metrics_address;
      ho.port = cfg.metrics_port;
      daemon::HttpContent content;
      content.metrics = [&registry] { return registry.serialize(); };
      content.status_page = [&last] { return daemon::render_status_page(last); };
      content.status_json = [&last] { return daemon::render_status_json(last); };
      auto h = daemon::HttpServer::start(io, ho, std::move(content), &logger);
      if (!h.ok()) return h.status();
      http = std::move(*h);
      SHOAL_LOG(&logger, kInfo, "shoald", "metrics and status page on http://", cfg.metrics_address, ":", http->port(), "/");
      return {};
    };
    if (Status st = start_http(); !st.ok()) {
      std::cerr << "shoald: metrics.listen: " << st.to_string() << "\n";
      return 1;
    }
    boost::asio::steady_timer snap_timer(io);
    std::function<void()> every_second = [&]() {
      snap_timer.expires_after(std::chrono::seconds(1));
      snap_timer.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        last = take_snapshot(db, **mesh, device_label, cfg.data_dir);
        registry.update(last);
        every_second();
      });
    };
    every_second();

    SHOAL_LOG(&logger, kInfo, "shoald", "shoald ", SHOAL_VERSION_STRING, " running: replica ", db.replica().to_string(),
              ", ", security::key_label(identity->public_key()), ", mesh port ", (*mesh)->port(), ", socket ",
              cfg.socket);
    std::cout << "shoald: ready port=" << (*mesh)->port() << " socket=" << cfg.socket
              << " metrics=" << (http ? std::to_string(http->port()) : std::string("off"))
              << " device=" << hex(identity->public_key()) << std::endl;
    ::sd_notify(0, "READY=1");

    boost::asio::signal_set stop_signals(io, SIGTERM, SIGINT);
    stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      SHOAL_LOG(&logger, kInfo, "shoald", "signal ", sig, ": stopping");
      ::sd_notify(0, "STOPPING=1");
      (*api).reset();
      (*mesh)->stop();
      snap_timer.cancel();
      if (http) http->stop();
      guard.reset();
      io.stop();
    });
    boost::asio::signal_set hup(io, SIGHUP);
    std::function<void()> wait_hup = [&]() {
      hup.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        ::sd_notify(0, "RELOADING=1");
        auto next = daemon::load_config(config_path);
        if (!next.ok()) {
          SHOAL_LOG(&logger, kError, "shoald", "reload: the configuration has errors; nothing changed:\n",
                    next.status().message());
        } else {
          auto plan = daemon::plan_reload(cfg, *next);
          if (!plan.need_restart.empty()) {
            SHOAL_LOG(&logger, kWarn, "shoald", "reload: ", plan.status().message());
          }
          logger.set_level(plan.next.log_level);
          for (const auto& p : plan.next.peers) {
            bool known = false;
            for (const auto& q : cfg.peers) known = known || (q.host == p.host && q.port == p.port);
            if (!known) (*mesh)->add_peer(node::MeshPeerAddress{p.host, p.port, p.tier});
          }
          const bool metrics_changed = plan.next.metrics_enabled != cfg.metrics_enabled ||
                                       plan.next.metrics_address != cfg.metrics_address ||
                                       plan.next.metrics_port != cfg.metrics_port;
          cfg = plan.next;
          if (metrics_changed) {
            if (Status st = start_http(); !st.ok()) {
              SHOAL_LOG(&logger, kError, "shoald", "reload: metrics.listen: ", st.to_string());
            }
          }
          std::string applied;
          for (const auto& k : plan.applied) applied += (applied.empty() ? "" : ", ") + k;
          SHOAL_LOG(&logger, kInfo, "shoald", "reloaded ", config_path, applied.empty() ? " (no change)" : ": " + applied);
        }
        ::sd_notify(0, "READY=1");
        wait_hup();
      });
    };
    wait_hup();

    io.run();
    http.reset();
    api->reset();
    mesh->reset();
  }
  dir->reset();
  SHOAL_LOG(&logger, kInfo, "shoald", "stopped");
  return exit_code;
}

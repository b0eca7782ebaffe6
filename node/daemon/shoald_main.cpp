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

#include "common/hex.hpp"
#include "common/log.hpp"
#include "node/daemon/config.hpp"
#include "node/daemon/http_server.hpp"
#include "node/daemon/local_api.hpp"
#include "node/daemon/mesh_runtime.hpp"
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

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "shoald: " << why << "\n"
            << "usage: shoald [--config FILE] [--check | --print-device-key | --backup DEST [--compact]] | --version\n";
  std::exit(2);
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

  // The steps shared with the embedded mesh (node/daemon/mesh_runtime.hpp).
  auto identity = daemon::open_identity(cfg);
  if (!identity.ok()) {
    std::cerr << "shoald: " << identity.status().message() << "\n";
    return 1;
  }
  if (print_key) {
    std::cout << common::to_hex(identity->public_key()) << "\n";
    return 0;
  }

  Logger logger(cfg.log_level);
  auto trust = daemon::load_trust(cfg, *identity);
  if (!trust.ok()) {
    std::cerr << "shoald: " << trust.status().message() << "\n";
    return 1;
  }
  const security::TrustAnchor& anchor = trust->anchor;

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
    auto mesh = daemon::start_mesh_host(loop, db, revocations, *identity, *trust, cfg, &logger);
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
    hooks.backup = [&dir](const std::string& dest, bool compacting) { return (*dir)->backup_to(dest, compacting); };
    static_assert(daemon::kMaxApiReadThreads == daemon::kMaxReadThreads, "api.read_threads' limit is LocalApi's");
    daemon::LocalApiOptions api_options;
    api_options.read_threads = cfg.read_threads;
    auto api = daemon::LocalApi::start(loop, db, mesh->get(), cfg.socket, lo, policy, hooks, api_options, &logger);
    if (!api.ok()) {
      std::cerr << "shoald: api.socket: " << api.status().to_string() << "\n";
      return 1;
    }

    // Metrics and the status page: a snapshot each second, served on metrics.listen.
    const std::string device_label = security::key_label(identity->public_key());
    daemon::DaemonSnapshot last = daemon::take_snapshot(db, **mesh, device_label, cfg.data_dir);
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
        last = daemon::take_snapshot(db, **mesh, device_label, cfg.data_dir);
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
              << " device=" << common::to_hex(identity->public_key()) << std::endl;
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
          auto plan = daemon::apply_reload(cfg, *next, **mesh, logger, "shoald");
          const bool metrics_changed = plan.next.metrics_enabled != cfg.metrics_enabled ||
                                       plan.next.metrics_address != cfg.metrics_address ||
                                       plan.next.metrics_port != cfg.metrics_port;
          cfg = plan.next;
          if (metrics_changed) {
            if (Status st = start_http(); !st.ok()) {
              SHOAL_LOG(&logger, kError, "shoald", "reload: metrics.listen: ", st.to_string());
            }
          }
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

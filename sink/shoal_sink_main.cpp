// sink/shoal_sink_main.cpp: shoal-sink, the cold-tier sink (issue 15; docs/sink.md).
//
//   shoal-sink --config FILE                    run
//   shoal-sink --config FILE --check            parse the configuration, print what is wrong, exit
//   shoal-sink --config FILE --print-device-key create (or read) DATA_DIR/identity.key and print
//                                               its public key, for `shoal mesh enrol --role sink`
//   shoal-sink --config FILE --compact          open the store, compact it once, exit
//   shoal-sink --help                           print this usage, exit 0
//
// One thread runs everything, as in shoald: the Asio io_context with the kj loop on it
// (transport::KjLoop), the listener and its links (transport/link.hpp: Noise XX with
// certificates, the sealed channel, Cap'n Proto RPC), the compaction timer and the signals.
// SIGTERM and SIGINT stop it cleanly (links closed with their close frames, the store closed).
// Exit codes: 0 clean stop; 1 a failure at start (the reason on stderr); 2 a usage or
// configuration error. With NOTIFY_SOCKET set (systemd Type=notify, packaging/shoal-sink.service)
// it reports READY=1 once it listens and STOPPING=1 on a stop signal, as shoald does.
//
// Shared with shoald: the kj loop on Asio and the links (transport/), the data directory's
// identity and the certificate checks (security::open_data_dir_identity,
// load_device_certificate), hex (common/hex.hpp). The sink does not link the node's runtime.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <systemd/sd-daemon.h>

#include <iostream>
#include <memory>
#include <string>

#include "common/hex.hpp"
#include "common/log.hpp"
#include "security/certificate.hpp"
#include "security/key_file.hpp"
#include "sink/lmdb_object_store.hpp"
#include "sink/sink_config.hpp"
#include "sink/sink_server.hpp"
#include "sink/sink_service.hpp"
#include "transport/kj_loop.hpp"
#ifdef SHOAL_SINK_HAS_S3
#include "sink/s3_object_store.hpp"
#endif

using namespace shoal;

namespace {

std::string revocations_path(const sink::SinkConfig& cfg) { return cfg.data_dir + "/revocations.bin"; }

// The sink's certificate: decoded, issued for this identity, with the sink role (the checks and
// messages are shoald's: security::load_device_certificate). The sink trusts the authority that
// enrolled it (docs/mesh.md, "The trust anchor").
Result<sink::SinkCredentials> load_certificate(const sink::SinkConfig& cfg, const security::Identity& identity) {
  SHOAL_ASSIGN_OR_RETURN(auto cert,
                         security::load_device_certificate(cfg.certificate, identity, "sink.certificate", "shoal-sink"));
  if (cert.decoded.role != security::DeviceRole::kSink) {
    return Status(Detail::kWrongRole, "sink.certificate " + cfg.certificate + " has role " +
                                          std::string(security::role_name(cert.decoded.role)) + ", expected sink",
                  "sink.certificate");
  }
  sink::SinkCredentials c;
  c.identity = &identity;
  c.certificate = std::move(cert.bytes);
  c.anchor = std::move(cert.anchor);
  // The revocations members pushed before a restart (Sink.revocations).
  SHOAL_ASSIGN_OR_RETURN(c.revocations, sink::load_revocations(revocations_path(cfg), c.anchor));
  return c;
}

Result<std::unique_ptr<sink::ObjectStore>> open_store(const sink::SinkConfig& cfg) {
  if (cfg.store_kind == "s3") {
#ifdef SHOAL_SINK_HAS_S3
    sink::S3Options o;
    o.endpoint = cfg.s3_endpoint;
    o.region = cfg.s3_region;
    o.bucket = cfg.s3_bucket;
    o.access_key_id = cfg.s3_access_key_id;
    o.secret_access_key = cfg.s3_secret_access_key;
    SHOAL_ASSIGN_OR_RETURN(auto s3, sink::S3ObjectStore::create(std::move(o)));
    if (cfg.s3_create_bucket) SHOAL_RETURN_IF_ERROR(s3->create_bucket());
    return std::unique_ptr<sink::ObjectStore>(std::move(s3));
#else
    return Status(Code::kUnimplemented, "store.kind = \"s3\": this shoal-sink was built without libcurl");
#endif
  }
  sink::LmdbObjectStore::Options o;
  o.map_size_bytes = cfg.lmdb_map_size_mb << 20;
  SHOAL_ASSIGN_OR_RETURN(auto lmdb, sink::LmdbObjectStore::open(cfg.data_dir + "/objects", o));
  return std::unique_ptr<sink::ObjectStore>(std::move(lmdb));
}

constexpr const char* kUsage =
    "usage: shoal-sink --config FILE [--check | --print-device-key | --compact]\n"
    "  --config FILE        the sink's TOML configuration (packaged: /etc/shoal/shoal-sink.toml)\n"
    "  --check              check the configuration, print what is wrong, exit\n"
    "  --print-device-key   create or read DATA_DIR/identity.key and print its public key\n"
    "                       (enrol it: shoal mesh enrol --role sink --device-key KEY ...)\n"
    "  --compact            compact the object store once, exit\n"
    "  --help               print this, exit\n"
    "Without --check, --print-device-key or --compact it serves until SIGTERM or SIGINT.\n";

int usage() {
  std::cerr << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  bool check = false;
  bool print_key = false;
  bool compact_once = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (a == "--check") {
      check = true;
    } else if (a == "--print-device-key") {
      print_key = true;
    } else if (a == "--compact") {
      compact_once = true;
    } else if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else {
      return usage();
    }
  }
  if (config_path.empty()) return usage();
  auto loaded = sink::load_sink_config(config_path);
  if (!loaded.ok()) {
    std::cerr << "shoal-sink: " << loaded.status().message() << "\n";
    return 2;
  }
  const sink::SinkConfig cfg = std::move(*loaded);
  if (check) {
    std::cout << "shoal-sink: " << config_path << " is valid\n";
    return 0;
  }
  Logger logger(cfg.log_level);
  auto identity = security::open_data_dir_identity(cfg.data_dir, "sink.data_dir");
  if (!identity.ok()) {
    std::cerr << "shoal-sink: " << identity.status().message() << "\n";
    return 1;
  }
  if (print_key) {
    std::cout << common::to_hex(identity->public_key()) << "\n";
    return 0;
  }
  auto store = open_store(cfg);
  if (!store.ok()) {
    std::cerr << "shoal-sink: store: " << store.status().to_string() << "\n";
    return 1;
  }
  // The replica's state (D54, D60): derived from the objects, rebuilt when missing or damaged.
  auto state = sink::open_state_env(cfg.data_dir + "/state");
  if (!state.ok()) {
    std::cerr << "shoal-sink: state: " << state.status().to_string() << "\n";
    return 1;
  }
  if (!state->discarded.empty()) {
    SHOAL_LOG(&logger, kWarn, "shoal-sink", "the state env did not open (", state->discarded,
              "); removed, rebuilding it from the objects");
  }
  auto service = sink::SinkService::open(**store, cfg.limits, state->store.get());
  if (!service.ok()) {
    std::cerr << "shoal-sink: opening the sink's objects: " << service.status().to_string() << "\n";
    return 1;
  }
  if (compact_once) {
    auto r = (*service)->compact();
    if (!r.ok()) {
      std::cerr << "shoal-sink: compaction: " << r.status().to_string() << "\n";
      return 1;
    }
    std::cout << "shoal-sink: compacted collections=" << r->collections << " removed=" << r->objects_removed
              << " written=" << r->objects_written << " bytes_before=" << r->bytes_before
              << " bytes_after=" << r->bytes_after << "\n";
    return 0;
  }
  SHOAL_LOG(&logger, kInfo, "shoal-sink", "state: ", (*service)->rebuilt_at_open() ? "rebuilt from the objects" : "opened",
            ", ", (*service)->joined_at_open(), " objects joined at open");
  auto creds = load_certificate(cfg, *identity);
  if (!creds.ok()) {
    std::cerr << "shoal-sink: " << creds.status().message() << "\n";
    return 1;
  }

  boost::asio::io_context io;
  {
    transport::KjLoop loop(io);
    sink::SinkServerOptions so;
    so.listen_address = cfg.listen_address;
    so.listen_port = cfg.listen_port;
    so.revocations_path = revocations_path(cfg);
    auto server = sink::SinkServer::start(loop, **service, std::move(*creds), so, &logger);
    if (!server.ok()) {
      std::cerr << "shoal-sink: sink.listen " << cfg.listen_address << ":" << cfg.listen_port << ": "
                << server.status().to_string() << "\n";
      return 1;
    }
    boost::asio::steady_timer compact_timer(io);
    std::function<void()> arm = [&]() {
      if (cfg.compact_interval_s == 0) return;
      compact_timer.expires_after(std::chrono::seconds(cfg.compact_interval_s));
      compact_timer.async_wait([&](const boost::system::error_code& ec) {
        if (ec) return;
        auto r = (*service)->compact();
        if (!r.ok()) {
          SHOAL_LOG(&logger, kWarn, "shoal-sink", "compaction failed (retried next interval): ", r.status().to_string());
        } else if (r->collections > 0) {
          SHOAL_LOG(&logger, kInfo, "shoal-sink", "compacted ", r->collections, " collections: ", r->objects_removed,
                    " objects removed, ", r->bytes_before, " -> ", r->bytes_after, " bytes");
        }
        arm();
      });
    };
    arm();
    boost::asio::signal_set stop_signals(io, SIGTERM, SIGINT);
    stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      SHOAL_LOG(&logger, kInfo, "shoal-sink", "signal ", sig, ": stopping");
      ::sd_notify(0, "STOPPING=1");
      compact_timer.cancel();
      server->reset();
      io.stop();
    });
    SHOAL_LOG(&logger, kInfo, "shoal-sink", "running: ", security::key_label(identity->public_key()), ", store ",
              (*store)->kind(), ", port ", (*server)->port());
    std::cout << "shoal-sink: ready port=" << (*server)->port() << " store=" << (*store)->kind()
              << " device=" << common::to_hex(identity->public_key()) << std::endl;
    ::sd_notify(0, "READY=1");
    io.run();
    server->reset();
  }
  SHOAL_LOG(&logger, kInfo, "shoal-sink", "stopped");
  return 0;
}

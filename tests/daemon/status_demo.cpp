// tests/daemon/status_demo.cpp: shoal-status-demo, the daemon's metrics and status page serving a
// fixed snapshot (tests/daemon/snapshot_fixture.hpp: three peers, hot up, warm up and behind, hot
// partitioned) on 127.0.0.1, for the headless-Chromium test and for looking at the page by hand.
//
//   shoal-status-demo [port]      (default 0: any free port)
//
// Prints one line "listening http://127.0.0.1:<port>/" once it serves, then runs until SIGTERM
// or SIGINT. Everything runs on one io_context, as in shoald.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "node/daemon/http_server.hpp"
#include "node/daemon/metrics.hpp"
#include "node/daemon/status_page.hpp"
#include "snapshot_fixture.hpp"

int main(int argc, char** argv) {
  using namespace shoal;
  if (argc > 2) {
    std::fprintf(stderr, "usage: shoal-status-demo [port]\n");
    return 2;
  }
  daemon::HttpServerOptions options;
  if (argc == 2) options.port = static_cast<std::uint16_t>(std::strtoul(argv[1], nullptr, 10));
  const daemon::DaemonSnapshot snapshot = daemon_test::three_peer_snapshot();
  daemon::MetricsRegistry metrics;
  metrics.update(snapshot);
  for (double s : {0.00012, 0.0003, 0.0004, 0.002}) metrics.observe_search(s);
  metrics.observe_write(0.0015);

  daemon::HttpContent content;
  content.metrics = [&] { return metrics.serialize(); };
  content.status_page = [&] { return daemon::render_status_page(snapshot); };
  content.status_json = [&] { return daemon::render_status_json(snapshot); };

  Logger logger(LogLevel::kWarn);
  boost::asio::io_context io;
  auto server = daemon::HttpServer::start(io, options, std::move(content), &logger);
  if (!server.ok()) {
    std::fprintf(stderr, "shoal-status-demo: %s\n", server.status().to_string().c_str());
    return 1;
  }
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { (*server)->stop(); });
  std::printf("listening http://127.0.0.1:%u/\n", static_cast<unsigned>((*server)->port()));
  std::fflush(stdout);
  io.run();
  return 0;
}

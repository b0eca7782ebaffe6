// tests/capi/shoal_test_server.cpp: a daemon stand-in for the client-mode C tests. Opens the data
// directory DIR, serves daemon::LocalApi (the Node capability, no mesh) on the Unix socket SOCKET
// to this user, prints "ready" on stdout once the socket listens, and runs until its stdin closes
// (or SIGTERM), then closes the API and the directory cleanly.
// Usage: shoal_test_server DIR SOCKET        Exit: 0 clean stop, 1 cannot start, 2 usage.
#include <signal.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdio>
#include <mutex>
#include <thread>

#include "common/log.hpp"
#include "node/daemon/local_api.hpp"
#include "node/runtime/data_dir.hpp"
#include "transport/kj_loop.hpp"

namespace {
// The loop the stdin watcher may post to; cleared (under the lock) before the loop goes.
std::mutex g_mu;
shoal::transport::KjLoop* g_loop = nullptr;
}  // namespace

int main(int argc, char** argv) {
  using namespace shoal;
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DIR SOCKET\n", argv[0]);
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  Logger logger(LogLevel::kWarn);
  node::DataDirOptions options;
  options.node.logger = &logger;
  auto dir = node::open_data_dir(argv[1], std::move(options));
  if (!dir.ok()) {
    std::fprintf(stderr, "shoal_test_server: %s\n", dir.status().to_string().c_str());
    return 1;
  }
  int rc = 0;
  {
    boost::asio::io_context io;
    auto guard = boost::asio::make_work_guard(io);
    transport::KjLoop loop(io);
    daemon::ApiPolicy policy;
    policy.daemon_uid = static_cast<std::uint32_t>(::getuid());
    transport::LocalListenerOptions listener;
    listener.mode = 0600;
    auto api = daemon::LocalApi::start(loop, (*dir)->node(), nullptr, argv[2], listener, policy, {}, &logger);
    if (!api.ok()) {
      std::fprintf(stderr, "shoal_test_server: %s\n", api.status().to_string().c_str());
      rc = 1;
    } else {
      bool stop = false;
      boost::asio::signal_set signals(io, SIGTERM, SIGINT);
      signals.async_wait([&](const boost::system::error_code& ec, int) {
        if (!ec) stop = true;
      });
      // stdin closing (the test's wrapper exits, or closes it) stops the server.
      {
        std::lock_guard lock(g_mu);
        g_loop = &loop;
      }
      std::thread watcher([&stop] {
        char buf[64];
        while (::read(0, buf, sizeof buf) > 0) {
        }
        std::lock_guard lock(g_mu);
        if (g_loop != nullptr) g_loop->post([&stop] { stop = true; });
      });
      watcher.detach();
      std::printf("ready\n");
      std::fflush(stdout);
      loop.run_while([&] { return stop; }, static_cast<std::size_t>(-1));
      {
        std::lock_guard lock(g_mu);
        g_loop = nullptr;
      }
      signals.cancel();
      api->reset();
    }
  }
  dir->reset();
  return rc;
}

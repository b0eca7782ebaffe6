// transport/tools/shoal_discover.cpp: shoal-discover, mDNS discovery on its own, for tests and
// for looking at a network.
//
// Role: announces the given device id, protocol version, mesh hash and port through
// start_mdns_discovery() and prints one line per event on stdout, flushed at once:
//   started <device_id>
//   found <device_id> v=<version> mesh=<mesh_hash> addr=<ipv4> port=<port>
//   lost <device_id>
//   stopped sent=<n> received=<n> oversize=<n> short=<n> malformed=<n> invalid_txt=<n>
// It stops (sending the goodbye) on SIGINT or SIGTERM, or after --duration-ms. Exit status: 0,
// 1 when discovery could not start, 2 for a usage error.
// Thread rules: one thread, the io_context's.
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "transport/discovery.hpp"

namespace {

constexpr const char* kUsage =
    "usage: shoal-discover --id HEX64 --mesh HEX16 --port N [--version N] [--interface IPV4]\n"
    "                      [--refresh-ms N] [--ttl-s N] [--duration-ms N] [--max-packet-bytes N]\n";

bool parse_u64(std::string_view s, std::uint64_t& out) {
  const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

int main(int argc, char** argv) {
  shoal::transport::Announcement self;
  shoal::transport::DiscoveryOptions options;
  std::uint64_t duration_ms = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "shoal-discover: %s needs a value\n%s", argv[i], kUsage);
      return 2;
    }
    const std::string_view value = argv[++i];
    std::uint64_t n = 0;
    const bool numeric = parse_u64(value, n);
    if (arg == "--id") {
      self.device_id = value;
    } else if (arg == "--mesh") {
      self.mesh_hash = value;
    } else if (arg == "--interface") {
      options.interface_address = value;
    } else if (!numeric) {
      std::fprintf(stderr, "shoal-discover: %s needs a number or is unknown\n%s", argv[i - 1],
                   kUsage);
      return 2;
    } else if (arg == "--port" && n <= 65535) {
      self.port = static_cast<std::uint16_t>(n);
    } else if (arg == "--version" && n <= 0xffffffffu) {
      self.protocol_version = static_cast<std::uint32_t>(n);
    } else if (arg == "--refresh-ms" && n <= 3'600'000) {
      options.refresh = shoal::Duration::millis(static_cast<std::int64_t>(n));
    } else if (arg == "--ttl-s" && n <= 86'400) {
      options.record_ttl = shoal::Duration::seconds(static_cast<std::int64_t>(n));
    } else if (arg == "--duration-ms" && n <= 86'400'000) {
      duration_ms = n;
    } else if (arg == "--max-packet-bytes" && n <= 1'000'000) {
      options.max_packet_bytes = static_cast<std::size_t>(n);
    } else {
      std::fprintf(stderr, "shoal-discover: bad option %s %s\n%s", argv[i - 1], argv[i], kUsage);
      return 2;
    }
  }

  boost::asio::io_context io;
  shoal::transport::DiscoveryCallbacks callbacks;
  callbacks.found = [](const shoal::transport::Sighting& s) {
    std::printf("found %s v=%u mesh=%s addr=%s port=%u\n", s.device_id.c_str(),
                s.protocol_version, s.mesh_hash.c_str(), s.address.c_str(), s.port);
    std::fflush(stdout);
  };
  callbacks.lost = [](const std::string& device_id) {
    std::printf("lost %s\n", device_id.c_str());
    std::fflush(stdout);
  };
  auto started = shoal::transport::start_mdns_discovery(io, options, self, callbacks);
  if (!started.ok()) {
    std::fprintf(stderr, "shoal-discover: %s\n", started.status().to_string().c_str());
    return 1;
  }
  std::unique_ptr<shoal::transport::Discovery> discovery = std::move(started).value();
  std::printf("started %s\n", self.device_id.c_str());
  std::fflush(stdout);

  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  boost::asio::steady_timer deadline(io);
  auto finish = [&]() {
    if (!discovery) return;
    discovery->stop();
    const shoal::transport::DiscoveryStats s = discovery->stats();
    discovery.reset();
    signals.cancel();
    deadline.cancel();
    std::printf("stopped sent=%llu received=%llu oversize=%llu short=%llu malformed=%llu "
                "invalid_txt=%llu\n",
                static_cast<unsigned long long>(s.packets_sent),
                static_cast<unsigned long long>(s.packets_received),
                static_cast<unsigned long long>(s.dropped_oversize),
                static_cast<unsigned long long>(s.dropped_short),
                static_cast<unsigned long long>(s.dropped_malformed),
                static_cast<unsigned long long>(s.invalid_txt));
    std::fflush(stdout);
  };
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (!ec) finish();
  });
  if (duration_ms > 0) {
    deadline.expires_after(std::chrono::milliseconds(duration_ms));
    deadline.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) finish();
    });
  }
  io.run();
  return 0;
}

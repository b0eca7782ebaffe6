// transport/mdns_discovery.cpp: mDNS discovery on one Asio UDP socket and one steady_timer
// (transport/discovery.hpp). libmdnsd (through transport/mdns_glue.h) decides what to send and
// when; this file moves the bytes, runs every received datagram through the packet gate
// (transport/mdns_internal.hpp) before libmdnsd sees it, and keeps the table of peers.
#include <utility>  // before Asio (docs: TOOLCHAIN note on Boost 1.74 with g++ 12)

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address_v4.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "transport/discovery.hpp"
#include "transport/mdns_glue.h"
#include "transport/mdns_internal.hpp"

namespace shoal::transport {

Discovery::~Discovery() = default;

namespace {

namespace asio = boost::asio;
using asio::ip::udp;

constexpr std::uint16_t kMdnsPort = 5353;
constexpr std::uint32_t kGroupIpv4 = 0xe00000fbu;  // 224.0.0.251
// What we send stays below a 1500-byte Ethernet MTU (our four records take about 300 bytes).
constexpr int kSendFrameBytes = 1400;
// A question for the service makes us announce again at once, at most once a second or four
// times a refresh, whichever is rarer: every device asks once a refresh, so the answers stay
// linear in the number of devices.
constexpr Duration kMinAnnounceGap = Duration::seconds(1);
// libmdnsd's sleep can say "now" for a packet it is not ready to build yet: wait at least this.
constexpr Duration kMinWake = Duration::millis(5);
// Packets sent per pump; libmdnsd rarely has more than two ready.
constexpr int kMaxPacketsPerPump = 32;

constexpr Duration kMinRefresh = Duration::millis(100);
constexpr Duration kMaxRefresh = Duration::seconds(3600);
constexpr std::size_t kMinPacketBytes = 512;
constexpr std::size_t kMaxPacketBytes = 9000;
constexpr std::size_t kMaxPeers = 65536;

struct GlueDeleter {
  void operator()(shoal_mdns* m) const noexcept { shoal_mdns_free(m); }
};
using Glue = std::unique_ptr<shoal_mdns, GlueDeleter>;

Status out_of_range(std::string what) { return Status(Detail::kOutOfRange, std::move(what)); }

Status check(const DiscoveryOptions& o, const Announcement& a) {
  if (!mdns::is_lower_hex(a.device_id, mdns::kDeviceIdHexDigits)) {
    return Status(Detail::kMalformed, "device_id of " + std::to_string(a.device_id.size()) +
                                          " characters, not 64 lowercase hex digits");
  }
  if (!mdns::is_lower_hex(a.mesh_hash, mdns::kMeshHashHexDigits)) {
    return Status(Detail::kMalformed, "mesh_hash of " + std::to_string(a.mesh_hash.size()) +
                                          " characters, not 16 lowercase hex digits");
  }
  if (a.port == 0) return out_of_range("announced port 0");
  if (o.refresh < kMinRefresh || o.refresh > kMaxRefresh) {
    return out_of_range("refresh of " + std::to_string(o.refresh.ms()) +
                        " ms outside 100 ms to 3600 s");
  }
  const Duration max_ttl = Duration::seconds(mdns::PeerTable::kMaxTtlSeconds);
  if (o.record_ttl < o.refresh * 2 || o.record_ttl < Duration::seconds(1) ||
      o.record_ttl > max_ttl) {
    return out_of_range("record_ttl of " + std::to_string(o.record_ttl.ms()) +
                        " ms outside 2 x refresh (" + std::to_string(o.refresh.ms() * 2) +
                        " ms), at least 1 s, to 4500 s");
  }
  if (o.max_packet_bytes < kMinPacketBytes || o.max_packet_bytes > kMaxPacketBytes) {
    return out_of_range("max_packet_bytes " + std::to_string(o.max_packet_bytes) +
                        " outside 512 to 9000");
  }
  if (o.max_peers == 0 || o.max_peers > kMaxPeers) {
    return out_of_range("max_peers " + std::to_string(o.max_peers) + " outside 1 to 65536");
  }
  return ok_status();
}

std::chrono::nanoseconds to_chrono(Duration d) { return std::chrono::nanoseconds(d.ns()); }

// The socket, the timer, libmdnsd and the peer table. Pending Asio handlers hold it weakly (and
// the receive buffer strongly), so destroying the owning MdnsDiscovery frees it at once; a
// handler that runs later finds it gone. While a handler runs it holds a strong reference, so a
// callback may destroy the MdnsDiscovery.
class Engine : public std::enable_shared_from_this<Engine> {
 public:
  Engine(asio::io_context& io, DiscoveryOptions options, Announcement self,
         DiscoveryCallbacks callbacks, Glue glue)
      : socket_(io),
        timer_(io),
        options_(std::move(options)),
        self_(std::move(self)),
        callbacks_(std::move(callbacks)),
        glue_(std::move(glue)),
        peers_(self_.device_id, options_.max_peers),
        rx_(std::make_shared<std::vector<std::uint8_t>>(options_.max_packet_bytes + 1)) {
    limits_.max_packet_bytes = options_.max_packet_bytes;
  }
  ~Engine() { stop(); }

  Status start(asio::ip::address_v4 iface) {
    const std::string service = std::string(mdns::kServiceName) + ".";
    const std::string instance = mdns::instance_name(self_.device_id) + ".";
    const std::string host = mdns::host_name(self_.device_id) + ".";
    const std::vector<std::uint8_t> txt =
        mdns::encode_txt({self_.device_id, self_.protocol_version, self_.mesh_hash});
    const Duration ttl = options_.record_ttl;
    const auto ttl_s = static_cast<std::uint32_t>((ttl.ns() + 999'999'999) / 1'000'000'000);
    const std::uint32_t a_be = iface.is_unspecified() ? 0 : htonl(iface.to_uint());
    if (shoal_mdns_publish(glue_.get(), service.c_str(), instance.c_str(), host.c_str(),
                           self_.port, txt.data(), txt.size(), a_be, ttl_s) != 0) {
      return Status(Code::kInternal, "libmdnsd refused our records", instance);
    }

    const asio::ip::address_v4 group(kGroupIpv4);
    boost::system::error_code ec;
    auto fail = [&ec](std::string step) {
      return Status(Code::kIo, step + ": " + ec.message(), "224.0.0.251:5353");
    };
    if (socket_.open(udp::v4(), ec); ec) return fail("open a UDP socket");
    if (socket_.set_option(udp::socket::reuse_address(true), ec); ec) {
      return fail("set SO_REUSEADDR");
    }
    if (socket_.bind(udp::endpoint(asio::ip::address_v4::any(), kMdnsPort), ec); ec) {
      return fail("bind port 5353");
    }
    if (socket_.set_option(asio::ip::multicast::join_group(group, iface), ec); ec) {
      return fail("join 224.0.0.251 on " + iface.to_string());
    }
    if (!iface.is_unspecified()) {
      if (socket_.set_option(asio::ip::multicast::outbound_interface(iface), ec); ec) {
        return fail("send from " + iface.to_string());
      }
    }
    // TTL 255 (RFC 6762, section 11); loopback on, so processes on one host see each other.
    if (socket_.set_option(asio::ip::multicast::hops(255), ec); ec) return fail("set TTL 255");
    if (socket_.set_option(asio::ip::multicast::enable_loopback(true), ec); ec) {
      return fail("enable multicast loopback");
    }
    // A full send buffer drops a packet instead of blocking the loop (mDNS repeats itself).
    if (socket_.non_blocking(true, ec); ec) return fail("make the socket non-blocking");

    const MonoTime now = now_mono();
    last_announce_ = now;
    // Ask now, and once more after a second (or the refresh, if shorter) in case it was lost.
    next_refresh_ = now + std::min(options_.refresh, Duration::seconds(1));
    running_ = true;
    receive();
    send_query();
    pump();
    arm_timer();
    return ok_status();
  }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    if (running_) {
      shoal_mdns_shutdown(glue_.get());
      pump();  // the goodbye
    }
    boost::system::error_code ec;
    timer_.cancel();
    socket_.close(ec);
  }

  DiscoveryStats stats() const {
    DiscoveryStats s = stats_;
    s.invalid_txt = peers_.invalid_txt();
    s.peers_over_limit = peers_.over_limit();
    return s;
  }

 private:
  void receive() {
    std::weak_ptr<Engine> weak = weak_from_this();
    auto buffer = rx_;
    socket_.async_receive_from(
        asio::buffer(*buffer), sender_,
        [weak, buffer](const boost::system::error_code& ec, std::size_t n) {
          if (auto self = weak.lock()) self->on_receive(ec, n);
        });
  }

  void on_receive(const boost::system::error_code& ec, std::size_t n) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    if (ec) {
      ++stats_.socket_errors;
    } else {
      ++stats_.packets_received;
      const std::uint32_t source =
          sender_.address().is_v4() ? sender_.address().to_v4().to_uint() : 0;
      handle(std::span<const std::uint8_t>(rx_->data(), n), source);
      if (stopped_) return;  // a callback stopped us
      pump();
      arm_timer();
    }
    receive();
  }

  void handle(std::span<const std::uint8_t> datagram, std::uint32_t source) {
    // The bound comes first: nothing of an oversized or short datagram is read.
    if (datagram.size() > options_.max_packet_bytes) {
      ++stats_.dropped_oversize;
      return;
    }
    if (datagram.size() < mdns::kHeaderBytes) {
      ++stats_.dropped_short;
      return;
    }
    Result<mdns::Packet> packet = mdns::canonicalize(datagram, limits_);
    if (!packet.ok()) {
      ++stats_.dropped_malformed;
      return;
    }
    const MonoTime now = now_mono();
    if (packet->asks_for_service() && now - last_announce_ >= std::max(kMinAnnounceGap, options_.refresh / 4)) {
      // A browser wants to hear us: libmdnsd answers its PTR question, and we send the SRV, TXT
      // and A with it so that it need not ask again.
      shoal_mdns_announce(glue_.get());
      last_announce_ = now;
    }
    if (!packet->is_response) {
      // Questions are libmdnsd's to answer; responses are ours to read (mdns_glue.h says why).
      (void)shoal_mdns_input(glue_.get(), packet->canonical.data(), packet->canonical.size(),
                             htonl(source));
      return;
    }
    std::vector<mdns::PeerEvent> events;
    peers_.apply(*packet, source, now, events);
    deliver(events);
  }

  void on_timer(const boost::system::error_code& ec) {
    if (stopped_ || ec == asio::error::operation_aborted) return;
    const MonoTime now = now_mono();
    if (now >= next_refresh_) {
      shoal_mdns_announce(glue_.get());
      send_query();
      last_announce_ = now;
      next_refresh_ = now + options_.refresh;
    }
    std::vector<mdns::PeerEvent> events;
    peers_.expire(now, events);
    deliver(events);
    if (stopped_) return;
    pump();
    arm_timer();
  }

  void deliver(const std::vector<mdns::PeerEvent>& events) {
    for (const mdns::PeerEvent& e : events) {
      if (stopped_) return;
      if (e.found) {
        if (callbacks_.found) callbacks_.found(e.sighting);
      } else if (callbacks_.lost) {
        callbacks_.lost(e.sighting.device_id);
      }
    }
  }

  // Sends whatever libmdnsd has ready, to the group.
  void pump() {
    for (int i = 0; i < kMaxPacketsPerPump; ++i) {
      const int n = shoal_mdns_output(glue_.get(), tx_.data(), tx_.size());
      if (n == 0) break;
      if (n > 0) send(static_cast<std::size_t>(n));
    }
  }

  // Asks every Shoal device on the link to answer (they announce all their records).
  void send_query() {
    const int n = shoal_mdns_query_packet(glue_.get(), tx_.data(), tx_.size());
    if (n > 0) send(static_cast<std::size_t>(n));
  }

  // Sends the first n bytes of tx_ to the group, without blocking.
  void send(std::size_t n) {
    const udp::endpoint group(asio::ip::address_v4(kGroupIpv4), kMdnsPort);
    boost::system::error_code ec;
    socket_.send_to(asio::buffer(tx_.data(), n), group, 0, ec);
    if (ec) {
      ++stats_.socket_errors;
    } else {
      ++stats_.packets_sent;
    }
  }

  // One timer for everything: libmdnsd's next packet, our refresh, the next peer expiry.
  void arm_timer() {
    const MonoTime now = now_mono();
    const Duration mdnsd_sleep =
        std::max(Duration::millis(shoal_mdns_sleep_ms(glue_.get())), kMinWake);
    MonoTime wake = std::min(next_refresh_, now + mdnsd_sleep);
    if (auto expiry = peers_.next_deadline()) wake = std::min(wake, *expiry);
    timer_.expires_after(to_chrono(std::max(wake - now, Duration::zero())));
    std::weak_ptr<Engine> weak = weak_from_this();
    timer_.async_wait([weak](const boost::system::error_code& ec) {
      if (auto self = weak.lock()) self->on_timer(ec);
    });
  }

  udp::socket socket_;
  asio::steady_timer timer_;
  DiscoveryOptions options_;
  Announcement self_;
  DiscoveryCallbacks callbacks_;
  Glue glue_;
  mdns::PeerTable peers_;
  mdns::PacketLimits limits_;
  // Shared with the pending receive: Asio requires the buffer to outlive the operation.
  std::shared_ptr<std::vector<std::uint8_t>> rx_;
  std::array<std::uint8_t, kMaxPacketBytes> tx_{};
  udp::endpoint sender_;
  MonoTime last_announce_;
  MonoTime next_refresh_;
  DiscoveryStats stats_;
  bool running_ = false;  // start() succeeded: a goodbye is owed
  bool stopped_ = false;
};

class MdnsDiscovery final : public Discovery {
 public:
  explicit MdnsDiscovery(std::shared_ptr<Engine> engine) : engine_(std::move(engine)) {}
  ~MdnsDiscovery() override { engine_->stop(); }
  void stop() override { engine_->stop(); }
  DiscoveryStats stats() const override { return engine_->stats(); }

 private:
  // The only strong owner outside a running handler (see Engine).
  std::shared_ptr<Engine> engine_;
};

}  // namespace

Result<std::unique_ptr<Discovery>> start_mdns_discovery(asio::io_context& io,
                                                        DiscoveryOptions options,
                                                        Announcement self,
                                                        DiscoveryCallbacks callbacks) {
  SHOAL_RETURN_IF_ERROR(check(options, self));
  boost::system::error_code ec;
  const asio::ip::address_v4 iface = asio::ip::make_address_v4(options.interface_address, ec);
  if (ec) {
    return Status(Detail::kMalformed, "interface_address \"" +
                                          options.interface_address.substr(0, 64) +
                                          "\" is not an IPv4 address");
  }
  Glue glue(shoal_mdns_new(kSendFrameBytes));
  if (!glue) return Status(Code::kOverloaded, "out of memory for libmdnsd");
  auto engine = std::make_shared<Engine>(io, std::move(options), std::move(self),
                                         std::move(callbacks), std::move(glue));
  SHOAL_RETURN_IF_ERROR(engine->start(iface));
  return std::unique_ptr<Discovery>(std::make_unique<MdnsDiscovery>(std::move(engine)));
}

}  // namespace shoal::transport

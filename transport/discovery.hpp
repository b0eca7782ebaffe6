// transport/discovery.hpp: finding other Shoal devices on the local network by mDNS.
//
// Role: announces this device as an instance of `_shoal._tcp.local` (PTR, SRV, TXT and, when an
// interface address is given, A records; TXT: device id, protocol version, mesh id hash) and
// browses for the others, reporting each one found and lost. What it reports is an address hint
// and nothing more: anyone on the link can announce anything, so trust comes only from the
// handshake that follows (security/). The wire format, timings and limits are in
// docs/protocol.md, "Discovery"; the choices in docs/decisions.md, D31.
//
// Implementation: libmdnsd 0.12 (through one C file, transport/mdns_glue.c) drives one Asio UDP
// socket and one steady_timer on the caller's io_context; there are no threads of our own.
// Every received datagram passes a bounded parser (transport/mdns_internal.hpp) before libmdnsd
// sees it.
//
// Thread rules: start_mdns_discovery(), stop() and the destructor must be called on the thread
// that runs the io_context (or before it runs). Callbacks run on that thread, from inside the
// io_context's handlers, never re-entrantly from start or stop; a callback may call stop() and
// may destroy the Discovery.
// Ownership: the io_context must outlive the Discovery. Callbacks are copied in.
// This header does not include Boost.Asio.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.hpp"
#include "common/time.hpp"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace shoal::transport {

// What this device announces.
struct Announcement {
  // The device's public key, 32 bytes as 64 lowercase hex digits.
  std::string device_id;
  std::uint32_t protocol_version = 0;
  // The first 8 bytes of BLAKE2b of the mesh id as 16 lowercase hex digits (the caller computes
  // it): lets a device skip peers of other meshes before dialing. Not a secret.
  std::string mesh_hash;
  // The TCP port this device accepts peers on (non-zero).
  std::uint16_t port = 0;
};

// Another device, as announced. Only a hint: dial it and let the handshake decide.
struct Sighting {
  std::string device_id;  // 64 lowercase hex digits (checked)
  std::uint32_t protocol_version = 0;
  std::string mesh_hash;  // 16 lowercase hex digits (checked)
  std::string address;    // IPv4, dotted
  std::uint16_t port = 0;
  friend bool operator==(const Sighting&, const Sighting&) = default;
};

struct DiscoveryOptions {
  // The IPv4 address of the interface to join 224.0.0.251 on and send from, and the address of
  // the A record. "0.0.0.0": the kernel's choice of interface, and no A record (peers then use
  // the source address of our packets).
  std::string interface_address = "0.0.0.0";
  // How often we announce our records again and ask for others' (100 ms to 1 hour).
  Duration refresh = Duration::seconds(20);
  // The TTL of our records, whole seconds: how long after our last announcement the others
  // report us lost if no goodbye came. At least 2 x refresh and 1 s, at most 4500 s.
  Duration record_ttl = Duration::seconds(75);
  // Received datagrams above this are dropped before any parsing (512 to 9000).
  std::size_t max_packet_bytes = 9000;
  // Peers tracked at once (1 to 65536); new ones beyond are ignored until some are lost.
  std::size_t max_peers = 256;
};

struct DiscoveryCallbacks {
  // A peer announced itself, or changed what it announces (called again with the new values).
  std::function<void(const Sighting&)> found;
  // A peer said goodbye or its records expired.
  std::function<void(const std::string& device_id)> lost;
};

// Counters, for the status page and tests.
struct DiscoveryStats {
  std::uint64_t packets_received = 0;
  std::uint64_t packets_sent = 0;
  std::uint64_t dropped_oversize = 0;   // above max_packet_bytes
  std::uint64_t dropped_short = 0;      // below the 12-byte header
  std::uint64_t dropped_malformed = 0;  // refused by the packet gate (any other reason)
  std::uint64_t invalid_txt = 0;        // a TXT record that failed validation
  std::uint64_t peers_over_limit = 0;   // instances ignored because max_peers were tracked
  std::uint64_t socket_errors = 0;      // failed receives and sends
};

class Discovery {
 public:
  virtual ~Discovery();
  Discovery() = default;
  Discovery(const Discovery&) = delete;
  Discovery& operator=(const Discovery&) = delete;

  // Sends the goodbye (our records with TTL 0), then closes the socket and the timer. No
  // callback runs after it returns. Idempotent; the destructor calls it.
  virtual void stop() = 0;
  virtual DiscoveryStats stats() const = 0;
};

// Starts announcing `self` and browsing on `io`. Statuses:
//   kMalformed (invalid argument)   device_id or mesh_hash not lowercase hex of the right length,
//                                   interface_address not an IPv4 address;
//   kOutOfRange (invalid argument)  port 0, refresh, record_ttl, max_packet_bytes or max_peers
//                                   outside the ranges above (the message names the value);
//   kIo                             the socket could not be opened, bound to port 5353, or
//                                   joined to 224.0.0.251 (the message carries the OS error);
//   kOverloaded                     memory ran out.
// The returned object owns the socket and the timer; destroying it stops discovery.
[[nodiscard]] Result<std::unique_ptr<Discovery>> start_mdns_discovery(
    boost::asio::io_context& io, DiscoveryOptions options, Announcement self,
    DiscoveryCallbacks callbacks);

}  // namespace shoal::transport

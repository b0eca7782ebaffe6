// transport/link.hpp: an authenticated, encrypted Cap'n Proto RPC connection to one peer.
//
// Role: the connection stack of docs/architecture.md ("Transport"):
//   TCP (Boost.Asio) -> Shoal's Noise XX handshake (security/handshake.hpp, driven here with a
//   deadline; nothing else is read before it completes) -> the sealed channel
//   (security/channel.hpp) -> a capnp::MessageStream that seals one Cap'n Proto message per frame
//   (length checked before any allocation, ReaderOptions limits on every message) ->
//   TwoPartyVatNetwork -> an RpcSystem whose bootstrap capability the owner builds for the peer's
//   verified certificate (Link::serve), with a flow limit.
// A Link is what a completed handshake gives: the peer's certificate, the peer's bootstrap
// capability and a disconnect promise. dial() makes one; a Listener accepts them, bounding the
// connections whose handshake has not finished (the rest are closed at once and counted).
// transport/ knows no node: what the capabilities do is the caller's (node/mesh/).
// Ownership: a Link and a Listener must be destroyed before their KjLoop; buffers that Asio may
// still write into are owned by shared state that outlives a cancelled kj promise.
// Thread rules: the KjLoop's thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <capnp/capability.h>
#include <kj/async.h>

#include "common/status.hpp"
#include "common/time.hpp"
#include "security/certificate.hpp"
#include "security/channel.hpp"
#include "security/identity.hpp"
#include "security/mesh.hpp"
#include "security/revocation.hpp"
#include "transport/kj_loop.hpp"

namespace shoal::transport {

struct LinkOptions {
  // A handshake that has not completed by then is closed (kUnavailable, "handshake timeout").
  Duration handshake_timeout = Duration::seconds(5);
  // The largest Cap'n Proto message one frame may carry: the sync codec's 16 MiB message limit
  // plus room for the RPC call header. Checked on each frame's length before its body is read.
  std::size_t max_message_bytes = (std::size_t{16} << 20) + (std::size_t{64} << 10);
  // capnp ReaderOptions for every received message (RPC framing nests deeper than a bare
  // Envelope, hence 64; the traversal limit is twice the largest message).
  std::uint64_t traversal_limit_words = ((std::uint64_t{16} << 20) + (std::uint64_t{64} << 10)) / 4;
  int nesting_limit = 64;
  // Bytes read from the socket per read.
  std::size_t read_chunk_bytes = std::size_t{64} << 10;
  // RpcSystem::setFlowLimit: bytes of calls the peer may have outstanding toward us; further
  // calls are not read until earlier ones return. 0 leaves capnp's default (unlimited).
  std::size_t flow_limit_bytes = std::size_t{8} << 20;
  // Rekey budgets of the sealed channel.
  std::uint64_t rekey_after_messages = std::uint64_t{1} << 16;
  Duration rekey_after = Duration::seconds(600);
};

// What this device proves and what it trusts. The pointers must outlive every Link and Listener
// made with it; `revocations` and `trusted_now` are called at each handshake (so a revocation
// learned later refuses the next handshake of that device).
struct LinkSecurity {
  const security::Identity* identity = nullptr;
  std::vector<std::uint8_t> certificate;  // this device's encoded certificate
  const security::TrustAnchor* anchor = nullptr;
  std::function<const security::RevocationSet&()> revocations;
  // security::TrustedClock::now(local wall time).
  std::function<WallTime()> trusted_now;
  security::RoleSet accepted_roles = security::RoleSet::all();
};

struct LinkStats {
  std::uint64_t bytes_in = 0;       // socket bytes, handshake included
  std::uint64_t bytes_out = 0;
  std::uint64_t messages_in = 0;    // Cap'n Proto messages (frames) opened
  std::uint64_t messages_out = 0;
};

class Link {
 public:
  virtual ~Link() = default;
  // The peer's verified certificate.
  virtual const security::Certificate& peer() const noexcept = 0;
  // True when this side dialed (the Noise initiator).
  virtual bool dialed() const noexcept = 0;
  // "address:port" of the other end.
  virtual const std::string& remote() const noexcept = 0;
  // The capability the peer's RpcSystem bootstraps to us (a promise-pipelined client).
  virtual capnp::Capability::Client peer_bootstrap() = 0;
  // Sets the capability the peer bootstraps to: built by the owner for this link's certificate.
  // Calls that arrive before it is set wait for it; a link dropped without one refuses them.
  virtual void serve(capnp::Capability::Client bootstrap) = 0;
  // Resolves when the connection ends (either side, any reason).
  virtual kj::Promise<void> on_disconnect() = 0;
  // Ends the connection now: the close frame is sent if the socket still takes it, then the
  // socket is closed. Pending calls fail with "disconnected".
  virtual void close() = 0;
  virtual LinkStats stats() const noexcept = 0;
};

// Connects to host:port (a name or an address), runs the handshake as initiator and starts RPC.
// The promise fails (kj exception whose description starts with the Status text) on a refused
// connection, a failed handshake (the security detail named) or the handshake timeout.
kj::Promise<kj::Own<Link>> dial(KjLoop& loop, std::string host, std::uint16_t port, const LinkSecurity& security,
                                LinkOptions options);

struct ListenerLimits {
  // Connections whose handshake is still running; one more is closed unread (refused_pending).
  std::size_t max_pending_handshakes = 64;
  // Authenticated links alive at once (the caller's count, see Listener::set_links_alive).
  std::size_t max_links = 256;
};

struct ListenerStats {
  std::uint64_t accepted = 0;            // TCP connections accepted
  std::uint64_t handshakes_ok = 0;
  std::uint64_t handshakes_failed = 0;   // bad bytes, a certificate refused, a timeout
  std::uint64_t refused_pending = 0;     // closed because max_pending_handshakes were running
  std::uint64_t refused_links = 0;       // closed after the handshake: max_links reached
  std::size_t pending = 0;               // handshakes running now
};

class Listener {
 public:
  virtual ~Listener() = default;
  // The bound port (useful when listening on port 0).
  virtual std::uint16_t port() const noexcept = 0;
  virtual ListenerStats stats() const noexcept = 0;
  // The owner reports how many links are alive, for max_links.
  virtual void set_links_alive(std::size_t n) noexcept = 0;
};

// Listens on address:port (IPv4 or IPv6 literal; port 0 picks one). Each authenticated
// connection is handed to `on_link`; each refused one is reported to `on_refused` (may be empty)
// with the reason and the remote address. Statuses: kIo (bind or listen failed, the OS reason
// named), kInvalidArgument (a bad address).
[[nodiscard]] Result<std::unique_ptr<Listener>> listen(
    KjLoop& loop, const std::string& address, std::uint16_t port, const LinkSecurity& security, LinkOptions options,
    ListenerLimits limits, std::function<void(kj::Own<Link>)> on_link,
    std::function<void(const Status&, const std::string& remote)> on_refused);

// The Status a kj exception from this layer stands for (its description starts with the
// Status text when this layer made it; anything else is kUnavailable).
Status status_of(const kj::Exception& e);
// The kj exception that carries `st` across RPC (status_of reads it back at the caller).
kj::Exception exception_of(const Status& st);

}  // namespace shoal::transport

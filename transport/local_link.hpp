// transport/local_link.hpp: Cap'n Proto RPC over a Unix domain socket, for apps on the same
// device (the daemon's local API, docs/mesh.md "Local links").
//
// Role: the local half of the connection stack: a Unix stream socket -> plain length-prefixed
// frames (`[u32 big-endian length][Cap'n Proto message]`, the length checked against
// LinkOptions::max_message_bytes before the body is kept; no encryption: the kernel is the
// boundary, and the socket file's mode and group plus the peer's credentials are the access
// control) -> TwoPartyVatNetwork -> RpcSystem, exactly as a peer link above the channel. The
// listener reports each client's SO_PEERCRED credentials; the owner decides (a policy) and serves
// the capability it allows.
// Ownership and thread rules: as transport/link.hpp (the KjLoop's thread only).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <capnp/capability.h>
#include <kj/async.h>

#include "common/status.hpp"
#include "transport/kj_loop.hpp"
#include "transport/link.hpp"

namespace shoal::transport {

// The connecting process, as the kernel reports it (SO_PEERCRED) at connect time.
struct PeerCredentials {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int32_t pid = 0;
};

class LocalLink {
 public:
  virtual ~LocalLink() = default;
  // The other process (on the client side: the server's).
  virtual const PeerCredentials& credentials() const noexcept = 0;
  virtual capnp::Capability::Client peer_bootstrap() = 0;
  virtual void serve(capnp::Capability::Client bootstrap) = 0;
  virtual kj::Promise<void> on_disconnect() = 0;
  virtual void close() = 0;
  virtual LinkStats stats() const noexcept = 0;
  // While on, capnp-rpc's Finish messages (which tell the other side it may drop an answer) are
  // kept back when nothing else waits to be written, and go out in front of the next message, in
  // its send; turning it off sends what is held at once, and close() sends it with the close.
  // Turning it on keeps what is held. For
  // a client whose next call follows soon: the Finish for an answer then costs no send of its own
  // and no wake-up of the daemon, at the price of the daemon keeping that answer until the next
  // call (D63). No other message is ever held.
  virtual void hold_finishes(bool hold) = 0;
};

struct LocalListenerOptions {
  // The socket file's mode (chmod after bind) and group (chown; nullopt keeps the process's).
  std::uint32_t mode = 0660;
  std::optional<gid_t> group;
  // Clients connected at once; one more is closed at once (refused_links).
  std::size_t max_clients = 1024;
};

class LocalListener {
 public:
  virtual ~LocalListener() = default;  // closes the socket and removes the socket file
  virtual const std::string& path() const noexcept = 0;
  virtual ListenerStats stats() const noexcept = 0;
  // The owner reports how many clients are alive, for max_clients.
  virtual void set_clients_alive(std::size_t n) noexcept = 0;
};

// Binds `path` (a stale socket file left by a dead process is replaced; any other file there is
// an error), sets its mode and group, and hands each client to `on_client`. Statuses: kIo (bind,
// listen, chmod or chown failed; the OS reason and the path named), kAlreadyExists (a live
// daemon already listens there), kInvalidArgument (a path too long for sockaddr_un).
[[nodiscard]] Result<std::unique_ptr<LocalListener>> listen_local(
    KjLoop& loop, const std::string& path, LinkOptions options, LocalListenerOptions local,
    std::function<void(kj::Own<LocalLink>)> on_client,
    std::function<void(const Status&)> on_refused);

// A client the listener accepted, not yet bound to any loop: its socket descriptor (owned; the
// destructor closes it unless adopt_local took it) and its credentials. Movable between threads,
// so that an owner can serve each client on a loop of its own choosing (the daemon's local API
// gives each client to one of its API threads, D41).
class LocalSocket {
 public:
  LocalSocket() = default;
  LocalSocket(int fd, PeerCredentials creds) noexcept : fd_(fd), creds_(creds) {}
  ~LocalSocket();
  LocalSocket(LocalSocket&& o) noexcept : fd_(o.fd_), creds_(o.creds_) { o.fd_ = -1; }
  LocalSocket& operator=(LocalSocket&& o) noexcept;
  LocalSocket(const LocalSocket&) = delete;
  LocalSocket& operator=(const LocalSocket&) = delete;

  const PeerCredentials& credentials() const noexcept { return creds_; }
  bool valid() const noexcept { return fd_ >= 0; }
  // Gives up the descriptor (the caller closes it); -1 when there is none.
  int release() noexcept {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_ = -1;
  PeerCredentials creds_;
};

// As listen_local, but each client is handed over as a LocalSocket (on `loop`'s thread), for the
// owner to serve on any loop with adopt_local. Same statuses.
[[nodiscard]] Result<std::unique_ptr<LocalListener>> listen_local_sockets(
    KjLoop& loop, const std::string& path, LocalListenerOptions local, std::function<void(LocalSocket)> on_client,
    std::function<void(const Status&)> on_refused);

// The server side of a local link on `socket`, served by `loop` (call on that loop's thread). The
// link owns the descriptor from here on. An invalid socket gives a link that is already closed.
kj::Own<LocalLink> adopt_local(KjLoop& loop, LocalSocket socket, LinkOptions options);

// Connects to the daemon at `path`. Fails (kj exception carrying the Status, see status_of) when
// nothing listens there.
kj::Promise<kj::Own<LocalLink>> connect_local(KjLoop& loop, const std::string& path, LinkOptions options);

}  // namespace shoal::transport

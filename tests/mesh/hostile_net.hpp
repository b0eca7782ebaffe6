// tests/mesh/hostile_net.hpp: helpers for the hostile-input and cancellation mesh tests: a raw
// loopback TCP client that writes whatever the test wants (no handshake of its own) and notices,
// without blocking the loop, when the host closes it; the process RSS; bare transport security
// for one device; and a raise of RLIMIT_NOFILE.
// Thread rules: the test thread only (it also runs the KjLoop).
#pragma once

#include <arpa/inet.h>
#include <cerrno>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "mesh_fixture.hpp"
#include "transport/link.hpp"

namespace shoal::mesh_test {

// A client socket on 127.0.0.1:port. connect() is blocking (loopback: the kernel completes it
// into the listener's backlog without the host running), everything after it non-blocking.
class RawConn {
 public:
  explicit RawConn(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      ::close(fd_);
      fd_ = -1;
      return;
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }
  ~RawConn() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConn(const RawConn&) = delete;
  RawConn& operator=(const RawConn&) = delete;

  bool ok() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Writes what the socket takes now; returns the bytes written (a closed peer may refuse some).
  std::size_t send(const std::vector<std::uint8_t>& bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    return done;
  }

  // Reads what has arrived (kept in received()); true once the other end closed (EOF or reset).
  bool closed_by_peer() {
    if (closed_) return true;
    std::uint8_t buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        received_.insert(received_.end(), buf, buf + n);
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) closed_ = true;
      return closed_;
    }
  }
  const std::vector<std::uint8_t>& received() const { return received_; }
  // The bytes received so far, handed out once.
  std::vector<std::uint8_t> take_received() { return std::move(received_); }

 private:
  int fd_ = -1;
  bool closed_ = false;
  std::vector<std::uint8_t> received_;
};

inline std::vector<std::uint8_t> random_bytes(std::size_t n) {
  std::vector<std::uint8_t> b(n);
  randombytes_buf(b.data(), b.size());
  return b;
}

// `[u32 big-endian length]` then `body`.
inline std::vector<std::uint8_t> frame(std::uint32_t length, const std::vector<std::uint8_t>& body = {}) {
  // Sized once, then filled: GCC 12 reports a false -Warray-bounds for a 4-byte vector that is
  // then grown by insert().
  std::vector<std::uint8_t> out(4 + body.size());
  out[0] = static_cast<std::uint8_t>(length >> 24);
  out[1] = static_cast<std::uint8_t>(length >> 16);
  out[2] = static_cast<std::uint8_t>(length >> 8);
  out[3] = static_cast<std::uint8_t>(length);
  std::copy(body.begin(), body.end(), out.begin() + 4);
  return out;
}

// Wakes the loop every 100 ms while alive, so that Cluster::run_until's give-up bound is checked
// even when nothing else would ever run (an idle io_context blocks in epoll without a deadline).
class Ticker {
 public:
  explicit Ticker(transport::KjLoop& loop) : timer_(std::make_shared<boost::asio::steady_timer>(loop.io())) { arm(timer_); }
  ~Ticker() { timer_->cancel(); }
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;

 private:
  static void arm(const std::shared_ptr<boost::asio::steady_timer>& t) {
    t->expires_after(std::chrono::milliseconds(100));
    t->async_wait([t](const boost::system::error_code& ec) {
      if (!ec) arm(t);
    });
  }
  std::shared_ptr<boost::asio::steady_timer> timer_;
};

// Resident set size of this process, bytes.
inline std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
inline std::size_t raise_nofile() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return rl.rlim_cur == RLIM_INFINITY ? std::size_t(1) << 20 : static_cast<std::size_t>(rl.rlim_cur);
}

// A device's bare transport security (for links made by the test itself, without a MeshHost).
struct Device {
  security::Identity identity = fresh_identity();
  security::TrustAnchor anchor;
  security::RevocationSet none;
  transport::LinkSecurity sec;

  // `certify` makes this device's certificate for its fresh identity.
  Device(const security::TrustAnchor& trusts,
         const std::function<std::vector<std::uint8_t>(const security::Identity&)>& certify)
      : anchor(trusts) {
    sec.identity = &identity;
    sec.certificate = certify(identity);
    sec.anchor = &anchor;
    sec.revocations = [this]() -> const security::RevocationSet& { return none; };
    sec.trusted_now = [] { return now_wall(); };
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
};

// A certificate signed by `by` for `device` with the given mesh id (which need not be by's).
inline std::vector<std::uint8_t> certify_in_mesh(const Authority& by, const security::Identity& device,
                                                 const security::MeshId& mesh_id) {
  security::Certificate c;
  c.role = security::DeviceRole::kMember;
  c.mesh_id = mesh_id;
  c.device_key = device.public_key();
  c.serial = 1;
  const std::int64_t now_s = now_wall().ns() / 1'000'000'000;
  c.not_before_s = now_s - 3600;
  c.not_after_s = now_s + 24 * 3600;
  c.grants = {{"*", security::kReadWrite}};
  auto issued = security::issue_certificate(c, by.key);
  REQUIRE(issued.ok());
  auto bytes = security::encode_certificate(*issued);
  REQUIRE(bytes.ok());
  return *bytes;
}

}  // namespace shoal::mesh_test

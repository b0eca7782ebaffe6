// node/daemon/http_server.hpp: the daemon's small HTTP/1.1 server for /metrics and the status
// page.
//
// Role: serves three read-only resources on the daemon's loop:
//   GET /             the status page            text/html; charset=utf-8
//   GET /status.json  the snapshot as JSON       application/json
//   GET /metrics      Prometheus text format     text/plain; version=0.0.4; charset=utf-8
// Anything else: 404 for another path, 405 (with `Allow: GET`) for another method, 400 for a
// request that does not parse, 431 for a request line and headers above max_header_bytes, 413 for
// a request with a body (none is accepted); each of those closes the connection after the answer.
// A query string is ignored. Keep-alive is honoured.
//
// Exposure: binds to one address, 127.0.0.1 by default. An address that is not loopback is
// refused unless allow_non_loopback is set (the operator's explicit choice: the page names every
// peer and address of the mesh). Bounded: at most max_connections connections at once (one more
// is closed unanswered), and each request must arrive whole within read_timeout of the
// connection's first byte being awaited (a slow or idle client is closed at that deadline, however
// it trickles); an answer must be written within the same timeout.
//
// Implementation: Boost.Beast over Boost.Asio, asynchronous accept, read and write with callbacks
// on the given io_context; no thread of its own. Boost stays out of this header.
// Thread rules: start(), stop() and the destructor on the io_context's thread (or before it
// runs); the content callbacks are called on that thread, never after stop().
// Ownership: the io_context must outlive the server; the content callbacks are copied.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/log.hpp"
#include "common/status.hpp"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace shoal::daemon {

namespace detail {
// The acceptor, the limits and the open connections (http_server.cpp).
struct HttpServerState;
}  // namespace detail

struct HttpServerOptions {
  // An IPv4 or IPv6 literal.
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (see HttpServer::port)
  // Serve on an address that is not loopback (a config flag; off by default).
  bool allow_non_loopback = false;
  // The request line and headers together; above it: 431.
  std::size_t max_header_bytes = 8 * 1024;
  // Connections open at once; one more is closed as soon as it is accepted.
  std::size_t max_connections = 16;
  // Time allowed for each whole request to arrive (and for each answer to be written).
  std::chrono::milliseconds read_timeout{5000};
};

// What the server serves; each callback returns the whole body and runs on the loop's thread.
// An empty callback answers 404 for its path.
struct HttpContent {
  std::function<std::string()> metrics;      // GET /metrics (MetricsRegistry::serialize)
  std::function<std::string()> status_page;  // GET / (render_status_page)
  std::function<std::string()> status_json;  // GET /status.json (render_status_json)
};

struct HttpServerStats {
  std::uint64_t accepted = 0;         // connections accepted (refused ones included)
  std::uint64_t refused = 0;          // closed at once: max_connections were open
  std::uint64_t requests = 0;         // requests answered (any status)
  std::uint64_t timeouts = 0;         // connections closed at the read or write deadline
  std::uint64_t bad_requests = 0;     // 400, 413 and 431 answers
  std::size_t open = 0;               // connections open now
};

class HttpServer {
 public:
  // Binds, listens and starts accepting on `io`. Statuses: kInvalidArgument (an address that does
  // not parse, a non-loopback address without allow_non_loopback, max_connections or
  // max_header_bytes 0); kIo (bind or listen failed, the OS reason named).
  [[nodiscard]] static Result<std::unique_ptr<HttpServer>> start(boost::asio::io_context& io,
                                                                  HttpServerOptions options, HttpContent content,
                                                                  Logger* logger);
  // Calls stop().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (useful when listening on port 0).
  std::uint16_t port() const noexcept;
  HttpServerStats stats() const noexcept;
  // Closes the listening socket and every connection; no content callback runs after it returns.
  // Pending handlers complete later on the loop (they own what they touch). Idempotent.
  void stop();

 private:
  explicit HttpServer(std::shared_ptr<detail::HttpServerState> impl);
  // Shared with the pending Asio handlers, which may outlive this object.
  std::shared_ptr<detail::HttpServerState> impl_;
};

}  // namespace shoal::daemon

// tests/daemon/http_server_test.cpp: proves that the daemon's HTTP server
// (node/daemon/http_server.hpp) serves /metrics, / and /status.json with the right types, answers
// 404, 405, 413 and 431 as documented, keeps its limits (oversized heads, bodies, slow and
// trickling clients, too many connections) and binds only to loopback unless allowed. How: the
// server runs on an io_context on its own thread (as on the daemon's loop); the test is a raw
// POSIX-socket client on 127.0.0.1, so it can send exactly the bytes it wants, and every wait is
// bounded by poll(). The server's statistics are read on the loop's thread.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "node/daemon/http_server.hpp"
#include "node/daemon/metrics.hpp"
#include "node/daemon/status_page.hpp"
#include "snapshot_fixture.hpp"

using namespace shoal;
using namespace std::chrono_literals;
using daemon::HttpServer;
using daemon::HttpServerOptions;
using Clock = std::chrono::steady_clock;

namespace {

// A server on its own loop thread, serving the fixture's snapshot.
class Served {
 public:
  // Runs `f` on the loop's thread and returns its result.
  template <typename F>
  auto on_loop(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    boost::asio::post(io_, [&task] { task(); });
    return result.get();
  }

  explicit Served(HttpServerOptions options = {}) : guard_(io_.get_executor()) {
    metrics_.update(daemon_test::three_peer_snapshot());
    daemon::HttpContent content;
    content.metrics = [this] {
      ++renders_;
      return metrics_.serialize();
    };
    content.status_page = [this] {
      ++renders_;
      return daemon::render_status_page(daemon_test::three_peer_snapshot());
    };
    content.status_json = [] { return daemon::render_status_json(daemon_test::three_peer_snapshot()); };
    auto server = HttpServer::start(io_, options, std::move(content), nullptr);
    REQUIRE(server.ok());
    server_ = std::move(server).value();
    port_ = server_->port();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Served() {
    on_loop([this] { server_->stop(); });
    guard_.reset();
    thread_.join();
    server_.reset();  // the loop has ended: no handler is pending
  }
  std::uint16_t port() const { return port_; }
  daemon::HttpServerStats stats() {
    return on_loop([this] { return server_->stats(); });
  }
  int renders() const { return renders_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  daemon::MetricsRegistry metrics_;
  std::unique_ptr<HttpServer> server_;
  std::uint16_t port_ = 0;
  std::atomic<int> renders_{0};
  std::thread thread_;
};

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

void send_all(int fd, const std::string& bytes) {
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server closed: the caller checks what it answered
    sent += static_cast<std::size_t>(n);
  }
}

// Reads until the peer closes (or resets) the connection, or `limit` passes. `closed` says which.
std::string read_until_closed(int fd, std::chrono::milliseconds limit, bool* closed) {
  std::string out;
  const auto deadline = Clock::now() + limit;
  *closed = false;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (::poll(&p, 1, static_cast<int>(std::max<long long>(left, 1))) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

struct Response {
  int status = 0;
  std::string head;
  std::string body;
};

// Reads one response with a Content-Length (the server always sends one) within 5 s.
std::optional<Response> read_response(int fd) {
  std::string data;
  const auto deadline = Clock::now() + 5s;
  while (Clock::now() < deadline) {
    const std::size_t end = data.find("\r\n\r\n");
    if (end != std::string::npos) {
      Response r;
      r.head = data.substr(0, end + 2);
      r.status = std::stoi(data.substr(9, 3));
      const std::size_t cl = r.head.find("Content-Length: ");
      REQUIRE(cl != std::string::npos);
      const std::size_t length = std::stoul(r.head.substr(cl + 16));
      if (data.size() >= end + 4 + length) {
        r.body = data.substr(end + 4, length);
        return r;
      }
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[8192];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    data.append(buf, static_cast<std::size_t>(n));
  }
  return std::nullopt;
}

Response get(std::uint16_t port, const std::string& request) {
  const int fd = connect_to(port);
  send_all(fd, request);
  auto r = read_response(fd);
  ::close(fd);
  REQUIRE(r.has_value());
  return *r;
}

std::string simple(const std::string& method, const std::string& target) {
  return method + " " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
}

bool has_header(const Response& r, const std::string& line) { return r.head.find(line + "\r\n") != std::string::npos; }

}  // namespace

TEST_CASE("the server answers /metrics, / and /status.json with their content types", "[daemon][http]") {
  Served s;
  const Response metrics = get(s.port(), simple("GET", "/metrics"));
  CHECK(metrics.status == 200);
  CHECK(has_header(metrics, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  CHECK(metrics.body.find("# TYPE shoal_peer_lag_entries gauge") != std::string::npos);
  CHECK(metrics.body.find("shoal_peer_lag_entries{peer=\"gw-attic-9e03\",tier=\"warm\"} 12") != std::string::npos);

  const Response page = get(s.port(), simple("GET", "/"));
  CHECK(page.status == 200);
  CHECK(has_header(page, "Content-Type: text/html; charset=utf-8"));
  CHECK(page.head.find("Content-Security-Policy: default-src 'none'") != std::string::npos);
  CHECK(page.body.find("<svg") != std::string::npos);
  CHECK(page.body.find("gw-garage-b2d8") != std::string::npos);

  const Response json = get(s.port(), simple("GET", "/status.json?pretty=1"));  // the query is ignored
  CHECK(json.status == 200);
  CHECK(has_header(json, "Content-Type: application/json"));
  CHECK(json.body.rfind("{\"device\":\"gw-centre-4f1a\"", 0) == 0);
}

TEST_CASE("the server answers 404 for another path and 405 for another method", "[daemon][http]") {
  Served s;
  CHECK(get(s.port(), simple("GET", "/nope")).status == 404);
  CHECK(get(s.port(), simple("GET", "/metrics/extra")).status == 404);
  for (const char* method : {"POST", "PUT", "DELETE", "HEAD", "OPTIONS"}) {
    INFO(method);
    const Response r = get(s.port(), simple(method, "/metrics"));
    CHECK(r.status == 405);
    CHECK(has_header(r, "Allow: GET"));
  }
  CHECK(s.renders() == 0);  // nothing was rendered for any of them
}

TEST_CASE("one connection serves several requests when the client keeps it alive", "[daemon][http]") {
  Served s;
  const int fd = connect_to(s.port());
  const std::string keep = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
  send_all(fd, keep);
  auto first = read_response(fd);
  send_all(fd, "GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n");
  auto second = read_response(fd);
  ::close(fd);
  REQUIRE(first.has_value());
  REQUIRE(second.has_value());
  CHECK(first->status == 200);
  CHECK(second->status == 404);
}

TEST_CASE("a request head above 8 KiB is refused with 431 and the connection closed", "[daemon][http]") {
  Served s;
  const int fd = connect_to(s.port());
  send_all(fd, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + std::string(9000, 'a') + "\r\n\r\n");
  bool closed = false;
  const std::string answer = read_until_closed(fd, 5s, &closed);
  ::close(fd);
  CHECK(answer.rfind("HTTP/1.1 431 ", 0) == 0);
  CHECK(closed);
  // Just under the limit is served.
  const Response ok = get(s.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(7000, 'a') +
                                        "\r\nConnection: close\r\n\r\n");
  CHECK(ok.status == 200);
  CHECK(s.stats().bad_requests == 1);
}

TEST_CASE("a request with a body is refused with 413, garbage with 400", "[daemon][http]") {
  Served s;
  const Response body = get(s.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  CHECK(body.status == 413);
  const Response chunked =
      get(s.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  CHECK(chunked.status == 413);
  const Response garbage = get(s.port(), "\x01\x02 not http at all\r\n\r\n");
  CHECK(garbage.status == 400);
  CHECK(s.stats().bad_requests == 3);
}

TEST_CASE("a client that never finishes its request is closed at the read deadline, even if it trickles",
          "[daemon][http]") {
  HttpServerOptions options;
  options.read_timeout = 400ms;
  Served s(options);

  // Silent after half a request line.
  int fd = connect_to(s.port());
  send_all(fd, "GET /metrics HTTP/1.1\r\n");
  auto start = Clock::now();
  bool closed = false;
  std::string answer = read_until_closed(fd, 5s, &closed);
  auto waited = Clock::now() - start;
  ::close(fd);
  CHECK(closed);
  CHECK(answer.empty());
  CHECK(waited >= 300ms);
  CHECK(waited < 3s);

  // A byte every 50 ms: each read makes progress, but the deadline is for the whole request.
  fd = connect_to(s.port());
  start = Clock::now();
  closed = false;
  const std::string slow = "GET /metrics HTTP/1.1\r\nX-Slow: " + std::string(200, 'z');
  for (char c : slow) {
    send_all(fd, std::string(1, c));
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      answer = read_until_closed(fd, 1s, &closed);
      break;
    }
  }
  waited = Clock::now() - start;
  ::close(fd);
  CHECK(closed);
  CHECK(waited < 3s);
  CHECK(s.stats().timeouts == 2);
  // An idle keep-alive connection is closed the same way.
  fd = connect_to(s.port());
  send_all(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(read_response(fd).has_value());
  answer = read_until_closed(fd, 5s, &closed);
  ::close(fd);
  CHECK(closed);
}

TEST_CASE("connections beyond max_connections are closed unanswered until one closes", "[daemon][http]") {
  HttpServerOptions options;
  options.max_connections = 2;
  options.read_timeout = 10s;  // the idle connections must outlive the test's checks
  Served s(options);
  const int a = connect_to(s.port());
  const int b = connect_to(s.port());
  const int c = connect_to(s.port());
  bool closed = false;
  send_all(c, simple("GET", "/metrics"));
  const std::string answer = read_until_closed(c, 3s, &closed);
  ::close(c);
  CHECK(closed);
  CHECK(answer.empty());
  CHECK(s.stats().refused == 1);
  CHECK(s.stats().open == 2);
  // With one of the two gone a new client is served.
  ::close(a);
  bool served = false;
  for (int attempt = 0; attempt < 50 && !served; ++attempt) {
    std::this_thread::sleep_for(20ms);
    if (s.stats().open < 2) served = get(s.port(), simple("GET", "/metrics")).status == 200;
  }
  CHECK(served);
  ::close(b);
}

TEST_CASE("the server binds to loopback only unless non-loopback is allowed", "[daemon][http]") {
  boost::asio::io_context io;
  for (const char* address : {"0.0.0.0", "192.0.2.1", "::", "2001:db8::1"}) {
    HttpServerOptions options;
    options.address = address;
    auto r = HttpServer::start(io, options, {}, nullptr);
    INFO(address);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
  HttpServerOptions named;
  named.address = "localhost";  // a literal is required
  CHECK(HttpServer::start(io, named, {}, nullptr).status().detail() == Detail::kMalformed);
  // Allowed explicitly, a non-loopback address passes the check (192.0.2.1 is not ours: bind fails).
  HttpServerOptions allowed;
  allowed.address = "192.0.2.1";
  allowed.allow_non_loopback = true;
  CHECK(HttpServer::start(io, allowed, {}, nullptr).status().code() == Code::kIo);
  // Any 127/8 address is loopback.
  HttpServerOptions other_loopback;
  other_loopback.address = "127.0.0.2";
  auto ok = HttpServer::start(io, other_loopback, {}, nullptr);
  REQUIRE(ok.ok());
  CHECK((*ok)->port() != 0);
}

TEST_CASE("stop closes open connections and no content is rendered after it", "[daemon][http]") {
  boost::asio::io_context io;
  int renders = 0;
  daemon::HttpContent content;
  content.metrics = [&] {
    ++renders;
    return std::string("x");
  };
  auto server = HttpServer::start(io, {}, content, nullptr);
  REQUIRE(server.ok());
  const int fd = connect_to((*server)->port());
  io.run_for(100ms);  // accepted, waiting for the request
  CHECK((*server)->stats().open == 1);
  send_all(fd, simple("GET", "/metrics"));
  (*server)->stop();
  io.run_for(200ms);
  bool closed = false;
  read_until_closed(fd, 2s, &closed);
  ::close(fd);
  CHECK(closed);
  CHECK(renders == 0);
  server->reset();  // destroyed with nothing pending
  io.run_for(50ms);
}

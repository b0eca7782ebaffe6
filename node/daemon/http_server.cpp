// node/daemon/http_server.cpp: the /metrics and status-page server on Boost.Beast.
//
// Shape: HttpServerState owns the acceptor and the limits; each connection is an HttpSession that owns its
// socket, buffer, parser and answer. Every pending handler holds a shared_ptr to its HttpSession (and
// the session one to the state), so a handler that completes after stop() or after the HttpServer is
// destroyed still runs on live memory; it sees `stopped` and ends.
#include "node/daemon/http_server.hpp"

#include <exception>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace shoal::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr const char* kComponent = "http";
// After an error answer the connection is half-closed and drained (so that the peer reads the
// answer instead of a reset) for at most this long, and at most this many bytes.
constexpr std::chrono::milliseconds kLingerMax{1000};
constexpr std::size_t kLingerBytesMax = 64 * 1024;
// A failed accept (out of file descriptors) is retried after this pause.
constexpr std::chrono::milliseconds kAcceptRetry{100};

bool loopback(const asio::ip::address& a) {
  if (a.is_loopback()) return true;
  return a.is_v6() && a.to_v6().is_v4_mapped() &&
         asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).is_loopback();
}

class HttpSession;

}  // namespace

struct detail::HttpServerState : std::enable_shared_from_this<detail::HttpServerState> {
  HttpServerState(asio::io_context& io_in, HttpServerOptions options_in, HttpContent content_in, Logger* logger_in)
      : io(io_in),
        options(std::move(options_in)),
        content(std::move(content_in)),
        logger(logger_in),
        acceptor(io_in),
        retry(io_in) {}

  void accept();
  void on_accept(const error_code& ec, tcp::socket socket);
  void stop();

  asio::io_context& io;
  const HttpServerOptions options;
  const HttpContent content;
  Logger* logger;  // nullable
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  bool stopped = false;
  HttpServerStats stats;
  std::uint64_t next_session = 0;
  std::map<std::uint64_t, std::weak_ptr<HttpSession>> sessions;
};

namespace {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(std::shared_ptr<detail::HttpServerState> server, std::uint64_t id, tcp::socket socket)
      : server_(std::move(server)),
        id_(id),
        stream_(std::move(socket)),
        // Room for one request's head and a little of what follows it (a pipelined request).
        buffer_(server_->options.max_header_bytes + 4096) {
    ++server_->stats.open;
  }
  ~HttpSession() {
    --server_->stats.open;
    server_->sessions.erase(id_);
  }
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  void start() { read(); }
  void close() {
    error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
  }

 private:
  void read();
  void on_read(const error_code& ec);
  void answer(http::status status, std::string body, const char* content_type, bool close);
  void on_write(const error_code& ec, bool close);
  void linger();
  void on_linger(const error_code& ec, std::size_t n);
  // The body for a path, or nullopt (404).
  std::optional<std::pair<std::string, const char*>> content_for(std::string_view path);

  std::shared_ptr<detail::HttpServerState> server_;
  const std::uint64_t id_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  http::response<http::string_body> response_;
  unsigned version_ = 11;
  std::size_t lingered_ = 0;
  char drain_[4096];
};

void HttpSession::read() {
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(server_->options.max_header_bytes));
  parser_->body_limit(0);
  // One deadline for the whole request, however slowly its bytes trickle in.
  stream_.expires_after(server_->options.read_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_read(ec); });
}

void HttpSession::on_read(const error_code& ec) {
  if (server_->stopped) return;
  if (ec == http::error::end_of_stream || ec == asio::error::eof) {
    close();
    return;
  }
  if (ec == beast::error::timeout) {
    ++server_->stats.timeouts;
    SHOAL_LOG(server_->logger, kDebug, kComponent, "closing a connection: no whole request within ",
              server_->options.read_timeout.count(), " ms");
    close();
    return;
  }
  if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
    ++server_->stats.bad_requests;
    answer(http::status::request_header_fields_too_large, "request header fields too large\n", "text/plain", true);
    return;
  }
  if (ec == http::error::body_limit || ec == http::error::unexpected_body) {
    ++server_->stats.bad_requests;
    answer(http::status::payload_too_large, "no request body is accepted\n", "text/plain", true);
    return;
  }
  if (ec && ec.category() == http::make_error_code(http::error::bad_method).category()) {
    ++server_->stats.bad_requests;
    answer(http::status::bad_request, "bad request\n", "text/plain", true);
    return;
  }
  if (ec) {  // the socket failed (reset, aborted): nothing to answer
    close();
    return;
  }
  const auto& req = parser_->get();
  version_ = req.version();
  if (req.method() != http::verb::get) {
    answer(http::status::method_not_allowed, "only GET is served\n", "text/plain", !req.keep_alive());
    return;
  }
  std::string_view target(req.target().data(), req.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  std::optional<std::pair<std::string, const char*>> content;
  try {
    content = content_for(path);
  } catch (const std::exception& e) {  // a renderer out of memory: an answer, not a crash
    SHOAL_LOG(server_->logger, kError, kComponent, "rendering ", path, " failed: ", e.what());
    answer(http::status::internal_server_error, "internal error\n", "text/plain", true);
    return;
  }
  if (!content) {
    answer(http::status::not_found, "not found\n", "text/plain", !req.keep_alive());
    return;
  }
  answer(http::status::ok, std::move(content->first), content->second, !req.keep_alive());
}

std::optional<std::pair<std::string, const char*>> HttpSession::content_for(std::string_view path) {
  const HttpContent& c = server_->content;
  const std::function<std::string()>* source = nullptr;
  const char* type = nullptr;
  if (path == "/metrics") {
    source = &c.metrics;
    type = "text/plain; version=0.0.4; charset=utf-8";
  } else if (path == "/" || path == "/index.html") {
    source = &c.status_page;
    type = "text/html; charset=utf-8";
  } else if (path == "/status.json") {
    source = &c.status_json;
    type = "application/json";
  }
  if (source == nullptr || !*source) return std::nullopt;
  return std::make_pair((*source)(), type);
}

void HttpSession::answer(http::status status, std::string body, const char* content_type, bool close) {
  ++server_->stats.requests;
  response_ = http::response<http::string_body>(status, version_);
  response_.set(http::field::server, "shoald");
  response_.set(http::field::content_type, content_type);
  response_.set(http::field::cache_control, "no-store");
  response_.set("X-Content-Type-Options", "nosniff");
  // The page is self-contained: nothing may be loaded, no script runs, no one may frame it.
  response_.set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
  if (status == http::status::method_not_allowed) response_.set(http::field::allow, "GET");
  response_.keep_alive(!close);
  response_.body() = std::move(body);
  response_.prepare_payload();
  stream_.expires_after(server_->options.read_timeout);
  http::async_write(stream_, response_, [self = shared_from_this(), close](const error_code& ec, std::size_t) {
    self->on_write(ec, close);
  });
}

void HttpSession::on_write(const error_code& ec, bool close_after) {
  if (server_->stopped) return;
  if (ec == beast::error::timeout) ++server_->stats.timeouts;
  if (ec) {
    close();
    return;
  }
  if (close_after) {
    linger();
    return;
  }
  read();
}

// Half-closes, then reads and discards until the peer closes, for at most kLingerMax: closing a
// socket with unread bytes would reset the connection and could destroy the answer in flight.
void HttpSession::linger() {
  error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(kLingerMax);
  buffer_.consume(buffer_.size());
  stream_.async_read_some(asio::buffer(drain_), [self = shared_from_this()](const error_code& ec, std::size_t n) {
    self->on_linger(ec, n);
  });
}

void HttpSession::on_linger(const error_code& ec, std::size_t n) {
  lingered_ += n;
  if (server_->stopped || ec || lingered_ > kLingerBytesMax) {
    close();
    return;
  }
  stream_.async_read_some(asio::buffer(drain_), [self = shared_from_this()](const error_code& e, std::size_t k) {
    self->on_linger(e, k);
  });
}

}  // namespace

void detail::HttpServerState::accept() {
  acceptor.async_accept([self = shared_from_this()](const error_code& ec, tcp::socket socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void detail::HttpServerState::on_accept(const error_code& ec, tcp::socket socket) {
  if (stopped) return;
  if (ec) {
    SHOAL_LOG(logger, kWarn, kComponent, "accept failed: ", ec.message());
    retry.expires_after(kAcceptRetry);
    retry.async_wait([self = shared_from_this()](const error_code& e) {
      if (!e && !self->stopped) self->accept();
    });
    return;
  }
  ++stats.accepted;
  if (stats.open >= options.max_connections) {
    ++stats.refused;
    SHOAL_LOG(logger, kDebug, kComponent, "refusing a connection: ", options.max_connections, " open");
    error_code ignored;
    socket.close(ignored);
  } else {
    const std::uint64_t id = next_session++;
    auto session = std::make_shared<HttpSession>(shared_from_this(), id, std::move(socket));
    sessions.emplace(id, session);
    session->start();
  }
  accept();
}

void detail::HttpServerState::stop() {
  if (stopped) return;
  stopped = true;
  error_code ignored;
  acceptor.close(ignored);
  retry.cancel();
  // Closing cancels each session's pending operation; its handler then sees `stopped`.
  auto open = std::move(sessions);
  sessions.clear();
  for (auto& [id, weak] : open) {
    if (auto s = weak.lock()) s->close();
  }
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(asio::io_context& io, HttpServerOptions options,
                                                      HttpContent content, Logger* logger) {
  if (options.max_connections == 0 || options.max_header_bytes == 0) {
    return Status(Code::kInvalidArgument, "max_connections and max_header_bytes must be positive");
  }
  error_code ec;
  const asio::ip::address address = asio::ip::make_address(options.address, ec);
  if (ec) return Status(Detail::kMalformed, "not an IP address", options.address);
  if (!loopback(address) && !options.allow_non_loopback) {
    return Status(Code::kInvalidArgument,
                  "refusing to serve metrics and the status page on a non-loopback address without "
                  "allow_non_loopback",
                  options.address);
  }
  auto impl = std::make_shared<detail::HttpServerState>(io, options, std::move(content), logger);
  const tcp::endpoint endpoint(address, options.port);
  const auto fail = [&](const char* what) {
    return Status(Code::kIo, str_cat(what, " failed: ", ec.message()),
                  str_cat(options.address, ":", options.port));
  };
  if (impl->acceptor.open(endpoint.protocol(), ec)) return fail("open");
  if (impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec)) return fail("setsockopt");
  if (impl->acceptor.bind(endpoint, ec)) return fail("bind");
  if (impl->acceptor.listen(asio::socket_base::max_listen_connections, ec)) return fail("listen");
  impl->accept();
  SHOAL_LOG(logger, kInfo, kComponent, "serving /metrics and the status page on ", options.address, ":",
            impl->acceptor.local_endpoint(ec).port());
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::shared_ptr<detail::HttpServerState> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { stop(); }

std::uint16_t HttpServer::port() const noexcept {
  error_code ec;
  const tcp::endpoint e = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : e.port();
}

HttpServerStats HttpServer::stats() const noexcept { return impl_->stats; }

void HttpServer::stop() { impl_->stop(); }

}  // namespace shoal::daemon

// transport/link.cpp: TCP, the handshake, the sealed message stream and RPC (see link.hpp).
//
// Asio lives here and in kj_loop.cpp only. Every Asio operation's handler holds a shared_ptr to
// the Wire that owns its socket and buffers, so a kj promise cancelled while Asio still reads or
// writes never leaves Asio touching freed memory; received bytes go into the Wire's channel even
// when nobody waits for them, so nothing is lost either.
#include "transport/link.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.capnp.h>
#include <capnp/rpc.h>
#include <capnp/serialize-async.h>
#include <capnp/serialize.h>
#include <kj/debug.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <deque>
#include <map>
#include <sys/socket.h>
#include <sys/un.h>
#include <cerrno>
#include <sys/stat.h>
#include <unistd.h>
#include <grp.h>
#include <utility>

#include "common/log.hpp"
#include "security/frame.hpp"
#include "security/handshake.hpp"
#include "transport/local_link.hpp"

namespace shoal::transport {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr const char* kStatusTag = "shoal-status ";

kj::Exception to_exception(const Status& st, kj::Exception::Type type = kj::Exception::Type::FAILED) {
  return kj::Exception(type, __FILE__, __LINE__,
                       kj::str(kStatusTag, st.full_code(), " ", st.to_string().c_str()));
}

// A closed channel is a disconnect to capnp (which then ends the connection quietly).
kj::Exception::Type type_of(const Status& st) {
  return st.detail() == Detail::kSessionClosed ? kj::Exception::Type::DISCONNECTED : kj::Exception::Type::FAILED;
}

std::string endpoint_text(const tcp::socket& s) {
  boost::system::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// How messages become frames on the stream: sealed (security::Channel, between peers) or plain
// length-prefixed (local apps on the Unix socket, where the kernel is the boundary). Same shape
// as security::Channel.
class Framer {
 public:
  virtual ~Framer() = default;
  virtual Status receive(std::span<const std::uint8_t> bytes) = 0;
  virtual Result<bool> next(std::vector<std::uint8_t>& payload) = 0;
  virtual bool peer_closed() const noexcept = 0;
  virtual Status end_of_stream() = 0;
  virtual Status seal(std::span<const std::uint8_t> payload, MonoTime now, std::vector<std::uint8_t>& out) = 0;
  virtual Status seal_close(std::vector<std::uint8_t>& out) = 0;
  // Appends the frame of one Cap'n Proto message of `words` words given as its segments (the
  // caller checked the size). By default the message is flattened and sealed like any payload.
  virtual Status seal_message(kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments, std::size_t words,
                              MonoTime now, std::vector<std::uint8_t>& out) {
    (void)words;
    kj::Array<capnp::word> flat = capnp::messageToFlatArray(segments);
    auto bytes = flat.asBytes();
    return seal(std::span<const std::uint8_t>(bytes.begin(), bytes.size()), now, out);
  }
};

// A kj::OutputStream that appends to a byte vector (capnp::writeMessage writes through it).
class AppendStream final : public kj::OutputStream {
 public:
  explicit AppendStream(std::vector<std::uint8_t>& out) : out_(out) {}
  void write(const void* buffer, size_t size) override {
    const auto* b = static_cast<const std::uint8_t*>(buffer);
    out_.insert(out_.end(), b, b + size);
  }

 private:
  std::vector<std::uint8_t>& out_;
};

class ChannelFramer final : public Framer {
 public:
  explicit ChannelFramer(security::Channel c) : c_(std::move(c)) {}
  Status receive(std::span<const std::uint8_t> bytes) override { return c_.receive(bytes); }
  Result<bool> next(std::vector<std::uint8_t>& payload) override { return c_.next(payload); }
  bool peer_closed() const noexcept override { return c_.peer_closed(); }
  Status end_of_stream() override { return c_.end_of_stream(); }
  Status seal(std::span<const std::uint8_t> payload, MonoTime now, std::vector<std::uint8_t>& out) override {
    return c_.seal(payload, now, out);
  }
  Status seal_close(std::vector<std::uint8_t>& out) override { return c_.seal_close(out); }

 private:
  security::Channel c_;
};

// `[u32 big-endian length][Cap'n Proto message]`, the length checked before the body is kept.
class PlainFramer final : public Framer {
 public:
  explicit PlainFramer(std::size_t max_message_bytes) : rx_(sizeof(capnp::word), max_message_bytes), max_(max_message_bytes) {}
  Status receive(std::span<const std::uint8_t> bytes) override {
    if (closed_) return Status(Detail::kSessionClosed, "the local stream is closed");
    Status st = rx_.append(bytes);
    if (!st.ok()) closed_ = true;
    return st;
  }
  Result<bool> next(std::vector<std::uint8_t>& payload) override {
    if (closed_) return Status(Detail::kSessionClosed, "the local stream is closed");
    auto f = rx_.front();
    if (f.empty()) return false;
    payload.assign(f.begin() + security::kFrameHeaderBytes, f.end());
    rx_.pop();
    return true;
  }
  bool peer_closed() const noexcept override { return false; }
  Status end_of_stream() override {
    closed_ = true;
    if (rx_.buffered() != 0) return Status(Detail::kTruncated, str_cat("stream ended inside a frame (", rx_.buffered(), " bytes)"));
    return {};
  }
  Status seal(std::span<const std::uint8_t> payload, MonoTime, std::vector<std::uint8_t>& out) override {
    if (payload.size() > max_) {
      return Status(Detail::kTooLarge, str_cat("message of ", payload.size(), " bytes is above max_message_bytes ", max_));
    }
    const std::size_t at = out.size();
    out.resize(at + security::kFrameHeaderBytes + payload.size());
    security::put_frame_length(out.data() + at, static_cast<std::uint32_t>(payload.size()));
    std::memcpy(out.data() + at + security::kFrameHeaderBytes, payload.data(), payload.size());
    return {};
  }
  Status seal_close(std::vector<std::uint8_t>&) override { return {}; }
  // The segment table and segments go straight after the length, with no flattened copy of the
  // message and no zero-filled frame to copy it into (D55).
  Status seal_message(kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments, std::size_t words, MonoTime,
                      std::vector<std::uint8_t>& out) override {
    const std::size_t bytes = words * sizeof(capnp::word);
    if (bytes > max_) return Status(Detail::kTooLarge, str_cat("message of ", bytes, " bytes is above max_message_bytes ", max_));
    out.reserve(out.size() + security::kFrameHeaderBytes + bytes);
    std::uint8_t header[security::kFrameHeaderBytes];
    security::put_frame_length(header, static_cast<std::uint32_t>(bytes));
    out.insert(out.end(), header, header + security::kFrameHeaderBytes);
    AppendStream stream(out);
    capnp::writeMessage(stream, segments);
    return {};
  }

 private:
  security::FrameBuffer rx_;
  std::size_t max_;
  bool closed_ = false;
};

using Socket = asio::generic::stream_protocol::socket;

// The socket, the framer and the buffers Asio reads into and writes from: shared by the stream
// and by every pending Asio handler.
struct Wire {
  Wire(Socket s, std::unique_ptr<Framer> f, const LinkOptions& o)
      : socket(std::move(s)), channel(std::move(f)), options(o), rbuf(o.read_chunk_bytes) {}

  Socket socket;
  std::unique_ptr<Framer> channel;
  LinkOptions options;
  std::vector<std::uint8_t> rbuf;
  Status read_error;        // the first error from the socket or the framer
  bool eof = false;
  bool reading = false;
  kj::Own<kj::PromiseFulfiller<void>> read_waiter;  // wakes the reader when bytes arrive

  struct Out {
    std::vector<std::uint8_t> bytes;
    kj::Own<kj::PromiseFulfiller<void>> done;
    std::size_t sent = 0;  // bytes the socket took so far
  };
  std::deque<Out> out;
  std::vector<std::uint8_t> scratch;  // the frame being built (SealedStream::writeMessage)
  bool writing = false;        // an async_write is in flight
  bool nonblocking_set = false;
  // LocalLink::hold_finishes: while `hold`, capnp-rpc's Finish messages wait in `held` and go out
  // in front of the next frame, in its send (D63).
  bool hold = false;
  std::vector<std::uint8_t> held;
  Status write_error;
  LinkStats stats;

  void close_socket() {
    boost::system::error_code ec;
    socket.shutdown(Socket::shutdown_both, ec);
    socket.close(ec);
  }
};

void start_read(const std::shared_ptr<Wire>& w) {
  if (w->reading || w->eof || !w->read_error.ok()) return;
  w->reading = true;
  w->socket.async_read_some(asio::buffer(w->rbuf), [w](const boost::system::error_code& ec, std::size_t n) {
    w->reading = false;
    if (ec == asio::error::eof) {
      w->eof = true;
    } else if (ec) {
      if (w->read_error.ok()) w->read_error = Status(Code::kUnavailable, "connection lost: " + ec.message());
    } else {
      w->stats.bytes_in += n;
      Status st = w->channel->receive(std::span<const std::uint8_t>(w->rbuf.data(), n));
      if (!st.ok() && w->read_error.ok()) w->read_error = st;
    }
    if (w->read_waiter && w->read_waiter->isWaiting()) w->read_waiter->fulfill();
  });
}

// A failed send: every queued write fails with it.
void fail_writes(const std::shared_ptr<Wire>& w, const boost::system::error_code& ec) {
  if (w->write_error.ok()) w->write_error = Status(Code::kUnavailable, "send failed: " + ec.message());
  for (auto& o : w->out) {
    if (o.done->isWaiting()) o.done->reject(to_exception(w->write_error, kj::Exception::Type::DISCONNECTED));
  }
  w->out.clear();
}

// Writes what the socket takes now, without blocking; the bytes taken (counted in the stats).
// An error other than "would block" is returned in `ec`.
std::size_t write_now(Wire& w, const std::uint8_t* data, std::size_t size, boost::system::error_code& ec) {
  if (!w.nonblocking_set) {
    boost::system::error_code ignored;
    w.socket.non_blocking(true, ignored);
    w.nonblocking_set = true;
  }
  const std::size_t n = w.socket.write_some(asio::buffer(data, size), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  w.stats.bytes_out += n;
  return n;
}

void pump_writes(const std::shared_ptr<Wire>& w) {
  if (w->writing) return;
  // Each queued frame is first written at once, without blocking: a frame the socket takes
  // whole completes here, with no Asio round (a speculative async_write completes the same
  // sendto, but its handler then waits a trip through the io_context: an epoll_wait per message,
  // D46). What the socket does not take now goes by async_write.
  while (!w->out.empty()) {
    Wire::Out& front = w->out.front();
    boost::system::error_code ec;
    front.sent += write_now(*w, front.bytes.data() + front.sent, front.bytes.size() - front.sent, ec);
    if (ec) return fail_writes(w, ec);
    if (front.sent < front.bytes.size()) break;
    Wire::Out done = std::move(front);
    w->out.pop_front();
    if (done.done->isWaiting()) done.done->fulfill();
  }
  if (w->out.empty()) return;
  w->writing = true;
  Wire::Out& front = w->out.front();
  asio::async_write(w->socket, asio::buffer(front.bytes.data() + front.sent, front.bytes.size() - front.sent),
                    [w](const boost::system::error_code& ec, std::size_t n) {
                      w->writing = false;
                      if (ec) return fail_writes(w, ec);
                      w->stats.bytes_out += n;
                      Wire::Out done = std::move(w->out.front());
                      w->out.pop_front();
                      if (done.done->isWaiting()) done.done->fulfill();
                      pump_writes(w);
                    });
}

// Sends `bytes` after what is queued. When nothing is queued and the socket takes them whole (the
// usual case for a call or an answer), the send is done here: no queue entry, fulfiller or copy,
// and `bytes` is left empty with its capacity, for the caller to reuse (D55). Otherwise they are
// moved to the queue.
kj::Promise<void> send_bytes(const std::shared_ptr<Wire>& w, std::vector<std::uint8_t>& bytes) {
  if (!w->write_error.ok()) return to_exception(w->write_error, kj::Exception::Type::DISCONNECTED);
  std::size_t sent = 0;
  if (w->out.empty() && !w->writing) {
    boost::system::error_code ec;
    sent = write_now(*w, bytes.data(), bytes.size(), ec);
    if (ec) {
      fail_writes(w, ec);
      return to_exception(w->write_error, kj::Exception::Type::DISCONNECTED);
    }
    if (sent == bytes.size()) {
      bytes.clear();
      return kj::READY_NOW;
    }
  }
  auto paf = kj::newPromiseAndFulfiller<void>();
  w->out.push_back(Wire::Out{std::move(bytes), kj::mv(paf.fulfiller), sent});
  bytes.clear();
  pump_writes(w);
  return kj::mv(paf.promise);
}

// One Cap'n Proto message per sealed frame. (capnp::MessageStream has no virtual destructor;
// SealedStream is final and owned as itself.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class SealedStream final : public capnp::MessageStream {
 public:
  explicit SealedStream(std::shared_ptr<Wire> w) : w_(std::move(w)) {}

  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> tryReadMessage(kj::ArrayPtr<kj::AutoCloseFd>,
                                                                    capnp::ReaderOptions options,
                                                                    kj::ArrayPtr<capnp::word>) override {
    return read_one(w_, options);
  }

  // Frames are built in the wire's scratch buffer, which keeps its capacity from one message to
  // the next (a frame the socket takes at once is never copied or reallocated).
  kj::Promise<void> writeMessage(kj::ArrayPtr<const int>,
                                 kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) override {
    std::vector<std::uint8_t>& out = start_frames();
    Status st = seal(segments, out);
    if (!st.ok()) return to_exception(st, type_of(st));
    if (w_->hold && is_finish(segments) && w_->out.empty() && !w_->writing && w_->write_error.ok()) {
      // Kept back (a copy: `held` keeps a small capacity); the next frame takes it along.
      w_->held.assign(out.begin(), out.end());
      out.clear();
      return kj::READY_NOW;
    }
    return sent(send_bytes(w_, out));
  }

  kj::Promise<void> writeMessages(
      kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) override {
    std::vector<std::uint8_t>& out = start_frames();
    for (auto& segments : messages) {
      Status st = seal(segments, out);
      if (!st.ok()) return to_exception(st, type_of(st));
    }
    return sent(send_bytes(w_, out));
  }

  kj::Maybe<int> getSendBufferSize() override {
    boost::system::error_code ec;
    asio::socket_base::send_buffer_size option;
    w_->socket.get_option(option, ec);
    if (ec) return nullptr;
    return option.value();
  }

  kj::Promise<void> end() override {
    std::vector<std::uint8_t> out;
    out.swap(w_->held);
    Status st = w_->channel->seal_close(out);
    if (!st.ok()) return kj::READY_NOW;
    auto w = w_;
    return send_bytes(w_, out).then([w]() {
      boost::system::error_code ec;
      w->socket.shutdown(Socket::shutdown_send, ec);
    });
  }

 private:
  // A scratch buffer grown by a large message (an export page) is not kept for the link's life.
  static constexpr std::size_t kScratchKeepBytes = std::size_t{256} << 10;
  kj::Promise<void> sent(kj::Promise<void> p) {
    if (w_->scratch.capacity() > kScratchKeepBytes) std::vector<std::uint8_t>().swap(w_->scratch);
    return p;
  }

  // The scratch buffer, emptied, with the held frames (if any) in front.
  std::vector<std::uint8_t>& start_frames() {
    std::vector<std::uint8_t>& out = w_->scratch;
    out.assign(w_->held.begin(), w_->held.end());
    w_->held.clear();
    return out;
  }

  // Whether a message is capnp-rpc's Finish (held back by hold_finishes). Any other message,
  // a call above all, is never held: the answer it waits for depends on it.
  static bool is_finish(kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) {
    try {
      capnp::SegmentArrayMessageReader reader(segments);
      return reader.getRoot<capnp::rpc::Message>().which() == capnp::rpc::Message::FINISH;
    } catch (...) {
      return false;  // our own capnp-rpc wrote it; never seen, but a doubt sends it
    }
  }

  Status seal(kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments, std::vector<std::uint8_t>& out) {
    const std::size_t words = capnp::computeSerializedSizeInWords(segments);
    if (words * sizeof(capnp::word) > w_->options.max_message_bytes) {
      return Status(Detail::kTooLarge, str_cat("outgoing message of ", words * sizeof(capnp::word),
                                               " bytes is above max_message_bytes ", w_->options.max_message_bytes));
    }
    SHOAL_RETURN_IF_ERROR(w_->channel->seal_message(segments, words, now_mono(), out));
    ++w_->stats.messages_out;
    return {};
  }

  static kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> read_one(std::shared_ptr<Wire> w,
                                                                     capnp::ReaderOptions options) {
    if (!w->read_error.ok()) return to_exception(w->read_error, kj::Exception::Type::DISCONNECTED);
    std::vector<std::uint8_t> payload;
    auto got = w->channel->next(payload);
    if (!got.ok()) {
      w->read_error = got.status();
      return to_exception(got.status(), kj::Exception::Type::DISCONNECTED);
    }
    if (*got) {
      ++w->stats.messages_in;
      if (payload.size() < sizeof(capnp::word) || payload.size() % sizeof(capnp::word) != 0) {
        w->read_error = Status(Detail::kMalformed, str_cat("a frame of ", payload.size(), " bytes is not a Cap'n Proto message"));
        return to_exception(w->read_error, kj::Exception::Type::DISCONNECTED);
      }
      // The vector's storage comes from operator new, aligned for words; the reader keeps it.
      auto words = kj::arrayPtr(reinterpret_cast<const capnp::word*>(payload.data()), payload.size() / sizeof(capnp::word));
      kj::Own<capnp::MessageReader> reader =
          kj::heap<capnp::FlatArrayMessageReader>(words, options).attach(kj::mv(payload));
      return kj::Maybe<capnp::MessageReaderAndFds>(capnp::MessageReaderAndFds{kj::mv(reader), nullptr});
    }
    if (w->channel->peer_closed()) return kj::Maybe<capnp::MessageReaderAndFds>(nullptr);
    if (w->eof) {
      Status st = w->channel->end_of_stream();
      if (st.ok()) return kj::Maybe<capnp::MessageReaderAndFds>(nullptr);
      w->read_error = st;
      return to_exception(st, kj::Exception::Type::DISCONNECTED);
    }
    auto paf = kj::newPromiseAndFulfiller<void>();
    w->read_waiter = kj::mv(paf.fulfiller);
    start_read(w);
    return paf.promise.then([w, options]() { return read_one(w, options); });
  }

  std::shared_ptr<Wire> w_;
};
#pragma GCC diagnostic pop

// The capnp stack on a Wire, for either kind of link (Iface: Link or LocalLink).
template <typename Iface>
class RpcLinkBase : public Iface {
 public:
  RpcLinkBase(std::shared_ptr<Wire> w, bool dialed)
      : RpcLinkBase(std::move(w), dialed, kj::newPromiseAndFulfiller<capnp::Capability::Client>()) {}

  RpcLinkBase(std::shared_ptr<Wire> w, bool dialed, kj::PromiseFulfillerPair<capnp::Capability::Client> bootstrap)
      : w_(std::move(w)),
        bootstrap_(kj::mv(bootstrap.fulfiller)),
        dialed_(dialed),
        stream_(kj::heap<SealedStream>(w_)),
        network_(kj::heap<capnp::TwoPartyVatNetwork>(*stream_,
                                                      dialed ? capnp::rpc::twoparty::Side::CLIENT
                                                             : capnp::rpc::twoparty::Side::SERVER,
                                                      reader_options(w_->options))),
        rpc_(kj::heap<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>(
            capnp::makeRpcServer(*network_, capnp::Capability::Client(kj::mv(bootstrap.promise))))),
        disconnected_(network_->onDisconnect().fork()) {
    if (w_->options.flow_limit_bytes > 0) rpc_->setFlowLimit(w_->options.flow_limit_bytes / sizeof(capnp::word));
    // The client side of a two-party network starts reading only when it first connects: ask
    // for the peer's bootstrap now, so a peer that closes is noticed even if the owner never
    // calls it (on_disconnect promises "either side, any reason").
    peer_cap_ = bootstrap_of_peer();
  }

  ~RpcLinkBase() noexcept override {
    peer_cap_ = nullptr;
    rpc_ = nullptr;
    network_ = nullptr;
    stream_ = nullptr;
    w_->close_socket();
  }

  capnp::Capability::Client peer_bootstrap() override { return peer_cap_; }

  void serve(capnp::Capability::Client bootstrap) override {
    if (bootstrap_->isWaiting()) bootstrap_->fulfill(kj::mv(bootstrap));
  }

  kj::Promise<void> on_disconnect() override { return disconnected_.addBranch(); }

  void hold_finishes(bool hold) {
    w_->hold = hold;
    if (hold || w_->held.empty()) return;
    // The held frames go now; a failure is the wire's write error, seen by the next call.
    std::vector<std::uint8_t> out;
    out.swap(w_->held);
    (void)send_bytes(w_, out);
  }

  void close() override {
    std::vector<std::uint8_t> out;
    out.swap(w_->held);
    if (w_->channel->seal_close(out).ok() && !out.empty() && w_->write_error.ok() && !w_->writing &&
        w_->out.empty()) {
      // Best effort: the close frame goes out if the socket takes it at once.
      boost::system::error_code ec;
      asio::write(w_->socket, asio::buffer(out), ec);
    }
    w_->close_socket();
  }

  LinkStats stats() const noexcept override { return w_->stats; }

 protected:
  bool dialed_flag() const noexcept { return dialed_; }

 private:
  capnp::Capability::Client bootstrap_of_peer() {
    capnp::MallocMessageBuilder message(8);
    auto vat = message.initRoot<capnp::rpc::twoparty::VatId>();
    vat.setSide(dialed_ ? capnp::rpc::twoparty::Side::SERVER : capnp::rpc::twoparty::Side::CLIENT);
    return rpc_->bootstrap(vat);
  }

 private:
  static capnp::ReaderOptions reader_options(const LinkOptions& o) {
    capnp::ReaderOptions r;
    r.traversalLimitInWords = o.traversal_limit_words;
    r.nestingLimit = o.nesting_limit;
    return r;
  }

  std::shared_ptr<Wire> w_;
  kj::Own<kj::PromiseFulfiller<capnp::Capability::Client>> bootstrap_;
  bool dialed_;
  kj::Own<SealedStream> stream_;
  kj::Own<capnp::TwoPartyVatNetwork> network_;
  kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpc_;
  kj::ForkedPromise<void> disconnected_;
  capnp::Capability::Client peer_cap_ = nullptr;
};

class LinkImpl final : public RpcLinkBase<Link> {
 public:
  LinkImpl(std::shared_ptr<Wire> w, security::Certificate peer, bool dialed, std::string remote)
      : RpcLinkBase<Link>(std::move(w), dialed), peer_(std::move(peer)), remote_(std::move(remote)) {}
  const security::Certificate& peer() const noexcept override { return peer_; }
  bool dialed() const noexcept override { return dialed_flag(); }
  const std::string& remote() const noexcept override { return remote_; }

 private:
  security::Certificate peer_;
  std::string remote_;
};

class LocalLinkImpl final : public RpcLinkBase<LocalLink> {
 public:
  LocalLinkImpl(std::shared_ptr<Wire> w, bool dialed, PeerCredentials creds)
      : RpcLinkBase<LocalLink>(std::move(w), dialed), creds_(creds) {}
  const PeerCredentials& credentials() const noexcept override { return creds_; }
  void hold_finishes(bool hold) override { RpcLinkBase<LocalLink>::hold_finishes(hold); }

 private:
  PeerCredentials creds_;
};

// ---------------------------------------------------------------------------------------------
// The handshake, driven by Asio with a deadline.

struct HandshakeResult {
  std::shared_ptr<Wire> wire;
  security::Certificate peer;
  std::string remote;
};

class HandshakeOp : public std::enable_shared_from_this<HandshakeOp> {
 public:
  using Done = std::function<void(Result<HandshakeResult>)>;

  HandshakeOp(tcp::socket socket, security::SecureHandshake hs, LinkOptions options, Done done)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), hs_(std::move(hs)), options_(options),
        done_(std::move(done)) {}

  void start(bool initiator) {
    remote_ = endpoint_text(socket_);
    timer_.expires_after(std::chrono::nanoseconds(options_.handshake_timeout.ns()));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec) return;
      self->fail(Status(Code::kUnavailable, str_cat("handshake timeout: not complete after ",
                                                    self->options_.handshake_timeout.ns() / 1'000'000, " ms")));
    });
    if (initiator) {
      Status st = hs_.start();
      if (!st.ok()) return fail(st);
      flush();
    }
    read();
  }

  void cancel() { fail(Status(Code::kUnavailable, "handshake cancelled")); }

 private:
  void flush() {
    auto out = hs_.take_output();
    if (out.empty()) return;
    bytes_out_ += out.size();
    auto buf = std::make_shared<std::vector<std::uint8_t>>(std::move(out));
    ++writes_;
    asio::async_write(socket_, asio::buffer(*buf),
                      [self = shared_from_this(), buf](const boost::system::error_code& ec, std::size_t) {
                        --self->writes_;
                        if (ec) return self->fail(Status(Code::kUnavailable, "handshake send failed: " + ec.message()));
                        self->maybe_complete();
                      });
  }

  void read() {
    socket_.async_read_some(asio::buffer(buf_), [self = shared_from_this()](const boost::system::error_code& ec,
                                                                            std::size_t n) {
      if (self->finished_) return;
      if (ec) {
        return self->fail(Status(Code::kUnavailable, ec == asio::error::eof
                                                         ? std::string("peer closed during the handshake")
                                                         : "handshake receive failed: " + ec.message()));
      }
      self->bytes_in_ += n;
      Status st = self->hs_.receive(std::span<const std::uint8_t>(self->buf_.data(), n));
      if (!st.ok()) return self->fail(st);
      self->flush();
      if (self->hs_.is_complete()) return self->maybe_complete();
      self->read();
    });
  }

  void maybe_complete() {
    if (finished_ || !hs_.is_complete() || writes_ > 0) return;
    finished_ = true;
    timer_.cancel();
    security::Certificate peer = hs_.peer_certificate();
    auto channel = hs_.into_channel(now_mono());
    if (!channel.ok()) {
      boost::system::error_code ignored;
      socket_.close(ignored);
      return done_(channel.status().with_context(remote_));
    }
    auto wire = std::make_shared<Wire>(Socket(std::move(socket_)), std::make_unique<ChannelFramer>(std::move(*channel)), options_);
    wire->stats.bytes_in = bytes_in_;
    wire->stats.bytes_out = bytes_out_;
    done_(HandshakeResult{std::move(wire), std::move(peer), remote_});
  }

  void fail(Status st) {
    if (finished_) return;
    finished_ = true;
    boost::system::error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
    done_(st.with_context(remote_));
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  security::SecureHandshake hs_;
  LinkOptions options_;
  Done done_;
  std::array<std::uint8_t, 4096> buf_{};
  std::string remote_;
  int writes_ = 0;
  bool finished_ = false;
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
};

Result<security::SecureHandshake> make_handshake(const LinkSecurity& sec, const LinkOptions& options,
                                                 security::noise::Role role) {
  if (sec.identity == nullptr || sec.anchor == nullptr || !sec.revocations || !sec.trusted_now) {
    return Status(Code::kInvalidArgument, "LinkSecurity needs an identity, a trust anchor, revocations and a clock");
  }
  security::HandshakeSetup setup;
  setup.role = role;
  setup.identity = sec.identity;
  setup.certificate = sec.certificate;
  setup.anchor = sec.anchor;
  setup.revocations = &sec.revocations();
  setup.accepted_roles = sec.accepted_roles;
  setup.trusted_now = sec.trusted_now();
  std::array<std::uint8_t, security::noise::kDhLen> eph{};
  randombytes_buf(eph.data(), eph.size());
  setup.ephemeral = security::noise::KeyPair::from_private(eph);
  sodium_memzero(eph.data(), eph.size());
  setup.channel_limits.max_payload_bytes = options.max_message_bytes;
  setup.channel_limits.rekey_after_messages = options.rekey_after_messages;
  setup.channel_limits.rekey_after = options.rekey_after;
  return security::SecureHandshake::create(std::move(setup));
}

class ListenerImpl final : public Listener {
 public:
  ListenerImpl(KjLoop& loop, tcp::acceptor acceptor, const LinkSecurity& sec, LinkOptions options,
               ListenerLimits limits, std::function<void(kj::Own<Link>)> on_link,
               std::function<void(const Status&, const std::string&)> on_refused)
      : loop_(loop),
        acceptor_(std::move(acceptor)),
        sec_(sec),
        options_(options),
        limits_(limits),
        on_link_(std::move(on_link)),
        on_refused_(std::move(on_refused)) {
    port_ = acceptor_.local_endpoint().port();
  }

  ~ListenerImpl() override {
    *alive_ = false;
    boost::system::error_code ec;
    acceptor_.close(ec);
    for (auto& [id, op] : pending_) {
      if (auto p = op.lock()) p->cancel();
    }
  }

  void accept() {
    acceptor_.async_accept([this, a = alive_](const boost::system::error_code& ec, tcp::socket socket) {
      if (!*a) return;
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        // EMFILE and friends: keep accepting (the next accept may succeed once links close).
        if (on_refused_) on_refused_(Status(Code::kIo, "accept failed: " + ec.message()), "");
        accept();
        return;
      }
      ++stats_.accepted;
      on_socket(std::move(socket));
      accept();
    });
  }

  std::uint16_t port() const noexcept override { return port_; }
  ListenerStats stats() const noexcept override {
    ListenerStats s = stats_;
    s.pending = pending_.size();
    return s;
  }
  void set_links_alive(std::size_t n) noexcept override { links_alive_ = n; }

 private:
  void on_socket(tcp::socket socket) {
    if (pending_.size() >= limits_.max_pending_handshakes) {
      ++stats_.refused_pending;
      std::string remote = endpoint_text(socket);
      boost::system::error_code ignored;
      socket.close(ignored);
      if (on_refused_) {
        on_refused_(Status(Detail::kQueueFull, str_cat("handshakes in progress reached max_pending_handshakes ",
                                                       limits_.max_pending_handshakes)),
                    remote);
      }
      return;
    }
    boost::system::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto hs = make_handshake(sec_, options_, security::noise::Role::kResponder);
    if (!hs.ok()) {
      if (on_refused_) on_refused_(hs.status(), endpoint_text(socket));
      return;
    }
    const std::uint64_t id = next_id_++;
    auto op = std::make_shared<HandshakeOp>(
        std::move(socket), std::move(*hs), options_, [this, a = alive_, id](Result<HandshakeResult> r) {
          if (!*a) return;
          pending_.erase(id);
          if (!r.ok()) {
            ++stats_.handshakes_failed;
            if (on_refused_) on_refused_(r.status(), r.status().context());
            return;
          }
          ++stats_.handshakes_ok;
          if (links_alive_ >= limits_.max_links) {
            ++stats_.refused_links;
            r->wire->close_socket();
            if (on_refused_) {
              on_refused_(Status(Detail::kQueueFull, str_cat("links alive reached max_links ", limits_.max_links)),
                          r->remote);
            }
            return;
          }
          auto link = kj::heap<LinkImpl>(r->wire, std::move(r->peer), false, r->remote);
          on_link_(kj::mv(link));
        });
    pending_.emplace(id, op);
    op->start(false);
  }

  KjLoop& loop_;
  tcp::acceptor acceptor_;
  const LinkSecurity& sec_;
  LinkOptions options_;
  ListenerLimits limits_;
  std::function<void(kj::Own<Link>)> on_link_;
  std::function<void(const Status&, const std::string&)> on_refused_;
  std::map<std::uint64_t, std::weak_ptr<HandshakeOp>> pending_;
  std::uint64_t next_id_ = 1;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  ListenerStats stats_;
  std::size_t links_alive_ = 0;
  std::uint16_t port_ = 0;
};


// ---------------------------------------------------------------------------------------------
// Local links (Unix domain sockets).

PeerCredentials credentials_of(Socket& s) {
  PeerCredentials c;
  struct ucred uc {};
  socklen_t len = sizeof uc;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &uc, &len) == 0) {
    c.uid = uc.uid;
    c.gid = uc.gid;
    c.pid = uc.pid;
  }
  return c;
}

class LocalListenerImpl final : public LocalListener {
 public:
  LocalListenerImpl(asio::local::stream_protocol::acceptor acceptor, std::string path, LinkOptions options,
                    LocalListenerOptions local, std::function<void(kj::Own<LocalLink>)> on_client,
                    std::function<void(LocalSocket)> on_socket, std::function<void(const Status&)> on_refused)
      : acceptor_(std::move(acceptor)),
        path_(std::move(path)),
        options_(options),
        local_(local),
        on_client_(std::move(on_client)),
        on_socket_(std::move(on_socket)),
        on_refused_(std::move(on_refused)) {}

  ~LocalListenerImpl() override {
    *alive_ = false;
    boost::system::error_code ec;
    acceptor_.close(ec);
    ::unlink(path_.c_str());
  }

  void accept() {
    acceptor_.async_accept([this, a = alive_](const boost::system::error_code& ec,
                                              asio::local::stream_protocol::socket socket) {
      if (!*a) return;
      if (ec) {
        if (ec == asio::error::operation_aborted) return;
        if (on_refused_) on_refused_(Status(Code::kIo, "accept failed: " + ec.message()));
        accept();
        return;
      }
      ++stats_.accepted;
      Socket s(std::move(socket));
      if (alive_clients_ >= local_.max_clients) {
        ++stats_.refused_links;
        boost::system::error_code ignored;
        s.close(ignored);
        if (on_refused_) {
          on_refused_(Status(Detail::kQueueFull, str_cat("clients connected reached max_clients ", local_.max_clients)));
        }
      } else {
        PeerCredentials creds = credentials_of(s);
        if (on_socket_) {
          boost::system::error_code rec;
          const int fd = s.release(rec);
          if (rec) {
            if (on_refused_) on_refused_(Status(Code::kIo, "cannot hand over an accepted client: " + rec.message()));
          } else {
            on_socket_(LocalSocket(fd, creds));
          }
        } else {
          auto wire = std::make_shared<Wire>(std::move(s), std::make_unique<PlainFramer>(options_.max_message_bytes), options_);
          on_client_(kj::heap<LocalLinkImpl>(wire, false, creds));
        }
      }
      accept();
    });
  }

  const std::string& path() const noexcept override { return path_; }
  ListenerStats stats() const noexcept override { return stats_; }
  void set_clients_alive(std::size_t n) noexcept override { alive_clients_ = n; }

 private:
  asio::local::stream_protocol::acceptor acceptor_;
  std::string path_;
  LinkOptions options_;
  LocalListenerOptions local_;
  std::function<void(kj::Own<LocalLink>)> on_client_;
  std::function<void(LocalSocket)> on_socket_;  // set: clients are handed over as sockets
  std::function<void(const Status&)> on_refused_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  ListenerStats stats_;
  std::size_t alive_clients_ = 0;
};

Result<std::unique_ptr<LocalListener>> listen_local_with(KjLoop& loop, const std::string& path, LinkOptions options,
                                                         LocalListenerOptions local,
                                                         std::function<void(kj::Own<LocalLink>)> on_client,
                                                         std::function<void(LocalSocket)> on_socket,
                                                         std::function<void(const Status&)> on_refused) {
  if (path.empty() || path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status(Code::kInvalidArgument, str_cat("socket path '", path, "' must be 1 to ",
                                                  sizeof(sockaddr_un{}.sun_path) - 1, " bytes, is ", path.size()));
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status(Code::kIo, "a file that is not a socket is in the way", path);
    }
    // A socket file: live (someone answers) or stale (left by a process that died).
    asio::local::stream_protocol::socket probe(loop.io());
    boost::system::error_code ec;
    probe.connect(asio::local::stream_protocol::endpoint(path), ec);
    if (!ec) return Status(Detail::kAlreadyExists, "another process already listens on this socket", path);
    ::unlink(path.c_str());
  }
  boost::system::error_code ec;
  asio::local::stream_protocol::acceptor acceptor(loop.io());
  asio::local::stream_protocol::endpoint ep(path);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status(Code::kIo, "cannot listen: " + ec.message(), path);
  if (::chmod(path.c_str(), static_cast<mode_t>(local.mode)) != 0) {
    return Status(Code::kIo, str_cat("cannot chmod the socket to ", std::oct, local.mode, ": ", std::strerror(errno)), path);
  }
  if (local.group && ::chown(path.c_str(), static_cast<uid_t>(-1), *local.group) != 0) {
    return Status(Code::kIo, str_cat("cannot chown the socket to group ", *local.group, ": ", std::strerror(errno)), path);
  }
  auto l = std::make_unique<LocalListenerImpl>(std::move(acceptor), path, options, local, std::move(on_client),
                                               std::move(on_socket), std::move(on_refused));
  l->accept();
  return std::unique_ptr<LocalListener>(std::move(l));
}

}  // namespace

LocalSocket::~LocalSocket() {
  if (fd_ >= 0) ::close(fd_);
}

LocalSocket& LocalSocket::operator=(LocalSocket&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    creds_ = o.creds_;
    o.fd_ = -1;
  }
  return *this;
}

Result<std::unique_ptr<LocalListener>> listen_local(KjLoop& loop, const std::string& path, LinkOptions options,
                                                    LocalListenerOptions local,
                                                    std::function<void(kj::Own<LocalLink>)> on_client,
                                                    std::function<void(const Status&)> on_refused) {
  return listen_local_with(loop, path, options, local, std::move(on_client), nullptr, std::move(on_refused));
}

Result<std::unique_ptr<LocalListener>> listen_local_sockets(KjLoop& loop, const std::string& path,
                                                            LocalListenerOptions local,
                                                            std::function<void(LocalSocket)> on_client,
                                                            std::function<void(const Status&)> on_refused) {
  return listen_local_with(loop, path, LinkOptions{}, local, nullptr, std::move(on_client), std::move(on_refused));
}

kj::Own<LocalLink> adopt_local(KjLoop& loop, LocalSocket socket, LinkOptions options) {
  const PeerCredentials creds = socket.credentials();
  Socket s(loop.io());
  boost::system::error_code ec;
  const int fd = socket.release();
  if (fd >= 0) s.assign(asio::generic::stream_protocol(AF_UNIX, 0), fd, ec);
  if (fd >= 0 && ec) ::close(fd);
  auto wire = std::make_shared<Wire>(std::move(s), std::make_unique<PlainFramer>(options.max_message_bytes), options);
  // A socket that could not be assigned is not open: the link's first read fails and it ends.
  return kj::heap<LocalLinkImpl>(wire, false, creds);
}

kj::Promise<kj::Own<LocalLink>> connect_local(KjLoop& loop, const std::string& path, LinkOptions options) {
  auto paf = kj::newPromiseAndFulfiller<kj::Own<LocalLink>>();
  auto fulfiller = std::make_shared<kj::Own<kj::PromiseFulfiller<kj::Own<LocalLink>>>>(kj::mv(paf.fulfiller));
  auto socket = std::make_shared<asio::local::stream_protocol::socket>(loop.io());
  socket->async_connect(asio::local::stream_protocol::endpoint(path),
                        [socket, fulfiller, options, path](const boost::system::error_code& ec) {
                          if (!(*fulfiller)->isWaiting()) return;
                          if (ec) {
                            (*fulfiller)->reject(to_exception(
                                Status(Code::kUnavailable, "cannot connect to " + path + ": " + ec.message()),
                                kj::Exception::Type::DISCONNECTED));
                            return;
                          }
                          Socket s(std::move(*socket));
                          PeerCredentials creds = credentials_of(s);
                          auto wire = std::make_shared<Wire>(std::move(s), std::make_unique<PlainFramer>(options.max_message_bytes),
                                                             options);
                          (*fulfiller)->fulfill(kj::heap<LocalLinkImpl>(wire, true, creds));
                        });
  return kj::mv(paf.promise);
}

namespace {
}  // namespace

Status status_of(const kj::Exception& e) {
  kj::StringPtr d = e.getDescription();
  // capnp may prefix the description ("remote exception: ..."): find our tag anywhere.
  const char* tag = std::strstr(d.cStr(), kStatusTag);
  if (tag != nullptr) {
    char* end = nullptr;
    unsigned long code = std::strtoul(tag + std::strlen(kStatusTag), &end, 10);
    std::string message = (end != nullptr && *end == ' ') ? std::string(end + 1) : std::string(d.cStr());
    if (code != 0 && code <= 0xffffffffUL) {
      if (primary_code(static_cast<std::uint32_t>(code)) == Code::kOk) return Status(Code::kInternal, message);
      // The text is Status::to_string() ("not found: ..."): keep the message without the code name.
      const std::string prefix = std::string(code_name(primary_code(static_cast<std::uint32_t>(code)))) + ": ";
      if (message.compare(0, prefix.size(), prefix) == 0) message.erase(0, prefix.size());
      // Rebuild the exact code: Detail values carry the primary code in their low byte.
      return Status(static_cast<Detail>(code), message);
    }
  }
  if (e.getType() == kj::Exception::Type::UNIMPLEMENTED) return Status(Code::kUnimplemented, d.cStr());
  if (e.getType() == kj::Exception::Type::OVERLOADED) return Status(Code::kOverloaded, d.cStr());
  return Status(Code::kUnavailable, d.cStr());
}

kj::Exception exception_of(const Status& st) { return to_exception(st); }

kj::Promise<kj::Own<Link>> dial(KjLoop& loop, std::string host, std::uint16_t port, const LinkSecurity& security,
                                LinkOptions options) {
  auto hs = make_handshake(security, options, security::noise::Role::kInitiator);
  if (!hs.ok()) return to_exception(hs.status());
  auto paf = kj::newPromiseAndFulfiller<HandshakeResult>();
  auto fulfiller = std::make_shared<kj::Own<kj::PromiseFulfiller<HandshakeResult>>>(kj::mv(paf.fulfiller));
  auto resolver = std::make_shared<tcp::resolver>(loop.io());
  auto socket = std::make_shared<tcp::socket>(loop.io());
  auto handshake = std::make_shared<security::SecureHandshake>(std::move(*hs));
  std::string where = host + ":" + std::to_string(port);
  resolver->async_resolve(
      host, std::to_string(port),
      [resolver, socket, handshake, fulfiller, options, where](const boost::system::error_code& ec,
                                                               tcp::resolver::results_type results) {
        if (!(*fulfiller)->isWaiting()) return;
        if (ec) {
          (*fulfiller)->reject(to_exception(Status(Code::kUnavailable, "cannot resolve " + where + ": " + ec.message())));
          return;
        }
        asio::async_connect(*socket, results, [socket, handshake, fulfiller, options, where](
                                                  const boost::system::error_code& cec, const tcp::endpoint&) {
          if (!(*fulfiller)->isWaiting()) return;
          if (cec) {
            (*fulfiller)->reject(to_exception(Status(Code::kUnavailable, "cannot connect to " + where + ": " + cec.message()),
                                              kj::Exception::Type::DISCONNECTED));
            return;
          }
          boost::system::error_code ignored;
          socket->set_option(tcp::no_delay(true), ignored);
          auto op = std::make_shared<HandshakeOp>(std::move(*socket), std::move(*handshake), options,
                                                  [fulfiller](Result<HandshakeResult> r) {
                                                    if (!(*fulfiller)->isWaiting()) {
                                                      if (r.ok()) r->wire->close_socket();
                                                      return;
                                                    }
                                                    if (!r.ok()) {
                                                      (*fulfiller)->reject(to_exception(r.status()));
                                                    } else {
                                                      (*fulfiller)->fulfill(std::move(*r));
                                                    }
                                                  });
          op->start(true);
        });
      });
  return paf.promise.then([](HandshakeResult r) -> kj::Own<Link> {
    return kj::heap<LinkImpl>(r.wire, std::move(r.peer), true, r.remote);
  });
}

Result<std::unique_ptr<Listener>> listen(KjLoop& loop, const std::string& address, std::uint16_t port,
                                         const LinkSecurity& security, LinkOptions options, ListenerLimits limits,
                                         std::function<void(kj::Own<Link>)> on_link,
                                         std::function<void(const Status&, const std::string&)> on_refused) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) return Status(Detail::kMalformed, "listen address '" + address + "' is not an IP address: " + ec.message());
  tcp::acceptor acceptor(loop.io());
  tcp::endpoint ep(addr, port);
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status(Code::kIo, str_cat("cannot listen on ", address, ":", port, ": ", ec.message()));
  auto l = std::make_unique<ListenerImpl>(loop, std::move(acceptor), security, options, limits, std::move(on_link),
                                          std::move(on_refused));
  l->accept();
  return std::unique_ptr<Listener>(std::move(l));
}

}  // namespace shoal::transport

// node/mesh/mesh_host.cpp: the sync engine over RPC links (see mesh_host.hpp).
//
// One engine step: under the node's exclusive lock, give the engine its input (a tick, a peer
// coming up or going down, a message), take its outbox and its next wake-up; outside the lock,
// turn each outgoing message into a call and re-arm the timer. A call the peer makes is the same
// step with the message as input; the engine's reply to that message (it emits exactly one, to
// the caller, for a DeltaBatch, a DigestQuery and a BucketQuery) is taken out of the outbox and
// returned as the call's result.
#include "node/mesh/mesh_host.hpp"

#include <capnp/message.h>
#include <kj/async.h>
#include <kj/debug.h>
#include <sodium.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <variant>

#include "common/random.hpp"
#include "crdt/replica.hpp"
#include "sink/sink_service.hpp"
#include "transport/codec_wire.hpp"
#include "transport/rpc.capnp.h"

namespace shoal::node {
namespace rpc = transport::rpc;

// capnp's Server classes and kj::TaskSet::ErrorHandler have no virtual destructor; ours are
// owned and destroyed as themselves (kj::heap) or by value.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"

namespace {

constexpr const char* kComponent = "mesh";

kj::Exception status_exception(const Status& st) {
  return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                       kj::str("shoal-status ", st.full_code(), " ", st.to_string().c_str()));
}

// The short stable word a metrics label uses for why a handshake failed.
std::string failure_reason(const Status& st) {
  switch (st.detail()) {
    case Detail::kRevoked: return "revoked";
    case Detail::kExpired: return "expired";
    case Detail::kNotYetValid: return "not_yet_valid";
    case Detail::kWrongMesh: return "wrong_mesh";
    case Detail::kUnknownIssuer: return "unknown_issuer";
    case Detail::kBadSignature: return "bad_signature";
    case Detail::kSelfSigned: return "self_signed";
    case Detail::kStaticKeyMismatch: return "static_key_mismatch";
    case Detail::kWrongRole: return "wrong_role";
    case Detail::kDecryptFailed: return "decrypt_failed";
    case Detail::kMalformed: return "malformed";
    case Detail::kTooLarge: return "too_large";
    case Detail::kQueueFull: return "overloaded";
    default: break;
  }
  if (st.message().find("timeout") != std::string::npos) return "timeout";
  if (st.code() == Code::kUnavailable) return "closed";
  return "other";
}

struct Conn {
  std::uint64_t id = 0;
  kj::Own<transport::Link> link;
  security::Certificate cert;
  std::optional<crdt::ReplicaId> peer;
  std::uint32_t protocol = 0;
  Tier tier = Tier::kHot;
  bool up = false;
  bool closed = false;
  int dial = -1;  // index into Impl::dials, or -1 for an accepted link
  std::optional<rpc::ReplicaReader::Client> remote;
  std::optional<rpc::Replica::Client> remote_writer;
};

struct Dial {
  MeshPeerAddress address;
  std::optional<security::SignPublicKey> device;  // learned at the first handshake
  Duration backoff;
  bool busy = false;     // a dial or a scheduled redial is pending
  bool self = false;     // the address is this node: never dialed again
};

}  // namespace

struct MeshHost::Impl final : public kj::TaskSet::ErrorHandler {
  Impl(transport::KjLoop& l, SharedNode& n, RevocationReplica& r, MeshCredentials c, MeshOptions o, Logger* lg)
      : loop(l), node(n), revocations(r), creds(std::move(c)), options(std::move(o)), logger(lg), tasks(*this) {
    std::array<std::uint8_t, 8> seed{};
    randombytes_buf(seed.data(), seed.size());
    std::uint64_t s = 0;
    for (auto b : seed) s = (s << 8) | b;
    rng.emplace(s);
  }

  void taskFailed(kj::Exception&& e) override {
    SHOAL_LOG(logger, kWarn, kComponent, "background task failed: ", e.getDescription().cStr());
  }

  // ---- the engine step -------------------------------------------------------------------

  template <typename F>
  void run_engine(F&& input) {
    if (stopped) return;
    const MonoTime now = now_mono();
    std::vector<Outgoing> out;
    std::optional<MonoTime> next;
    node.write_quiet([&](Node& n) {
      input(n, now);
      n.tick(now);
      out = std::exchange(pending_out, {});  // what serve() left after taking a call's reply
      auto more = n.take_outbox();
      out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
      next = n.next_wakeup();
    });
    after_engine(std::move(out), next);
  }

  void after_engine(std::vector<Outgoing> out, std::optional<MonoTime> next) {
    refresh_revocations();
    for (auto& o : out) dispatch(std::move(o));
    arm(next);
    if (uploader) uploader->poke();  // new buffer entries may be due at the sink
    if (on_step) on_step();
  }

  // One kj timer per earlier wake-up; a later one left pending only runs an idle step. (A timer
  // promise is never replaced from inside its own continuation: kj forbids destroying a promise
  // node while it runs.)
  void arm(std::optional<MonoTime> next) {
    if (!next || stopped) return;
    if (wake_at && *wake_at <= *next) return;
    wake_at = *next;
    std::int64_t ns = (*next - now_mono()).ns();
    if (ns < 0) ns = 0;
    const MonoTime at = *next;
    tasks.add(loop.timer().afterDelay(ns * kj::NANOSECONDS).then([this, at]() {
      if (wake_at && *wake_at == at) wake_at.reset();
      run_engine([](Node&, MonoTime) {});
    }));
  }

  // ---- outgoing: the engine's messages become calls ----------------------------------------

  Conn* conn_for(const crdt::ReplicaId& to) {
    for (auto& [id, c] : conns) {
      if (c->up && c->peer && *c->peer == to) return c.get();
    }
    return nullptr;
  }

  void dispatch(Outgoing o) {
    Conn* c = conn_for(o.to);
    if (c == nullptr || !c->remote) return;  // the peer went down: the engine times the message out
    const std::uint64_t id = c->id;
    const crdt::ReplicaId peer = *c->peer;
    std::visit(
        [&](auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, transport::Hello>) {
            auto req = c->remote->helloRequest();
            transport::write(req.initHello(), m);
            track(id, req.send().ignoreResult(), false);
          } else if constexpr (std::is_same_v<T, transport::DeltaBatch>) {
            if (!c->remote_writer) return;  // our certificate does not let us write to this peer
            auto req = c->remote_writer->pushDeltasRequest();
            transport::write(req.initBatch(), m);
            track(id, req.send().then([this, peer](auto&& resp) { deliver(peer, transport::read(resp.getAck(), limits)); }),
                  false);
          } else if constexpr (std::is_same_v<T, transport::DigestQuery>) {
            if (c->cert.role == security::DeviceRole::kReader) return;  // never import a reader's data
            auto req = c->remote->digestRequest();
            transport::write(req.initQuery(), m);
            track(id, req.send().then([this, peer](auto&& resp) { deliver(peer, transport::read(resp.getReply(), limits)); }),
                  false);
          } else if constexpr (std::is_same_v<T, transport::BucketQuery>) {
            if (c->cert.role == security::DeviceRole::kReader) return;
            auto req = c->remote->bucketsRequest();
            transport::write(req.initQuery(), m);
            track(id, req.send().then([this, peer](auto&& resp) { deliver(peer, transport::read(resp.getReply(), limits)); }),
                  false);
          } else {
            // DeltaAck, DigestReply, BucketReply: only ever the result of a call (serve()).
            SHOAL_LOG(logger, kWarn, kComponent, "dropped a reply the engine sent outside a call to ",
                      peer.to_string());
          }
        },
        o.message);
  }

  // Every call gets the deadline; a failed ping closes the link, a failed sync call is counted
  // (the engine retransmits or abandons on its own timers).
  void track(std::uint64_t id, kj::Promise<void> call, bool is_ping) {
    ++stats.calls_sent;
    tasks.add(loop.timer()
                  .timeoutAfter(options.call_timeout.ns() * kj::NANOSECONDS, kj::mv(call))
                  .catch_([this, id, is_ping](kj::Exception&& e) {
                    ++stats.calls_failed;
                    Status st = transport::status_of(e);
                    SHOAL_LOG(logger, kDebug, kComponent, is_ping ? "ping" : "call", " to link ", id,
                              " failed: ", st.to_string());
                    if (is_ping) close_conn(id, "keepalive failed: " + st.to_string());
                  }));
  }

  template <typename T>
  void deliver(const crdt::ReplicaId& peer, Result<T> reply) {
    if (!reply.ok()) {
      ++stats.calls_failed;
      SHOAL_LOG(logger, kWarn, kComponent, "invalid reply from ", peer.to_string(), ": ",
                reply.status().to_string());
      return;
    }
    if (conn_for(peer) == nullptr) return;
    Status st;
    run_engine([&](Node& n, MonoTime now) { st = n.receive(peer, transport::Message(std::move(*reply)), now); });
    if (!st.ok()) {
      SHOAL_LOG(logger, kWarn, kComponent, "reply from ", peer.to_string(), " rejected: ", st.to_string());
    }
  }

  // ---- incoming: a call becomes the engine's input; its reply becomes the result ------------

  template <typename Reply>
  Result<Reply> serve(std::uint64_t id, transport::Message message, std::uint64_t session) {
    auto it = conns.find(id);
    if (it == conns.end() || it->second->closed) return Status(Detail::kSessionClosed, "link closed");
    Conn& c = *it->second;
    if (!c.up || !c.peer) return Status(Code::kUnavailable, "call before the introduction");
    ++stats.calls_served;
    const crdt::ReplicaId peer = *c.peer;
    Status st;
    std::optional<Reply> reply;
    run_engine([&](Node& n, MonoTime now) {
      st = n.receive(peer, message, now);
      // Take the engine's reply to this call out of the outbox (the rest is dispatched).
      auto out = n.take_outbox();
      for (auto o = out.begin(); o != out.end(); ++o) {
        if (!(o->to == peer)) continue;
        if (auto* r = std::get_if<Reply>(&o->message)) {
          bool matches = true;
          if constexpr (!std::is_same_v<Reply, transport::DeltaAck>) matches = r->session == session;
          if (matches) {
            reply = std::move(*r);
            out.erase(o);
            break;
          }
        }
      }
      // Put the rest back in front of whatever tick() adds; run_engine takes the outbox again.
      pending_out = std::move(out);
    });
    if (!st.ok()) {
      ++stats.calls_refused;
      return st;
    }
    if (!reply) {
      ++stats.calls_refused;
      return Status(Code::kInternal, "the sync engine produced no reply to this call");
    }
    return std::move(*reply);
  }

  Status serve_hello(std::uint64_t id, transport::Hello hello) {
    auto it = conns.find(id);
    if (it == conns.end() || it->second->closed) return Status(Detail::kSessionClosed, "link closed");
    Conn& c = *it->second;
    if (!c.up || !c.peer) return Status(Code::kUnavailable, "hello before the introduction");
    ++stats.calls_served;
    // A reader may not change the catalogue (which collections exist).
    if (c.cert.role == security::DeviceRole::kReader) hello.catalogue.clear();
    const crdt::ReplicaId peer = *c.peer;
    Status st;
    run_engine([&](Node& n, MonoTime now) { st = n.receive(peer, transport::Message(std::move(hello)), now); });
    if (!st.ok()) ++stats.calls_refused;
    return st;
  }

  // Replica.search: the caller's certificate must grant read on the collection.
  Result<std::vector<Hit>> serve_search(std::uint64_t id, const std::string& collection,
                                        capnp::List<float>::Reader query, std::uint32_t k, std::uint32_t ef) {
    auto it = conns.find(id);
    if (it == conns.end() || it->second->closed) return Status(Detail::kSessionClosed, "link closed");
    if (!it->second->cert.access(collection).read) {
      ++stats.calls_refused;
      return Status(Detail::kWrongRole, "certificate of " + security::key_label(it->second->cert.device_key) +
                                            " grants no read on collection '" + collection + "'");
    }
    ++stats.calls_served;
    std::vector<float> q;
    q.reserve(query.size());
    for (float x : query) q.push_back(x);
    SearchOptions o;
    o.k = k;
    o.ef = ef;
    o.with_metadata = false;
    auto hits = node.search(collection, q, o);
    if (!hits.ok()) ++stats.calls_refused;
    return hits;
  }

  void note_delta(std::uint64_t id) {
    auto it = conns.find(id);
    if (it != conns.end() && it->second->peer) last_delta[*it->second->peer] = now_mono();
  }

  // Write grants: every named collection in the batch must be writable by the sender's
  // certificate (the catalogue item, with no name, needs a member).
  Status check_write(std::uint64_t id, const transport::DeltaBatch& batch) {
    auto it = conns.find(id);
    if (it == conns.end()) return Status(Detail::kSessionClosed, "link closed");
    const security::Certificate& cert = it->second->cert;
    for (const auto& item : batch.items) {
      if (item.collection.empty()) continue;
      if (!cert.access(item.collection).write) {
        return Status(Detail::kWrongRole, "certificate of " + security::key_label(cert.device_key) +
                                              " grants no write on collection '" + item.collection + "'");
      }
    }
    return {};
  }

  // ---- links -----------------------------------------------------------------------------

  void on_link(kj::Own<transport::Link> link, int dial) {
    if (stopped) {
      link->close();
      return;
    }
    const security::SignPublicKey key = link->peer().device_key;
    const security::SignPublicKey own = creds.identity->public_key();
    if (dial >= 0) dials[dial].device = key;
    if (key == own) {
      if (dial >= 0) dials[dial].self = true;
      link->close();
      return;
    }
    if (revoked_copy.contains(key)) {
      link->close();
      return;
    }
    if (auto e = by_device.find(key); e != by_device.end()) {
      Conn& old = *conns.at(e->second);
      bool keep_new = true;
      if (link->dialed() != old.link->dialed()) {
        // Simultaneous dials: both ends keep the link dialed by the smaller device key.
        const security::SignPublicKey& dialer = link->dialed() ? own : key;
        keep_new = dialer == std::min(own, key);
      }
      ++stats.duplicate_links;
      if (!keep_new) {
        link->close();
        return;
      }
      close_conn(old.id, "replaced by a newer link from the same device");
    }
    auto c = std::make_unique<Conn>();
    c->id = next_conn_id++;
    c->cert = link->peer();
    c->dial = dial;
    c->tier = options.accepted_tier;
    for (auto& d : dials) {
      if (d.device && *d.device == key) c->tier = d.address.tier;
    }
    if (dial >= 0) c->tier = dials[dial].address.tier;
    c->link = kj::mv(link);
    const std::uint64_t id = c->id;
    by_device[key] = id;
    Conn& conn = *c;
    conns.emplace(id, std::move(c));
    ++stats.links_opened;
    if (listener) listener->set_links_alive(conns.size());
    SHOAL_LOG(logger, kInfo, kComponent, "link ", id, " to ", security::key_label(key), " at ",
              conn.link->remote(), conn.link->dialed() ? " (dialed)" : " (accepted)");

    conn.link->serve(kj::heap<GateServer>(*this, id));
    tasks.add(conn.link->on_disconnect().then([this, id]() { close_conn(id, "disconnected"); },
                                              [this, id](kj::Exception&& e) {
                                                close_conn(id, "disconnected: " + transport::status_of(e).to_string());
                                              }));
    // Introduce ourselves; the Replica capability comes back pipelined, usable at once.
    auto gate = conn.link->peer_bootstrap().castAs<rpc::Gate>();
    auto req = gate.introduceRequest();
    fill_intro(req.initIntro());
    auto answer = req.send();
    conn.remote = answer.getReplica();
    if (creds_role != security::DeviceRole::kReader) conn.remote_writer = conn.remote->castAs<rpc::Replica>();
    tasks.add(answer.then(
        [this, id](auto&& resp) {
          crdt::ReplicaId peer;
          auto r = resp.getIntro().getReplica();
          if (!crdt::ReplicaId::decode(std::string_view(reinterpret_cast<const char*>(r.begin()), r.size()), peer)) {
            close_conn(id, "introduction with a malformed replica id");
            return;
          }
          introduced(id, peer, resp.getProtocol());
        },
        [this, id](kj::Exception&& e) {
          Status st = transport::status_of(e);
          if (st.detail() == Detail::kVersionMismatch) ++stats.version_refusals;
          SHOAL_LOG(logger, kWarn, kComponent, "link ", id, ": introduction refused: ", st.to_string());
          close_conn(id, "introduction refused");
        }));
    tasks.add(loop.timer().afterDelay(options.introduce_timeout.ns() * kj::NANOSECONDS).then([this, id]() {
      auto it = conns.find(id);
      if (it != conns.end() && !it->second->up) close_conn(id, "no introduction in time");
    }));
  }

  void fill_intro(rpc::Intro::Builder b) {
    const std::string replica = node.replica().encode();
    b.setReplica(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(replica.data()), replica.size()));
    b.setMinProtocol(options.min_protocol);
    b.setMaxProtocol(options.max_protocol);
  }

  // The protocol both speak: the highest in both ranges.
  Result<std::uint32_t> negotiate(std::uint32_t their_min, std::uint32_t their_max) const {
    const std::uint32_t hi = std::min(options.max_protocol, their_max);
    const std::uint32_t lo = std::max(options.min_protocol, their_min);
    if (their_min > their_max || hi < lo) {
      return Status(Detail::kVersionMismatch,
                    str_cat("no common sync protocol version: the peer speaks ", their_min, "..", their_max,
                            ", this node speaks ", options.min_protocol, "..", options.max_protocol));
    }
    return hi;
  }

  // The peer named its replica (in its call or its answer): the engine learns of it once.
  void introduced(std::uint64_t id, const crdt::ReplicaId& peer, std::uint32_t protocol) {
    auto it = conns.find(id);
    if (it == conns.end() || it->second->closed) return;
    Conn& c = *it->second;
    if (c.peer) {
      if (!(*c.peer == peer)) close_conn(id, "the peer named two different replica ids");
      return;
    }
    for (auto& [oid, o] : conns) {
      if (oid != id && o->peer && o->peer->identity == peer.identity && !o->closed) {
        close_conn(id, "replica " + peer.to_string() + " is already up on another device's link");
        return;
      }
    }
    c.peer = peer;
    c.protocol = protocol;
    c.up = true;
    if (c.dial >= 0) dials[static_cast<std::size_t>(c.dial)].backoff = options.backoff_min;
    SHOAL_LOG(logger, kInfo, kComponent, "peer ", peer.to_string(), " up on link ", id, " (",
              security::key_label(c.cert.device_key), ", ", security::role_name(c.cert.role), ", protocol ", protocol,
              ")");
    const Tier tier = c.tier;
    run_engine([&](Node& n, MonoTime now) { n.peer_up(peer, tier, now); });
  }

  void close_conn(std::uint64_t id, const std::string& why) {
    auto it = conns.find(id);
    if (it == conns.end() || it->second->closed) return;
    Conn& c = *it->second;
    c.closed = true;
    ++stats.links_closed;
    SHOAL_LOG(logger, kInfo, kComponent, "link ", id, " to ", security::key_label(c.cert.device_key),
              " closed: ", why);
    c.link->close();
    if (auto d = by_device.find(c.cert.device_key); d != by_device.end() && d->second == id) by_device.erase(d);
    if (c.up && c.peer) {
      const crdt::ReplicaId peer = *c.peer;
      c.up = false;
      run_engine([&](Node& n, MonoTime now) { n.peer_down(peer, now); });
    }
    const security::SignPublicKey key = c.cert.device_key;
    // Destroyed on a later turn: this may run inside a callback of the link's own RPC system.
    tasks.add(kj::evalLater([this, id]() {
      conns.erase(id);
      if (listener) listener->set_links_alive(conns.size());
    }));
    for (std::size_t i = 0; i < dials.size(); ++i) {
      if (static_cast<int>(i) == c.dial || (dials[i].device && *dials[i].device == key)) schedule_redial(i);
    }
  }

  bool connected(const Dial& d) const { return d.device && by_device.count(*d.device) != 0; }

  void start_dial(std::size_t i) {
    if (stopped || dials[i].self) return;
    dials[i].busy = true;
    ++stats.dials;
    const MeshPeerAddress a = dials[i].address;
    tasks.add(transport::dial(loop, a.host, a.port, linksec, options.link)
                  .then(
                      [this, i](kj::Own<transport::Link> link) {
                        // The backoff is reset only once the peer introduced itself (introduced()):
                        // a device whose handshakes complete here but which the peer then refuses
                        // (revoked, wrong version) keeps backing off.
                        dials[i].busy = false;
                        on_link(kj::mv(link), static_cast<int>(i));
                        if (!connected(dials[i])) schedule_redial(i);
                      },
                      [this, i, a](kj::Exception&& e) {
                        dials[i].busy = false;
                        ++stats.dial_failures;
                        Status st = transport::status_of(e);
                        if (st.code() != Code::kUnavailable || st.message().find("timeout") != std::string::npos) {
                          ++stats.handshake_failures[failure_reason(st)];  // not a mere refused connect
                        }
                        SHOAL_LOG(logger, kDebug, kComponent, "dial ", a.host, ":", a.port, " failed: ",
                                  transport::status_of(e).to_string());
                        schedule_redial(i);
                      }));
  }

  void schedule_redial(std::size_t i) {
    Dial& d = dials[i];
    if (stopped || stopping || d.busy || d.self) return;
    d.busy = true;
    const std::int64_t w = std::max<std::int64_t>(d.backoff.ns(), 1);
    const std::int64_t wait = w / 2 + static_cast<std::int64_t>(rng->uniform(static_cast<std::uint64_t>(w / 2 + 1)));
    d.backoff = std::min(d.backoff * 2, options.backoff_max);
    tasks.add(loop.timer().afterDelay(wait * kj::NANOSECONDS).then([this, i]() {
      dials[i].busy = false;
      if (!connected(dials[i])) start_dial(i);
    }));
  }

  void ping_all() {
    for (auto& [id, c] : conns) {
      if (!c->up || c->closed || !c->remote) continue;
      track(id, c->remote->pingRequest().send().ignoreResult(), true);
    }
    tasks.add(loop.timer().afterDelay(options.ping_interval.ns() * kj::NANOSECONDS).then([this]() {
      if (!stopped) ping_all();
    }));
  }

  // A revocation (from a peer's hello or the operator) closes the revoked device's links at once.
  void refresh_revocations() {
    bool grew = false;
    node.read([&](const Node&) {
      if (revocations.set().size() != revoked_copy.size()) {
        revoked_copy = revocations.set();
        grew = true;
      }
    });
    if (!grew) return;
    std::vector<std::uint64_t> doomed;
    for (auto& [id, c] : conns) {
      if (!c->closed && revoked_copy.contains(c->cert.device_key)) doomed.push_back(id);
    }
    for (auto id : doomed) {
      ++stats.revoked_closed;
      close_conn(id, "device revoked");
    }
  }

  // ---- discovery ---------------------------------------------------------------------------

  static std::string to_hex(std::span<const std::uint8_t> b) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (auto x : b) {
      s += d[x >> 4];
      s += d[x & 15];
    }
    return s;
  }

  Status start_discovery(const security::MeshId& mesh_id) {
    std::array<std::uint8_t, 8> h{};
    crypto_generichash(h.data(), h.size(), mesh_id.data(), mesh_id.size(), nullptr, 0);
    mesh_hash = to_hex(h);
    own_device_hex = to_hex(creds.identity->public_key());
    transport::Announcement self;
    self.device_id = own_device_hex;
    self.protocol_version = options.max_protocol;
    self.mesh_hash = mesh_hash;
    self.port = listener->port();
    transport::DiscoveryCallbacks cb;
    cb.found = [this](const transport::Sighting& s) {
      if (stopped || stopping || s.device_id == own_device_hex || s.mesh_hash != mesh_hash) return;
      if (s.protocol_version < options.min_protocol) return;  // it speaks nothing we do
      ++stats.discovered;
      SHOAL_LOG(logger, kInfo, kComponent, "discovered device ", s.device_id.substr(0, 16), " at ", s.address, ":",
                s.port);
      add_peer(MeshPeerAddress{s.address, s.port, Tier::kHot});
      loop.kick();
    };
    cb.lost = [this](const std::string& device) {
      SHOAL_LOG(logger, kInfo, kComponent, "device ", device.substr(0, 16), " said goodbye or expired");
    };
    auto d = transport::start_mdns_discovery(loop.io(), options.discovery_options, std::move(self), std::move(cb));
    if (!d.ok()) return d.status();
    discovery = std::move(*d);
    return {};
  }

  void add_peer(const MeshPeerAddress& peer) {
    for (auto& d : dials) {
      if (d.address.host == peer.host && d.address.port == peer.port) {
        if (!d.busy && !connected(d) && !d.self) start_dial(static_cast<std::size_t>(&d - dials.data()));
        return;
      }
    }
    dials.push_back(Dial{peer, std::nullopt, options.backoff_min});
    start_dial(dials.size() - 1);
  }

  // ---- the capabilities a peer is served ------------------------------------------------

  template <typename Base>
  class ReaderMethods : public Base {
   public:
    ReaderMethods(Impl& host, std::uint64_t id) : host_(host), id_(id) {}

    kj::Promise<void> hello(typename Base::HelloContext ctx) override {
      auto m = transport::read(ctx.getParams().getHello(), host_.limits);
      if (!m.ok()) return status_exception(m.status());
      Status st = host_.serve_hello(id_, std::move(*m));
      if (!st.ok()) return status_exception(st);
      return kj::READY_NOW;
    }
    kj::Promise<void> digest(typename Base::DigestContext ctx) override {
      auto q = transport::read(ctx.getParams().getQuery(), host_.limits);
      if (!q.ok()) return status_exception(q.status());
      const std::uint64_t session = q->session;
      auto r = host_.template serve<transport::DigestReply>(id_, transport::Message(std::move(*q)), session);
      if (!r.ok()) return status_exception(r.status());
      transport::write(ctx.getResults().initReply(), *r);
      return kj::READY_NOW;
    }
    kj::Promise<void> buckets(typename Base::BucketsContext ctx) override {
      auto q = transport::read(ctx.getParams().getQuery(), host_.limits);
      if (!q.ok()) return status_exception(q.status());
      const std::uint64_t session = q->session;
      auto r = host_.template serve<transport::BucketReply>(id_, transport::Message(std::move(*q)), session);
      if (!r.ok()) return status_exception(r.status());
      transport::write(ctx.getResults().initReply(), *r);
      return kj::READY_NOW;
    }
    kj::Promise<void> ping(typename Base::PingContext) override { return kj::READY_NOW; }
    kj::Promise<void> search(typename Base::SearchContext ctx) override {
      auto p = ctx.getParams();
      const std::string collection(reinterpret_cast<const char*>(p.getCollection().begin()), p.getCollection().size());
      auto hits = host_.serve_search(id_, collection, p.getQuery(), p.getK(), p.getEf());
      if (!hits.ok()) return status_exception(hits.status());
      auto list = ctx.getResults().initHits(static_cast<unsigned>(hits->size()));
      for (unsigned i = 0; i < hits->size(); ++i) {
        const auto& h = (*hits)[i];
        list[i].setId(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(h.id.data()), h.id.size()));
        list[i].setDistance(h.distance);
      }
      return kj::READY_NOW;
    }

   protected:
    Impl& host_;
    std::uint64_t id_;
  };

  using ReaderServer = ReaderMethods<rpc::ReplicaReader::Server>;

  class WriterServer final : public ReaderMethods<rpc::Replica::Server> {
   public:
    using ReaderMethods<rpc::Replica::Server>::ReaderMethods;
    kj::Promise<void> pushDeltas(PushDeltasContext ctx) override {
      auto b = transport::read(ctx.getParams().getBatch(), host_.limits);
      if (!b.ok()) return status_exception(b.status());
      Status allowed = host_.check_write(id_, *b);
      if (!allowed.ok()) {
        ++host_.stats.calls_refused;
        return status_exception(allowed);
      }
      auto r = host_.template serve<transport::DeltaAck>(id_, transport::Message(std::move(*b)), 0);
      if (!r.ok()) return status_exception(r.status());
      host_.note_delta(id_);
      transport::write(ctx.getResults().initAck(), *r);
      return kj::READY_NOW;
    }
  };

  class GateServer final : public rpc::Gate::Server {
   public:
    GateServer(Impl& host, std::uint64_t id) : host_(host), id_(id) {}
    kj::Promise<void> introduce(IntroduceContext ctx) override {
      auto it = host_.conns.find(id_);
      if (it == host_.conns.end() || it->second->closed) return status_exception(Status(Detail::kSessionClosed, "link closed"));
      auto intro = ctx.getParams().getIntro();
      auto r = intro.getReplica();
      crdt::ReplicaId peer;
      if (!crdt::ReplicaId::decode(std::string_view(reinterpret_cast<const char*>(r.begin()), r.size()), peer)) {
        return status_exception(
            Status(Detail::kMalformed, str_cat("Intro.replica is ", r.size(), " bytes, expected exactly 20")));
      }
      auto protocol = host_.negotiate(intro.getMinProtocol(), intro.getMaxProtocol());
      if (!protocol.ok()) {
        ++host_.stats.version_refusals;
        SHOAL_LOG(host_.logger, kWarn, kComponent, "refused ", peer.to_string(), ": ",
                  protocol.status().to_string());
        return status_exception(protocol.status());
      }
      auto results = ctx.getResults();
      host_.fill_intro(results.initIntro());
      results.setProtocol(*protocol);
      if (it->second->cert.role == security::DeviceRole::kReader) {
        results.setReplica(kj::heap<ReaderServer>(host_, id_));
      } else {
        results.setReplica(kj::heap<WriterServer>(host_, id_));
      }
      host_.introduced(id_, peer, *protocol);
      return kj::READY_NOW;
    }

   private:
    Impl& host_;
    std::uint64_t id_;
  };

  // ---- state ------------------------------------------------------------------------------

  transport::KjLoop& loop;
  SharedNode& node;
  RevocationReplica& revocations;
  MeshCredentials creds;
  MeshOptions options;
  Logger* logger;
  security::DeviceRole creds_role = security::DeviceRole::kMember;
  transport::DecodeLimits limits;
  security::RevocationSet revoked_copy;
  transport::LinkSecurity linksec;
  std::unique_ptr<transport::Listener> listener;
  std::unique_ptr<transport::Discovery> discovery;
  std::map<std::uint64_t, std::unique_ptr<Conn>> conns;
  std::map<security::SignPublicKey, std::uint64_t> by_device;
  std::uint64_t next_conn_id = 1;
  std::vector<Dial> dials;
  std::vector<Outgoing> pending_out;
  std::optional<Rng> rng;
  MeshStats stats;
  std::shared_ptr<std::atomic<bool>> write_posted = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  bool stopped = false;
  bool stopping = false;
  kj::TaskSet tasks;
  std::optional<MonoTime> wake_at;
  std::string mesh_hash;
  std::string own_device_hex;
  std::size_t observer = 0;                        // SharedNode after-write observer id
  std::function<void()> on_step;                   // MeshHost::set_on_step
  std::map<crdt::ReplicaId, MonoTime> last_delta;  // when a batch from each peer was last applied
  std::unique_ptr<SinkUploader> uploader;          // MeshOptions::sink
};

#pragma GCC diagnostic pop

MeshHost::MeshHost(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MeshHost::~MeshHost() {
  stop();
  *impl_->alive = false;
}

Result<std::unique_ptr<MeshHost>> MeshHost::start(transport::KjLoop& loop, SharedNode& node,
                                                  RevocationReplica& revocations, MeshCredentials credentials,
                                                  MeshOptions options, Logger* logger) {
  if (credentials.identity == nullptr) return Status(Code::kInvalidArgument, "the mesh host needs this device's identity");
  auto own = security::decode_certificate(credentials.certificate);
  if (!own.ok()) return own.status().with_context("this device's certificate");
  if (options.tier_policies) {
    Status st = node.write_quiet([&](Node& n) { return n.set_tier_policies(*options.tier_policies); });
    if (!st.ok()) return st.with_context("tier policies");
  }
  auto impl = std::make_unique<Impl>(loop, node, revocations, std::move(credentials), std::move(options), logger);
  Impl& h = *impl;
  h.creds_role = own->role;
  h.revoked_copy = node.read([&](const Node&) { return revocations.set(); });
  h.linksec.identity = h.creds.identity;
  h.linksec.certificate = h.creds.certificate;
  h.linksec.anchor = &h.creds.anchor;
  h.linksec.revocations = [&h]() -> const security::RevocationSet& { return h.revoked_copy; };
  h.linksec.trusted_now = [] { return now_wall(); };
  auto listener = transport::listen(
      loop, h.options.listen_address, h.options.listen_port, h.linksec, h.options.link, h.options.listener,
      [&h](kj::Own<transport::Link> link) { h.on_link(kj::mv(link), -1); },
      [&h](const Status& st, const std::string& remote) {
        ++h.stats.handshake_failures[failure_reason(st)];
        SHOAL_LOG(h.logger, kInfo, kComponent, "refused a connection from ", remote, ": ", st.to_string());
      });
  if (!listener.ok()) return listener.status();
  h.listener = std::move(*listener);
  for (const auto& p : h.options.peers) {
    h.dials.push_back(Dial{p, std::nullopt, h.options.backoff_min});
  }
  for (std::size_t i = 0; i < h.dials.size(); ++i) h.start_dial(i);
  if (h.options.discovery) {
    Status st = h.start_discovery(own->mesh_id);
    if (!st.ok()) return st.with_context("mDNS discovery");
  }
  if (h.options.sink) {
    auto up = SinkUploader::start(loop, node, h.linksec, *h.options.sink, h.options.sink_feed, logger);
    if (!up.ok()) return up.status().with_context("[sink]");
    h.uploader = std::move(*up);
  }
  h.ping_all();
  auto alive = h.alive;
  auto posted = h.write_posted;
  Impl* raw = impl.get();
  h.observer = node.add_after_write([&loop, alive, posted, raw]() {
    if (posted->exchange(true)) return;
    loop.post([alive, posted, raw]() {
      posted->store(false);
      if (*alive) raw->run_engine([](Node&, MonoTime) {});
    });
  });
  h.run_engine([](Node&, MonoTime) {});
  SHOAL_LOG(logger, kInfo, kComponent, "listening on ", h.options.listen_address, ":", h.listener->port(),
            " as ", node.replica().to_string(), " (", security::key_label(h.creds.identity->public_key()), ")");
  return std::unique_ptr<MeshHost>(new MeshHost(std::move(impl)));
}

std::uint16_t MeshHost::port() const noexcept { return impl_->listener ? impl_->listener->port() : 0; }

void MeshHost::add_peer(const MeshPeerAddress& peer) { impl_->add_peer(peer); }

Status MeshHost::set_tier_policies(TierPolicies policies) {
  Status st;
  impl_->run_engine([&](Node& n, MonoTime) { st = n.set_tier_policies(std::move(policies)); });
  return st;
}

void MeshHost::notify_local_write() {
  // The same path as SharedNode's after-write hook.
  auto alive = impl_->alive;
  auto posted = impl_->write_posted;
  Impl* raw = impl_.get();
  if (posted->exchange(true)) return;
  impl_->loop.post([alive, posted, raw]() {
    posted->store(false);
    if (*alive) raw->run_engine([](Node&, MonoTime) {});
  });
}

kj::Promise<Result<MeshHost::ColdSearch>> MeshHost::search_with_cold(std::string collection, std::vector<float> query,
                                                                     SearchOptions options) {
  Impl& h = *impl_;
  options.with_metadata = false;
  auto local = h.node.read([&](const Node& n) { return n.search(collection, query, options); });
  if (!local.ok()) return Result<ColdSearch>(local.status());
  auto info = h.node.read([&](const Node& n) { return n.collection_info(collection); });
  if (!info.ok()) return Result<ColdSearch>(info.status());
  const std::uint32_t k = options.k;
  auto merge = [&h, collection, k, local = std::move(*local)](Result<ColdAnswer> cold) -> Result<ColdSearch> {
    ColdSearch out;
    std::vector<ColdHit> cold_hits;
    if (cold.ok()) {
      cold_hits = std::move(cold->hits);
      out.sink = std::move(*cold);
    } else {
      out.cold_error = cold.status();
    }
    auto merged = h.node.read([&](const Node& n) { return n.merge_cold_hits(collection, local, cold_hits, k); });
    if (!merged.ok()) return merged.status();
    out.hits = std::move(*merged);
    return out;
  };
  if (!h.uploader) {
    return merge(Result<ColdAnswer>(Status(Code::kUnavailable, "no sink is configured ([sink] address)")));
  }
  return h.uploader->cold_search(collection, std::move(query), k, metric_to_wire_byte(info->spec.metric))
      .then(kj::mv(merge));
}

kj::Promise<Result<MeshHost::ColdGet>> MeshHost::get_with_cold(std::string collection, std::string id) {
  Impl& h = *impl_;
  // An answer known now, through a continuation: GCC 12 warns (-Wmaybe-uninitialized, falsely)
  // on kj's immediate promise of this Result.
  auto ready = [](Result<ColdGet> r) {
    return kj::Promise<void>(kj::READY_NOW).then([r = std::move(r)]() mutable { return std::move(r); });
  };
  auto got = h.node.read([&](const Node& n) { return n.get(collection, id); });
  if (!got.ok()) return ready(got.status());
  ColdGet out;
  out.record = std::move(*got);
  if (!out.record.siblings.at(0).evicted) return ready(std::move(out));
  if (!h.uploader) {
    out.cold_error = Status(Detail::kColdUnavailable,
                            str_cat("record '", escape_for_message(id), "' is evicted and no sink is configured"));
    return ready(std::move(out));
  }
  return h.uploader->fetch(collection, id).then(
      [&h, id, out = std::move(out)](Result<std::optional<std::string>> payload) mutable -> Result<ColdGet> {
        Sibling& stub = out.record.siblings.at(0);
        if (!payload.ok() || !*payload) {
          out.cold_error = Status(Detail::kColdUnavailable,
                                  str_cat("record '", escape_for_message(id), "' is evicted and the sink cannot give it: ",
                                          payload.ok() ? std::string("the sink does not have it")
                                                       : payload.status().to_string()));
          return std::move(out);
        }
        auto value = h.node.read([&](const Node& n) { return n.check_refill(id, stub, **payload); });
        if (!value.ok()) {
          out.cold_error = value.status();
          return std::move(out);
        }
        stub.value = std::move(*value);
        stub.evicted = false;
        return std::move(out);
      });
}

namespace {

// Where a bootstrap from the sink stands between its pages.
struct BootstrapRun {
  std::string collection;
  bool create = false;             // the collection is not here: create it from the first page
  std::string after;               // the sink's cursor
  std::set<std::string> ids;       // the ids of every page so far (the last join needs them)
  crdt::CausalContext first_context;  // the sink's context as of the first page (D57)
  MeshHost::SinkBootstrap report;
};

// Joins one page into the node.
Status join_bootstrap_page(SharedNode& node, BootstrapRun& run, const SinkBootstrapPage& page) {
  if (run.create) {
    // The sink keeps the dimension (its live records') and the metric its members' uploads said,
    // and, since D62, the spec they said, whose index options the collection is created with (a
    // sink that has none, or one from before D62: this device's defaults).
    if (page.dimension == 0 || !page.metric) {
      return Status(Detail::kNoSuchCollection,
                    str_cat("collection '", run.collection, "' is not here, and the sink cannot say how to create it (",
                            page.dimension == 0 ? "it holds no live record of it, so no dimension"
                                                : "no upload told it the metric",
                            "): create it with its settings, or let a peer's catalogue bring it"));
    }
    // The index options the sink keeps, else this device's defaults; the name, dimension and
    // metric are the page's.
    CollectionSpec spec = page.spec.value_or(CollectionSpec{});
    spec.name = run.collection;
    spec.dimension = page.dimension;
    spec.metric = *page.metric;
    run.report.options_from_sink = page.spec.has_value();
    SHOAL_RETURN_IF_ERROR(node.write([&](Node& n) { return n.create_collection(spec); }));
    run.create = false;
    run.report.created = true;
    run.report.dimension = spec.dimension;
    run.report.metric = spec.metric;
  }
  const std::size_t before = run.ids.size();
  if (run.after.empty()) {
    SHOAL_ASSIGN_OR_RETURN(run.first_context, sink::bootstrap_context(run.collection, page.context));
  }
  SHOAL_ASSIGN_OR_RETURN(crdt::Delta delta,
                         sink::bootstrap_page_delta(run.collection, page.segment, page.context, page.done, run.ids));
  run.report.records += run.ids.size() - before;
  run.report.bytes += page.segment.size();
  ++run.report.pages;
  return node.write([&](Node& n) {
    return n.join_sink_page(run.collection, std::move(delta), page.done, run.ids, run.first_context);
  });
}

kj::Promise<Result<MeshHost::SinkBootstrap>> next_bootstrap_page(SinkUploader& uploader, SharedNode& node,
                                                                  std::shared_ptr<BootstrapRun> run) {
  return uploader.bootstrap_page(run->collection, run->after)
      .then([&uploader, &node, run](Result<SinkBootstrapPage> page) -> kj::Promise<Result<MeshHost::SinkBootstrap>> {
        if (!page.ok()) return Result<MeshHost::SinkBootstrap>(page.status());
        if (Status st = join_bootstrap_page(node, *run, *page); !st.ok()) return Result<MeshHost::SinkBootstrap>(st);
        if (page->done) return Result<MeshHost::SinkBootstrap>(run->report);
        if (page->next_after <= run->after) {
          return Result<MeshHost::SinkBootstrap>(Status(Detail::kMalformed, "the sink's bootstrap cursor did not advance"));
        }
        run->after = std::move(page->next_after);
        return next_bootstrap_page(uploader, node, run);
      });
}

}  // namespace

kj::Promise<Result<MeshHost::SinkBootstrap>> MeshHost::bootstrap_from_sink(std::string collection) {
  Impl& h = *impl_;
  if (!h.uploader) {
    return Result<SinkBootstrap>(Status(Code::kUnavailable, "no sink is configured ([sink] address)"));
  }
  auto info = h.node.read([&](const Node& n) { return n.collection_info(collection); });
  // A collection this device lacks is created from the sink's first page (its dimension and metric).
  const bool create = !info.ok() && info.status().detail() == Detail::kNoSuchCollection;
  if (!info.ok() && !create) return Result<SinkBootstrap>(info.status());
  auto run = std::make_shared<BootstrapRun>();
  run->collection = std::move(collection);
  run->create = create;
  return next_bootstrap_page(*h.uploader, h.node, run);
}

std::optional<SinkUploaderStats> MeshHost::sink_stats() const {
  if (!impl_->uploader) return std::nullopt;
  return impl_->uploader->stats();
}

void MeshHost::pump() { impl_->run_engine([](Node&, MonoTime) {}); }

void MeshHost::set_on_step(std::function<void()> fn) { impl_->on_step = std::move(fn); }

MeshStats MeshHost::stats() const {
  MeshStats s = impl_->stats;
  if (impl_->listener) s.listener = impl_->listener->stats();
  if (impl_->discovery) s.discovery = impl_->discovery->stats();
  return s;
}

std::vector<MeshPeerView> MeshHost::peers() const {
  std::vector<MeshPeerView> out;
  for (const auto& [id, c] : impl_->conns) {
    if (c->closed) continue;
    MeshPeerView v;
    v.device = security::key_label(c->cert.device_key);
    v.replica = c->peer ? c->peer->to_string() : "";
    v.replica_id = c->peer;
    v.remote = c->link->remote();
    v.role = std::string(security::role_name(c->cert.role));
    v.tier = c->tier;
    v.dialed = c->link->dialed();
    v.up = c->up;
    v.protocol = c->protocol;
    v.bytes = c->link->stats();
    if (c->peer) {
      if (auto d = impl_->last_delta.find(*c->peer); d != impl_->last_delta.end()) v.last_delta = d->second;
    }
    out.push_back(std::move(v));
  }
  return out;
}

void MeshHost::stop() {
  Impl& h = *impl_;
  if (h.stopped) return;
  h.node.remove_after_write(h.observer);
  h.stopping = true;
  std::vector<std::uint64_t> ids;
  for (auto& [id, c] : h.conns) ids.push_back(id);
  for (auto id : ids) h.close_conn(id, "shutting down");
  h.stopped = true;
  if (h.uploader) h.uploader->stop();
  if (h.discovery) h.discovery->stop();  // the goodbye
  h.discovery.reset();
  h.listener.reset();
}

}  // namespace shoal::node

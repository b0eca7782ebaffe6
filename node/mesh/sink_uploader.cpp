// node/mesh/sink_uploader.cpp: see sink_uploader.hpp.
#include "node/mesh/sink_uploader.hpp"

#include <sodium.h>

#include <algorithm>
#include <memory>

#include <capnp/message.h>

#include "common/status.hpp"
#include "node/core/node_state.hpp"
#include "transport/codec_wire.hpp"
#include "transport/rpc.capnp.h"
#include "transport/sink.capnp.h"

namespace shoal::node {

namespace rpc = transport::rpc;
namespace sr = transport::sinkrpc;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"

namespace {
constexpr const char* kComponent = "sink-feed";

capnp::Data::Reader data_of(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}
std::string_view bytes_of(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}
}  // namespace

struct SinkUploader::Impl final : public kj::TaskSet::ErrorHandler {
  Impl(transport::KjLoop& l, SharedNode& n, const transport::LinkSecurity& s, SinkUploaderOptions o, Logger* lg)
      : loop(l), node(n), security(s), options(std::move(o)), logger(lg), backoff(options.backoff_min), tasks(*this) {
    stats.address = str_cat(options.host, ":", options.port);
  }

  void taskFailed(kj::Exception&& e) override {
    SHOAL_LOG(logger, kWarn, kComponent, "background task failed: ", e.getDescription().cStr());
  }

  // ---- the link ---------------------------------------------------------------------------

  void connect() {
    if (stopped) return;
    ++stats.dials;
    tasks.add(transport::dial(loop, options.host, options.port, security, options.link)
                  .then([this](kj::Own<transport::Link> l) { introduce(kj::mv(l)); },
                        [this](kj::Exception&& e) { failed_link(transport::status_of(e).to_string()); }));
  }

  void introduce(kj::Own<transport::Link> l) {
    if (stopped) {
      l->close();
      return;
    }
    if (l->peer().role != security::DeviceRole::kSink) {
      const std::string role(security::role_name(l->peer().role));
      l->close();
      failed_link(str_cat("the device at ", options.host, ":", options.port, " is a ", role, ", not a sink"));
      return;
    }
    link = kj::mv(l);
    const std::uint64_t generation = ++link_generation;
    tasks.add(link->on_disconnect().then([this, generation]() { lost(generation, "disconnected"); },
                                         [this, generation](kj::Exception&& e) {
                                           lost(generation, "disconnected: " + transport::status_of(e).to_string());
                                         }));
    auto req = link->peer_bootstrap().castAs<rpc::Gate>().introduceRequest();
    const std::string replica = node.replica().encode();
    req.getIntro().setReplica(data_of(replica));
    req.getIntro().setMinProtocol(1);
    req.getIntro().setMaxProtocol(transport::kProtocolVersion);
    tasks.add(loop.timer()
                  .timeoutAfter(options.call_timeout.ns() * kj::NANOSECONDS, req.send())
                  .then(
                      [this, generation](capnp::Response<rpc::Gate::IntroduceResults>&& resp) {
                        if (generation != link_generation || stopped) return;
                        if (!resp.hasSink()) {
                          drop_link(generation, "the sink's introduction carried no Sink capability");
                          return;
                        }
                        sink = resp.getSink();
                        stats.connected = true;
                        backoff = options.backoff_min;
                        SHOAL_LOG(logger, kInfo, kComponent, "sink ", options.host, ":", options.port, " up (",
                                  link->remote(), ")");
                        step();
                      },
                      [this, generation](kj::Exception&& e) {
                        drop_link(generation, "introduction refused: " + transport::status_of(e).to_string());
                      }));
  }

  void failed_link(const std::string& why) {
    ++stats.dial_failures;
    stats.last_error = why;
    SHOAL_LOG(logger, kDebug, kComponent, "sink ", options.host, ":", options.port, ": ", why);
    retry_later();
  }

  // Closes the link of `generation` (if it is still the current one) and dials again later.
  void drop_link(std::uint64_t generation, const std::string& why) {
    if (generation != link_generation) return;
    ++stats.dial_failures;
    lost(generation, why);
  }

  void lost(std::uint64_t generation, const std::string& why) {
    if (generation != link_generation || !link) return;
    ++link_generation;
    stats.connected = false;
    stats.last_error = why;
    SHOAL_LOG(logger, kInfo, kComponent, "sink ", options.host, ":", options.port, " link closed: ", why);
    sink = std::nullopt;
    in_flight = false;
    revocations_sent = 0;  // a new link (perhaps a restarted sink) gets the set again
    auto old = kj::mv(link);
    old->close();
    // Destroyed on a later turn: this may run inside a callback of the link's own RPC system.
    tasks.add(kj::evalLater([o = kj::mv(old)]() mutable { o = nullptr; }));
    retry_later();
  }

  // kUnavailable naming the address (and the last failure) when no link with the Sink capability
  // is up: what a call on the sink (cold search, bootstrap) fails with.
  Status check_connected() const {
    if (!stopped && sink) return {};
    return Status(Code::kUnavailable, str_cat("the sink ", stats.address, " is not connected",
                                              stats.last_error.empty() ? "" : ": ", stats.last_error));
  }

  void retry_later() {
    if (stopped || retry_armed) return;
    retry_armed = true;
    const std::int64_t w = std::max<std::int64_t>(backoff.ns(), 1);
    std::uint64_t r = 0;
    randombytes_buf(&r, sizeof r);
    const std::int64_t wait = w / 2 + static_cast<std::int64_t>(r % static_cast<std::uint64_t>(w / 2 + 1));
    backoff = std::min(backoff * 2, options.backoff_max);
    tasks.add(loop.timer().afterDelay(wait * kj::NANOSECONDS).then([this]() {
      retry_armed = false;
      if (stopped) return;
      if (!link) {
        connect();
      } else {
        step();
      }
    }));
  }

  // ---- the feed ---------------------------------------------------------------------------

  // Sends this device's revocation set when the sink has not seen it at its current size (after
  // each introduction, and when a peer's hello or the operator grows it), so that the sink
  // refuses the devices the mesh revoked. One call in flight; a failure is retried on a later
  // step. The set only grows, so its size says whether there is anything new.
  void push_revocations() {
    if (stopped || !sink || revocations_in_flight || !security.revocations) return;
    const security::RevocationSet& set = security.revocations();
    if (set.size() == revocations_sent || set.size() == 0) return;
    revocations_in_flight = true;
    const std::uint64_t generation = link_generation;
    const std::size_t size = set.size();
    const auto encoded = security::encode_revocations(set);
    auto req = sink->revocationsRequest();
    req.setSet(capnp::Data::Reader(encoded.data(), encoded.size()));
    tasks.add(loop.timer()
                  .timeoutAfter(options.call_timeout.ns() * kj::NANOSECONDS, req.send())
                  .then(
                      [this, generation, size](capnp::Response<sr::Sink::RevocationsResults>&& resp) {
                        revocations_in_flight = false;
                        if (generation != link_generation || stopped) return;
                        revocations_sent = size;
                        stats.sink_revocations = resp.getSize();
                      },
                      [this, generation](kj::Exception&& e) {
                        revocations_in_flight = false;
                        if (generation != link_generation || stopped) return;
                        stats.last_error = "revocations: " + transport::status_of(e).to_string();
                        SHOAL_LOG(logger, kWarn, kComponent, "the sink did not take the revocation set: ",
                                  stats.last_error);
                      }));
  }

  // Sends the next upload, if the link is up and none is in flight.
  void step() {
    push_revocations();
    if (stopped || in_flight || !sink) return;
    for (int skipped = 0; skipped < 64; ++skipped) {
      auto next = node.read([](const Node& n) { return n.next_sink_upload(); });
      if (!next.ok()) {
        stats.last_error = next.status().to_string();
        SHOAL_LOG(logger, kWarn, kComponent, "the sink feed cannot read the delta buffer: ", stats.last_error);
        poll_later();
        return;
      }
      if (!*next) {
        evict();
        poll_later();
        return;
      }
      SinkUpload up = std::move(**next);
      if (up.delta.empty() && up.removed.empty()) {
        // Nothing to send (entries of other collections, a marker): acknowledged here.
        Status st = node.write_quiet([&](Node& n) { return n.sink_acked(up); });
        if (!st.ok()) {
          stats.last_error = st.to_string();
          retry_later();
          return;
        }
        continue;
      }
      send(std::move(up));
      return;
    }
    tasks.add(kj::evalLater([this]() { step(); }));
  }

  void send(SinkUpload up) {
    in_flight = true;
    send_part(std::make_shared<SinkUpload>(std::move(up)), 0, link_generation);
  }

  // One pushDelta of `upload`: the first carries its delta and its first removed-dots piece, each
  // later one the next piece alone (D74: each piece is bounded and applied on its own, so a
  // retry that sends them all again is harmless). The node takes the acknowledgement after the
  // last.
  void send_part(std::shared_ptr<SinkUpload> upload, std::size_t part, std::uint64_t generation) {
    auto req = sink->pushDeltaRequest();
    req.setCollection(upload->collection);
    if (part == 0) req.setDelta(data_of(upload->delta));
    if (part < upload->removed.size()) req.setRemoved(data_of(upload->removed[part]));
    const bool last = part + 1 >= std::max<std::size_t>(1, upload->removed.size());
    // The collection's metric, whose record rules the sink checks the upload under (a collection
    // dropped since: not said, l2's rules; the sink then takes what the delta carries), and its
    // whole spec, which the sink keeps so a bootstrap creates it with its index options (D62).
    auto info = node.read([&](const Node& n) { return n.collection_info(upload->collection); });
    if (info.ok()) {
      req.setMetric(metric_to_wire_byte(info->spec.metric));
      transport::write(req.initSpec(), to_wire(info->spec));
    }
    tasks.add(loop.timer()
                  .timeoutAfter(options.call_timeout.ns() * kj::NANOSECONDS, req.send())
                  .then(
                      [this, generation, upload, part, last](capnp::Response<sr::Sink::PushDeltaResults>&& resp) {
                        if (generation != link_generation || stopped) return;
                        if (!last) {
                          send_part(upload, part + 1, generation);
                          return;
                        }
                        in_flight = false;
                        Status st = node.write_quiet([&](Node& n) { return n.sink_acked(*upload); });
                        if (!st.ok()) {
                          stats.last_error = st.to_string();
                          SHOAL_LOG(logger, kWarn, kComponent, "cannot record the sink's acknowledgement: ",
                                    stats.last_error);
                          retry_later();
                          return;
                        }
                        ++stats.uploads;
                        stats.bytes += upload->delta.size();
                        stats.last_ack_seq = resp.getAck().getSeq();
                        stats.last_ack = now_wall();
                        backoff = options.backoff_min;
                        step();
                      },
                      [this, generation](kj::Exception&& e) {
                        if (generation != link_generation || stopped) return;
                        in_flight = false;
                        ++stats.upload_failures;
                        stats.last_error = transport::status_of(e).to_string();
                        SHOAL_LOG(logger, kWarn, kComponent, "upload to the sink failed: ", stats.last_error);
                        retry_later();
                      }));
  }

  // One bounded eviction step while the feed is idle (what it evicts the sink has acknowledged);
  // another follows at once while over the budget and progressing.
  void evict() {
    if (options.payload_budget_bytes == 0 && options.memory_budget_bytes == 0) return;
    Result<EvictStep> st = node.write_quiet([](Node& n) { return n.evict_step(); });
    if (!st.ok()) {
      stats.last_error = st.status().to_string();
      SHOAL_LOG(logger, kWarn, kComponent, "eviction failed: ", stats.last_error);
      return;
    }
    if (st->over_budget && st->evicted > 0) tasks.add(kj::evalLater([this]() { step(); }));
  }

  void poll_later() {
    if (stopped || poll_armed) return;
    poll_armed = true;
    tasks.add(loop.timer().afterDelay(options.poll.ns() * kj::NANOSECONDS).then([this]() {
      poll_armed = false;
      step();
    }));
  }

  transport::KjLoop& loop;
  SharedNode& node;
  transport::LinkSecurity security;
  SinkUploaderOptions options;
  Logger* logger;
  Duration backoff;
  kj::Own<transport::Link> link;
  std::optional<sr::Sink::Client> sink;
  std::uint64_t link_generation = 0;
  bool in_flight = false;
  bool revocations_in_flight = false;
  std::size_t revocations_sent = 0;  // the set's size the sink last acknowledged on this link
  bool retry_armed = false;
  bool poll_armed = false;
  bool stopped = false;
  SinkUploaderStats stats;
  kj::TaskSet tasks;
};

#pragma GCC diagnostic pop

SinkUploader::SinkUploader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SinkUploader::~SinkUploader() { stop(); }

Result<std::unique_ptr<SinkUploader>> SinkUploader::start(transport::KjLoop& loop, SharedNode& node,
                                                          const transport::LinkSecurity& security,
                                                          SinkUploaderOptions options, const SinkFeedOptions& feed,
                                                          Logger* logger) {
  Status st = node.write_quiet([&](Node& n) { return n.enable_sink_feed(feed); });
  if (!st.ok()) return st;
  EvictionOptions eviction;
  eviction.payload_budget_bytes = options.payload_budget_bytes;
  eviction.memory_budget_bytes = options.memory_budget_bytes;
  // The sink's digest (sink/segment.hpp, payload_digest): BLAKE2b-256, no key.
  eviction.payload_digest = [](std::string_view p) {
    PayloadDigest d{};
    crypto_generichash(d.data(), d.size(), reinterpret_cast<const unsigned char*>(p.data()), p.size(), nullptr, 0);
    return d;
  };
  st = node.write_quiet([&](Node& n) { return n.set_eviction(std::move(eviction)); });
  if (!st.ok()) return st;
  auto impl = std::make_unique<Impl>(loop, node, security, std::move(options), logger);
  impl->connect();
  return std::unique_ptr<SinkUploader>(new SinkUploader(std::move(impl)));
}

kj::Promise<Result<ColdAnswer>> SinkUploader::cold_search(const std::string& collection, std::vector<float> query,
                                                          std::uint32_t k, std::uint8_t metric) {
  Impl& h = *impl_;
  if (Status st = h.check_connected(); !st.ok()) return Result<ColdAnswer>(st);
  auto req = h.sink->coldSearchRequest();
  req.setCollection(collection);
  auto q = req.initQuery(static_cast<unsigned>(query.size()));
  for (unsigned i = 0; i < q.size(); ++i) q.set(i, query[i]);
  req.setK(k);
  req.setMetric(metric);
  return h.loop.timer()
      .timeoutAfter(h.options.call_timeout.ns() * kj::NANOSECONDS, req.send())
      .then(
          [](capnp::Response<sr::Sink::ColdSearchResults>&& resp) -> Result<ColdAnswer> {
            ColdAnswer a;
            for (auto hit : resp.getHits()) {
              auto id = hit.getId();
              auto dots = hit.getDots();
              a.hits.push_back(ColdHit{std::string(reinterpret_cast<const char*>(id.begin()), id.size()), hit.getDistance(),
                                       std::string(reinterpret_cast<const char*>(dots.begin()), dots.size()), true});
            }
            auto f = resp.getFreshness();
            a.objects = f.getObjects();
            a.records = f.getRecords();
            a.last_ack_wall_ns = f.getLastAckWallNs();
            return a;
          },
          [](kj::Exception&& e) -> Result<ColdAnswer> { return transport::status_of(e); });
}

kj::Promise<Result<std::optional<std::string>>> SinkUploader::fetch(const std::string& collection,
                                                                    const std::string& id) {
  using Out = Result<std::optional<std::string>>;
  Impl& h = *impl_;
  if (h.stopped || !h.sink) {
    return Out(Status(Detail::kColdUnavailable, str_cat("the sink ", h.stats.address, " is not connected",
                                                        h.stats.last_error.empty() ? "" : ": ", h.stats.last_error)));
  }
  auto req = h.sink->fetchRequest();
  req.setCollection(collection);
  req.initIds(1).set(0, data_of(id));
  return h.loop.timer()
      .timeoutAfter(h.options.call_timeout.ns() * kj::NANOSECONDS, req.send())
      .then(
          [](capnp::Response<sr::Sink::FetchResults>&& resp) -> Out {
            auto records = resp.getRecords();
            if (records.size() != 1 || !records[0].getFound()) return std::optional<std::string>();
            auto p = records[0].getPayload();
            return std::optional<std::string>(std::string(reinterpret_cast<const char*>(p.begin()), p.size()));
          },
          [](kj::Exception&& e) -> Out { return transport::status_of(e); });
}

kj::Promise<Result<SinkBootstrapPage>> SinkUploader::bootstrap_page(const std::string& collection,
                                                                    const std::string& after) {
  Impl& h = *impl_;
  if (Status st = h.check_connected(); !st.ok()) return Result<SinkBootstrapPage>(st);
  auto req = h.sink->bootstrapRequest();
  req.setCollection(collection);
  req.setAfter(data_of(after));
  return h.loop.timer()
      .timeoutAfter(h.options.call_timeout.ns() * kj::NANOSECONDS, req.send())
      .then(
          [](capnp::Response<sr::Sink::BootstrapResults>&& resp) -> Result<SinkBootstrapPage> {
            SinkBootstrapPage p;
            p.segment.assign(bytes_of(resp.getSegment()));
            p.context.assign(bytes_of(resp.getContext()));
            p.next_after.assign(bytes_of(resp.getNextAfter()));
            p.done = resp.getDone();
            p.dimension = resp.getDimension();
            p.metric = metric_from_wire_byte(resp.getMetric());  // 255 (not said): nullopt
            if (resp.hasSpec()) {  // D62; a sink before it, or no upload said one: unset
              auto wire = transport::read(resp.getSpec());
              auto spec = wire.ok() ? from_wire(*wire) : Result<CollectionSpec>(wire.status());
              if (!spec.ok()) return spec.status().with_context("the sink's spec of the collection");
              p.spec = std::move(*spec);
            }
            return p;
          },
          [](kj::Exception&& e) -> Result<SinkBootstrapPage> { return transport::status_of(e); });
}

void SinkUploader::poke() { impl_->step(); }

SinkUploaderStats SinkUploader::stats() const { return impl_->stats; }

void SinkUploader::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->sink = std::nullopt;
  if (impl_->link) impl_->link->close();
}

}  // namespace shoal::node

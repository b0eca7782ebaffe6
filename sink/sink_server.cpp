// sink/sink_server.cpp: see sink_server.hpp.
#include "sink/sink_server.hpp"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include <capnp/message.h>

#include "common/file_io.hpp"

#include "node/core/node_state.hpp"
#include "node/core/record.hpp"
#include "transport/codec_wire.hpp"
#include "transport/rpc.capnp.h"
#include "transport/sink.capnp.h"

namespace shoal::sink {

namespace rpc = transport::rpc;
namespace sr = transport::sinkrpc;

namespace {

constexpr const char* kComponent = "sink";
constexpr std::uint32_t kProtocolMin = 1;
constexpr std::uint32_t kProtocolMax = 1;
// Record ids on the wire: the node's limit is 256 bytes; anything longer is refused unread.
constexpr std::size_t kMaxIdBytes = 1024;

kj::Promise<void> fail(const Status& st) { return transport::exception_of(st); }

std::string_view view(capnp::Data::Reader d) {
  return std::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}
std::string_view view(capnp::Text::Reader t) { return std::string_view(t.cStr(), t.size()); }
capnp::Data::Reader as_data(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// An upload's metric byte (sink.capnp uploadSegment): 255, the default, is "not said" (l2's
// rules); otherwise the metric wire byte, refused outside 0..2.
constexpr std::uint8_t kMetricNotSaid = 255;
Result<std::optional<index::Metric>> upload_metric(std::uint8_t byte) {
  if (byte == kMetricNotSaid) return std::optional<index::Metric>();
  auto m = node::metric_from_wire_byte(byte);
  if (!m) {
    return Status(Detail::kOutOfRange,
                  str_cat("metric byte ", unsigned(byte), ", expected 0 (l2), 1 (ip), 2 (cosine) or 255 (not said)"));
  }
  return std::optional<index::Metric>(*m);
}

// An upload's spec (sink.capnp uploadSegment, D62): unset is "not said"; otherwise read as the
// sync messages read a spec and converted by the node's rule; the service checks the rest.
template <typename Params>
Result<std::optional<node::CollectionSpec>> upload_spec(Params p) {
  if (!p.hasSpec()) return std::optional<node::CollectionSpec>();
  SHOAL_ASSIGN_OR_RETURN(auto wire, transport::read(p.getSpec()));
  auto spec = node::from_wire(wire);
  if (!spec.ok()) return spec.status().with_context("the upload's spec");
  return std::optional<node::CollectionSpec>(std::move(*spec));
}

void fill_ack(sr::Ack::Builder out, const UploadAck& ack) {
  out.setKey(ack.key);
  out.setSeq(ack.seq);
  out.setRecords(ack.records);
  out.setBytes(ack.bytes);
}

}  // namespace

struct SinkServer::Impl {
  transport::KjLoop& loop;
  SinkService& service;
  SinkCredentials creds;
  SinkServerOptions options;
  Logger* logger;
  transport::LinkSecurity linksec;
  std::unique_ptr<transport::Listener> listener;
  std::string replica;
  SinkServerStats stats;
  std::uint64_t next_id = 1;
  std::map<std::uint64_t, kj::Own<transport::Link>> links;
  // Disconnect watchers fail only when the link is torn down with the server: nothing to do.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
  struct ErrorHandler final : kj::TaskSet::ErrorHandler {
    void taskFailed(kj::Exception&&) override {}
  } error_handler;
#pragma GCC diagnostic pop
  kj::TaskSet tasks{error_handler};

  Impl(transport::KjLoop& l, SinkService& s, SinkCredentials c, SinkServerOptions o, Logger* lg)
      : loop(l), service(s), creds(std::move(c)), options(std::move(o)), logger(lg) {}

  std::int64_t now_ns() const { return options.wall_clock().ns(); }

  // Joins a member's revocation set: verified entries join (a bad one is dropped and counted),
  // the grown set is saved, and the links of newly revoked devices close. The set is applied in
  // memory even when saving fails (a revoked device must not keep its link over a full disk);
  // the failure is returned so that the member sends the set again later.
  Status join_revocations(std::string_view bytes, std::uint32_t& size, std::uint32_t& rejected) {
    auto theirs = security::decode_revocations(
        std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()), options.max_revocations);
    if (!theirs.ok()) return theirs.status();
    const security::JoinStats js = creds.revocations.join(*theirs, creds.anchor);
    stats.revocations = creds.revocations.size();
    stats.revocations_rejected += js.rejected;
    size = static_cast<std::uint32_t>(creds.revocations.size());
    rejected = static_cast<std::uint32_t>(js.rejected);
    if (js.added == 0) return Status::ok_status();
    SHOAL_LOG(logger, kInfo, kComponent, js.added, " devices revoked by a member's set (", size, " in all)");
    std::vector<std::uint64_t> doomed;
    for (auto& [id, link] : links) {
      if (creds.revocations.contains(link->peer().device_key)) doomed.push_back(id);
    }
    for (auto id : doomed) {
      ++stats.revoked_closed;
      close_later(id);
    }
    if (options.revocations_path.empty()) return Status::ok_status();
    const auto encoded = security::encode_revocations(creds.revocations);
    return write_file_atomic(options.revocations_path,
                             std::string_view(reinterpret_cast<const char*>(encoded.data()), encoded.size()));
  }

  Status refuse(Status st) {
    ++stats.calls_refused;
    SHOAL_LOG(logger, kDebug, kComponent, "refused: ", st.to_string());
    return st;
  }

  void on_link(kj::Own<transport::Link> link) {
    const std::uint64_t id = next_id++;
    ++stats.links_opened;
    SHOAL_LOG(logger, kInfo, kComponent, "link from ", link->remote(), " (",
              security::key_label(link->peer().device_key), ", ", security::role_name(link->peer().role), ")");
    link->serve(kj::heap<GateServer>(*this, link->peer(), id));
    auto done = link->on_disconnect();
    links.emplace(id, kj::mv(link));
    listener->set_links_alive(links.size());
    tasks.add(done.then([this, id]() { drop(id); }, [this, id](kj::Exception&&) { drop(id); }));
  }

  // Closes a link soon (not inside the call that decided it, whose answer must still go out).
  void close_later(std::uint64_t id) {
    tasks.add(loop.timer().afterDelay(100 * kj::MILLISECONDS).then([this, id]() {
      auto it = links.find(id);
      if (it != links.end()) it->second->close();
    }));
  }

  void drop(std::uint64_t id) {
    if (links.erase(id) != 0) ++stats.links_closed;
    if (listener) listener->set_links_alive(links.size());
  }

  // ---- the Sink capability for one certificate ----------------------------------------------
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
  class SinkImpl final : public sr::Sink::Server {
   public:
    SinkImpl(Impl& host, security::Certificate cert) : host_(host), cert_(std::move(cert)) {}

   protected:
    kj::Promise<void> uploadSegment(UploadSegmentContext ctx) override {
      ++host_.stats.calls;
      auto bytes = view(ctx.getParams().getSegment());
      const SinkLimits& l = host_.service.limits();
      if (bytes.size() > l.max_upload_bytes) {
        return refused(Status(Detail::kTooLarge, str_cat("segment of ", bytes.size(), " bytes, limit ", l.max_upload_bytes)));
      }
      auto coll = segment_collection(bytes);
      if (!coll.ok()) return refused(coll.status());
      if (Status st = admit(*coll, true); !st.ok()) return refused(st);
      auto metric = upload_metric(ctx.getParams().getMetric());
      if (!metric.ok()) return refused(metric.status());
      auto spec = upload_spec(ctx.getParams());
      if (!spec.ok()) return refused(spec.status());
      auto ack = host_.service.upload_segment(bytes, host_.now_ns(), *metric, *spec);
      if (!ack.ok()) return refused(ack.status());
      fill_ack(ctx.getResults().initAck(), *ack);
      return kj::READY_NOW;
    }

    kj::Promise<void> revocations(RevocationsContext ctx) override {
      ++host_.stats.calls;
      std::uint32_t size = 0, rejected = 0;
      Status st = host_.join_revocations(view(ctx.getParams().getSet()), size, rejected);
      if (!st.ok()) return refused(st);
      ctx.getResults().setSize(size);
      ctx.getResults().setRejected(rejected);
      return kj::READY_NOW;
    }

    kj::Promise<void> pushDelta(PushDeltaContext ctx) override {
      ++host_.stats.calls;
      auto p = ctx.getParams();
      auto coll = view(p.getCollection());
      auto bytes = view(p.getDelta());
      if (Status st = admit(coll, true); !st.ok()) return refused(st);
      auto metric = upload_metric(p.getMetric());
      if (!metric.ok()) return refused(metric.status());
      auto spec = upload_spec(p);
      if (!spec.ok()) return refused(spec.status());
      // D74: removed dots are checked before anything is stored, and applied after the delta.
      std::vector<crdt::DotRange> removed;
      if (p.hasRemoved() && p.getRemoved().size() > 0) {
        auto checked = host_.service.check_removed(coll, view(p.getRemoved()));
        if (!checked.ok()) return refused(checked.status());
        removed = std::move(*checked);
      }
      auto ack = host_.service.apply_delta(coll, bytes, host_.now_ns(), *metric, *spec);
      if (!ack.ok()) return refused(ack.status());
      if (!removed.empty()) {
        auto gone = host_.service.remove_dots(coll, removed, host_.now_ns());
        if (!gone.ok()) return refused(gone.status());
        if (gone->seq != 0) ack = std::move(gone);
      }
      fill_ack(ctx.getResults().initAck(), *ack);
      return kj::READY_NOW;
    }

    kj::Promise<void> coldSearch(ColdSearchContext ctx) override {
      ++host_.stats.calls;
      auto p = ctx.getParams();
      auto coll = view(p.getCollection());
      if (Status st = admit(coll, false); !st.ok()) return refused(st);
      auto q = p.getQuery();
      const SinkLimits& l = host_.service.limits();
      if (q.size() > l.max_dimension) {
        return refused(Status(Detail::kTooLarge, str_cat("query of ", q.size(), " floats, limit ", l.max_dimension)));
      }
      auto metric = node::metric_from_wire_byte(p.getMetric());
      if (!metric) {
        return refused(Status(Detail::kOutOfRange, str_cat("metric byte ", unsigned(p.getMetric()),
                                                           ", expected 0 (l2), 1 (ip) or 2 (cosine)")));
      }
      std::vector<float> query;
      query.reserve(q.size());
      for (float x : q) query.push_back(x);
      auto r = host_.service.cold_search(coll, query, p.getK(), *metric);
      if (!r.ok()) return refused(r.status());
      auto res = ctx.getResults();
      auto hits = res.initHits(static_cast<unsigned>(r->hits.size()));
      for (unsigned i = 0; i < hits.size(); ++i) {
        hits[i].setId(as_data(r->hits[i].id));
        hits[i].setDistance(r->hits[i].distance);
        hits[i].setDots(as_data(r->hits[i].dots));
      }
      auto f = res.initFreshness();
      f.setObjects(r->freshness.objects);
      f.setLastSeq(r->freshness.last_seq);
      f.setLastAckWallNs(r->freshness.last_ack_wall_ns);
      f.setRecords(r->freshness.records);
      return kj::READY_NOW;
    }

    kj::Promise<void> fetch(FetchContext ctx) override {
      ++host_.stats.calls;
      auto p = ctx.getParams();
      auto coll = view(p.getCollection());
      if (Status st = admit(coll, false); !st.ok()) return refused(st);
      auto in = p.getIds();
      const SinkLimits& l = host_.service.limits();
      if (in.size() > l.max_fetch_ids) {
        return refused(Status(Detail::kTooLarge, str_cat("fetch of ", in.size(), " ids, limit ", l.max_fetch_ids)));
      }
      std::vector<std::string> ids;
      ids.reserve(in.size());
      for (auto id : in) {
        if (id.size() > kMaxIdBytes) {
          return refused(Status(Detail::kTooLarge, str_cat("record id of ", id.size(), " bytes, limit ", kMaxIdBytes)));
        }
        ids.emplace_back(view(id));
      }
      auto r = host_.service.fetch(coll, ids);
      if (!r.ok()) return refused(r.status());
      auto out = ctx.getResults().initRecords(static_cast<unsigned>(r->size()));
      for (unsigned i = 0; i < out.size(); ++i) {
        const FetchedRecord& f = (*r)[i];
        out[i].setId(as_data(f.id));
        out[i].setFound(f.found);
        if (!f.found) continue;
        out[i].setPayload(as_data(f.payload));
        out[i].setHlc(f.hlc);
        out[i].setDigest(capnp::Data::Reader(f.digest.data(), f.digest.size()));
        out[i].setObject(f.object);
      }
      return kj::READY_NOW;
    }

    kj::Promise<void> bootstrap(BootstrapContext ctx) override {
      ++host_.stats.calls;
      auto p = ctx.getParams();
      auto coll = view(p.getCollection());
      if (Status st = admit(coll, false); !st.ok()) return refused(st);
      auto after = view(p.getAfter());
      if (after.size() > kMaxIdBytes) {
        return refused(Status(Detail::kTooLarge, str_cat("bootstrap cursor of ", after.size(), " bytes, limit ", kMaxIdBytes)));
      }
      auto page = host_.service.bootstrap(coll, after);
      if (!page.ok()) return refused(page.status());
      auto res = ctx.getResults();
      res.setSegment(as_data(page->segment));
      res.setContext(as_data(page->context));
      res.setNextAfter(as_data(page->next_after));
      res.setDone(page->done);
      res.setDimension(page->dimension);
      res.setMetric(page->metric ? node::metric_to_wire_byte(*page->metric) : kMetricNotSaid);
      if (page->spec) transport::write(res.initSpec(), node::to_wire(*page->spec));
      return kj::READY_NOW;
    }

    kj::Promise<void> status(StatusContext ctx) override {
      ++host_.stats.calls;
      const SinkStatus s = host_.service.status();
      auto out = ctx.getResults().initStatus();
      out.setRecords(s.records);
      out.setObjects(s.objects);
      out.setBytesStored(s.bytes_stored);
      out.setPayloadBytes(s.payload_bytes);
      out.setBacklogObjects(s.backlog_objects);
      out.setUploads(s.uploads);
      out.setDeltas(s.deltas);
      out.setLastAckSeq(s.last_ack_seq);
      out.setLastAckWallNs(s.last_ack_wall_ns);
      out.setStoreKind(s.store_kind);
      auto cs = out.initCollections(static_cast<unsigned>(s.collections.size()));
      for (unsigned i = 0; i < cs.size(); ++i) {
        const CollectionStatus& c = s.collections[i];
        cs[i].setName(c.name);
        cs[i].setRecords(c.records);
        cs[i].setSegments(c.segments);
        cs[i].setDeltas(c.deltas);
        cs[i].setBytes(c.bytes);
      }
      return kj::READY_NOW;
    }

   private:
    // The admission every call naming a collection passes before the service sees it: the name
    // within its limit (so a long name is refused unread), then this certificate's grant for it:
    // write access for uploads and deltas, read access for the rest.
    Status admit(std::string_view collection, bool write) const {
      const std::size_t limit = host_.service.limits().max_collection_name_bytes;
      if (collection.size() > limit) {
        return Status(Detail::kTooLarge, str_cat("collection name of ", collection.size(), " bytes, limit ", limit));
      }
      const security::Access a = cert_.access(collection);
      if (write ? a.write : a.read) return ok_status();
      return Status(Detail::kWrongRole, str_cat("certificate of ", security::key_label(cert_.device_key), " may not ",
                                                write ? "write" : "read", " collection '",
                                                node::escape_for_message(collection), "'"));
    }
    // A refused call: counted and logged by the host, failed with the Status.
    kj::Promise<void> refused(Status st) { return fail(host_.refuse(std::move(st))); }

    Impl& host_;
    security::Certificate cert_;
  };

  class GateServer final : public rpc::Gate::Server {
   public:
    GateServer(Impl& host, security::Certificate cert, std::uint64_t id)
        : host_(host), cert_(std::move(cert)), id_(id) {}

   protected:
    kj::Promise<void> introduce(IntroduceContext ctx) override {
      auto intro = ctx.getParams().getIntro();
      if (intro.getReplica().size() != 20) {
        ++host_.stats.introductions_refused;
        return fail(Status(Detail::kMalformed, str_cat("Intro.replica is ", intro.getReplica().size(),
                                                        " bytes, expected exactly 20")));
      }
      if (intro.getMaxProtocol() < kProtocolMin || intro.getMinProtocol() > kProtocolMax ||
          intro.getMinProtocol() > intro.getMaxProtocol()) {
        ++host_.stats.introductions_refused;
        return fail(Status(Detail::kVersionMismatch,
                           str_cat("peer speaks protocol ", intro.getMinProtocol(), "..", intro.getMaxProtocol(),
                                   ", this sink ", kProtocolMin, "..", kProtocolMax)));
      }
      if (cert_.role != security::DeviceRole::kMember) {
        // Nothing else to offer this peer: the link is closed once the refusal is sent.
        ++host_.stats.introductions_refused;
        host_.close_later(id_);
        return fail(Status(Detail::kWrongRole, str_cat("certificate of ", security::key_label(cert_.device_key),
                                                        " has role ", security::role_name(cert_.role),
                                                        "; the sink serves members only")));
      }
      auto results = ctx.getResults();
      auto out = results.initIntro();
      out.setReplica(as_data(host_.replica));
      out.setMinProtocol(kProtocolMin);
      out.setMaxProtocol(kProtocolMax);
      results.setProtocol(std::min(kProtocolMax, intro.getMaxProtocol()));
      results.setSink(kj::heap<SinkImpl>(host_, cert_));
      return kj::READY_NOW;
    }

   private:
    Impl& host_;
    security::Certificate cert_;
    std::uint64_t id_;
  };
#pragma GCC diagnostic pop
};

SinkServer::SinkServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

SinkServer::~SinkServer() {
  if (!impl_) return;
  impl_->listener.reset();
  for (auto& [id, link] : impl_->links) link->close();
  impl_->links.clear();
}

Result<std::unique_ptr<SinkServer>> SinkServer::start(transport::KjLoop& loop, SinkService& service,
                                                      SinkCredentials credentials, SinkServerOptions options,
                                                      Logger* logger) {
  if (credentials.identity == nullptr) return Status(Code::kInvalidArgument, "the sink has no identity");
  auto cert = security::decode_certificate(credentials.certificate);
  if (!cert.ok()) return Status(Code::kInvalidArgument, "the sink's certificate: " + cert.status().to_string());
  if (cert->device_key != credentials.identity->public_key()) {
    return Status(Code::kInvalidArgument, "the sink's certificate was issued for device " +
                                              security::key_label(cert->device_key) + ", not this identity " +
                                              security::key_label(credentials.identity->public_key()));
  }
  auto impl = std::make_unique<Impl>(loop, service, std::move(credentials), std::move(options), logger);
  Impl* h = impl.get();
  h->stats.revocations = h->creds.revocations.size();
  h->replica.assign(reinterpret_cast<const char*>(h->creds.identity->public_key().data()), 16);
  h->replica.append(4, '\0');  // incarnation 0, little-endian
  h->linksec.identity = h->creds.identity;
  h->linksec.certificate = h->creds.certificate;
  h->linksec.anchor = &h->creds.anchor;
  h->linksec.revocations = [h]() -> const security::RevocationSet& { return h->creds.revocations; };
  h->linksec.trusted_now = [h] { return h->options.wall_clock(); };
  auto listener = transport::listen(
      loop, h->options.listen_address, h->options.listen_port, h->linksec, h->options.link, h->options.listener,
      [h](kj::Own<transport::Link> link) { h->on_link(kj::mv(link)); },
      [h](const Status& st, const std::string& remote) {
        SHOAL_LOG(h->logger, kInfo, kComponent, "refused ", remote, ": ", st.to_string());
      });
  if (!listener.ok()) return listener.status();
  h->listener = std::move(*listener);
  return std::unique_ptr<SinkServer>(new SinkServer(std::move(impl)));
}

std::uint16_t SinkServer::port() const noexcept { return impl_->listener->port(); }
const std::string& SinkServer::replica() const noexcept { return impl_->replica; }
SinkServerStats SinkServer::stats() const noexcept { return impl_->stats; }
std::size_t SinkServer::links() const noexcept { return impl_->links.size(); }
const security::RevocationSet& SinkServer::revocations() const noexcept { return impl_->creds.revocations; }

Result<security::RevocationSet> load_revocations(const std::string& path, const security::TrustAnchor& anchor) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return security::RevocationSet{};
  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) return Status(Code::kIo, "cannot read the revocation set " + path);
  auto saved = security::decode_revocations(bytes);
  if (!saved.ok()) return Status(saved.status().detail(), "the revocation set " + path + ": " + saved.status().message());
  security::RevocationSet out;
  const security::JoinStats js = out.join(*saved, anchor);
  if (js.rejected != 0) {
    return Status(Detail::kBadSignature, str_cat("the revocation set ", path, ": ", js.rejected, " of ",
                                                 saved->size(), " entries do not verify against this sink's trust anchor"));
  }
  return out;
}

}  // namespace shoal::sink

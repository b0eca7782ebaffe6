// node/daemon/local_api.cpp: the Node capability over the Unix socket (see local_api.hpp).
#include "node/daemon/local_api.hpp"

#include <capnp/message.h>
#include <kj/async.h>
#include <kj/debug.h>

#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "node/core/node_state.hpp"
#include "node/daemon/read_pool.hpp"
#include "transport/node_api.capnp.h"
#include "transport/node_api_convert.hpp"

namespace shoal::daemon {
namespace api = transport::api;

bool ApiPolicy::allows(const transport::PeerCredentials& c) const noexcept {
  if (c.uid == 0 || c.uid == daemon_uid) return true;
  for (auto u : allow_uids) {
    if (u == c.uid) return true;
  }
  for (auto g : allow_gids) {
    if (g == c.gid) return true;
  }
  return false;
}

namespace {

constexpr const char* kComponent = "api";
// Changes sent to one listener per call.
constexpr std::size_t kChangesPerCall = 256;

kj::Promise<void> fail(const Status& st) { return transport::exception_of(st); }

using transport::bytes_of;
using transport::data_of;
using transport::text_of;
static_assert(std::is_same_v<node::MetaValue, transport::MetaValueWire> &&
                  std::is_same_v<decltype(node::Metadata::fields), transport::MetaFieldsWire>,
              "node_api_convert.hpp carries node::Metadata::fields as is");

void put_spec(transport::wire::CollectionSpec::Builder b, const node::CollectionSpec& spec) {
  transport::write(b, node::to_wire(spec));
}

void put_value(api::Value::Builder b, const node::RecordValue& v) {
  transport::put_value(b, v.vector, v.metadata.fields, v.model);
}

// What a stats call reads from the node (on the read pool).
struct NodeFigures {
  node::NodeStats stats;
  std::vector<node::PeerProgress> progress;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// kj's Server classes have no virtual destructor; ours are owned by kj::heap as themselves.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"

struct LocalApi::Impl {
  struct Watcher {
    std::uint64_t id = 0;
    std::string collection;  // "" = all
    api::Listener::Client listener = nullptr;
    std::uint64_t next = 0;  // buffer sequence already sent
    bool in_flight = false;
    bool gap = false;
  };

  Impl(transport::KjLoop& l, node::SharedNode& n, node::MeshHost* m, ApiPolicy p, LocalApiHooks h, Logger* lg)
      : loop(l), node(n), mesh(m), policy(std::move(p)), hooks(std::move(h)), logger(lg), tasks(handler) {}

  struct Handler final : public kj::TaskSet::ErrorHandler {
    Logger* logger = nullptr;
    void taskFailed(kj::Exception&& e) override {
      SHOAL_LOG(logger, kDebug, kComponent, "task failed: ", e.getDescription().cStr());
    }
  };

  class SubscriptionServer final : public api::Subscription::Server {
   public:
    SubscriptionServer(Impl& impl, std::uint64_t id, std::shared_ptr<bool> alive)
        : impl_(impl), id_(id), alive_(std::move(alive)) {}
    ~SubscriptionServer() {
      if (*alive_) impl_.watchers.erase(id_);
    }

   private:
    Impl& impl_;
    std::uint64_t id_;
    std::shared_ptr<bool> alive_;
  };

  class NodeServer final : public api::Node::Server {
   public:
    NodeServer(Impl& impl, transport::PeerCredentials creds) : impl_(impl), creds_(creds) {}

    kj::Promise<void> createCollection(CreateCollectionContext ctx) override {
      ++impl_.stats.calls;
      auto wire = transport::read(ctx.getParams().getSpec());
      if (!wire.ok()) return failed(wire.status());
      auto spec = node::from_wire(*wire);
      if (!spec.ok()) return failed(spec.status());
      return done(impl_.node.create_collection(*spec));
    }
    kj::Promise<void> dropCollection(DropCollectionContext ctx) override {
      ++impl_.stats.calls;
      return done(impl_.node.drop_collection(text_of(ctx.getParams().getName())));
    }
    kj::Promise<void> listCollections(ListCollectionsContext ctx) override {
      ++impl_.stats.calls;
      return on_pool([&node = impl_.node]() { return node.list_collections(); },
                     [ctx](Impl&, std::vector<node::CollectionInfo> infos) mutable -> kj::Promise<void> {
                       auto list = ctx.getResults().initCollections(static_cast<unsigned>(infos.size()));
                       for (unsigned i = 0; i < infos.size(); ++i) put_info(list[i], infos[i]);
                       return kj::READY_NOW;
                     });
    }
    kj::Promise<void> collectionInfo(CollectionInfoContext ctx) override {
      ++impl_.stats.calls;
      return on_pool(
          [&node = impl_.node, name = std::string(text_of(ctx.getParams().getName()))]() {
            return node.collection_info(name);
          },
          [ctx](Impl& impl, Result<node::CollectionInfo> info) mutable -> kj::Promise<void> {
            if (!info.ok()) return impl.failed(info.status());
            put_info(ctx.getResults().initInfo(), *info);
            return kj::READY_NOW;
          });
    }
    kj::Promise<void> upsert(UpsertContext ctx) override {
      ++impl_.stats.calls;
      const auto t0 = std::chrono::steady_clock::now();
      auto p = ctx.getParams();
      std::vector<node::RecordInput> records;
      records.reserve(p.getRecords().size());
      for (auto r : p.getRecords()) {
        node::RecordInput in;
        in.id.assign(bytes_of(r.getId()));
        transport::ValueWire v = transport::value_of(r.getValue());
        in.value.vector = std::move(v.vector);
        in.value.metadata.fields = std::move(v.metadata);
        in.value.model = std::move(v.model);
        records.push_back(std::move(in));
      }
      const std::string collection(text_of(p.getCollection()));
      Status st = records.size() == 1
                      ? impl_.node.upsert(collection, records[0].id, std::move(records[0].value))
                      : impl_.node.upsert_batch(collection, std::move(records));
      if (impl_.hooks.write_seconds) impl_.hooks.write_seconds(seconds_since(t0));
      return done(st);
    }
    kj::Promise<void> delete_(DeleteContext ctx) override {
      ++impl_.stats.calls;
      const auto t0 = std::chrono::steady_clock::now();
      auto p = ctx.getParams();
      Status st = impl_.node.remove(text_of(p.getCollection()), bytes_of(p.getId()));
      if (impl_.hooks.write_seconds) impl_.hooks.write_seconds(seconds_since(t0));
      return done(st);
    }
    kj::Promise<void> get(GetContext ctx) override {
      ++impl_.stats.calls;
      auto p = ctx.getParams();
      return on_pool(
          [&node = impl_.node, collection = std::string(text_of(p.getCollection())),
           id = std::string(bytes_of(p.getId()))]() { return node.get(collection, id); },
          [ctx](Impl& impl, Result<node::GetResult> got) mutable -> kj::Promise<void> {
            if (!got.ok()) return impl.failed(got.status());
            auto list = ctx.getResults().initSiblings(static_cast<unsigned>(got->siblings.size()));
            for (unsigned i = 0; i < got->siblings.size(); ++i) put_value(list[i], got->siblings[i].value);
            return kj::READY_NOW;
          });
    }
    kj::Promise<void> search(SearchContext ctx) override {
      ++impl_.stats.calls;
      const auto t0 = std::chrono::steady_clock::now();
      auto p = ctx.getParams();
      node::SearchOptions o;
      o.k = p.getK();
      o.ef = p.getEf();
      o.with_metadata = p.getWithMetadata();
      if (p.getFilter().size() > 0) {
        auto f = node::parse_filter(text_of(p.getFilter()));
        if (!f.ok()) return failed(f.status());
        o.filter = std::move(*f);
      }
      return on_pool(
          [&node = impl_.node, collection = std::string(text_of(p.getCollection())),
           q = transport::floats_of(p.getQuery()), o = std::move(o)]() { return node.search(collection, q, o); },
          [ctx, t0](Impl& impl, Result<std::vector<node::Hit>> hits) mutable -> kj::Promise<void> {
            if (impl.hooks.search_seconds) impl.hooks.search_seconds(seconds_since(t0));
            if (!hits.ok()) return impl.failed(hits.status());
            auto r = ctx.getResults();
            auto list = r.initHits(static_cast<unsigned>(hits->size()));
            for (unsigned i = 0; i < hits->size(); ++i) {
              const auto& h = (*hits)[i];
              list[i].setId(data_of(h.id));
              list[i].setDistance(h.distance);
              transport::put_metadata(list[i].initMetadata(static_cast<unsigned>(h.metadata.fields.size())),
                                      h.metadata.fields);
              list[i].setModel(h.model);
            }
            // The mesh host is the loop's: freshness is read here, not on the pool.
            impl.put_freshness(r);
            return kj::READY_NOW;
          });
    }
    kj::Promise<void> stats(StatsContext ctx) override {
      ++impl_.stats.calls;
      return on_pool(
          [&node = impl_.node]() {
            return node.read([](const node::Node& n) { return NodeFigures{n.stats(), n.peer_progress()}; });
          },
          [ctx](Impl& impl, NodeFigures figures) mutable -> kj::Promise<void> {
            ctx.getResults().setJson(impl.stats_json(figures));
            return kj::READY_NOW;
          });
    }
    kj::Promise<void> watch(WatchContext ctx) override {
      ++impl_.stats.calls;
      auto p = ctx.getParams();
      Watcher w;
      w.id = impl_.next_watcher++;
      w.collection.assign(text_of(p.getCollection()));
      w.listener = p.getListener();
      w.next = impl_.node.read([](const node::Node& n) { return n.last_change(); });
      const std::uint64_t id = w.id;
      impl_.watchers.emplace(id, std::move(w));
      ctx.getResults().setSubscription(kj::heap<SubscriptionServer>(impl_, id, impl_.alive));
      return kj::READY_NOW;
    }

    kj::Promise<void> backup(BackupContext ctx) override {
      ++impl_.stats.calls;
      if (!impl_.hooks.backup) return failed(Status(Code::kUnimplemented, "this server does not back up"));
      // The copy is written with the daemon's privileges: only root and the daemon's own user.
      if (creds_.uid != 0 && creds_.uid != impl_.policy.daemon_uid) {
        return failed(Status(Code::kUnauthenticated, str_cat("backup is for root and the daemon's user (uid ",
                                                             impl_.policy.daemon_uid, "); the caller is uid ", creds_.uid)));
      }
      const std::string dest(text_of(ctx.getParams().getDest()));
      if (dest.empty() || dest.front() != '/') {
        return failed(Status(Detail::kMalformed, "backup destination '" + dest + "' must be an absolute path"));
      }
      auto r = impl_.hooks.backup(dest, ctx.getParams().getCompact());
      if (!r.ok()) return failed(r.status());
      auto out = ctx.getResults();
      out.setSourceBytes(r->source_bytes);
      out.setCopyBytes(r->copy_bytes);
      out.setReplica(r->replica);
      SHOAL_LOG(impl_.logger, kInfo, kComponent, "backup to ", dest, " (", r->copy_bytes, " bytes) for uid ", creds_.uid);
      return kj::READY_NOW;
    }

   private:
    kj::Promise<void> failed(const Status& st) { return impl_.failed(st); }
    kj::Promise<void> done(const Status& st) {
      if (!st.ok()) return failed(st);
      return kj::READY_NOW;
    }

    // Runs `work()` on the read pool (it reads the node: no capnp object, no mesh) and then
    // `finish(impl, answer)` back on the loop thread, which builds the results. A full queue is
    // refused at once with kOverloaded (busy), naming the limit.
    template <typename Work, typename Finish>
    kj::Promise<void> on_pool(Work work, Finish finish) {
      using T = decltype(work());
      // The answer is written by the pool thread and read on the loop after KjLoop::post (an
      // Asio post: it orders the two). The fulfiller stays on the loop thread, in `pending`.
      // (Not kj's cross-thread fulfiller: KjLoop's event port does not poll kj's executor.)
      auto answer = std::make_shared<std::optional<T>>();
      auto error = std::make_shared<std::string>();
      const std::uint64_t id = impl_.next_read++;
      const bool queued = impl_.pool->submit(
          [answer, error, id, work = std::move(work), loop = &impl_.loop, alive = impl_.alive, impl = &impl_]() mutable {
            try {
              answer->emplace(work());
            } catch (const std::exception& e) {
              *error = e.what();
            }
            loop->post([alive, impl, id]() {
              if (*alive) impl->complete_read(id);
            });
          });
      if (!queued) {
        ++impl_.stats.calls_busy;
        return failed(Status(Detail::kQueueFull, str_cat("busy: ", impl_.pool->queue_max(),
                                                        " read calls already wait for the daemon's ",
                                                        impl_.pool->threads(), " read threads (the limit); retry")));
      }
      auto paf = kj::newPromiseAndFulfiller<void>();
      impl_.pending_reads.emplace(id, kj::mv(paf.fulfiller));
      return paf.promise.then([impl = &impl_, answer, error, finish = std::move(finish)]() mutable -> kj::Promise<void> {
        if (!answer->has_value()) return impl->failed(Status(Code::kInternal, "read call failed: " + *error));
        return finish(*impl, std::move(**answer));
      });
    }

    Impl& impl_;
    transport::PeerCredentials creds_;
  };

  kj::Promise<void> failed(const Status& st) {
    ++stats.calls_failed;
    return fail(st);
  }

  // A read job finished on the pool: its call continues on this (the loop's) thread.
  void complete_read(std::uint64_t id) {
    auto it = pending_reads.find(id);
    if (it == pending_reads.end()) return;
    auto fulfiller = kj::mv(it->second);
    pending_reads.erase(it);
    fulfiller->fulfill();
  }

  static void put_info(api::CollectionInfo::Builder b, const node::CollectionInfo& info) {
    put_spec(b.initSpec(), info.spec);
    b.setLiveRecords(info.live_records);
    b.setIndexBytes(info.index_bytes);
  }

  template <typename Results>
  void put_freshness(Results r) {
    if (mesh == nullptr) {
      r.initFreshness(0);
      return;
    }
    auto peers = mesh->peers();
    auto list = r.initFreshness(static_cast<unsigned>(peers.size()));
    const MonoTime now = now_mono();
    for (unsigned i = 0; i < peers.size(); ++i) {
      list[i].setDevice(peers[i].device);
      list[i].setUp(peers[i].up);
      list[i].setSinceLastDeltaMs(peers[i].last_delta ? (now - *peers[i].last_delta).ms() : -1);
      if (peers[i].replica_id) {
        const std::string replica = peers[i].replica_id->encode();
        list[i].setReplica(data_of(replica));
      }
    }
  }

  std::string stats_json(const NodeFigures& figures) {
    nlohmann::json j;
    const node::NodeStats& s = figures.stats;
    j["replica"] = s.replica;
    j["collections"] = s.collections;
    j["live_records"] = s.live_records;
    j["delta_buffer_entries"] = s.delta_buffer_entries;
    j["index_bytes"] = s.index_bytes;
    if (mesh != nullptr) {
      auto peers = nlohmann::json::array();
      const MonoTime now = now_mono();
      for (const auto& p : mesh->peers()) {
        peers.push_back({{"device", p.device},
                         {"replica", p.replica},
                         {"remote", p.remote},
                         {"role", p.role},
                         {"tier", p.tier == node::Tier::kHot ? "hot" : "warm"},
                         {"up", p.up},
                         {"since_last_delta_ms", p.last_delta ? (now - *p.last_delta).ms() : -1},
                         {"bytes_in", p.bytes.bytes_in},
                         {"bytes_out", p.bytes.bytes_out}});
      }
      // Peers the sync engine knows with no link now: partitioned (or gone).
      for (const auto& pr : figures.progress) {
        bool linked = false;
        for (const auto& p : peers) linked = linked || p["replica"] == pr.peer.to_string();
        if (linked) continue;
        peers.push_back({{"device", ""},
                         {"replica", pr.peer.to_string()},
                         {"remote", ""},
                         {"role", ""},
                         {"tier", pr.tier == node::Tier::kHot ? "hot" : "warm"},
                         {"up", false},
                         {"partitioned", true},
                         {"behind", pr.behind},
                         {"since_last_delta_ms", -1},
                         {"bytes_in", 0},
                         {"bytes_out", 0}});
      }
      j["peers"] = peers;
      auto ms = mesh->stats();
      j["mesh"] = {{"links_opened", ms.links_opened},     {"links_closed", ms.links_closed},
                   {"calls_sent", ms.calls_sent},         {"calls_failed", ms.calls_failed},
                   {"calls_served", ms.calls_served},     {"discovered", ms.discovered},
                   {"handshakes_failed", ms.listener.handshakes_failed}};
      if (auto up = mesh->sink_stats()) {  // the cold-tier sink link (docs/tiers.md, "The sink feed")
        const node::SinkFeedStatus feed = node.read([](const node::Node& n) { return n.sink_feed_status(); });
        j["sink"] = {{"address", up->address},
                     {"connected", up->connected},
                     {"uploaded_through", feed.uploaded_through},
                     {"backlog_entries", feed.backlog_entries},
                     {"quota_entries", feed.quota_entries},
                     {"full_state_pending", feed.full_state_pending},
                     {"uploads", up->uploads},
                     {"upload_failures", up->upload_failures},
                     {"bytes", up->bytes},
                     {"quota_refusals", feed.quota_refusals},
                     {"last_ack_unix_ms", up->last_ack ? nlohmann::json(up->last_ack->ns() / 1'000'000) : nlohmann::json(nullptr)},
                     {"last_error", up->last_error}};
      }
    }
    j["api"] = {{"clients", clients.size()},
                {"calls", stats.calls},
                {"calls_failed", stats.calls_failed},
                {"calls_busy", stats.calls_busy},
                {"watches", watchers.size()},
                {"read_threads", pool->threads()},
                {"read_queue_max", pool->queue_max()}};
    return j.dump();
  }

  void on_client(kj::Own<transport::LocalLink> link) {
    const auto creds = link->credentials();
    if (!policy.allows(creds)) {
      ++stats.clients_refused;
      SHOAL_LOG(logger, kWarn, kComponent, "refused a client: uid ", creds.uid, " gid ", creds.gid, " pid ", creds.pid,
                " is not allowed by the api policy (api.allow_uids / api.allow_gids)");
      link->close();
      return;
    }
    ++stats.clients_accepted;
    const std::uint64_t id = next_client++;
    link->serve(kj::heap<NodeServer>(*this, creds));
    tasks.add(link->on_disconnect().then([this, id]() { drop_client(id); }, [this, id](kj::Exception&&) { drop_client(id); }));
    clients.emplace(id, kj::mv(link));
    if (listener) listener->set_clients_alive(clients.size());
  }

  void drop_client(std::uint64_t id) {
    // Destroyed on a later turn: this runs in a callback of the link's own RPC system.
    tasks.add(kj::evalLater([this, id]() {
      clients.erase(id);
      if (listener) listener->set_clients_alive(clients.size());
    }));
  }

  // Sends each idle watcher the changes after its position.
  void pump_watchers() {
    for (auto& [id, w] : watchers) {
      if (w.in_flight) continue;
      auto batch = node.read([&](const node::Node& n) { return n.changes_after(w.next, kChangesPerCall); });
      if (!batch.ok()) {
        SHOAL_LOG(logger, kWarn, kComponent, "watch ", id, ": ", batch.status().to_string());
        continue;
      }
      if (batch->next == w.next && !batch->gap) continue;
      w.next = batch->next;
      std::vector<const node::Change*> mine;
      for (const auto& c : batch->changes) {
        if (w.collection.empty() || c.collection == w.collection) mine.push_back(&c);
      }
      if (mine.empty() && !batch->gap) continue;
      auto req = w.listener.changesRequest();
      req.setGap(batch->gap);
      auto list = req.initChanges(static_cast<unsigned>(mine.size()));
      for (unsigned i = 0; i < mine.size(); ++i) {
        list[i].setSeq(mine[i]->seq);
        list[i].setCollection(mine[i]->collection);
        list[i].setId(data_of(mine[i]->id));
        list[i].setDeleted(mine[i]->deleted);
        if (mine[i]->origin) {
          const std::string o = mine[i]->origin->encode();
          list[i].setOrigin(data_of(o));
        }
      }
      w.in_flight = true;
      const std::uint64_t wid = id;
      tasks.add(req.send().then(
          [this, wid](auto&&) {
            if (auto it = watchers.find(wid); it != watchers.end()) it->second.in_flight = false;
            pump_watchers();
          },
          [this, wid](kj::Exception&&) { watchers.erase(wid); }));
    }
    stats.watches = watchers.size();
  }

  transport::KjLoop& loop;
  node::SharedNode& node;
  node::MeshHost* mesh;
  ApiPolicy policy;
  LocalApiHooks hooks;
  Logger* logger;
  Handler handler;
  std::unique_ptr<transport::LocalListener> listener;
  // Declared after what its jobs use (the node is outside): destroyed, its threads joined, first.
  std::unique_ptr<ReadPool> pool;
  // Read calls running on the pool, by id (loop thread).
  std::map<std::uint64_t, kj::Own<kj::PromiseFulfiller<void>>> pending_reads;
  std::uint64_t next_read = 1;
  std::map<std::uint64_t, kj::Own<transport::LocalLink>> clients;
  std::map<std::uint64_t, Watcher> watchers;
  std::uint64_t next_client = 1;
  std::uint64_t next_watcher = 1;
  LocalApiStats stats;
  std::size_t observer = 0;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::shared_ptr<std::atomic<bool>> posted = std::make_shared<std::atomic<bool>>(false);
  kj::TaskSet tasks;
};

#pragma GCC diagnostic pop

LocalApi::LocalApi(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LocalApi::~LocalApi() {
  // No read job runs after this; the answers of jobs that ran and were not yet delivered are
  // dropped with the clients below.
  impl_->pool.reset();
  impl_->node.remove_after_write(impl_->observer);
  if (impl_->mesh != nullptr) impl_->mesh->set_on_step(nullptr);
  *impl_->alive = false;
  impl_->watchers.clear();
  impl_->clients.clear();
  impl_->listener.reset();
}

Result<std::unique_ptr<LocalApi>> LocalApi::start(transport::KjLoop& loop, node::SharedNode& node, node::MeshHost* mesh,
                                                  const std::string& socket_path,
                                                  transport::LocalListenerOptions listener, ApiPolicy policy,
                                                  LocalApiHooks hooks, Logger* logger) {
  return start(loop, node, mesh, socket_path, listener, std::move(policy), std::move(hooks), LocalApiOptions{}, logger);
}

Result<std::unique_ptr<LocalApi>> LocalApi::start(transport::KjLoop& loop, node::SharedNode& node, node::MeshHost* mesh,
                                                  const std::string& socket_path,
                                                  transport::LocalListenerOptions listener, ApiPolicy policy,
                                                  LocalApiHooks hooks, LocalApiOptions options, Logger* logger) {
  if (options.read_queue_max == 0) {
    return Status(Code::kInvalidArgument, "local API read_queue_max must be at least 1, got 0");
  }
  auto impl = std::make_unique<Impl>(loop, node, mesh, std::move(policy), std::move(hooks), logger);
  impl->handler.logger = logger;
  impl->pool = std::make_unique<ReadPool>(options.read_threads, options.read_queue_max);
  Impl* raw = impl.get();
  auto l = transport::listen_local(
      loop, socket_path, transport::LinkOptions{}, listener,
      [raw](kj::Own<transport::LocalLink> link) { raw->on_client(kj::mv(link)); },
      [raw](const Status& st) { SHOAL_LOG(raw->logger, kWarn, kComponent, "refused a client: ", st.to_string()); });
  if (!l.ok()) return l.status();
  impl->listener = std::move(*l);
  std::unique_ptr<LocalApi> api(new LocalApi(std::move(impl)));
  LocalApi* self = api.get();
  raw->observer = node.add_after_write([self]() { self->notify(); });
  if (mesh != nullptr) mesh->set_on_step([raw]() { raw->pump_watchers(); });
  SHOAL_LOG(logger, kInfo, kComponent, "local API on ", socket_path, " (", raw->pool->threads(), " read threads, ",
            raw->pool->queue_max(), " queued reads at most)");
  return api;
}

void LocalApi::notify() {
  auto alive = impl_->alive;
  auto posted = impl_->posted;
  Impl* raw = impl_.get();
  if (posted->exchange(true)) return;
  impl_->loop.post([alive, posted, raw]() {
    posted->store(false);
    if (*alive) raw->pump_watchers();
  });
}

LocalApiStats LocalApi::stats() const {
  LocalApiStats s = impl_->stats;
  s.clients = impl_->clients.size();
  s.watches = impl_->watchers.size();
  return s;
}

void LocalApi::set_policy(ApiPolicy policy) { impl_->policy = std::move(policy); }

}  // namespace shoal::daemon

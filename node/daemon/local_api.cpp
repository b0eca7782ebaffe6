// node/daemon/local_api.cpp: the Node capability over the Unix socket (see local_api.hpp).
#include "node/daemon/local_api.hpp"

#include <capnp/message.h>
#include <kj/async.h>
#include <kj/debug.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <thread>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "node/core/node_state.hpp"
#include "transport/node_api.capnp.h"
#include "transport/node_api_convert.hpp"

namespace shoal::daemon {
namespace api = transport::api;
namespace asio = boost::asio;

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
// Export's pages (exportRecords): at most this many records, and node::kRecordsPageBytes.
constexpr std::uint32_t kExportPageRecords = 1024;

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

// A get's answer: the siblings, and why an evicted winner is not refilled (node_api.capnp, get).
void put_get(api::Node::GetResults::Builder b, const node::MeshHost::ColdGet& got) {
  auto list = b.initSiblings(static_cast<unsigned>(got.record.siblings.size()));
  for (unsigned i = 0; i < got.record.siblings.size(); ++i) put_value(list[i], got.record.siblings[i].value);
  if (!got.cold_error.ok()) {
    b.setColdCode(got.cold_error.full_code());
    b.setColdError(got.cold_error.message());
  }
}

// What a stats call reads from the node.
struct NodeFigures {
  node::NodeStats stats;
  std::vector<node::PeerProgress> progress;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// A search answer's freshness, as the mesh last reported it (published by the main loop after
// every engine step, read by the API threads, which may not touch the mesh host).
struct FreshPeer {
  std::string device;
  std::string replica;  // encoded replica id, empty before the introduction
  bool up = false;
  std::optional<MonoTime> last_delta;
};

// kj's Server classes have no virtual destructor; ours are owned by kj::heap as themselves.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"

struct LocalApi::Impl {
  struct Handler final : public kj::TaskSet::ErrorHandler {
    Logger* logger = nullptr;
    void taskFailed(kj::Exception&& e) override {
      SHOAL_LOG(logger, kDebug, kComponent, "task failed: ", e.getDescription().cStr());
    }
  };

  struct Watcher {
    std::uint64_t id = 0;
    std::string collection;  // "" = all
    api::Listener::Client listener = nullptr;
    std::uint64_t next = 0;  // buffer sequence already sent
    bool in_flight = false;
  };

  class ApiThread;

  // What lives on one API thread's loop (created and destroyed on that thread).
  struct ThreadState {
    explicit ThreadState(transport::KjLoop& l, Logger* logger) : loop(l), tasks(handler) { handler.logger = logger; }
    transport::KjLoop& loop;
    Handler handler;
    std::map<std::uint64_t, kj::Own<transport::LocalLink>> clients;
    std::map<std::uint64_t, Watcher> watchers;
    // Calls waiting for the main loop (stats, backup), by id.
    std::map<std::uint64_t, kj::Own<kj::PromiseFulfiller<void>>> pending;
    std::uint64_t next_pending = 1;
    std::uint64_t next_watcher = 1;
    // Declared last: destroyed first, with the tasks that refer to the members above.
    kj::TaskSet tasks;
  };

  // One thread with its own Asio io_context and kj loop, serving the clients handed to it: every
  // call of those clients runs here, reads and writes alike, so a search crosses no thread.
  class ApiThread {
   public:
    ApiThread(Impl& impl, std::size_t index) : impl_(impl), index_(index), guard_(io_.get_executor()) {}
    ~ApiThread() { stop(); }
    ApiThread(const ApiThread&) = delete;
    ApiThread& operator=(const ApiThread&) = delete;

    void start() {
      std::promise<void> ready;
      auto started = ready.get_future();
      thread_ = std::thread([this, &ready] { run(ready); });
      started.wait();
    }
    // Ends the thread: its clients' links are closed and destroyed there. Any thread but its own.
    void stop() {
      if (!thread_.joinable()) return;
      post([this] { stopping_ = true; });
      thread_.join();
    }

    // Runs `fn` on this thread while its loop runs (dropped once it has stopped). Any thread.
    void post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

    // Serves a client (a socket the main loop accepted and the policy allowed). Any thread.
    void adopt(transport::LocalSocket socket, std::uint64_t id) {
      clients_.fetch_add(1, std::memory_order_relaxed);
      auto sock = std::make_shared<transport::LocalSocket>(std::move(socket));
      post([this, sock, id]() mutable { serve(std::move(*sock), id); });
    }

    // New changes may be in the delta buffer: this thread's watchers are sent them. Any thread.
    void notify() {
      if (pump_posted_.exchange(true)) return;
      post([this] {
        pump_posted_.store(false);
        pump_watchers();
      });
    }

    std::size_t clients() const noexcept { return clients_.load(std::memory_order_relaxed); }
    std::size_t watches() const noexcept { return watches_.load(std::memory_order_relaxed); }
    ThreadState& state() noexcept { return *state_; }
    Impl& impl() noexcept { return impl_; }

    // Runs `work()` on the main loop (what only it may touch: the mesh host, the backup hook)
    // and then `finish(answer)` here, which builds the results. The answer crosses by Asio posts
    // both ways (KjLoop does not run kj's cross-thread executor).
    template <typename T, typename Finish>
    kj::Promise<void> on_main(std::function<T()> work, Finish finish) {
      return on_main_async<T>([work = std::move(work)]() { return kj::Promise<T>(work()); }, std::move(finish));
    }
    // The same for work that answers later on the main loop (a call to the sink): the promise
    // `work()` returns is kept there until it resolves.
    template <typename T, typename Finish>
    kj::Promise<void> on_main_async(std::function<kj::Promise<T>()> work, Finish finish) {
      auto answer = std::make_shared<std::optional<T>>();
      auto error = std::make_shared<std::string>();
      const std::uint64_t id = state_->next_pending++;
      auto paf = kj::newPromiseAndFulfiller<void>();
      state_->pending.emplace(id, kj::mv(paf.fulfiller));
      Impl* impl = &impl_;
      impl_.loop.post([this, impl, alive = impl_.alive, answer, error, id, work = std::move(work)]() {
        if (!*alive) return;  // the API is going away; the call ends with its client
        auto reply = [this, alive, id]() {
          if (*alive) post([this, id]() { complete(id); });
        };
        impl->main_tasks->add(kj::evalNow([&work]() { return work(); })
                                  .then([answer, reply](T v) { answer->emplace(kj::mv(v)); reply(); },
                                        [error, reply](kj::Exception&& e) {
                                          *error = e.getDescription().cStr();
                                          reply();
                                        }));
      });
      return paf.promise.then([answer, error, finish = std::move(finish)]() mutable -> kj::Promise<void> {
        if (!answer->has_value()) return transport::exception_of(Status(Code::kInternal, "call failed: " + *error));
        return finish(std::move(**answer));
      });
    }

   private:
    void run(std::promise<void>& ready) {
      {
        transport::KjLoop loop(io_);
        {
          ThreadState state(loop, impl_.logger);
          state_ = &state;
          ready.set_value();
          loop.run_while([this] { return stopping_; }, static_cast<std::size_t>(-1));
          // Links first (their RPC systems refer to the servers), then the rest of the state.
          state.watchers.clear();
          for (auto& [id, link] : state.clients) link->close();
          state.clients.clear();
          state.pending.clear();
          state_ = nullptr;
        }
      }
      watches_.store(0);
    }

    void serve(transport::LocalSocket socket, std::uint64_t id) {
      ThreadState& st = *state_;
      auto link = transport::adopt_local(st.loop, std::move(socket), transport::LinkOptions{});
      link->serve(kj::heap<NodeServer>(*this, link->credentials()));
      st.tasks.add(link->on_disconnect().then([this, id]() { drop(id); }, [this, id](kj::Exception&&) { drop(id); }));
      st.clients.emplace(id, kj::mv(link));
    }

    void drop(std::uint64_t id) {
      // Destroyed on a later turn: this runs in a callback of the link's own RPC system.
      state_->tasks.add(kj::evalLater([this, id]() {
        if (state_->clients.erase(id) == 0) return;
        clients_.fetch_sub(1, std::memory_order_relaxed);
        impl_.loop.post([alive = impl_.alive, impl = &impl_]() {
          if (*alive) impl->client_gone();
        });
      }));
    }

    void complete(std::uint64_t id) {
      auto it = state_->pending.find(id);
      if (it == state_->pending.end()) return;
      auto fulfiller = kj::mv(it->second);
      state_->pending.erase(it);
      fulfiller->fulfill();
    }

    // Sends each idle watcher the changes after its position.
    void pump_watchers() {
      ThreadState& st = *state_;
      for (auto& [id, w] : st.watchers) {
        if (w.in_flight) continue;
        auto batch = impl_.node.read([&](const node::Node& n) { return n.changes_after(w.next, kChangesPerCall); });
        if (!batch.ok()) {
          SHOAL_LOG(impl_.logger, kWarn, kComponent, "watch ", id, ": ", batch.status().to_string());
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
        st.tasks.add(req.send().then(
            [this, wid](auto&&) {
              if (auto it = state_->watchers.find(wid); it != state_->watchers.end()) it->second.in_flight = false;
              pump_watchers();
            },
            [this, wid](kj::Exception&&) { forget_watcher(wid); }));
      }
      watches_.store(st.watchers.size(), std::memory_order_relaxed);
    }

   public:
    void add_watcher(Watcher w) {
      const std::uint64_t id = w.id;
      state_->watchers.emplace(id, std::move(w));
      watches_.store(state_->watchers.size(), std::memory_order_relaxed);
    }
    void forget_watcher(std::uint64_t id) {
      if (state_ == nullptr) return;
      state_->watchers.erase(id);
      watches_.store(state_->watchers.size(), std::memory_order_relaxed);
    }

   private:
    Impl& impl_;
    [[maybe_unused]] std::size_t index_;
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::thread thread_;
    ThreadState* state_ = nullptr;  // this thread's, while its loop runs
    bool stopping_ = false;         // this thread's
    std::atomic<bool> pump_posted_{false};
    std::atomic<std::size_t> clients_{0};
    std::atomic<std::size_t> watches_{0};
  };

  class SubscriptionServer final : public api::Subscription::Server {
   public:
    SubscriptionServer(ApiThread& thread, std::uint64_t id) : thread_(thread), id_(id) {}
    ~SubscriptionServer() { thread_.forget_watcher(id_); }

   private:
    ApiThread& thread_;
    std::uint64_t id_;
  };

  class NodeServer final : public api::Node::Server {
   public:
    NodeServer(ApiThread& thread, transport::PeerCredentials creds)
        : thread_(thread), impl_(thread.impl()), creds_(creds) {}

    kj::Promise<void> createCollection(CreateCollectionContext ctx) override {
      impl_.count_call();
      auto wire = transport::read(ctx.getParams().getSpec());
      if (!wire.ok()) return failed(wire.status());
      auto spec = node::from_wire(*wire);
      if (!spec.ok()) return failed(spec.status());
      return done(impl_.node.create_collection(*spec));
    }
    kj::Promise<void> dropCollection(DropCollectionContext ctx) override {
      impl_.count_call();
      return done(impl_.node.drop_collection(text_of(ctx.getParams().getName())));
    }
    kj::Promise<void> listCollections(ListCollectionsContext ctx) override {
      impl_.count_call();
      auto infos = impl_.node.list_collections();
      auto list = ctx.getResults().initCollections(static_cast<unsigned>(infos.size()));
      for (unsigned i = 0; i < infos.size(); ++i) put_info(list[i], infos[i]);
      return kj::READY_NOW;
    }
    kj::Promise<void> collectionInfo(CollectionInfoContext ctx) override {
      impl_.count_call();
      auto info = impl_.node.collection_info(text_of(ctx.getParams().getName()));
      if (!info.ok()) return failed(info.status());
      put_info(ctx.getResults().initInfo(), *info);
      return kj::READY_NOW;
    }
    kj::Promise<void> upsert(UpsertContext ctx) override {
      impl_.count_call();
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
      // SharedNode's write path (validation, group commit with other threads' writers, the
      // index queue) exactly as an embedded app's; this client's calls run in order here.
      Status st = records.size() == 1
                      ? impl_.node.upsert(collection, records[0].id, std::move(records[0].value))
                      : impl_.node.upsert_batch(collection, std::move(records));
      if (impl_.hooks.write_seconds) impl_.hooks.write_seconds(seconds_since(t0));
      return done(st);
    }
    kj::Promise<void> delete_(DeleteContext ctx) override {
      impl_.count_call();
      const auto t0 = std::chrono::steady_clock::now();
      auto p = ctx.getParams();
      Status st = impl_.node.remove(text_of(p.getCollection()), bytes_of(p.getId()));
      if (impl_.hooks.write_seconds) impl_.hooks.write_seconds(seconds_since(t0));
      return done(st);
    }
    kj::Promise<void> get(GetContext ctx) override {
      impl_.count_call();
      auto p = ctx.getParams();
      std::string collection(text_of(p.getCollection()));
      std::string id(bytes_of(p.getId()));
      auto got = impl_.node.get(collection, id);
      if (!got.ok()) return failed(got.status());
      if (!got->siblings.at(0).evicted) {
        put_get(ctx.getResults(), node::MeshHost::ColdGet{std::move(*got), Status()});
        return kj::READY_NOW;
      }
      // An evicted winner (a stub): the sink's link is the main loop's, so the refill runs there
      // (MeshHost::get_with_cold; docs/tiers.md, "Eviction").
      if (impl_.mesh == nullptr) {
        put_get(ctx.getResults(),
                node::MeshHost::ColdGet{std::move(*got), Status(Detail::kColdUnavailable,
                                                                str_cat("record '", node::escape_for_message(id),
                                                                        "' is evicted and this server runs no mesh "
                                                                        "(no sink link) to refill it"))});
        return kj::READY_NOW;
      }
      Impl* impl = &impl_;
      return thread_.on_main_async<Result<node::MeshHost::ColdGet>>(
          [impl, collection = std::move(collection), id = std::move(id)]() mutable {
            return impl->mesh->get_with_cold(std::move(collection), std::move(id));
          },
          [ctx, impl](Result<node::MeshHost::ColdGet> r) mutable -> kj::Promise<void> {
            if (!r.ok()) return impl->failed(r.status());
            put_get(ctx.getResults(), *r);
            return kj::READY_NOW;
          });
    }
    kj::Promise<void> exportRecords(ExportRecordsContext ctx) override {
      impl_.count_call();
      auto p = ctx.getParams();
      const std::uint32_t limit = p.getLimit() == 0 ? kExportPageRecords : std::min(p.getLimit(), kExportPageRecords);
      auto page = impl_.node.read([&](const node::Node& n) {
        return n.records_after(text_of(p.getCollection()), bytes_of(p.getAfter()), limit, node::kRecordsPageBytes);
      });
      if (!page.ok()) return failed(page.status());
      auto r = ctx.getResults();
      auto list = r.initRecords(static_cast<unsigned>(page->records.size()));
      for (unsigned i = 0; i < page->records.size(); ++i) {
        list[i].setId(data_of(page->records[i].id));
        put_value(list[i].initValue(), page->records[i].value);
      }
      r.setMore(page->more);
      return kj::READY_NOW;
    }
    kj::Promise<void> search(SearchContext ctx) override {
      impl_.count_call();
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
      const std::vector<float> query = transport::floats_of(p.getQuery());
      // Under SharedNode's shared lock, in parallel with the other API threads' searches.
      auto hits = impl_.node.search(text_of(p.getCollection()), query, o);
      if (impl_.hooks.search_seconds) impl_.hooks.search_seconds(seconds_since(t0));
      if (!hits.ok()) return failed(hits.status());
      const auto board = impl_.freshness_board();
      std::uint64_t words = 8;
      for (const auto& h : *hits) words += transport::hit_words(h.id.size(), h.model.size(), h.metadata.fields);
      if (board) {
        for (const auto& f : *board) words += transport::freshness_words(f.replica.size(), f.device.size());
      }
      auto r = ctx.getResults(capnp::MessageSize{words, 0});
      auto list = r.initHits(static_cast<unsigned>(hits->size()));
      for (unsigned i = 0; i < hits->size(); ++i) {
        const auto& h = (*hits)[i];
        list[i].setId(data_of(h.id));
        list[i].setDistance(h.distance);
        transport::put_metadata(list[i].initMetadata(static_cast<unsigned>(h.metadata.fields.size())),
                                h.metadata.fields);
        list[i].setModel(h.model);
      }
      impl_.put_freshness(r, board);
      return kj::READY_NOW;
    }
    kj::Promise<void> stats(StatsContext ctx) override {
      impl_.count_call();
      // The mesh's part is the main loop's to read.
      Impl* impl = &impl_;
      return thread_.on_main<std::string>([impl]() { return impl->stats_json(); },
                                          [ctx](std::string json) mutable -> kj::Promise<void> {
                                            ctx.getResults().setJson(json);
                                            return kj::READY_NOW;
                                          });
    }
    kj::Promise<void> watch(WatchContext ctx) override {
      impl_.count_call();
      auto p = ctx.getParams();
      Watcher w;
      w.id = thread_.state().next_watcher++;
      w.collection.assign(text_of(p.getCollection()));
      w.listener = p.getListener();
      w.next = impl_.node.read([](const node::Node& n) { return n.last_change(); });
      const std::uint64_t id = w.id;
      thread_.add_watcher(std::move(w));
      ctx.getResults().setSubscription(kj::heap<SubscriptionServer>(thread_, id));
      return kj::READY_NOW;
    }

    kj::Promise<void> backup(BackupContext ctx) override {
      impl_.count_call();
      if (!impl_.hooks.backup) return failed(Status(Code::kUnimplemented, "this server does not back up"));
      // The copy is written with the daemon's privileges: only root and the daemon's own user.
      const std::uint32_t daemon_uid = impl_.daemon_uid;
      if (creds_.uid != 0 && creds_.uid != daemon_uid) {
        return failed(Status(Code::kUnauthenticated, str_cat("backup is for root and the daemon's user (uid ",
                                                             daemon_uid, "); the caller is uid ", creds_.uid)));
      }
      const std::string dest(text_of(ctx.getParams().getDest()));
      if (dest.empty() || dest.front() != '/') {
        return failed(Status(Detail::kMalformed, "backup destination '" + dest + "' must be an absolute path"));
      }
      const bool compact = ctx.getParams().getCompact();
      Impl* impl = &impl_;
      const std::uint32_t uid = creds_.uid;
      // The hook (the data directory's) runs on the main loop, as shoald's other owners of it do.
      return thread_.on_main<Result<node::StoreCopyReport>>(
          [impl, dest, compact]() { return impl->hooks.backup(dest, compact); },
          [ctx, impl, dest, uid](Result<node::StoreCopyReport> r) mutable -> kj::Promise<void> {
            if (!r.ok()) return impl->failed(r.status());
            auto out = ctx.getResults();
            out.setSourceBytes(r->source_bytes);
            out.setCopyBytes(r->copy_bytes);
            out.setReplica(r->replica);
            SHOAL_LOG(impl->logger, kInfo, kComponent, "backup to ", dest, " (", r->copy_bytes, " bytes) for uid ", uid);
            return kj::READY_NOW;
          });
    }

    kj::Promise<void> searchCold(SearchColdContext ctx) override {
      impl_.count_call();
      if (impl_.mesh == nullptr) return failed(Status(Code::kUnavailable, "cold search needs the mesh, and this server runs none"));
      const auto t0 = std::chrono::steady_clock::now();
      auto p = ctx.getParams();
      node::SearchOptions o;
      o.k = p.getK();
      o.ef = p.getEf();
      std::string collection(text_of(p.getCollection()));
      std::vector<float> query = transport::floats_of(p.getQuery());
      Impl* impl = &impl_;
      // The sink's link is the main loop's: the search runs there and answers when the sink has.
      return thread_.on_main_async<Result<node::MeshHost::ColdSearch>>(
          [impl, collection = std::move(collection), query = std::move(query), o]() mutable {
            return impl->mesh->search_with_cold(std::move(collection), std::move(query), o);
          },
          [ctx, impl, t0](Result<node::MeshHost::ColdSearch> r) mutable -> kj::Promise<void> {
            if (impl->hooks.search_seconds) impl->hooks.search_seconds(seconds_since(t0));
            if (!r.ok()) return impl->failed(r.status());
            auto out = ctx.getResults();
            const unsigned n = static_cast<unsigned>(r->hits.size());
            auto hits = out.initHits(n);
            auto cold = out.initCold(n);
            for (unsigned i = 0; i < n; ++i) {
              hits[i].setId(data_of(r->hits[i].id));
              hits[i].setDistance(r->hits[i].distance);
              cold.set(i, r->hits[i].cold);
            }
            out.setSinkAnswered(r->sink.has_value());
            if (r->sink) {
              auto f = out.initSink();
              f.setObjects(r->sink->objects);
              f.setRecords(r->sink->records);
              f.setLastAckWallNs(r->sink->last_ack_wall_ns);
            } else {
              out.setSinkCode(r->cold_error.full_code());
              out.setSinkError(r->cold_error.message());
            }
            impl->put_freshness(out);
            return kj::READY_NOW;
          });
    }

    kj::Promise<void> bootstrapFromSink(BootstrapFromSinkContext ctx) override {
      impl_.count_call();
      if (impl_.mesh == nullptr) return failed(Status(Code::kUnavailable, "bootstrap needs the mesh, and this server runs none"));
      std::string collection(text_of(ctx.getParams().getCollection()));
      Impl* impl = &impl_;
      const std::uint32_t uid = creds_.uid;
      return thread_.on_main_async<Result<node::MeshHost::SinkBootstrap>>(
          [impl, collection]() mutable { return impl->mesh->bootstrap_from_sink(collection); },
          [ctx, impl, collection, uid](Result<node::MeshHost::SinkBootstrap> r) mutable -> kj::Promise<void> {
            if (!r.ok()) return impl->failed(r.status());
            auto out = ctx.getResults();
            out.setPages(r->pages);
            out.setRecords(r->records);
            out.setBytes(r->bytes);
            out.setCreated(r->created);
            if (r->created) {
              out.setDimension(r->dimension);
              out.setMetric(node::metric_to_wire_byte(r->metric));
            }
            SHOAL_LOG(impl->logger, kInfo, kComponent, "bootstrap of '", collection, "' from the sink for uid ", uid, ": ",
                      r->records, " records in ", r->pages, " pages (", r->bytes, " bytes)",
                      !r->created              ? ""
                      : r->options_from_sink ? "; the collection was created from the sink's spec (dimension, metric, index options)"
                                             : "; the collection was created from the sink's dimension and metric (index options: the defaults)");
            return kj::READY_NOW;
          });
    }

   private:
    kj::Promise<void> failed(const Status& st) { return impl_.failed(st); }
    kj::Promise<void> done(const Status& st) {
      if (!st.ok()) return failed(st);
      return kj::READY_NOW;
    }

    ApiThread& thread_;
    Impl& impl_;
    transport::PeerCredentials creds_;
  };

  Impl(transport::KjLoop& l, node::SharedNode& n, node::MeshHost* m, ApiPolicy p, LocalApiHooks h, Logger* lg)
      : loop(l), node(n), mesh(m), policy(std::move(p)), daemon_uid(policy.daemon_uid), hooks(std::move(h)), logger(lg) {}

  void count_call() { calls.fetch_add(1, std::memory_order_relaxed); }

  kj::Promise<void> failed(const Status& st) {
    calls_failed.fetch_add(1, std::memory_order_relaxed);
    return fail(st);
  }

  static void put_info(api::CollectionInfo::Builder b, const node::CollectionInfo& info) {
    put_spec(b.initSpec(), info.spec);
    b.setLiveRecords(info.live_records);
    b.setIndexBytes(info.index_bytes);
  }

  // Any thread: the board the main loop last published (null without a mesh).
  std::shared_ptr<const std::vector<FreshPeer>> freshness_board() {
    if (mesh == nullptr) return nullptr;
    std::lock_guard lock(fresh_mu);
    return fresh;
  }

  // Any thread: from the board the main loop publishes.
  template <typename Results>
  void put_freshness(Results r) {
    put_freshness(r, freshness_board());
  }
  // The same from a board already taken (freshness_board()).
  template <typename Results>
  void put_freshness(Results r, const std::shared_ptr<const std::vector<FreshPeer>>& peers) {
    if (mesh == nullptr) {
      r.initFreshness(0);
      return;
    }
    const unsigned n = peers ? static_cast<unsigned>(peers->size()) : 0;
    auto list = r.initFreshness(n);
    const MonoTime now = now_mono();
    for (unsigned i = 0; i < n; ++i) {
      const FreshPeer& f = (*peers)[i];
      list[i].setDevice(f.device);
      list[i].setUp(f.up);
      list[i].setSinceLastDeltaMs(f.last_delta ? (now - *f.last_delta).ms() : -1);
      if (!f.replica.empty()) list[i].setReplica(data_of(f.replica));
    }
  }

  // Main loop: publishes the mesh's peers for put_freshness. After every engine step, so a
  // delta applied from a peer is on the board before any later search reads it.
  void publish_freshness() {
    if (mesh == nullptr) return;
    auto board = std::make_shared<std::vector<FreshPeer>>();
    for (const auto& p : mesh->peers()) {
      FreshPeer f;
      f.device = p.device;
      f.up = p.up;
      f.last_delta = p.last_delta;
      if (p.replica_id) f.replica = p.replica_id->encode();
      board->push_back(std::move(f));
    }
    std::lock_guard lock(fresh_mu);
    fresh = std::move(board);
  }

  // Main loop.
  std::string stats_json() {
    const NodeFigures figures = node.read([](const node::Node& n) { return NodeFigures{n.stats(), n.peer_progress()}; });
    nlohmann::json j;
    const node::NodeStats& s = figures.stats;
    j["replica"] = s.replica;
    j["collections"] = s.collections;
    j["live_records"] = s.live_records;
    j["delta_buffer_entries"] = s.delta_buffer_entries;
    j["index_bytes"] = s.index_bytes;
    // Group commit and the index queue, as in embedded mode (node/capi/embedded.cpp).
    const node::WriteGroupStats w = node.write_stats();
    j["write_groups"] = {{"groups", w.groups}, {"writes", w.writes}, {"largest", w.largest}};
    j["index_backlog"] = node.index_backlog();
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
        // Eviction's figures too (as /status.json's sink object): `shoal status` prints them.
        const node::EvictionStatus ev = node.read([](const node::Node& n) { return n.eviction_status(); });
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
                     {"last_error", up->last_error},
                     {"payload_budget_bytes", ev.budget_bytes},
                     {"payload_held_bytes", ev.held_bytes},
                     {"memory_budget_bytes", ev.memory_budget_bytes},
                     {"index_held_bytes", ev.index_held_bytes},
                     {"evicted_records", ev.evicted_records},
                     {"evicted_bytes", ev.evicted_bytes}};
      }
    }
    // The tier policies in effect (the config file's [tiers], reloaded on SIGHUP; docs/tiers.md):
    // the defaults and each collection's, for `shoal tier`.
    {
      const node::TierPolicies tiers = node.read([](const node::Node& n) { return n.tier_policies(); });
      auto policy_json = [](const node::TierPolicy& t) {
        return nlohmann::json{{"warm", t.warm},
                              {"warm_interval_ms", t.warm_interval.ms()},
                              {"warm_budget_bytes", t.warm_budget_bytes},
                              {"sink", t.sink},
                              {"hot_window_ms", t.hot_window.ms()}};
      };
      auto named = nlohmann::json::object();
      for (const auto& [name, t] : tiers.collections) named[name] = policy_json(t);
      j["tiers"] = {{"defaults", policy_json(tiers.defaults)}, {"collections", named}};
    }
    const LocalApiStats a = api_stats();
    j["api"] = {{"clients", a.clients},
                {"calls", a.calls},
                {"calls_failed", a.calls_failed},
                {"watches", a.watches},
                {"read_threads", threads.size()}};
    return j.dump();
  }

  LocalApiStats api_stats() const {
    LocalApiStats s;
    s.clients_accepted = clients_accepted;
    s.clients_refused = clients_refused;
    s.calls = calls.load(std::memory_order_relaxed);
    s.calls_failed = calls_failed.load(std::memory_order_relaxed);
    s.clients = clients_alive;
    for (const auto& t : threads) s.watches += t->watches();
    return s;
  }

  // Main loop: a client the listener accepted.
  void on_client(transport::LocalSocket socket) {
    const auto creds = socket.credentials();
    if (!policy.allows(creds)) {
      ++clients_refused;
      SHOAL_LOG(logger, kWarn, kComponent, "refused a client: uid ", creds.uid, " gid ", creds.gid, " pid ", creds.pid,
                " is not allowed by the api policy (api.allow_uids / api.allow_gids)");
      return;  // the socket closes here
    }
    ++clients_accepted;
    ++clients_alive;
    if (listener) listener->set_clients_alive(clients_alive);
    // The API thread with the fewest clients (the first of them on a tie) serves it.
    ApiThread* best = threads.front().get();
    for (const auto& t : threads) {
      if (t->clients() < best->clients()) best = t.get();
    }
    best->adopt(std::move(socket), next_client++);
  }

  // Main loop: an API thread dropped a client.
  void client_gone() {
    if (clients_alive > 0) --clients_alive;
    if (listener) listener->set_clients_alive(clients_alive);
  }

  transport::KjLoop& loop;
  node::SharedNode& node;
  node::MeshHost* mesh;
  ApiPolicy policy;  // main loop
  const std::uint32_t daemon_uid;
  const LocalApiHooks hooks;  // called from the API threads: search_seconds and write_seconds must be thread-safe
  Logger* logger;
  std::unique_ptr<transport::LocalListener> listener;
  std::vector<std::unique_ptr<ApiThread>> threads;
  // Main loop.
  std::uint64_t next_client = 1;
  std::uint64_t clients_accepted = 0;
  std::uint64_t clients_refused = 0;
  std::size_t clients_alive = 0;
  std::size_t observer = 0;
  // Any thread.
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> calls_failed{0};
  std::mutex fresh_mu;
  std::shared_ptr<const std::vector<FreshPeer>> fresh;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // main loop
  // Main loop: the API threads' calls waiting there for an answer (on_main_async).
  Handler main_handler;
  std::unique_ptr<kj::TaskSet> main_tasks = std::make_unique<kj::TaskSet>(main_handler);
};

#pragma GCC diagnostic pop

LocalApi::LocalApi(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LocalApi::~LocalApi() {
  // Nothing the API threads post to the main loop runs after this.
  *impl_->alive = false;
  impl_->main_tasks.reset();  // calls waiting on the main loop end with their clients
  impl_->node.remove_after_write(impl_->observer);
  if (impl_->mesh != nullptr) impl_->mesh->set_on_step(nullptr);
  impl_->listener.reset();
  // Each thread closes and destroys its clients' links (their calls end) and joins.
  for (auto& t : impl_->threads) t->stop();
  impl_->threads.clear();
}

Result<std::unique_ptr<LocalApi>> LocalApi::start(transport::KjLoop& loop, node::SharedNode& node, node::MeshHost* mesh,
                                                  const std::string& socket_path,
                                                  transport::LocalListenerOptions listener, ApiPolicy policy,
                                                  LocalApiHooks hooks, Logger* logger) {
  return start(loop, node, mesh, socket_path, listener, std::move(policy), std::move(hooks), LocalApiOptions{}, logger);
}

Status check_read_threads(std::size_t n) {
  if (n > kMaxReadThreads) {
    return Status(Detail::kOutOfRange, str_cat("api.read_threads must be 0 (one per core) to ", kMaxReadThreads,
                                               ", got ", n));
  }
  return {};
}

std::size_t effective_read_threads(std::size_t n) {
  if (n != 0) return n;
  const std::size_t cores = std::max<std::size_t>(1, std::thread::hardware_concurrency());
  return std::min(kMaxReadThreads, kReadThreadsPerCore * cores);
}

Result<std::unique_ptr<LocalApi>> LocalApi::start(transport::KjLoop& loop, node::SharedNode& node, node::MeshHost* mesh,
                                                  const std::string& socket_path,
                                                  transport::LocalListenerOptions listener, ApiPolicy policy,
                                                  LocalApiHooks hooks, LocalApiOptions options, Logger* logger) {
  SHOAL_RETURN_IF_ERROR(check_read_threads(options.read_threads));
  auto impl = std::make_unique<Impl>(loop, node, mesh, std::move(policy), std::move(hooks), logger);
  impl->main_handler.logger = logger;
  const std::size_t n = effective_read_threads(options.read_threads);
  for (std::size_t i = 0; i < n; ++i) {
    impl->threads.push_back(std::make_unique<Impl::ApiThread>(*impl, i));
    impl->threads.back()->start();
  }
  Impl* raw = impl.get();
  auto l = transport::listen_local_sockets(
      loop, socket_path, listener, [raw](transport::LocalSocket s) { raw->on_client(std::move(s)); },
      [raw](const Status& st) { SHOAL_LOG(raw->logger, kWarn, kComponent, "refused a client: ", st.to_string()); });
  if (!l.ok()) {
    for (auto& t : impl->threads) t->stop();
    return l.status();
  }
  impl->listener = std::move(*l);
  std::unique_ptr<LocalApi> api(new LocalApi(std::move(impl)));
  LocalApi* self = api.get();
  raw->observer = node.add_after_write([self]() { self->notify(); });
  if (mesh != nullptr) {
    raw->publish_freshness();
    mesh->set_on_step([raw, self]() {
      raw->publish_freshness();
      self->notify();
    });
  }
  SHOAL_LOG(logger, kInfo, kComponent, "local API on ", socket_path, " (", n, " API threads)");
  return api;
}

void LocalApi::notify() {
  for (auto& t : impl_->threads) t->notify();
}

LocalApiStats LocalApi::stats() const { return impl_->api_stats(); }

void LocalApi::set_policy(ApiPolicy policy) { impl_->policy = std::move(policy); }

}  // namespace shoal::daemon

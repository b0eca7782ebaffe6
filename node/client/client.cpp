// node/client/client.cpp: libshoal_client.so, the client mode of the C API (shoal_connect): a
// capi::Backend (node/capi/backend.hpp) that sends each call to the daemon's Node capability
// (transport/node_api.capnp) over its Unix socket (transport/local_link.hpp).
//
// Threads (docs/decisions.md, D41): the backend owns an Asio io_context with a floating
// transport::KjLoop and the one LocalLink, and no thread of its own while nothing is watched. An
// app thread's call runs the loop itself when no other thread does (it sends the request and
// waits in epoll for the answer, so a call costs no thread hand-off); a call made while another
// thread runs the loop posts its request to that thread (KjLoop::post) and waits for its answer,
// taking the loop over if the other thread leaves first. So any number of app threads may call at
// once, each call answered as the daemon returns it. One thread at a time runs the loop (mu_,
// held_); every kj object is made and destroyed inside a KjLoop::Enter scope. Once the handle has
// watched, a driver thread runs the loop for good (the daemon calls the listener at any time),
// and calls post to it. Each watch has a thread of its own that runs the app's callback, so a
// slow callback holds back only its watch (the daemon sends a listener its next batch once the
// previous call returned) and a callback may call back into the library.
// Connection: made by connect(); when it is lost, calls in flight fail (kUnavailable, from the
// kj exception) and watches get one (no changes, gap) call; the next call connects again and
// re-subscribes the watches. No call is retried by the library.
// Deadline: every call waits at most ConnectOptions::timeout_ms (shoal_options_set_timeout_ms)
// for its answer, then returns kUnavailable naming the deadline, so a daemon that stops answering
// (stopped, hung, swapped out) never hangs the app. The request may still reach the daemon and
// take effect later; its late answer is dropped.
// Errors: the daemon sends each refused call's Status in the exception (transport::exception_of);
// status_of restores the code, and the message is the daemon's text, exactly as embedded.
#include <sys/un.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <capnp/capability.h>
#include <kj/async.h>
#include <kj/debug.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "node/capi/backend.hpp"
#include "node/core/node_state.hpp"
#include "transport/kj_loop.hpp"
#include "transport/link.hpp"
#include "transport/local_link.hpp"
#include "transport/node_api.capnp.h"
#include "transport/node_api_convert.hpp"

namespace shoal::client {
namespace {

namespace api = transport::api;
namespace asio = boost::asio;
using capi::Backend;
using capi::ChangeSink;
using capi::Freshness;
using capi::SearchAnswer;
using capi::ColdSearchAnswer;
using capi::SinkBootstrapReport;
using capi::GetAnswer;

// --- Conversions between the node's types and node_api.capnp ---

using transport::data_of;
using transport::text_of;
std::string bytes(capnp::Data::Reader d) { return std::string(transport::bytes_of(d)); }
static_assert(std::is_same_v<node::MetaValue, transport::MetaValueWire> &&
                  std::is_same_v<decltype(node::Metadata::fields), transport::MetaFieldsWire>,
              "node_api_convert.hpp carries node::Metadata::fields as is");

Result<node::CollectionInfo> info_of(api::CollectionInfo::Reader r) {
  node::CollectionInfo info;
  SHOAL_ASSIGN_OR_RETURN(auto wire, transport::read(r.getSpec()));
  SHOAL_ASSIGN_OR_RETURN(info.spec, node::from_wire(wire));
  info.live_records = r.getLiveRecords();
  info.index_bytes = r.getIndexBytes();
  return info;
}

// A search answer's freshness (node_api.capnp Freshness).
std::vector<Freshness> freshness_of(capnp::List<api::Freshness>::Reader list) {
  std::vector<Freshness> out;
  for (auto f : list) {
    Freshness fr;
    fr.replica = bytes(f.getReplica());
    fr.device.assign(text_of(f.getDevice()));
    fr.since_last_delta_ms = f.getSinceLastDeltaMs();
    fr.up = f.getUp();
    out.push_back(std::move(fr));
  }
  return out;
}

node::Metadata metadata_of(capnp::List<api::MetaField>::Reader list) {
  node::Metadata m;
  m.fields = transport::metadata_of(list);
  return m;
}

// A Status the daemon sent as a full code and its text; `fallback` when it sent code 0 where a
// failure is known (a daemon from before the field).
Status daemon_status(std::uint32_t code, std::string_view why, Status fallback) {
  if (code == 0) return fallback;
  return Status(static_cast<Detail>(code), std::string(why));
}

node::RecordValue value_of(api::Value::Reader r) {
  transport::ValueWire w = transport::value_of(r);
  node::RecordValue v;
  v.vector = std::move(w.vector);
  v.metadata.fields = std::move(w.metadata);
  v.model = std::move(w.model);
  return v;
}

// Roughly the bytes a record takes in a request (vector, id, metadata, framing).
std::size_t approx_bytes(const std::string& id, const node::RecordValue& v) {
  std::size_t n = 64 + id.size() + v.vector.size() * sizeof(float) + v.model.size();
  for (const auto& [k, val] : v.metadata.fields) {
    n += 32 + k.size();
    if (const auto* s = std::get_if<std::string>(&val)) n += s->size();
  }
  return n;
}

// --- Threads that run a watch's callback ---

struct Delivery {
  std::vector<node::Change> changes;
  bool gap = false;
  std::uint64_t ack = 0;  // 0: nothing to acknowledge
};

// Shared by the app (the Watch), the loop (which queues batches) and the watch's own thread.
struct WatchShared {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Delivery> queue;
  bool stop = false;
  ChangeSink sink;
  std::thread thread;
};

}  // namespace

// kj's Server classes have no virtual destructor; ours are owned by kj::heap as themselves.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"

class ClientBackend final : public Backend {
 public:
  ClientBackend(std::string path, capi::ConnectOptions options)
      : path_(std::move(path)), options_(options), guard_(io_.get_executor()) {}

  ~ClientBackend() override {
    if (!loop_) return;
    if (driver_.joinable()) {
      driver_stop_.store(true);
      asio::post(io_, [] {});  // wakes the driver if it waits in epoll
      wake_waiters();          // or for the loop
      driver_.join();
    }
    // No call is in flight (shoal_close's contract), but a late one may still hold the loop.
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return !held_; });
    held_ = true;
    lock.unlock();
    {
      transport::KjLoop::Enter enter(*loop_);
      // Handlers still queued (a late call's request) are dropped with the io_context, unrun.
      state_->shutdown();
      loop_state_ = nullptr;
      state_.reset();
    }
    loop_.reset();
  }

  // Makes the loop and connects once.
  Status start() {
    loop_ = std::make_unique<transport::KjLoop>(io_, transport::KjLoop::Binding::kFloating);
    {
      transport::KjLoop::Enter enter(*loop_);
      state_ = std::make_unique<LoopState>(*loop_);
      loop_state_ = state_.get();
    }
    // One round trip, so that a daemon that takes the connection and then refuses this process
    // (its uid/gid policy) fails shoal_connect rather than every later call.
    Status st = invoke<Status>([](api::Node::Client& n) {
      return n.listCollectionsRequest().send().then([](auto&&) { return Status(); });
    });
    if (st.code() == Code::kUnavailable && st.message().find("cannot connect") == std::string::npos &&
        st.message().find("call deadline") == std::string::npos) {
      return Status(Code::kUnavailable, "the daemon at " + path_ +
                                            " closed the connection before answering (does its API policy, "
                                            "api.allow_uids / api.allow_gids, allow this user?): " +
                                            st.message());
    }
    return st;
  }

  Status create_collection(const node::CollectionSpec& spec) override {
    return invoke<Status>([&](api::Node::Client& n) {
      auto req = n.createCollectionRequest();
      transport::write(req.initSpec(), node::to_wire(spec));
      return req.send().then([](auto&&) { return Status(); });
    });
  }

  Status drop_collection(const std::string& name) override {
    return invoke<Status>([&](api::Node::Client& n) {
      auto req = n.dropCollectionRequest();
      req.setName(name);
      return req.send().then([](auto&&) { return Status(); });
    });
  }

  Result<std::vector<node::CollectionInfo>> list_collections() override {
    using R = Result<std::vector<node::CollectionInfo>>;
    return invoke<R>([&](api::Node::Client& n) {
      return n.listCollectionsRequest().send().then([](auto&& r) -> R {
        std::vector<node::CollectionInfo> out;
        for (auto c : r.getCollections()) {
          SHOAL_ASSIGN_OR_RETURN(auto info, info_of(c));
          out.push_back(std::move(info));
        }
        return out;
      });
    });
  }

  Result<node::CollectionInfo> collection_info(const std::string& name) override {
    using R = Result<node::CollectionInfo>;
    return invoke<R>([&](api::Node::Client& n) {
      auto req = n.collectionInfoRequest();
      req.setName(name);
      return req.send().then([](auto&& r) -> R { return info_of(r.getInfo()); });
    });
  }

  Status upsert(const std::string& collection, std::string id, node::RecordValue value) override {
    std::vector<node::RecordInput> one;
    one.push_back(node::RecordInput{std::move(id), std::move(value)});
    return send_records(collection, one);
  }

  Status upsert_batch(const std::string& collection, std::vector<node::RecordInput> records) override {
    return send_records(collection, records);
  }

  Status remove(const std::string& collection, const std::string& id) override {
    return invoke<Status>([&](api::Node::Client& n) {
      auto req = n.deleteRequest();
      req.setCollection(collection);
      req.setId(data_of(id));
      return req.send().then([](auto&&) { return Status(); });
    });
  }

  Result<GetAnswer> get(const std::string& collection, const std::string& id) override {
    using R = Result<GetAnswer>;
    return invoke<R>([&](api::Node::Client& n) {
      auto req = n.getRequest();
      req.setCollection(collection);
      req.setId(data_of(id));
      return req.send().then([id](auto&& r) -> R {
        GetAnswer out;
        for (auto v : r.getSiblings()) {
          node::Sibling s;
          s.value = value_of(v);
          out.record.siblings.push_back(std::move(s));
        }
        if (out.record.siblings.empty()) return Status(Code::kInternal, "the daemon's get returned no value");
        // A winner without a vector is a stub the daemon could not refill (no whole record lacks
        // one); a daemon from before coldCode says nothing more.
        if (r.getColdCode() != 0 || out.record.siblings[0].value.vector.empty()) {
          out.record.siblings[0].evicted = true;
          out.cold = daemon_status(r.getColdCode(), text_of(r.getColdError()),
                                   Status(Detail::kColdUnavailable,
                                          str_cat("record '", node::escape_for_message(id),
                                                  "' is evicted to the cold-tier sink and the daemon did not refill it")));
        }
        return out;
      });
    });
  }

  Result<SearchAnswer> search(const std::string& collection, std::span<const float> query, std::uint32_t k,
                              std::uint32_t ef, const std::string& filter, bool with_metadata) override {
    using R = Result<SearchAnswer>;
    return invoke<R>(Hold::kFinish, [&](api::Node::Client& n) {
      auto req = n.searchRequest(transport::search_params_size(collection.size(), query.size(), filter.size()));
      req.setCollection(collection);
      transport::put_floats(req.initQuery(static_cast<unsigned>(query.size())), query);
      req.setK(k);
      req.setEf(ef);
      req.setFilter(filter);
      req.setWithMetadata(with_metadata);
      return req.send().then([](auto&& r) -> R {
        SearchAnswer a;
        a.hits.reserve(r.getHits().size());
        for (auto h : r.getHits()) {
          node::Hit hit;
          hit.id = bytes(h.getId());
          hit.distance = h.getDistance();
          hit.metadata = metadata_of(h.getMetadata());
          hit.model.assign(text_of(h.getModel()));
          a.hits.push_back(std::move(hit));
        }
        a.freshness = freshness_of(r.getFreshness());
        return a;
      });
    });
  }

  Result<ColdSearchAnswer> search_cold(const std::string& collection, std::span<const float> query, std::uint32_t k,
                                       std::uint32_t ef) override {
    using R = Result<ColdSearchAnswer>;
    return invoke<R>([&](api::Node::Client& n) {
      auto req = n.searchColdRequest();
      req.setCollection(collection);
      transport::put_floats(req.initQuery(static_cast<unsigned>(query.size())), query);
      req.setK(k);
      req.setEf(ef);
      return req.send().then([](auto&& r) -> R {
        ColdSearchAnswer a;
        auto cold = r.getCold();
        unsigned i = 0;
        for (auto h : r.getHits()) {
          node::ColdHit hit;
          hit.id = bytes(h.getId());
          hit.distance = h.getDistance();
          hit.cold = i < cold.size() && cold[i];
          a.hits.push_back(std::move(hit));
          ++i;
        }
        a.freshness = freshness_of(r.getFreshness());
        a.sink_answered = r.getSinkAnswered();
        if (a.sink_answered) {
          a.sink_objects = r.getSink().getObjects();
          a.sink_records = r.getSink().getRecords();
          a.sink_last_ack_wall_ns = r.getSink().getLastAckWallNs();
        } else {
          std::string why(text_of(r.getSinkError()));
          a.sink_error = daemon_status(r.getSinkCode(), why, Status(Code::kUnavailable, "the sink did not answer: " + why));
        }
        return a;
      });
    });
  }

  Result<SinkBootstrapReport> bootstrap_from_sink(const std::string& collection) override {
    using R = Result<SinkBootstrapReport>;
    return invoke<R>([&](api::Node::Client& n) {
      auto req = n.bootstrapFromSinkRequest();
      req.setCollection(collection);
      return req.send().then([](auto&& r) -> R {
        SinkBootstrapReport out{r.getPages(), r.getRecords(), r.getBytes()};
        out.created = r.getCreated();
        if (out.created) {
          auto m = node::metric_from_wire_byte(r.getMetric());
          if (!m) return Status(Detail::kMalformed, str_cat("the daemon created the collection with metric byte ",
                                                            unsigned(r.getMetric()), ", which this library does not know"));
          out.dimension = r.getDimension();
          out.metric = *m;
        }
        return out;
      });
    });
  }

  Result<std::unique_ptr<capi::Watch>> watch(const std::string& collection, ChangeSink sink) override;

  Result<node::RecordsPage> records_after(const std::string& collection, const std::string& after,
                                          std::uint32_t max_records) override {
    using R = Result<node::RecordsPage>;
    return invoke<R>([&](api::Node::Client& n) {
      auto req = n.exportRecordsRequest();
      req.setCollection(collection);
      req.setAfter(data_of(after));
      req.setLimit(max_records);
      return req.send().then([](auto&& r) -> R {
        node::RecordsPage page;
        for (auto rec : r.getRecords()) page.records.push_back(node::RecordInput{bytes(rec.getId()), value_of(rec.getValue())});
        page.more = r.getMore();
        return page;
      });
    });
  }

  Result<std::string> stats_json() override {
    using R = Result<std::string>;
    return invoke<R>([](api::Node::Client& n) {
      return n.statsRequest().send().then([](auto&& r) -> R { return std::string(text_of(r.getJson())); });
    });
  }

  // --- Used by watches and listeners ---
  void post(std::function<void()> fn) { loop_->post(std::move(fn)); }

 private:
  class ListenerServer;
  class ClientWatch;

  // What lives on the loop thread: the link, the Node capability, the watches' subscriptions.
  struct LoopState {
    struct LoopWatch {
      std::string collection;
      std::shared_ptr<WatchShared> shared;
      kj::Maybe<api::Subscription::Client> subscription;
    };
    struct Ack {
      std::uint64_t watch = 0;
      kj::Own<kj::PromiseFulfiller<void>> fulfiller;
    };
    struct ErrorHandler final : public kj::TaskSet::ErrorHandler {
      void taskFailed(kj::Exception&&) override {}
    };

    explicit LoopState(transport::KjLoop& l) : loop(l), tasks(handler) {}

    void shutdown() {
      watches.clear();
      acks.clear();
      node = nullptr;
      KJ_IF_MAYBE(l, link) { (*l)->close(); }
      link = nullptr;
      connecting = nullptr;
    }

    transport::KjLoop& loop;
    ErrorHandler handler;
    kj::Maybe<kj::Own<transport::LocalLink>> link;
    kj::Maybe<api::Node::Client> node;
    kj::Maybe<kj::ForkedPromise<void>> connecting;
    std::uint64_t epoch = 0;  // counts connections, so a stale disconnect is ignored
    std::map<std::uint64_t, LoopWatch> watches;
    std::map<std::uint64_t, Ack> acks;
    std::uint64_t next_ack = 1;
    kj::TaskSet tasks;
  };

  // The daemon's Status for a failed call.
  Status restore(const kj::Exception& e) const {
    const char* d = e.getDescription().cStr();
    if (std::strstr(d, "shoal-status ") == nullptr) {
      return Status(Code::kUnavailable, "connection to the daemon at " + path_ + " lost: " + d);
    }
    Status s = transport::status_of(e);
    // The message carries the daemon's whole Status text ("not found: ..."): drop the code name
    // the text begins with, so the message reads exactly as the embedded library's.
    const std::string prefix = std::string(code_name(s.code())) + ": ";
    if (s.message().compare(0, prefix.size(), prefix) == 0) {
      return Status(static_cast<Detail>(s.full_code()), s.message().substr(prefix.size()));
    }
    return s;
  }

  // Connects when there is no live connection (loop thread). Concurrent callers share one try.
  kj::Promise<void> ensure_connected() {
    LoopState& st = *loop_state_;
    if (st.node != nullptr) return kj::READY_NOW;
    KJ_IF_MAYBE(c, st.connecting) { return c->addBranch(); }
    auto p = transport::connect_local(st.loop, path_, transport::LinkOptions{})
                 .then([this](kj::Own<transport::LocalLink> link) {
                   LoopState& s = *loop_state_;
                   const std::uint64_t epoch = ++s.epoch;
                   s.node = link->peer_bootstrap().castAs<api::Node>();
                   s.tasks.add(link->on_disconnect().then([this, epoch]() { lost(epoch); },
                                                          [this, epoch](kj::Exception&&) { lost(epoch); }));
                   s.link = kj::mv(link);
                   forget_connecting();
                   for (auto& [id, w] : s.watches) {
                     if (w.subscription == nullptr) s.tasks.add(subscribe(id));
                   }
                 },
                 [this](kj::Exception&& e) {
                   forget_connecting();
                   kj::throwFatalException(kj::mv(e));
                 })
                 .fork();
    st.connecting = kj::mv(p);
    KJ_IF_MAYBE(c, st.connecting) { return c->addBranch(); }
    return kj::READY_NOW;  // unreachable
  }

  // The connection attempt settled: forget it on a later turn (not from inside its own chain), so
  // the next call that finds no connection tries again.
  void forget_connecting() {
    loop_state_->tasks.add(kj::evalLater([this]() {
      if (loop_state_ != nullptr) loop_state_->connecting = nullptr;
    }));
  }

  // The connection `epoch` ended: the next call connects again; watches hear of the gap.
  void lost(std::uint64_t epoch) {
    LoopState& st = *loop_state_;
    if (epoch != st.epoch) return;
    ++st.epoch;
    st.node = nullptr;
    // The link is destroyed on a later turn: this runs inside its own disconnect callback.
    KJ_IF_MAYBE(l, st.link) {
      auto dead = kj::mv(*l);
      st.link = nullptr;
      st.tasks.add(kj::evalLater([dead = kj::mv(dead)]() mutable { dead = nullptr; }));
    }
    for (auto& [id, w] : st.watches) {
      w.subscription = nullptr;
      enqueue(*w.shared, Delivery{{}, true, 0});
    }
    st.acks.clear();  // their listeners went with the connection
  }

  static void enqueue(WatchShared& w, Delivery d) {
    {
      std::lock_guard lock(w.mu);
      if (w.stop) return;
      w.queue.push_back(std::move(d));
    }
    w.cv.notify_one();
  }

  kj::Promise<void> subscribe(std::uint64_t id);

  using Clock = std::chrono::steady_clock;

  // Waits until `ready()` (an atomic flag a loop handler sets) or the deadline, running the loop
  // on this thread whenever no other thread runs it. Returns ready().
  template <typename Ready>
  bool wait_driving(Ready ready, std::optional<Clock::time_point> deadline) {
    std::unique_lock lock(mu_);
    for (;;) {
      if (ready()) return true;
      if (deadline && Clock::now() >= *deadline) return false;
      if (!held_) {
        held_ = true;
        lock.unlock();
        {
          transport::KjLoop::Enter enter(*loop_);
          // A Finish held by the last search goes now: this thread may drive for long (the
          // watch driver does for good), and only a search's own thread holds one (D63).
          loop_->run_now([this] { if (loop_state_ != nullptr) hold_finishes(false); });
          drive(ready, deadline);
        }
        lock.lock();
        held_ = false;
        cv_.notify_all();
        continue;
      }
      if (deadline) {
        cv_.wait_until(lock, *deadline);
      } else {
        cv_.wait(lock);
      }
    }
  }

  // Runs the loop (this thread is inside Enter and holds it) until ready() or the deadline.
  template <typename Ready>
  void drive(Ready& ready, std::optional<Clock::time_point> deadline) {
    const Clock::time_point until = deadline ? *deadline : Clock::now() + std::chrono::hours(24);
    while (!ready()) {
      if (!loop_->run_one_until(until) && Clock::now() >= until) return;
    }
  }

  // Wakes the threads that wait for an answer or for the loop (a handler just set a flag).
  void wake_waiters() {
    { std::lock_guard lock(mu_); }
    cv_.notify_all();
  }

  // Runs `fn` on the loop and waits for it (no connection needed).
  void run_on_loop(std::function<void()> fn) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    post([this, fn = std::move(fn), done]() {
      fn();
      done->store(true);
      wake_waiters();
    });
    wait_driving([&done] { return done->load(); }, std::nullopt);
  }

  // The state of one call, shared by the caller and the loop's handlers.
  template <typename R>
  struct Call {
    std::atomic<bool> done{false};
    bool abandoned = false;  // under mu_
    std::optional<R> answer;  // written before `done`
  };

  // Sends make(node) once connected (on the loop); its answer goes to `call`.
  template <typename R, typename F>
  void issue(F& make, const std::shared_ptr<Call<R>>& call) {
    loop_state_->tasks.add(ensure_connected()
                               .then([this, &make, call]() {
                                 // Under mu_, so that a caller who gave up (and whose arguments
                                 // `make` refers to) is seen.
                                 std::lock_guard lock(mu_);
                                 if (call->abandoned) return kj::Promise<R>(R(Status(Code::kUnavailable, "abandoned")));
                                 KJ_IF_MAYBE(n, loop_state_->node) { return make(*n); }
                                 return kj::Promise<R>(R(Status(Code::kUnavailable, "not connected to " + path_)));
                               })
                               .then([this, call](R r) { finish(*call, std::move(r)); },
                                     [this, call](kj::Exception&& e) { finish(*call, R(restore(e))); }));
  }

  template <typename R>
  void finish(Call<R>& call, R r) {
    call.answer.emplace(std::move(r));
    call.done.store(true);
    wake_waiters();
  }

  // Whether a call's answer may stay in the daemon until the handle's next call: capnp-rpc's
  // Finish for it is then held back to ride with that call (LocalLink::hold_finishes, D63).
  // Searches only: their answers are small (k hits), and they are what apps call in a loop.
  enum class Hold { kNo, kFinish };

  // The loop's holder (inside Enter): turns holding Finish messages on or off (off sends them).
  void hold_finishes(bool on) {
    KJ_IF_MAYBE(l, loop_state_->link) { (*l)->hold_finishes(on); }
  }

  // A call that begins within this of the end of the previous one on this thread skips checking
  // for a connection lost while idle (an epoll_wait per call, D55): a daemon that went away and
  // came back takes far longer, and one that dies in between is no different from one that dies
  // during the call.
  static constexpr std::chrono::milliseconds kIdleCheckAfter{1};

  template <typename R, typename F>
  R invoke(F&& make) {
    return invoke<R>(Hold::kNo, std::forward<F>(make));
  }

  // Runs make(node) on the loop once connected, and waits for its answer until the deadline
  // (options_.timeout_ms; 0: none). `make` runs only while this thread waits (under mu_, never
  // once the caller gave up), so it may capture the caller's arguments by reference.
  template <typename R, typename F>
  R invoke(Hold hold, F&& make) {
    auto call = std::make_shared<Call<R>>();
    std::optional<Clock::time_point> deadline;
    if (options_.timeout_ms != 0) deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
    auto ready = [&call] { return call->done.load(); };
    std::unique_lock lock(mu_);
    if (!held_) {
      // The usual case: nobody runs the loop, so this thread does, with no hand-off. Events
      // already waiting (a disconnect) are taken first, so a lost connection is redialed.
      held_ = true;
      lock.unlock();
      {
        transport::KjLoop::Enter enter(*loop_);
        const Clock::time_point begin = Clock::now();
        if (begin - last_call_end_ >= kIdleCheckAfter) loop_->poll();
        // The request is sent before this returns (no posted turn in between), with a Finish
        // held from the previous search in front of it. This call's own Finish is held until
        // its answer is in.
        loop_->run_now([&] {
          hold_finishes(true);
          issue<R>(make, call);
        });
        drive(ready, deadline);
        // A held Finish stays only after a search answered (what another thread's call left
        // held goes too, with it); otherwise it goes now.
        if (hold != Hold::kFinish || !call->done.load()) hold_finishes(false);
        last_call_end_ = Clock::now();
      }
      lock.lock();
      held_ = false;
      cv_.notify_all();
      lock.unlock();
    } else {
      lock.unlock();
      post([this, &make, call]() { issue<R>(make, call); });
    }
    if (wait_driving(ready, deadline)) return std::move(*call->answer);
    {
      // Once this is set, `make` has either returned or will never run.
      std::lock_guard guard(mu_);
      if (call->done.load()) return std::move(*call->answer);
      call->abandoned = true;
    }
    return R(Status(Code::kUnavailable, "no answer from the daemon at " + path_ + " within the call deadline of " +
                                            std::to_string(options_.timeout_ms) +
                                            " ms (shoal_options_set_timeout_ms); the request may still take effect"));
  }

  // Once the handle watches, a thread runs the loop for good: the daemon may call a listener at
  // any time. Calls then post to it.
  void start_driver() {
    std::lock_guard lock(mu_);
    if (driver_.joinable()) return;
    driver_ = std::thread([this] {
      wait_driving([this] { return driver_stop_.load(); }, std::nullopt);
    });
  }

  Status send_records(const std::string& collection, const std::vector<node::RecordInput>& records) {
    // The local API carries one message of at most LinkOptions::max_message_bytes: refuse a
    // batch above it here, with the numbers, rather than have the daemon drop the connection.
    const std::size_t limit = transport::LinkOptions{}.max_message_bytes - (std::size_t{64} << 10);
    std::size_t total = 256 + collection.size();
    for (const auto& r : records) total += approx_bytes(r.id, r.value);
    if (total > limit) {
      return Status(Detail::kTooLarge, "a request of " + std::to_string(records.size()) + " records is about " +
                                           std::to_string(total) + " bytes, above the " + std::to_string(limit) +
                                           " bytes one call to the daemon may carry; split the batch");
    }
    return invoke<Status>([&](api::Node::Client& n) {
      auto req = n.upsertRequest();
      req.setCollection(collection);
      auto list = req.initRecords(static_cast<unsigned>(records.size()));
      for (unsigned i = 0; i < records.size(); ++i) {
        list[i].setId(data_of(records[i].id));
        transport::put_value(list[i].initValue(), records[i].value.vector, records[i].value.metadata.fields,
                            records[i].value.model);
      }
      return req.send().then([](auto&&) { return Status(); });
    });
  }

  std::string path_;
  capi::ConnectOptions options_;
  asio::io_context io_;
  // Keeps run_one waiting for the socket when no handler is queued.
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::unique_ptr<transport::KjLoop> loop_;  // floating: run by whichever thread holds it
  std::unique_ptr<LoopState> state_;         // made and destroyed inside KjLoop::Enter
  LoopState* loop_state_ = nullptr;          // state_, for the loop's handlers
  std::uint64_t next_watch_ = 1;             // the loop's
  // Who runs the loop: held_ (under mu_) while a thread is inside Enter; cv_ wakes the threads
  // that wait for their answer or for the loop.
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_ = false;
  // When the last call that ran the loop on its own thread ended (the loop's holder's).
  Clock::time_point last_call_end_{};
  std::thread driver_;  // runs the loop once the handle watches
  std::atomic<bool> driver_stop_{false};
};

// The Listener the daemon calls with changes: queues them to the watch's thread and answers once
// the app's callback returned (so the daemon does not send faster than the app takes them).
class ClientBackend::ListenerServer final : public api::Listener::Server {
 public:
  ListenerServer(ClientBackend& backend, std::uint64_t watch) : backend_(backend), watch_(watch) {}

  kj::Promise<void> changes(ChangesContext ctx) override {
    LoopState* st = backend_.loop_state_;
    if (st == nullptr) return kj::READY_NOW;
    auto it = st->watches.find(watch_);
    if (it == st->watches.end()) return kj::READY_NOW;  // ended: the subscription is going away
    auto p = ctx.getParams();
    Delivery d;
    d.gap = p.getGap();
    for (auto c : p.getChanges()) {
      node::Change ch;
      ch.seq = c.getSeq();
      ch.collection.assign(text_of(c.getCollection()));
      ch.id = bytes(c.getId());
      ch.deleted = c.getDeleted();
      if (c.getOrigin().size() == crdt::ReplicaId::kEncodedBytes) {
        crdt::ReplicaId r;
        if (crdt::ReplicaId::decode(bytes(c.getOrigin()), r)) ch.origin = r;
      }
      d.changes.push_back(std::move(ch));
    }
    if (d.changes.empty() && !d.gap) return kj::READY_NOW;
    auto paf = kj::newPromiseAndFulfiller<void>();
    d.ack = st->next_ack++;
    st->acks.emplace(d.ack, LoopState::Ack{watch_, kj::mv(paf.fulfiller)});
    enqueue(*it->second.shared, std::move(d));
    return kj::mv(paf.promise);
  }

 private:
  ClientBackend& backend_;
  std::uint64_t watch_;
};

#pragma GCC diagnostic pop

kj::Promise<void> ClientBackend::subscribe(std::uint64_t id) {
  LoopState& st = *loop_state_;
  auto it = st.watches.find(id);
  if (it == st.watches.end()) return kj::READY_NOW;
  api::Node::Client* node = nullptr;
  KJ_IF_MAYBE(n, st.node) { node = n; }
  if (node == nullptr) return transport::exception_of(Status(Code::kUnavailable, "not connected to " + path_));
  auto req = node->watchRequest();
  req.setCollection(it->second.collection);
  req.setListener(kj::heap<ListenerServer>(*this, id));
  const std::uint64_t epoch = st.epoch;
  return req.send().then([this, id, epoch](auto&& r) {
    LoopState& s = *loop_state_;
    auto w = s.watches.find(id);
    if (w == s.watches.end() || epoch != s.epoch) return;  // ended, or that connection is gone
    w->second.subscription = r.getSubscription();
  });
}

// The app's handle on a client watch: its thread runs the callback; destroying it ends the watch.
class ClientBackend::ClientWatch final : public capi::Watch {
 public:
  ClientWatch(ClientBackend& backend, std::uint64_t id, std::shared_ptr<WatchShared> shared)
      : backend_(backend), id_(id), shared_(std::move(shared)) {}

  ~ClientWatch() override {
    {
      std::lock_guard lock(shared_->mu);
      shared_->stop = true;
      shared_->queue.clear();
    }
    shared_->cv.notify_all();
    const bool own_thread = shared_->thread.get_id() == std::this_thread::get_id();
    if (own_thread) {
      shared_->thread.detach();
    } else if (shared_->thread.joinable()) {
      shared_->thread.join();
    }
    // Drop the subscription (the daemon stops sending) and any unanswered batch, on the loop.
    backend_.run_on_loop([b = &backend_, id = id_]() {
      if (b->loop_state_ != nullptr) {
        b->loop_state_->watches.erase(id);
        std::erase_if(b->loop_state_->acks, [id](const auto& a) { return a.second.watch == id; });
      }
    });
  }

  // The watch's thread: runs the callback for each queued batch, then acknowledges it.
  static void run(ClientBackend* backend, std::shared_ptr<WatchShared> w) {
    for (;;) {
      Delivery d;
      {
        std::unique_lock lock(w->mu);
        w->cv.wait(lock, [&] { return w->stop || !w->queue.empty(); });
        if (w->stop) return;
        d = std::move(w->queue.front());
        w->queue.pop_front();
      }
      w->sink(d.changes, d.gap);
      {
        std::lock_guard lock(w->mu);
        if (w->stop) return;  // unwatched (maybe from the callback): touch nothing else
      }
      if (d.ack != 0) {
        backend->post([backend, ack = d.ack]() {
          if (backend->loop_state_ == nullptr) return;
          auto it = backend->loop_state_->acks.find(ack);
          if (it == backend->loop_state_->acks.end()) return;
          it->second.fulfiller->fulfill();
          backend->loop_state_->acks.erase(it);
        });
      }
    }
  }

 private:
  ClientBackend& backend_;
  std::uint64_t id_;
  std::shared_ptr<WatchShared> shared_;
};

Result<std::unique_ptr<capi::Watch>> ClientBackend::watch(const std::string& collection, ChangeSink sink) {
  auto shared = std::make_shared<WatchShared>();
  shared->sink = std::move(sink);
  std::uint64_t id = 0;
  Status st = invoke<Status>([&](api::Node::Client&) {
    LoopState& s = *loop_state_;
    id = next_watch_++;
    s.watches.emplace(id, LoopState::LoopWatch{collection, shared, nullptr});
    return subscribe(id).then([]() { return Status(); }, [this, id](kj::Exception&& e) {
      loop_state_->watches.erase(id);
      return restore(e);
    });
  });
  if (!st.ok()) {
    // A call that passed its deadline may have registered the watch on the loop: forget it there
    // (`id` is read after the deadline's lock or the answer, so the loop's write is visible).
    if (id != 0) {
      post([this, id]() {
        if (loop_state_ != nullptr) loop_state_->watches.erase(id);
      });
    }
    return st;
  }
  start_driver();
  shared->thread = std::thread(&ClientWatch::run, this, shared);
  return std::unique_ptr<capi::Watch>(std::make_unique<ClientWatch>(*this, id, shared));
}

namespace {

Status connect_with(const std::string& socket_path, const capi::ConnectOptions& options,
                    std::unique_ptr<Backend>* out) {
  if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Status(Code::kInvalidArgument, "socket path must be 1 to " +
                                              std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes, got " +
                                              std::to_string(socket_path.size()) + ": '" + socket_path + "'");
  }
  auto backend = std::make_unique<ClientBackend>(socket_path, options);
  SHOAL_RETURN_IF_ERROR(backend->start());
  *out = std::move(backend);
  return {};
}

Status connect(const std::string& socket_path, std::unique_ptr<Backend>* out) {
  return connect_with(socket_path, capi::ConnectOptions{}, out);
}

const std::string& build_key() {
  static const std::string key = capi::backend_build_key();
  return key;
}

}  // namespace
}  // namespace shoal::client

// The one exported symbol (libshoal_client.map).
extern "C" __attribute__((visibility("default"))) int shoal_client_entry_v1(shoal::capi::ClientEntry* entry,
                                                                             std::size_t entry_size) {
  if (entry == nullptr || entry_size < sizeof(shoal::capi::ClientEntry)) return 1;
  entry->abi = shoal::capi::kBackendAbi;
  entry->build_key = shoal::client::build_key().c_str();
  entry->connect = &shoal::client::connect;
  entry->connect_with = &shoal::client::connect_with;
  return 0;
}

// node/capi/embedded.cpp: the embedded backend (see embedded.hpp): each call goes straight to the
// SharedNode of the open data directory. Watches are threads that read Node::changes_after
// whenever a write was made (the after-write observer) and, as a fallback for changes that come
// without one, every kPollPeriod.
#include "node/capi/embedded.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <utility>

namespace shoal::capi {
namespace {

// Changes read per changes_after call (one sink call each at most).
constexpr std::size_t kChangesPerCall = 256;
// A watch looks at the delta buffer at least this often, even without a local write (a change a
// mesh driver applied quietly, with SharedNode::write_quiet).
constexpr auto kPollPeriod = std::chrono::milliseconds(200);

// Counts writes; watches wait on it. Shared with the observer, which may outlive nothing: the
// backend removes the observer before it goes.
struct WriteSignal {
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t generation = 0;
  void bump() {
    {
      std::lock_guard lock(mu);
      ++generation;
    }
    cv.notify_all();
  }
};

class EmbeddedWatch final : public Watch {
 public:
  EmbeddedWatch(node::SharedNode& node, std::shared_ptr<WriteSignal> signal, std::string collection, ChangeSink sink)
      : state_(std::make_shared<State>()), signal_(signal) {
    state_->next = node.read([](const node::Node& n) { return n.last_change(); });
    state_->thread = std::thread([st = state_, &node, signal = std::move(signal), collection = std::move(collection),
                                  sink = std::move(sink)]() { run(*st, node, *signal, collection, sink); });
  }

  ~EmbeddedWatch() override {
    {
      std::lock_guard lock(state_->mu);
      state_->stop = true;
    }
    { std::lock_guard lock(signal_->mu); }  // the thread is either before its wait or in it
    signal_->cv.notify_all();
    if (state_->thread.get_id() == std::this_thread::get_id()) {
      state_->thread.detach();  // unwatched from its own sink: the loop sees `stop` and ends
    } else {
      state_->thread.join();
    }
  }

 private:
  struct State {
    std::mutex mu;
    bool stop = false;
    std::uint64_t next = 0;
    std::thread thread;
  };

  static bool stopping(State& st) {
    std::lock_guard lock(st.mu);
    return st.stop;
  }

  static void run(State& st, node::SharedNode& node, WriteSignal& signal, const std::string& collection,
                  const ChangeSink& sink) {
    std::uint64_t seen = 0;
    {
      std::lock_guard lock(signal.mu);
      seen = signal.generation;
    }
    while (!stopping(st)) {
      // Drain what the buffer holds after our position.
      for (;;) {
        if (stopping(st)) return;
        const std::uint64_t last = node.read([](const node::Node& n) { return n.last_change(); });
        if (last <= st.next) break;
        auto batch = node.read([&](const node::Node& n) { return n.changes_after(st.next, kChangesPerCall); });
        if (!batch.ok() || (batch->next == st.next && !batch->gap)) break;
        st.next = batch->next;
        std::vector<node::Change> mine;
        for (auto& c : batch->changes) {
          if (collection.empty() || c.collection == collection) mine.push_back(std::move(c));
        }
        if (mine.empty() && !batch->gap) continue;
        if (stopping(st)) return;
        sink(mine, batch->gap);
      }
      // Wait for a write, a stop, or the poll period.
      std::unique_lock lock(signal.mu);
      signal.cv.wait_for(lock, kPollPeriod, [&] { return signal.generation != seen || stopping(st); });
      seen = signal.generation;
    }
  }

  std::shared_ptr<State> state_;
  std::shared_ptr<WriteSignal> signal_;
};

// The node's revocation set in embedded mode (mesh_attach.hpp): pending until a mesh attaches
// its RevocationReplica. Called under the node's lock (the node's owner), as every ReplicatedSet.
class DeferredRevocations final : public node::ReplicatedSet {
 public:
  Result<bool> join(std::string_view encoded) override {
    if (target_ != nullptr) return target_->join(encoded);
    // Without a mesh nothing verifies or forwards it: keep it for the mesh, never grow here (so the
    // node persists nothing new).
    if (!encoded.empty()) pending_.emplace_back(encoded);
    return false;
  }
  std::string encode() const override {
    if (target_ != nullptr) return target_->encode();
    // The last state kept; only a mesh reads it (in its Hello), and none is attached.
    return pending_.empty() ? std::string() : pending_.back();
  }
  // Under the node's exclusive lock.
  Status attach(node::ReplicatedSet* target) {
    for (const auto& p : pending_) {
      auto joined = target->join(p);
      if (!joined.ok()) return Status(Code::kCorruption, joined.status().message(), "meta/node.revocations");
    }
    target_ = target;
    return {};
  }
  void detach() {
    if (target_ == nullptr) return;
    pending_.clear();
    std::string state = target_->encode();
    if (!state.empty()) pending_.push_back(std::move(state));
    target_ = nullptr;
  }
  bool attached() const noexcept { return target_ != nullptr; }

 private:
  node::ReplicatedSet* target_ = nullptr;
  std::vector<std::string> pending_;
};

class EmbeddedBackend final : public Backend, public MeshAttachment {
 public:
  EmbeddedBackend(std::unique_ptr<node::OpenDataDir> dir, std::unique_ptr<DeferredRevocations> revocations,
                  std::string path)
      : revocations_(std::move(revocations)), dir_(std::move(dir)), path_(std::move(path)) {
    // Registered before the handle is shared with any other thread (SharedNode's rule).
    observer_ = dir_->node().add_after_write([s = signal_]() { s->bump(); });
  }
  ~EmbeddedBackend() override {
    // Watches are ended by shoal_close before the backend goes; the observer leaves while no
    // other thread writes (the handle is being closed).
    dir_->node().remove_after_write(observer_);
  }

  Status create_collection(const node::CollectionSpec& spec) override { return node().create_collection(spec); }
  Status drop_collection(const std::string& name) override { return node().drop_collection(name); }
  Result<std::vector<node::CollectionInfo>> list_collections() override { return node().list_collections(); }
  Result<node::CollectionInfo> collection_info(const std::string& name) override {
    return node().collection_info(name);
  }
  Status upsert(const std::string& collection, std::string id, node::RecordValue value) override {
    return node().upsert(collection, id, std::move(value));
  }
  Status upsert_batch(const std::string& collection, std::vector<node::RecordInput> records) override {
    return node().upsert_batch(collection, std::move(records));
  }
  Status remove(const std::string& collection, const std::string& id) override {
    return node().remove(collection, id);
  }
  Result<GetAnswer> get(const std::string& collection, const std::string& id) override {
    GetAnswer answer;
    SHOAL_ASSIGN_OR_RETURN(answer.record, node().get(collection, id));
    if (!answer.record.siblings.at(0).evicted) return answer;
    // A stub. An embedded mesh refills it over its sink link, with the code shoald runs for its
    // clients (MeshHost::get_with_cold); without one, the stub's metadata, with the reason.
    if (MeshRefill* refill = begin_refill()) {
      Result<GetAnswer> refilled = (*refill)(collection, id);
      end_refill();
      if (refilled.ok()) return refilled;
      // The call itself failed (the mesh stopping, the record changed under it): still a get.
      answer.cold = Status(Detail::kColdUnavailable,
                           str_cat("record '", node::escape_for_message(id),
                                   "' is evicted to the cold-tier sink, and the embedded mesh could not refill it: ",
                                   refilled.status().to_string()));
      return answer;
    }
    answer.cold = Status(Detail::kColdUnavailable,
                         str_cat("record '", node::escape_for_message(id),
                                 "' is evicted to the cold-tier sink, and no embedded mesh runs on this handle to "
                                 "refill it (shoal_mesh_start with a [sink] address, or get it through shoald: "
                                 "shoal_connect)"));
    return answer;
  }
  Result<SearchAnswer> search(const std::string& collection, std::span<const float> query, std::uint32_t k,
                              std::uint32_t ef, const std::string& filter, bool with_metadata) override {
    node::SearchOptions o;
    o.k = k;
    o.ef = ef;
    o.with_metadata = with_metadata;
    if (!filter.empty()) {
      SHOAL_ASSIGN_OR_RETURN(o.filter, node::parse_filter(filter));
    }
    SearchAnswer answer;
    SHOAL_ASSIGN_OR_RETURN(answer.hits, node().search(collection, query, o));
    return answer;
  }
  Result<node::RecordsPage> records_after(const std::string& collection, const std::string& after,
                                          std::uint32_t max_records) override {
    return node().read([&](const node::Node& n) {
      return n.records_after(collection, after, max_records, node::kRecordsPageBytes);
    });
  }
  Result<ColdSearchAnswer> search_cold(const std::string&, std::span<const float>, std::uint32_t, std::uint32_t) override {
    return Status(Code::kUnavailable, "no sink is configured: a handle from shoal_open has no mesh; cold search goes "
                                      "through shoald (shoal_connect) or the embedded mesh (shoal_mesh_search_cold)");
  }
  Result<SinkBootstrapReport> bootstrap_from_sink(const std::string&) override {
    return Status(Code::kUnavailable, "no sink is configured: bootstrap from the sink runs in shoald, which holds the "
                                      "sink's link and the device's identity (shoal --connect SOCKET bootstrap)");
  }
  Result<std::string> stats_json() override {
    const node::NodeStats s = node().stats();
    nlohmann::json j{{"replica", s.replica},
                     {"collections", s.collections},
                     {"live_records", s.live_records},
                     {"delta_buffer_entries", s.delta_buffer_entries},
                     {"last_delta_seq", s.last_delta_seq},
                     {"index_bytes", s.index_bytes}};
    // Group commit and the index queue (node/runtime/shared_node.hpp; docs/operations.md).
    const node::WriteGroupStats w = node().write_stats();
    j["write_groups"] = {{"groups", w.groups}, {"writes", w.writes}, {"largest", w.largest}};
    j["index_backlog"] = node().index_backlog();
    nlohmann::json src = nlohmann::json::object();
    for (const auto& [name, how] : node().open_report().index_source) src[node::to_valid_utf8(name)] = how;
    j["index_source"] = src;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  Result<std::unique_ptr<Watch>> watch(const std::string& collection, ChangeSink sink) override {
    return std::unique_ptr<Watch>(std::make_unique<EmbeddedWatch>(node(), signal_, collection, std::move(sink)));
  }

  // --- MeshAttachment (mesh_attach.hpp) ---
  node::SharedNode& shared_node() override { return node(); }
  const std::string& data_dir() const override { return path_; }
  Status attach_mesh(node::ReplicatedSet* revocations, std::function<void()> stop, MeshRefill refill) override {
    std::lock_guard lock(mesh_mu_);
    if (mesh_attached_) {
      return Status(Detail::kAlreadyExists, "this handle's mesh is running already (shoal_mesh_stop it first)");
    }
    SHOAL_RETURN_IF_ERROR(node().write_quiet([&](node::Node&) { return revocations_->attach(revocations); }));
    mesh_attached_ = true;
    mesh_stop_ = std::move(stop);
    mesh_refill_ = std::move(refill);
    return {};
  }
  void detach_mesh() override {
    std::unique_lock lock(mesh_mu_);
    if (!mesh_attached_) return;
    // The refills under way hold a pointer to mesh_refill_ and to the mesh behind it.
    refills_done_.wait(lock, [&] { return refills_in_flight_ == 0; });
    node().write_quiet([&](node::Node&) { revocations_->detach(); });
    mesh_attached_ = false;
    mesh_stop_ = nullptr;
    mesh_refill_ = nullptr;
  }
  std::function<void()> take_mesh_stop() override {
    std::lock_guard lock(mesh_mu_);
    return std::exchange(mesh_stop_, nullptr);
  }

 private:
  node::SharedNode& node() { return dir_->node(); }

  // The attached mesh's refill, counted as under way until end_refill (detach_mesh waits for
  // it); nullptr when no mesh is attached. The call itself runs outside mesh_mu_.
  MeshRefill* begin_refill() {
    std::lock_guard lock(mesh_mu_);
    if (!mesh_refill_) return nullptr;
    ++refills_in_flight_;
    return &mesh_refill_;
  }
  void end_refill() {
    {
      std::lock_guard lock(mesh_mu_);
      --refills_in_flight_;
    }
    refills_done_.notify_all();
  }

  // Declared before dir_: the node holds a pointer to it (NodeOptions::revocations) until it goes.
  std::unique_ptr<DeferredRevocations> revocations_;
  std::unique_ptr<node::OpenDataDir> dir_;
  std::string path_;
  std::mutex mesh_mu_;  // guards mesh_attached_, mesh_stop_, mesh_refill_ and refills_in_flight_
  bool mesh_attached_ = false;
  std::function<void()> mesh_stop_;
  MeshRefill mesh_refill_;  // replaced only while refills_in_flight_ is 0
  std::size_t refills_in_flight_ = 0;
  std::condition_variable refills_done_;
  std::shared_ptr<WriteSignal> signal_ = std::make_shared<WriteSignal>();
  std::size_t observer_ = 0;
};

}  // namespace

Result<std::unique_ptr<Backend>> open_embedded(const std::string& path, node::DataDirOptions options,
                                               MeshAttachment** attachment) {
  auto revocations = std::make_unique<DeferredRevocations>();
  if (options.node.revocations == nullptr) options.node.revocations = revocations.get();
  SHOAL_ASSIGN_OR_RETURN(auto dir, node::open_data_dir(path, std::move(options)));
  auto backend = std::make_unique<EmbeddedBackend>(std::move(dir), std::move(revocations), path);
  if (attachment != nullptr) *attachment = backend.get();
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace shoal::capi

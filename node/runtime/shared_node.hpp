// node/runtime/shared_node.hpp: the thread-safe face of a Node for embedded use (the C API, the
// CLI, and later the daemon's handlers).
//
// Role: the node core (node/core/node.hpp) is a single-owner state machine with no locks; this
// wrapper is where serialisation lives. Writes and sync calls take the lock exclusively; get(),
// search(), listings and statistics share it, so searches run in parallel. The lock prefers
// writers (common/rw_lock.hpp): a write waits only for the reads already running, never for a
// stream of new ones, so saturating searches cannot starve writes.
// Thread rules: every method may be called from any thread.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <utility>
#include <vector>

#include "common/rw_lock.hpp"
#include "node/core/node.hpp"

namespace shoal::node {

class SharedNode {
 public:
  explicit SharedNode(std::unique_ptr<Node> node) noexcept : node_(std::move(node)) {}
  SharedNode(const SharedNode&) = delete;
  SharedNode& operator=(const SharedNode&) = delete;

  // Runs `f(const Node&)` under the shared lock / `f(Node&)` under the exclusive lock: for
  // callers that need several calls to see one state.
  template <typename F>
  decltype(auto) read(F&& f) const {
    std::shared_lock lock(mu_);
    return std::forward<F>(f)(std::as_const(*node_));
  }
  template <typename F>
  decltype(auto) write(F&& f) {
    // Declared before the lock, so it runs after the lock is released.
    struct Notify {
      SharedNode& self;
      ~Notify() {
        std::shared_lock observers(self.observers_mu_);
        for (const auto& [id, fn] : self.after_write_) fn();
      }
    } notify{*this};
    std::unique_lock lock(mu_);
    return std::forward<F>(f)(*node_);
  }
  // As write(), without the after-write notification: for the sync driver itself (the mesh
  // host), whose own calls must not wake it again.
  template <typename F>
  decltype(auto) write_quiet(F&& f) {
    std::unique_lock lock(mu_);
    return std::forward<F>(f)(*node_);
  }

  // Observers called after every write() (outside the node's lock, on the writer's thread): how
  // the mesh host learns of local writes and pushes their deltas at once, and the local API wakes
  // its watchers. Each must be thread-safe, quick, and must not add or remove observers. Add and
  // remove them from any thread, also while others write (an app starts its embedded mesh,
  // shoal_mesh_start, while its own threads write): they run under a lock of their own, so when
  // remove_after_write returns, the observer is not running and is never called again.
  std::size_t add_after_write(std::function<void()> fn) {
    std::unique_lock observers(observers_mu_);
    after_write_.emplace_back(++next_observer_, std::move(fn));
    return next_observer_;
  }
  void remove_after_write(std::size_t id) {
    std::unique_lock observers(observers_mu_);
    std::erase_if(after_write_, [id](const auto& o) { return o.first == id; });
  }

  // Set at open and never changed: no lock needed.
  const crdt::ReplicaId& replica() const noexcept { return node_->replica(); }
  const OpenReport& open_report() const noexcept { return node_->open_report(); }

  [[nodiscard]] Status create_collection(const CollectionSpec& spec) {
    return write([&](Node& n) { return n.create_collection(spec); });
  }
  [[nodiscard]] Status drop_collection(std::string_view name) {
    return write([&](Node& n) { return n.drop_collection(name); });
  }
  std::vector<CollectionInfo> list_collections() const {
    return read([&](const Node& n) { return n.list_collections(); });
  }
  [[nodiscard]] Result<CollectionInfo> collection_info(std::string_view name) const {
    return read([&](const Node& n) { return n.collection_info(name); });
  }
  [[nodiscard]] Status upsert(std::string_view collection, std::string_view id, RecordValue value) {
    return write([&](Node& n) { return n.upsert(collection, id, std::move(value)); });
  }
  [[nodiscard]] Status upsert_batch(std::string_view collection, std::vector<RecordInput> records) {
    return write([&](Node& n) { return n.upsert_batch(collection, std::move(records)); });
  }
  [[nodiscard]] Status remove(std::string_view collection, std::string_view id) {
    return write([&](Node& n) { return n.remove(collection, id); });
  }
  [[nodiscard]] Result<GetResult> get(std::string_view collection, std::string_view id) const {
    return read([&](const Node& n) { return n.get(collection, id); });
  }
  [[nodiscard]] Result<std::vector<Hit>> search(std::string_view collection, std::span<const float> query,
                                                const SearchOptions& options) const {
    return read([&](const Node& n) { return n.search(collection, query, options); });
  }
  [[nodiscard]] Status save_snapshots() {
    return write([&](Node& n) { return n.save_snapshots(); });
  }
  NodeStats stats() const {
    return read([&](const Node& n) { return n.stats(); });
  }
  std::vector<PeerProgress> peer_progress() const {
    return read([&](const Node& n) { return n.peer_progress(); });
  }
  SyncStats sync_stats() const {
    return read([&](const Node& n) { return n.sync_stats(); });
  }
  [[nodiscard]] Result<crdt::ORMap> crdt_state_for_testing(std::string_view collection) const {
    return read([&](const Node& n) { return n.crdt_state_for_testing(collection); });
  }
  [[nodiscard]] Result<std::uint64_t> digest_root(std::string_view collection) const {
    return read([&](const Node& n) { return n.digest_root(collection); });
  }

  // Synchronisation (the daemon's driver): every call is exclusive.
  void peer_up(const crdt::ReplicaId& peer, Tier tier, MonoTime now) {
    write([&](Node& n) { n.peer_up(peer, tier, now); });
  }
  void peer_down(const crdt::ReplicaId& peer, MonoTime now) {
    write([&](Node& n) { n.peer_down(peer, now); });
  }
  [[nodiscard]] Status receive(const crdt::ReplicaId& from, const transport::Message& message, MonoTime now) {
    return write([&](Node& n) { return n.receive(from, message, now); });
  }
  void tick(MonoTime now) {
    write([&](Node& n) { n.tick(now); });
  }
  std::vector<Outgoing> take_outbox() {
    return write([&](Node& n) { return n.take_outbox(); });
  }
  std::optional<MonoTime> next_wakeup() const {
    return read([&](const Node& n) { return n.next_wakeup(); });
  }

 private:
  mutable RwLock mu_;
  std::unique_ptr<Node> node_;
  // Guards after_write_ and next_observer_ (shared while observers run, exclusive to change them).
  mutable std::shared_mutex observers_mu_;
  std::vector<std::pair<std::size_t, std::function<void()>>> after_write_;
  std::size_t next_observer_ = 0;
};

}  // namespace shoal::node

// node/runtime/shared_node.hpp: the thread-safe face of a Node for embedded use (the C API, the
// CLI, and the daemon's handlers).
//
// Role: the node core (node/core/node.hpp) is a single-owner state machine with no locks; this
// wrapper is where serialisation lives. Writes and sync calls take the lock exclusively; get(),
// search(), listings and statistics share it, so searches run in parallel. The lock prefers
// writers (common/rw_lock.hpp): a write waits only for the reads already running, never for a
// stream of new ones, so saturating searches cannot starve writes.
//
// Group commit: upsert(), upsert_batch() and remove() are validated on the caller's thread (under
// the shared lock), then join a queue of writes. The first writer that finds no commit running
// becomes the leader: it takes what is queued (up to kMaxGroupWrites writes, kMaxGroupRecords
// records), applies it in ONE store transaction with ONE durable commit (Node::begin_group under
// the exclusive lock, commit_group with no node lock, so reads go on during the sync, and
// end_group under the exclusive lock again), hands each writer its own status and wakes them;
// writers that arrived meanwhile form the next group. So every write is acknowledged only after the commit that covers it, and concurrent
// writers share the disk's sync instead of paying one each. A write that fails on its own inside
// a group (a delete of an absent id, its collection dropped meanwhile) fails alone; a failed
// commit fails exactly the writes of its group.
//
// Index thread: when the node queues index operations (NodeOptions::index_queue_max > 0, as
// OpenDataDir sets it), a thread owned by this wrapper applies them: it takes an IndexWork under
// the exclusive lock, runs it with no lock of ours (the HnswIndex has its own), and hands it back
// under the exclusive lock. Searches stay read-your-writes meanwhile (the node scans the queue).
// A writer waits before joining a group while the queue is at its bound (back-pressure; nothing
// is dropped); peers' batches (receive, write_quiet) wait the same way. Closing does not drain
// the queue (D65): stop_index() ends the thread, cutting short the slice it is inserting, and
// save_snapshots() applies a collection's queue only when it writes that collection's snapshot;
// a kept snapshot leaves the queued operations to the next open, which replays them from the
// store's index_dirty table, where each write's transaction named them.
//
// Index gate: the HnswIndex has its own lock, which an insert holds exclusively (a single insert,
// or a parallel batch of up to kIndexWorkOps). A search takes the node's lock, then the index's;
// so a search that met an insert used to wait for it while holding the node's shared lock, and a
// writer asking for the exclusive node lock (begin_group, end_group) waited behind that search
// for the rest of the insert, and so did every search that came after the writer (D76 measures
// it). So every read() first takes index_gate_ shared, and the
// index thread holds it exclusively around each change it makes to the index
// (IndexChangeBracket): a search that would wait for an insert waits at the gate, before it holds
// the node's lock, and writers go on meanwhile. The gate prefers its writer (common/rw_lock.hpp),
// so a stream of searches does not keep the index thread out. Reads that never touch the index
// (get, a writer's validation, sync and test accessors) skip the gate, so an insert does not
// delay them.
//
// Thread rules: every method may be called from any thread, but not from inside a read() or
// write() callback (the locks are not recursive). Lock order: drain_mu_, commit_mu_,
// index_gate_, then the node lock; group_mu_ and signal_mu_ are never held while taking another.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/rw_lock.hpp"
#include "node/core/node.hpp"

namespace shoal::node {

// What group commit did (SharedNode::write_stats): the commits that covered the writes.
struct WriteGroupStats {
  std::uint64_t groups = 0;   // Node::write_group calls, i.e. shared transactions
  std::uint64_t writes = 0;   // writes they carried (upserts, batches and deletes)
  std::uint64_t largest = 0;  // the most writes one group carried
};

class SharedNode {
 public:
  // A group carries at most this many writes, and stops taking more once it holds this many
  // records (a single larger batch still goes, alone).
  static constexpr std::size_t kMaxGroupWrites = 256;
  static constexpr std::size_t kMaxGroupRecords = 4096;
  // The index thread takes at most this many queued operations at a time.
  static constexpr std::size_t kIndexWorkOps = 256;
  // The longest a leader waits for busy writers to join its group (lead(), "Gathering").
  static constexpr std::chrono::steady_clock::duration kMaxGather = std::chrono::milliseconds(2);

  explicit SharedNode(std::unique_ptr<Node> node) : node_(std::move(node)) {
    // The open may have queued work already (the labels changed since the snapshot, D78): the
    // thread starts on it at once.
    backlog_.store(node_->index_backlog(), std::memory_order_relaxed);
    hint_ = backlog_.load(std::memory_order_relaxed) > 0;
    if (node_->index_queue_max() > 0) index_thread_ = std::thread([this] { index_loop(); });
  }
  // Stops the index thread; what is left of the queue dies with the node (its writes are
  // committed; the index is derived state, rebuilt or caught up at the next open).
  ~SharedNode() { stop_index(); }
  SharedNode(const SharedNode&) = delete;
  SharedNode& operator=(const SharedNode&) = delete;

  // Runs `f(const Node&)` under the shared lock / `f(Node&)` under the exclusive lock: for
  // callers that need several calls to see one state. read() passes the index gate first
  // ("Index gate" above), so `f` may search or measure the indexes.
  template <typename F>
  decltype(auto) read(F&& f) const {
    std::shared_lock gate(index_gate_);
    std::shared_lock lock(mu_);
    return std::forward<F>(f)(std::as_const(*node_));
  }
  template <typename F>
  decltype(auto) write(F&& f) {
    // Declared before the locks, so they run after the locks are released.
    Notify notify{*this};
    Kick kick{*this};
    std::lock_guard store_writer(commit_mu_);
    std::unique_lock lock(mu_);
    Track track{*this};
    return std::forward<F>(f)(*node_);
  }
  // As write(), without the after-write notification: for the sync driver itself (the mesh
  // host), whose own calls must not wake it again. Waits first while the index queue is full
  // (a peer's batch adds to it like an app's write).
  template <typename F>
  decltype(auto) write_quiet(F&& f) {
    admit(1);
    Kick kick{*this};
    std::lock_guard store_writer(commit_mu_);
    std::unique_lock lock(mu_);
    Track track{*this};
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
  // Durable when OK (group commit, above). Statuses: Node::upsert_batch's and Node::remove's.
  [[nodiscard]] Status upsert(std::string_view collection, std::string_view id, RecordValue value) {
    std::vector<RecordInput> one;
    one.push_back(RecordInput{std::string(id), std::move(value)});
    return upsert_batch(collection, std::move(one));
  }
  [[nodiscard]] Status upsert_batch(std::string_view collection, std::vector<RecordInput> records) {
    // Validation first, on this thread: a rejected write never joins a group.
    SHOAL_RETURN_IF_ERROR(read_store([&](const Node& n) { return n.check_upsert(collection, records); }));
    const std::size_t ops = records.size();
    return submit(WriteRequest{std::string(collection), std::move(records), std::nullopt}, ops);
  }
  [[nodiscard]] Status remove(std::string_view collection, std::string_view id) {
    SHOAL_RETURN_IF_ERROR(read_store([&](const Node& n) { return n.check_remove(collection, id); }));
    return submit(WriteRequest{std::string(collection), {}, std::string(id)}, 1);
  }
  WriteGroupStats write_stats() const {
    std::lock_guard g(group_mu_);
    return stats_;
  }
  // Index operations committed but not yet in the index (0 without a queue).
  std::size_t index_backlog() const noexcept { return backlog_.load(std::memory_order_relaxed); }

  [[nodiscard]] Result<GetResult> get(std::string_view collection, std::string_view id) const {
    return read_store([&](const Node& n) { return n.get(collection, id); });
  }
  [[nodiscard]] Result<std::vector<Hit>> search(std::string_view collection, std::span<const float> query,
                                                const SearchOptions& options) const {
    return read([&](const Node& n) { return n.search(collection, query, options); });
  }
  // Ends the index thread for good (close): the slice it is inserting stops at its next insert,
  // and only the operations it applied leave the queue. Writers held back by a full queue are
  // let through. Afterwards nothing applies the queue but save_snapshots() (Node::drain_index is
  // the caller's to run under write() if it wants the index complete). Idempotent.
  void stop_index() {
    {
      std::lock_guard l(signal_mu_);
      stop_ = true;
    }
    stop_work_.store(true, std::memory_order_relaxed);
    signal_cv_.notify_all();
    progress_cv_.notify_all();
    std::lock_guard t(stop_mu_);
    if (index_thread_.joinable()) index_thread_.join();
  }
  // Writes the snapshots and open states that need it (Node::save_snapshots: a collection's
  // queue is applied first only when its snapshot is written).
  [[nodiscard]] Status save_snapshots() {
    std::lock_guard d(drain_mu_);  // no IndexWork is out while we hold it
    return write([&](Node& n) { return n.save_snapshots(); });
  }
  NodeStats stats() const {
    return read([&](const Node& n) { return n.stats(); });
  }
  std::vector<PeerProgress> peer_progress() const {
    return read_store([&](const Node& n) { return n.peer_progress(); });
  }
  SyncStats sync_stats() const {
    return read_store([&](const Node& n) { return n.sync_stats(); });
  }
  [[nodiscard]] Result<crdt::ORMap> crdt_state_for_testing(std::string_view collection) const {
    return read_store([&](const Node& n) { return n.crdt_state_for_testing(collection); });
  }
  [[nodiscard]] Result<std::uint64_t> digest_root(std::string_view collection) const {
    return read_store([&](const Node& n) { return n.digest_root(collection); });
  }

  // Synchronisation (the daemon's driver): every call is exclusive.
  void peer_up(const crdt::ReplicaId& peer, Tier tier, MonoTime now) {
    write([&](Node& n) { n.peer_up(peer, tier, now); });
  }
  void peer_down(const crdt::ReplicaId& peer, MonoTime now) {
    write([&](Node& n) { n.peer_down(peer, now); });
  }
  [[nodiscard]] Status receive(const crdt::ReplicaId& from, const transport::Message& message, MonoTime now) {
    admit(1);
    return write([&](Node& n) { return n.receive(from, message, now); });
  }
  void tick(MonoTime now) {
    write([&](Node& n) { n.tick(now); });
  }
  std::vector<Outgoing> take_outbox() {
    return write([&](Node& n) { return n.take_outbox(); });
  }
  std::optional<MonoTime> next_wakeup() const {
    return read_store([&](const Node& n) { return n.next_wakeup(); });
  }

  // --- Test hooks (deterministic, no timing) ---
  // While held, writes queue up and no group commits; releasing lets the next leader take them
  // all as one group.
  void hold_commits_for_testing(bool hold) {
    {
      std::lock_guard g(group_mu_);
      hold_ = hold;
    }
    group_cv_.notify_all();
    gather_cv_.notify_all();
  }
  // Writes waiting in the group queue (not yet taken by a leader).
  std::size_t queued_writes_for_testing() const {
    std::lock_guard g(group_mu_);
    return queue_.size();
  }
  // While paused, the index thread takes no work, so the queue only grows.
  void pause_index_for_testing(bool pause) {
    {
      std::lock_guard l(signal_mu_);
      paused_ = pause;
      hint_ = true;
    }
    signal_cv_.notify_all();
  }
  // While held, the index thread stops inside its next change to an index, after it took the
  // index gate and before it touches the index (an insert in progress, as searches and writers
  // see it); index_change_held_for_testing() is true while it waits there.
  void hold_index_changes_for_testing(bool hold) {
    {
      std::lock_guard l(signal_mu_);
      hold_changes_ = hold;
      hold_changes_set_.store(hold, std::memory_order_relaxed);
    }
    signal_cv_.notify_all();
  }
  bool index_change_held_for_testing() const {
    std::lock_guard l(signal_mu_);
    return change_held_;
  }
  // Writers held back by a full index queue right now.
  std::size_t writers_waiting_for_testing() const {
    std::lock_guard l(signal_mu_);
    return waiting_;
  }
  // Blocks until the index queue is empty (the index thread must not be paused).
  void wait_index_idle_for_testing() {
    std::unique_lock l(signal_mu_);
    progress_cv_.wait(l, [&] { return stop_ || backlog_.load() == 0; });
  }

 private:
  // As read(), without the index gate: for the wrapper's own reads that never touch an index, so
  // that an insert in progress does not hold them up.
  template <typename F>
  std::invoke_result_t<F, const Node&> read_store(F&& f) const {
    std::shared_lock lock(mu_);
    return std::forward<F>(f)(std::as_const(*node_));
  }

  // Runs the after-write observers (declared before the locks, so it runs after their release).
  struct Notify {
    SharedNode& self;
    ~Notify() {
      std::shared_lock observers(self.observers_mu_);
      for (const auto& [id, fn] : self.after_write_) fn();
    }
  };
  // One writer's place in the group queue; lives on the writer's stack until it is done.
  struct Ticket {
    WriteRequest request;
    std::size_t records = 0;
    Status status;
    bool done = false;
  };
  // Runs before the node lock is released (declared after it): publishes the queue's length.
  struct Track {
    SharedNode& s;
    ~Track() { s.backlog_.store(s.node_->index_backlog(), std::memory_order_relaxed); }
  };
  // Runs after the node lock is released: wakes the index thread when there is work.
  struct Kick {
    SharedNode& s;
    ~Kick() {
      // index_queue_max() is fixed at open (index_thread_ itself may be being joined).
      if (s.node_->index_queue_max() == 0 || s.backlog_.load(std::memory_order_relaxed) == 0) return;
      {
        std::lock_guard l(s.signal_mu_);
        s.hint_ = true;
      }
      s.signal_cv_.notify_one();
    }
  };

  // Back-pressure: waits while adding `ops` operations would pass the queue's bound (an empty
  // queue always admits, so a batch larger than the bound still goes, alone). The bound is
  // soft by the writes admitted at the same moment: they were all under it when they passed.
  void admit(std::size_t ops) {
    const std::size_t max = node_->index_queue_max();
    if (max == 0) return;
    auto room = [&] {
      const std::size_t b = backlog_.load(std::memory_order_relaxed);
      return b == 0 || b + ops <= max;
    };
    if (room()) return;
    std::unique_lock l(signal_mu_);
    ++waiting_;
    progress_cv_.wait(l, [&] { return stop_ || room(); });
    --waiting_;
  }

  Status submit(WriteRequest request, std::size_t ops) {
    admit(ops);
    Ticket t{std::move(request), std::max<std::size_t>(ops, 1), {}, false};
    std::unique_lock g(group_mu_);
    queue_.push_back(&t);
    // Only the gathering leader needs to know, and only once its group is complete: the writers
    // waiting for their own tickets are not woken by an arrival.
    if (gathering_ && queue_.size() >= active_) gather_cv_.notify_one();
    while (!t.done) {
      if (!leading_ && !hold_) {
        lead(g);  // our own ticket is still queued: no other leader took it
        continue;
      }
      group_cv_.wait(g);
    }
    return std::move(t.status);
  }

  // Called with group_mu_ held and no leader: commits one group, then wakes every waiter.
  void lead(std::unique_lock<std::mutex>& g) {
    leading_ = true;
    // Gathering: the writers the last group acknowledged usually write again at once, a few
    // microseconds after the next leader took the queue, which would split N busy writers into
    // alternating groups of k and N - k. So when fewer writes are queued than were active at the
    // last commit (its group plus those already waiting), the leader waits for them, at most a
    // quarter of the last commit's time (capped at kMaxGather). A lone writer never waits.
    if (queue_.size() < active_) {
      gathering_ = true;
      gather_cv_.wait_for(g, gather_limit_, [&] { return queue_.size() >= active_ || hold_; });
      gathering_ = false;
    }
    std::vector<Ticket*> group;
    std::size_t records = 0;
    std::size_t taken = 0;
    while (taken < queue_.size() && group.size() < kMaxGroupWrites &&
           (group.empty() || records + queue_[taken]->records <= kMaxGroupRecords)) {
      records += queue_[taken]->records;
      group.push_back(queue_[taken++]);
    }
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
    g.unlock();
    std::vector<WriteRequest> requests;
    requests.reserve(group.size());
    for (Ticket* t : group) requests.push_back(std::move(t->request));
    std::vector<Status> statuses;
    std::chrono::steady_clock::duration commit_time{};
    {
      // The exclusive lock covers building the transaction and applying it to memory, not the
      // sync between: searches, gets and the next writers' validation go on while the disk
      // works. commit_mu_ keeps every other store writer out until the group is applied.
      Notify notify{*this};
      Kick kick{*this};
      std::lock_guard store_writer(commit_mu_);
      bool open = false;
      {
        std::unique_lock lock(mu_);
        open = node_->begin_group(requests, statuses);
      }
      if (open) {
        const auto t0 = std::chrono::steady_clock::now();
        const Status committed = node_->commit_group();  // the durable sync, no node lock
        commit_time = std::chrono::steady_clock::now() - t0;
        std::unique_lock lock(mu_);
        Track track{*this};
        node_->end_group(committed, statuses);
      }
    }
    g.lock();
    active_ = group.size() + queue_.size();
    gather_limit_ = std::min<std::chrono::steady_clock::duration>(commit_time / 4, kMaxGather);
    for (std::size_t i = 0; i < group.size(); ++i) {
      group[i]->status = std::move(statuses[i]);
      group[i]->done = true;
    }
    ++stats_.groups;
    stats_.writes += group.size();
    stats_.largest = std::max<std::uint64_t>(stats_.largest, group.size());
    leading_ = false;
    group_cv_.notify_all();
  }

  // The bracket's enter (IndexChangeBracket), on the index thread: takes the gate, then waits
  // while hold_index_changes_for_testing() holds it.
  void enter_index_change() {
    index_gate_.lock();
    if (!hold_changes_set_.load(std::memory_order_relaxed)) return;
    std::unique_lock l(signal_mu_);
    change_held_ = true;
    signal_cv_.wait(l, [&] { return stop_ || !hold_changes_; });
    change_held_ = false;
  }

  // The index thread: applies the node's queued index operations until stopped.
  void index_loop() {
    for (;;) {
      {
        std::unique_lock l(signal_mu_);
        signal_cv_.wait(l, [&] { return stop_ || (hint_ && !paused_); });
        if (stop_) return;
        hint_ = false;
      }
      for (;;) {
        {
          std::lock_guard l(signal_mu_);
          if (stop_ || paused_) break;
        }
        std::lock_guard d(drain_mu_);
        std::optional<IndexWork> work;
        unsigned threads = 1;
        {
          std::unique_lock lock(mu_);
          work = node_->take_index_work(kIndexWorkOps);
          threads = node_->build_threads();
        }
        if (!work) break;
        // No node lock: searches and commits go on. stop_index() cuts it short. Each change to
        // the index holds the gate, so searches wait for it outside the node's lock.
        const Status result = work->run(
            threads, [this] { return stop_work_.load(std::memory_order_relaxed); }, gate_bracket_);
        {
          std::unique_lock lock(mu_);
          node_->finish_index_work(*work, result);
          backlog_.store(node_->index_backlog(), std::memory_order_relaxed);
        }
        {
          std::lock_guard l(signal_mu_);  // orders the store above with admit()'s predicate
        }
        progress_cv_.notify_all();
      }
    }
  }

 private:
  // The index gate ("Index gate" above): shared by read(), exclusive around each change the
  // index thread makes to an index.
  mutable RwLock index_gate_;
  const IndexChangeBracket gate_bracket_{[this] { enter_index_change(); }, [this] { index_gate_.unlock(); }};
  mutable RwLock mu_;
  // Held by every caller that may write the store or the node's state (write(), write_quiet(),
  // and a group from begin_group to end_group), before mu_: a group's commit runs without mu_,
  // and nothing else may change the node meanwhile.
  std::mutex commit_mu_;
  std::unique_ptr<Node> node_;
  // Guards after_write_ and next_observer_ (shared while observers run, exclusive to change them).
  mutable std::shared_mutex observers_mu_;
  std::vector<std::pair<std::size_t, std::function<void()>>> after_write_;
  std::size_t next_observer_ = 0;

  // Group commit.
  mutable std::mutex group_mu_;
  std::condition_variable group_cv_;   // writers waiting for their ticket, or to lead
  std::condition_variable gather_cv_;  // the leader while gathering_
  std::vector<Ticket*> queue_;  // oldest first
  bool leading_ = false;
  bool hold_ = false;
  bool gathering_ = false;   // a leader waits for writers to join (lead())
  std::size_t active_ = 0;   // writers active at the last commit: its group and those waiting
  std::chrono::steady_clock::duration gather_limit_{};
  WriteGroupStats stats_;

  // The index thread.
  std::atomic<std::size_t> backlog_{0};
  std::mutex drain_mu_;  // held while an IndexWork is out
  mutable std::mutex signal_mu_;
  std::condition_variable signal_cv_;    // wakes the index thread
  std::condition_variable progress_cv_;  // the queue shrank (admit, tests)
  bool hint_ = false;
  bool paused_ = false;
  bool stop_ = false;
  std::atomic<bool> stop_work_{false};  // stop_, read by the running IndexWork without a lock
  std::mutex stop_mu_;                  // one joiner of index_thread_ at a time
  std::size_t waiting_ = 0;
  bool hold_changes_ = false;                  // hold_index_changes_for_testing
  std::atomic<bool> hold_changes_set_{false};  // hold_changes_, read before taking signal_mu_
  bool change_held_ = false;                   // the index thread waits in enter_index_change
  std::thread index_thread_;  // last: started after everything it uses exists
};


}  // namespace shoal::node

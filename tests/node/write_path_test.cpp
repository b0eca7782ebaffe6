// Proves the write path of issue 16 through SharedNode on a real data directory (LMDB):
// - group commit: writers queued together share one transaction and one commit, each gets its
//   own status (a write that fails inside the group fails alone; a write that fails validation
//   never joins one);
// - the index queue: a search sees writes whose HNSW insert is still queued (new records,
//   updates, and deletes that hide the graph's stale hit), with and without a filter; writers
//   wait while the queue is full and none is dropped; closing drains the queue into the snapshot;
// - the core alone (Node on a MemoryStore): a failed group commit (injected) fails exactly the
//   writes that joined it and changes nothing; index work taken off the queue keeps search exact;
// - the index gate (D76): a search waiting for an insert holds no node lock, so writes go on.
// Deterministic: the test hooks hold the group leader (hold_commits_for_testing) and the index
// thread (pause_index_for_testing, hold_index_changes_for_testing), and the tests wait for states
// (queued writes, waiting writers, a thread asleep on a lock), never for time; only the gate test
// bounds its write (30 s), so that the bug it looks for fails it instead of hanging it.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "crdt/replica.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/store/memory_store.hpp"

using namespace shoal;
using namespace shoal::node;

namespace {

std::string fresh_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() /
           ("shoal-writepath-" + std::to_string(::getpid()) + "-" + name);
  std::filesystem::remove_all(p);
  return p.string();
}

std::unique_ptr<OpenDataDir> open_dir(const std::string& path, std::size_t queue_max = 0) {
  DataDirOptions o;
  o.node.build_threads = 1;
  o.node.index_queue_max = queue_max;  // 0: the runtime's default
  auto d = open_data_dir(path, std::move(o));
  INFO(path << ": " << d.status().to_string());
  REQUIRE(d.ok());
  return std::move(d).value();
}

RecordValue value(std::vector<float> v, std::int64_t tag = 0) {
  RecordValue r;
  r.vector = std::move(v);
  r.metadata.fields = {{"tag", tag}};
  return r;
}

// Waits (yielding) until `cond` holds: a state another thread reaches, not a time.
template <typename F>
void wait_until(F&& cond) {
  while (!cond()) std::this_thread::yield();
}

std::vector<Hit> search(SharedNode& n, std::vector<float> q, std::uint32_t k, const std::string& filter = "") {
  SearchOptions o;
  o.k = k;
  if (!filter.empty()) {
    auto f = parse_filter(filter);
    REQUIRE(f.ok());
    o.filter = *f;
  }
  auto r = n.search("c", q, o);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("a search sees writes whose index insert is still queued: new, updated and deleted records",
          "[node][write_path]") {
  const std::string dir = fresh_dir("ryw");
  auto d = open_dir(dir);
  SharedNode& n = d->node();
  REQUIRE(n.create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(n.upsert("c", "old", value({1, 0, 0, 0}, 1)).ok());
  n.wait_index_idle_for_testing();  // "old" is in the graph now
  REQUIRE(n.index_backlog() == 0);

  n.pause_index_for_testing(true);
  REQUIRE(n.upsert("c", "new", value({0, 1, 0, 0}, 2)).ok());
  REQUIRE(n.upsert("c", "old", value({0, 0, 1, 0}, 1)).ok());  // the graph still holds (1,0,0,0)
  REQUIRE(n.upsert("c", "gone", value({0, 0, 0, 1}, 3)).ok());
  REQUIRE(n.remove("c", "gone").ok());
  CHECK(n.index_backlog() == 4);  // add new, replace old, add gone, remove gone

  auto check = [&] {
    // The new record, scored exactly from the queue.
    auto hits = search(n, {0, 1, 0, 0}, 3);
    REQUIRE(hits.size() == 2);  // two live records: "gone" is hidden
    CHECK(hits[0].id == "new");
    CHECK(hits[0].distance == 0.0f);
    CHECK(hits[1].id == "old");
    // The update: "old" answers with its new vector, not the graph's stale one.
    hits = search(n, {1, 0, 0, 0}, 3);
    REQUIRE(hits.size() == 2);
    for (const auto& h : hits) {
      CHECK(h.id != "gone");
      if (h.id == "old") CHECK(h.distance == 2.0f);  // |(1,0,0,0) - (0,0,1,0)|^2
    }
    hits = search(n, {0, 0, 1, 0}, 1);
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].id == "old");
    CHECK(hits[0].distance == 0.0f);
    // The deleted record is gone even for its own vector.
    hits = search(n, {0, 0, 0, 1}, 3);
    for (const auto& h : hits) CHECK(h.id != "gone");
    // With a filter, queued and indexed records alike.
    hits = search(n, {0, 0, 0, 0.5f}, 3, "tag=1");
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].id == "old");
    hits = search(n, {0, 0, 0, 0.5f}, 3, "tag=3");
    CHECK(hits.empty());
  };
  {
    INFO("with the index queue held");
    check();
  }
  n.pause_index_for_testing(false);
  n.wait_index_idle_for_testing();
  CHECK(n.index_backlog() == 0);
  {
    INFO("after the queue drained into the graph");
    check();
  }
  d.reset();
  std::filesystem::remove_all(dir);
}

TEST_CASE("writes queued together share one commit, and one that fails inside the group fails alone",
          "[node][write_path]") {
  const std::string dir = fresh_dir("group");
  auto d = open_dir(dir);
  SharedNode& n = d->node();
  REQUIRE(n.create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(n.upsert("c", "present", value({1, 1, 1, 1})).ok());

  n.hold_commits_for_testing(true);
  // Validation happens before joining: a bad record is refused at once, even while commits are
  // held, and never joins a group.
  const Status bad = n.upsert("c", "bad", value({1, 2, 3}));
  CHECK(bad.detail() == Detail::kDimensionMismatch);
  CHECK(n.queued_writes_for_testing() == 0);

  const WriteGroupStats before = n.write_stats();
  std::vector<Status> results(5);
  std::vector<std::thread> writers;
  writers.emplace_back([&] { results[0] = n.upsert("c", "a", value({1, 0, 0, 0})); });
  writers.emplace_back([&] { results[1] = n.upsert("c", "b", value({0, 1, 0, 0})); });
  writers.emplace_back([&] { results[2] = n.remove("c", "missing"); });  // fails inside the group
  writers.emplace_back([&] { results[3] = n.remove("c", "present"); });
  writers.emplace_back([&] {
    std::vector<RecordInput> batch;
    batch.push_back({"c1", value({0, 0, 1, 0})});
    batch.push_back({"c2", value({0, 0, 0, 1})});
    results[4] = n.upsert_batch("c", std::move(batch));
  });
  wait_until([&] { return n.queued_writes_for_testing() == 5; });
  n.hold_commits_for_testing(false);
  for (auto& t : writers) t.join();

  const WriteGroupStats after = n.write_stats();
  CHECK(after.groups - before.groups == 1);  // one transaction, one sync for all five
  CHECK(after.writes - before.writes == 5);
  CHECK(results[0].ok());
  CHECK(results[1].ok());
  CHECK(results[2].detail() == Detail::kNoSuchRecord);
  CHECK(results[3].ok());
  CHECK(results[4].ok());
  for (const char* id : {"a", "b", "c1", "c2"}) CHECK(n.get("c", id).ok());
  CHECK(n.get("c", "present").status().detail() == Detail::kNoSuchRecord);
  CHECK(n.get("c", "bad").status().detail() == Detail::kNoSuchRecord);

  // And they are durable: a reopen holds exactly them.
  d.reset();
  d = open_dir(dir);
  for (const char* id : {"a", "b", "c1", "c2"}) CHECK(d->node().get("c", id).ok());
  CHECK_FALSE(d->node().get("c", "present").ok());
  CHECK(d->node().collection_info("c")->live_records == 4);
  d.reset();
  std::filesystem::remove_all(dir);
}

TEST_CASE("writers wait while the index queue is full, and every write lands", "[node][write_path]") {
  const std::string dir = fresh_dir("full");
  auto d = open_dir(dir, 3);
  SharedNode& n = d->node();
  REQUIRE(n.create_collection({"c", 4, Metric::kL2}).ok());
  n.pause_index_for_testing(true);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(n.upsert("c", "r" + std::to_string(i), value({static_cast<float>(i), 1, 0, 0})).ok());
  }
  REQUIRE(n.index_backlog() == 3);
  Status fourth = Status(Code::kInternal, "not run");
  std::thread writer([&] { fourth = n.upsert("c", "r3", value({3, 1, 0, 0})); });
  wait_until([&] { return n.writers_waiting_for_testing() == 1; });
  // Held back before its commit: not in the store, and the queue did not pass its bound.
  CHECK_FALSE(n.get("c", "r3").ok());
  CHECK(n.index_backlog() == 3);
  n.pause_index_for_testing(false);
  writer.join();
  CHECK(fourth.ok());
  n.wait_index_idle_for_testing();
  for (int i = 0; i < 4; ++i) {
    auto hits = search(n, {static_cast<float>(i), 1, 0, 0}, 1);
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].id == "r" + std::to_string(i));
    CHECK(hits[0].distance == 0.0f);
  }
  d.reset();
  std::filesystem::remove_all(dir);
}

TEST_CASE("closing drains the index queue, so the snapshot covers every acknowledged write",
          "[node][write_path]") {
  const std::string dir = fresh_dir("close");
  auto d = open_dir(dir);
  REQUIRE(d->node().create_collection({"c", 4, Metric::kL2}).ok());
  d->node().pause_index_for_testing(true);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(d->node().upsert("c", "r" + std::to_string(i), value({static_cast<float>(i), 2, 0, 0})).ok());
  }
  REQUIRE(d->node().remove("c", "r7").ok());
  CHECK(d->node().index_backlog() == 21);
  d.reset();  // close with the index thread still paused
  d = open_dir(dir);
  // The snapshot was usable: it held all 19 live records after the drain.
  CHECK(d->node().open_report().index_source.at("c") == "snapshot");
  for (int i = 0; i < 20; ++i) {
    auto hits = search(d->node(), {static_cast<float>(i), 2, 0, 0}, 1);
    REQUIRE(hits.size() == 1);
    if (i == 7) {
      CHECK(hits[0].id != "r7");
    } else {
      CHECK(hits[0].id == "r" + std::to_string(i));
      CHECK(hits[0].distance == 0.0f);
    }
  }
  d.reset();
  std::filesystem::remove_all(dir);
}

namespace {

// Waits until thread `tid` of this process sleeps (state S in /proc: blocked, here on a lock).
void wait_until_sleeping(pid_t tid) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  for (;;) {
    std::ifstream f(path);
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    // The state follows the command name, which is in parentheses and may hold spaces.
    const auto close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'S') return;
    std::this_thread::yield();
  }
}

}  // namespace

// D76: a search used to wait for an insert's index lock while it held the node's shared lock, so
// a writer (which needs the node's lock exclusively twice per group) waited for the insert too.
// Now the search waits at the index gate, before the node's lock: with the index thread held
// inside a change (the gate taken, the insert about to run) and a search blocked behind it, a
// write still commits; the search then answers with every write acknowledged before it began.
TEST_CASE("a search waiting for an index insert holds no node lock: a write commits meanwhile",
          "[node][write_path]") {
  const std::string dir = fresh_dir("gate");
  auto d = open_dir(dir);
  SharedNode& n = d->node();
  REQUIRE(n.create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(n.upsert("c", "a", value({1, 0, 0, 0})).ok());
  n.wait_index_idle_for_testing();

  n.hold_index_changes_for_testing(true);
  REQUIRE(n.upsert("c", "b", value({0, 1, 0, 0})).ok());  // its insert is now held, gate taken
  wait_until([&] { return n.index_change_held_for_testing(); });

  std::atomic<pid_t> search_tid{0};
  std::atomic<bool> search_done{false};
  Result<std::vector<Hit>> seen = Status(Code::kInternal, "not run");
  std::thread searcher([&] {
    search_tid = ::gettid();
    SearchOptions o;
    o.k = 3;
    seen = n.search("c", std::vector<float>{0, 1, 0, 0}, o);
    search_done = true;
  });
  wait_until([&] { return search_tid.load() != 0; });
  wait_until_sleeping(search_tid.load());  // blocked at the gate behind the held insert

  // The write takes the node's lock exclusively (begin_group, end_group). Run on its own thread
  // and bounded, so that a search holding the node's lock while it waits fails this check
  // instead of hanging the test.
  std::promise<Status> wrote;
  auto written = wrote.get_future();
  std::thread writer([&] { wrote.set_value(n.upsert("c", "c", value({0, 0, 1, 0}))); });
  const bool committed = written.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  CHECK(committed);
  CHECK_FALSE(search_done.load());  // still at the gate: the insert has not run
  CHECK(n.index_change_held_for_testing());

  n.hold_index_changes_for_testing(false);
  writer.join();
  searcher.join();
  CHECK(written.get().ok());
  REQUIRE(seen.ok());
  // Every write acknowledged before the search began is in its answer ("c" came after).
  REQUIRE(seen->size() >= 2);
  CHECK((*seen)[0].id == "b");
  CHECK((*seen)[0].distance == 0.0f);
  CHECK(std::any_of(seen->begin(), seen->end(), [](const Hit& h) { return h.id == "a"; }));
  // And the write made meanwhile is found by the next search.
  auto hits = search(n, {0, 0, 1, 0}, 1);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].id == "c");
  CHECK(hits[0].distance == 0.0f);
  d.reset();
  std::filesystem::remove_all(dir);
}

TEST_CASE("eight threads writing at once: every acknowledged write is readable and searchable",
          "[node][write_path]") {
  const std::string dir = fresh_dir("eight");
  auto d = open_dir(dir);
  SharedNode& n = d->node();
  REQUIRE(n.create_collection({"c", 4, Metric::kL2}).ok());
  constexpr int kThreads = 8, kEach = 40;
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        if (!n.upsert("c", "t" + std::to_string(t) + "-" + std::to_string(i),
                      value({static_cast<float>(t), static_cast<float>(i), 1, 0}))
                 .ok()) {
          ++failed;
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  CHECK(failed == 0);
  const WriteGroupStats s = n.write_stats();
  CHECK(s.writes == kThreads * kEach);  // the upserts (a create is not a grouped write)
  INFO("groups " << s.groups << " for " << s.writes << " writes, largest " << s.largest);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kEach; ++i) {
      const std::string id = "t" + std::to_string(t) + "-" + std::to_string(i);
      CHECK(n.get("c", id).ok());
      auto hits = search(n, {static_cast<float>(t), static_cast<float>(i), 1, 0}, 1);
      REQUIRE(hits.size() == 1);
      CHECK(hits[0].id == id);
      CHECK(hits[0].distance == 0.0f);
    }
  }
  d.reset();
  std::filesystem::remove_all(dir);
}

// --- The core alone (Node on a MemoryStore, one thread): what SharedNode relies on. ---

namespace {

NodeOptions core_options(std::size_t queue_max) {
  NodeOptions o;
  std::int64_t t = 1'700'000'000'000'000'000;
  o.wall_clock = [t]() mutable { return WallTime::from_ns(t += 1000); };
  o.identity = crdt::replica_for_testing(1);
  o.index_queue_max = queue_max;
  o.build_threads = 1;
  return o;
}

WriteRequest upsert_request(const std::string& id, std::vector<float> v) {
  WriteRequest r;
  r.collection = "c";
  r.records.push_back({id, value(std::move(v))});
  return r;
}

}  // namespace

TEST_CASE("a failed group commit fails exactly the writes that joined it and changes nothing",
          "[node][write_path]") {
  store::MemoryStore st;
  auto opened = Node::open(st, core_options(0));
  REQUIRE(opened.ok());
  Node& n = **opened;
  REQUIRE(n.create_collection({"c", 4, Metric::kL2}).ok());
  const std::uint64_t seq_before = n.stats().last_delta_seq;
  std::vector<WriteRequest> group;
  group.push_back(upsert_request("a", {1, 0, 0, 0}));
  group.push_back(upsert_request("b", {0, 1, 0, 0}));
  WriteRequest missing;
  missing.collection = "c";
  missing.remove_id = "missing";
  group.push_back(missing);
  WriteRequest dropped;  // a collection that is not there fails alone too
  dropped.collection = "nope";
  dropped.records.push_back({"x", value({1, 1, 1, 1})});
  group.push_back(dropped);
  st.fail_next_writes(1);  // the group's commit
  std::vector<Status> out = n.write_group(group);
  REQUIRE(out.size() == 4);
  CHECK(out[0].code() == Code::kIo);
  CHECK(out[1].code() == Code::kIo);
  CHECK(out[2].detail() == Detail::kNoSuchRecord);  // its own status, not the commit's
  CHECK(out[3].detail() == Detail::kNoSuchCollection);
  CHECK_FALSE(n.get("c", "a").ok());
  CHECK(n.stats().last_delta_seq == seq_before);
  CHECK(n.collection_info("c")->live_records == 0);
  // The same group again, with a healthy store: the two upserts land in one transaction.
  out = n.write_group(group);
  CHECK(out[0].ok());
  CHECK(out[1].ok());
  CHECK(out[2].detail() == Detail::kNoSuchRecord);
  CHECK(n.get("c", "a").ok());
  CHECK(n.get("c", "b").ok());
  CHECK(n.stats().last_delta_seq == seq_before + 2);  // one buffer entry per upserted record
}

TEST_CASE("index work taken from the queue keeps search exact until it is handed back", "[node][write_path]") {
  store::MemoryStore st;
  auto opened = Node::open(st, core_options(64));
  REQUIRE(opened.ok());
  Node& n = **opened;
  REQUIRE(n.create_collection({"c", 4, Metric::kL2}).ok());
  REQUIRE(n.upsert("c", "a", value({1, 0, 0, 0})).ok());
  REQUIRE(n.upsert("c", "b", value({0, 1, 0, 0})).ok());
  CHECK(n.index_backlog() == 2);
  auto q = [&](std::vector<float> v) {
    SearchOptions o;
    o.k = 2;
    auto r = n.search("c", v, o);
    REQUIRE(r.ok());
    return *r;
  };
  auto before = q({1, 0, 0, 0});
  REQUIRE(before.size() == 2);
  CHECK(before[0].id == "a");
  CHECK(before[0].distance == 0.0f);
  auto work = n.take_index_work(1);
  REQUIRE(work.has_value());
  CHECK(work->size() == 1);
  REQUIRE(work->run(1).ok());  // "a" is in the graph and still queued: answered once
  auto during = q({1, 0, 0, 0});
  REQUIRE(during.size() == 2);
  CHECK(during[0].id == "a");
  CHECK(during[1].id == "b");
  n.finish_index_work(*work, Status());
  CHECK(n.index_backlog() == 1);
  REQUIRE(n.remove("c", "a").ok());  // a delete queued behind a graph entry hides it
  auto after_delete = q({1, 0, 0, 0});
  REQUIRE(after_delete.size() == 1);
  CHECK(after_delete[0].id == "b");
  n.drain_index();
  CHECK(n.index_backlog() == 0);
  auto drained = q({1, 0, 0, 0});
  REQUIRE(drained.size() == 1);
  CHECK(drained[0].id == "b");
}

TEST_CASE("index work stopped part way hands back only what it applied, and search stays exact", "[node][write_path]") {
  // What a closing SharedNode relies on (D65): IndexWork::run asks `stop` before each single
  // insert and before each parallel batch (which then runs whole); the operations it did not
  // apply stay queued, a suffix, and search answers for queued labels from the queue.
  store::MemoryStore st;
  NodeOptions options = core_options(1024);
  options.build_threads = 2;
  auto opened = Node::open(st, std::move(options));
  REQUIRE(opened.ok());
  Node& n = **opened;
  REQUIRE(n.create_collection({"c", 4, Metric::kL2}).ok());
  constexpr int kRecords = 400;
  auto vec = [](int i) { return std::vector<float>{static_cast<float>(i), static_cast<float>(i % 7), 1, 0}; };
  std::vector<RecordInput> batch;
  for (int i = 0; i < kRecords; ++i) batch.push_back({"r" + std::to_string(i), value(vec(i))});
  REQUIRE(n.upsert_batch("c", std::move(batch)).ok());
  REQUIRE(n.index_backlog() == kRecords);
  auto all_found = [&] {
    for (int i = 0; i < kRecords; ++i) {
      SearchOptions o;
      o.k = 1;
      o.ef = 1024;
      auto r = n.search("c", vec(i), o);
      REQUIRE(r.ok());
      REQUIRE(r->size() == 1);
      if ((*r)[0].id != "r" + std::to_string(i) || (*r)[0].distance != 0.0f) return false;
    }
    return true;
  };
  std::atomic<int> asked{0};
  auto stop_after = [&asked](int n_inserts) {
    asked = 0;
    return [&asked, n_inserts] { return asked.fetch_add(1) >= n_inserts; };
  };
  // One thread: single inserts, stopped after exactly 100.
  auto work = n.take_index_work(200);
  REQUIRE(work.has_value());
  REQUIRE(work->run(1, stop_after(100)).ok());
  CHECK(work->applied() == 100);
  n.finish_index_work(*work, Status());
  CHECK(n.index_backlog() == kRecords - 100);
  CHECK(all_found());
  // Two threads: the rest is one add_batch; a stop already asked for keeps it from starting.
  work = n.take_index_work(kRecords);
  REQUIRE(work.has_value());
  REQUIRE(work->size() == kRecords - 100);
  REQUIRE(work->run(2, stop_after(0)).ok());
  CHECK(work->applied() == 0);
  CHECK(asked.load() == 1);  // asked once, before the batch
  n.finish_index_work(*work, Status());
  CHECK(n.index_backlog() == kRecords - 100);
  CHECK(all_found());
  // A stop asked for once the batch has started does not cut it: applied whole.
  work = n.take_index_work(kRecords);
  REQUIRE(work.has_value());
  REQUIRE(work->run(2, stop_after(1)).ok());
  CHECK(work->applied() == kRecords - 100);
  n.finish_index_work(*work, Status());
  CHECK(n.index_backlog() == 0);
  CHECK(all_found());
  n.drain_index();
  CHECK(n.index_backlog() == 0);
  CHECK(all_found());
}

// Proves the node's data path on both stores: upserts are durable and searchable, deletes take
// records out of the store and the index, reopening rebuilds or loads-and-catches-up the index,
// and every rejected request (10,000+ random invalid ones) leaves the store byte-identical
// (state hash before and after). Full disks give a typed error and leave reads working.
#include <catch2/catch.hpp>

#include <atomic>
#include <filesystem>
#include <thread>
#include <limits>

#include "common/random.hpp"
#include "index/hnsw_index.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/runtime/file_snapshot_store.hpp"
#include "node/core/node.hpp"
#include "node/store/memory_store.hpp"

using namespace shoal;
using namespace shoal::node;

namespace {

std::string temp_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() /
           ("shoal-node-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  return p.string();
}

RecordValue value_of(std::vector<float> v, std::string color = "red", std::int64_t year = 2020) {
  RecordValue r;
  r.vector = std::move(v);
  r.metadata.fields = {{"color", std::move(color)}, {"year", year}};
  r.model = "test-model";
  return r;
}

std::vector<float> random_vector(Rng& rng, std::uint32_t dim) {
  std::vector<float> v(dim);
  for (auto& x : v) x = rng.uniform_float(-1, 1);
  return v;
}

NodeOptions fixed_clock_options() {
  NodeOptions o;
  std::int64_t t = 1'700'000'000'000'000'000;
  o.wall_clock = [t]() mutable { return WallTime::from_ns(t += 1000); };
  o.identity = crdt::replica_for_testing(1);
  return o;
}

// A MemoryStore whose n-th commit from arming on is struck by a crash of the process: the store
// crashes (that transaction and everything uncommitted is lost) and the commit fails. Reads and
// every other call go to the store as they are.
class CrashAtCommit final : public store::Store {
 public:
  explicit CrashAtCommit(store::MemoryStore& st) : st_(st) {}
  void arm(int commits_before_crash) { left_ = commits_before_crash; }
  Result<std::unique_ptr<store::ReadTxn>> begin_read() override { return st_.begin_read(); }
  Result<std::unique_ptr<store::WriteTxn>> begin_write() override {
    SHOAL_ASSIGN_OR_RETURN(auto txn, st_.begin_write());
    return std::unique_ptr<store::WriteTxn>(new Write(*this, std::move(txn)));
  }
  store::StoreLimits limits() const noexcept override { return st_.limits(); }

 private:
  class Write final : public store::WriteTxn {
   public:
    Write(CrashAtCommit& s, std::unique_ptr<store::WriteTxn> t) : s_(s), t_(std::move(t)) {}
    Result<std::string> get(store::Table t, std::string_view k) override { return t_->get(t, k); }
    Result<std::string_view> get_view(store::Table t, std::string_view k) override { return t_->get_view(t, k); }
    Status scan(store::Table t, const store::Range& r, store::Visitor v) override { return t_->scan(t, r, v); }
    Result<std::uint64_t> count(store::Table t) override { return t_->count(t); }
    Status put(store::Table t, std::string_view k, std::string_view v) override { return t_->put(t, k, v); }
    Status del(store::Table t, std::string_view k) override { return t_->del(t, k); }
    Status commit() override {
      if (s_.left_ >= 0 && s_.left_-- == 0) {
        s_.st_.crash();
        return Status(Code::kUnavailable, "crashed by the test");
      }
      return t_->commit();
    }
    void abort() noexcept override { t_->abort(); }

   private:
    CrashAtCommit& s_;
    std::unique_ptr<store::WriteTxn> t_;
  };
  store::MemoryStore& st_;
  int left_ = -1;  // -1: not armed
};

}  // namespace

// Found by shoal-sim seed 1654 (D56): the collection's storage was committed apart from its
// catalogue entry, so a crash in between left a hidden collection behind. This proves, for a
// crash at each of create_collection's commits, on a store's first collection and on a later
// one: the create either landed (the collection is listed) or left nothing (the name takes a
// create with another dimension), and the next open writes nothing (no fresh incarnation).
TEST_CASE("a crash at any commit of create_collection leaves the collection created or absent", "[node]") {
  for (const bool first : {true, false}) {
    for (int k = 0; k < 4; ++k) {
      INFO("first collection: " << first << ", crash at commit " << k);
      store::MemoryStore st;
      CrashAtCommit cs(st);
      if (!first) {
        auto n = Node::open(st, fixed_clock_options());
        REQUIRE(n.ok());
        REQUIRE((*n)->create_collection({"a", 2, Metric::kL2}).ok());
      }
      Status created;
      {
        auto n = Node::open(cs, fixed_clock_options());
        REQUIRE(n.ok());
        cs.arm(k);
        created = (*n)->create_collection({"c", 2, Metric::kL2});
        cs.arm(-1);
      }
      const auto before = store::state_hash(st);
      auto n = Node::open(st, fixed_clock_options());
      REQUIRE(n.ok());
      CHECK(*store::state_hash(st) == *before);
      bool listed = false;
      for (const auto& info : (*n)->list_collections()) listed |= info.spec.name == "c";
      if (created.ok()) CHECK(listed);
      if (!listed) CHECK((*n)->create_collection({"c", 3, Metric::kL2}).ok());
      CHECK((*n)->list_collections().size() == (first ? 1u : 2u));
    }
  }
}

TEST_CASE("upserted records are readable, searchable and deletable", "[node]") {
  store::MemoryStore st;
  auto n = Node::open(st, fixed_clock_options());
  REQUIRE(n.ok());
  Node& node = **n;
  REQUIRE(node.create_collection({"c", 3, Metric::kL2}).ok());
  CHECK(node.create_collection({"c", 3, Metric::kL2}).detail() == Detail::kAlreadyExists);
  REQUIRE(node.upsert("c", "a", value_of({0, 0, 0})).ok());
  REQUIRE(node.upsert("c", "b", value_of({1, 0, 0}, "blue", 2021)).ok());
  REQUIRE(node.upsert("c", "c", value_of({5, 5, 5})).ok());

  auto got = node.get("c", "b");
  REQUIRE(got.ok());
  REQUIRE(got->siblings.size() == 1);
  CHECK(got->siblings[0].value == value_of({1, 0, 0}, "blue", 2021));

  std::vector<float> q{0.9f, 0, 0};
  auto hits = node.search("c", q, SearchOptions{2, 0, {}});
  REQUIRE(hits.ok());
  REQUIRE(hits->size() == 2);
  CHECK((*hits)[0].id == "b");
  CHECK((*hits)[0].distance == Approx(0.01f));
  CHECK((*hits)[0].model == "test-model");
  CHECK((*hits)[1].id == "a");

  // Replacing a record replaces its vector in the index.
  REQUIRE(node.upsert("c", "c", value_of({1, 0.1f, 0})).ok());
  hits = node.search("c", q, SearchOptions{1, 0, {}});
  REQUIRE(hits.ok());
  CHECK((*hits)[0].id == "b");
  CHECK(node.collection_info("c")->live_records == 3);

  REQUIRE(node.remove("c", "b").ok());
  CHECK(node.get("c", "b").status().detail() == Detail::kNoSuchRecord);
  CHECK(node.remove("c", "b").detail() == Detail::kNoSuchRecord);
  hits = node.search("c", q, SearchOptions{3, 0, {}});
  REQUIRE(hits.ok());
  REQUIRE(hits->size() == 2);
  CHECK((*hits)[0].id == "c");

  // Filters: only matching records, and k of them when k match.
  auto f = parse_filter("color=red");
  REQUIRE(f.ok());
  hits = node.search("c", q, SearchOptions{10, 0, *f});
  REQUIRE(hits.ok());
  CHECK(hits->size() == 2);
  CHECK(node.collection_info("c")->live_records == 2);

  // The stored CRDT state agrees: two live records, and the context covers every dot issued
  // (4 upserts), so the deleted record's dot is remembered without a tombstone.
  auto state = node.crdt_state_for_testing("c");
  REQUIRE(state.ok());
  CHECK(state->size() == 2);
  CHECK(state->context().max_counter(node.replica()) == 4);
  CHECK(state->context().cloud_size() == 0);
  CHECK(*node.digest_root("c") == state->digests().root());
}

TEST_CASE("filtered search returns k results whenever k records match", "[node][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  store::MemoryStore st;
  auto n = Node::open(st, fixed_clock_options());
  REQUIRE(n.ok());
  Node& node = **n;
  REQUIRE(node.create_collection({"c", 8, Metric::kL2}).ok());
  std::vector<RecordInput> batch;
  for (int i = 0; i < 2000; ++i) {
    // 1% blue, 10% green, the rest red.
    const char* color = i % 100 == 0 ? "blue" : (i % 10 == 1 ? "green" : "red");
    batch.push_back({"r" + std::to_string(i), value_of(random_vector(rng, 8), color, i)});
  }
  REQUIRE(node.upsert_batch("c", std::move(batch)).ok());
  for (const char* expr : {"color=blue", "color=green", "color=red", "year<50", "year>=1990"}) {
    auto f = parse_filter(expr);
    REQUIRE(f.ok());
    auto q = random_vector(rng, 8);
    auto hits = node.search("c", q, SearchOptions{10, 0, *f});
    REQUIRE(hits.ok());
    INFO(expr);
    CHECK(hits->size() == 10);
    for (const auto& h : *hits) CHECK(f->matches(h.metadata));
  }
}

TEST_CASE("every rejected request leaves the store byte-identical", "[node][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  store::MemoryStore st;
  auto n = Node::open(st, fixed_clock_options());
  REQUIRE(n.ok());
  Node& node = **n;
  REQUIRE(node.create_collection({"c", 4, Metric::kCosine}).ok());
  for (int i = 0; i < 50; ++i) {
    auto v = random_vector(rng, 4);
    v[0] += 2;  // never zero
    REQUIRE(node.upsert("c", "r" + std::to_string(i), value_of(v)).ok());
  }
  const auto before = store::state_hash(st);
  REQUIRE(before.ok());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  int rejected = 0;
  for (int i = 0; i < 10000; ++i) {
    Status s;
    auto v = random_vector(rng, 4);
    v[0] += 2;
    switch (rng.uniform(10)) {
      case 0: s = node.upsert("c", "x", value_of(random_vector(rng, static_cast<std::uint32_t>(rng.uniform(3)) + 1))); break;
      case 1: v[rng.uniform(4)] = rng.bernoulli(0.5) ? nan : inf; s = node.upsert("c", "x", value_of(v)); break;
      case 2: s = node.upsert("c", "x", value_of({0, 0, 0, 0})); break;
      case 3: s = node.upsert("c", std::string(257 + rng.uniform(100), 'i'), value_of(v)); break;
      case 4: s = node.upsert("c", "", value_of(v)); break;
      case 5: s = node.upsert("nope", "x", value_of(v)); break;
      case 6: {
        RecordValue r = value_of(v);
        r.metadata.fields.emplace_back("blob", std::string(40 * 1024 + rng.uniform(1000), 'b'));
        s = node.upsert("c", "x", r);
        break;
      }
      case 7: {
        // A batch whose last record is bad: nothing of it may land.
        std::vector<RecordInput> b;
        for (int j = 0; j < 5; ++j) b.push_back({"b" + std::to_string(j), value_of(v)});
        b.push_back({"bad", value_of({nan, 1, 1, 1})});
        s = node.upsert_batch("c", std::move(b));
        break;
      }
      case 8: s = node.remove("c", "missing-" + std::to_string(rng.uniform(100))); break;
      default: {
        RecordValue r = value_of(v);
        r.metadata.fields.emplace_back("f", rng.bernoulli(0.5) ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN());
        s = node.upsert("c", "x", r);
        break;
      }
    }
    REQUIRE_FALSE(s.ok());
    ++rejected;
  }
  const auto after = store::state_hash(st);
  REQUIRE(after.ok());
  CHECK(*after == *before);
  CHECK(rejected == 10000);
  CHECK(node.collection_info("c")->live_records == 50);
}

TEST_CASE("a full disk gives a typed error, changes nothing, and reads keep working", "[node]") {
  store::MemoryStore st;
  auto n = Node::open(st, fixed_clock_options());
  REQUIRE(n.ok());
  Node& node = **n;
  REQUIRE(node.create_collection({"c", 2, Metric::kL2}).ok());
  REQUIRE(node.upsert("c", "a", value_of({1, 2})).ok());
  const auto before = store::state_hash(st);
  st.set_capacity_bytes(st.used_bytes());
  Status s = node.upsert("c", "b", value_of({3, 4}));
  CHECK(s.detail() == Detail::kDiskFull);
  CHECK(*store::state_hash(st) == *before);
  CHECK(node.get("c", "a").ok());
  CHECK(node.search("c", std::vector<float>{1, 2}, SearchOptions{}).ok());
  CHECK(node.collection_info("c")->live_records == 1);
  st.set_capacity_bytes(UINT64_MAX);
  CHECK(node.upsert("c", "b", value_of({3, 4})).ok());
}

TEST_CASE("acknowledged writes survive a crash of the process", "[node]") {
  store::MemoryStore st;
  crdt::ReplicaId replica;
  {
    auto n = Node::open(st, fixed_clock_options());
    REQUIRE(n.ok());
    replica = (*n)->replica();
    REQUIRE((*n)->create_collection({"c", 2, Metric::kL2}).ok());
    REQUIRE((*n)->upsert("c", "a", value_of({1, 2})).ok());
    REQUIRE((*n)->remove("c", "a").ok());
    REQUIRE((*n)->upsert("c", "b", value_of({3, 4})).ok());
    st.crash();
  }
  auto n = Node::open(st, fixed_clock_options());
  REQUIRE(n.ok());
  CHECK((*n)->replica() == replica);
  CHECK((*n)->get("c", "a").status().detail() == Detail::kNoSuchRecord);
  CHECK((*n)->get("c", "b").ok());
  // The next upsert reuses no dot: it takes a fresh incarnation first (D48), so the old
  // incarnation's counter stays at 2 (the upserts of a and b) and the new dot is the new one's.
  REQUIRE((*n)->upsert("c", "d", value_of({5, 6})).ok());
  auto state = (*n)->crdt_state_for_testing("c");
  REQUIRE(state.ok());
  CHECK(state->context().max_counter(replica) == 2);
  CHECK((*n)->get("c", "d").ok());
  CHECK((*n)->open_report().index_source.at("c") == "rebuilt");
}

TEST_CASE("reopening loads the index snapshot and catches up from the delta buffer", "[node]") {
  const std::string dir = temp_dir("snap");
  Rng rng(7);
  std::vector<std::vector<float>> vecs;
  for (int i = 0; i < 300; ++i) vecs.push_back(random_vector(rng, 8));
  std::string saved;
  {
    auto d = open_data_dir(dir, {});
    REQUIRE(d.ok());
    SharedNode& node = (*d)->node();
    REQUIRE(node.create_collection({"c", 8, Metric::kL2}).ok());
    std::vector<RecordInput> batch;
    for (int i = 0; i < 200; ++i) batch.push_back({"r" + std::to_string(i), value_of(vecs[i])});
    REQUIRE(node.upsert_batch("c", std::move(batch)).ok());
    REQUIRE(node.save_snapshots().ok());
    // Keep this snapshot; the close below would write a newer one.
    saved = dir + "/saved.hnsw";
    std::filesystem::copy_file(dir + "/snapshots/collection-1.hnsw", saved);
    for (int i = 200; i < 300; ++i) REQUIRE(node.upsert("c", "r" + std::to_string(i), value_of(vecs[i])).ok());
    for (int i = 0; i < 50; ++i) REQUIRE(node.remove("c", "r" + std::to_string(i)).ok());
    REQUIRE(node.upsert("c", "r60", value_of(vecs[299])).ok());  // moved vector
  }
  std::filesystem::copy_file(saved, dir + "/snapshots/collection-1.hnsw",
                             std::filesystem::copy_options::overwrite_existing);
  auto d = open_data_dir(dir, {});
  REQUIRE(d.ok());
  SharedNode& node = (*d)->node();
  CHECK(node.open_report().index_source.at("c") == "snapshot");
  CHECK(node.collection_info("c")->live_records == 250);
  auto hits = node.search("c", vecs[299], SearchOptions{2, 64, {}});
  REQUIRE(hits.ok());
  REQUIRE(hits->size() == 2);
  CHECK((*hits)[0].distance == 0.0f);
  CHECK((((*hits)[0].id == "r60" && (*hits)[1].id == "r299") || ((*hits)[0].id == "r299" && (*hits)[1].id == "r60")));
  auto gone = node.search("c", vecs[10], SearchOptions{1, 64, {}});
  REQUIRE(gone.ok());
  CHECK((*gone)[0].id != "r10");
  // A second process cannot open the same directory.
  CHECK(open_data_dir(dir, {}).status().code() == Code::kUnavailable);
  d = Status(Code::kInternal, "closed");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a corrupt snapshot is rejected and the index rebuilt from the store", "[node]") {
  const std::string dir = temp_dir("corrupt");
  {
    auto d = open_data_dir(dir, {});
    REQUIRE(d.ok());
    REQUIRE((*d)->node().create_collection({"c", 2, Metric::kL2}).ok());
    REQUIRE((*d)->node().upsert("c", "a", value_of({1, 2})).ok());
  }
  {
    std::FILE* f = std::fopen((dir + "/snapshots/collection-1.hnsw").c_str(), "r+b");
    REQUIRE(f != nullptr);
    std::fseek(f, 40, SEEK_SET);
    std::fputc(0x5a, f);
    std::fclose(f);
  }
  auto d = open_data_dir(dir, {});
  REQUIRE(d.ok());
  CHECK((*d)->node().open_report().index_source.at("c") == "rebuilt");
  CHECK((*d)->node().open_report().snapshot_rejected.count("c") == 1);
  CHECK((*d)->node().search("c", std::vector<float>{1, 2}, SearchOptions{1, 0, {}})->at(0).id == "a");
  d = Status(Code::kInternal, "closed");
  std::filesystem::remove_all(dir);
}

// A data directory written before the index snapshot format's version 2 (offset int8 codes for
// inner product and cosine) holds a version-1 snapshot: tests/index/data/snapshot_v1_ip_int8.hnsw,
// a real one from that code, for an 8-d inner-product collection. Opening refuses it (reported in
// snapshot_rejected) and rebuilds the index from the store, which then answers correctly.
TEST_CASE("a version 1 index snapshot is rejected and the index rebuilt from the store", "[node]") {
  const std::string dir = temp_dir("snapshot_v1");
  std::vector<std::vector<float>> vecs;
  Rng rng(16);
  for (int i = 0; i < 300; ++i) {
    std::vector<float> v(8);
    for (float& x : v) x = rng.uniform_float(0.0f, 1.0f);
    vecs.push_back(v);
  }
  {
    auto d = open_data_dir(dir, {});
    REQUIRE(d.ok());
    REQUIRE((*d)->node().create_collection({"c", 8, Metric::kInnerProduct}).ok());
    std::vector<RecordInput> batch;
    for (int i = 0; i < 300; ++i) batch.push_back({"r" + std::to_string(i), value_of(vecs[i])});
    REQUIRE((*d)->node().upsert_batch("c", std::move(batch)).ok());
  }
  std::filesystem::copy_file(std::string(SHOAL_INDEX_TEST_DATA) + "/snapshot_v1_ip_int8.hnsw",
                             dir + "/snapshots/collection-1.hnsw", std::filesystem::copy_options::overwrite_existing);
  auto d = open_data_dir(dir, {});
  REQUIRE(d.ok());
  SharedNode& node = (*d)->node();
  CHECK(node.open_report().index_source.at("c") == "rebuilt");
  REQUIRE(node.open_report().snapshot_rejected.count("c") == 1);
  CHECK_THAT(node.open_report().snapshot_rejected.at("c"), Catch::Contains("version 1"));
  // The rebuilt index answers as brute force does: the largest inner product first.
  for (int q = 0; q < 300; q += 29) {
    int want = 0;
    double best = -1;
    for (int i = 0; i < 300; ++i) {
      double s = 0;
      for (int j = 0; j < 8; ++j) s += static_cast<double>(vecs[q][j]) * vecs[i][j];
      if (s > best) best = s, want = i;
    }
    auto hits = node.search("c", vecs[q], SearchOptions{1, 64, {}});
    REQUIRE(hits.ok());
    REQUIRE(hits->size() == 1);
    CHECK((*hits)[0].id == "r" + std::to_string(want));
  }
  d = Status(Code::kInternal, "closed");
  std::filesystem::remove_all(dir);
}

TEST_CASE("writes make progress under saturating searches and searches never see torn state",
          "[node][concurrency]") {
  // Three threads search as fast as they can (more than the machine's cores) while one thread
  // writes 300 batches of 2 records. With a reader-preferring lock the writer could wait for as
  // long as searches overlap (measured before the fix: 147 upserts in 5 s); with the
  // writer-preferring lock every write waits only for the searches already running, so the
  // writer finishes while the readers are still going (the readers stop only when it is done).
  // Torn state: each batch writes a pair (a-i, b-i) atomically, so a search that sees one of a
  // pair's records and asks for both must find both, and the live count only grows.
  auto dir = open_data_dir(temp_dir("concurrency"), {});  // LMDB: the store the C API uses
  REQUIRE(dir.ok());
  SharedNode& n = (*dir)->node();
  REQUIRE(n.create_collection({"c", 4, Metric::kL2}).ok());
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, shrank{0}, failed{0};
  std::atomic<std::uint64_t> searches{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      std::uint64_t last_live = 0;
      float q = static_cast<float>(t);
      while (!done.load()) {
        SearchOptions o;
        o.k = 2;
        auto hits = n.search("c", std::vector<float>{q, 1, 0, 0}, o);
        if (!hits.ok()) {
          ++failed;
          continue;
        }
        for (const auto& h : *hits) {
          const std::string twin = (h.id[0] == 'a' ? "b" : "a") + h.id.substr(1);
          if (!n.get("c", twin).ok()) ++torn;
        }
        auto info = n.collection_info("c");
        if (info.ok()) {
          if (info->live_records < last_live || info->live_records % 2 != 0) ++shrank;
          last_live = info->live_records;
        }
        ++searches;
        q += 1.0f;
      }
    });
  }
  for (int i = 0; i < 300; ++i) {
    std::vector<RecordInput> batch;
    const float x = static_cast<float>(i);
    batch.push_back({"a" + std::to_string(i), value_of({x, 1, 0, 0})});
    batch.push_back({"b" + std::to_string(i), value_of({x, 1, 1, 0})});
    REQUIRE(n.upsert_batch("c", std::move(batch)).ok());
  }
  done = true;
  for (auto& r : readers) r.join();
  INFO("searches during the writes: " << searches.load());
  CHECK(failed == 0);
  CHECK(torn == 0);
  CHECK(shrank == 0);
  CHECK(n.collection_info("c")->live_records == 600);
}

TEST_CASE("an open state file reads back byte for byte through its mapping, and outlives a replacement while held",
          "[node][snapshot][state]") {
  // Proves FileSnapshotStore::load_state (D70: the file is memory-mapped, not read into a
  // string): no file gives nullopt; an empty file gives no bytes; seeded bytes of several sizes
  // (inside one page, across pages, 3 MiB) read back exactly; bytes still held stay as they were
  // read after save_state replaces the file (a rename, never a write in place), and the next
  // load_state sees the new bytes.
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  const std::string dir = temp_dir("state-bytes");
  std::filesystem::create_directories(dir);
  FileSnapshotStore store(dir);
  auto none = store.load_state(4);
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  REQUIRE(store.save_state(4, "").ok());
  auto empty = store.load_state(4);
  REQUIRE(empty.ok());
  REQUIRE(empty->has_value());
  CHECK((*empty)->view().empty());
  auto random_bytes = [&](std::size_t n) {
    std::string b(n, '\0');
    for (char& c : b) c = static_cast<char>(rng.uniform(256));
    return b;
  };
  for (std::size_t n : {std::size_t{1}, std::size_t{4095}, std::size_t{4097}, std::size_t{100000}, std::size_t{3} << 20}) {
    const std::string bytes = random_bytes(n);
    REQUIRE(store.save_state(4, bytes).ok());
    auto got = store.load_state(4);
    REQUIRE(got.ok());
    REQUIRE(got->has_value());
    CHECK((*got)->view() == bytes);
    const std::string next = random_bytes(n / 2 + 1);
    REQUIRE(store.save_state(4, next).ok());
    CHECK((*got)->view() == bytes);  // the held mapping is of the replaced file
    auto again = store.load_state(4);
    REQUIRE(again.ok());
    CHECK((*again)->view() == next);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("a prefetched snapshot is the one load returns; a damaged or unwanted one is refused or dropped",
          "[node][snapshot]") {
  // Proves FileSnapshotStore::prefetch (D64): load() after a prefetch returns the index read on
  // the prefetch's thread, with the room it asked for; a damaged file prefetched is refused by
  // load() with the same typed status as a direct load (the node then rebuilds, as the corrupt
  // snapshot test above shows); a load for other parameters drops the prefetch and reads the file
  // again (kParameterMismatch); a prefetch nobody loads is joined by the store's destructor.
  const std::string dir = temp_dir("prefetch");
  std::filesystem::create_directories(dir);
  index::IndexParams p;
  p.dimension = 4;
  p.m = 8;
  p.ef_construction = 32;
  p.initial_capacity = 1;
  Rng rng(9);
  {
    auto idx = std::move(index::HnswIndex::create(p)).value();
    for (std::uint64_t label = 1; label <= 50; ++label) {
      std::vector<float> v(4);
      for (float& x : v) x = rng.uniform_float(-1.0f, 1.0f);
      REQUIRE(idx->add(label, v).ok());
    }
    FileSnapshotStore store(dir);
    REQUIRE(store.save(1, *idx, 7).ok());
  }
  {
    FileSnapshotStore store(dir);
    store.prefetch(1, p, {}, nullptr, 10);
    auto got = store.load(1, p, {}, nullptr, 10);
    REQUIRE(got.ok());
    REQUIRE(got->has_value());
    index::HnswIndex& idx = *(*got)->index;
    CHECK((*got)->covered_position == 7);
    CHECK(idx.size() == 50);
    const std::size_t bytes = idx.memory().vector_bytes;
    for (std::uint64_t label = 51; label <= 60; ++label) REQUIRE(idx.add(label, std::vector<float>{0.1f, 0.2f, 0.3f, 0.4f}).ok());
    CHECK(idx.memory().vector_bytes == bytes);  // the spare room was there: no growth
    // Other parameters than the prefetch's: dropped, the file is read for them and refused.
    index::IndexParams other = p;
    other.m = 12;
    store.prefetch(1, p, {}, nullptr, 0);
    auto mismatched = store.load(1, other, {}, nullptr, 0);
    REQUIRE_FALSE(mismatched.ok());
    CHECK(mismatched.status().detail() == Detail::kParameterMismatch);
    // Prefetched and never loaded: the destructor waits for the thread.
    store.prefetch(1, p, {}, nullptr, 0);
  }
  {
    std::FILE* f = std::fopen((dir + "/collection-1.hnsw").c_str(), "r+b");
    REQUIRE(f != nullptr);
    std::fseek(f, 200, SEEK_SET);
    std::fputc(0x5a, f);
    std::fclose(f);
    FileSnapshotStore store(dir);
    store.prefetch(1, p, {}, nullptr, 0);
    auto damaged = store.load(1, p, {}, nullptr, 0);
    REQUIRE_FALSE(damaged.ok());
    CHECK(damaged.status().detail() == Detail::kChecksumMismatch);
  }
  std::filesystem::remove_all(dir);
}

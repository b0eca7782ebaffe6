// Proves that every commit LmdbStore acknowledges has reached the disk, by watching the real
// LMDB's system calls through the io_shim interposer (tests/store/io_shim.hpp), and that the
// check fires on environments opened without sync (MDB_NOSYNC, MDB_NOMETASYNC).
//
// For each acknowledged commit (commit() returned OK) the check requires:
//   1. the commit wrote a meta page (the new root; pages 0 and 1 of data.mdb);
//   2. when the first meta page write began, no byte written earlier was still unsynced (the
//      pages the new root points to were durable before the root);
//   3. when commit() returned, no byte written was unsynced (the meta page went through an
//      O_DSYNC descriptor, or a sync followed it);
//   4. the crash image (data.mdb as a power cut at that instant leaves it, every unsynced write
//      lost), opened by LMDB, holds every acknowledged key with its value and no deleted one.
// 1-3 make every crash state equal the durable image; 4 reads that image back.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io_shim.hpp"
#include "store_fixtures.hpp"

using namespace shoal;
using namespace shoal::store;
using namespace shoal::store::testing;

namespace {

std::uint64_t page_size() {
  const long p = ::sysconf(_SC_PAGESIZE);
  return p > 0 ? static_cast<std::uint64_t>(p) : 4096;
}

// What the check found over a run of commits.
struct Findings {
  std::vector<std::string> problems;
  std::uint64_t commits = 0;
  std::uint64_t syncs = 0;            // fsync/fdatasync calls on data.mdb
  std::uint64_t meta_writes = 0;
  std::uint64_t dsync_meta_writes = 0;
  std::uint64_t data_writes = 0;
  bool saw_dsync_descriptor = false;  // an O_DSYNC descriptor was opened on data.mdb
  void add(std::string p) {
    if (problems.size() < 20) problems.push_back(std::move(p));
  }
};

// Checks 1-3 over the events of one acknowledged commit.
void check_events(const std::vector<io_shim::Event>& events, std::uint64_t unsynced_after, Findings& f,
                  const std::string& label) {
  const std::uint64_t meta_end = 2 * page_size();
  bool meta_seen = false;
  for (const io_shim::Event& e : events) {
    if (e.kind == io_shim::Kind::kOpen && e.dsync) f.saw_dsync_descriptor = true;
    if (e.kind == io_shim::Kind::kSync) ++f.syncs;
    if (e.kind != io_shim::Kind::kWrite) continue;
    if (e.offset >= meta_end) {
      ++f.data_writes;
      continue;
    }
    ++f.meta_writes;
    if (e.dsync) ++f.dsync_meta_writes;
    if (!meta_seen && e.unsynced_before != 0) {
      f.add(label + ": meta page written while " + std::to_string(e.unsynced_before) +
            " bytes of earlier writes were not durable");
    }
    meta_seen = true;
  }
  if (!meta_seen) f.add(label + ": no meta page was written");
  if (unsynced_after != 0) {
    f.add(label + ": acknowledged with " + std::to_string(unsynced_after) + " bytes not durable");
  }
}

// Opens `image` (a data.mdb) read-only and returns the "records" database, or nullopt when LMDB
// cannot read it (an empty or torn file counts as having lost everything).
std::optional<std::map<std::string, std::string>> read_image(const std::string& image, const std::string& file) {
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(image.data(), static_cast<std::streamsize>(image.size()));
  }
  MDB_env* env = nullptr;
  if (mdb_env_create(&env) != 0) return std::nullopt;
  mdb_env_set_maxdbs(env, 16);
  std::optional<std::map<std::string, std::string>> out;
  if (mdb_env_open(env, file.c_str(), MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR, 0600) == 0) {
    MDB_txn* txn = nullptr;
    if (mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0) {
      MDB_dbi dbi;
      std::map<std::string, std::string> m;
      const int rc = mdb_dbi_open(txn, "records", 0, &dbi);
      if (rc == 0) {
        MDB_cursor* cur = nullptr;
        if (mdb_cursor_open(txn, dbi, &cur) == 0) {
          MDB_val k, v;
          for (int r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0; r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            m.emplace(std::string(static_cast<const char*>(k.mv_data), k.mv_size),
                      std::string(static_cast<const char*>(v.mv_data), v.mv_size));
          }
          mdb_cursor_close(cur);
        }
        out = std::move(m);
      } else if (rc == MDB_NOTFOUND) {
        out = std::map<std::string, std::string>{};
      }
      mdb_txn_abort(txn);
    }
  }
  mdb_env_close(env);
  std::remove(file.c_str());
  return out;
}

// Check 4: the crash image holds exactly the acknowledged records.
void check_image(const std::string& scratch, const std::map<std::string, std::string>& acked, Findings& f,
                 const std::string& label) {
  auto got = read_image(io_shim::durable_image(), scratch);
  if (!got) {
    f.add(label + ": the crash image does not open as an LMDB environment");
    return;
  }
  if (*got != acked) {
    std::size_t missing = 0, wrong = 0, extra = 0;
    for (const auto& [k, v] : acked) {
      auto it = got->find(k);
      if (it == got->end()) ++missing;
      else if (it->second != v) ++wrong;
    }
    for (const auto& [k, v] : *got) extra += acked.count(k) == 0 ? 1 : 0;
    f.add(label + ": the crash image differs from the acknowledged records (" + std::to_string(missing) +
          " missing, " + std::to_string(wrong) + " with old values, " + std::to_string(extra) + " deleted ones back)");
  }
}

// One step of the workload: puts and deletes applied to the model `acked` after the commit.
struct Step {
  std::vector<std::pair<std::string, std::string>> puts;
  std::vector<std::string> dels;
};

// 80 commits of 1..6 puts (values 100 B .. 9 KiB, so some span overflow pages) and some deletes.
std::vector<Step> workload() {
  std::vector<Step> steps;
  std::uint64_t x = 12345;
  auto next = [&] {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x >> 33;
  };
  for (int c = 0; c < 80; ++c) {
    Step s;
    const int n = 1 + static_cast<int>(next() % 6);
    for (int i = 0; i < n; ++i) {
      const std::string key = "k" + std::to_string(next() % 120);
      std::string value(100 + next() % 9000, static_cast<char>('a' + c % 26));
      value.replace(0, std::min<std::size_t>(value.size(), 8), std::to_string(c * 100 + i));
      s.puts.emplace_back(key, value);
    }
    if (c % 5 == 4) s.dels.push_back("k" + std::to_string(next() % 120));
    steps.push_back(std::move(s));
  }
  return steps;
}

void apply(const Step& s, std::map<std::string, std::string>& acked) {
  for (const auto& [k, v] : s.puts) acked[k] = v;
  for (const auto& k : s.dels) acked.erase(k);
}

// A raw LMDB environment with extra flags, named database "records" as LmdbStore's.
struct RawEnv {
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  RawEnv(const std::string& dir, unsigned flags) {
    REQUIRE(mdb_env_create(&env) == 0);
    REQUIRE(mdb_env_set_maxdbs(env, 8) == 0);
    REQUIRE(mdb_env_set_mapsize(env, std::size_t{64} << 20) == 0);
    REQUIRE(mdb_env_open(env, dir.c_str(), MDB_NOTLS | flags, 0600) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    REQUIRE(mdb_dbi_open(txn, "records", MDB_CREATE, &dbi) == 0);
    REQUIRE(mdb_txn_commit(txn) == 0);
  }
  ~RawEnv() { mdb_env_close(env); }
  int commit(const Step& s) {
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env, nullptr, 0, &txn);
    if (rc != 0) return rc;
    for (const auto& [k, v] : s.puts) {
      MDB_val kv{k.size(), const_cast<char*>(k.data())};
      MDB_val vv{v.size(), const_cast<char*>(v.data())};
      rc = mdb_put(txn, dbi, &kv, &vv, 0);
      if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
      }
    }
    for (const auto& k : s.dels) {
      MDB_val kv{k.size(), const_cast<char*>(k.data())};
      rc = mdb_del(txn, dbi, &kv, nullptr);
      if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return rc;
      }
    }
    return mdb_txn_commit(txn);
  }
};

// Runs the workload on a raw environment opened with `flags` under the shim.
Findings run_raw(unsigned flags) {
  TempDir dir;
  const std::string env_dir = dir.sub("env");
  REQUIRE(::mkdir(env_dir.c_str(), 0700) == 0);
  io_shim::watch(env_dir + "/data.mdb");
  Findings f;
  {
    RawEnv env(env_dir, flags);
    std::map<std::string, std::string> acked;
    int c = 0;
    for (const Step& s : workload()) {
      const std::size_t mark = io_shim::event_count();
      REQUIRE(env.commit(s) == 0);
      apply(s, acked);
      ++f.commits;
      const std::string label = "commit " + std::to_string(c++);
      check_events(io_shim::events_since(mark), io_shim::unsynced_bytes(), f, label);
      check_image(dir.sub("crash.mdb"), acked, f, label);
    }
  }
  io_shim::unwatch();
  return f;
}

}  // namespace

TEST_CASE("the io shim models the page cache: unsynced writes are lost, O_DSYNC and fdatasync are durable",
          "[store][durability]") {
  // The model the durability checks rely on, on a plain file.
  TempDir dir;
  const std::string file = dir.sub("data.mdb");
  io_shim::watch(file);
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, "abcd", 4, 0) == 4);
  CHECK(io_shim::unsynced_bytes() == 4);
  CHECK(io_shim::durable_image().empty());
  REQUIRE(::fdatasync(fd) == 0);
  CHECK(io_shim::unsynced_bytes() == 0);
  CHECK(io_shim::durable_image() == "abcd");
  REQUIRE(::pwrite(fd, "XY", 2, 6) == 2);  // not synced: lost by a crash
  const int dfd = ::open(file.c_str(), O_WRONLY | O_DSYNC);
  REQUIRE(dfd >= 0);
  REQUIRE(::pwrite(dfd, "Z", 1, 1) == 1);  // durable on return, for its own byte only
  CHECK(io_shim::durable_image() == "aZcd");
  CHECK(io_shim::unsynced_bytes() == 2);
  const auto events = io_shim::events_since(0);
  REQUIRE(events.size() == 6);  // open, write, sync, write, open (O_DSYNC), write
  CHECK(events[4].dsync);
  CHECK(events[5].dsync);
  CHECK(events[5].unsynced_before == 2);
  ::close(dfd);
  ::close(fd);
  io_shim::unwatch();
}

TEST_CASE("every commit LmdbStore acknowledges is durable before commit() returns",
          "[store][durability][lmdb]") {
  TempDir dir;
  LmdbStoreOptions o;
  o.path = dir.sub("env");
  // A small map, so commits also grow it (mdb_env_set_mapsize, a larger mapsize in the meta page).
  o.map_size_initial_bytes = std::uint64_t{64} << 10;
  REQUIRE(::mkdir(o.path.c_str(), 0700) == 0);
  io_shim::watch(o.path + "/data.mdb");
  Findings f;
  std::uint64_t grows = 0;
  {
    auto opened = LmdbStore::open(o);
    REQUIRE(opened.ok());
    auto s = std::move(opened).value();
    std::map<std::string, std::string> acked;
    int c = 0;
    for (const Step& step : workload()) {
      const std::size_t mark = io_shim::event_count();
      auto w = s->begin_write();
      REQUIRE(w.ok());
      for (const auto& [k, v] : step.puts) REQUIRE((*w)->put(Table::kRecords, k, v).ok());
      for (const auto& k : step.dels) REQUIRE((*w)->del(Table::kRecords, k).ok());
      REQUIRE((*w)->commit().ok());  // acknowledged
      apply(step, acked);
      ++f.commits;
      const std::string label = "commit " + std::to_string(c++);
      check_events(io_shim::events_since(mark), io_shim::unsynced_bytes(), f, label);
      check_image(dir.sub("crash.mdb"), acked, f, label);
    }
    grows = s->grow_count();
  }
  // The descriptors were opened by LmdbStore::open, before the first commit's mark.
  for (const io_shim::Event& e : io_shim::events_since(0)) {
    if (e.kind == io_shim::Kind::kOpen && e.dsync) f.saw_dsync_descriptor = true;
  }
  io_shim::unwatch();
  INFO("commits=" << f.commits << " syncs=" << f.syncs << " meta_writes=" << f.meta_writes
                  << " dsync_meta_writes=" << f.dsync_meta_writes << " data_writes=" << f.data_writes
                  << " map_grows=" << grows);
  for (const auto& p : f.problems) UNSCOPED_INFO(p);
  CHECK(f.problems.empty());
  CHECK(f.commits == 80);
  CHECK(grows > 0);                  // the growth path was exercised
  CHECK(f.saw_dsync_descriptor);     // LMDB 0.9's meta descriptor
  CHECK(f.dsync_meta_writes == f.meta_writes);
  CHECK(f.syncs >= f.commits);       // one fdatasync of the data pages per commit
}

TEST_CASE("the durability check fires on an environment opened with MDB_NOSYNC or MDB_NOMETASYNC",
          "[store][durability][lmdb]") {
  SECTION("default flags pass (the raw environment is a fair comparison)") {
    const Findings f = run_raw(0);
    for (const auto& p : f.problems) UNSCOPED_INFO(p);
    CHECK(f.problems.empty());
  }
  SECTION("MDB_NOSYNC: neither data nor meta pages are synced") {
    const Findings f = run_raw(MDB_NOSYNC);
    INFO("problems=" << f.problems.size() << " first: " << (f.problems.empty() ? "" : f.problems[0]));
    CHECK(!f.problems.empty());
    CHECK(f.syncs == 0);
    bool lost = false;
    for (const auto& p : f.problems) lost = lost || p.find("crash image") != std::string::npos;
    CHECK(lost);  // and a crash really loses acknowledged commits
  }
  SECTION("MDB_NOMETASYNC: data pages are synced, the meta page is not") {
    const Findings f = run_raw(MDB_NOMETASYNC);
    INFO("problems=" << f.problems.size() << " first: " << (f.problems.empty() ? "" : f.problems[0]));
    CHECK(!f.problems.empty());
    CHECK(f.dsync_meta_writes == 0);
    bool late_meta = false, lost = false;
    for (const auto& p : f.problems) {
      late_meta = late_meta || p.find("not durable") != std::string::npos;
      lost = lost || p.find("crash image") != std::string::npos;
    }
    CHECK(late_meta);
    CHECK(lost);
  }
}

// Proves LmdbStore's own guarantees beyond the shared contract: the map grows from a tiny size to
// hold 50 MiB (across transactions and inside one), a configured maximum gives kMapFull with
// prior data readable and the directory reopening cleanly, growth waits for readers and gives up
// with kMapFull when one stays open, schema and file-format mismatches are typed errors, stale
// reader slots of a killed process are cleared at open, read transactions move across threads
// while a second writer blocks, and a schema version 1 file (written here with raw LMDB, six
// tables) is upgraded to version 3 at open with its data kept and empty vectors and index_dirty
// tables.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include <cstdio>
#include <fstream>
#include <thread>

#include "store_fixtures.hpp"

using namespace shoal;
using namespace shoal::store;
using namespace shoal::store::testing;

namespace {
std::unique_ptr<LmdbStore> must_open(const LmdbStoreOptions& o) {
  auto r = LmdbStore::open(o);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  return std::move(r).value();
}
std::string value_for(int batch, int i) {
  std::string v(4096, static_cast<char>('a' + (batch + i) % 26));
  v.replace(0, 12, std::to_string(batch * 1000 + i));
  return v;
}
// A store in `dir` whose map starts at 1 MiB, so that tests grow it.
LmdbStoreOptions one_mib_map(TempDir& dir) {
  LmdbStoreOptions o;
  o.path = dir.sub("env");
  o.map_size_initial_bytes = std::uint64_t{1} << 20;
  return o;
}
}  // namespace

TEST_CASE("the map grows from 1 MiB to hold 50 MiB written in many transactions",
          "[store][lmdb]") {
  TempDir dir;
  const LmdbStoreOptions o = one_mib_map(dir);
  auto s = must_open(o);
  const std::uint64_t initial = s->map_size_bytes();
  CHECK(initial == (std::uint64_t{1} << 20));
  // 50 transactions of 256 x 4 KiB = 50 MiB of values.
  for (int b = 0; b < 50; ++b) {
    auto w = must_write(*s);
    for (int i = 0; i < 256; ++i) {
      must(w->put(Table::kRecords, encode_u64_be(static_cast<std::uint64_t>(b * 256 + i)),
                  value_for(b, i)));
    }
    must(w->commit());
  }
  CHECK(s->grow_count() > 0);
  CHECK(s->map_size_bytes() >= (std::uint64_t{50} << 20));
  // One transaction of 16 MiB grows the map in the middle of its own writes (replay).
  {
    auto w = must_write(*s);
    for (int i = 0; i < 4096; ++i) {
      must(w->put(Table::kDeltas, encode_u64_be(static_cast<std::uint64_t>(i)), value_for(99, i)));
    }
    must(w->commit());
  }
  s.reset();
  s = must_open(o);
  auto r = must_read(*s);
  CHECK(r->count(Table::kRecords).value() == 50 * 256);
  CHECK(r->count(Table::kDeltas).value() == 4096);
  CHECK(r->get(Table::kRecords, encode_u64_be(49 * 256 + 7)).value() == value_for(49, 7));
  CHECK(r->get(Table::kDeltas, encode_u64_be(4095)).value() == value_for(99, 4095));
}

TEST_CASE("a key written many times in one transaction that grows the map keeps its last write",
          "[store][lmdb]") {
  // The replay log keeps one op per key (the last), so a value rewritten in place many times (a
  // vector slab) is logged once: the replay after growth must still leave each key as the
  // transaction's last put or del of it said, including a put after a del and a del after a put.
  TempDir dir;
  const LmdbStoreOptions o = one_mib_map(dir);
  auto s = must_open(o);
  {
    auto w = must_write(*s);
    must(w->put(Table::kMeta, "gone", "x"));
    must(w->commit());
  }
  {
    auto w = must_write(*s);
    for (int i = 0; i < 2048; ++i) {
      must(w->put(Table::kVectorSlabs, "slab", value_for(7, i)));  // rewritten in place
      must(w->put(Table::kRecords, encode_u64_be(static_cast<std::uint64_t>(i)), value_for(8, i)));
      if (i == 10) must(w->del(Table::kMeta, "gone"));
      if (i == 20) must(w->del(Table::kMeta, "back"));
      if (i == 30) must(w->put(Table::kMeta, "back", "y"));
      if (i == 40) must(w->put(Table::kMeta, "later-gone", "z"));
      if (i == 50) must(w->del(Table::kMeta, "later-gone"));
    }
    must(w->commit());
  }
  CHECK(s->grow_count() > 0);
  auto r = must_read(*s);
  CHECK(r->get(Table::kVectorSlabs, "slab").value() == value_for(7, 2047));
  CHECK(r->count(Table::kRecords).value() == 2048);
  CHECK(r->get(Table::kRecords, encode_u64_be(1000)).value() == value_for(8, 1000));
  CHECK(r->get(Table::kMeta, "gone").status().code() == Code::kNotFound);
  CHECK(r->get(Table::kMeta, "back").value() == "y");
  CHECK(r->get(Table::kMeta, "later-gone").status().code() == Code::kNotFound);
}

TEST_CASE("a map at its configured maximum gives kMapFull and the directory reopens cleanly",
          "[store][lmdb]") {
  TempDir dir;
  LmdbStoreOptions o;
  o.path = dir.sub("env");
  o.map_size_initial_bytes = std::uint64_t{1} << 20;
  o.map_size_max_bytes = std::uint64_t{4} << 20;
  auto s = must_open(o);
  int committed = 0;
  Status failure;
  while (failure.ok() && committed < 10000) {
    auto w = must_write(*s);
    for (int i = 0; i < 16 && failure.ok(); ++i) {
      failure = w->put(Table::kRecords, encode_u64_be(static_cast<std::uint64_t>(committed * 16 + i)),
                       value_for(committed, i));
    }
    if (failure.ok()) failure = w->commit();
    if (failure.ok()) ++committed;
  }
  INFO(failure.to_string());
  CHECK(failure.detail() == Detail::kMapFull);
  CHECK(failure.message().find(std::to_string(o.map_size_max_bytes)) != std::string::npos);
  CHECK(s->map_size_bytes() == o.map_size_max_bytes);
  CHECK(committed > 0);
  {
    auto r = must_read(*s);
    CHECK(r->count(Table::kRecords).value() == static_cast<std::uint64_t>(committed) * 16);
  }
  s.reset();
  s = must_open(o);
  auto r = must_read(*s);
  CHECK(r->count(Table::kRecords).value() == static_cast<std::uint64_t>(committed) * 16);
  CHECK(r->get(Table::kRecords, encode_u64_be(0)).value() == value_for(0, 0));
}

TEST_CASE("growth waits for open readers and gives up with kMapFull if one stays open",
          "[store][lmdb]") {
  TempDir dir;
  LmdbStoreOptions o;
  o.path = dir.sub("env");
  o.map_size_initial_bytes = std::uint64_t{1} << 20;
  o.grow_wait = Duration::millis(20);
  auto s = must_open(o);
  auto reader = must_read(*s);  // held on this thread: growth cannot happen
  auto w = must_write(*s);
  Status failure;
  for (int i = 0; i < 1000 && failure.ok(); ++i) {
    failure = w->put(Table::kRecords, encode_u64_be(static_cast<std::uint64_t>(i)), value_for(0, i));
  }
  if (failure.ok()) failure = w->commit();
  INFO(failure.to_string());
  CHECK(failure.detail() == Detail::kMapFull);
  CHECK(failure.message().find("read transactions") != std::string::npos);
  w.reset();
  CHECK(reader->count(Table::kRecords).value() == 0);
  reader.reset();
  // With the reader gone, the same transaction succeeds by growing.
  w = must_write(*s);
  for (int i = 0; i < 1000; ++i) {
    must(w->put(Table::kRecords, encode_u64_be(static_cast<std::uint64_t>(i)), value_for(0, i)));
  }
  must(w->commit());
  CHECK(s->grow_count() > 0);
}

TEST_CASE("a schema version mismatch and a foreign file are typed errors at open",
          "[store][lmdb]") {
  TempDir dir;
  LmdbStoreOptions o;
  o.path = dir.sub("env");
  {
    auto s = must_open(o);
    auto w = must_write(*s);
    must(w->put(Table::kMeta, kSchemaVersionKey, std::string("\0\0\0\x2a", 4)));
    must(w->commit());
  }
  auto r = LmdbStore::open(o);
  REQUIRE(!r.ok());
  CHECK(r.status().detail() == Detail::kVersionMismatch);
  CHECK(r.status().message().find("42") != std::string::npos);
  CHECK(r.status().context() == o.path);

  LmdbStoreOptions bad;
  bad.path = dir.sub("garbage");
  std::filesystem::create_directories(bad.path);
  {
    std::ofstream f(bad.path + "/data.mdb", std::ios::binary);
    f << std::string(16384, 'G');
  }
  auto g = LmdbStore::open(bad);
  REQUIRE(!g.ok());
  INFO(g.status().to_string());
  CHECK(g.status().detail() == Detail::kBadMagic);

  LmdbStoreOptions empty_path;
  CHECK(LmdbStore::open(empty_path).status().detail() == Detail::kOutOfRange);
}

TEST_CASE("a schema version 1 store is upgraded to version 3 at open, keeping its data",
          "[store][lmdb]") {
  TempDir dir;
  LmdbStoreOptions o;
  o.path = dir.sub("env");
  std::filesystem::create_directories(o.path);
  {
    // Version 1's layout, as builds before the vectors table wrote it: six named tables.
    MDB_env* env = nullptr;
    REQUIRE(mdb_env_create(&env) == 0);
    REQUIRE(mdb_env_set_maxdbs(env, 8) == 0);
    REQUIRE(mdb_env_open(env, o.path.c_str(), MDB_NOTLS, 0600) == 0);
    MDB_txn* txn = nullptr;
    REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
    auto put = [&](const char* table, std::string key, std::string value) {
      MDB_dbi dbi = 0;
      REQUIRE(mdb_dbi_open(txn, table, MDB_CREATE, &dbi) == 0);
      MDB_val k{key.size(), key.data()};
      MDB_val v{value.size(), value.data()};
      REQUIRE(mdb_put(txn, dbi, &k, &v, 0) == 0);
    };
    for (const char* t : {"records", "contexts", "deltas", "catalogue", "peers"}) {
      MDB_dbi dbi = 0;
      REQUIRE(mdb_dbi_open(txn, t, MDB_CREATE, &dbi) == 0);
    }
    put("meta", std::string(kSchemaVersionKey), std::string("\0\0\0\x01", 4));
    put("records", "r1", "payload one");
    REQUIRE(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
  }
  {
    auto s = must_open(o);
    CHECK(s->upgraded_from() == 1);
    auto r = must_read(*s);
    CHECK(r->get(Table::kRecords, "r1").value() == "payload one");
    CHECK(r->get(Table::kMeta, kSchemaVersionKey).value() == std::string("\0\0\0\x07", 4));
    CHECK(r->count(Table::kVectors).value() == 0);
    CHECK(r->count(Table::kIndexDirty).value() == 0);
    CHECK(r->count(Table::kVectorSlabs).value() == 0);
    r.reset();
    auto w = must_write(*s);
    must(w->put(Table::kVectors, "v1", "vector bytes"));
    must(w->commit());
  }
  auto s = must_open(o);
  CHECK(s->upgraded_from() == 0);
  CHECK(must_read(*s)->get(Table::kVectors, "v1").value() == "vector bytes");
}

namespace {
// Forks a child that opens the store (and a read transaction if `with_reader`), reports ready
// on a pipe and waits to be killed. Returns its pid once it is ready.
pid_t spawn_holder(const LmdbStoreOptions& o, bool with_reader) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    auto r = LmdbStore::open(o);
    if (!r.ok()) ::_exit(2);
    std::unique_ptr<ReadTxn> txn;
    if (with_reader) {
      auto t = (*r)->begin_read();
      if (!t.ok()) ::_exit(3);
      txn = std::move(t).value();
    }
    const char ready = 'r';
    if (::write(fds[1], &ready, 1) != 1) ::_exit(4);
    while (true) ::pause();
  }
  ::close(fds[1]);
  char c = 0;
  REQUIRE(::read(fds[0], &c, 1) == 1);
  ::close(fds[0]);
  return pid;
}
void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
}
}  // namespace

TEST_CASE("open clears the reader slot of a process killed inside a read transaction",
          "[store][lmdb]") {
  TempDir dir;
  LmdbStoreOptions o;
  o.path = dir.sub("env");
  { auto s = must_open(o); }
  // A live process keeps the environment open, so the next open is not the first one (the first
  // opener resets the whole reader table anyway); a second process dies holding a reader slot.
  const pid_t holder = spawn_holder(o, false);
  const pid_t reader = spawn_holder(o, true);
  kill_and_reap(reader);
  {
    auto s = must_open(o);
    CHECK(s->stale_readers_cleared() == 1);
    auto w = must_write(*s);
    must(w->put(Table::kRecords, "after", "ok"));
    must(w->commit());
  }
  kill_and_reap(holder);
}

TEST_CASE("read transactions move across threads and a second writer waits its turn",
          "[store][lmdb]") {
  TempDir dir;
  LmdbStoreOptions o;
  o.path = dir.sub("env");
  auto s = must_open(o);
  auto w = must_write(*s);
  must(w->put(Table::kRecords, "k", "v1"));
  must(w->commit());
  w.reset();

  auto r = must_read(*s);
  std::string seen;
  std::thread t([&] { seen = r->get(Table::kRecords, "k").value_or(std::string("error")); });
  t.join();
  CHECK(seen == "v1");
  r.reset();  // released on another thread than the one using it: MDB_NOTLS allows it

  // The second writer blocks until the first commits; it then sees the first's write.
  w = must_write(*s);
  must(w->put(Table::kRecords, "k", "v2"));
  std::string second_saw;
  std::thread t2([&] {
    auto w2 = s->begin_write();
    if (!w2.ok()) return;
    second_saw = (*w2)->get(Table::kRecords, "k").value_or(std::string("missing"));
    (*w2)->abort();
  });
  must(w->commit());
  w.reset();
  t2.join();
  CHECK(second_saw == "v2");
}

TEST_CASE("reused read transactions see each later commit, survive map growth and never pin pages",
          "[store][lmdb]") {
  // begin_read renews reset transactions kept from earlier reads (D43). Proves: a renewed read
  // sees the newest commit, not the snapshot of the read it reuses; kept transactions do not hold
  // off growth (the map grows while eight of them are kept); and a kept transaction pins no
  // pages: rewriting the same keys many times does not grow the file as it would if an old
  // snapshot stayed readable.
  TempDir dir;
  const LmdbStoreOptions o = one_mib_map(dir);
  auto s = must_open(o);
  {
    // Eight concurrent reads, then all ended: eight transactions kept for reuse.
    std::vector<std::unique_ptr<ReadTxn>> reads;
    for (int i = 0; i < 8; ++i) reads.push_back(must_read(*s));
  }
  for (int b = 0; b < 24; ++b) {
    auto w = must_write(*s);
    for (int i = 0; i < 256; ++i) {
      must(w->put(Table::kRecords, encode_u64_be(static_cast<std::uint64_t>(b * 256 + i)), value_for(b, i)));
    }
    must(w->commit());
    auto r = must_read(*s);  // a renewed transaction
    CHECK(r->count(Table::kRecords).value() == static_cast<std::uint64_t>(b + 1) * 256);
    CHECK(r->get(Table::kRecords, encode_u64_be(static_cast<std::uint64_t>(b * 256 + 255))).value() ==
          value_for(b, 255));
  }
  CHECK(s->grow_count() > 0);
  // Rewrite the same 256 keys 64 times, a read begun and ended between writes each time. Were the
  // kept transactions' snapshots alive, LMDB could not reuse the pages they saw and the map
  // would keep growing; reset transactions free them, so it stays put.
  const std::uint64_t grown = s->grow_count();
  const std::uint64_t size = s->map_size_bytes();
  for (int round = 0; round < 64; ++round) {
    auto w = must_write(*s);
    for (int i = 0; i < 256; ++i) {
      must(w->put(Table::kRecords, encode_u64_be(static_cast<std::uint64_t>(i)), value_for(round, i)));
    }
    must(w->commit());
    auto r = must_read(*s);
    CHECK(r->get(Table::kRecords, encode_u64_be(3)).value() == value_for(round, 3));
  }
  CHECK(s->grow_count() == grown);
  CHECK(s->map_size_bytes() == size);
}

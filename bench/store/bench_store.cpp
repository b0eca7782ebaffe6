// bench_store: what durability costs through the Store, against raw LMDB on the same disk.
//
// Figures, measured in one run, in alternating rounds so disk drift hits both sides equally:
//   raw_commit_per_write  mdb_txn_begin + mdb_put + mdb_txn_commit (synced) per record
//   store_upsert          LmdbStore begin_write + put + commit per record (the same work)
//   store_upsert_3put     the node's real shape: record + dot counter + delta entry per commit
//   ratio                 store_upsert / raw_commit_per_write (goal >= 0.8)
//   ratio_median_round    the median over rounds of the same ratio (robust to disk noise)
//   store_batched_put     records per second in transactions of --batch records
// Usage: bench_store [--dir D] [--n N] [--rounds R] [--batch B] [--batched-n M] [--value-bytes V]
// D defaults to $TMPDIR or /tmp (the disk under test); everything created is removed.
#include <lmdb.h>
#include <stdlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "common/time.hpp"
#include "node/store/lmdb_store.hpp"

using namespace shoal;
using namespace shoal::store;

namespace {

struct Args {
  std::string dir;
  int n = 50;            // single-record upserts per round and side
  int rounds = 30;
  int batch = 1000;      // records per batched transaction
  int batched_n = 100000;
  std::size_t value_bytes = 256;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_store: %s\n", what.c_str());
  std::exit(1);
}
void check(const Status& s, const char* what) {
  if (!s.ok()) die(std::string(what) + ": " + s.to_string());
}
void check_rc(int rc, const char* what) {
  if (rc != 0) die(std::string(what) + ": " + mdb_strerror(rc));
}

std::string key_for(std::uint64_t i) { return "rec/" + encode_u64_be(i); }

// Raw LMDB, the anchor: the same flags as LmdbStore (MDB_NOTLS, synced commits), one named db.
struct Raw {
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  explicit Raw(const std::string& path) {
    std::filesystem::create_directories(path);
    check_rc(mdb_env_create(&env), "mdb_env_create");
    check_rc(mdb_env_set_maxdbs(env, 8), "maxdbs");
    check_rc(mdb_env_set_mapsize(env, std::size_t{1} << 30), "mapsize");
    check_rc(mdb_env_open(env, path.c_str(), MDB_NOTLS, 0600), "mdb_env_open");
    MDB_txn* txn = nullptr;
    check_rc(mdb_txn_begin(env, nullptr, 0, &txn), "begin");
    check_rc(mdb_dbi_open(txn, "records", MDB_CREATE, &dbi), "dbi");
    check_rc(mdb_txn_commit(txn), "commit");
  }
  ~Raw() { mdb_env_close(env); }
  void upsert(std::uint64_t i, const std::string& value) {
    const std::string k = key_for(i);
    MDB_txn* txn = nullptr;
    check_rc(mdb_txn_begin(env, nullptr, 0, &txn), "begin");
    MDB_val kv{k.size(), const_cast<char*>(k.data())};
    MDB_val vv{value.size(), const_cast<char*>(value.data())};
    check_rc(mdb_put(txn, dbi, &kv, &vv, 0), "mdb_put");
    check_rc(mdb_txn_commit(txn), "mdb_txn_commit");
  }
};

double per_second(int ops, Duration d) { return static_cast<double>(ops) / d.seconds_f(); }

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (const char* t = std::getenv("TMPDIR")) a.dir = t;
  if (a.dir.empty()) a.dir = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--dir") a.dir = v;
    else if (k == "--n") a.n = std::atoi(v);
    else if (k == "--rounds") a.rounds = std::atoi(v);
    else if (k == "--batch") a.batch = std::atoi(v);
    else if (k == "--batched-n") a.batched_n = std::atoi(v);
    else if (k == "--value-bytes") a.value_bytes = static_cast<std::size_t>(std::atol(v));
    else die("unknown argument " + k);
  }
  std::string tmpl = a.dir + "/shoal-bench-store-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) die("mkdtemp in " + a.dir + " failed");
  const std::string root = tmpl;

  Rng rng(1);
  std::string value(a.value_bytes, '\0');
  for (auto& c : value) c = static_cast<char>(rng.uniform(256));

  Duration raw_t, store_t, store3_t;
  // Per-round store/raw rate ratios: their median resists bursts of sync latency from other
  // processes sharing the disk.
  std::vector<double> round_ratios;
  {
    Raw raw(root + "/raw");
    LmdbStoreOptions o;
    o.path = root + "/store";
    auto opened = LmdbStore::open(o);
    check(opened.status(), "open");
    LmdbStore& s = **opened;
    std::uint64_t next = 0;
    for (int r = 0; r < a.rounds; ++r) {
      Duration raw_round, store_round;
      auto run_raw = [&] {
        MonoTime t0 = now_mono();
        for (int i = 0; i < a.n; ++i) raw.upsert(next + static_cast<std::uint64_t>(i), value);
        raw_round = now_mono() - t0;
        raw_t += raw_round;
      };
      auto run_store = [&] {
        MonoTime t0 = now_mono();
        for (int i = 0; i < a.n; ++i) {
          auto w = s.begin_write();
          check(w.status(), "begin_write");
          check((*w)->put(Table::kRecords, key_for(next + static_cast<std::uint64_t>(i)), value),
                "put");
          check((*w)->commit(), "commit");
        }
        store_round = now_mono() - t0;
        store_t += store_round;
      };
      // Alternate which side goes first, so drift in the disk's sync latency hits both alike.
      if (r % 2 == 0) {
        run_raw();
        run_store();
      } else {
        run_store();
        run_raw();
      }
      round_ratios.push_back(raw_round.seconds_f() / store_round.seconds_f());
      // New keys too (a distinct range), so every figure appends to its files alike.
      MonoTime t2 = now_mono();
      for (int i = 0; i < a.n; ++i) {
        const std::uint64_t seq = (std::uint64_t{1} << 40) + next + static_cast<std::uint64_t>(i);
        auto w = s.begin_write();
        check(w.status(), "begin_write");
        check((*w)->put(Table::kRecords, key_for(seq), value), "put");
        check((*w)->put(Table::kMeta, "dot_counter", encode_u64_be(seq)), "put");
        check((*w)->put(Table::kDeltas, encode_u64_be(seq), value), "put");
        check((*w)->commit(), "commit");
      }
      store3_t += now_mono() - t2;
      next += static_cast<std::uint64_t>(a.n);
    }
  }
  const int single_ops = a.n * a.rounds;
  const double raw_rate = per_second(single_ops, raw_t);
  const double store_rate = per_second(single_ops, store_t);
  const double store3_rate = per_second(single_ops, store3_t);
  const double ratio = store_rate / raw_rate;
  std::sort(round_ratios.begin(), round_ratios.end());
  const double median_ratio = round_ratios[round_ratios.size() / 2];

  double batched_rate = 0;
  {
    LmdbStoreOptions o;
    o.path = root + "/batched";
    auto opened = LmdbStore::open(o);
    check(opened.status(), "open");
    LmdbStore& s = **opened;
    MonoTime t0 = now_mono();
    int done = 0;
    while (done < a.batched_n) {
      auto w = s.begin_write();
      check(w.status(), "begin_write");
      for (int i = 0; i < a.batch && done < a.batched_n; ++i, ++done) {
        check((*w)->put(Table::kRecords, key_for(static_cast<std::uint64_t>(done)), value), "put");
      }
      check((*w)->commit(), "commit");
    }
    batched_rate = per_second(a.batched_n, now_mono() - t0);
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);

  std::printf("bench_store: dir=%s value_bytes=%zu n=%d rounds=%d batch=%d batched_n=%d\n",
              a.dir.c_str(), a.value_bytes, a.n, a.rounds, a.batch, a.batched_n);
  std::printf("%-24s %14s\n", "figure", "value");
  std::printf("%-24s %14.0f ops/s\n", "raw_commit_per_write", raw_rate);
  std::printf("%-24s %14.0f ops/s\n", "store_upsert", store_rate);
  std::printf("%-24s %14.0f ops/s\n", "store_upsert_3put", store3_rate);
  std::printf("%-24s %14.3f x (goal >= 0.8)\n", "ratio", ratio);
  std::printf("%-24s %14.3f x (median of %d rounds)\n", "ratio_median_round", median_ratio,
              a.rounds);
  std::printf("%-24s %14.0f records/s\n", "store_batched_put", batched_rate);
  std::printf("BENCH store raw_commit_per_write_ops_per_s=%.1f\n", raw_rate);
  std::printf("BENCH store store_upsert_ops_per_s=%.1f\n", store_rate);
  std::printf("BENCH store store_upsert_3put_ops_per_s=%.1f\n", store3_rate);
  std::printf("BENCH store upsert_ratio=%.4f goal=0.8 pass=%d\n", ratio, ratio >= 0.8 ? 1 : 0);
  std::printf("BENCH store upsert_ratio_median_round=%.4f rounds=%d\n", median_ratio, a.rounds);
  std::printf("BENCH store batched_put_records_per_s=%.1f batch=%d\n", batched_rate, a.batch);
  return 0;
}

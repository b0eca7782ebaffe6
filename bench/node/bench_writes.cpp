// bench_writes: durable writes through the C API (issue 16), against raw LMDB in the same run.
//
//   bench_writes DATASET_DIR [--quick] [--work DIR]
//
// A fresh data directory gets Fashion-MNIST's training images (784-d floats; 60,000, or 10,000
// with --quick) through shoal_upsert_batch into a collection created with the defaults, and is
// reopened (so the index queue starts empty). The raw LMDB anchor is an environment pre-filled
// with as many values of the same size, written one key per synced commit (mdb_txn_commit, no
// MDB_NOSYNC), on the same disk.
// 1. Durable single upserts (shoal_upsert, one thread) vs the raw commit-per-write loop, in
//    alternating rounds of 25 writes (the disk's sync latency drifts), 600 writes each (1,000
//    without --quick). Goal: >= 0.8x. Also the spread of the per-round ratios.
// 2. 8 writer threads of durable single upserts: acknowledged writes per second vs the raw
//    loop's rate, in alternating rounds (goal: >= 5x), with raw LMDB on 8 threads (one commit
//    per write) for context, and the writes one group commit covered on average (shoal_stats_json's
//    "write_groups": at most 8 here, one outstanding write per thread).
// 3. Search QPS while writing: one thread of shoal_search (k=10, the default ef) alone, then
//    while 8 threads write, with the writes per second reached meanwhile.
// Machine-readable lines start with "writes ".
#include <lmdb.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "bench/common/bench_util.hpp"
#include "bench/common/capi_stats.hpp"
#include "common/time.hpp"
#include "shoal.h"

using namespace shoal;

namespace {

constexpr std::size_t kK = 10;
constexpr unsigned kWriters = 8;

void die(const char* what, int rc, const shoal_error& err) {
  std::fprintf(stderr, "bench_writes: %s failed (0x%x): %s\n", what, rc, err.message);
  std::exit(1);
}

double seconds_since(MonoTime t0) { return (now_mono() - t0).seconds_f(); }

// Raw LMDB anchor: a fresh environment pre-filled with `prefill` values of the same size in one
// transaction (so its B-tree is as deep as the node's), then single-key durable commits.
class RawLmdb {
 public:
  RawLmdb(const std::string& dir, std::size_t prefill, const std::string& value) : dir_(dir), value_(value) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    mdb_env_create(&env_);
    mdb_env_set_mapsize(env_, std::size_t{4} << 30);
    if (mdb_env_open(env_, dir.c_str(), 0, 0644) != 0) {
      std::fprintf(stderr, "bench_writes: raw lmdb open failed\n");
      std::exit(1);
    }
    MDB_txn* txn = nullptr;
    mdb_txn_begin(env_, nullptr, 0, &txn);
    mdb_dbi_open(txn, nullptr, 0, &dbi_);
    for (std::size_t i = 0; i < prefill; ++i) put(txn, "img-" + std::to_string(i));
    if (mdb_txn_commit(txn) != 0) std::exit(1);
  }
  ~RawLmdb() {
    mdb_env_close(env_);
    std::filesystem::remove_all(dir_);
  }
  // One key, one synced commit. LMDB serialises write transactions itself, so threads may call it.
  void commit_one(const std::string& key) {
    MDB_txn* txn = nullptr;
    if (mdb_txn_begin(env_, nullptr, 0, &txn) != 0) std::exit(1);
    put(txn, key);
    if (mdb_txn_commit(txn) != 0) std::exit(1);
  }

 private:
  void put(MDB_txn* txn, const std::string& key) {
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{value_.size(), const_cast<char*>(value_.data())};
    if (mdb_put(txn, dbi_, &k, &v, 0) != 0) std::exit(1);
  }
  std::string dir_, value_;
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
};

// `threads` threads each upsert `each` single records "<prefix><t>-<i>" through the C API until
// done or `stop` is set (when not null); returns the writes acknowledged.
std::size_t write_threads(shoal_db* db, const io::VectorSet& base, const std::string& prefix, unsigned threads,
                          std::size_t each, const std::atomic<bool>* stop) {
  std::atomic<std::size_t> done{0};
  std::vector<std::thread> ts;
  for (unsigned t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      shoal_error err;
      for (std::size_t i = 0; stop != nullptr ? !stop->load() : i < each; ++i) {
        const std::string id = prefix + std::to_string(t) + "-" + std::to_string(i);
        const int rc = shoal_upsert(db, "fm", id.c_str(), id.size(), base.row((t * 7919 + i) % base.count),
                                    base.dimension, nullptr, "fashion-mnist-pixels", &err);
        if (rc != SHOAL_OK) die("upsert", rc, err);
        ++done;
      }
    });
  }
  for (auto& t : ts) t.join();
  return done.load();
}

}  // namespace

int main(int argc, char** argv) {
  std::string dataset, work = (std::filesystem::temp_directory_path() / "shoal-bench-writes").string();
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--work" && i + 1 < argc) work = argv[++i];
    else if (dataset.empty() && a[0] != '-') dataset = a;
    else {
      std::fprintf(stderr, "usage: bench_writes DATASET_DIR [--quick] [--work DIR]\n");
      return 2;
    }
  }
  if (dataset.empty()) dataset = "/usr/share/datasets/fashion-mnist";
  auto data = bench::load_fashion_mnist(dataset, quick ? 10000 : 0, quick ? 1000 : 2000);
  if (!data.ok()) {
    std::fprintf(stderr, "bench_writes: %s\n", data.status().to_string().c_str());
    return 1;
  }
  const auto& base = data->base;
  const auto& queries = data->queries;
  const std::size_t dim = base.dimension;
  const std::string node_dir = work + "/node";
  std::filesystem::remove_all(work);
  std::printf("Shoal durable writes on Fashion-MNIST: %zu x %zu-d pre-filled, C API, default settings, data in %s\n",
              base.count, dim, work.c_str());

  shoal_error err;
  shoal_db* db = nullptr;
  int rc = shoal_open(node_dir.c_str(), nullptr, &db, &err);
  if (rc != SHOAL_OK) die("shoal_open", rc, err);
  rc = shoal_collection_create(db, "fm", static_cast<uint32_t>(dim), SHOAL_METRIC_L2, &err);
  if (rc != SHOAL_OK) die("create", rc, err);
  std::vector<std::string> ids(base.count);
  for (std::size_t i = 0; i < base.count; ++i) ids[i] = "img-" + std::to_string(i);
  for (std::size_t i = 0; i < base.count; i += 1000) {
    const std::size_t n = std::min<std::size_t>(1000, base.count - i);
    std::vector<const char*> id_ptrs(n);
    std::vector<size_t> id_lens(n);
    for (std::size_t j = 0; j < n; ++j) {
      id_ptrs[j] = ids[i + j].c_str();
      id_lens[j] = ids[i + j].size();
    }
    rc = shoal_upsert_batch(db, "fm", n, id_ptrs.data(), id_lens.data(), base.row(i), dim, nullptr,
                            "fashion-mnist-pixels", &err);
    if (rc != SHOAL_OK) die("upsert_batch", rc, err);
  }
  shoal_close(db);  // drains the index queue and writes the snapshot
  rc = shoal_open(node_dir.c_str(), nullptr, &db, &err);
  if (rc != SHOAL_OK) die("reopen", rc, err);
  RawLmdb raw(work + "/raw-lmdb", base.count, std::string(dim * 4 + 64, 'x'));

  // 1. Single durable upserts vs raw commit-per-write, in alternating rounds of kRoundWrites
  // each (the disk's sync latency drifts; many short rounds keep both loops on the same disk
  // state). The node's index thread inserts the writes meanwhile: the total stays below the
  // index queue's bound (4,096), so no write waits for the index.
  constexpr std::size_t kRoundWrites = 25;
  const std::size_t singles = quick ? 600 : 1000;
  const std::size_t rounds = singles / kRoundWrites;
  std::vector<double> node_round_s, raw_round_s;
  for (std::size_t round = 0; round < rounds; ++round) {
    const std::size_t lo = round * kRoundWrites, hi = lo + kRoundWrites;
    MonoTime t0 = now_mono();
    for (std::size_t i = lo; i < hi; ++i) {
      const std::string id = "single-" + std::to_string(i);
      rc = shoal_upsert(db, "fm", id.c_str(), id.size(), base.row(i), dim, nullptr, "fashion-mnist-pixels", &err);
      if (rc != SHOAL_OK) die("upsert", rc, err);
    }
    node_round_s.push_back(seconds_since(t0));
    t0 = now_mono();
    for (std::size_t i = lo; i < hi; ++i) raw.commit_one("single-" + std::to_string(i));
    raw_round_s.push_back(seconds_since(t0));
  }
  double node_s = 0, raw_s = 0;
  for (std::size_t r = 0; r < rounds; ++r) {
    node_s += node_round_s[r];
    raw_s += raw_round_s[r];
  }
  const bench::RoundRatio single = bench::round_ratio(node_round_s, raw_round_s);
  const double node_rate = static_cast<double>(rounds * kRoundWrites) / node_s;
  const double raw_rate = static_cast<double>(rounds * kRoundWrites) / raw_s;
  std::printf("\n1. durable single upserts, 1 thread: node %.0f/s, raw LMDB commit-per-write %.0f/s, ratio %.2fx "
              "(goal >= 0.8x); %zu rounds of %zu: per-round ratio %.2f-%.2f, median %.2f\n",
              node_rate, raw_rate, single.ratio, rounds, kRoundWrites, single.lowest, single.highest, single.median);
  std::printf("writes single node_per_s=%.0f raw_lmdb_per_s=%.0f ratio=%.3f round_median=%.3f\n", node_rate, raw_rate,
              single.ratio, single.median);

  // 2. Eight writer threads, each write acknowledged only once durable (group commit), in rounds
  // alternating with rounds of the raw single-thread loop (its rate is the anchor here).
  constexpr int kRounds = 5;
  const std::size_t each = quick ? 150 : 500;
  const std::size_t raw_each = singles / kRounds;
  double mt_s = 0, raw2_s = 0;
  std::size_t acked = 0;
  const bench::CapiWriteFigures groups_before = bench::capi_write_figures(db);
  MonoTime t0 = now_mono();
  for (int round = 0; round < kRounds; ++round) {
    t0 = now_mono();
    acked += write_threads(db, base, "mt" + std::to_string(round) + "-", kWriters, each / kRounds, nullptr);
    mt_s += seconds_since(t0);
    t0 = now_mono();
    for (std::size_t i = 0; i < raw_each; ++i) raw.commit_one("raw2-" + std::to_string(round) + "-" + std::to_string(i));
    raw2_s += seconds_since(t0);
  }
  const double mt_rate = static_cast<double>(acked) / mt_s;
  const bench::CapiWriteFigures groups_after = bench::capi_write_figures(db);
  const double per_sync = static_cast<double>(groups_after.writes - groups_before.writes) /
                          static_cast<double>(std::max(1ull, groups_after.groups - groups_before.groups));
  const double raw2_rate = static_cast<double>(raw_each * kRounds) / raw2_s;
  t0 = now_mono();
  {
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < kWriters; ++t) {
      ts.emplace_back([&, t] {
        for (std::size_t i = 0; i < each / 4; ++i) raw.commit_one("mt-" + std::to_string(t) + "-" + std::to_string(i));
      });
    }
    for (auto& t : ts) t.join();
  }
  const double raw_mt_rate = static_cast<double>(kWriters * (each / 4)) / seconds_since(t0);
  std::printf("2. %u writer threads: node %.0f acknowledged durable writes/s; raw LMDB commit-per-write %.0f/s in "
              "alternating rounds; ratio %.2fx (goal >= 5x); raw LMDB on %u threads, one commit per write: %.0f/s; "
              "%.2f writes per group commit\n",
              kWriters, mt_rate, raw2_rate, mt_rate / raw2_rate, kWriters, raw_mt_rate, per_sync);
  std::printf("writes threads=%u node_per_s=%.0f raw_lmdb_per_s=%.0f ratio=%.3f raw_lmdb_threads_per_s=%.0f "
              "writes_per_group=%.2f\n",
              kWriters, mt_rate, raw2_rate, mt_rate / raw2_rate, raw_mt_rate, per_sync);

  // 3. Search QPS alone and while 8 threads write.
  auto search_n = [&](std::size_t n) {
    std::vector<shoal_hit> hits(kK);
    shoal_error e;
    for (std::size_t i = 0; i < n; ++i) {
      size_t count = 0;
      const int r = shoal_search(db, "fm", queries.row(i % queries.count), dim, kK, 0, nullptr, hits.data(),
                                 hits.size(), &count, &e);
      if (r != SHOAL_OK) die("search", r, e);
    }
  };
  const std::size_t nq = quick ? 2000 : 5000;
  t0 = now_mono();
  search_n(nq);
  const double qps_alone = static_cast<double>(nq) / seconds_since(t0);
  std::atomic<bool> stop{false};
  std::size_t written = 0;
  std::thread writers([&] { written = write_threads(db, base, "sw-", kWriters, 0, &stop); });
  t0 = now_mono();
  search_n(nq);
  const double search_s = seconds_since(t0);
  stop = true;
  writers.join();
  const double qps_writing = static_cast<double>(nq) / search_s;
  std::printf("3. search (1 thread, k=%zu, default ef): alone %.0f qps; while %u threads write %.0f qps (%.2fx), "
              "with %.0f acknowledged writes/s meanwhile\n",
              kK, qps_alone, kWriters, qps_writing, qps_writing / qps_alone, static_cast<double>(written) / search_s);
  std::printf("writes search_while_writing qps_alone=%.0f qps_writing=%.0f ratio=%.3f writes_per_s=%.0f\n", qps_alone,
              qps_writing, qps_writing / qps_alone, static_cast<double>(written) / search_s);

  t0 = now_mono();
  shoal_close(db);
  std::printf("close (drains the index queue, writes the snapshot): %.2f s\n", seconds_since(t0));
  std::filesystem::remove_all(work);
  return 0;
}

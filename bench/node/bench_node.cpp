// bench_node: a local Shoal node on Fashion-MNIST, measured against its anchors in one run.
//
//   bench_node DATASET_DIR [--quick] [--work DIR]
//
// 1. Ingest: the 60,000 training images through the C API (shoal_upsert_batch, 1,000 per atomic
//    durable batch) into a fresh data directory, against building the same HNSW index alone
//    (HnswIndex::add_batch, 2 threads). Goal: ingest time <= 1.3x index build time.
// 2. Search: the 10,000 test images as queries, one at a time, through the C API (shoal_search)
//    and through the index directly, for an ef sweep: recall@10 against exact ground truth,
//    queries per second, p50/p99 latency. Goal: C API QPS >= 0.95x the index's.
// 3. Open: reopening the 60,000-record node from its index snapshot vs rebuilding the index.
// 4. Durable single-record upserts through the C API vs a raw LMDB commit-per-write loop writing
//    the same bytes on the same disk. Goal: >= 0.8x.
// 5. Concurrency: search QPS with 1 and 2 threads through the C API (goal >= 1.8x), and durable
//    single upserts alone vs under a 2-thread search load (goal: within 2x).
// Machine-readable lines start with "node "; --quick uses 10,000 base vectors and 1,000 queries.
#include <lmdb.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "bench/common/bench_util.hpp"
#include "common/time.hpp"
#include "index/hnsw_index.hpp"
#include "shoal.h"

using namespace shoal;

namespace {

constexpr std::size_t kK = 10;

void die(const char* what, int rc, const shoal_error& err) {
  std::fprintf(stderr, "bench_node: %s failed (0x%x): %s\n", what, rc, err.message);
  std::exit(1);
}

double seconds_since(MonoTime t0) { return (now_mono() - t0).seconds_f(); }

struct SweepPoint {
  double recall = 0, qps = 0, p50_us = 0, p99_us = 0;
};

template <typename SearchFn>
SweepPoint run_queries(const io::VectorSet& queries, const std::vector<std::uint32_t>& gt, SearchFn&& search) {
  std::vector<double> lat;
  lat.reserve(queries.count);
  double recall = 0;
  std::vector<std::uint64_t> found;
  const MonoTime start = now_mono();
  for (std::size_t q = 0; q < queries.count; ++q) {
    found.clear();
    const MonoTime t0 = now_mono();
    search(queries.row(q), found);
    lat.push_back(static_cast<double>((now_mono() - t0).ns()) / 1000.0);
    recall += bench::recall_at_k(found, gt.data() + q * kK, kK);
  }
  const double total = seconds_since(start);
  SweepPoint p;
  p.recall = recall / static_cast<double>(queries.count);
  p.qps = static_cast<double>(queries.count) / total;
  p.p50_us = bench::percentile(lat, 50);
  p.p99_us = bench::percentile(lat, 99);
  return p;
}

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
      std::fprintf(stderr, "bench_node: raw lmdb open failed\n");
      std::exit(1);
    }
    MDB_txn* txn = nullptr;
    mdb_txn_begin(env_, nullptr, 0, &txn);
    mdb_dbi_open(txn, nullptr, 0, &dbi_);
    for (std::size_t i = 0; i < prefill; ++i) put(txn, "img-" + std::to_string(i));
    mdb_txn_commit(txn);
  }
  ~RawLmdb() {
    mdb_env_close(env_);
    std::filesystem::remove_all(dir_);
  }
  void commit_one(const std::string& key) {
    MDB_txn* txn = nullptr;
    mdb_txn_begin(env_, nullptr, 0, &txn);
    put(txn, key);
    mdb_txn_commit(txn);
  }

 private:
  void put(MDB_txn* txn, const std::string& key) {
    MDB_val k{key.size(), const_cast<char*>(key.data())};
    MDB_val v{value_.size(), const_cast<char*>(value_.data())};
    mdb_put(txn, dbi_, &k, &v, 0);
  }
  std::string dir_, value_;
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::string dataset, work = (std::filesystem::temp_directory_path() / "shoal-bench-node").string();
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") quick = true;
    else if (a == "--work" && i + 1 < argc) work = argv[++i];
    else if (dataset.empty() && a[0] != '-') dataset = a;
    else {
      std::fprintf(stderr, "usage: bench_node DATASET_DIR [--quick] [--work DIR]\n");
      return 2;
    }
  }
  if (dataset.empty()) dataset = "/usr/share/datasets/fashion-mnist";
  auto data = bench::load_fashion_mnist(dataset, quick ? 10000 : 0, quick ? 1000 : 0);
  if (!data.ok()) {
    std::fprintf(stderr, "bench_node: %s\n", data.status().to_string().c_str());
    return 1;
  }
  const auto& base = data->base;
  const auto& queries = data->queries;
  const std::size_t dim = base.dimension;
  std::printf("Shoal local node on Fashion-MNIST: %zu base vectors, %zu queries, %zu-d, L2; kernels %s\n",
              base.count, queries.count, dim, index::isa_name(index::best_kernels().isa).data());
  const auto gt = bench::ground_truth_l2(base, queries, kK);
  const std::string node_dir = work + "/node";
  std::filesystem::remove_all(work);

  // 1. Ingest through the C API vs the index alone.
  shoal_error err;
  shoal_db* db = nullptr;
  int rc = shoal_open(node_dir.c_str(), nullptr, &db, &err);
  if (rc != SHOAL_OK) die("shoal_open", rc, err);
  rc = shoal_collection_create(db, "fm", static_cast<uint32_t>(dim), SHOAL_METRIC_L2, &err);
  if (rc != SHOAL_OK) die("create", rc, err);
  std::vector<std::string> ids(base.count);
  for (std::size_t i = 0; i < base.count; ++i) ids[i] = "img-" + std::to_string(i);
  constexpr std::size_t kBatch = 1000;
  MonoTime t0 = now_mono();
  for (std::size_t i = 0; i < base.count; i += kBatch) {
    const std::size_t n = std::min(kBatch, base.count - i);
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
  const double ingest_s = seconds_since(t0);

  index::IndexParams params;
  params.dimension = static_cast<std::uint32_t>(dim);
  params.metric = index::Metric::kL2;
  params.m = 16;
  params.ef_construction = 200;
  params.ef_search = 64;
  auto idx = index::HnswIndex::create(params);
  if (!idx.ok()) return 1;
  std::vector<std::uint64_t> labels(base.count);
  for (std::size_t i = 0; i < base.count; ++i) labels[i] = i;
  t0 = now_mono();
  if (!(*idx)->reserve(base.count).ok() || !(*idx)->add_batch(labels, base.data, 2).ok()) return 1;
  const double build_s = seconds_since(t0);
  std::printf("\ningest (durable batches of %zu): %.2f s = %.0f vectors/s; index build alone (2 threads): %.2f s; ratio %.2fx (goal <= 1.3x)\n",
              kBatch, ingest_s, static_cast<double>(base.count) / ingest_s, build_s, ingest_s / build_s);
  std::printf("node ingest vectors=%zu ingest_s=%.3f index_build_s=%.3f ratio=%.3f\n", base.count, ingest_s,
              build_s, ingest_s / build_s);

  // 2. Search sweep: C API vs index direct.
  std::printf("\n%-10s %5s %8s %9s %8s %8s\n", "path", "ef", "recall", "qps", "p50_us", "p99_us");
  std::vector<shoal_hit> hits(kK);
  for (std::uint32_t ef : {16u, 32u, 64u, 128u}) {
    SweepPoint api = run_queries(queries, gt, [&](const float* q, std::vector<std::uint64_t>& found) {
      size_t count = 0;
      int r = shoal_search(db, "fm", q, dim, kK, ef, nullptr, hits.data(), hits.size(), &count, &err);
      if (r != SHOAL_OK) die("search", r, err);
      for (size_t j = 0; j < count; ++j) found.push_back(std::strtoull(hits[j].id + 4, nullptr, 10));
    });
    SweepPoint direct = run_queries(queries, gt, [&](const float* q, std::vector<std::uint64_t>& found) {
      index::SearchRequest req;
      req.query = std::span<const float>(q, dim);
      req.k = kK;
      req.ef = ef;
      auto r = (*idx)->search(req);
      for (const auto& nb : r->neighbors) found.push_back(nb.label);
    });
    for (auto [name, p] : {std::pair{"capi", api}, std::pair{"index", direct}}) {
      std::printf("%-10s %5u %8.4f %9.0f %8.1f %8.1f\n", name, ef, p.recall, p.qps, p.p50_us, p.p99_us);
      std::printf("node search path=%s ef=%u recall=%.4f qps=%.0f p50_us=%.1f p99_us=%.1f\n", name, ef,
                  p.recall, p.qps, p.p50_us, p.p99_us);
    }
    std::printf("node search_ratio ef=%u capi_over_index=%.3f (goal >= 0.95)\n", ef, api.qps / direct.qps);
  }
  // 4. Durable single-record upserts vs raw LMDB commit-per-write on the same disk, in
  // alternating rounds (the disk's sync latency drifts), plus the index insert alone, which the
  // node also pays before it returns.
  const std::size_t singles = quick ? 100 : 300;
  constexpr int kRounds = 5;
  RawLmdb raw(work + "/raw-lmdb", base.count, std::string(dim * 4 + 64, 'x'));
  double node_s = 0, raw_s = 0, index_s = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::size_t lo = singles * round / kRounds, hi = singles * (round + 1) / kRounds;
    t0 = now_mono();
    for (std::size_t i = lo; i < hi; ++i) {
      std::string id = "single-" + std::to_string(i);
      rc = shoal_upsert(db, "fm", id.c_str(), id.size(), base.row(i), dim, nullptr, "fashion-mnist-pixels", &err);
      if (rc != SHOAL_OK) die("upsert", rc, err);
    }
    node_s += seconds_since(t0);
    t0 = now_mono();
    for (std::size_t i = lo; i < hi; ++i) raw.commit_one("single-" + std::to_string(i));
    raw_s += seconds_since(t0);
    t0 = now_mono();
    for (std::size_t i = lo; i < hi; ++i) {
      if (!(*idx)->add(base.count + i, std::span<const float>(base.row(i), dim)).ok()) return 1;
    }
    index_s += seconds_since(t0);
  }
  idx->reset();
  const double node_rate = static_cast<double>(singles) / node_s;
  const double raw_rate = static_cast<double>(singles) / raw_s;
  std::printf("\ndurable single upserts: node %.0f/s, raw LMDB commit-per-write %.0f/s, ratio %.2fx (goal >= 0.8x);\n"
              "  per write: node %.0f us = raw commit %.0f us + index insert %.0f us + %.0f us other\n",
              node_rate, raw_rate, node_rate / raw_rate, 1e6 * node_s / static_cast<double>(singles),
              1e6 * raw_s / static_cast<double>(singles), 1e6 * index_s / static_cast<double>(singles),
              1e6 * (node_s - raw_s - index_s) / static_cast<double>(singles));
  std::printf("node durable_upsert node_per_s=%.0f raw_lmdb_per_s=%.0f ratio=%.3f index_insert_us=%.0f\n", node_rate,
              raw_rate, node_rate / raw_rate, 1e6 * index_s / static_cast<double>(singles));

  // 5. Concurrency through the C API: search QPS with 1 and 2 threads (at ef=32; 2 threads must
  // give >= 1.8x one thread's QPS, as searches share the lock), and the rate of durable single
  // upserts alone and under that 2-thread search load (goal: within 2x, i.e. ratio >= 0.5).
  {
    constexpr std::uint32_t kEf = 32;
    const std::size_t per_thread = std::min<std::size_t>(queries.count, quick ? 1000 : 5000);
    auto search_some = [&](std::size_t offset, std::size_t n, const std::atomic<bool>* stop) {
      std::vector<shoal_hit> h(kK);
      shoal_error e{};
      std::size_t done = 0;
      for (std::size_t i = 0; stop != nullptr ? !stop->load() : i < n; ++i) {
        size_t count = 0;
        const float* q = queries.row((offset + i) % queries.count);
        if (shoal_search(db, "fm", q, dim, kK, kEf, nullptr, h.data(), h.size(), &count, &e) != SHOAL_OK) break;
        ++done;
      }
      return done;
    };
    t0 = now_mono();
    const std::size_t one = search_some(0, per_thread, nullptr);
    const double qps1 = static_cast<double>(one) / seconds_since(t0);
    std::size_t two_a = 0, two_b = 0;
    t0 = now_mono();
    {
      std::thread a([&] { two_a = search_some(0, per_thread, nullptr); });
      std::thread b([&] { two_b = search_some(per_thread, per_thread, nullptr); });
      a.join();
      b.join();
    }
    const double qps2 = static_cast<double>(two_a + two_b) / seconds_since(t0);
    std::printf("\nsearch threads (C API, ef=%u): 1 thread %.0f qps, 2 threads %.0f qps, ratio %.2fx (goal >= 1.8x)\n", kEf,
                qps1, qps2, qps2 / qps1);
    std::printf("node search_threads ef=%u qps1=%.0f qps2=%.0f ratio=%.3f\n", kEf, qps1, qps2, qps2 / qps1);
    const std::size_t writes = quick ? 50 : 100;
    auto write_some = [&](const char* prefix) {
      const MonoTime w0 = now_mono();
      for (std::size_t i = 0; i < writes; ++i) {
        std::string id = std::string(prefix) + std::to_string(i);
        int r = shoal_upsert(db, "fm", id.c_str(), id.size(), base.row(i), dim, nullptr, "fashion-mnist-pixels", &err);
        if (r != SHOAL_OK) die("upsert", r, err);
      }
      return static_cast<double>(writes) / seconds_since(w0);
    };
    const double alone = write_some("alone-");
    std::atomic<bool> stop{false};
    std::thread r1([&] { (void)search_some(0, 0, &stop); });
    std::thread r2([&] { (void)search_some(7, 0, &stop); });
    const double loaded = write_some("loaded-");
    stop = true;
    r1.join();
    r2.join();
    std::printf("durable single upserts: alone %.0f/s, under 2 searching threads %.0f/s, ratio %.2fx (goal >= 0.5x)\n",
                alone, loaded, loaded / alone);
    std::printf("node writes_under_search alone_per_s=%.0f loaded_per_s=%.0f ratio=%.3f\n", alone, loaded, loaded / alone);
  }

  // 3. Open time: from the snapshot written at close, then with the snapshot removed.
  shoal_close(db);
  t0 = now_mono();
  rc = shoal_open(node_dir.c_str(), nullptr, &db, &err);
  if (rc != SHOAL_OK) die("reopen", rc, err);
  const double open_snapshot_s = seconds_since(t0);
  shoal_close(db);
  std::filesystem::remove_all(node_dir + "/snapshots");
  t0 = now_mono();
  rc = shoal_open(node_dir.c_str(), nullptr, &db, &err);
  if (rc != SHOAL_OK) die("reopen", rc, err);
  const double open_rebuild_s = seconds_since(t0);
  uint64_t n = 0;
  (void)shoal_collection_count(db, "fm", &n, &err);
  shoal_close(db);
  std::printf("open %llu-record node: from snapshot %.2f s, rebuilding the index %.2f s\n",
              static_cast<unsigned long long>(n), open_snapshot_s, open_rebuild_s);
  std::printf("node open records=%llu snapshot_s=%.3f rebuild_s=%.3f\n", static_cast<unsigned long long>(n),
              open_snapshot_s, open_rebuild_s);
  std::printf("resident memory at end: %.0f MiB\n", static_cast<double>(bench::rss_bytes()) / (1 << 20));
  std::filesystem::remove_all(work);
  return 0;
}

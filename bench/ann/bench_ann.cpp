// bench/ann/bench_ann.cpp: Shoal's vector index against raw hnswlib 0.6.2 on Fashion-MNIST.
//
// One run, side by side, for each metric: L2 on the pixels, inner product and cosine on the
// unit-normalized vectors. Build both (M=16, efConstruction=200, 2 threads; hnswlib with the
// space users pick: L2Space for L2, InnerProductSpace for ip and cosine-on-normalized; Shoal with
// the parameters a collection gets by default: int8 graph vectors with a calibrated range and
// float re-ranking), then for an ef sweep measure recall@10 against exact ground truth,
// single-thread QPS with one query at a time, and p50/p99 latency; then (L2) Shoal's
// filtered-search recall at 1%, 10% and 50% selectivity. The C API path is bench/node's. Ground
// truth is computed once (exact, 2 threads) and cached in $XDG_CACHE_HOME/shoal (or
// ~/.cache/shoal), keyed by a hash of the data. Machine-readable lines:
//   ann metric=<l2|ip|cosine> contestant=<hnswlib|shoal[-float]> ef=<n> recall=<0..1> qps=<n> p50_us=<n> p99_us=<n>
// Usage: bench_ann <fashion-mnist dir> [--quick] [--metric l2|ip|cosine|all]

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "bench/ann/hnswlib_anchor.hpp"
#include "bench/common/bench_util.hpp"
#include "common/random.hpp"
#include "common/time.hpp"
#include "index/exact_index.hpp"
#include "index/hnsw_index.hpp"
#include "index/topk.hpp"

namespace {

using namespace shoal;
using namespace shoal::index;

constexpr std::size_t kK = 10;
constexpr unsigned kBuildThreads = 2;

struct Point {
  std::string metric;
  std::string contestant;
  std::size_t ef;
  double recall, qps, p50_us, p99_us;
};

template <class SearchFn>
Point measure(const std::string& metric, const std::string& name, std::size_t ef, const io::VectorSet& queries, std::size_t nq,
              const std::vector<std::uint32_t>& gt, SearchFn&& search) {
  std::vector<std::int64_t> lat(nq);
  std::uint64_t labels[kK];
  std::size_t hits = 0;
  // Warm-up: one pass over a few queries (page faults, caches, thread-local buffers).
  for (std::size_t q = 0; q < std::min<std::size_t>(nq, 200); ++q) search(queries.row(q), labels);
  const MonoTime start = now_mono();
  for (std::size_t q = 0; q < nq; ++q) {
    const MonoTime t0 = now_mono();
    const std::size_t n = search(queries.row(q), labels);
    lat[q] = (now_mono() - t0).ns();
    const std::uint32_t* truth = gt.data() + q * kK;
    for (std::size_t i = 0; i < n; ++i) {
      hits += std::find(truth, truth + kK, static_cast<std::uint32_t>(labels[i])) != truth + kK;
    }
  }
  const double secs = (now_mono() - start).seconds_f();
  std::sort(lat.begin(), lat.end());
  Point p;
  p.metric = metric;
  p.contestant = name;
  p.ef = ef;
  p.recall = static_cast<double>(hits) / static_cast<double>(nq * kK);
  p.qps = static_cast<double>(nq) / secs;
  p.p50_us = static_cast<double>(lat[nq / 2]) / 1000.0;
  p.p99_us = static_cast<double>(lat[std::min(nq - 1, nq * 99 / 100)]) / 1000.0;
  std::printf("ann metric=%s contestant=%s ef=%zu recall=%.4f qps=%.0f p50_us=%.1f p99_us=%.1f\n",
              p.metric.c_str(), p.contestant.c_str(), p.ef, p.recall, p.qps, p.p50_us, p.p99_us);
  std::fflush(stdout);
  return p;
}

io::VectorSet normalized(const io::VectorSet& in) {
  io::VectorSet out = in;
  for (std::size_t i = 0; i < out.count; ++i) {
    float* r = out.data.data() + i * out.dimension;
    double n2 = 0;
    for (std::size_t j = 0; j < out.dimension; ++j) n2 += static_cast<double>(r[j]) * r[j];
    const float inv = n2 > 0 ? static_cast<float>(1.0 / std::sqrt(n2)) : 1.0f;
    for (std::size_t j = 0; j < out.dimension; ++j) r[j] *= inv;
  }
  return out;
}

struct Build {
  std::string metric, name;
  double seconds;
  std::size_t rss_delta, index_bytes;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <fashion-mnist dir> [--quick] [--metric l2|ip|cosine|all]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  bool quick = false;
  std::string metric_arg = "all";
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    else if (std::strcmp(argv[i], "--metric") == 0 && i + 1 < argc) metric_arg = argv[++i];
  }

  auto data = bench::load_fashion_mnist(dir);
  if (!data.ok()) {
    std::fprintf(stderr, "cannot read Fashion-MNIST from %s: %s\n", dir.c_str(), data.status().to_string().c_str());
    return 1;
  }
  const std::size_t dim = data->base.dimension;
  const std::size_t nq = quick ? 2000 : data->queries.count;
  std::printf("data: %zu base x %zu, %zu queries (measured %zu); kernels %s (the ISA Shoal's kernels ran); "
              "M=16 efC=200; build threads %u; hnswlib -O3 -march=native\n",
              data->base.count, dim, data->queries.count, nq, std::string(isa_name(best_kernels().isa)).c_str(),
              kBuildThreads);
  const std::vector<std::size_t> efs = quick ? std::vector<std::size_t>{10, 16, 24, 40}
                                             : std::vector<std::size_t>{10, 12, 16, 20, 24, 32, 48, 64, 96};
  std::vector<Point> points;
  std::vector<Build> builds;
  std::unique_ptr<io::VectorSet> nbase, nqueries;

  struct MetricCase {
    const char* name;
    Metric metric;
    bench::HnswlibAnchor::Space space;
  };
  const MetricCase cases[] = {{"l2", Metric::kL2, bench::HnswlibAnchor::Space::kL2},
                              {"ip", Metric::kInnerProduct, bench::HnswlibAnchor::Space::kInnerProduct},
                              {"cosine", Metric::kCosine, bench::HnswlibAnchor::Space::kInnerProduct}};
  for (const MetricCase& mc : cases) {
    if (metric_arg != "all" && metric_arg != mc.name) continue;
    const bool l2 = mc.metric == Metric::kL2;
    if (!l2 && !nbase) {
      nbase = std::make_unique<io::VectorSet>(normalized(data->base));
      nqueries = std::make_unique<io::VectorSet>(normalized(data->queries));
    }
    const io::VectorSet& base = l2 ? data->base : *nbase;
    const io::VectorSet& queries = l2 ? data->queries : *nqueries;
    // For unit vectors the L2 ground truth is also the inner-product and cosine one.
    const auto gt = bench::ground_truth_l2(base, queries, kK);
    std::printf("\n[%s]%s\n", mc.name, l2 ? "" : " unit-normalized vectors");

    // --- raw hnswlib ---
    {
      const std::size_t rss0 = bench::rss_bytes();
      const MonoTime t0 = now_mono();
      bench::HnswlibAnchor anchor(dim, base.count, 16, 200, mc.space);
      anchor.build(base.data.data(), base.count, kBuildThreads);
      builds.push_back({mc.name, "hnswlib", (now_mono() - t0).seconds_f(), bench::rss_bytes() - rss0, anchor.memory_bytes()});
      for (std::size_t ef : efs) {
        anchor.set_ef(ef);
        points.push_back(measure(mc.name, "hnswlib", ef, queries, nq, gt, [&](const float* q, std::uint64_t* out) {
          return anchor.search(q, kK, out);
        }));
      }
    }

    // --- Shoal: the default int8 graph with float re-ranking, and (full runs) the float graph ---
    std::vector<std::uint64_t> labels(base.count);
    for (std::size_t i = 0; i < base.count; ++i) labels[i] = i;
    std::unique_ptr<HnswIndex> keep;
    for (bool sq8 : {true, false}) {
      if (quick && !sq8) break;
      const std::string name = sq8 ? "shoal" : "shoal-float";
      IndexParams p;
      p.dimension = static_cast<std::uint32_t>(dim);
      p.metric = mc.metric;
      p.m = 16;
      p.ef_construction = 200;
      p.initial_capacity = base.count;
      p.rebuild_deleted_share = 0.0;
      if (sq8) p.quantization = Quantization::kInt8;  // range: cosine [-1, 1], else calibrated
      const std::size_t rss0 = bench::rss_bytes();
      const MonoTime t0 = now_mono();
      auto created = HnswIndex::create(p);
      if (!created.ok()) {
        std::fprintf(stderr, "create: %s\n", created.status().to_string().c_str());
        return 1;
      }
      auto idx = std::move(created).value();
      if (Status s = idx->add_batch(labels, base.data, kBuildThreads); !s.ok()) {
        std::fprintf(stderr, "build: %s\n", s.to_string().c_str());
        return 1;
      }
      builds.push_back({mc.name, name, (now_mono() - t0).seconds_f(), bench::rss_bytes() - rss0, idx->memory().total()});
      if (sq8) {
        const auto r = idx->quant_range();
        std::printf("shoal int8 range [%g, %g]\n", r.first, r.second);
      }
      for (std::size_t ef : efs) {
        points.push_back(measure(mc.name, name, ef, queries, nq, gt, [&](const float* q, std::uint64_t* out) {
          SearchRequest req;
          req.query = std::span<const float>(q, dim);
          req.k = kK;
          req.ef = ef;
          auto r = idx->search(req);
          if (!r.ok()) {
            std::fprintf(stderr, "search: %s\n", r.status().to_string().c_str());
            std::exit(1);
          }
          for (std::size_t i = 0; i < r->neighbors.size(); ++i) out[i] = r->neighbors[i].label;
          return r->neighbors.size();
        }));
      }
      if (sq8) keep = std::move(idx);
    }
    if (!l2) continue;

    // --- Filtered search (L2, shoal): recall against an exact filtered scan ---
    std::printf("\nfiltered search (shoal, k=10, ef=32, caller passes predicate + matching set)\n");
    const KernelTable& kt = best_kernels();
    const std::size_t fq = quick ? 100 : 300;
    for (double sel : {0.01, 0.10, 0.50}) {
      const std::uint64_t modulus = static_cast<std::uint64_t>(1.0 / sel + 0.5);
      LabelPredicate pred = [modulus](std::uint64_t l) { return shoal::splitmix64(l) % modulus == 0; };
      std::vector<std::uint64_t> matching;
      for (std::uint64_t l = 0; l < base.count; ++l) {
        if (pred(l)) matching.push_back(l);
      }
      std::size_t hits = 0, total = 0, full = 0;
      std::uint64_t dists = 0;
      std::vector<std::int64_t> lat;
      std::string plan;
      for (std::size_t q = 0; q < fq; ++q) {
        shoal::index::detail::TopK top(kK);
        for (std::uint64_t l : matching) top.push(kt.l2sq(queries.row(q), base.row(l), dim), l);
        const auto truth = top.take_sorted();
        SearchRequest req;
        req.query = std::span<const float>(queries.row(q), dim);
        req.k = kK;
        req.ef = 32;
        req.filter = &pred;
        req.matching_labels = std::span<const std::uint64_t>(matching);
        const MonoTime t0 = now_mono();
        auto r = keep->search(req);
        lat.push_back((now_mono() - t0).ns());
        if (!r.ok()) return 1;
        plan = std::string(plan_name(r->plan));
        dists += r->distance_count;
        full += r->neighbors.size() == kK;
        std::set<std::uint64_t> t;
        for (const auto& n : truth) t.insert(n.label);
        for (const auto& n : r->neighbors) hits += t.count(n.label);
        total += truth.size();
      }
      std::sort(lat.begin(), lat.end());
      std::printf("ann-filter contestant=shoal selectivity=%.2f matching=%zu plan=%s recall=%.4f "
                  "full_k=%zu/%zu p50_us=%.1f distances=%.0f\n",
                  sel, matching.size(), plan.c_str(), static_cast<double>(hits) / static_cast<double>(total),
                  full, fq, static_cast<double>(lat[lat.size() / 2]) / 1000.0,
                  static_cast<double>(dists) / static_cast<double>(fq));
    }
  }

  // --- Human table ---
  std::printf("\n%-7s %-12s %5s %8s %9s %9s %9s\n", "metric", "contestant", "ef", "recall", "qps", "p50_us", "p99_us");
  for (const auto& p : points) {
    std::printf("%-7s %-12s %5zu %8.4f %9.0f %9.1f %9.1f\n", p.metric.c_str(), p.contestant.c_str(), p.ef, p.recall,
                p.qps, p.p50_us, p.p99_us);
  }
  std::printf("\n%-7s %-12s %10s %14s %14s\n", "metric", "build", "seconds", "rss_delta_MiB", "index_MiB");
  for (const auto& b : builds) {
    std::printf("%-7s %-12s %10.1f %14.1f %14.1f\n", b.metric.c_str(), b.name.c_str(), b.seconds,
                static_cast<double>(b.rss_delta) / 1048576.0, static_cast<double>(b.index_bytes) / 1048576.0);
  }
  // Target check: best QPS at recall >= 0.95 for each contestant, per metric.
  auto best_at = [&](const std::string& metric, const std::string& name) {
    const Point* best = nullptr;
    for (const auto& p : points) {
      if (p.metric == metric && p.contestant == name && p.recall >= 0.95 && (!best || p.qps > best->qps)) best = &p;
    }
    return best;
  };
  for (const MetricCase& mc : cases) {
    const Point* h = best_at(mc.name, "hnswlib");
    for (const char* name : {"shoal", "shoal-float"}) {
      const Point* s = best_at(mc.name, name);
      if (h && s) {
        std::printf("target %s (recall>=0.95): %s %.0f qps (ef=%zu, p99 %.1f us) vs hnswlib %.0f qps (ef=%zu): %.2fx\n",
                    mc.name, name, s->qps, s->ef, s->p99_us, h->qps, h->ef, s->qps / h->qps);
      }
    }
  }
  std::printf("peak rss: %.1f MiB\n", static_cast<double>(bench::rss_bytes()) / 1048576.0);
  return 0;
}

// Proves the int8 path that collections use by default (issue 16): for L2, inner product and
// cosine, an int8 graph with float re-ranking and the default range (calibrated from the data;
// for cosine, from the normalized vectors) keeps recall@10 >= 0.95 against brute force on
// seeded data, signed and non-negative (pixel-like, where inner-product codes must use all 8
// bits); the inner-product terms are right (code scores within the bound that the vectors'
// quantization steps imply of the float inner product); the calibrated range, the codes and
// their terms are a function of the set of vectors (the same whatever the insertion order
// or the batching); widening it re-encodes the stored codes (checked with no float vectors kept,
// where wrong codes would be visible); a snapshot carries the range; and a rebuild recomputes it
// from the live vectors. Each case prints its seed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "index/exact_index.hpp"
#include "index/hnsw_index.hpp"
#include "test_util.hpp"

using namespace shoal::index;
using shoal::Rng;

namespace {

IndexParams int8_params(std::uint32_t dim, Metric metric) {
  IndexParams p;
  p.dimension = dim;
  p.metric = metric;
  p.m = 16;
  p.ef_construction = 200;
  p.ef_search = 64;
  p.quantization = Quantization::kInt8;  // quant_min = quant_max = 0: the default range
  p.initial_capacity = 64;
  p.exact_below = 0;  // always exercise the graph
  return p;
}

std::unique_ptr<HnswIndex> make(const IndexParams& p) {
  auto r = HnswIndex::create(p);
  REQUIRE(r.ok());
  return std::move(r).value();
}

std::vector<Neighbor> search(const VectorIndex& idx, std::span<const float> q, std::size_t k, std::size_t ef) {
  SearchRequest req;
  req.query = q;
  req.k = k;
  req.ef = ef;
  auto r = idx.search(req);
  REQUIRE(r.ok());
  return r->neighbors;
}

void normalize_rows(std::vector<float>& v, std::size_t dim) {
  for (std::size_t i = 0; i < v.size(); i += dim) {
    double n2 = 0;
    for (std::size_t j = 0; j < dim; ++j) n2 += static_cast<double>(v[i + j]) * v[i + j];
    const float inv = static_cast<float>(1.0 / std::sqrt(n2));
    for (std::size_t j = 0; j < dim; ++j) v[i + j] *= inv;
  }
}

std::pair<float, float> min_max(const std::vector<float>& v) {
  const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  return {*lo, *hi};
}

// Pixel-like data: n x dim non-negative vectors, about a third of the components 0 (like
// Fashion-MNIST's background), the rest clustered.
std::vector<float> nonnegative_data(Rng& rng, std::size_t n, std::size_t dim) {
  auto v = testing::clustered_data(rng, n, dim);
  for (float& x : v) x = std::max(0.0f, x + 0.3f);
  return v;
}

double dot(const float* a, const float* b, std::size_t n) {
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

TEST_CASE("int8 with the default range keeps recall@10 >= 0.95 for l2, ip and cosine", "[index][property]") {
  const std::uint64_t seed = 20261130;
  INFO("seed " << seed);
  const std::size_t n = 3000, dim = 32, nq = 60;
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    INFO("metric " << metric_name(metric));
    Rng rng(seed);
    auto base = testing::clustered_data(rng, n, dim);
    auto queries = testing::clustered_data(rng, nq, dim);
    if (metric == Metric::kL2) {
      // Far from [-1, 1]: a fixed unit range would clamp everything; calibration must find it.
      for (float& x : base) x = 40.0f + 25.0f * x;
      for (float& x : queries) x = 40.0f + 25.0f * x;
    } else if (metric == Metric::kInnerProduct) {
      // Inner product on unit vectors, as the benchmark runs it.
      normalize_rows(base, dim);
      normalize_rows(queries, dim);
    }
    IndexParams p = int8_params(dim, metric);
    auto idx = make(p);
    auto exact = ExactIndex::create(p);
    REQUIRE(exact.ok());
    std::vector<std::uint64_t> labels(n);
    std::iota(labels.begin(), labels.end(), 1);
    REQUIRE(idx->add_batch(labels, base, 1).ok());
    for (std::size_t i = 0; i < n; ++i) {
      REQUIRE((*exact)->add(labels[i], std::span<const float>(base).subspan(i * dim, dim)).ok());
    }
    const auto range = idx->quant_range();
    if (metric == Metric::kCosine) {
      // Calibrated on the normalized vectors (the store keeps the app's; the index normalizes).
      auto unit = base;
      normalize_rows(unit, dim);
      const auto want = min_max(unit);
      CHECK(range.first == Approx(want.first).epsilon(1e-5));
      CHECK(range.second == Approx(want.second).epsilon(1e-5));
      CHECK(range.first >= -1.0f);
      CHECK(range.second <= 1.0f);
    } else {
      CHECK(range == min_max(base));
    }
    double recall = 0;
    for (std::size_t q = 0; q < nq; ++q) {
      auto qs = std::span<const float>(queries).subspan(q * dim, dim);
      auto got = search(*idx, qs, 10, 64);
      auto want = search(**exact, qs, 10, 0);
      REQUIRE(got.size() == 10);
      recall += testing::recall_at(got, want);
      // Re-ranked with the float vectors: exact distances, ascending, equal to brute force's for
      // the shared first hit.
      for (std::size_t i = 1; i < got.size(); ++i) CHECK(got[i - 1].distance <= got[i].distance);
      if (got[0].label == want[0].label) CHECK(got[0].distance == Approx(want[0].distance).margin(1e-4));
    }
    recall /= static_cast<double>(nq);
    UNSCOPED_INFO(metric_name(metric) << " recall " << recall);
    CHECK(recall >= 0.95);
  }
}

TEST_CASE("a calibrated range depends on the vectors, not on their order or batching", "[index][property]") {
  const std::uint64_t seed = 77;
  INFO("seed " << seed);
  const std::size_t n = 600, dim = 16;
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    INFO("metric " << metric_name(metric));
    Rng rng(seed);
    auto base = testing::clustered_data(rng, n, dim);
    for (float& x : base) x *= 3.0f;
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    const IndexParams p = int8_params(dim, metric);

    // One at a time in order, one at a time shuffled, and in one batch on two threads.
    auto in_order = make(p);
    for (std::size_t i = 0; i < n; ++i) {
      REQUIRE(in_order->add(i + 1, std::span<const float>(base).subspan(i * dim, dim)).ok());
    }
    rng.shuffle(std::span<std::size_t>(order));
    auto shuffled = make(p);
    for (std::size_t i : order) {
      REQUIRE(shuffled->add(i + 1, std::span<const float>(base).subspan(i * dim, dim)).ok());
    }
    auto batched = make(p);
    std::vector<std::uint64_t> labels(n);
    std::iota(labels.begin(), labels.end(), 1);
    REQUIRE(batched->add_batch(labels, base, 2).ok());

    if (metric != Metric::kCosine) CHECK(in_order->quant_range() == min_max(base));
    CHECK(shuffled->quant_range() == in_order->quant_range());
    CHECK(batched->quant_range() == in_order->quant_range());
  }
}

TEST_CASE("indexes fed the same vectors in any order hold the same codes and terms", "[index][property]") {
  // Replicas must build comparable indexes: with no float vectors kept, an exact scan (every
  // vector scored on its codes) returns code distances, which must then agree bit for bit
  // between an index fed the vectors in order on one thread and one fed them shuffled on two
  // threads, for every metric, on non-negative data where the offset matters. (Both batches
  // cover their range before inserting. Fed one at a time without float vectors, widening
  // re-encodes from the old codes, which rounds twice: docs/index.md.)
  const std::uint64_t seed = 31337;
  INFO("seed " << seed);
  const std::size_t n = 500, dim = 20;
  for (Metric metric : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    INFO("metric " << metric_name(metric));
    Rng rng(seed);
    auto base = nonnegative_data(rng, n, dim);
    IndexParams p = int8_params(dim, metric);
    p.keep_float_vectors = false;
    p.exact_below = 100000;
    auto in_order = make(p);
    std::vector<std::uint64_t> in_order_labels(n);
    std::iota(in_order_labels.begin(), in_order_labels.end(), 0);
    REQUIRE(in_order->add_batch(in_order_labels, base, 1).ok());
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    rng.shuffle(std::span<std::size_t>(order));
    std::vector<std::uint64_t> labels;
    std::vector<float> rows;
    for (std::size_t i : order) {
      labels.push_back(i);
      rows.insert(rows.end(), base.begin() + static_cast<std::ptrdiff_t>(i * dim),
                  base.begin() + static_cast<std::ptrdiff_t>((i + 1) * dim));
    }
    auto shuffled = make(p);
    REQUIRE(shuffled->add_batch(labels, rows, 2).ok());
    REQUIRE(shuffled->quant_range() == in_order->quant_range());
    for (std::size_t q = 0; q < n; q += 50) {
      auto qs = std::span<const float>(base).subspan(q * dim, dim);
      CHECK(search(*shuffled, qs, 50, 50) == search(*in_order, qs, 50, 50));
    }
  }
}

TEST_CASE("widening a calibrated range re-encodes the codes already stored", "[index]") {
  const std::uint64_t seed = 4242;
  INFO("seed " << seed);
  const std::size_t n = 400, dim = 16;
  Rng rng(seed);
  auto base = testing::clustered_data(rng, n, dim);
  IndexParams p = int8_params(dim, Metric::kL2);
  p.keep_float_vectors = false;  // distances come from the codes alone: stale codes would show
  auto idx = make(p);
  for (std::size_t i = 0; i < n; ++i) {
    REQUIRE(idx->add(i + 1, std::span<const float>(base).subspan(i * dim, dim)).ok());
  }
  const auto before = idx->quant_range();
  // One vector twice as far out on every component widens the range (and moves its low end).
  std::vector<float> far(dim);
  for (std::size_t j = 0; j < dim; ++j) far[j] = (j % 2 == 0 ? 2.0f : -2.0f) * std::max(-before.first, before.second);
  REQUIRE(idx->add(n + 1, far).ok());
  const auto after = idx->quant_range();
  CHECK(after.first < before.first);
  CHECK(after.second > before.second);
  // Every stored vector is still found as its own nearest neighbour.
  std::size_t self = 0;
  for (std::size_t i = 0; i < n; ++i) {
    auto got = search(*idx, std::span<const float>(base).subspan(i * dim, dim), 1, 64);
    REQUIRE(got.size() == 1);
    self += got[0].label == i + 1;
  }
  UNSCOPED_INFO("self hits " << self << " of " << n);
  CHECK(self >= n * 98 / 100);
}

TEST_CASE("a snapshot carries the calibrated range and a rebuild recomputes it from live vectors", "[index]") {
  const std::uint64_t seed = 9001;
  INFO("seed " << seed);
  const std::size_t n = 500, dim = 12;
  Rng rng(seed);
  auto base = testing::clustered_data(rng, n, dim);
  IndexParams p = int8_params(dim, Metric::kInnerProduct);
  p.rebuild_deleted_share = 0.0;  // rebuilds only when asked
  auto idx = make(p);
  std::vector<std::uint64_t> labels(n);
  std::iota(labels.begin(), labels.end(), 1);
  REQUIRE(idx->add_batch(labels, base, 1).ok());
  std::vector<float> outlier(dim, 0.5f);
  outlier[0] = 9.0f;
  REQUIRE(idx->add(n + 1, outlier).ok());
  CHECK(idx->quant_range().second == 9.0f);

  const auto dir = testing::temp_dir("quantization_snapshot");
  const std::string path = (dir / "c.idx").string();
  REQUIRE(idx->save_snapshot(path, 7).ok());
  auto loaded = HnswIndex::load_snapshot(path, p);
  REQUIRE(loaded.ok());
  CHECK(loaded->index->quant_range() == idx->quant_range());
  for (std::size_t q = 0; q < 20; ++q) {
    auto qs = std::span<const float>(base).subspan(q * dim, dim);
    CHECK(search(*loaded->index, qs, 10, 64) == search(*idx, qs, 10, 64));
  }

  // Removing the outlier and rebuilding narrows the range to the live vectors'.
  REQUIRE(idx->remove(n + 1).ok());
  REQUIRE(idx->rebuild_now().ok());
  CHECK(idx->quant_range() == min_max(base));
}

TEST_CASE("inner-product codes use the whole int8 range: recall on non-negative data for ip and cosine",
          "[index][property]") {
  // Non-negative data is where symmetric codes wasted half the range. With float re-ranking
  // recall@10 >= 0.95 at ef 64; the codes alone (no float vectors kept) rank nearly as well,
  // >= 0.95 at ef 128 (the symmetric codes this replaced: 0.947). Built on one thread, so the
  // graph is the same on every run.
  const std::uint64_t seed = 1616;
  INFO("seed " << seed);
  const std::size_t n = 3000, dim = 48, nq = 60;
  for (Metric metric : {Metric::kInnerProduct, Metric::kCosine}) {
    for (bool floats : {true, false}) {
      INFO("metric " << metric_name(metric) << (floats ? " with float re-ranking" : " codes only"));
      Rng rng(seed);
      auto base = nonnegative_data(rng, n, dim);
      auto queries = nonnegative_data(rng, nq, dim);
      if (metric == Metric::kInnerProduct) {
        normalize_rows(base, dim);
        normalize_rows(queries, dim);
      }
      IndexParams p = int8_params(dim, metric);
      p.keep_float_vectors = floats;
      auto idx = make(p);
      auto exact = ExactIndex::create(p);
      REQUIRE(exact.ok());
      std::vector<std::uint64_t> labels(n);
      std::iota(labels.begin(), labels.end(), 1);
      REQUIRE(idx->add_batch(labels, base, 1).ok());
      for (std::size_t i = 0; i < n; ++i) {
        REQUIRE((*exact)->add(labels[i], std::span<const float>(base).subspan(i * dim, dim)).ok());
      }
      CHECK(idx->quant_range().first == 0.0f);
      double recall = 0;
      for (std::size_t q = 0; q < nq; ++q) {
        auto qs = std::span<const float>(queries).subspan(q * dim, dim);
        recall += testing::recall_at(search(*idx, qs, 10, floats ? 64 : 128), search(**exact, qs, 10, 0));
      }
      recall /= static_cast<double>(nq);
      UNSCOPED_INFO(metric_name(metric) << (floats ? " re-ranked" : " codes only") << " recall " << recall);
      CHECK(recall >= 0.95);
    }
  }
}

TEST_CASE("the inner-product terms make code scores match float inner products within the steps' bound",
          "[index][property]") {
  // With no float vectors kept and every vector scanned (exact_below above n), a search returns
  // 1 - (step_q step_x (dot_i8 + a_q + a_x) + b_q + b_x): the inner product estimated from the
  // codes and both vectors' terms (index/quantizer.hpp), where step_x = (max_i x_i - lo) / 255
  // is the vector's own step over the range's low end lo. Each component is off by at most half
  // its vector's step from its code's value, so
  //   |x.y - xq.yq| <= step_x/2 |y|_1 + step_y/2 |x|_1 + n step_x step_y / 4,
  // plus float rounding of terms of size ~ n 128^2 step_x step_y (a few ulps).
  // Without the terms this bound fails by orders of magnitude. Statistically, each error is
  // uniform in +-step/2 (variance step^2/12), so the mean square error over all pairs is at most
  // (step_x^2 |y|^2 + step_y^2 |x|^2) / 12 on average (less, as each vector's extremes are
  // exact); checked with 1.5x room for sampling noise (the queries' own errors are shared by all
  // their pairs), where codes with twice the step would give 4x.
  const std::uint64_t seed = 5150;
  INFO("seed " << seed);
  const std::size_t n = 400, dim = 40;
  for (Metric metric : {Metric::kInnerProduct, Metric::kCosine}) {
    for (float shift : {0.3f, -0.2f}) {  // non-negative data, then data of both signs
      INFO("metric " << metric_name(metric) << " shift " << shift);
      Rng rng(seed);
      auto base = testing::clustered_data(rng, n, dim);
      for (float& x : base) x = shift > 0 ? std::max(0.0f, x + shift) : x + shift;
      if (metric == Metric::kCosine) normalize_rows(base, dim);  // what the index compares
      IndexParams p = int8_params(dim, metric);
      p.keep_float_vectors = false;
      p.exact_below = 100000;
      auto idx = make(p);
      std::vector<std::uint64_t> labels(n);
      std::iota(labels.begin(), labels.end(), 0);
      REQUIRE(idx->add_batch(labels, base, 1).ok());
      const auto [lo, hi] = idx->quant_range();
      CHECK(lo == Approx(min_max(base).first).margin(1e-6));
      CHECK(hi == Approx(min_max(base).second).margin(1e-6));
      // Each vector's step (with a little room for cosine's renormalization inside the index).
      auto step_of = [&, lo = lo](const float* v) {
        return (static_cast<double>(*std::max_element(v, v + dim)) - lo) / 255.0 * (1 + 1e-5);
      };
      double worst = 0, sq_err = 0, sq_predicted = 0;
      for (std::size_t qi = 0; qi < n; qi += 7) {
        const float* q = base.data() + qi * dim;
        auto got = search(*idx, std::span<const float>(q, dim), n, n);
        REQUIRE(got.size() == n);
        const double sq = step_of(q);
        double q1 = 0;
        for (std::size_t j = 0; j < dim; ++j) q1 += std::fabs(q[j]);
        for (const Neighbor& nb : got) {
          const float* x = base.data() + nb.label * dim;
          const double sx = step_of(x);
          double x1 = 0;
          for (std::size_t j = 0; j < dim; ++j) x1 += std::fabs(x[j]);
          const double rounding = 8.0 * std::ldexp(1.0, -24) *
                                  (3.0 * 16384.0 * dim * sq * sx + 256.0 * dim * std::fabs(lo) * (sq + sx) +
                                   dim * static_cast<double>(lo) * lo);
          const double bound = sq / 2 * x1 + sx / 2 * q1 + dim * sq * sx / 4 + rounding;
          const double err = std::fabs((1.0 - nb.distance) - dot(q, x, dim));
          worst = std::max(worst, err / bound);
          sq_err += err * err;
          sq_predicted += (sq * sq * dot(x, x, dim) + sx * sx * dot(q, q, dim)) / 12;
          if (err > bound) {
            FAIL_CHECK("query " << qi << " label " << nb.label << ": code score " << 1.0 - nb.distance
                                << ", float " << dot(q, x, dim) << ", error " << err << " > bound " << bound);
          }
        }
      }
      UNSCOPED_INFO(metric_name(metric) << " shift " << shift << ": worst error / bound " << worst
                                        << ", rms error / predicted " << std::sqrt(sq_err / sq_predicted));
      CHECK(sq_err <= 1.5 * sq_predicted);
    }
  }
}

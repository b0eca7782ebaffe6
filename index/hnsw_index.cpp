// index/hnsw_index.cpp: the hnswlib 0.6.2 adapter, our search loop, the planner, the rebuild
// and the snapshot format (spec: docs/index.md).
#include "index/hnsw_index.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <string>

#include <hnswlib/hnswlib.h>

#include "common/hash.hpp"
#include "common/random.hpp"
#include "index/topk.hpp"

// ---------------------------------------------------------------------------------------------
// Two members of hnswlib 0.6.2 replaced for the one instantiation Shoal uses (this is the only
// translation unit that instantiates hnswlib::HierarchicalNSW<float>; bench/ann's anchor renames
// the namespace). Explicit specializations, declared before any use, so hnswlib's own code calls
// them. Each is checked by a test that fails without it (tests/index/index_test.cpp, run under
// ASan+UBSan and TSan by .ci/run). A newer hnswlib that changes either signature fails to compile
// here, which is the moment to re-check both.

// addPoint draws a level from level_generator_, one std::default_random_engine shared by every
// thread, even when the caller passes a level (which it then uses only if it is above 0): a data
// race when add_batch inserts with several threads, and levels that depend on thread timing
// (TSan reports it). Graph::insert computes every level itself with our seeded Rng from
// (IndexParams::seed, label) and passes it; the draw returns 0, so the passed level, 0 included,
// is the element's level and the shared generator is never touched.
template <>
int hnswlib::HierarchicalNSW<float>::getRandomLevel(double /*reverse_size*/) {
  return 0;
}

// The original passes result.data(), a null pointer when the list is empty, to memcpy (zero
// bytes): undefined behaviour that UBSan reports whenever a record with an empty neighbour list
// is updated (updatePoint, reached from addPoint on an existing label). Same code, minus that.
template <>
std::vector<hnswlib::tableint> hnswlib::HierarchicalNSW<float>::getConnectionsWithLock(
    tableint internalId, int level) {
  std::unique_lock<std::mutex> lock(link_list_locks_[internalId]);
  unsigned int* data = get_linklist_at_level(internalId, level);
  const int size = getListCount(data);
  const auto* ll = reinterpret_cast<const tableint*>(data + 1);
  return std::vector<tableint>(ll, ll + size);
}

namespace shoal::index {
namespace detail {
namespace {

// The planner's cost model, in distance computations. The graph spends about this many per
// result it keeps, per unit of selectivity (Fashion-MNIST, M=16: ~640 distances for ef=32 at 50%).
constexpr double kGraphVisitsPerResult = 10.0;
// An exact scan of the matching set costs more per distance than the graph (a label-map lookup
// and an unprefetched random read each): measured ~3x on Fashion-MNIST.
constexpr double kExactCostFactor = 3.0;

struct DistParam {
  std::size_t dim = 0;
  const KernelTable* k = nullptr;
};

float hn_l2(const void* a, const void* b, const void* p) {
  const auto* dp = static_cast<const DistParam*>(p);
  return dp->k->l2sq(static_cast<const float*>(a), static_cast<const float*>(b), dp->dim);
}
float hn_ip(const void* a, const void* b, const void* p) {
  const auto* dp = static_cast<const DistParam*>(p);
  return 1.0f - dp->k->dot(static_cast<const float*>(a), static_cast<const float*>(b), dp->dim);
}
float hn_l2_i8(const void* a, const void* b, const void* p) {
  const auto* dp = static_cast<const DistParam*>(p);
  return static_cast<float>(
      dp->k->l2sq_i8(static_cast<const std::int8_t*>(a), static_cast<const std::int8_t*>(b), dp->dim));
}
float hn_ip_i8(const void* a, const void* b, const void* p) {
  const auto* dp = static_cast<const DistParam*>(p);
  return -static_cast<float>(
      dp->k->dot_i8(static_cast<const std::int8_t*>(a), static_cast<const std::int8_t*>(b), dp->dim));
}

class Space final : public hnswlib::SpaceInterface<float> {
 public:
  Space(std::size_t data_size, hnswlib::DISTFUNC<float> f, DistParam p)
      : data_size_(data_size), f_(f), param_(p) {}
  std::size_t get_data_size() override { return data_size_; }
  hnswlib::DISTFUNC<float> get_dist_func() override { return f_; }
  void* get_dist_func_param() override { return &param_; }

 private:
  std::size_t data_size_;
  hnswlib::DISTFUNC<float> f_;
  DistParam param_;
};

// Int8 scalar quantizer. L2: the range [lo, hi] maps onto codes [-128, 127] (L2 is shift
// invariant, so code distances scale exactly by step^2). Inner product and cosine: symmetric
// codes [-127, 127] for [-r, r], so code dot products scale by step^2.
struct Quantizer {
  bool symmetric = false;
  float lo = 0.0f;
  float step = 1.0f;
  float inv_step = 1.0f;

  static Quantizer make(const IndexParams& p) {
    Quantizer q;
    if (p.metric == Metric::kL2) {
      q.lo = p.quant_min;
      q.step = (p.quant_max - p.quant_min) / 255.0f;
    } else {
      q.symmetric = true;
      float r = std::max(std::fabs(p.quant_min), std::fabs(p.quant_max));
      if (r == 0.0f) r = 1.0f;
      q.step = r / 127.0f;
    }
    q.inv_step = 1.0f / q.step;
    return q;
  }
  void encode(const float* x, std::int8_t* out, std::size_t n) const noexcept {
    if (symmetric) {
      for (std::size_t i = 0; i < n; ++i) {
        const float c = std::nearbyint(x[i] * inv_step);
        out[i] = static_cast<std::int8_t>(std::clamp(c, -127.0f, 127.0f));
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        const float c = std::nearbyint((x[i] - lo) * inv_step) - 128.0f;
        out[i] = static_cast<std::int8_t>(std::clamp(c, -128.0f, 127.0f));
      }
    }
  }
  float decode(std::int8_t c) const noexcept {
    return symmetric ? static_cast<float>(c) * step
                     : (static_cast<float>(c) + 128.0f) * step + lo;
  }
};

using Hnsw = hnswlib::HierarchicalNSW<float>;

struct Cand {
  float d;
  std::uint32_t id;
};
struct CandFarther {  // min-heap order for candidates
  bool operator()(const Cand& a, const Cand& b) const noexcept { return a.d > b.d; }
};
struct CandCloser {  // max-heap order for results
  bool operator()(const Cand& a, const Cand& b) const noexcept { return a.d < b.d; }
};

// Per-thread buffers, so a search allocates nothing once warm. The predicate must not call back
// into an index (documented), so the buffers are never used re-entrantly.
struct Scratch {
  std::vector<Cand> cand;
  std::vector<Cand> top;
  std::vector<float> query;
  std::vector<std::int8_t> codes;
};
thread_local Scratch tl_scratch;

}  // namespace

// One hnswlib graph plus what our search needs next to it. Everything here is guarded by
// HnswIndex::mu_ (or privately owned by a rebuild job before it is swapped in).
struct Graph {
  IndexParams params;
  const KernelTable* k = nullptr;
  std::size_t dim = 0;
  bool quantized = false;
  bool float_store = false;  // quantized with a separate float array
  Quantizer q;
  DistParam dist_param;
  std::unique_ptr<Space> space;
  std::unique_ptr<Hnsw> h;
  std::vector<float> floats;  // float_store only: capacity x dim, prepared (normalized if cosine)

  static std::unique_ptr<Graph> make(const IndexParams& p, const KernelTable* k, std::size_t capacity) {
    auto g = std::make_unique<Graph>();
    g->params = p;
    g->k = k;
    g->dim = p.dimension;
    g->quantized = p.quantization == Quantization::kInt8;
    g->float_store = g->quantized && p.keep_float_vectors;
    g->q = Quantizer::make(p);
    g->dist_param = DistParam{g->dim, k};
    const bool l2 = p.metric == Metric::kL2;
    if (g->quantized) {
      g->space = std::make_unique<Space>(g->dim, l2 ? &hn_l2_i8 : &hn_ip_i8, g->dist_param);
    } else {
      g->space = std::make_unique<Space>(g->dim * sizeof(float), l2 ? &hn_l2 : &hn_ip, g->dist_param);
    }
    g->h = std::make_unique<Hnsw>(g->space.get(), capacity, p.m, p.ef_construction, p.seed);
    if (g->float_store) g->floats.resize(capacity * g->dim);
    return g;
  }

  std::size_t capacity() const noexcept { return h->max_elements_; }
  std::size_t count() const noexcept { return h->cur_element_count; }
  std::size_t deleted() const noexcept { return h->num_deleted_; }
  std::size_t live() const noexcept { return count() - deleted(); }
  const char* data(std::uint32_t id) const noexcept {
    return h->data_level0_memory_ + static_cast<std::size_t>(id) * h->size_data_per_element_ + h->offsetData_;
  }
  std::uint64_t label(std::uint32_t id) const noexcept { return h->getExternalLabel(id); }
  bool is_deleted(std::uint32_t id) const noexcept { return h->isMarkedDeleted(id); }

  // The prepared float vector of `id`, or nullptr when only codes are stored.
  const float* float_vec(std::uint32_t id) const noexcept {
    if (!quantized) return reinterpret_cast<const float*>(data(id));
    if (float_store) return floats.data() + static_cast<std::size_t>(id) * dim;
    return nullptr;
  }

  // Internal id of a live label, or -1.
  std::int64_t find_live(std::uint64_t label) const {
    auto it = h->label_lookup_.find(label);
    if (it == h->label_lookup_.end() || is_deleted(it->second)) return -1;
    return it->second;
  }

  // Normalizes for cosine into `out` (size dim).
  void prepare(std::span<const float> v, float* out) const noexcept {
    std::copy(v.begin(), v.end(), out);
    if (params.metric == Metric::kCosine) {
      double n2 = 0;
      for (float x : v) n2 += static_cast<double>(x) * static_cast<double>(x);
      const float inv = static_cast<float>(1.0 / std::sqrt(n2));
      for (std::size_t i = 0; i < dim; ++i) out[i] *= inv;
    }
  }

  // The HNSW level of `label`: floor(-ln(u) * mult) (hnswlib's distribution, mult = 1/ln(M))
  // with u uniform in (0, 1] from our Rng seeded by (params.seed, label). A function of the
  // label alone, so levels are the same whatever the insertion order or thread count. With 53
  // random bits, -ln(u) <= 36.8, so the level stays below the snapshot loader's limit of 64.
  int level_of(std::uint64_t label) const noexcept {
    std::uint64_t mix = label;
    Rng rng(params.seed ^ splitmix64(mix));
    const double u = 1.0 - rng.uniform_double();
    return static_cast<int>(-std::log(u) * h->mult_);
  }

  // Inserts a prepared vector, or replaces the vector of a label already present (hnswlib's
  // update path). May throw (hnswlib); callers catch. Thread-safe against other insert() calls
  // of labels not yet present (hnswlib's locks) as long as capacity suffices; updates of present
  // labels touch a generator shared by the graph (updatePoint's update_probability_generator_),
  // so they must run on one thread at a time.
  void insert(std::uint64_t label, const float* prepared) {
    const int level = level_of(label);
    if (quantized) {
      std::vector<std::int8_t> codes(dim);
      q.encode(prepared, codes.data(), dim);
      const auto id = h->addPoint(codes.data(), label, level);
      if (float_store) std::copy_n(prepared, dim, floats.data() + static_cast<std::size_t>(id) * dim);
    } else {
      h->addPoint(prepared, label, level);
    }
  }

  void grow(std::size_t new_capacity) {
    h->resizeIndex(new_capacity);
    if (float_store) floats.resize(new_capacity * dim);
  }

  // Distance between a prepared query and a stored float vector.
  float exact_distance(const float* query, const float* v) const noexcept {
    return params.metric == Metric::kL2 ? k->l2sq(query, v, dim) : 1.0f - k->dot(query, v, dim);
  }
  // Code distance converted to the metric's scale (used when no floats are kept).
  float code_distance_scaled(float raw) const noexcept {
    const float s2 = q.step * q.step;
    return params.metric == Metric::kL2 ? raw * s2 : 1.0f + raw * s2;  // raw = -dot for IP
  }

  // The best distance available for `id`: exact float when stored, else from the codes.
  float best_distance(const float* query, const std::int8_t* qcodes, std::uint32_t id) const noexcept {
    if (const float* v = float_vec(id)) return exact_distance(query, v);
    const auto* c = reinterpret_cast<const std::int8_t*>(data(id));
    const float raw = params.metric == Metric::kL2 ? static_cast<float>(k->l2sq_i8(qcodes, c, dim))
                                                   : -static_cast<float>(k->dot_i8(qcodes, c, dim));
    return code_distance_scaled(raw);
  }

  std::size_t upper_link_bytes() const noexcept {
    std::size_t total = 0;
    for (std::size_t i = 0; i < count(); ++i) {
      total += static_cast<std::size_t>(h->element_levels_[i]) * h->size_links_per_element_;
    }
    return total;
  }

  MemoryUsage memory() const {
    MemoryUsage m;
    const std::size_t cap = capacity();
    m.vector_bytes = cap * h->data_size_ + floats.capacity() * sizeof(float);
    m.graph_bytes = cap * (h->size_links_level0_ + sizeof(hnswlib::labeltype)) + upper_link_bytes() +
                    cap * (sizeof(std::mutex) + sizeof(int) + sizeof(void*) +
                           sizeof(hnswlib::vl_type)) +
                    Hnsw::max_update_element_locks * sizeof(std::mutex);
    m.other_bytes = h->label_lookup_.size() * 40 + h->label_lookup_.bucket_count() * sizeof(void*);
    return m;
  }
};

namespace {

// Beam search on level 0 from `ep` (hnswlib's searchBaseLayerST, with a batched prefetching
// expansion and an admission test). With kCheck, only admitted ids enter the results, and the
// loop keeps exploring until it holds ef admitted ids or the reachable graph is exhausted.
template <bool kCheck, class Dist, class Admit>
void beam_search(const Graph& g, const Dist& dist, std::uint32_t ep, float ep_dist, std::size_t ef,
                 const Admit& admit, Scratch& s, std::uint64_t& ndist) {
  const Hnsw& h = *g.h;
  hnswlib::VisitedList* vl = h.visited_list_pool_->getFreeVisitedList();
  hnswlib::vl_type* visited = vl->mass;
  const hnswlib::vl_type tag = vl->curV;
  auto& cand = s.cand;
  auto& top = s.top;
  cand.clear();
  top.clear();
  float bound = std::numeric_limits<float>::max();
  if (!kCheck || admit(ep)) {
    top.push_back({ep_dist, ep});
    bound = ep_dist;
  }
  cand.push_back({ep_dist, ep});
  visited[ep] = tag;
  const char* base = h.data_level0_memory_ + h.offsetData_;
  const std::size_t stride = h.size_data_per_element_;
  const std::size_t data_lines = std::min<std::size_t>((h.data_size_ + 63) / 64 + 1, 16);
  std::uint32_t batch[512];
  while (!cand.empty()) {
    const Cand c = cand.front();
    if (c.d > bound && top.size() >= ef) break;
    std::pop_heap(cand.begin(), cand.end(), CandFarther{});
    cand.pop_back();
    const auto* ll = reinterpret_cast<const std::uint32_t*>(h.get_linklist0(c.id));
    const std::size_t size = std::min<std::size_t>(*reinterpret_cast<const std::uint16_t*>(ll), 512);
    const std::uint32_t* nb = ll + 1;
    std::size_t n = 0;
    for (std::size_t j = 0; j < size; ++j) {
      const std::uint32_t id = nb[j];
      if (visited[id] == tag) continue;
      visited[id] = tag;
      batch[n++] = id;
      const char* p = base + static_cast<std::size_t>(id) * stride;
      for (std::size_t line = 0; line < data_lines; ++line) __builtin_prefetch(p + line * 64, 0, 3);
    }
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint32_t id = batch[i];
      const float d = dist(id);
      ++ndist;
      if (top.size() < ef || d < bound) {
        cand.push_back({d, id});
        std::push_heap(cand.begin(), cand.end(), CandFarther{});
        if (!kCheck || admit(id)) {
          top.push_back({d, id});
          std::push_heap(top.begin(), top.end(), CandCloser{});
          if (top.size() > ef) {
            std::pop_heap(top.begin(), top.end(), CandCloser{});
            top.pop_back();
          }
        }
        if (!top.empty()) bound = top.front().d;
      }
    }
  }
  h.visited_list_pool_->releaseVisitedList(vl);
}

// Greedy descent through the upper levels; returns the level-0 entry point and its distance.
template <class Dist>
Cand descend(const Graph& g, const Dist& dist, std::uint64_t& ndist) {
  const Hnsw& h = *g.h;
  std::uint32_t cur = h.enterpoint_node_;
  float curd = dist(cur);
  ++ndist;
  for (int level = h.maxlevel_; level > 0; --level) {
    bool changed = true;
    while (changed) {
      changed = false;
      const auto* ll = reinterpret_cast<const std::uint32_t*>(h.get_linklist(cur, level));
      const std::size_t size = *reinterpret_cast<const std::uint16_t*>(ll);
      for (std::size_t j = 1; j <= size; ++j) {
        const std::uint32_t id = ll[j];
        const float d = dist(id);
        ++ndist;
        if (d < curd) {
          curd = d;
          cur = id;
          changed = true;
        }
      }
    }
  }
  return {curd, cur};
}

Status hnswlib_error(const char* what, const std::exception& e) {
  return Status(Code::kInternal, std::string("hnswlib ") + what + " failed: " + e.what());
}

}  // namespace
}  // namespace detail

using detail::Graph;

// ---------------------------------------------------------------------------------------------
// Creation, writes

HnswIndex::HnswIndex(const IndexParams& params, RebuildExecutor executor)
    : params_(params),
      kernels_(params.isa ? kernels_for(*params.isa) : &best_kernels()),
      executor_(std::move(executor)) {
  SHOAL_ASSERT(kernels_ != nullptr);
}

HnswIndex::~HnswIndex() {
  std::lock_guard lock(thread_mu_);
  if (rebuild_thread_.joinable()) rebuild_thread_.join();
}

Result<std::unique_ptr<HnswIndex>> HnswIndex::create(const IndexParams& params,
                                                     RebuildExecutor executor) {
  SHOAL_RETURN_IF_ERROR(validate_params(params));
  std::unique_ptr<HnswIndex> index(new HnswIndex(params, std::move(executor)));
  try {
    index->graph_ = Graph::make(params, index->kernels_, params.initial_capacity);
  } catch (const std::exception& e) {
    return detail::hnswlib_error("allocation", e);
  }
  return index;
}

Status HnswIndex::add_locked(std::uint64_t label, std::span<const float> vector) {
  Graph& g = *graph_;
  try {
    if (g.count() >= g.capacity() && g.h->label_lookup_.count(label) == 0) {
      if (g.capacity() >= kMaxElements) {
        return Status(Detail::kTooLarge, "index holds the maximum of " +
                                             std::to_string(kMaxElements) + " vectors");
      }
      g.grow(std::min<std::size_t>(g.capacity() * 2, kMaxElements));
    }
    std::vector<float> prepared(g.dim);
    g.prepare(vector, prepared.data());
    g.insert(label, prepared.data());
    if (journaling_) journal_.push_back({false, label, std::move(prepared)});
  } catch (const std::exception& e) {
    return detail::hnswlib_error("addPoint", e);
  }
  return ok_status();
}

Status HnswIndex::add(std::uint64_t label, std::span<const float> vector) {
  SHOAL_RETURN_IF_ERROR(validate_vector(vector, params_.dimension, params_.metric));
  std::unique_lock lock(mu_);
  return add_locked(label, vector);
}

Status HnswIndex::add_batch(std::span<const std::uint64_t> labels, std::span<const float> vectors,
                            unsigned threads) {
  const std::size_t dim = params_.dimension;
  if (vectors.size() != labels.size() * dim) {
    return Status(Detail::kDimensionMismatch,
                  "batch holds " + std::to_string(vectors.size()) + " floats, expected " +
                      std::to_string(labels.size()) + " x " + std::to_string(dim));
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    Status s = validate_vector(vectors.subspan(i * dim, dim), params_.dimension, params_.metric);
    if (!s.ok()) return s.with_context("row " + std::to_string(i));
  }
  std::unique_lock lock(mu_);
  Graph& g = *graph_;
  try {
    const std::size_t need = g.count() + labels.size();
    if (need > kMaxElements) {
      return Status(Detail::kTooLarge, "batch would exceed the maximum of " +
                                           std::to_string(kMaxElements) + " vectors");
    }
    if (need > g.capacity()) g.grow(std::max(need, std::min<std::size_t>(g.capacity() * 2, kMaxElements)));
  } catch (const std::exception& e) {
    return detail::hnswlib_error("resizeIndex", e);
  }
  // Rows whose label is new to the graph and first in the batch are inserted by `threads`
  // threads; the others (replacements of present labels, later rows of a label repeated in the
  // batch) afterwards on this thread, in batch order: hnswlib's update path is not safe to run
  // concurrently (Graph::insert), and the last row of a label deterministically wins.
  std::vector<std::size_t> fresh_rows, update_rows;
  {
    std::vector<std::size_t> order(labels.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return labels[a] < labels[b]; });
    std::vector<bool> fresh(labels.size(), false);
    for (std::size_t j = 0; j < order.size(); ++j) {
      const std::size_t i = order[j];
      const bool first_of_label = j == 0 || labels[order[j - 1]] != labels[i];
      fresh[i] = first_of_label && g.h->label_lookup_.count(labels[i]) == 0;
    }
    for (std::size_t i = 0; i < labels.size(); ++i) (fresh[i] ? fresh_rows : update_rows).push_back(i);
  }
  std::atomic<std::size_t> next{0};
  std::mutex err_mu;
  Status first_error;
  auto insert_row = [&](std::size_t i, std::vector<float>& prepared) {
    try {
      g.prepare(vectors.subspan(i * dim, dim), prepared.data());
      g.insert(labels[i], prepared.data());
    } catch (const std::exception& e) {
      std::lock_guard l(err_mu);
      if (first_error.ok()) first_error = detail::hnswlib_error("addPoint", e);
    }
  };
  auto worker = [&] {
    std::vector<float> prepared(dim);
    for (;;) {
      const std::size_t j = next.fetch_add(1);
      if (j >= fresh_rows.size()) return;
      insert_row(fresh_rows[j], prepared);
    }
  };
  const unsigned n = std::max(1u, threads);
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  {
    std::vector<float> prepared(dim);
    for (std::size_t i : update_rows) insert_row(i, prepared);
  }
  if (journaling_) {
    for (std::size_t i = 0; i < labels.size(); ++i) {
      std::vector<float> prepared(dim);
      g.prepare(vectors.subspan(i * dim, dim), prepared.data());
      journal_.push_back({false, labels[i], std::move(prepared)});
    }
  }
  return first_error;
}

Status HnswIndex::remove(std::uint64_t label) {
  bool schedule = false;
  {
    std::unique_lock lock(mu_);
    Graph& g = *graph_;
    if (g.find_live(label) < 0) {
      return Status(Detail::kNoSuchRecord, "label " + std::to_string(label) + " is not in the index");
    }
    try {
      g.h->markDelete(label);
    } catch (const std::exception& e) {
      return detail::hnswlib_error("markDelete", e);
    }
    if (journaling_) journal_.push_back({true, label, {}});
    const double share = static_cast<double>(g.deleted()) / static_cast<double>(g.count());
    if (params_.rebuild_deleted_share > 0.0 && share > params_.rebuild_deleted_share &&
        g.count() >= params_.rebuild_min_elements && !rebuild_pending_.load()) {
      rebuild_pending_.store(true);
      journaling_ = true;
      journal_.clear();
      schedule = true;
    }
  }
  if (schedule) submit_rebuild();
  return ok_status();
}

void HnswIndex::submit_rebuild() {
  auto job = [this] { (void)run_rebuild(); };
  if (executor_) {
    executor_(std::move(job));
    return;
  }
  std::lock_guard lock(thread_mu_);
  if (rebuild_thread_.joinable()) rebuild_thread_.join();
  rebuild_thread_ = std::thread(std::move(job));
}

bool HnswIndex::contains(std::uint64_t label) const {
  std::shared_lock lock(mu_);
  return graph_->find_live(label) >= 0;
}

std::size_t HnswIndex::size() const {
  std::shared_lock lock(mu_);
  return graph_->live();
}

double HnswIndex::deleted_share() const {
  std::shared_lock lock(mu_);
  const Graph& g = *graph_;
  return g.count() == 0 ? 0.0 : static_cast<double>(g.deleted()) / static_cast<double>(g.count());
}

Status HnswIndex::reserve(std::size_t capacity) {
  if (capacity > kMaxElements) {
    return Status(Detail::kTooLarge, "capacity " + std::to_string(capacity) +
                                         " is above the limit " + std::to_string(kMaxElements));
  }
  std::unique_lock lock(mu_);
  Graph& g = *graph_;
  if (capacity <= g.capacity()) return ok_status();
  try {
    g.grow(capacity);
  } catch (const std::exception& e) {
    return detail::hnswlib_error("resizeIndex", e);
  }
  return ok_status();
}

MemoryUsage HnswIndex::memory() const {
  std::shared_lock lock(mu_);
  MemoryUsage m = graph_->memory();
  for (const auto& e : journal_) m.other_bytes += sizeof(e) + e.vector.capacity() * sizeof(float);
  return m;
}

// ---------------------------------------------------------------------------------------------
// Search

Result<SearchResult> HnswIndex::search(const SearchRequest& req) const {
  SHOAL_RETURN_IF_ERROR(validate_search(req, params_));
  std::shared_lock lock(mu_);
  const Graph& g = *graph_;
  SearchResult out;
  const std::size_t live = g.live();
  if (live == 0) return out;
  const std::size_t k = req.k;
  const std::size_t ef = req.ef != 0 ? req.ef : std::max<std::size_t>(k, params_.ef_search);
  const std::size_t dim = g.dim;

  detail::Scratch& s = detail::tl_scratch;
  s.query.resize(dim);
  g.prepare(req.query, s.query.data());
  const float* q = s.query.data();
  if (g.quantized) {
    s.codes.resize(dim);
    g.q.encode(q, s.codes.data(), dim);
  }
  const std::int8_t* qc = s.codes.data();

  // A sorted copy of the matching set, for membership tests when the graph path is taken.
  std::vector<std::uint64_t> matching_sorted;
  const bool has_matching = req.matching_labels.has_value();
  const bool filtered = req.filter != nullptr || has_matching;

  auto admit_label = [&](std::uint64_t label) {
    if (req.filter != nullptr && !(*req.filter)(label)) return false;
    if (req.filter == nullptr && has_matching &&
        !std::binary_search(matching_sorted.begin(), matching_sorted.end(), label)) {
      return false;
    }
    return true;
  };

  // Exact scan over the ids `each_id` yields. With int8 codes, the scan ranks by code distance
  // (4x less memory traffic) and re-ranks the best max(ef, 4k) with the float vectors.
  auto exact_scan = [&](Plan plan, const auto& each_id) {
    if (g.quantized && g.float_store) {
      detail::TopK coarse(std::max(ef, 4 * k));
      const bool l2 = g.params.metric == Metric::kL2;
      each_id([&](std::uint32_t id) {
        const auto* c = reinterpret_cast<const std::int8_t*>(g.data(id));
        const float raw = l2 ? static_cast<float>(g.k->l2sq_i8(qc, c, dim))
                             : -static_cast<float>(g.k->dot_i8(qc, c, dim));
        coarse.push(raw, id);
        ++out.distance_count;
      });
      detail::TopK top(k);
      for (const Neighbor& n : coarse.take_sorted()) {
        const auto id = static_cast<std::uint32_t>(n.label);
        top.push(g.exact_distance(q, g.float_vec(id)), g.label(id));
        ++out.distance_count;
      }
      out.neighbors = top.take_sorted();
    } else {
      detail::TopK top(k);
      each_id([&](std::uint32_t id) {
        top.push(g.best_distance(q, qc, id), g.label(id));
        ++out.distance_count;
      });
      out.neighbors = top.take_sorted();
    }
    out.plan = plan;
  };

  auto exact_scan_all = [&](Plan plan) {
    if (req.filter == nullptr && has_matching && matching_sorted.empty()) {
      matching_sorted.assign(req.matching_labels->begin(), req.matching_labels->end());
      std::sort(matching_sorted.begin(), matching_sorted.end());
    }
    exact_scan(plan, [&](const auto& visit) {
      for (std::uint32_t id = 0; id < g.count(); ++id) {
        if (g.is_deleted(id)) continue;
        if (filtered && !admit_label(g.label(id))) continue;
        visit(id);
      }
    });
  };

  if (live <= params_.exact_below) {
    exact_scan_all(Plan::kExactScan);
    return out;
  }

  // Planner: estimated selectivity and costs, in distance computations.
  if (filtered) {
    double sel = 1.0;
    if (has_matching) {
      sel = std::min(1.0, static_cast<double>(req.matching_labels->size()) / static_cast<double>(live));
    } else if (req.estimated_selectivity > 0.0) {
      sel = req.estimated_selectivity;
    }
    sel = std::max(sel, 1e-9);
    const double graph_cost = detail::kGraphVisitsPerResult * static_cast<double>(ef) / sel;
    const double exact_cost = detail::kExactCostFactor * sel * static_cast<double>(live);
    if (exact_cost <= graph_cost) {
      if (has_matching) {
        exact_scan(Plan::kExactMatching, [&](const auto& visit) {
          for (std::uint64_t label : *req.matching_labels) {
            const std::int64_t id = g.find_live(label);
            if (id < 0) continue;
            if (req.filter != nullptr && !(*req.filter)(label)) continue;
            visit(static_cast<std::uint32_t>(id));
          }
        });
      } else {
        exact_scan_all(Plan::kExactScan);
      }
      return out;
    }
    if (req.filter == nullptr && has_matching) {
      matching_sorted.assign(req.matching_labels->begin(), req.matching_labels->end());
      std::sort(matching_sorted.begin(), matching_sorted.end());
    }
  }

  auto run_graph = [&](const auto& dist) {
    const detail::Cand entry = detail::descend(g, dist, out.distance_count);
    if (filtered || g.deleted() > 0) {
      auto admit = [&](std::uint32_t id) { return !g.is_deleted(id) && (!filtered || admit_label(g.label(id))); };
      detail::beam_search<true>(g, dist, entry.id, entry.d, ef, admit, s, out.distance_count);
    } else {
      auto admit = [](std::uint32_t) { return true; };
      detail::beam_search<false>(g, dist, entry.id, entry.d, ef, admit, s, out.distance_count);
    }
  };
  try {
    if (g.quantized) {
      if (g.params.metric == Metric::kL2) {
        run_graph([&](std::uint32_t id) {
          return static_cast<float>(
              g.k->l2sq_i8(qc, reinterpret_cast<const std::int8_t*>(g.data(id)), dim));
        });
      } else {
        run_graph([&](std::uint32_t id) {
          return -static_cast<float>(
              g.k->dot_i8(qc, reinterpret_cast<const std::int8_t*>(g.data(id)), dim));
        });
      }
    } else if (g.params.metric == Metric::kL2) {
      run_graph([&](std::uint32_t id) {
        return g.k->l2sq(q, reinterpret_cast<const float*>(g.data(id)), dim);
      });
    } else {
      run_graph([&](std::uint32_t id) {
        return 1.0f - g.k->dot(q, reinterpret_cast<const float*>(g.data(id)), dim);
      });
    }
  } catch (const std::exception& e) {
    return detail::hnswlib_error("search", e);
  }

  // Results: exact re-ranking when floats are kept; code distances scaled otherwise.
  detail::TopK top(k);
  for (const detail::Cand& c : s.top) {
    float d = c.d;
    if (g.quantized) {
      if (g.float_store) {
        d = g.exact_distance(q, g.float_vec(c.id));
        ++out.distance_count;
      } else {
        d = g.code_distance_scaled(c.d);
      }
    }
    top.push(d, g.label(c.id));
  }
  out.plan = Plan::kGraph;
  out.neighbors = top.take_sorted();
  if (filtered && out.neighbors.size() < k) {
    // The reachable graph held fewer than k matches; the exact scan is the guarantee.
    exact_scan_all(Plan::kGraphThenExact);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Rebuild

RebuildStats HnswIndex::rebuild_stats() const {
  std::lock_guard lock(stats_mu_);
  return rebuild_stats_;
}

int HnswIndex::level_for_testing(std::uint64_t label) const {
  std::shared_lock lock(mu_);
  const auto it = graph_->h->label_lookup_.find(label);
  return it == graph_->h->label_lookup_.end() ? -1 : graph_->h->element_levels_[it->second];
}

void HnswIndex::set_rebuild_hook_for_testing(std::function<void()> hook) {
  std::lock_guard lock(stats_mu_);
  rebuild_hook_ = std::move(hook);
}

Status HnswIndex::rebuild_now() {
  {
    std::unique_lock lock(mu_);
    if (!rebuild_pending_.load()) {
      rebuild_pending_.store(true);
      journaling_ = true;
      journal_.clear();
    }
  }
  return run_rebuild();
}

Status HnswIndex::run_rebuild() {
  std::lock_guard serial(rebuild_mu_);
  {
    std::lock_guard l(stats_mu_);
    ++rebuild_stats_.started;
  }
  auto fail = [this](Status st) {
    {
      std::unique_lock lock(mu_);
      journaling_ = false;
      journal_.clear();
    }
    {
      std::lock_guard l(stats_mu_);
      rebuild_stats_.last_error = st;
    }
    rebuild_pending_.store(false);
    return st;
  };
  if (!rebuild_pending_.load()) return ok_status();  // a duplicate job: nothing scheduled

  // Phase 1: copy the live vectors under the shared lock (queries proceed, writes wait).
  std::vector<std::uint64_t> labels;
  std::vector<float> vectors;
  std::size_t dim = params_.dimension;
  {
    std::shared_lock lock(mu_);
    const Graph& g = *graph_;
    labels.reserve(g.live());
    vectors.reserve(g.live() * dim);
    std::vector<float> decoded(dim);
    for (std::uint32_t id = 0; id < g.count(); ++id) {
      if (g.is_deleted(id)) continue;
      labels.push_back(g.label(id));
      const float* v = g.float_vec(id);
      if (v == nullptr) {
        const auto* c = reinterpret_cast<const std::int8_t*>(g.data(id));
        for (std::size_t i = 0; i < dim; ++i) decoded[i] = g.q.decode(c[i]);
        v = decoded.data();
      }
      vectors.insert(vectors.end(), v, v + dim);
    }
  }

  // Phase 2: build with no lock held.
  std::unique_ptr<Graph> fresh;
  try {
    const std::size_t cap = std::max<std::size_t>(
        {labels.size() + labels.size() / 4 + 1, static_cast<std::size_t>(params_.initial_capacity)});
    fresh = Graph::make(params_, kernels_, cap);
    for (std::size_t i = 0; i < labels.size(); ++i) fresh->insert(labels[i], vectors.data() + i * dim);
  } catch (const std::exception& e) {
    return fail(detail::hnswlib_error("rebuild", e));
  }
  std::function<void()> hook;
  {
    std::lock_guard l(stats_mu_);
    hook = rebuild_hook_;
  }
  if (hook) hook();

  // Phase 3: replay the journal and swap, under the exclusive lock.
  std::size_t replayed = 0;
  {
    std::unique_lock lock(mu_);
    try {
      for (const JournalEntry& e : journal_) {
        if (e.remove) {
          if (fresh->find_live(e.label) >= 0) fresh->h->markDelete(e.label);
        } else {
          if (fresh->count() >= fresh->capacity()) fresh->grow(fresh->capacity() * 2);
          fresh->insert(e.label, e.vector.data());
        }
        ++replayed;
      }
    } catch (const std::exception& e) {
      lock.unlock();
      return fail(detail::hnswlib_error("rebuild replay", e));
    }
    graph_.swap(fresh);
    journaling_ = false;
    journal_.clear();
    journal_.shrink_to_fit();
  }
  fresh.reset();  // the old graph is freed outside the lock
  {
    std::lock_guard l(stats_mu_);
    ++rebuild_stats_.completed;
    rebuild_stats_.replayed_writes += replayed;
    rebuild_stats_.last_error = ok_status();
  }
  rebuild_pending_.store(false);
  return ok_status();
}

// ---------------------------------------------------------------------------------------------
// Snapshots (format spec: docs/index.md, "Snapshot file format")

namespace {

constexpr char kMagic[8] = {'S', 'H', 'O', 'A', 'L', 'I', 'D', 'X'};
constexpr std::uint32_t kFormatVersion = 1;
constexpr std::size_t kHeaderBytes = 128;
constexpr std::size_t kHeaderHashOffset = 120;
constexpr int kMaxLevel = 64;

template <typename T>
void put(std::vector<char>& buf, std::size_t offset, T v) {
  std::memcpy(buf.data() + offset, &v, sizeof(T));
}
template <typename T>
T get(const char* p, std::size_t offset) {
  T v;
  std::memcpy(&v, p + offset, sizeof(T));
  return v;
}

Status io_error(const std::string& what, const std::string& path, int err) {
  return Status(Code::kIo, what + ": " + std::strerror(err), path);
}

// Writes all of [data, data+size) to fd, retrying short writes.
bool write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = ::write(fd, p, size);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    size -= static_cast<std::size_t>(w);
  }
  return true;
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

Status HnswIndex::save_snapshot(const std::string& path, std::uint64_t covered_position) const {
  if constexpr (std::endian::native != std::endian::little) {
    return Status(Code::kUnimplemented, "snapshots are little-endian only", path);
  }
  std::shared_lock lock(mu_);
  const Graph& g = *graph_;
  const detail::Hnsw& h = *g.h;
  const std::size_t count = g.count();
  const std::size_t level0_bytes = count * h.size_data_per_element_;
  const std::size_t upper_bytes = count * sizeof(std::uint32_t) + g.upper_link_bytes();
  const std::size_t float_bytes = g.float_store ? count * g.dim * sizeof(float) : 0;
  const std::uint64_t payload = level0_bytes + upper_bytes + float_bytes;

  std::vector<char> header(kHeaderBytes, 0);
  std::memcpy(header.data(), kMagic, sizeof(kMagic));
  put<std::uint32_t>(header, 8, kFormatVersion);
  put<std::uint32_t>(header, 12, static_cast<std::uint32_t>(kHeaderBytes));
  put<std::uint32_t>(header, 16, params_.dimension);
  put<std::uint8_t>(header, 20, static_cast<std::uint8_t>(params_.metric));
  put<std::uint8_t>(header, 21, static_cast<std::uint8_t>(params_.quantization));
  put<std::uint8_t>(header, 22, g.float_store ? 1 : 0);
  put<std::uint32_t>(header, 24, params_.m);
  put<std::uint32_t>(header, 28, params_.ef_construction);
  put<float>(header, 32, params_.quant_min);
  put<float>(header, 36, params_.quant_max);
  put<std::uint64_t>(header, 40, covered_position);
  put<std::uint64_t>(header, 48, count);
  put<std::uint64_t>(header, 56, g.deleted());
  put<std::int32_t>(header, 64, h.maxlevel_);
  put<std::uint32_t>(header, 68, h.enterpoint_node_);
  put<std::uint64_t>(header, 72, h.size_data_per_element_);
  put<std::uint64_t>(header, 80, h.size_links_per_element_);
  put<std::uint64_t>(header, 88, payload);
  put<std::uint64_t>(header, kHeaderHashOffset, hash64(header.data(), kHeaderHashOffset));

  const std::string tmp = path + ".tmp";
  // Owner-only, like the store (0600): the snapshot holds every vector. The mode given to open
  // applies only when the file is created; fchmod also covers a temporary file left behind by a
  // crash with another mode. rename() then carries the mode over any older snapshot at `path`.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return io_error("cannot create snapshot", tmp, errno);
  if (::fchmod(fd, 0600) != 0) {
    const int e = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return io_error("cannot restrict snapshot permissions", tmp, e);
  }
  Hasher64 hasher;
  bool ok = true;
  auto emit = [&](const void* p, std::size_t n) {
    if (!ok || n == 0) return;
    hasher.update(p, n);
    ok = write_all(fd, p, n);
  };
  emit(header.data(), header.size());
  emit(h.data_level0_memory_, level0_bytes);
  for (std::size_t i = 0; i < count; ++i) {
    const auto level = static_cast<std::uint32_t>(h.element_levels_[i]);
    emit(&level, sizeof(level));
    emit(h.linkLists_[i], level * h.size_links_per_element_);
  }
  if (float_bytes) emit(g.floats.data(), float_bytes);
  const std::uint64_t digest = hasher.digest();
  if (ok) ok = write_all(fd, &digest, sizeof(digest));
  if (ok && ::fsync(fd) != 0) ok = false;
  const int err = errno;
  if (::close(fd) != 0 && ok) {
    ::unlink(tmp.c_str());
    return io_error("cannot close snapshot", tmp, errno);
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return io_error("cannot write snapshot", tmp, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(tmp.c_str());
    return io_error("cannot rename snapshot into place", path, e);
  }
  const std::string dir = parent_dir(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error("cannot open snapshot directory", dir, errno);
  const int frc = ::fsync(dfd);
  const int ferr = errno;
  ::close(dfd);
  if (frc != 0) return io_error("cannot fsync snapshot directory", dir, ferr);
  return ok_status();
}

Result<HnswIndex::Loaded> HnswIndex::load_snapshot(const std::string& path,
                                                   const IndexParams& expected,
                                                   RebuildExecutor executor) {
  if constexpr (std::endian::native != std::endian::little) {
    return Status(Code::kUnimplemented, "snapshots are little-endian only", path);
  }
  SHOAL_RETURN_IF_ERROR(validate_params(expected));
  // Read the whole file.
  std::vector<char> file;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return io_error("cannot open snapshot", path, errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int e = errno;
      ::close(fd);
      return io_error("cannot stat snapshot", path, e);
    }
    file.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < file.size()) {
      const ssize_t r = ::read(fd, file.data() + got, file.size() - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      got += static_cast<std::size_t>(r);
    }
    ::close(fd);
    file.resize(got);
  }
  const char* p = file.data();
  if (file.size() < sizeof(kMagic) || std::memcmp(p, kMagic, sizeof(kMagic)) != 0) {
    return Status(Detail::kBadMagic, "not a Shoal index snapshot", path);
  }
  if (file.size() < 12) return Status(Detail::kTruncated, "snapshot ends inside its header", path);
  const auto version = get<std::uint32_t>(p, 8);
  if (version != kFormatVersion) {
    return Status(Detail::kVersionMismatch, "snapshot format version " + std::to_string(version) +
                                                ", this build reads version " +
                                                std::to_string(kFormatVersion), path);
  }
  if (file.size() < kHeaderBytes) {
    return Status(Detail::kTruncated, "snapshot ends inside its header (" +
                                          std::to_string(file.size()) + " bytes)", path);
  }
  if (get<std::uint64_t>(p, kHeaderHashOffset) != hash64(p, kHeaderHashOffset)) {
    return Status(Detail::kChecksumMismatch, "snapshot header checksum does not match", path);
  }
  const auto payload = get<std::uint64_t>(p, 88);
  const std::uint64_t expected_size = kHeaderBytes + payload + sizeof(std::uint64_t);
  if (file.size() < expected_size) {
    return Status(Detail::kTruncated, "snapshot has " + std::to_string(file.size()) +
                                          " bytes, its header announces " +
                                          std::to_string(expected_size), path);
  }
  if (file.size() > expected_size) {
    return Status(Detail::kChecksumMismatch, "snapshot has trailing bytes", path);
  }
  if (get<std::uint64_t>(p, kHeaderBytes + payload) != hash64(p, kHeaderBytes + payload)) {
    return Status(Detail::kChecksumMismatch, "snapshot checksum does not match", path);
  }

  // Parameters the file was made for.
  auto mismatch = [&](const char* field, std::string file_v, std::string want) {
    return Status(Detail::kParameterMismatch, std::string("snapshot ") + field + " is " + file_v +
                                                  ", the collection expects " + want, path);
  };
  const auto dimension = get<std::uint32_t>(p, 16);
  const auto metric = static_cast<Metric>(get<std::uint8_t>(p, 20));
  const auto quant = static_cast<Quantization>(get<std::uint8_t>(p, 21));
  const bool float_store = get<std::uint8_t>(p, 22) != 0;
  const auto m = get<std::uint32_t>(p, 24);
  const auto efc = get<std::uint32_t>(p, 28);
  const auto qmin = get<float>(p, 32);
  const auto qmax = get<float>(p, 36);
  if (dimension != expected.dimension) return mismatch("dimension", std::to_string(dimension), std::to_string(expected.dimension));
  if (metric != expected.metric) {
    return mismatch("metric", std::to_string(static_cast<int>(metric)), std::string(metric_name(expected.metric)));
  }
  if (m != expected.m) return mismatch("m", std::to_string(m), std::to_string(expected.m));
  if (efc != expected.ef_construction) {
    return mismatch("ef_construction", std::to_string(efc), std::to_string(expected.ef_construction));
  }
  if (quant != expected.quantization) {
    return mismatch("quantization", std::to_string(static_cast<int>(quant)),
                    std::to_string(static_cast<int>(expected.quantization)));
  }
  if (quant == Quantization::kInt8) {
    if (qmin != expected.quant_min || qmax != expected.quant_max) {
      return mismatch("quantization range", std::to_string(qmin) + ".." + std::to_string(qmax),
                      std::to_string(expected.quant_min) + ".." + std::to_string(expected.quant_max));
    }
    if (float_store != expected.keep_float_vectors) {
      return mismatch("keep_float_vectors", float_store ? "true" : "false",
                      expected.keep_float_vectors ? "true" : "false");
    }
  }

  const auto covered = get<std::uint64_t>(p, 40);
  const auto count = get<std::uint64_t>(p, 48);
  const auto max_level = get<std::int32_t>(p, 64);
  const auto entry = get<std::uint32_t>(p, 68);
  const auto sde = get<std::uint64_t>(p, 72);
  const auto slpe = get<std::uint64_t>(p, 80);
  auto corrupt = [&](const std::string& why) {
    return Status(Code::kCorruption, "inconsistent snapshot: " + why, path);
  };
  if (count > kMaxElements) return corrupt("element count " + std::to_string(count));

  std::unique_ptr<HnswIndex> index(new HnswIndex(expected, std::move(executor)));
  try {
    auto g = Graph::make(expected, index->kernels_,
                         std::max<std::size_t>(count, expected.initial_capacity));
    detail::Hnsw& h = *g->h;
    if (sde != h.size_data_per_element_ || slpe != h.size_links_per_element_) {
      return corrupt("element layout differs from this build's hnswlib");
    }
    const std::size_t level0_bytes = count * sde;
    std::size_t off = kHeaderBytes;
    const std::size_t end = kHeaderBytes + payload;
    if (off + level0_bytes > end) return corrupt("level-0 block overruns the payload");
    std::memcpy(h.data_level0_memory_, p + off, level0_bytes);
    off += level0_bytes;
    // From here on hnswlib's destructor frees linkLists_[i] for i < cur_element_count with
    // element_levels_[i] > 0, so set the count only as lists are installed.
    h.cur_element_count = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (off + 4 > end) return corrupt("link lists overrun the payload");
      const auto level = get<std::uint32_t>(p, off);
      off += 4;
      if (level > kMaxLevel) return corrupt("element level " + std::to_string(level));
      const std::size_t bytes = level * slpe;
      if (off + bytes > end) return corrupt("link lists overrun the payload");
      h.element_levels_[i] = static_cast<int>(level);
      h.linkLists_[i] = nullptr;
      if (bytes > 0) {
        h.linkLists_[i] = static_cast<char*>(std::malloc(bytes));
        if (h.linkLists_[i] == nullptr) return Status(Code::kInternal, "out of memory", path);
        std::memcpy(h.linkLists_[i], p + off, bytes);
      }
      h.cur_element_count = i + 1;
      off += bytes;
    }
    if (g->float_store) {
      const std::size_t fb = count * g->dim * sizeof(float);
      if (off + fb > end) return corrupt("float vectors overrun the payload");
      std::memcpy(g->floats.data(), p + off, fb);
      off += fb;
    }
    if (off != end) return corrupt("payload has unparsed bytes");
    // Structure: every link in range, list sizes within the degree, labels unique.
    std::size_t deleted = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
      auto* ll = h.get_linklist0(i);
      const std::size_t n = h.getListCount(ll);
      if (n > h.maxM0_) return corrupt("level-0 list of element " + std::to_string(i) + " too long");
      const auto* ids = reinterpret_cast<const std::uint32_t*>(ll + 1);
      for (std::size_t j = 0; j < n; ++j) {
        if (ids[j] >= count) return corrupt("link out of range at element " + std::to_string(i));
      }
      for (int level = 1; level <= h.element_levels_[i]; ++level) {
        auto* ul = h.get_linklist(i, level);
        const std::size_t un = h.getListCount(ul);
        if (un > h.maxM_) return corrupt("upper list of element " + std::to_string(i) + " too long");
        const auto* uids = reinterpret_cast<const std::uint32_t*>(ul + 1);
        for (std::size_t j = 0; j < un; ++j) {
          if (uids[j] >= count) return corrupt("upper link out of range at element " + std::to_string(i));
        }
      }
      if (h.isMarkedDeleted(i)) ++deleted;
      if (!h.label_lookup_.emplace(h.getExternalLabel(i), i).second) {
        return corrupt("label stored twice");
      }
    }
    if (count > 0) {
      if (entry >= count || max_level < 0 || max_level != h.element_levels_[entry]) {
        return corrupt("entry point");
      }
      h.enterpoint_node_ = entry;
      h.maxlevel_ = max_level;
    }
    // hnswlib's loading path leaves num_deleted_ uninitialised; we count it.
    h.num_deleted_ = deleted;
    index->graph_ = std::move(g);
  } catch (const std::exception& e) {
    return detail::hnswlib_error("snapshot load", e);
  }
  Loaded out;
  out.index = std::move(index);
  out.covered_position = covered;
  return out;
}

}  // namespace shoal::index

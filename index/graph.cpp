// index/graph.cpp: the hnswlib 0.6.2 adapter, the one file that includes hnswlib and knows its
// internals: hnswlib's graph behind detail::Graph (index/hnsw_internal.hpp), the distance space
// over our kernels, our search loop over 0.6.2's memory layout, the two replaced hnswlib members,
// and the snapshot's view of the layout. A newer hnswlib must be re-checked here, and only here.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>
#include <thread>

#include <hnswlib/hnswlib.h>

#include "common/hash.hpp"
#include "common/memory.hpp"
#include "common/random.hpp"
#include "index/hnsw_internal.hpp"

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

namespace shoal::index::detail {

using Hnsw = hnswlib::HierarchicalNSW<float>;

namespace {

struct DistParam {
  std::size_t dim = 0;
  const KernelTable* k = nullptr;
  std::size_t terms_offset = 0;  // int8 inner product: where the IpTerms follow the codes
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
// Minus the inner product estimated from both vectors' codes and terms (index/quantizer.hpp):
// the same value Graph::code_distance computes for a query.
float hn_ip_i8(const void* a, const void* b, const void* p) {
  const auto* dp = static_cast<const DistParam*>(p);
  const auto* ca = static_cast<const std::int8_t*>(a);
  const auto* cb = static_cast<const std::int8_t*>(b);
  return -Quantizer::ip_score(dp->k->dot_i8(ca, cb, dp->dim), Graph::terms_at(ca, dp->terms_offset),
                              Graph::terms_at(cb, dp->terms_offset));
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

}  // namespace

// hnswlib's graph and the space it calls back into.
struct HnswGraph {
  DistParam dist_param;
  std::unique_ptr<Space> space;
  std::unique_ptr<Hnsw> h;
};

// The level-0 array gets transparent huge pages before a snapshot fills it (common/memory.hpp):
// loading a 1M x 128 snapshot otherwise takes one page fault per 4 KiB of the 264 MiB it fills
// (D64); searches walk the array at random, so fewer TLB misses too. An array below 2 MiB is left
// alone. Only a snapshot's load asks, for the array it fills at once: the advice splits the
// array's mapping, so glibc's realloc can no longer mremap it and the next resizeIndex copies it
// (once; the copy asks for nothing). A graph that grows by inserts keeps mremap's copy-free growth.

Status hnswlib_error(const char* what, const std::exception& e) {
  return Status(Code::kInternal, std::string("hnswlib ") + what + " failed: " + e.what());
}

Graph::Graph() = default;
Graph::~Graph() = default;

std::unique_ptr<Graph> Graph::make(const IndexParams& p, const KernelTable* k, std::size_t capacity,
                                   const FloatSource* source) {
  auto g = std::make_unique<Graph>();
  g->params = p;
  g->k = k;
  g->dim = p.dimension;
  g->quantized = p.quantization == Quantization::kInt8;
  // With a source the float vectors are read from it (index/float_source.hpp), never kept here.
  if (g->quantized && p.keep_float_vectors && source != nullptr) g->source = source;
  g->float_store = g->quantized && p.keep_float_vectors && g->source == nullptr;
  g->q = Quantizer::make(p);
  g->calibrated = quant_calibrated(p);
  g->hnsw = std::make_unique<HnswGraph>();
  HnswGraph& hg = *g->hnsw;
  const bool l2 = p.metric == Metric::kL2;
  // hnswlib packs [links | data | label] per element and reads the next element's links as
  // ints: codes are padded to 4 bytes so every element stays 4-byte aligned (a 5-d collection
  // made UBSan report misaligned loads). The distance reads `dim` codes; the padding is zero.
  // Inner product and cosine append their per-vector terms (step, a, b) after the padding.
  g->code_bytes = (g->dim + 3) / 4 * 4;
  g->element_bytes = g->code_bytes + (l2 ? 0 : sizeof(IpTerms));
  hg.dist_param = DistParam{g->dim, k, g->code_bytes};
  if (g->quantized) {
    hg.space = std::make_unique<Space>(g->element_bytes, l2 ? &hn_l2_i8 : &hn_ip_i8, hg.dist_param);
  } else {
    hg.space = std::make_unique<Space>(g->dim * sizeof(float), l2 ? &hn_l2 : &hn_ip, hg.dist_param);
  }
  hg.h = std::make_unique<Hnsw>(hg.space.get(), capacity, p.m, p.ef_construction, p.seed);
  if (g->float_store) g->floats.resize(capacity * g->dim);
  return g;
}

std::size_t Graph::capacity() const noexcept { return hnsw->h->max_elements_; }
std::size_t Graph::count() const noexcept { return hnsw->h->cur_element_count; }
std::size_t Graph::deleted() const noexcept { return hnsw->h->num_deleted_; }

const char* Graph::data(std::uint32_t id) const noexcept {
  const Hnsw& h = *hnsw->h;
  return h.data_level0_memory_ + static_cast<std::size_t>(id) * h.size_data_per_element_ + h.offsetData_;
}
std::uint64_t Graph::label(std::uint32_t id) const noexcept { return hnsw->h->getExternalLabel(id); }
bool Graph::is_deleted(std::uint32_t id) const noexcept { return hnsw->h->isMarkedDeleted(id); }

std::int64_t Graph::find_live(std::uint64_t label) const {
  const Hnsw& h = *hnsw->h;
  auto it = h.label_lookup_.find(label);
  if (it == h.label_lookup_.end() || is_deleted(it->second)) return -1;
  return it->second;
}

bool Graph::stored(std::uint64_t label) const { return hnsw->h->label_lookup_.count(label) != 0; }

int Graph::stored_level(std::uint64_t label) const {
  const Hnsw& h = *hnsw->h;
  const auto it = h.label_lookup_.find(label);
  return it == h.label_lookup_.end() ? -1 : h.element_levels_[it->second];
}

void Graph::prepare(std::span<const float> v, float* out) const noexcept {
  std::copy(v.begin(), v.end(), out);
  if (params.metric == Metric::kCosine) {
    const double inv = inv_norm(v.data());
    for (std::size_t j = 0; j < dim; ++j) out[j] = static_cast<float>(static_cast<double>(v[j]) * inv);
  }
}

// The HNSW level of `label`: floor(-ln(u) * mult) (hnswlib's distribution, mult = 1/ln(M))
// with u uniform in (0, 1] from our Rng seeded by (params.seed, label). A function of the
// label alone, so levels are the same whatever the insertion order or thread count. With 53
// random bits, -ln(u) <= 36.8, so the level stays below the snapshot loader's limit of 64.
int Graph::level_of(std::uint64_t label) const noexcept {
  std::uint64_t mix = label;
  Rng rng(params.seed ^ splitmix64(mix));
  const double u = 1.0 - rng.uniform_double();
  return static_cast<int>(-std::log(u) * hnsw->h->mult_);
}

// In double: the norm of a vector of tiny components (valid input) has a reciprocal beyond
// float's range. Four partial sums let the compiler use vector registers.
double Graph::inv_norm(const float* v) const noexcept {
  double n2[4] = {0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    for (std::size_t j = 0; j < 4; ++j) n2[j] += static_cast<double>(v[i + j]) * static_cast<double>(v[i + j]);
  }
  for (; i < dim; ++i) n2[0] += static_cast<double>(v[i]) * static_cast<double>(v[i]);
  return 1.0 / std::sqrt((n2[0] + n2[1]) + (n2[2] + n2[3]));
}

void Graph::set_range(float lo, float hi) noexcept {
  if (!calibrated) return;
  has_range = true;
  range_lo = lo;
  range_hi = hi;
  q = Quantizer::for_range(lo, hi);
}

void Graph::encode(const float* prepared, char* out) const noexcept {
  auto* codes = reinterpret_cast<std::int8_t*>(out);
  std::fill(codes + dim, codes + code_bytes, std::int8_t{0});
  if (params.metric == Metric::kL2) {
    q.encode(prepared, codes, dim);
  } else {
    const IpTerms t = q.encode_ip(prepared, codes, dim);
    std::memcpy(out + code_bytes, &t, sizeof(t));
  }
}

void Graph::decode(const char* elem, const Quantizer& with, float* out) const noexcept {
  const auto* codes = reinterpret_cast<const std::int8_t*>(elem);
  if (params.metric == Metric::kL2) {
    for (std::size_t i = 0; i < dim; ++i) out[i] = with.decode(codes[i]);
  } else {
    const float vstep = terms_at(elem, code_bytes).step;
    for (std::size_t i = 0; i < dim; ++i) out[i] = with.decode_ip(codes[i], vstep);
  }
}

void Graph::cover(std::span<const float> rows, bool prepared) {
  if (!calibrated || rows.empty()) return;
  const bool normalize = params.metric == Metric::kCosine && !prepared;
  float lo = std::numeric_limits<float>::max();
  float hi = std::numeric_limits<float>::lowest();
  if (has_range) {
    lo = range_lo;
    hi = range_hi;
  }
  for (std::size_t r = 0; r + dim <= rows.size(); r += dim) {
    float rlo = rows[r], rhi = rows[r];
    for (std::size_t i = r; i < r + dim; ++i) {
      rlo = std::min(rlo, rows[i]);
      rhi = std::max(rhi, rows[i]);
    }
    if (normalize) {
      // What prepare() makes of them: scaling by a positive factor keeps the order.
      const double inv = inv_norm(rows.data() + r);
      rlo = static_cast<float>(static_cast<double>(rlo) * inv);
      rhi = static_cast<float>(static_cast<double>(rhi) * inv);
    }
    lo = std::min(lo, rlo);
    hi = std::max(hi, rhi);
  }
  if (has_range && lo == range_lo && hi == range_hi) return;
  const Quantizer old = q;
  set_range(lo, hi);
  if (old == q) return;
  // The codes of every stored element follow the new range. The links were chosen with the old
  // codes; the range only ever widens between rebuilds, so the graph stays a good one.
  Hnsw& h = *hnsw->h;
  const std::size_t n = count();
  std::vector<float> decoded(dim);
  const std::unique_ptr<FloatReader> r = reader();
  for (std::size_t id = 0; id < n; ++id) {
    char* elem = h.data_level0_memory_ + id * h.size_data_per_element_ + h.offsetData_;
    const float* v = float_store ? floats.data() + id * dim : nullptr;
    if (v == nullptr && source_vector(static_cast<std::uint32_t>(id), r.get(), decoded.data())) v = decoded.data();
    if (v == nullptr) {
      decode(elem, old, decoded.data());
      v = decoded.data();
    }
    encode(v, elem);
  }
}

// hnswlib's update path (addPoint on a present label) touches a generator shared by the graph
// (updatePoint's update_probability_generator_), hence the one-thread rule for updates.
void Graph::insert(std::uint64_t label, const float* prepared) {
  Hnsw& h = *hnsw->h;
  const int level = level_of(label);
  if (quantized) {
    std::vector<char> elem(element_bytes);  // hnswlib copies the whole element's data
    encode(prepared, elem.data());
    const auto id = h.addPoint(elem.data(), label, level);
    if (float_store) std::copy_n(prepared, dim, floats.data() + static_cast<std::size_t>(id) * dim);
  } else {
    h.addPoint(prepared, label, level);
  }
}

void Graph::mark_deleted(std::uint64_t label) { hnsw->h->markDelete(label); }

void Graph::grow(std::size_t new_capacity) {
  hnsw->h->resizeIndex(new_capacity);
  if (float_store) floats.resize(new_capacity * dim);
}

std::size_t Graph::upper_link_bytes() const noexcept {
  const Hnsw& h = *hnsw->h;
  std::size_t total = 0;
  for (std::size_t i = 0; i < count(); ++i) {
    total += static_cast<std::size_t>(h.element_levels_[i]) * h.size_links_per_element_;
  }
  return total;
}

MemoryUsage Graph::memory() const {
  const Hnsw& h = *hnsw->h;
  MemoryUsage m;
  const std::size_t cap = capacity();
  m.vector_bytes = cap * h.data_size_ + floats.capacity() * sizeof(float);
  m.graph_bytes = cap * (h.size_links_level0_ + sizeof(hnswlib::labeltype)) + upper_link_bytes() +
                  cap * (sizeof(std::mutex) + sizeof(int) + sizeof(void*) +
                         sizeof(hnswlib::vl_type)) +
                  Hnsw::max_update_element_locks * sizeof(std::mutex);
  m.other_bytes = h.label_lookup_.size() * 40 + h.label_lookup_.bucket_count() * sizeof(void*);
  return m;
}

namespace {

// Beam search on level 0 from `ep` (hnswlib's searchBaseLayerST, with a batched prefetching
// expansion and an admission test). With kCheck, only admitted ids enter the results, and the
// loop keeps exploring until it holds ef admitted ids or the reachable graph is exhausted.
template <bool kCheck, class Dist, class Admit>
void beam_search(const Graph& g, const Dist& dist, std::uint32_t ep, float ep_dist, std::size_t ef,
                 const Admit& admit, Scratch& s, std::uint64_t& ndist) {
  const Hnsw& h = *g.hnsw->h;
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
  const Hnsw& h = *g.hnsw->h;
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

}  // namespace

void Graph::search(const float* query, const std::int8_t* qc, std::size_t ef, const Admission& a,
                   Scratch& s, std::uint64_t& ndist) const {
  const Graph& g = *this;
  const bool filtered = a.label_ok != nullptr;
  auto run_graph = [&](const auto& dist) {
    const Cand entry = descend(g, dist, ndist);
    if (filtered || g.deleted() > 0) {
      auto admit = [&](std::uint32_t id) {
        return !g.is_deleted(id) && (!filtered || a.label_ok(a.ctx, g.label(id)));
      };
      beam_search<true>(g, dist, entry.id, entry.d, ef, admit, s, ndist);
    } else {
      auto admit = [](std::uint32_t) { return true; };
      beam_search<false>(g, dist, entry.id, entry.d, ef, admit, s, ndist);
    }
  };
  if (g.quantized) {
    if (g.params.metric == Metric::kL2) {
      run_graph([&](std::uint32_t id) {
        return static_cast<float>(
            g.k->l2sq_i8(qc, reinterpret_cast<const std::int8_t*>(g.data(id)), dim));
      });
    } else {
      const IpTerms qt = terms_at(qc, code_bytes);
      run_graph([&](std::uint32_t id) {
        const char* e = g.data(id);
        return -Quantizer::ip_score(g.k->dot_i8(qc, reinterpret_cast<const std::int8_t*>(e), dim), qt,
                                    terms_at(e, g.code_bytes));
      });
    }
  } else if (g.params.metric == Metric::kL2) {
    run_graph([&](std::uint32_t id) {
      return g.k->l2sq(query, reinterpret_cast<const float*>(g.data(id)), dim);
    });
  } else {
    run_graph([&](std::uint32_t id) {
      return 1.0f - g.k->dot(query, reinterpret_cast<const float*>(g.data(id)), dim);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Snapshot support: hnswlib's layout as the snapshot stores it (format: snapshot.cpp).

Graph::Layout Graph::layout() const noexcept {
  const Hnsw& h = *hnsw->h;
  Layout l;
  l.max_level = h.maxlevel_;
  l.entry = h.enterpoint_node_;
  l.data_bytes_per_element = h.size_data_per_element_;
  l.link_bytes_per_level = h.size_links_per_element_;
  return l;
}

void Graph::write_links(const std::function<void(const void*, std::size_t)>& emit) const {
  const Hnsw& h = *hnsw->h;
  const std::size_t n = count();
  emit(h.data_level0_memory_, n * h.size_data_per_element_);
  for (std::size_t i = 0; i < n; ++i) {
    const auto level = static_cast<std::uint32_t>(h.element_levels_[i]);
    emit(&level, sizeof(level));
    emit(h.linkLists_[i], level * h.size_links_per_element_);
  }
}

namespace {
// While a snapshot's level-0 block is read front to back into fresh memory, a second thread
// faults the block's pages in from the back (D70): the kernel zeroes every fresh page before the
// read copies into it, the largest single cost of an open (1M x 128: 264 MiB), and the two halves
// of that work then run on two cores. The thread only populates pages (never writes a byte), so
// pages the read reached first are left alone; it stops where it meets the read's front, when
// the kernel refuses, or when the object is destroyed. Blocks under kMinBytes, and machines with
// one core, get no thread.
class BackFaulter {
 public:
  static constexpr std::size_t kMinBytes = std::size_t{64} << 20;
  static constexpr std::size_t kStep = std::size_t{8} << 20;  // populated per call, and read per take

  BackFaulter(char* base, std::size_t bytes) : base_(base), bytes_(bytes) {
    if (bytes < kMinBytes || std::thread::hardware_concurrency() < 2) return;
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error&) {
      // No thread: the read faults every page itself, as without this.
    }
  }
  ~BackFaulter() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
  }
  BackFaulter(const BackFaulter&) = delete;
  BackFaulter& operator=(const BackFaulter&) = delete;
  // The read has filled [0, at).
  void reached(std::size_t at) noexcept { front_.store(at, std::memory_order_relaxed); }

 private:
  void run() noexcept {
    std::size_t end = bytes_;
    while (!stop_.load(std::memory_order_relaxed)) {
      const std::size_t begin = end > kStep ? end - kStep : 0;
      // Leave a step of room ahead of the read: it faults its own pages there.
      if (begin <= front_.load(std::memory_order_relaxed) + kStep) return;
      if (!populate_for_write(base_ + begin, end - begin)) return;
      end = begin;
    }
  }

  char* const base_;
  const std::size_t bytes_;
  std::atomic<std::size_t> front_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};
}  // namespace

Status Graph::read_links(const std::function<bool(void*, std::size_t)>& take, std::uint64_t count,
                         const Layout& file, const std::string& path) {
  Hnsw& h = *hnsw->h;
  const std::uint64_t sde = file.data_bytes_per_element;
  const std::uint64_t slpe = file.link_bytes_per_level;
  if (sde != h.size_data_per_element_ || slpe != h.size_links_per_element_) {
    return snapshot_corrupt(path, "element layout differs from this build's hnswlib");
  }
  advise_huge_pages(h.data_level0_memory_, h.max_elements_ * sde);
  {
    const std::size_t block = count * sde;
    BackFaulter faulter(h.data_level0_memory_, block);
    for (std::size_t at = 0; at < block;) {
      const std::size_t n = std::min(BackFaulter::kStep, block - at);
      if (!take(h.data_level0_memory_ + at, n)) return snapshot_corrupt(path, "level-0 block overruns the payload");
      at += n;
      faulter.reached(at);
    }
  }
  // From here on hnswlib's destructor frees linkLists_[i] for i < cur_element_count with
  // element_levels_[i] > 0, so set the count only as lists are installed.
  h.cur_element_count = 0;
  for (std::size_t i = 0; i < count; ++i) {
    std::uint32_t level;
    if (!take(&level, sizeof(level))) return snapshot_corrupt(path, "link lists overrun the payload");
    if (level > kSnapshotMaxLevel) return snapshot_corrupt(path, "element level " + std::to_string(level));
    const std::size_t bytes = level * slpe;
    h.element_levels_[i] = static_cast<int>(level);
    h.linkLists_[i] = nullptr;
    if (bytes > 0) {
      h.linkLists_[i] = static_cast<char*>(std::malloc(bytes));
      if (h.linkLists_[i] == nullptr) return Status(Code::kInternal, "out of memory", path);
    }
    h.cur_element_count = i + 1;
    if (bytes > 0 && !take(h.linkLists_[i], bytes)) return snapshot_corrupt(path, "link lists overrun the payload");
  }
  return ok_status();
}

Status Graph::finish_load(std::uint64_t count, const Layout& file, const std::string& path) {
  Hnsw& h = *hnsw->h;
  auto corrupt = [&](const std::string& why) { return snapshot_corrupt(path, why); };
  // Structure: every link in range, list sizes within the degree, labels unique.
  std::size_t deleted = 0;
  h.label_lookup_.reserve(count);  // one allocation of the buckets, not a rehash per doubling
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
    if (file.entry >= count || file.max_level < 0 || file.max_level != h.element_levels_[file.entry]) {
      return corrupt("entry point");
    }
    h.enterpoint_node_ = file.entry;
    h.maxlevel_ = file.max_level;
  }
  // hnswlib's loading path leaves num_deleted_ uninitialised; we count it.
  h.num_deleted_ = deleted;
  return ok_status();
}

}  // namespace shoal::index::detail

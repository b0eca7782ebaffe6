// index/search.cpp: HnswIndex::search: the request's plan (an exact scan for small collections
// and selective filters, planner.cpp), the exact scans, the graph search (graph.cpp) and the
// re-ranking of int8 results with the float vectors.
#include <algorithm>
#include <exception>
#include <vector>

#include "index/hnsw_index.hpp"
#include "index/hnsw_internal.hpp"
#include "index/topk.hpp"

namespace shoal::index {

using detail::Graph;

namespace {
thread_local detail::Scratch tl_scratch;
}  // namespace

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

  detail::Scratch& s = tl_scratch;
  s.query.resize(dim);
  g.prepare(req.query, s.query.data());
  const float* q = s.query.data();
  if (g.quantized) {
    s.codes.resize(g.element_bytes);
    g.encode(q, reinterpret_cast<char*>(s.codes.data()));
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
  // Int8 graphs whose floats live in the caller's source read them through one reader per search.
  std::unique_ptr<FloatReader> reader;
  if (g.source != nullptr) reader = g.reader();
  // The candidates to re-rank and their distances, measured in one pass (Graph::rerank_many).
  thread_local std::vector<std::uint32_t> rerank_ids;
  thread_local std::vector<float> rerank_d;
  auto exact_scan = [&](Plan plan, const auto& each_id) {
    if (g.reranks()) {
      detail::TopK coarse(std::max(ef, 4 * k));
      each_id([&](std::uint32_t id) {
        coarse.push(g.code_distance(qc, id), id);
        ++out.distance_count;
      });
      detail::TopK top(k);
      rerank_ids.clear();
      for (const Neighbor& n : coarse.take_sorted()) rerank_ids.push_back(static_cast<std::uint32_t>(n.label));
      rerank_d.resize(rerank_ids.size());
      g.rerank_many(q, qc, rerank_ids, reader.get(), rerank_d.data());
      for (std::size_t i = 0; i < rerank_ids.size(); ++i) top.push(rerank_d[i], g.label(rerank_ids[i]));
      out.distance_count += rerank_ids.size();
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

  // Planner (planner.cpp): the estimated costs of an exact scan and of the graph.
  if (filtered) {
    if (detail::prefer_exact_scan(req, live, ef)) {
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

  detail::Admission admission;
  using AdmitLabel = decltype(admit_label);
  if (filtered) {
    admission.ctx = &admit_label;
    admission.label_ok = [](const void* ctx, std::uint64_t label) {
      return (*static_cast<const AdmitLabel*>(ctx))(label);
    };
  }
  try {
    g.search(q, qc, ef, admission, s, out.distance_count);
  } catch (const std::exception& e) {
    return detail::hnswlib_error("search", e);
  }

  // Results: exact re-ranking when floats are kept; code distances scaled otherwise.
  detail::TopK top(k);
  if (g.reranks()) {
    rerank_ids.clear();
    for (const detail::Cand& c : s.top) rerank_ids.push_back(c.id);
    rerank_d.resize(rerank_ids.size());
    g.rerank_many(q, qc, rerank_ids, reader.get(), rerank_d.data());
    for (std::size_t i = 0; i < rerank_ids.size(); ++i) top.push(rerank_d[i], g.label(rerank_ids[i]));
    out.distance_count += rerank_ids.size();
  } else {
    for (const detail::Cand& c : s.top) {
      top.push(g.quantized ? g.code_distance_scaled(c.d) : c.d, g.label(c.id));
    }
  }
  out.plan = Plan::kGraph;
  out.neighbors = top.take_sorted();
  if (filtered && out.neighbors.size() < k) {
    // The reachable graph held fewer than k matches; the exact scan is the guarantee.
    exact_scan_all(Plan::kGraphThenExact);
  }
  return out;
}

}  // namespace shoal::index

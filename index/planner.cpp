// index/planner.cpp: the filtered-search planner: the index's cost model (prefer_exact_scan,
// index/hnsw_internal.hpp) and the caller's selectivity pre-planner (plan_filter,
// index/planner.hpp).
#include "index/planner.hpp"

#include <algorithm>
#include <span>

#include "index/hnsw_internal.hpp"

namespace shoal::index {

namespace {

// The planner's cost model, in distance computations. The graph spends about this many per
// result it keeps, per unit of selectivity (Fashion-MNIST, M=16: ~640 distances for ef=32 at 50%).
constexpr double kGraphVisitsPerResult = 10.0;
// An exact scan of the matching set costs more per distance than the graph (a label-map lookup
// and an unprefetched random read each): measured ~3x on Fashion-MNIST.
constexpr double kExactCostFactor = 3.0;

}  // namespace

namespace detail {

bool prefer_exact_scan(const SearchRequest& req, std::size_t live, std::size_t ef) {
  double sel = 1.0;
  if (req.matching_labels.has_value()) {
    sel = std::min(1.0, static_cast<double>(req.matching_labels->size()) / static_cast<double>(live));
  } else if (req.estimated_selectivity > 0.0) {
    sel = req.estimated_selectivity;
  }
  sel = std::max(sel, 1e-9);
  const double graph_cost = kGraphVisitsPerResult * static_cast<double>(ef) / sel;
  const double exact_cost = kExactCostFactor * sel * static_cast<double>(live);
  return exact_cost <= graph_cost;
}

}  // namespace detail

void plan_filter(SearchRequest& req, std::uint64_t label_begin, std::uint64_t label_end,
                 const LabelPredicate& present, const LabelPredicate& matches,
                 std::vector<std::uint64_t>& matching_out) {
  req.filter = &matches;
  // Estimate the selectivity on an evenly spaced sample; enumerate the matching set when the
  // filter is selective (the index's planner then searches only that set).
  const std::uint64_t n = label_end;
  const std::uint64_t step = std::max<std::uint64_t>(1, n / kFilterSampleTarget);
  std::size_t sampled = 0, hits = 0;
  for (std::uint64_t l = label_begin; l < n; l += step) {
    if (!present(l)) continue;
    ++sampled;
    hits += matches(l) ? 1 : 0;
  }
  const double selectivity = sampled == 0 ? 1.0 : static_cast<double>(hits) / static_cast<double>(sampled);
  if (selectivity < kEnumerateBelowSelectivity) {
    for (std::uint64_t l = label_begin; l < n; ++l) {
      if (matches(l)) matching_out.push_back(l);
    }
    req.matching_labels = std::span<const std::uint64_t>(matching_out);
  } else {
    req.estimated_selectivity = selectivity;
  }
}

}  // namespace shoal::index

// index/planner.hpp: the filtered-search planner's caller side: plan_filter, the selectivity
// pre-planner a caller that owns the metadata (the node) runs before HnswIndex::search.
//
// Role: the planner has two halves, both in planner.cpp. The index's half (used by
// HnswIndex::search) compares the estimated cost of an exact scan of the matching set with that
// of the widening graph search (index/hnsw_index.hpp, "Planner"). This half fills a
// SearchRequest's filter fields so that the index's half has what it needs: it estimates the
// filter's selectivity on an evenly spaced sample of labels, and when the filter is selective
// enumerates the matching labels (the exact path then scans only those); otherwise it passes
// the estimate on.
// Thread rules: a pure function of its arguments; the predicates run on the calling thread.
#pragma once

#include <cstdint>
#include <vector>

#include "index/types.hpp"

namespace shoal::index {

// Below this sampled share of matches, plan_filter enumerates the matching labels.
inline constexpr double kEnumerateBelowSelectivity = 0.05;
// plan_filter samples about this many labels (every (label_end / kFilterSampleTarget)-th).
inline constexpr std::uint64_t kFilterSampleTarget = 1024;

// Prepares `req` for a filtered search over the caller's labels [label_begin, label_end):
// `present(l)` says whether label l holds a live record, `matches(l)` whether it matches the
// filter (false for an absent label). Sets req.filter = &matches (which must outlive the
// search), then either req.matching_labels (a span over `matching_out`, which must outlive the
// search too) or req.estimated_selectivity. The sample is every step-th label from label_begin,
// step = max(1, label_end / kFilterSampleTarget), counting present labels only; with none
// sampled the filter is taken as broad (selectivity 1).
void plan_filter(SearchRequest& req, std::uint64_t label_begin, std::uint64_t label_end,
                 const LabelPredicate& present, const LabelPredicate& matches,
                 std::vector<std::uint64_t>& matching_out);

}  // namespace shoal::index

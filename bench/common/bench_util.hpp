// bench/common/bench_util.hpp: what every benchmark shares: loading Fashion-MNIST, exact
// ground truth (computed once with 2 threads and cached outside the repository), recall, latency
// percentiles and resident memory.
// Thread rules: functions; ground_truth() uses two threads internally.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "node/io/datasets.hpp"

namespace shoal::bench {

struct Dataset {
  io::VectorSet base;     // 60,000 x 784 for Fashion-MNIST
  io::VectorSet queries;  // 10,000 x 784
};

// Loads train-images (base) and t10k-images (queries) from `dir`, e.g.
// /usr/share/datasets/fashion-mnist. `base_limit`/`query_limit` of 0 mean all.
[[nodiscard]] Result<Dataset> load_fashion_mnist(const std::string& dir, std::size_t base_limit = 0,
                                                 std::size_t query_limit = 0);

// $XDG_CACHE_HOME/shoal, else ~/.cache/shoal, else <tmp>/shoal-cache.
std::string cache_dir();

// Exact squared-L2 top-k row indexes of `base` for every query (queries.count x k), closest first,
// cached in cache_dir() under a hash of the data; prints where it came from.
std::vector<std::uint32_t> ground_truth_l2(const io::VectorSet& base, const io::VectorSet& queries,
                                           std::size_t k);

// |found ∩ truth[0..k)| / k.
double recall_at_k(const std::vector<std::uint64_t>& found, const std::uint32_t* truth, std::size_t k);

// The p-th percentile (0..100) of `values` (sorted in place); 0 for an empty vector.
double percentile(std::vector<double>& values, double p);

// Resident set size of this process in bytes (from /proc/self/statm).
std::size_t rss_bytes();

// Two loops timed in alternating rounds over the same amount of work each (the system measured,
// then its anchor), so that a drifting resource such as the disk's sync latency affects both
// alike: the ratio of their rates over all rounds (anchor seconds / measured seconds), and the
// spread of that ratio round by round.
struct RoundRatio {
  double ratio = 0;   // total anchor time / total measured time = measured rate / anchor rate
  double lowest = 0;  // the per-round ratios: lowest, median, highest
  double median = 0;
  double highest = 0;
};
RoundRatio round_ratio(const std::vector<double>& measured_s, const std::vector<double>& anchor_s);

}  // namespace shoal::bench

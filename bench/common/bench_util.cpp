#include "bench/common/bench_util.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "common/hash.hpp"
#include "common/time.hpp"
#include "index/kernels.hpp"
#include "index/topk.hpp"

namespace shoal::bench {

Result<Dataset> load_fashion_mnist(const std::string& dir, std::size_t base_limit,
                                   std::size_t query_limit) {
  Dataset d;
  SHOAL_ASSIGN_OR_RETURN(d.base, io::read_vectors(dir + "/train-images-idx3-ubyte.gz",
                                                  io::VectorFormat::kIdx, base_limit));
  SHOAL_ASSIGN_OR_RETURN(d.queries, io::read_vectors(dir + "/t10k-images-idx3-ubyte.gz",
                                                     io::VectorFormat::kIdx, query_limit));
  return d;
}

std::string cache_dir() {
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') return std::string(x) + "/shoal";
  if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') return std::string(h) + "/.cache/shoal";
  return (std::filesystem::temp_directory_path() / "shoal-cache").string();
}

namespace {
std::vector<std::uint32_t> compute_ground_truth(const io::VectorSet& base, const io::VectorSet& queries,
                                                std::size_t k) {
  const index::KernelTable& kt = index::best_kernels();
  std::vector<std::uint32_t> gt(queries.count * k);
  std::atomic<std::size_t> next{0};
  // Blocks of queries share each base row while it is in cache.
  constexpr std::size_t kBlock = 32;
  auto worker = [&] {
    for (;;) {
      const std::size_t q0 = next.fetch_add(kBlock);
      if (q0 >= queries.count) return;
      const std::size_t q1 = std::min(q0 + kBlock, queries.count);
      std::vector<index::detail::TopK> tops;
      for (std::size_t q = q0; q < q1; ++q) tops.emplace_back(k);
      for (std::size_t i = 0; i < base.count; ++i) {
        for (std::size_t q = q0; q < q1; ++q) {
          tops[q - q0].push(kt.l2sq(queries.row(q), base.row(i), base.dimension), i);
        }
      }
      for (std::size_t q = q0; q < q1; ++q) {
        auto n = tops[q - q0].take_sorted();
        for (std::size_t j = 0; j < k && j < n.size(); ++j) gt[q * k + j] = static_cast<std::uint32_t>(n[j].label);
      }
    }
  };
  std::thread t(worker);
  worker();
  t.join();
  return gt;
}
}  // namespace

std::vector<std::uint32_t> ground_truth_l2(const io::VectorSet& base, const io::VectorSet& queries,
                                           std::size_t k) {
  Hasher64 h;
  h.update(base.data.data(), base.data.size() * sizeof(float));
  h.update(queries.data.data(), queries.data.size() * sizeof(float));
  char name[80];
  std::snprintf(name, sizeof(name), "gt-l2-%016llx-k%zu.bin", static_cast<unsigned long long>(h.digest()), k);
  const std::string path = cache_dir() + "/" + name;
  std::vector<std::uint32_t> gt(queries.count * k);
  {
    std::ifstream in(path, std::ios::binary);
    if (in && in.read(reinterpret_cast<char*>(gt.data()), static_cast<std::streamsize>(gt.size() * 4))) {
      std::printf("ground truth: cached %s\n", path.c_str());
      return gt;
    }
  }
  const MonoTime t0 = now_mono();
  gt = compute_ground_truth(base, queries, k);
  std::printf("ground truth: computed in %.1f s, cached at %s\n", (now_mono() - t0).seconds_f(), path.c_str());
  std::error_code ec;
  std::filesystem::create_directories(cache_dir(), ec);
  {
    std::ofstream out(path + ".tmp", std::ios::binary);
    out.write(reinterpret_cast<const char*>(gt.data()), static_cast<std::streamsize>(gt.size() * 4));
  }
  std::filesystem::rename(path + ".tmp", path, ec);
  return gt;
}

double recall_at_k(const std::vector<std::uint64_t>& found, const std::uint32_t* truth, std::size_t k) {
  std::size_t hit = 0;
  for (std::size_t i = 0; i < k; ++i) {
    if (std::find(found.begin(), found.end(), truth[i]) != found.end()) ++hit;
  }
  return static_cast<double>(hit) / static_cast<double>(k);
}

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto idx = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(values.size()))) ;
  return values[std::min(values.size() - 1, idx == 0 ? 0 : idx - 1)];
}

RoundRatio round_ratio(const std::vector<double>& measured_s, const std::vector<double>& anchor_s) {
  RoundRatio r;
  const std::size_t rounds = std::min(measured_s.size(), anchor_s.size());
  if (rounds == 0) return r;
  double measured = 0, anchor = 0;
  std::vector<double> each;
  for (std::size_t i = 0; i < rounds; ++i) {
    measured += measured_s[i];
    anchor += anchor_s[i];
    each.push_back(anchor_s[i] / measured_s[i]);
  }
  r.ratio = anchor / measured;
  r.lowest = *std::min_element(each.begin(), each.end());
  r.highest = *std::max_element(each.begin(), each.end());
  r.median = percentile(each, 50);
  return r;
}

std::size_t rss_bytes() {
  std::ifstream in("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  in >> pages >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

}  // namespace shoal::bench

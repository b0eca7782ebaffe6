// A writer process for kill9_test: opens DIR, ensures collection "k" (dim 8), and from batch
// number FIRST on forever: upserts batch b atomically (batch_size(seed, b) records "b<b>-<i>"),
// prints "a <b>" once it is acknowledged, then deletes record "b<b-2>-0" and prints "d <b-2>"
// once that is acknowledged. The parent kills it with SIGKILL at a random moment.
//   kill9_writer DIR SEED FIRST
// With a fourth argument THREADS, it instead runs THREADS writer threads at once (group commit):
// thread t upserts single records "m<FIRST>-t<t>-<n>" for n = 0, 1, ... (metadata first, t, n),
// printing "m <t> <n>" once each is acknowledged.
// With a fourth argument "close", it instead closes and reopens the data directory every 3
// batches (records "b<b>-<i>" with distinct_vector), with the index thread paused so the queue
// still holds the batches at each close (a quick close, D65): "a <b>" per acknowledged batch,
// "c" after each close returned, "o" after each open.
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "node/runtime/data_dir.hpp"
#include "tests/node/kill9_common.hpp"

namespace {

int run_threads(shoal::node::SharedNode& node, std::uint64_t first, unsigned threads) {
  std::mutex out;
  std::vector<std::thread> writers;
  for (unsigned t = 0; t < threads; ++t) {
    writers.emplace_back([&, t] {
      for (std::uint64_t n = 0;; ++n) {
        shoal::node::RecordValue v{shoal::kill9::vector_of(first * 64 + t, n), {}, ""};
        v.metadata.fields = {{"first", static_cast<std::int64_t>(first)},
                             {"t", static_cast<std::int64_t>(t)},
                             {"n", static_cast<std::int64_t>(n)}};
        const shoal::Status s = node.upsert("k", shoal::kill9::thread_record_id(first, t, n), std::move(v));
        if (!s.ok()) {
          std::fprintf(stderr, "writer: %s\n", s.to_string().c_str());
          std::_Exit(1);
        }
        std::lock_guard l(out);
        std::printf("m %u %llu\n", t, static_cast<unsigned long long>(n));
        std::fflush(stdout);
      }
    });
  }
  for (auto& w : writers) w.join();
  return 0;
}

int run_closing(const std::string& dir, std::uint64_t seed, std::uint64_t first) {
  for (std::uint64_t b = first;;) {
    auto d = shoal::node::open_data_dir(dir, {});
    if (!d.ok()) {
      std::fprintf(stderr, "writer: %s\n", d.status().to_string().c_str());
      return 1;
    }
    auto& node = (*d)->node();
    if (!node.collection_info("k").ok()) {
      if (!node.create_collection({"k", 8, shoal::node::Metric::kL2}).ok()) return 1;
    }
    std::printf("o\n");
    std::fflush(stdout);
    node.pause_index_for_testing(true);
    for (int j = 0; j < 3; ++j, ++b) {
      std::vector<shoal::node::RecordInput> batch;
      for (std::uint64_t i = 0; i < shoal::kill9::batch_size(seed, b); ++i) {
        shoal::node::RecordValue v{shoal::kill9::distinct_vector(b, i), {}, ""};
        batch.push_back({shoal::kill9::record_id(b, i), std::move(v)});
      }
      if (!node.upsert_batch("k", std::move(batch)).ok()) return 1;
      std::printf("a %llu\n", static_cast<unsigned long long>(b));
      std::fflush(stdout);
    }
    d->reset();  // close with the three batches still queued
    std::printf("c\n");
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) return 2;
  const std::string dir = argv[1];
  const std::uint64_t seed = std::strtoull(argv[2], nullptr, 10);
  const std::uint64_t first = std::strtoull(argv[3], nullptr, 10);
  if (argc == 5 && std::string(argv[4]) == "close") return run_closing(dir, seed, first);
  auto d = shoal::node::open_data_dir(dir, {});
  if (!d.ok()) {
    std::fprintf(stderr, "writer: %s\n", d.status().to_string().c_str());
    return 1;
  }
  auto& node = (*d)->node();
  if (!node.collection_info("k").ok()) {
    if (!node.create_collection({"k", 8, shoal::node::Metric::kL2}).ok()) return 1;
  }
  if (argc == 5) return run_threads(node, first, static_cast<unsigned>(std::strtoul(argv[4], nullptr, 10)));
  for (std::uint64_t b = first;; ++b) {
    std::vector<shoal::node::RecordInput> batch;
    for (std::uint64_t i = 0; i < shoal::kill9::batch_size(seed, b); ++i) {
      shoal::node::RecordValue v{shoal::kill9::vector_of(b, i), {}, ""};
      v.metadata.fields = {{"batch", static_cast<std::int64_t>(b)}, {"i", static_cast<std::int64_t>(i)}};
      batch.push_back({shoal::kill9::record_id(b, i), std::move(v)});
    }
    if (!node.upsert_batch("k", std::move(batch)).ok()) return 1;
    std::printf("a %llu\n", static_cast<unsigned long long>(b));
    std::fflush(stdout);
    if (b >= first + 2) {
      if (!node.remove("k", shoal::kill9::record_id(b - 2, 0)).ok()) return 1;
      std::printf("d %llu\n", static_cast<unsigned long long>(b - 2));
      std::fflush(stdout);
    }
  }
}

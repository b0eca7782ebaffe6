// A writer process for kill9_test: opens DIR, ensures collection "k" (dim 8), and from batch
// number FIRST on forever: upserts batch b atomically (batch_size(seed, b) records "b<b>-<i>"),
// prints "a <b>" once it is acknowledged, then deletes record "b<b-2>-0" and prints "d <b-2>"
// once that is acknowledged. The parent kills it with SIGKILL at a random moment.
//   kill9_writer DIR SEED FIRST
#include <cstdio>
#include <cstdlib>
#include <string>

#include "node/runtime/data_dir.hpp"
#include "tests/node/kill9_common.hpp"

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  const std::string dir = argv[1];
  const std::uint64_t seed = std::strtoull(argv[2], nullptr, 10);
  const std::uint64_t first = std::strtoull(argv[3], nullptr, 10);
  auto d = shoal::node::open_data_dir(dir, {});
  if (!d.ok()) {
    std::fprintf(stderr, "writer: %s\n", d.status().to_string().c_str());
    return 1;
  }
  auto& node = (*d)->node();
  if (!node.collection_info("k").ok()) {
    if (!node.create_collection({"k", 8, shoal::node::Metric::kL2}).ok()) return 1;
  }
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

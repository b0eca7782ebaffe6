// Proves DocExtras (node/core/doc_extras.hpp), the side table of docs' metadata and model tags
// (D70): against a std::map reference over seeded sets, overwrites, releases and clears, every
// doc's handle reads back exactly the metadata and model the reference holds, a doc with neither
// holds no slot (handle kNone), and freed slots are reused, so the table never holds more slots
// than docs had extras at once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "node/core/doc_extras.hpp"

using shoal::Rng;
using shoal::node::DocExtras;
using shoal::node::Metadata;
using shoal::node::MetaValue;

namespace {
Metadata random_metadata(Rng& rng) {
  Metadata m;
  const auto n = rng.uniform(3);  // a third of the draws: no metadata
  for (std::uint64_t i = 0; i < n; ++i) {
    m.fields.emplace_back("k" + std::to_string(i), MetaValue(static_cast<std::int64_t>(rng.uniform(100))));
  }
  return m;
}
std::string random_model(Rng& rng) { return rng.uniform(2) == 0 ? std::string() : "m" + std::to_string(rng.uniform(9)); }
}  // namespace

TEST_CASE("DocExtras reads back what a std::map reference holds through sets, releases and clears",
          "[node][extras]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  constexpr std::size_t kDocs = 300;
  DocExtras extras;
  std::vector<std::uint32_t> handle(kDocs, DocExtras::kNone);
  struct Want {
    Metadata metadata;
    std::string model;
  };
  std::map<std::size_t, Want> ref;  // docs with metadata or a model
  std::size_t most = 0;             // the most docs that had extras at once
  for (int step = 0; step < 30000; ++step) {
    const std::size_t doc = rng.uniform(kDocs);
    const auto op = rng.uniform(10);
    if (op < 7) {  // the doc takes a record's (new) metadata and model
      Metadata m = random_metadata(rng);
      std::string model = random_model(rng);
      const bool some = !m.fields.empty() || !model.empty();
      Want want{m, model};
      handle[doc] = extras.set(handle[doc], std::move(m), std::move(model));
      REQUIRE((handle[doc] != DocExtras::kNone) == some);
      if (some) {
        ref[doc] = std::move(want);
      } else {
        ref.erase(doc);
      }
    } else if (op < 9) {  // the doc is cleared (its record deleted)
      extras.release(handle[doc]);
      handle[doc] = DocExtras::kNone;
      ref.erase(doc);
    } else if (rng.uniform(200) == 0) {  // the collection's docs are dropped (a rejected open state)
      extras.clear();
      std::fill(handle.begin(), handle.end(), DocExtras::kNone);
      ref.clear();
    }
    most = std::max(most, ref.size());
    REQUIRE(extras.size() == ref.size());
    if (step % 499 == 0) {
      for (std::size_t d = 0; d < kDocs; ++d) {
        const auto it = ref.find(d);
        if (it == ref.end()) {
          REQUIRE(handle[d] == DocExtras::kNone);
          REQUIRE(extras.metadata(handle[d]).fields.empty());
          REQUIRE(extras.model(handle[d]).empty());
        } else {
          REQUIRE(extras.metadata(handle[d]) == it->second.metadata);
          REQUIRE(extras.model(handle[d]) == it->second.model);
        }
      }
    }
  }
  // Every handle in use is distinct and within the slots taken, which never exceeded `most`.
  std::vector<std::uint32_t> used;
  for (std::uint32_t h : handle) {
    if (h != DocExtras::kNone) used.push_back(h);
  }
  std::sort(used.begin(), used.end());
  CHECK(std::adjacent_find(used.begin(), used.end()) == used.end());
  for (std::uint32_t h : used) CHECK(h <= most);
}

// Proves LabelMap (node/core/label_map.hpp), the id-to-label table of a collection: against a
// std::unordered_map reference over thousands of seeded inserts, replacements and erasures
// (erasure's backward shift included, on a table small enough that probe runs wrap around its
// end), every id finds exactly the label the reference holds; an insert without `replace` keeps
// the first label; reserve makes room once, so a table built to its reserved size never grows.
#include <catch2/catch.hpp>

#include <string>
#include <unordered_map>
#include <vector>

#include "common/random.hpp"
#include "node/core/label_map.hpp"

using shoal::Rng;
using shoal::node::LabelMap;

namespace {
// Docs by label, as Node::Collection keeps them: the map reads its keys from here.
struct Docs {
  std::vector<std::string> ids{std::string()};  // label 0 unused
  auto id_of() const {
    return [this](std::uint64_t label) -> std::string_view { return ids[label]; };
  }
};
}  // namespace

TEST_CASE("LabelMap finds what an unordered_map reference holds through inserts, replacements and erasures",
          "[node][labels]") {
  Rng rng(11);
  LabelMap map;
  Docs docs;
  std::unordered_map<std::string, std::uint64_t> ref;
  // Ids drawn from a small pool, so that the same id comes back (replaced, erased, re-inserted).
  auto pick_id = [&]() { return "id-" + std::to_string(rng.uniform(400)); };
  for (int step = 0; step < 20000; ++step) {
    const std::string id = pick_id();
    const auto op = rng.uniform(3);
    if (op < 2) {  // a record (re)takes a new label, as a write does
      if (auto it = ref.find(id); it != ref.end() && rng.uniform(2) == 0) {
        // The old label is cleared the way Node does: erase first, then clear the doc.
        REQUIRE(map.erase(id, docs.id_of()));
        docs.ids[it->second].clear();
        ref.erase(it);
      }
      const std::uint64_t label = docs.ids.size();
      docs.ids.push_back(id);
      REQUIRE(map.insert(id, label, docs.id_of(), true));
      ref[id] = label;
    } else {
      const auto it = ref.find(id);
      CHECK(map.erase(id, docs.id_of()) == (it != ref.end()));
      if (it != ref.end()) {
        docs.ids[it->second].clear();
        ref.erase(it);
      }
    }
    if (step % 997 == 0) {
      for (int k = 0; k < 400; ++k) {
        const std::string q = "id-" + std::to_string(k);
        const auto it = ref.find(q);
        REQUIRE(map.find(q, docs.id_of()) == (it == ref.end() ? 0 : it->second));
      }
    }
  }
  CHECK(map.size() == ref.size());
  for (int k = 0; k < 400; ++k) {
    const std::string q = "id-" + std::to_string(k);
    const auto it = ref.find(q);
    CHECK(map.find(q, docs.id_of()) == (it == ref.end() ? 0 : it->second));
  }
  CHECK(map.find("never", docs.id_of()) == 0);
  map.clear();
  CHECK(map.size() == 0);
  CHECK(map.find("id-1", docs.id_of()) == 0);
}

TEST_CASE("LabelMap keeps the first label without replace, and a reserved table does not grow", "[node][labels]") {
  Docs docs;
  LabelMap map;
  constexpr std::size_t kN = 10000;
  map.reserve(kN);
  const std::size_t reserved = map.memory_bytes();
  CHECK(reserved >= kN * 16);
  for (std::size_t i = 1; i <= kN; ++i) {
    docs.ids.push_back("r" + std::to_string(i));
    REQUIRE(map.insert(docs.ids.back(), i, docs.id_of(), false));
  }
  CHECK(map.memory_bytes() == reserved);
  CHECK(map.size() == kN);
  // A second label for an id already mapped: refused without replace (the open state's
  // duplicate-id check), taken with it.
  docs.ids.push_back("r5");
  const std::uint64_t dup = docs.ids.size() - 1;
  CHECK_FALSE(map.insert("r5", dup, docs.id_of(), false));
  CHECK(map.find("r5", docs.id_of()) == 5);
  CHECK(map.insert("r5", dup, docs.id_of(), true));
  CHECK(map.find("r5", docs.id_of()) == dup);
  CHECK(map.size() == kN);
  for (std::size_t i = 1; i <= kN; i += 97) {
    if (i != 5) CHECK(map.find("r" + std::to_string(i), docs.id_of()) == i);
  }
}

TEST_CASE("LabelMap's one-pass build maps what one insert at a time maps, with duplicates, a map already holding ids and a short size hint",
          "[node][labels]") {
  // Proves insert_new (D70), the prefetching build an open uses: for seeded runs of labels whose
  // ids repeat (an id under two labels, as a corrupt open state would have), on a map that is
  // empty or already holds ids, and with a room hint of 0, a quarter or all of the labels (a short
  // hint must grow the table, not overrun it), every id finds the label a std::unordered_map
  // reference that keeps the first label finds, the size matches, and the returned label is the
  // first one whose id was already mapped (0 when none was).
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  for (int round = 0; round < 60; ++round) {
    Docs docs;
    LabelMap map;
    std::unordered_map<std::string, std::uint64_t> ref;
    const std::size_t pool = 50 + rng.uniform(3000);
    auto fresh_label = [&]() {
      docs.ids.push_back("k" + std::to_string(rng.uniform(pool)));
      return docs.ids.size() - 1;
    };
    // Some ids first, one insert at a time.
    const std::size_t before = rng.uniform(3) == 0 ? rng.uniform(200) : 0;
    for (std::size_t i = 0; i < before; ++i) {
      const std::uint64_t label = fresh_label();
      const bool taken = ref.emplace(docs.ids[label], label).second;
      REQUIRE(map.insert(docs.ids[label], label, docs.id_of(), false) == taken);
    }
    const std::size_t first = docs.ids.size();
    const std::size_t n = rng.uniform(4000);
    for (std::size_t i = 0; i < n; ++i) fresh_label();
    std::uint64_t expected_duplicate = 0;
    for (std::size_t label = first; label < docs.ids.size(); ++label) {
      if (!ref.emplace(docs.ids[label], label).second && expected_duplicate == 0) expected_duplicate = label;
    }
    const std::size_t hints[] = {0, n / 4, n};
    const std::size_t hint = hints[rng.uniform(3)];
    std::size_t next = first;
    auto next_label = [&]() -> std::uint64_t { return next < docs.ids.size() ? next++ : 0; };
    INFO("round " << round << ": " << before << " ids before, " << n << " built with hint " << hint);
    REQUIRE(map.insert_new(next_label, hint, docs.id_of()) == expected_duplicate);
    REQUIRE(map.size() == ref.size());
    for (const auto& [id, label] : ref) REQUIRE(map.find(id, docs.id_of()) == label);
    CHECK(map.find("absent", docs.id_of()) == 0);
    // The built table still erases and inserts one at a time.
    if (!ref.empty()) {
      const std::string gone = ref.begin()->first;
      REQUIRE(map.erase(gone, docs.id_of()));
      ref.erase(gone);
      for (const auto& [id, label] : ref) REQUIRE(map.find(id, docs.id_of()) == label);
    }
  }
}

TEST_CASE("LabelMap's one-pass build sized for its labels does not grow", "[node][labels]") {
  // Proves the room insert_new makes from its hint is enough: 100,000 distinct ids built in one
  // pass leave the table at the size reserve() gives for 100,000, with every id found.
  Docs docs;
  constexpr std::size_t kN = 100000;
  for (std::size_t i = 1; i <= kN; ++i) docs.ids.push_back("id" + std::to_string(i * 7919));
  LabelMap reference;
  reference.reserve(kN);
  LabelMap map;
  std::uint64_t next = 1;
  auto next_label = [&]() -> std::uint64_t { return next <= kN ? next++ : 0; };
  REQUIRE(map.insert_new(next_label, kN, docs.id_of()) == 0);
  CHECK(map.memory_bytes() == reference.memory_bytes());
  CHECK(map.size() == kN);
  for (std::size_t i = 1; i <= kN; i += 101) CHECK(map.find(docs.ids[i], docs.id_of()) == i);
}

TEST_CASE("A moved LabelMap keeps its mappings and leaves an empty map behind", "[node][labels]") {
  // Proves LabelMap's move (its slots are one calloc'ed array, D70): the target finds every id
  // the source held; the source is empty, finds nothing, and takes inserts again.
  Docs docs;
  LabelMap map;
  for (std::size_t i = 1; i <= 100; ++i) {
    docs.ids.push_back("m" + std::to_string(i));
    REQUIRE(map.insert(docs.ids.back(), i, docs.id_of(), false));
  }
  LabelMap moved(std::move(map));
  CHECK(moved.size() == 100);
  for (std::size_t i = 1; i <= 100; ++i) CHECK(moved.find(docs.ids[i], docs.id_of()) == i);
  CHECK(map.size() == 0);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  CHECK(map.find("m1", docs.id_of()) == 0);
  CHECK(map.insert("m1", 1, docs.id_of(), false));
  CHECK(map.find("m1", docs.id_of()) == 1);
  LabelMap assigned;
  assigned = std::move(moved);
  CHECK(assigned.size() == 100);
  CHECK(assigned.find("m100", docs.id_of()) == 100);
  CHECK(moved.size() == 0);  // NOLINT(bugprone-use-after-move)
}

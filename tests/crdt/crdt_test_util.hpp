// tests/crdt/crdt_test_util.hpp: seeds and random-history generators shared by the crdt tests.
// Not a test itself. Histories are built only through the public operations (upsert, remove,
// join), so every generated state is one a real replica could reach.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "crdt/or_map.hpp"

namespace shoal::crdt::testing {

// A fixed seed list (regressions and CI stability) plus this run's --rng-seed.
inline std::vector<std::uint64_t> test_seeds() {
  return {1, 2, 3, 0x5eed, 0xdeadbeef, static_cast<std::uint64_t>(Catch::rngSeed())};
}

// Small trees keep ORMap copies cheap in property tests; repair tests pick their own.
inline constexpr DigestConfig kSmallDigests{6, 2};

inline Bytes random_payload(Rng& rng, std::size_t max_len = 12) {
  Bytes b(static_cast<std::size_t>(rng.uniform(max_len + 1)));
  for (auto& x : b) x = static_cast<std::uint8_t>(rng.next_u32());
  return b;
}

inline std::string id_from(std::uint64_t n) { return "rec-" + std::to_string(n); }

// A little world of replicas doing random upserts, removes and partial exchanges, keeping every
// state it passes through so property tests can draw related and unrelated states from it.
class RandomHistory {
 public:
  RandomHistory(Rng& rng, std::size_t replicas, std::size_t ids, DigestConfig cfg = kSmallDigests)
      : rng_(rng), ids_(ids) {
    for (std::size_t i = 0; i < replicas; ++i) {
      states_.emplace_back(cfg);
      selves_.push_back(replica_for_testing(i + 1, static_cast<std::uint32_t>(rng.uniform(2))));
    }
  }

  // One random step. Returns the delta of a mutation (empty for an exchange).
  Delta step() {
    const std::size_t r = static_cast<std::size_t>(rng_.uniform(states_.size()));
    const std::uint64_t roll = rng_.uniform(10);
    if (roll < 5) {
      ++clock_;
      auto d = states_[r].upsert(selves_[r], id_from(rng_.uniform(ids_)), random_payload(rng_),
                                 Hlc::from_raw(clock_ + rng_.uniform(3)));
      REQUIRE(d.ok());
      log_.push_back(*d);
      return std::move(d).value();
    }
    if (roll < 7) {
      auto d = states_[r].remove(id_from(rng_.uniform(ids_)));
      REQUIRE(d.ok());
      log_.push_back(*d);
      return std::move(d).value();
    }
    if (roll < 9 && !log_.empty()) {
      states_[r].join(log_[static_cast<std::size_t>(rng_.uniform(log_.size()))]);
    } else {
      states_[r].join_state(states_[static_cast<std::size_t>(rng_.uniform(states_.size()))]);
    }
    return Delta{};
  }

  std::vector<ORMap>& states() { return states_; }
  const std::vector<ReplicaId>& selves() const { return selves_; }
  const ORMap& random_state() {
    return states_[static_cast<std::size_t>(rng_.uniform(states_.size()))];
  }

 private:
  Rng& rng_;
  std::uint64_t ids_;
  std::uint64_t clock_ = 1000;
  std::vector<ORMap> states_;
  std::vector<ReplicaId> selves_;
  std::vector<Delta> log_;
};

}  // namespace shoal::crdt::testing

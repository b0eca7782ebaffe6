// sim/faulty_store.hpp: a Store wrapper through which the simulator can make a node store bytes
// other than the ones it was given, to prove the client-side oracle catches it.
//
// Role: forwards every call to the wrapped store (the simulator's store::MemoryStore, which keeps
// its own crash and full-disk faults). When a corruption pattern is armed, every value put into
// any table that contains the pattern is stored with one bit of the pattern's first byte flipped:
// a node that "stores the wrong vector" (the pattern is the little-endian f32 bytes of the vector
// a client sent), consistently in the records and the delta buffer, so every replica agrees on the
// wrong bytes and only an oracle built from the client's request can tell. Off unless armed.
// Thread rules: one simulation thread. Ownership: the wrapped store is the caller's and must
// outlive this wrapper and every transaction it began.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "node/store/store.hpp"

namespace shoal::sim {

class FaultyStore final : public store::Store {
 public:
  explicit FaultyStore(store::Store& inner) noexcept : inner_(&inner) {}

  // Values containing any of `patterns` are stored with the first matching byte's lowest bit
  // flipped, until disarm_for_testing(). Empty patterns are ignored.
  void arm_for_testing(std::vector<std::string> patterns) { patterns_ = std::move(patterns); }
  void disarm_for_testing() noexcept { patterns_.clear(); }
  std::uint64_t corrupted_puts() const noexcept { return corrupted_puts_; }

  [[nodiscard]] Result<std::unique_ptr<store::ReadTxn>> begin_read() override { return inner_->begin_read(); }
  [[nodiscard]] Result<std::unique_ptr<store::WriteTxn>> begin_write() override;
  store::StoreLimits limits() const noexcept override { return inner_->limits(); }

 private:
  class Write;
  // `value` with the first occurrence of an armed pattern corrupted; unchanged when none occurs.
  std::string corrupt(std::string_view value);

  store::Store* inner_;  // not owned
  std::vector<std::string> patterns_;
  std::uint64_t corrupted_puts_ = 0;
};

}  // namespace shoal::sim

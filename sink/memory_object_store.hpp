// sink/memory_object_store.hpp: the simulator's object store, in memory, with faults.
//
// Role: stands in for the sink's object store in sim/ and in tests. It follows the ObjectStore
// contract, and can be told to misbehave the way real stores do:
//   - set_unreachable(true): every call returns kUnavailable and changes nothing (an outage).
//   - fail_next_writes(n, applied): the next n puts/removes return kIo. With applied = true the
//     write did reach the store (as when the reply is lost): it is visible to get/list but not
//     synced, so crash() takes it back; with applied = false nothing changed.
//   - crash(): the host restarts: unsynced writes are lost (each key returns to its last
//     acknowledged state); acknowledged puts and removes survive.
// Thread rules: all methods are safe from several threads (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "sink/object_store.hpp"

namespace shoal::sink {

class MemoryObjectStore final : public ObjectStore {
 public:
  explicit MemoryObjectStore(Limits limits = {}) : limits_(limits) {}

  Status put(std::string_view key, std::string_view bytes) override;
  Result<std::string> get(std::string_view key) override;
  Result<std::vector<std::string>> list(std::string_view prefix) override;
  Status remove(std::string_view key) override;
  const Limits& limits() const noexcept override { return limits_; }
  std::string_view kind() const noexcept override { return "memory"; }

  void set_unreachable(bool unreachable);
  void fail_next_writes(std::uint64_t n, bool applied);
  void crash();

  // Counters for tests and the simulator.
  std::uint64_t object_count() const;
  std::uint64_t stored_bytes() const;
  std::uint64_t unsynced_count() const;

 private:
  Status fault_or_ok(std::string_view key, std::optional<std::string> value);

  const Limits limits_;
  mutable std::mutex mu_;
  std::map<std::string, std::string, std::less<>> visible_;
  // Keys written but not acknowledged: their last acknowledged value (nullopt: absent).
  std::map<std::string, std::optional<std::string>, std::less<>> unsynced_;
  bool unreachable_ = false;
  std::uint64_t fail_writes_ = 0;
  bool fail_applied_ = false;
};

}  // namespace shoal::sink

// sim/faulty_store.hpp: the Store the simulator's nodes write through, with the faults a real
// disk and a real process death bring, and two dishonest modes that prove the checkers notice a
// store that breaks its promise.
//
// Role: forwards every call to the wrapped store (the simulator's store::MemoryStore, which keeps
// its own crash, full-disk and I/O-failure faults) and adds:
//   - A crash inside an operation (arm_crash_at(n)): the n-th store call from now (begin_read,
//     begin_write, get, scan, count, put, del or commit) is where the process dies. That call and
//     every later one fail with kUnavailable until restarted(); the wrapped store crashes (what
//     was not committed is dropped). When the call is a commit, the crash strikes while LMDB
//     writes it: the commit either landed (its meta page reached the disk: all of it is durable)
//     or not (none of it is), drawn by `land`; either way the caller never sees OK. This is what
//     LmdbStore promises and no more (tests/store/durability_test.cpp checks LMDB keeps it: the
//     pages a commit wrote are durable before the meta page that makes them the current state,
//     and the meta page is durable before commit() returns). A torn transaction is therefore
//     not an honest fault; it is the torn-commit mutation below.
//   - Dishonest modes (simulator mutations, docs/sim.md "Proving the checkers"):
//       nosync     commit() returns OK but the last kUnsyncedCommits commits are not durable: a
//                  crash undoes them (an environment opened with MDB_NOSYNC);
//       torn       a commit interrupted by a crash keeps the first half of its writes.
//   - Corruption (arm_for_testing, the store-flip mutation): every value put that contains an
//     armed pattern is stored with one bit of the pattern's first byte flipped.
// Thread rules: one simulation thread. Ownership: the wrapped store is the caller's and must
// outlive this wrapper and every transaction it began.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "node/store/memory_store.hpp"
#include "node/store/store.hpp"

namespace shoal::sim {

enum class StoreMode : std::uint8_t { kHonest, kNoSync, kTorn };

// How the last crash inside an operation ended a commit in progress.
enum class CommitFate : std::uint8_t { kNone, kLost, kLanded };

class FaultyStore final : public store::Store {
 public:
  // Acknowledged commits a crash may undo in the nosync mode.
  static constexpr std::size_t kUnsyncedCommits = 8;

  FaultyStore(store::MemoryStore& inner, StoreMode mode = StoreMode::kHonest) noexcept
      : inner_(&inner), mode_(mode) {}

  // Values containing any of `patterns` are stored with the first matching byte's lowest bit
  // flipped, until disarm_for_testing(). Empty patterns are ignored.
  void arm_for_testing(std::vector<std::string> patterns) { patterns_ = std::move(patterns); }
  void disarm_for_testing() noexcept { patterns_.clear(); }
  std::uint64_t corrupted_puts() const noexcept { return corrupted_puts_; }

  // The process dies at the n-th store call from now (n >= 1); a commit caught by it lands when
  // `land`. Replaces an earlier arming.
  // commits_only: count only commits (the crash strikes the n-th commit from now).
  void arm_crash_at(std::uint32_t n, bool land, bool commits_only = false) noexcept {
    crash_in_ = n;
    crash_lands_ = land;
    commits_only_ = commits_only;
  }
  void disarm_crash() noexcept { crash_in_ = 0; }
  // The process died inside an operation and has not been restarted.
  bool crashed() const noexcept { return crashed_; }
  // How that crash ended a commit in progress (kNone: it struck outside a commit).
  CommitFate commit_fate() const noexcept { return fate_; }
  // The call the crash struck ("commit", "put", ...); empty when none.
  const std::string& crashed_in() const noexcept { return crashed_in_; }
  // A crash between operations (the simulator's ordinary crash): the wrapped store crashes and,
  // in the nosync mode, the unsynced commits are undone.
  void crash_now() noexcept;
  // The process starts again on this store: calls work again.
  void restarted() noexcept {
    crashed_ = false;
    fate_ = CommitFate::kNone;
    crashed_in_.clear();
  }
  // While set, calls neither count towards an armed crash nor trigger it: the simulator's own
  // observations (reading a node's state for the oracle) must not move the crash point.
  void set_observing(bool on) noexcept { observing_ = on; }
  // Acknowledged commits a crash undid (nosync mode) and torn commits (torn mode).
  std::uint64_t undone_commits() const noexcept { return undone_commits_; }

  [[nodiscard]] Result<std::unique_ptr<store::ReadTxn>> begin_read() override;
  [[nodiscard]] Result<std::unique_ptr<store::WriteTxn>> begin_write() override;
  store::StoreLimits limits() const noexcept override { return inner_->limits(); }

 private:
  class Read;
  class Write;
  // One write of a commit, with the value it replaced (nosync undo).
  struct Undo {
    store::Table table;
    std::string key;
    std::optional<std::string> old_value;  // nullopt: the key was absent
  };

  // `value` with the first occurrence of an armed pattern corrupted; unchanged when none occurs.
  std::string corrupt(std::string_view value);
  // Counts one store call; true when the process dies at this one (the caller fails it).
  bool strike(const char* call) noexcept;
  // The same for a commit, which decides its own fate before dying: true when it is struck.
  bool strike_silently() noexcept;
  void die(const char* call) noexcept;
  void undo_unsynced() noexcept;

  store::MemoryStore* inner_;  // not owned
  StoreMode mode_;
  std::vector<std::string> patterns_;
  std::uint64_t corrupted_puts_ = 0;
  std::uint32_t crash_in_ = 0;  // 0: not armed
  bool crash_lands_ = false;
  bool commits_only_ = false;
  bool crashed_ = false;
  bool observing_ = false;
  CommitFate fate_ = CommitFate::kNone;
  std::string crashed_in_;
  std::deque<std::vector<Undo>> unsynced_;  // nosync: the last acknowledged commits, oldest first
  std::uint64_t undone_commits_ = 0;
};

}  // namespace shoal::sim

// node/store/memory_store.hpp: the in-memory Store the simulator runs nodes on.
//
// Role: the same semantics as LmdbStore (sorted tables, snapshot reads, one atomic write
// transaction, the same key and value limits), checked by the shared contract suite, plus a
// simulation API to inject faults:
//   - crash(): what the process loses when it dies. Uncommitted writes vanish; open transactions
//     become dead (their calls return kUnavailable). Committed data is kept: this model treats a
//     successful commit as durable (lost fsyncs and torn writes belong to sim/'s store wrapper).
//   - set_capacity_bytes(n): commits that would grow the stored bytes (sum of key and value sizes)
//     above n fail with kIo/kDiskFull and are aborted; commits that shrink always pass.
//   - fail_next_reads(n) / fail_next_writes(n): the next n reads (each get, scan or count) or
//     writes (each commit) fail with kIo; a failed commit aborts its transaction.
// Deterministic: ordered maps only; nothing depends on pointer values or unordered containers.
//
// Thread rules: single-threaded. The store and all its transactions belong to one thread (the
// simulator's). Nothing is locked.
//
// Ownership: the store owns the tables; a ReadTxn shares the table versions it saw (immutable
// once shared: a commit copies a table a reader still holds instead of mutating it). Every
// transaction must be destroyed before the store.
//
// Invariants: used_bytes() equals the sum of key and value sizes over all tables; the meta table
// holds kSchemaVersionKey from construction on.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "node/store/store.hpp"

namespace shoal::store {

struct MemoryStoreOptions {
  StoreLimits limits;
  // Commits that would grow the stored bytes above this fail with kIo/kDiskFull.
  std::uint64_t capacity_bytes = UINT64_MAX;
};

class MemoryStore final : public Store {
 public:
  // Ordered by bytewise comparison, as LMDB's default comparator. std::less<> enables lookups
  // by string_view without a copy.
  using Map = std::map<std::string, std::string, std::less<>>;

  explicit MemoryStore(MemoryStoreOptions options = {});
  ~MemoryStore() override;

  [[nodiscard]] Result<std::unique_ptr<ReadTxn>> begin_read() override;
  [[nodiscard]] Result<std::unique_ptr<WriteTxn>> begin_write() override;
  StoreLimits limits() const noexcept override { return options_.limits; }

  // Simulation API (see the file comment).
  void crash() noexcept;
  void set_capacity_bytes(std::uint64_t capacity_bytes) noexcept {
    options_.capacity_bytes = capacity_bytes;
  }
  void fail_next_reads(std::uint32_t n) noexcept { fail_reads_ = n; }
  // The injected read failures still pending (the simulator's own reads set them aside).
  std::uint32_t pending_read_faults() const noexcept { return fail_reads_; }
  void fail_next_writes(std::uint32_t n) noexcept { fail_writes_ = n; }
  // The injected write failures still pending (the simulator's own writes set them aside).
  std::uint32_t pending_write_faults() const noexcept { return fail_writes_; }
  std::uint64_t used_bytes() const noexcept { return used_bytes_; }
  // Number of crash() calls so far; transactions of an earlier generation are dead.
  std::uint64_t generation() const noexcept { return generation_; }

 private:
  class Read;
  class Write;
  friend class Read;
  friend class Write;

  // Consumes one injected read failure, if any.
  [[nodiscard]] Status take_read_fault();

  MemoryStoreOptions options_;
  // One immutable-once-shared map per table: shared_ptr because read snapshots share the
  // version they began on; a commit mutates a table in place only when nobody else holds it.
  std::array<std::shared_ptr<Map>, kTableCount> tables_;
  std::uint64_t used_bytes_ = 0;
  std::uint64_t generation_ = 0;
  std::uint32_t fail_reads_ = 0;
  std::uint32_t fail_writes_ = 0;
  bool writer_open_ = false;
  std::uint64_t open_txns_ = 0;
};

}  // namespace shoal::store

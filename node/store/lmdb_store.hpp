// node/store/lmdb_store.hpp: the Store on LMDB, one environment (a directory) per node.
//
// Role: the durable store of a real node. Each Table is an LMDB named database created at open;
// meta holds the schema version, checked at every open (docs/storage.md is the format spec).
// Commits use LMDB's default synchronous commit (no MDB_NOSYNC, no MDB_NOMETASYNC): commit()
// returns OK only after the data and meta pages are on stable storage, so an acknowledged write
// survives kill -9 and power loss. Open clears stale reader slots left by dead processes
// (mdb_reader_check).
//
// Map growth: the map starts at map_size_initial_bytes. When a put, del or commit hits
// MDB_MAP_FULL, the write transaction is aborted, the map is doubled (capped at
// map_size_max_bytes) with mdb_env_set_mapsize, and the transaction's writes are replayed from
// its own log in a fresh transaction, invisibly to the caller. Replaying is exact because the
// writer lock is held throughout: nothing else changed the store in between. mdb_env_set_mapsize
// needs no transaction open in this process, so the grower blocks new read transactions and
// waits (up to grow_wait) for open ones to end. At the maximum, or if readers stay open, the
// call returns kIo/kMapFull and the transaction is aborted; prior data stays readable. ENOSPC
// becomes kIo/kDiskFull, with the same guarantees.
//
// Thread rules: the LmdbStore may be used from any thread: begin_read() and begin_write() are
// thread-safe. The environment is opened with MDB_NOTLS, so a ReadTxn is not tied to a thread: it
// may move between threads but is used by one at a time. A WriteTxn is used only on the thread
// that began it; a second begin_write() on another thread blocks until the first finishes; on the
// same thread it is a bug and asserts. Never hold a ReadTxn across a write on the same thread for
// long: map growth waits for it (grow_wait) and then gives up with kMapFull.
//
// Ownership: the store owns the environment; transactions must be destroyed before it (asserted).
// One process opens a directory at a time (the node's data directory lock is the caller's job).
//
// Invariants: map_size_bytes() <= max(map_size_max_bytes, the size the file already had);
// the meta table holds kSchemaVersionKey == kSchemaVersion.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/time.hpp"
#include "node/store/store.hpp"

struct MDB_env;
struct MDB_txn;

namespace shoal::store {

struct LmdbStoreOptions {
  // The environment directory; created (with parents) if missing.
  std::string path;
  std::uint64_t map_size_initial_bytes = std::uint64_t{64} << 20;
  // Growth stops here; beyond it writes fail with kIo/kMapFull.
  std::uint64_t map_size_max_bytes = std::uint64_t{16} << 30;
  std::uint32_t max_readers = 126;
  std::size_t max_value_bytes = kDefaultMaxValueBytes;
  // How long a writer that must grow the map waits for open read transactions to end.
  Duration grow_wait = Duration::seconds(5);
};

class LmdbStore final : public Store {
 public:
  // Opens or creates the environment at options.path, creates the named databases, checks or
  // writes the schema version and clears stale readers. Statuses: kUnimplemented/kVersionMismatch
  // (schema or LMDB format version differs; message names both), kCorruption (kBadMagic: not an
  // LMDB file; or data without a schema version), kInvalidArgument/kOutOfRange (bad options),
  // kIo (file system errors, with the path as context).
  [[nodiscard]] static Result<std::unique_ptr<LmdbStore>> open(const LmdbStoreOptions& options);
  ~LmdbStore() override;

  [[nodiscard]] Result<std::unique_ptr<ReadTxn>> begin_read() override;
  [[nodiscard]] Result<std::unique_ptr<WriteTxn>> begin_write() override;
  StoreLimits limits() const noexcept override { return limits_; }

  // Writes a consistent copy of the environment into the existing directory `dir` as
  // `dir/data.mdb` (mdb_env_copy2): the state of one read transaction, taken while writers go on.
  // compact: free pages are left out and pages renumbered (MDB_CP_COMPACT), so the copy holds only
  // live data (LMDB's own file never shrinks). The copy is mode 0600 like the store's own file, and
  // fsynced (file and directory) before OK.
  // Thread-safe; counts as an open read transaction for map growth, so a writer that must grow the
  // map meanwhile waits (up to grow_wait) and then fails with kMapFull: copy when writes are few.
  // Statuses: kIo (names the file; also when dir/data.mdb already exists or dir does not exist),
  // kIo/kDiskFull.
  [[nodiscard]] Status copy_to(const std::string& dir, bool compact);

  // The current map size; grows over time. Thread-safe.
  std::uint64_t map_size_bytes() const noexcept { return map_size_.load(); }
  // How many times the map has grown since open. Thread-safe.
  std::uint64_t grow_count() const noexcept { return grow_count_.load(); }
  // Reader slots of dead processes cleared at open.
  int stale_readers_cleared() const noexcept { return stale_readers_cleared_; }
  // The schema version this open upgraded the file from (1, 2 or 3: the tables added since were
  // created empty), or 0 when the file already had the current version or was new.
  std::uint32_t upgraded_from() const noexcept { return upgraded_from_; }
  const std::string& path() const noexcept { return options_.path; }

 private:
  class Read;
  class Write;
  friend class Read;
  friend class Write;

  explicit LmdbStore(const LmdbStoreOptions& options);
  [[nodiscard]] Status open_impl();
  // Grows the map; called by the writer with its LMDB transaction aborted. Statuses: kMapFull.
  [[nodiscard]] Status grow();
  // Ends a read: `txn` (nullptr for none) is reset and kept for reuse, up to kIdleReadsKept.
  void end_read(MDB_txn* txn) noexcept;

  LmdbStoreOptions options_;
  StoreLimits limits_;
  MDB_env* env_ = nullptr;
  std::array<unsigned int, kTableCount> dbi_{};  // MDB_dbi handles, valid for the env's life
  int stale_readers_cleared_ = 0;
  std::uint32_t upgraded_from_ = 0;
  std::atomic<std::uint64_t> map_size_{0};
  std::atomic<std::uint64_t> grow_count_{0};

  // The writer lock, held by a WriteTxn for its whole life.
  std::mutex write_mu_;
  std::atomic<std::thread::id> writer_thread_{};
  // Guards the reader count and the growing flag.
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t active_readers_ = 0;
  bool growing_ = false;
  // Reset read transactions (no snapshot; each keeps its reader slot) that begin_read renews
  // instead of beginning a new one. At most kIdleReadsKept, so they leave most of max_readers to
  // concurrent readers; aborted before mdb_env_close.
  static constexpr std::size_t kIdleReadsKept = 8;
  std::vector<MDB_txn*> idle_reads_;
};

}  // namespace shoal::store

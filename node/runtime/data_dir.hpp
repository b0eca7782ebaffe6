// node/runtime/data_dir.hpp: a node's data directory on disk, and opening a Node in it.
//
// Layout (docs/node-format.md): <dir>/LOCK (an flock held while open, so two handles, in one
// process or in two, never open one directory; the holder writes its PID there as decimal text and
// a newline, read only to name the holder when an open is refused), <dir>/FINGERPRINT (where and
// on which machine this directory lives, and the replica id it was last opened as), <dir>/store/
// (the LMDB environment), <dir>/snapshots/ (index snapshots).
//
// A copied directory never reuses a dot: open compares FINGERPRINT with the directory's place
// now (the machine id, the filesystem id, the inodes of store/ and store/data.mdb). When they
// differ (`cp -a`, a restore, a move to another filesystem or machine), or FINGERPRINT is missing,
// or the store holds an older incarnation than the one recorded (an older copy put back in place),
// open writes a new incarnation into the store's meta key node.replica (one durable transaction,
// through the Store interface) before Node::open, so the node issues no dot under the old id. The
// new incarnation is one above both the store's and the recorded one. Then FINGERPRINT is
// rewritten (atomically, mode 0600). A crash in between only costs one more incarnation next time.
// What no local check can see (an image cloned with its machine id, or a backup restored in place
// over the same inode) is left to the mesh-side check (Node::check_own_counters) and to `shoal
// restore`, which always asks for a new incarnation.
//
// Thread rules: open_data_dir() from any thread; the returned object is owned by one holder.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/status.hpp"
#include "node/core/node.hpp"
#include "node/runtime/file_snapshot_store.hpp"
#include "node/runtime/shared_node.hpp"

namespace shoal::node {

// The index queue's bound for an open data directory (NodeOptions::index_queue_max when the
// caller leaves it 0): writes return after their durable commit, and SharedNode's index thread
// inserts them into the index; past this many queued operations writers wait. It is a whole
// group's worth of records (SharedNode::kMaxGroupRecords), so an ingest's next batch commits while
// the index thread inserts the previous one (D77; with 1,024 a batch of 1,000 waited for an empty
// queue, and the index stood still during every commit). At 784-d floats a full queue holds
// ~12 MiB of vectors, and its exact scan costs a search ~0.4 ms while it lasts.
inline constexpr std::size_t kDefaultIndexQueueMax = SharedNode::kMaxGroupRecords;

struct DataDirOptions {
  // snapshots is set by open_data_dir; wall_clock defaults to the real clock, and a new
  // directory's identity to 16 random bytes from the OS.
  NodeOptions node;
  std::uint64_t max_store_bytes = std::uint64_t{64} << 30;
  // Take a new incarnation at this open even when the fingerprint matches (`shoal restore`).
  bool new_incarnation = false;
  // Replaces the machine id read from /etc/machine-id, so a test can play "another machine".
  std::optional<std::string> machine_id_for_testing;
  // Skips the fingerprint check and record entirely: the mutation that shows the copy test
  // catches a directory that reuses its dots.
  bool skip_fingerprint_for_testing = false;
};

struct StoreCopyReport {
  std::uint64_t source_bytes = 0;  // the size of the source's store/data.mdb
  std::uint64_t copy_bytes = 0;    // the size of the copy (after compaction, for compact)
  std::string replica;             // the replica id the store holds (ReplicaId::to_string)
  std::string note;                // a problem that did not fail the call, for the operator; or empty
};

// Owns the directory lock, the store, the snapshot files and the Node; closing writes the index
// snapshots, then releases them, the Node first.
class OpenDataDir {
 public:
  OpenDataDir(std::string path, int lock_fd, std::unique_ptr<store::Store> store) noexcept;
  ~OpenDataDir();
  OpenDataDir(const OpenDataDir&) = delete;
  OpenDataDir& operator=(const OpenDataDir&) = delete;
  // The node, thread-safe.
  SharedNode& node() noexcept { return *node_; }
  // Opens the node on the store; called once by open_data_dir.
  [[nodiscard]] Status open_node(NodeOptions options);
  // Why this open took a new incarnation ("the data directory moved: ..."); empty when it did
  // not. Set once by open_data_dir.
  const std::string& new_incarnation_reason() const noexcept { return new_incarnation_reason_; }
  // A consistent copy of the open store into `dest`/store while the node keeps running (`dest`
  // must not exist or be empty): how `shoald --backup` backs up a running daemon. Statuses: those
  // of backup_data_dir.
  [[nodiscard]] Result<StoreCopyReport> backup_to(const std::string& dest, bool compact);
  void set_new_incarnation_reason(std::string reason) { new_incarnation_reason_ = std::move(reason); }

 private:
  std::string path_;
  Logger* logger_ = nullptr;
  int lock_fd_;
  std::unique_ptr<store::Store> store_;
  FileSnapshotStore snapshots_;
  std::unique_ptr<SharedNode> node_;  // declared after store_ and snapshots_: destroyed first
  std::string new_incarnation_reason_;
};

// Creates the directory if needed, takes its lock, opens the store and the node. Statuses:
// kUnavailable when another handle holds the lock (the message names the holder's PID and says
// "this process" or "another process"; retry once the holder has closed it); kIo when the
// directory or its LOCK file cannot be created or locked for any other reason (names the path);
// kCorruption when meta/node.replica cannot be decoded; kInternal when the incarnation would
// pass 2^32-1; and those of LmdbStore::open and Node::open. A FINGERPRINT that cannot be written
// is logged, not returned (the next open then takes one more incarnation).
[[nodiscard]] Result<std::unique_ptr<OpenDataDir>> open_data_dir(const std::string& path,
                                                                 DataDirOptions options);

// --- Maintenance of a closed data directory (docs/operations.md) ---
// Each takes the directory's lock for its whole run, so it fails with kUnavailable (naming the
// holder) while a process has the directory open; a directory a running daemon holds is backed
// up through the daemon (`shoald --backup`, OpenDataDir::backup_to).


// Writes a consistent copy of the store of the data directory `path` into `dest`/store (`dest`
// must not exist or be an empty directory; it is created). compact: free pages are left out. The
// copy holds only the store: no LOCK, FINGERPRINT or index snapshots (indexes are rebuilt after a
// restore). Statuses: kNotFound (no store at `path`), kInvalidArgument (`dest` is inside `path`),
// kConflict/kAlreadyExists (`dest` is not empty), kUnavailable (the directory is open), kIo,
// kIo/kDiskFull; those of LmdbStore::open.
[[nodiscard]] Result<StoreCopyReport> backup_data_dir(const std::string& path, const std::string& dest, bool compact);

// Creates the data directory `path` (must not exist or be empty) from `backup` (a directory
// written by backup_data_dir, or any closed data directory) by a consistent copy of its store,
// then opens it once with a new incarnation (DataDirOptions::new_incarnation), so the restored
// directory never reissues a dot its source issued, even when `backup` is a copy of this very
// directory. `options` are used for that open. Returns the new replica id. Statuses: kNotFound
// (no store in `backup`), kConflict/kAlreadyExists (`path` not empty), those of backup_data_dir
// and open_data_dir.
[[nodiscard]] Result<StoreCopyReport> restore_data_dir(const std::string& backup, const std::string& path,
                                                       DataDirOptions options);

// Rewrites the store of the data directory `path` without its free pages (LMDB's file never
// shrinks): a compacting copy beside it, fsynced, then an atomic exchange of the two directories
// (renameat2 RENAME_EXCHANGE), so a crash leaves either the old or the new store, whole. The
// FINGERPRINT is rewritten for the new file when it matched the old one, so compaction does not
// cost an incarnation (a crash before that rewrite costs one at the next open). Statuses: as
// backup_data_dir, kUnimplemented when the filesystem cannot exchange directories.
[[nodiscard]] Result<StoreCopyReport> compact_data_dir(const std::string& path);

}  // namespace shoal::node

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
  void set_new_incarnation_reason(std::string reason) { new_incarnation_reason_ = std::move(reason); }

 private:
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

}  // namespace shoal::node

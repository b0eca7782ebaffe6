// node/runtime/data_dir.hpp: a node's data directory on disk, and opening a Node in it.
//
// Layout (docs/storage.md): <dir>/LOCK (an flock held while open, so two handles, in one process
// or in two, never open one directory; the holder writes its PID there as decimal text and a
// newline, read only to name the holder when an open is refused), <dir>/store/ (the LMDB environment), <dir>/snapshots/ (index snapshots).
// Thread rules: open_data_dir() from any thread; the returned object is owned by one holder.
#pragma once

#include <memory>
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

 private:
  Logger* logger_ = nullptr;
  int lock_fd_;
  std::unique_ptr<store::Store> store_;
  FileSnapshotStore snapshots_;
  std::unique_ptr<SharedNode> node_;  // declared after store_ and snapshots_: destroyed first
};

// Creates the directory if needed, takes its lock, opens the store and the node. Statuses:
// kUnavailable when another handle holds the lock (the message names the holder's PID and says
// "this process" or "another process"; retry once the holder has closed it); kIo when the
// directory or its LOCK file cannot be created or locked for any other reason (names the path);
// and those of LmdbStore::open and Node::open.
[[nodiscard]] Result<std::unique_ptr<OpenDataDir>> open_data_dir(const std::string& path,
                                                                 DataDirOptions options);

}  // namespace shoal::node

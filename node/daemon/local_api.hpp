// node/daemon/local_api.hpp: the daemon's local API, the `Node` capability
// (transport/node_api.capnp) served on a Unix socket to the apps of this device.
//
// Role: each connecting process is checked against the policy (its SO_PEERCRED uid and gid)
// before it gets anything; an allowed one gets a Node capability whose methods call the same
// SharedNode an embedded app would, so validation, durability and error codes are identical.
// watch() streams changes (local writes and deltas applied from peers) from the delta buffer.
// Ownership: the KjLoop, the SharedNode and the MeshHost (optional) outlive the LocalApi.
// Reads (search, get, listCollections, collectionInfo, stats) run on a read pool (read_pool.hpp)
// under SharedNode's shared lock, so concurrent clients search in parallel; their results are
// built back on the loop thread. Writes, watch and backup run on the loop thread, in arrival order.
// Thread rules: the loop's thread; notify() may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "common/status.hpp"
#include "node/mesh/mesh_host.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/runtime/shared_node.hpp"
#include "transport/kj_loop.hpp"
#include "transport/local_link.hpp"

namespace shoal::daemon {

// Who may use the local API: root, the daemon's own user, and the listed users and groups.
struct ApiPolicy {
  std::uint32_t daemon_uid = 0;
  std::vector<std::uint32_t> allow_uids;
  std::vector<std::uint32_t> allow_gids;
  bool allows(const transport::PeerCredentials& c) const noexcept;
};

struct LocalApiStats {
  std::uint64_t clients_accepted = 0;
  std::uint64_t clients_refused = 0;   // by the policy
  std::uint64_t calls = 0;
  std::uint64_t calls_failed = 0;
  std::uint64_t calls_busy = 0;        // reads refused because the read queue was full
  std::uint64_t watches = 0;           // alive now
  std::size_t clients = 0;             // alive now
};

struct LocalApiHooks {
  // Called with each served search's and write's duration (seconds), for the metrics.
  std::function<void(double)> search_seconds;
  std::function<void(double)> write_seconds;
  // Serves Node.backup (OpenDataDir::backup_to); unset: backup is refused as unimplemented.
  std::function<Result<node::StoreCopyReport>(const std::string& dest, bool compact)> backup;
};

struct LocalApiOptions {
  // Threads serving reads; 0: the hardware's concurrency.
  std::size_t read_threads = 0;
  // Reads that may wait for a read thread; beyond it a read fails at once with kOverloaded
  // ("busy"), naming the limit. At least 1.
  std::size_t read_queue_max = 1024;
};

class LocalApi {
 public:
  [[nodiscard]] static Result<std::unique_ptr<LocalApi>> start(transport::KjLoop& loop, node::SharedNode& node,
                                                               node::MeshHost* mesh, const std::string& socket_path,
                                                               transport::LocalListenerOptions listener,
                                                               ApiPolicy policy, LocalApiHooks hooks, Logger* logger);
  // The same with the read pool's settings; kInvalidArgument when read_queue_max is 0.
  [[nodiscard]] static Result<std::unique_ptr<LocalApi>> start(transport::KjLoop& loop, node::SharedNode& node,
                                                               node::MeshHost* mesh, const std::string& socket_path,
                                                               transport::LocalListenerOptions listener,
                                                               ApiPolicy policy, LocalApiHooks hooks,
                                                               LocalApiOptions options, Logger* logger);
  ~LocalApi();
  LocalApi(const LocalApi&) = delete;
  LocalApi& operator=(const LocalApi&) = delete;

  // New changes may be in the delta buffer: watchers are sent them. Any thread.
  void notify();
  LocalApiStats stats() const;
  // Replaces the policy (SIGHUP); clients already connected keep their capability.
  void set_policy(ApiPolicy policy);

 private:
  struct Impl;
  explicit LocalApi(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shoal::daemon

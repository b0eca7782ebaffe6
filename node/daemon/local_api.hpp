// node/daemon/local_api.hpp: the daemon's local API, the `Node` capability
// (transport/node_api.capnp) served on a Unix socket to the apps of this device.
//
// Role: each connecting process is checked against the policy (its SO_PEERCRED uid and gid)
// before it gets anything; an allowed one gets a Node capability whose methods call the same
// SharedNode an embedded app would, so validation, durability and error codes are identical.
// watch() streams changes (local writes and deltas applied from peers) from the delta buffer.
// Ownership: the KjLoop, the SharedNode and the MeshHost (optional) outlive the LocalApi.
// Threads (docs/decisions.md, D41): the loop's thread accepts clients and checks the policy; each
// allowed client is then served by one of `read_threads` API threads (the one with the fewest
// clients), each with its own io_context and kj loop. Every call of that client runs on its API
// thread, in the client's order: reads under SharedNode's shared lock (so clients on different API
// threads search in parallel, and a search crosses no thread), writes through SharedNode's write
// path (group commit with the other threads' writers). What only the loop may touch is reached
// from there: stats, backup, cold search and bootstrap from the sink run on the loop (the last two
// wait there for the sink's answers) and resume on the API thread; search freshness is
// read from a copy of the mesh's peers that the loop publishes after every engine step. Watches
// are the API thread's, woken by notify().
// Thread rules: start, the destructor, stats() and set_policy() on the loop's thread; notify()
// from any thread. The hooks' search_seconds and write_seconds are called on API threads, at once
// from several: they must be thread-safe. backup is called on the loop's thread.
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

// The most API threads (api.read_threads; node/daemon/config.hpp has the same limit).
inline constexpr std::size_t kMaxReadThreads = 256;
// The default API threads per core. More than one, so that up to this many clients per core each
// have a thread of their own, as the threads of an embedded app do: on a machine that also runs
// other work, CPU time is shared per runnable thread, and two threads serving four busy clients
// got a quarter of the search throughput four embedded threads got (scripts/bench-client.sh; D41).
// An idle API thread costs a stack and a sleeping epoll.
inline constexpr std::size_t kReadThreadsPerCore = 4;

struct LocalApiOptions {
  // API threads serving the clients' calls (0: kReadThreadsPerCore per core, at most
  // kMaxReadThreads).
  std::size_t read_threads = 0;
};

// kOutOfRange naming the limit and the value when `read_threads` is above kMaxReadThreads.
[[nodiscard]] Status check_read_threads(std::size_t read_threads);
// The number of API threads `read_threads` means (0: kReadThreadsPerCore per core, at most
// kMaxReadThreads).
std::size_t effective_read_threads(std::size_t read_threads);

class LocalApi {
 public:
  [[nodiscard]] static Result<std::unique_ptr<LocalApi>> start(transport::KjLoop& loop, node::SharedNode& node,
                                                               node::MeshHost* mesh, const std::string& socket_path,
                                                               transport::LocalListenerOptions listener,
                                                               ApiPolicy policy, LocalApiHooks hooks, Logger* logger);
  // The same with the API threads' settings; kOutOfRange (check_read_threads) for a bad count.
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

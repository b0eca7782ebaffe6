// node/daemon/config.hpp: shoald's configuration file (TOML, read with toml++), and what a
// SIGHUP may change without a restart. docs/operations.md ("shoald configuration") documents
// every key; packaging/shoald.toml shows each one with its default.
//
// Role: turns the file's text into a DaemonConfig value, or into one Status that names, for every
// problem found, the file, the line and column, the key, the value seen and what was expected:
//   /etc/shoal/shoald.toml:7:1: key mesh.listen = "0.0.0.0:99999": port must be 0..65535
// Nothing here opens a socket, resolves a name or a group, or touches the data directory: the
// daemon does that when it starts, with the values checked here.
//
// Invariants of a DaemonConfig returned by load_config or parse_config:
//   - every key of the file was known (a typo is an error, never a silently ignored key);
//   - data_dir, certificate and socket are absolute and lexically normal; a relative path in the
//     file is taken relative to the directory of the file (and that directory, when the file's own
//     path is relative, relative to the current directory at parse time);
//   - every number is within its documented range, every address parses, ports of peers are
//     1..65535, and no peer appears twice.
//
// Thread rules: values and free functions; no shared state. parse_config reads the current
// directory only to make a relative file path absolute.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.hpp"
#include "common/status.hpp"
#include "common/time.hpp"
#include "node/core/spec.hpp"
#include "node/core/tier_policy.hpp"

namespace shoal::daemon {

// The most local API threads api.read_threads may ask for.
inline constexpr std::size_t kMaxApiReadThreads = 256;

// A configured peer ([[mesh.peers]]): dialed at start and redialed after every loss.
struct PeerConfig {
  std::string host;  // a name, an IPv4 address, or an IPv6 address (written "[::1]:7411" in the file)
  std::uint16_t port = 0;
  node::Tier tier = node::Tier::kHot;
  friend bool operator==(const PeerConfig&, const PeerConfig&) = default;
};

// The daemon's settings, one member per key (several members for an "ADDR:PORT" key). Defaults
// are those of a file that leaves the key out.
struct DaemonConfig {
  std::string path;  // the file it came from, as given to load_config / parse_config

  // [node]
  std::string data_dir;     // node.data_dir, required
  std::string certificate;  // node.certificate, required: this device's certificate (`shoal mesh enrol`)
  LogLevel log_level = LogLevel::kInfo;  // node.log_level: "debug" | "info" | "warn" | "error"

  // [mesh]
  std::string listen_address = "0.0.0.0";  // mesh.listen = "ADDR:PORT" (an IP address; port 0: any free port)
  std::uint16_t listen_port = 7411;
  bool discovery = true;                         // mesh.discovery (mDNS)
  std::string discovery_interface = "0.0.0.0";   // mesh.discovery_interface, an IPv4 address
  std::vector<PeerConfig> peers;                 // [[mesh.peers]] address = "HOST:PORT", tier = "hot" | "warm"
  Duration ping_interval = Duration::seconds(5);  // mesh.ping_interval_ms
  Duration call_timeout = Duration::seconds(10);  // mesh.call_timeout_ms
  Duration backoff_max = Duration::seconds(30);   // mesh.backoff_max_ms
  std::size_t max_links = 256;                    // mesh.max_links
  std::size_t max_pending_handshakes = 64;        // mesh.max_pending_handshakes

  // [api]
  std::string socket = "/run/shoal/shoald.sock";  // api.socket
  std::uint32_t socket_mode = 0660;               // api.socket_mode, an octal string ("0660")
  std::optional<std::string> socket_group;        // api.socket_group, a group name
  // api.allow_uids / api.allow_gids: who may use the socket (SO_PEERCRED). Both empty: only the
  // daemon's own uid and root.
  std::vector<std::uint32_t> allow_uids;
  std::vector<std::uint32_t> allow_gids;
  std::size_t max_clients = 1024;  // api.max_clients
  // api.read_threads: the local API's threads serving clients' calls (daemon::LocalApiOptions;
  // 0: four per core). At most kMaxApiReadThreads (the same as daemon::kMaxReadThreads).
  std::size_t read_threads = 0;

  // [tiers]: what each collection sends warm peers (node/core/tier_policy.hpp, docs/tiers.md).
  // tiers.warm, tiers.warm_interval_ms, tiers.warm_budget_bytes set the default policy;
  // [[tiers.collections]] name = "...", with any of the same keys (warm, warm_interval_ms,
  // warm_budget_bytes, sink, hot_window_ms), one collection's (the keys it leaves out take the
  // defaults).
  bool tier_warm = true;                              // tiers.warm
  Duration tier_warm_interval = Duration::seconds(20);  // tiers.warm_interval_ms
  std::uint64_t tier_warm_budget_bytes = 0;           // tiers.warm_budget_bytes (0: no budget)
  bool tier_sink = false;                             // tiers.sink: upload to the [sink]
  Duration tier_hot_window = Duration::seconds(24 * 3600);  // tiers.hot_window_ms: eviction spares newer records
  struct CollectionTier {
    std::string name;
    std::optional<bool> warm;
    std::optional<Duration> warm_interval;
    std::optional<std::uint64_t> warm_budget_bytes;
    std::optional<bool> sink;
    std::optional<Duration> hot_window;
    friend bool operator==(const CollectionTier&, const CollectionTier&) = default;
  };
  std::vector<CollectionTier> tier_collections;

  // [sink]: the cold-tier sink this device uploads its sink collections to (docs/tiers.md, "The
  // sink feed"). No address: none.
  std::optional<PeerConfig> sink;                  // sink.address = "HOST:PORT"
  std::uint64_t sink_quota_entries = 50'000;       // sink.quota_entries
  std::uint64_t sink_payload_budget_bytes = 0;     // sink.payload_budget_bytes: evict above it (0: never)
  std::uint64_t sink_memory_budget_bytes = 0;      // sink.memory_budget_bytes: index memory; evict above it (0: never)

  // [metrics]
  bool metrics_enabled = true;                  // metrics.enabled
  std::string metrics_address = "127.0.0.1";    // metrics.listen = "ADDR:PORT" (port 0: any free port)
  std::uint16_t metrics_port = 9464;

  friend bool operator==(const DaemonConfig&, const DaemonConfig&) = default;
};

// The tier policies the [tiers] table describes (valid: parse_config checked every limit).
node::TierPolicies tier_policies(const DaemonConfig& config);

// The largest configuration file load_config reads.
inline constexpr std::size_t kMaxConfigBytes = std::size_t{1} << 20;

// Reads and parses the file at `path` (see parse_config). Statuses: those of parse_config; kIo
// naming the file and the OS reason when it cannot be read; kTooLarge above kMaxConfigBytes.
[[nodiscard]] Result<DaemonConfig> load_config(const std::string& path);

// Parses `text` as the file `path` (used in messages and to resolve relative paths; not read).
// On error, one Status covering every problem found, one line each in file order, each line
// "FILE:LINE:COLUMN: key KEY = VALUE: PROBLEM" (a missing key names its table's line, or the
// file alone when the table is absent). The code is that of the first line; the context is its
// key. Codes (all primary kInvalidArgument):
//   kMalformed    TOML syntax; a value of the wrong type; text that does not parse (an address,
//                 a mode, a tier or log level name), an empty path, a duplicate peer;
//   kUnknownName  a table or key this version does not know (a suggestion when one is close);
//   kOutOfRange   a number or port outside its range;
//   kTooLarge     more peers or ids than the limits allow, a socket path too long for sun_path;
//   kInvalidArgument (no detail) a required key missing.
[[nodiscard]] Result<DaemonConfig> parse_config(std::string_view text, const std::string& path);

// One key of the file, for documentation checks and for reload messages.
struct ConfigKey {
  std::string_view name;  // dotted: "mesh.listen"; array-of-table fields as "mesh.peers.address"
  bool reloadable;        // SIGHUP applies a change of it without a restart
  bool required;
};
// Every key parse_config accepts, in documentation order. Static storage.
std::span<const ConfigKey> config_keys() noexcept;

// What a SIGHUP does with a re-read file: reloadable keys (node.log_level, mesh.peers, the
// [tiers] keys, metrics.enabled, metrics.listen) take their new values, every other change
// waits for a restart.
struct ReloadPlan {
  // The configuration to run with after the reload: `current` with the new values of the
  // reloadable keys only (a restart-only key keeps its current value), and the new file's path.
  DaemonConfig next;
  std::vector<std::string> applied;       // reloadable keys whose value changed, in config_keys() order
  std::vector<std::string> need_restart;  // keys that changed but were not applied, same order

  // OK when nothing needs a restart; otherwise kInvalidArgument naming the file and each key in
  // need_restart ("... changed but need a restart: mesh.listen, api.socket"), context the first.
  [[nodiscard]] Status status() const;
};

// Compares two loaded configurations key by key. Pure; both are needed only during the call.
ReloadPlan plan_reload(const DaemonConfig& current, const DaemonConfig& next);

}  // namespace shoal::daemon

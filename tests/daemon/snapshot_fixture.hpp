// tests/daemon/snapshot_fixture.hpp: the fixed snapshot the daemon's observability tests and
// shoal-status-demo share: a node with three peers (a hot peer up, a warm peer up and behind, a
// hot peer partitioned), two collections and two kinds of handshake failure.
#pragma once

#include "node/daemon/status.hpp"

namespace shoal::daemon_test {

inline constexpr std::int64_t kTakenUnixMs = 1'750'000'000'000;  // 2025-06-15 15:06:40 UTC

inline daemon::DaemonSnapshot three_peer_snapshot() {
  daemon::DaemonSnapshot s;
  s.device = "gw-centre-4f1a";
  s.replica = "0a1b2c3d4e5f6071";
  s.taken_unix_ms = kTakenUnixMs;
  daemon::PeerSnapshot hot;
  hot.device = "gw-kitchen-7c21";
  hot.replica = "1111222233334444";
  hot.remote = "127.0.0.1:7401";
  hot.role = "member";
  hot.tier = daemon::PeerTier::kHot;
  hot.up = true;
  hot.lag_entries = 0;
  hot.lag_seconds = 0.3;
  hot.bytes_in = 48'000;
  hot.bytes_out = 52'500;
  hot.messages_in = 120;
  hot.messages_out = 131;
  hot.last_contact_unix_ms = kTakenUnixMs - 400;
  daemon::PeerSnapshot warm;
  warm.device = "gw-attic-9e03";
  warm.replica = "5555666677778888";
  warm.remote = "127.0.0.1:7402";
  warm.role = "member";
  warm.tier = daemon::PeerTier::kWarm;
  warm.up = true;
  warm.lag_entries = 12;
  warm.lag_seconds = 42.0;
  warm.bytes_in = 2'048;
  warm.bytes_out = 9'000'000;
  warm.messages_in = 7;
  warm.messages_out = 30;
  warm.last_contact_unix_ms = kTakenUnixMs - 3'000;
  daemon::PeerSnapshot cut;
  cut.device = "gw-garage-b2d8";
  cut.replica = "99990000aaaabbbb";
  cut.remote = "";
  cut.role = "reader";
  cut.tier = daemon::PeerTier::kHot;
  cut.up = false;
  cut.lag_entries = 3'071;
  cut.lag_seconds = std::nullopt;
  cut.last_contact_unix_ms = kTakenUnixMs - 185'000;
  s.peers = {hot, warm, cut};
  s.handshake_failures = {{"revoked", 2}, {"timeout", 5}};
  s.store_bytes = 64 * 1024 * 1024;
  s.collections = {{"fm", 10'000, 9'400'000}, {"faces", 250, 180'000}};
  s.delta_buffer_entries = 3'100;
  s.index_backlog = 212;
  s.write_groups = 40;
  s.group_writes = 290;
  s.repair_sessions_started = 9;
  s.repair_sessions_completed = 7;
  s.repair_sessions_abandoned = 1;
  s.discovered_devices = 4;
  s.warm_bytes_sent = 123456;
  s.warm_budget_deferrals = 3;
  s.warm_entries_withheld = 17;
  return s;
}

}  // namespace shoal::daemon_test

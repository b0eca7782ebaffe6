// node/daemon/status.hpp: what the daemon knows about itself and its peers at one instant, as
// plain values: the input of the metrics registry (metrics.hpp), the status page and
// /status.json (status_page.hpp).
//
// Role: the seam between the daemon and its observability. shoald fills a DaemonSnapshot on its
// loop about once a second from MeshHost::stats() and peers(), Node::stats(), sync_stats(),
// peer_progress() and list_collections(); nothing here reads a clock, a node or a socket, so
// tests and the status demo build snapshots by hand.
// Thread rules: values; no shared state.
// Invariants the producer keeps: one PeerSnapshot per device (the metrics keep the first of
// duplicates); cumulative fields never decrease except across a restart of what they count
// (MetricsRegistry::update treats a decrease as a reset and counts the new value from zero).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace shoal::daemon {

// The tier of a peer (node::Tier, without the node's headers): hot peers get every delta at
// once, warm peers are synced on a schedule.
enum class PeerTier : std::uint8_t { kHot = 0, kWarm = 1 };

// "hot" or "warm": the value of the `tier` label and of the status page's tier column.
const char* tier_name(PeerTier tier) noexcept;

struct PeerSnapshot {
  // The device's key label (security::key_label; MeshPeerView::device): the `peer` label.
  std::string device;
  std::string replica;  // MeshPeerView::replica; empty before the introduction
  std::string remote;   // "address:port"; empty when no link exists
  std::string role;     // the certificate's role ("member", "reader", "sink")
  PeerTier tier = PeerTier::kHot;
  bool up = false;  // introduced and known to the sync engine (MeshPeerView::up)
  // Our delta-buffer entries the peer has not acknowledged (PeerProgress::behind).
  std::uint64_t lag_entries = 0;
  // Seconds since the last delta from this peer; nullopt when none arrived yet.
  std::optional<double> lag_seconds;
  // The current link's counters (transport::LinkStats). A new link starts again from zero.
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t messages_in = 0;
  std::uint64_t messages_out = 0;
  // Wall time of the last message from the peer (PeerProgress::last_seen), Unix milliseconds;
  // nullopt when never heard from.
  std::optional<std::int64_t> last_contact_unix_ms;

  // A peer we know of without a live, introduced link.
  bool partitioned() const noexcept { return !up; }
};

struct CollectionSnapshot {
  std::string name;
  std::uint64_t records = 0;      // CollectionInfo::live_records
  std::uint64_t index_bytes = 0;  // CollectionInfo::index_bytes
};

struct DaemonSnapshot {
  // This node: its device key label and replica id (the middle of the status page's picture).
  std::string device;
  std::string replica;
  // When the snapshot was taken (Unix milliseconds): "last contact" ages are relative to it.
  std::int64_t taken_unix_ms = 0;
  std::vector<PeerSnapshot> peers;
  // Handshakes refused or failed, cumulative, by reason (a short stable word such as "revoked",
  // "expired", "wrong_mesh", "timeout"; the daemon's choice, one `reason` label each).
  std::map<std::string, std::uint64_t> handshake_failures;
  std::uint64_t store_bytes = 0;  // the data directory's store file(s)
  std::vector<CollectionSnapshot> collections;
  std::uint64_t delta_buffer_entries = 0;  // NodeStats::delta_buffer_entries
  // Index operations committed and still queued for the index (SharedNode::index_backlog), and group
  // commit's cumulative totals (SharedNode::write_stats): shared transactions, writes they carried.
  std::uint64_t index_backlog = 0;
  std::uint64_t write_groups = 0;
  std::uint64_t group_writes = 0;
  // SyncStats, cumulative.
  std::uint64_t repair_sessions_started = 0;
  std::uint64_t repair_sessions_completed = 0;
  std::uint64_t repair_sessions_abandoned = 0;
  // The warm tier (docs/tiers.md): bytes sent to warm peers, budget deferrals, entries withheld.
  std::uint64_t warm_bytes_sent = 0;
  std::uint64_t warm_budget_deferrals = 0;
  std::uint64_t warm_entries_withheld = 0;
  // Sightings of devices of our mesh by mDNS discovery, cumulative (MeshStats::discovered).
  std::uint64_t discovered_devices = 0;
  // The cold-tier sink link ([sink]; node/mesh/sink_uploader.hpp); nullopt when none is set.
  struct Sink {
    std::string address;                   // "host:port"
    bool connected = false;
    std::uint64_t uploaded_through = 0;    // the buffer sequence the sink acknowledged through
    std::uint64_t backlog_entries = 0;     // buffer entries waiting for it
    std::uint64_t quota_entries = 0;
    bool full_state_pending = false;
    std::uint64_t uploads = 0;             // acknowledged uploads, cumulative
    std::uint64_t upload_failures = 0;
    std::uint64_t bytes = 0;               // acknowledged bytes, cumulative
    std::uint64_t quota_refusals = 0;      // local writes refused at the quota, cumulative
    // Eviction to stubs (node::EvictionStatus).
    std::uint64_t payload_budget_bytes = 0;  // 0: never evicts
    std::uint64_t payload_held_bytes = 0;    // vector bytes held locally by sink collections (the budget's measure)
    std::uint64_t memory_budget_bytes = 0;   // 0: no memory budget
    std::uint64_t index_held_bytes = 0;      // index memory of sink collections' records (its measure)
    std::uint64_t evicted_records = 0;       // stubs held
    std::uint64_t evicted_bytes = 0;         // vector bytes the stubs stand for
    std::optional<std::int64_t> last_ack_unix_ms;
    std::string last_error;
  };
  std::optional<Sink> sink;
};

}  // namespace shoal::daemon

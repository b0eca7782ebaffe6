// node/daemon/mesh_runtime.cpp: see mesh_runtime.hpp. Moved out of shoald_main.cpp so that the
// embedded mesh (libshoal_mesh) runs the daemon's own steps.
#include "node/daemon/mesh_runtime.hpp"

#include <filesystem>

#include "security/certificate.hpp"
#include "security/key_file.hpp"

namespace shoal::daemon {
namespace {

std::uint64_t dir_bytes(const std::string& dir) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

}  // namespace

Result<security::Identity> open_identity(const DaemonConfig& config) {
  return security::open_data_dir_identity(config.data_dir, "node.data_dir");
}

Result<MeshTrust> load_trust(const DaemonConfig& config, const security::Identity& identity) {
  SHOAL_ASSIGN_OR_RETURN(auto cert, security::load_device_certificate(config.certificate, identity, "node.certificate", "shoald"));
  return MeshTrust{std::move(cert.bytes), std::move(cert.anchor)};
}

node::MeshOptions mesh_options(const DaemonConfig& c) {
  node::MeshOptions o;
  o.listen_address = c.listen_address;
  o.listen_port = c.listen_port;
  for (const auto& p : c.peers) o.peers.push_back(node::MeshPeerAddress{p.host, p.port, p.tier});
  o.discovery = c.discovery;
  o.discovery_options.interface_address = c.discovery_interface;
  o.ping_interval = c.ping_interval;
  o.call_timeout = c.call_timeout;
  o.backoff_max = c.backoff_max;
  o.listener.max_links = c.max_links;
  o.listener.max_pending_handshakes = c.max_pending_handshakes;
  o.tier_policies = tier_policies(c);
  if (c.sink) {
    node::SinkUploaderOptions sink;
    sink.host = c.sink->host;
    sink.port = c.sink->port;
    sink.backoff_max = c.backoff_max;
    sink.payload_budget_bytes = c.sink_payload_budget_bytes;
    sink.memory_budget_bytes = c.sink_memory_budget_bytes;
    o.sink = sink;
    o.sink_feed.quota_entries = c.sink_quota_entries;
  }
  return o;
}

Result<std::unique_ptr<node::MeshHost>> start_mesh_host(transport::KjLoop& loop, node::SharedNode& node,
                                                        node::RevocationReplica& revocations,
                                                        const security::Identity& identity, const MeshTrust& trust,
                                                        const DaemonConfig& config, Logger* logger) {
  node::MeshCredentials creds;
  creds.identity = &identity;
  creds.certificate = trust.certificate;
  creds.anchor = trust.anchor;
  return node::MeshHost::start(loop, node, revocations, std::move(creds), mesh_options(config), logger);
}

ReloadPlan apply_reload(const DaemonConfig& current, const DaemonConfig& next, node::MeshHost& mesh, Logger& logger,
                        const char* component) {
  ReloadPlan plan = plan_reload(current, next);
  if (!plan.need_restart.empty()) SHOAL_LOG(&logger, kWarn, component, "reload: ", plan.status().message());
  logger.set_level(plan.next.log_level);
  for (const auto& p : plan.next.peers) {
    bool known = false;
    for (const auto& q : current.peers) known = known || (q.host == p.host && q.port == p.port);
    if (!known) mesh.add_peer(node::MeshPeerAddress{p.host, p.port, p.tier});
  }
  if (tier_policies(plan.next) != tier_policies(current)) {
    // parse_config checked every limit, so this cannot fail; a failure keeps the old policies.
    if (Status st = mesh.set_tier_policies(tier_policies(plan.next)); !st.ok()) {
      SHOAL_LOG(&logger, kError, component, "reload: tier policies kept: ", st.to_string());
    }
  }
  std::string applied;
  for (const auto& k : plan.applied) applied += (applied.empty() ? "" : ", ") + k;
  std::string waiting;
  for (const auto& k : plan.need_restart) waiting += (waiting.empty() ? "" : ", ") + k;
  const std::string outcome = applied.empty() ? (waiting.empty() ? " (no change)" : ": nothing applied")
                                              : ": applied " + applied;
  SHOAL_LOG(&logger, kInfo, component, "reloaded ", plan.next.path, outcome,
            waiting.empty() ? "" : "; waiting for a restart: " + waiting);
  return plan;
}

DaemonSnapshot take_snapshot(node::SharedNode& db, node::MeshHost& mesh, const std::string& device,
                             const std::string& data_dir) {
  DaemonSnapshot s;
  s.device = device;
  s.replica = db.replica().to_string();
  s.taken_unix_ms = now_wall().ns() / 1'000'000;
  std::vector<node::PeerProgress> progress;
  node::NodeStats ns;
  node::SyncStats ss;
  std::vector<node::CollectionInfo> colls;
  db.read([&](const node::Node& n) {
    progress = n.peer_progress();
    ns = n.stats();
    ss = n.sync_stats();
    colls = n.list_collections();
  });
  const MonoTime now = now_mono();
  for (const auto& p : mesh.peers()) {
    PeerSnapshot ps;
    ps.device = p.device;
    ps.replica = p.replica;
    ps.remote = p.remote;
    ps.role = p.role;
    ps.tier = p.tier == node::Tier::kHot ? PeerTier::kHot : PeerTier::kWarm;
    ps.up = p.up;
    ps.bytes_in = p.bytes.bytes_in;
    ps.bytes_out = p.bytes.bytes_out;
    ps.messages_in = p.bytes.messages_in;
    ps.messages_out = p.bytes.messages_out;
    if (p.last_delta) ps.lag_seconds = (now - *p.last_delta).seconds_f();
    for (const auto& pr : progress) {
      if (pr.peer.to_string() == p.replica) {
        ps.lag_entries = pr.behind;
        if (pr.last_seen.ns() > 0) ps.last_contact_unix_ms = pr.last_seen.ns() / 1'000'000;
      }
    }
    s.peers.push_back(std::move(ps));
  }
  // Peers the engine knows that have no link now: partitioned.
  for (const auto& pr : progress) {
    bool linked = false;
    for (const auto& p : s.peers) linked = linked || p.replica == pr.peer.to_string();
    if (linked) continue;
    PeerSnapshot ps;
    ps.device = pr.peer.to_string();
    ps.replica = pr.peer.to_string();
    ps.tier = pr.tier == node::Tier::kHot ? PeerTier::kHot : PeerTier::kWarm;
    ps.lag_entries = pr.behind;
    if (pr.last_seen.ns() > 0) ps.last_contact_unix_ms = pr.last_seen.ns() / 1'000'000;
    s.peers.push_back(std::move(ps));
  }
  auto ms = mesh.stats();
  s.handshake_failures = ms.handshake_failures;
  s.discovered_devices = ms.discovered;
  s.store_bytes = dir_bytes(data_dir + "/store");
  for (const auto& c : colls) s.collections.push_back(CollectionSnapshot{c.spec.name, c.live_records, c.index_bytes});
  s.delta_buffer_entries = ns.delta_buffer_entries;
  s.index_backlog = db.index_backlog();
  const node::WriteGroupStats groups = db.write_stats();
  s.write_groups = groups.groups;
  s.group_writes = groups.writes;
  s.repair_sessions_started = ss.repair_sessions_started;
  s.repair_sessions_completed = ss.repair_sessions_completed;
  s.repair_sessions_abandoned = ss.repair_sessions_abandoned;
  s.warm_bytes_sent = ss.warm_bytes_sent;
  s.warm_budget_deferrals = ss.warm_budget_deferrals;
  s.warm_entries_withheld = ss.warm_entries_withheld;
  if (auto up = mesh.sink_stats()) {
    const node::SinkFeedStatus feed = db.read([](const node::Node& n) { return n.sink_feed_status(); });
    DaemonSnapshot::Sink k;
    k.address = up->address;
    k.connected = up->connected;
    k.uploaded_through = feed.uploaded_through;
    k.backlog_entries = feed.backlog_entries;
    k.quota_entries = feed.quota_entries;
    k.full_state_pending = feed.full_state_pending;
    k.uploads = up->uploads;
    k.upload_failures = up->upload_failures;
    k.bytes = up->bytes;
    k.quota_refusals = feed.quota_refusals;
    const node::EvictionStatus ev = db.read([](const node::Node& n) { return n.eviction_status(); });
    k.payload_budget_bytes = ev.budget_bytes;
    k.payload_held_bytes = ev.held_bytes;
    k.memory_budget_bytes = ev.memory_budget_bytes;
    k.index_held_bytes = ev.index_held_bytes;
    k.evicted_records = ev.evicted_records;
    k.evicted_bytes = ev.evicted_bytes;
    if (up->last_ack) k.last_ack_unix_ms = up->last_ack->ns() / 1'000'000;
    k.last_error = up->last_error;
    s.sink = std::move(k);
  }
  return s;
}

}  // namespace shoal::daemon

// node/daemon/mesh_runtime.hpp: how a process joins the mesh from shoald's configuration file,
// shared by shoald (node/daemon/shoald_main.cpp) and the embedded mesh of the C API
// (libshoal_mesh, node/mesh_capi/shoal_mesh.cpp), so that both run the same code with the same
// settings (docs/operations.md, "shoald configuration"; docs/decisions.md, D37).
//
// Role: the steps between a checked DaemonConfig and a running MeshHost, in order:
//   1. open_identity: node.data_dir made (owner only) and DATA_DIR/identity.key read or created;
//   2. load_trust: node.certificate read, decoded and matched with the identity; the trust
//      anchor is the authority that enrolled this device (docs/mesh.md, "The trust anchor");
//   3. the caller opens (shoald) or already holds (an app) the node, with a RevocationReplica
//      over that anchor as its revocation set;
//   4. start_mesh_host: the MeshHost on a KjLoop, with mesh_options(config) (listen, peers,
//      discovery, ping, timeouts, backoff, limits);
//   5. while it runs: apply_reload (SIGHUP, shoal_mesh_reload) and take_snapshot (metrics, the
//      status page, shoal_mesh_status_json).
// The [api] and [metrics] tables are the daemon's own (its local API and HTTP server); an embedded
// mesh parses and checks them like every other key but serves neither.
// Messages name the key and the file or value at fault, without a program name; shoald prints
// them after "shoald: ".
// Ownership: every reference argument must outlive the call, except where stated.
// Thread rules: open_identity, load_trust and mesh_options on any thread; start_mesh_host,
// apply_reload and take_snapshot on the loop's thread (the MeshHost's rule).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/log.hpp"
#include "common/status.hpp"
#include "node/daemon/config.hpp"
#include "node/daemon/status.hpp"
#include "node/mesh/mesh_host.hpp"
#include "node/runtime/revocation_replica.hpp"
#include "node/runtime/shared_node.hpp"
#include "security/identity.hpp"
#include "security/mesh.hpp"
#include "transport/kj_loop.hpp"

namespace shoal::daemon {

// Step 1: creates node.data_dir (owner-only permissions) when missing, then reads or creates its
// identity.key. Statuses: kIo "cannot create node.data_dir DIR: REASON"; those of
// security::load_or_create_identity (the message is that status's to_string()).
[[nodiscard]] Result<security::Identity> open_identity(const DaemonConfig& config);

// What this device proves (its certificate) and trusts (the authority that issued it).
struct MeshTrust {
  std::vector<std::uint8_t> certificate;  // the file's bytes, as sent in handshakes
  security::TrustAnchor anchor;           // the certificate's mesh, its issuer as the one authority
};

// Step 2. Statuses (each message begins "node.certificate FILE"): kIo when it cannot be read;
// the decoder's status when it does not decode; kInvalidArgument when it was issued for another
// device key than `identity`'s (the message names both key labels and how to enrol).
[[nodiscard]] Result<MeshTrust> load_trust(const DaemonConfig& config, const security::Identity& identity);

// The mesh host's options from the [mesh] table.
node::MeshOptions mesh_options(const DaemonConfig& config);

// Step 4: starts the mesh host for `node`. `identity` must outlive the host; `trust` is copied.
// Statuses: those of node::MeshHost::start (a listen address in use, discovery that cannot start).
[[nodiscard]] Result<std::unique_ptr<node::MeshHost>> start_mesh_host(transport::KjLoop& loop, node::SharedNode& node,
                                                                      node::RevocationReplica& revocations,
                                                                      const security::Identity& identity,
                                                                      const MeshTrust& trust,
                                                                      const DaemonConfig& config, Logger* logger);

// A reload (SIGHUP; shoal_mesh_reload): plans `current` -> `next` (plan_reload), then applies what
// the mesh takes without a restart: the log level (on `logger`), the peers added to
// [[mesh.peers]] (dialed now; a removed peer stays linked until its link drops) and the tier
// policies ([tiers]). Logs the keys that
// need a restart (kWarn) and those applied (kInfo, naming next.path). The caller applies what is its
// own (shoald: the metrics server) and then takes plan.next as its configuration.
ReloadPlan apply_reload(const DaemonConfig& current, const DaemonConfig& next, node::MeshHost& mesh, Logger& logger,
                        const char* component);

// What the metrics, the status page and shoal_mesh_status_json show: this node, every peer with a
// link or known to the sync engine (a peer without a link is partitioned), collections, buffer and
// repair counters; `data_dir`'s store size. `device` is this device's key label.
DaemonSnapshot take_snapshot(node::SharedNode& node, node::MeshHost& mesh, const std::string& device,
                             const std::string& data_dir);

}  // namespace shoal::daemon

// node/runtime/revocation_replica.hpp: the mesh's revocation set (security::RevocationSet) as the
// grow-only set a node replicates (node/core/replicated_set.hpp).
//
// Role: the adapter between the core, which stores and forwards opaque bytes, and security/,
// which knows what a revocation is: every joined entry's signature is verified against the
// mesh's trust anchor, so a peer cannot inject a revocation, and nothing removes one. It lives in
// its own library (shoal_node_mesh) so that libshoal links no libsodium.
// Thread rules: as its node (called by the node's owner); revoked() may be read under the same
// rules.
#pragma once

#include <cstdint>

#include "node/core/replicated_set.hpp"
#include "security/mesh.hpp"
#include "security/revocation.hpp"

namespace shoal::node {

class RevocationReplica final : public ReplicatedSet {
 public:
  explicit RevocationReplica(security::TrustAnchor anchor) : anchor_(std::move(anchor)) {}

  Result<bool> join(std::string_view encoded) override;
  std::string encode() const override;

  const security::RevocationSet& set() const noexcept { return set_; }
  bool revoked(const security::SignPublicKey& device_key) const noexcept { return set_.contains(device_key); }
  // Entries dropped because their signature, issuer or mesh did not verify.
  std::uint64_t rejected() const noexcept { return rejected_; }

 private:
  security::TrustAnchor anchor_;
  security::RevocationSet set_;
  std::uint64_t rejected_ = 0;
};

}  // namespace shoal::node

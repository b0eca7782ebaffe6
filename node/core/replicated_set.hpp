// node/core/replicated_set.hpp: a grow-only set the node replicates without interpreting it.
//
// Role: the revocation set of security/ (signed entries the core cannot verify without libsodium)
// is replicated by the sync engine as its own CRDT, not as a collection: records need vectors and
// allow deletes, a revocation must never be undone. The node stores the set's encoded state
// (meta/node.revocations), sends it whole in every Hello, joins what peers send through join(),
// and when the set grew sends it at once to every up peer (gossip by flooding: a set union
// converges in any order, and only growth is forwarded, so the flood stops).
// Implemented in node/runtime/revocation_replica.hpp over security::RevocationSet.
// Thread rules: called by the node's owner only.
#pragma once

#include <string>
#include <string_view>

#include "common/status.hpp"

namespace shoal::node {

class ReplicatedSet {
 public:
  virtual ~ReplicatedSet() = default;
  // Joins an encoded state (from a peer, from the store, or a local addition). Entries that do
  // not verify are dropped (and counted by the implementation). Returns true when the set grew.
  // Statuses: kMalformed and friends for bytes that do not decode (nothing joined).
  [[nodiscard]] virtual Result<bool> join(std::string_view encoded) = 0;
  // The whole set, encoded. Empty when the set is empty.
  virtual std::string encode() const = 0;
};

}  // namespace shoal::node

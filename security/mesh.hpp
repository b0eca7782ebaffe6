// security/mesh.hpp: what a node trusts: its mesh id and the mesh authority's public keys.
//
// Role: the trust anchor every check in security/ starts from. A mesh is a random 16-byte id and
// an authority Ed25519 key (which may live offline); during an authority-key rotation a node
// trusts both the old and the new key, so the anchor holds up to kMaxAuthorities keys
// (docs/security.md, "Rotation").
// Thread rules: values; no shared state.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "security/identity.hpp"

namespace shoal::security {

using MeshId = std::array<std::uint8_t, 16>;

inline constexpr std::size_t kMaxAuthorities = 4;

struct TrustAnchor {
  MeshId mesh_id{};
  // The authority keys this node accepts as issuers (at most kMaxAuthorities; the first is the
  // current one).
  std::vector<SignPublicKey> authorities;

  bool trusts(const SignPublicKey& issuer) const noexcept {
    return std::find(authorities.begin(), authorities.end(), issuer) != authorities.end();
  }
};

}  // namespace shoal::security

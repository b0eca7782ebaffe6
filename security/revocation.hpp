// security/revocation.hpp: the revocation set, a grow-only set of revoked device keys, each
// entry signed by the mesh authority.
//
// Role: a pure value type that the sync engine replicates as its own CRDT (through
// node/runtime/revocation_replica.hpp). Its join is a set union that verifies every incoming entry's signature against the trust
// anchor, so a peer cannot inject a revocation, and nothing can remove one: a partitioned site
// enforces the revocations it has, and a concurrent re-enrolment of the same key cannot undo one
// (the key stays revoked; a device that must return gets a new key).
//
// Join laws: entries are keyed by device key; when two valid entries name the same key, the one
// with the smaller (revoked_at, signature bytes) wins, so join is commutative, associative and
// idempotent over valid entries (tests/security/revocation_test.cpp).
//
// Wire form (big-endian), specified here because it is the only spec:
//   set   = "SHRV" | u8 version (1) | u32 count | count x entry, entries sorted by device key,
//           no duplicates, nothing after the last entry;
//   entry = mesh id (16) | device key (32) | revoked_at (i64 Unix seconds) | issuer key (32) |
//           Ed25519 signature (64) by the issuer over "shoal revocation v1\0" | the 88 bytes
//           before the signature.
// Thread rules: values; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <vector>

#include "common/status.hpp"
#include "security/identity.hpp"
#include "security/mesh.hpp"

namespace shoal::security {

inline constexpr std::size_t kRevocationEntryBytes = 16 + 32 + 8 + 32 + 64;

struct Revocation {
  MeshId mesh_id{};
  SignPublicKey device_key{};
  std::int64_t revoked_at_s = 0;  // Unix seconds; informational (revocation is immediate)
  SignPublicKey issuer_key{};
  Signature signature{};

  friend bool operator==(const Revocation&, const Revocation&) = default;
};

// The entry revoking `device_key` in `mesh_id`, signed by `authority`.
[[nodiscard]] Revocation make_revocation(const MeshId& mesh_id, const SignPublicKey& device_key,
                                         std::int64_t revoked_at_s, const Identity& authority);

// Statuses: kWrongMesh; kUnknownIssuer (issuer not in the anchor); kBadSignature.
[[nodiscard]] Status verify_revocation(const Revocation& entry, const TrustAnchor& anchor);

struct JoinStats {
  std::size_t added = 0;     // keys new to this set
  std::size_t rejected = 0;  // entries whose verification failed (dropped)
};

class RevocationSet {
 public:
  // Adds `entry` after verifying it. Statuses: those of verify_revocation.
  [[nodiscard]] Status insert(const Revocation& entry, const TrustAnchor& anchor);
  // Set union with `other`, verifying each of its entries; invalid entries are dropped and
  // counted. Never fails.
  JoinStats join(const RevocationSet& other, const TrustAnchor& anchor);

  bool contains(const SignPublicKey& device_key) const noexcept {
    return entries_.count(device_key) != 0;
  }
  std::size_t size() const noexcept { return entries_.size(); }
  // Entries in device-key order.
  const std::map<SignPublicKey, Revocation>& entries() const noexcept { return entries_; }

  // Adds without verifying: for decode_revocations (whose result is untrusted until joined into
  // a trusted set) and for tests building hostile sets.
  void insert_unverified(const Revocation& entry) { merge_one(entry); }

  friend bool operator==(const RevocationSet&, const RevocationSet&) = default;

 private:
  // Returns true when the key was new.
  bool merge_one(const Revocation& entry);
  std::map<SignPublicKey, Revocation> entries_;
};

// Encodes the set (the wire form above). Deterministic.
[[nodiscard]] std::vector<std::uint8_t> encode_revocations(const RevocationSet& set);
// Decodes the wire form. Signatures are NOT verified here: join the result into a trusted set.
// Statuses: kBadMagic; kVersionMismatch; kTooLarge (count above max_entries); kTruncated (fewer
// bytes than the count needs); kMalformed (trailing bytes, unsorted or duplicate keys).
[[nodiscard]] Result<RevocationSet> decode_revocations(std::span<const std::uint8_t> bytes,
                                                       std::size_t max_entries = 1u << 20);

}  // namespace shoal::security

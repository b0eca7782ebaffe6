// security/certificate.hpp: device certificates: what the mesh authority vouches for, in a small
// fixed-layout, versioned binary record, and the checks that decide whether a peer is trusted.
//
// Role: a certificate binds a device's Ed25519 key (and so, through static_key_of, its Noise
// static key) to a mesh, a role, the collections it may read and write, and a validity window.
// It travels inside the Noise handshake, where it is read before its sender is authenticated:
// that is why it is not a Cap'n Proto message, and why decode_certificate accepts exactly one
// canonical encoding and bounds everything (tests/fuzz/fuzz_security_cert.cpp fuzzes it).
//
// Wire form (big-endian; the spec, also in docs/security.md):
//   offset size
//     0     4   magic "SHCT"
//     4     1   version (1)
//     5     1   role (1 member, 2 reader, 3 sink)
//     6     1   grant count n (0..kMaxGrants)
//     7     1   reserved, 0
//     8    16   mesh id
//    24    32   device Ed25519 public key
//    56    32   issuer Ed25519 public key (a mesh authority key)
//    88     8   serial (u64; renewals take a new serial)
//    96     8   not_before (i64 Unix seconds)
//   104     8   not_after (i64 Unix seconds, >= not_before)
//   112         n grants: u8 rights (1 read, 2 write, 3 both) | u8 name length (1..64) | name;
//               names are sorted bytewise, unique, with no NUL byte; "*" means every collection
//   end-64 64   Ed25519 signature by the issuer over "shoal certificate v1\0" | every byte above
// Nothing may follow the signature. Size: 176 to 1232 bytes.
//
// Verification (verify_certificate) checks in this order, each failure with its own detail code:
// self-signed, unknown issuer, bad signature, wrong mesh, revoked, not yet valid, expired, wrong
// role, static key mismatch.
// Thread rules: values and pure functions; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "common/time.hpp"
#include "security/identity.hpp"
#include "security/mesh.hpp"
#include "security/noise.hpp"
#include "security/revocation.hpp"
#include "security/trusted_clock.hpp"

namespace shoal::security {

inline constexpr std::uint8_t kCertificateVersion = 1;
inline constexpr std::size_t kMaxGrants = 16;
// Same bound as the sync codec's collection names (transport::DecodeLimits).
inline constexpr std::size_t kMaxCollectionNameBytes = 64;
inline constexpr std::size_t kCertificateFixedBytes = 112;
inline constexpr std::size_t kMinCertificateBytes = kCertificateFixedBytes + 64;
inline constexpr std::size_t kMaxCertificateBytes =
    kCertificateFixedBytes + kMaxGrants * (2 + kMaxCollectionNameBytes) + 64;

enum class DeviceRole : std::uint8_t {
  kMember = 1,  // a full peer: replicates the collections its grants name
  kReader = 2,  // reads only: write rights in its grants are ignored
  kSink = 3,    // the cold-tier sink
};
std::string_view role_name(DeviceRole role) noexcept;

// A set of roles, as a bit mask (bit = role value).
class RoleSet {
 public:
  constexpr RoleSet() noexcept = default;
  constexpr RoleSet(std::initializer_list<DeviceRole> roles) noexcept {
    for (DeviceRole r : roles) bits_ |= 1u << static_cast<unsigned>(r);
  }
  static constexpr RoleSet all() noexcept {
    return {DeviceRole::kMember, DeviceRole::kReader, DeviceRole::kSink};
  }
  constexpr bool has(DeviceRole r) const noexcept {
    return (bits_ >> static_cast<unsigned>(r)) & 1u;
  }

 private:
  std::uint32_t bits_ = 0;
};

enum Rights : std::uint8_t { kRead = 1, kWrite = 2, kReadWrite = 3 };

struct Grant {
  std::string collection;  // or "*": every collection
  std::uint8_t rights = kRead;

  friend bool operator==(const Grant&, const Grant&) = default;
};

// What a verified certificate lets its holder do with one collection, for the RPC layer.
struct Access {
  bool read = false;
  bool write = false;
};

struct Certificate {
  std::uint8_t version = kCertificateVersion;
  DeviceRole role = DeviceRole::kMember;
  MeshId mesh_id{};
  SignPublicKey device_key{};
  SignPublicKey issuer_key{};
  std::uint64_t serial = 0;
  std::int64_t not_before_s = 0;
  std::int64_t not_after_s = 0;
  std::vector<Grant> grants;  // sorted by name, unique
  Signature signature{};

  // What this certificate allows on `collection`: the union of the "*" grant and the grant that
  // names it; a reader never gets write. Meaningful only after verify_certificate succeeded.
  Access access(std::string_view collection) const noexcept;
  friend bool operator==(const Certificate&, const Certificate&) = default;
};

// The canonical encoding. Statuses: kTooLarge (more than kMaxGrants grants, a name above 64
// bytes); kMalformed (an empty name, a NUL in a name, names not sorted or duplicated, rights
// outside 1..3, not_after < not_before, an unknown role or version).
[[nodiscard]] Result<std::vector<std::uint8_t>> encode_certificate(const Certificate& cert);

// Decodes exactly one canonical certificate; any other byte string is refused. Does not verify
// the signature. Statuses: kTruncated (shorter than its layout); kTooLarge (above
// kMaxCertificateBytes or more than kMaxGrants grants); kBadMagic; kVersionMismatch; kMalformed
// (everything encode_certificate refuses, reserved bits set, trailing bytes).
[[nodiscard]] Result<Certificate> decode_certificate(std::span<const std::uint8_t> bytes);

// Signs `draft` with `authority`: sets issuer_key and signature. Statuses: those of
// encode_certificate.
[[nodiscard]] Result<Certificate> issue_certificate(Certificate draft, const Identity& authority);

// Checks `cert` against the anchor, the revocation set and the trusted time (use
// TrustedClock::now). `noise_static_or_null`, when given, must be the X25519 conversion of the
// certificate's device key. Statuses (in the order checked):
//   kSelfSigned          the signature verifies under the device's own key (or issuer == device);
//   kUnknownIssuer       the issuer is not one of the anchor's authority keys;
//   kBadSignature        the signature does not verify under the issuer key;
//   kWrongMesh           the mesh id is not the anchor's;
//   kRevoked             the device key is in `revoked`;
//   kNotYetValid         trusted_now + max_skew < not_before;
//   kExpired             trusted_now - max_skew > not_after;
//   kWrongRole           the role is not in `accepted_roles`;
//   kStaticKeyMismatch   the device key does not convert to `noise_static_or_null` (or is not a
//                        valid Ed25519 point).
// Messages name the device key (hex prefix) in the context.
[[nodiscard]] Status verify_certificate(const Certificate& cert, const TrustAnchor& anchor,
                                        const RevocationSet& revoked, WallTime trusted_now,
                                        RoleSet accepted_roles,
                                        const noise::PublicKey* noise_static_or_null,
                                        Duration max_skew = kMaxClockSkew);

// The first 8 bytes of a key in hex: how messages and logs name a device.
std::string key_label(const SignPublicKey& key);

}  // namespace shoal::security

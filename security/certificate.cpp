#include "security/certificate.hpp"

#include <cstring>
#include <string>

#include "security/bytes.hpp"

namespace shoal::security {

namespace {

constexpr std::string_view kDomain("shoal certificate v1\0", 21);
constexpr std::uint8_t kMagic[4] = {'S', 'H', 'C', 'T'};

bool known_role(std::uint8_t r) noexcept { return r >= 1 && r <= 3; }

Status check_fields(const Certificate& c) {
  if (c.version != kCertificateVersion) {
    return Status(Detail::kVersionMismatch,
                  "certificate version " + std::to_string(c.version) + " is not 1");
  }
  if (!known_role(static_cast<std::uint8_t>(c.role))) {
    return Status(Detail::kMalformed, "unknown certificate role");
  }
  if (c.grants.size() > kMaxGrants) {
    return Status(Detail::kTooLarge, "certificate with " + std::to_string(c.grants.size()) +
                                         " grants; the limit is " + std::to_string(kMaxGrants));
  }
  for (std::size_t i = 0; i < c.grants.size(); ++i) {
    const Grant& g = c.grants[i];
    if (g.collection.empty()) return Status(Detail::kMalformed, "empty collection name in a grant");
    if (g.collection.size() > kMaxCollectionNameBytes) {
      return Status(Detail::kTooLarge, "collection name above 64 bytes in a grant");
    }
    if (g.collection.find('\0') != std::string::npos) {
      return Status(Detail::kMalformed, "NUL byte in a collection name");
    }
    if (g.rights < 1 || g.rights > 3) return Status(Detail::kMalformed, "grant rights not 1..3");
    if (i > 0 && !(c.grants[i - 1].collection < g.collection)) {
      return Status(Detail::kMalformed, "grants not sorted by name, or duplicated");
    }
  }
  if (c.not_after_s < c.not_before_s) {
    return Status(Detail::kMalformed, "certificate not_after is before not_before");
  }
  return ok_status();
}

// The bytes before the signature.
std::vector<std::uint8_t> encode_body(const Certificate& c) {
  std::vector<std::uint8_t> out;
  out.reserve(kMaxCertificateBytes);
  detail::put_bytes(out, kMagic);
  detail::put_u8(out, c.version);
  detail::put_u8(out, static_cast<std::uint8_t>(c.role));
  detail::put_u8(out, static_cast<std::uint8_t>(c.grants.size()));
  detail::put_u8(out, 0);
  detail::put_bytes(out, c.mesh_id);
  detail::put_bytes(out, c.device_key);
  detail::put_bytes(out, c.issuer_key);
  detail::put_u64be(out, c.serial);
  detail::put_u64be(out, static_cast<std::uint64_t>(c.not_before_s));
  detail::put_u64be(out, static_cast<std::uint64_t>(c.not_after_s));
  for (const Grant& g : c.grants) {
    detail::put_u8(out, g.rights);
    detail::put_u8(out, static_cast<std::uint8_t>(g.collection.size()));
    out.insert(out.end(), g.collection.begin(), g.collection.end());
  }
  return out;
}

std::vector<std::uint8_t> signed_message(const Certificate& c) {
  std::vector<std::uint8_t> m(kDomain.begin(), kDomain.end());
  detail::put_bytes(m, encode_body(c));
  return m;
}

}  // namespace

std::string_view role_name(DeviceRole role) noexcept {
  switch (role) {
    case DeviceRole::kMember: return "member";
    case DeviceRole::kReader: return "reader";
    case DeviceRole::kSink: return "sink";
  }
  return "unknown";
}

std::string key_label(const SignPublicKey& key) {
  static const char* digits = "0123456789abcdef";
  std::string s = "device ";
  for (std::size_t i = 0; i < 8; ++i) {
    s += digits[key[i] >> 4];
    s += digits[key[i] & 15];
  }
  return s;
}

Access Certificate::access(std::string_view collection) const noexcept {
  std::uint8_t rights = 0;
  for (const Grant& g : grants) {
    if (g.collection == "*" || g.collection == collection) rights |= g.rights;
  }
  Access a;
  a.read = (rights & kRead) != 0;
  a.write = (rights & kWrite) != 0 && role != DeviceRole::kReader;
  return a;
}

Result<std::vector<std::uint8_t>> encode_certificate(const Certificate& cert) {
  SHOAL_RETURN_IF_ERROR(check_fields(cert));
  std::vector<std::uint8_t> out = encode_body(cert);
  detail::put_bytes(out, cert.signature);
  return out;
}

Result<Certificate> decode_certificate(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > kMaxCertificateBytes) {
    return Status(Detail::kTooLarge, "certificate of " + std::to_string(bytes.size()) +
                                         " bytes is above the limit " +
                                         std::to_string(kMaxCertificateBytes));
  }
  if (bytes.size() < kMinCertificateBytes) {
    return Status(Detail::kTruncated, "certificate shorter than its fixed layout");
  }
  if (std::memcmp(bytes.data(), kMagic, 4) != 0) {
    return Status(Detail::kBadMagic, "not a Shoal certificate");
  }
  detail::Reader r(bytes.first(bytes.size() - 64));
  Certificate c;
  std::uint8_t magic[4];
  r.bytes(magic, 4);
  c.version = r.u8();
  const std::uint8_t role = r.u8();
  const std::uint8_t count = r.u8();
  const std::uint8_t reserved = r.u8();
  if (c.version != kCertificateVersion) {
    return Status(Detail::kVersionMismatch,
                  "certificate version " + std::to_string(c.version) + " is not 1");
  }
  if (!known_role(role)) return Status(Detail::kMalformed, "unknown certificate role");
  c.role = static_cast<DeviceRole>(role);
  if (reserved != 0) return Status(Detail::kMalformed, "reserved certificate byte is not 0");
  if (count > kMaxGrants) {
    return Status(Detail::kTooLarge, "certificate with " + std::to_string(count) +
                                         " grants; the limit is " + std::to_string(kMaxGrants));
  }
  r.bytes(c.mesh_id.data(), c.mesh_id.size());
  r.bytes(c.device_key.data(), c.device_key.size());
  r.bytes(c.issuer_key.data(), c.issuer_key.size());
  c.serial = r.u64be();
  c.not_before_s = static_cast<std::int64_t>(r.u64be());
  c.not_after_s = static_cast<std::int64_t>(r.u64be());
  c.grants.reserve(count);
  for (std::uint8_t i = 0; i < count; ++i) {
    Grant g;
    g.rights = r.u8();
    const std::uint8_t len = r.u8();
    if (!r.ok()) return Status(Detail::kTruncated, "certificate grants truncated");
    if (len > r.remaining()) return Status(Detail::kTruncated, "certificate grant name truncated");
    g.collection.resize(len);
    r.bytes(reinterpret_cast<std::uint8_t*>(g.collection.data()), len);
    c.grants.push_back(std::move(g));
  }
  if (!r.ok()) return Status(Detail::kTruncated, "certificate shorter than its layout");
  if (r.remaining() != 0) return Status(Detail::kMalformed, "trailing bytes in a certificate");
  std::memcpy(c.signature.data(), bytes.data() + bytes.size() - 64, 64);
  SHOAL_RETURN_IF_ERROR(check_fields(c));
  return c;
}

Result<Certificate> issue_certificate(Certificate draft, const Identity& authority) {
  draft.issuer_key = authority.public_key();
  SHOAL_RETURN_IF_ERROR(check_fields(draft));
  draft.signature = authority.sign(signed_message(draft));
  return draft;
}

Status verify_certificate(const Certificate& cert, const TrustAnchor& anchor,
                          const RevocationSet& revoked, WallTime trusted_now,
                          RoleSet accepted_roles, const noise::PublicKey* noise_static_or_null,
                          Duration max_skew) {
  const std::string who = key_label(cert.device_key);
  const std::vector<std::uint8_t> message = signed_message(cert);
  const bool signature_by_issuer = verify_signature(cert.issuer_key, message, cert.signature);
  if (cert.issuer_key == cert.device_key ||
      (!signature_by_issuer && verify_signature(cert.device_key, message, cert.signature))) {
    return Status(Detail::kSelfSigned, "certificate is signed by the device's own key", who);
  }
  if (!anchor.trusts(cert.issuer_key)) {
    return Status(Detail::kUnknownIssuer, "certificate issuer is not a mesh authority", who);
  }
  if (!signature_by_issuer) {
    return Status(Detail::kBadSignature, "certificate signature does not verify", who);
  }
  if (cert.mesh_id != anchor.mesh_id) {
    return Status(Detail::kWrongMesh, "certificate is for another mesh", who);
  }
  if (revoked.contains(cert.device_key)) {
    return Status(Detail::kRevoked, "device key is revoked", who);
  }
  const std::int64_t now_s = trusted_now.ns() / 1000'000'000;
  const std::int64_t skew_s = max_skew.ns() / 1000'000'000;
  if (now_s + skew_s < cert.not_before_s) {
    return Status(Detail::kNotYetValid,
                  "certificate is valid from " + std::to_string(cert.not_before_s) +
                      " but the trusted time is " + std::to_string(now_s),
                  who);
  }
  if (now_s - skew_s > cert.not_after_s) {
    return Status(Detail::kExpired,
                  "certificate expired at " + std::to_string(cert.not_after_s) +
                      " and the trusted time is " + std::to_string(now_s),
                  who);
  }
  if (!accepted_roles.has(cert.role)) {
    return Status(Detail::kWrongRole,
                  "role " + std::string(role_name(cert.role)) + " is not accepted here", who);
  }
  if (noise_static_or_null != nullptr) {
    auto x = static_key_of(cert.device_key);
    if (!x.ok() || sodium_memcmp(x->data(), noise_static_or_null->data(), noise::kDhLen) != 0) {
      return Status(Detail::kStaticKeyMismatch,
                    "the Noise static key is not the certificate's device key", who);
    }
  }
  return ok_status();
}

}  // namespace shoal::security

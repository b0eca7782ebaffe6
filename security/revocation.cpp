#include "security/revocation.hpp"

#include <cstring>
#include <string>
#include <string_view>
#include <tuple>

#include "security/bytes.hpp"

namespace shoal::security {

namespace {

constexpr std::string_view kDomain("shoal revocation v1\0", 20);
constexpr std::uint8_t kMagic[4] = {'S', 'H', 'R', 'V'};
constexpr std::uint8_t kVersion = 1;

std::vector<std::uint8_t> signed_message(const Revocation& e) {
  std::vector<std::uint8_t> m(kDomain.begin(), kDomain.end());
  detail::put_bytes(m, e.mesh_id);
  detail::put_bytes(m, e.device_key);
  detail::put_u64be(m, static_cast<std::uint64_t>(e.revoked_at_s));
  detail::put_bytes(m, e.issuer_key);
  return m;
}

}  // namespace

Revocation make_revocation(const MeshId& mesh_id, const SignPublicKey& device_key,
                           std::int64_t revoked_at_s, const Identity& authority) {
  Revocation e;
  e.mesh_id = mesh_id;
  e.device_key = device_key;
  e.revoked_at_s = revoked_at_s;
  e.issuer_key = authority.public_key();
  e.signature = authority.sign(signed_message(e));
  return e;
}

Status verify_revocation(const Revocation& entry, const TrustAnchor& anchor) {
  if (entry.mesh_id != anchor.mesh_id) {
    return Status(Detail::kWrongMesh, "revocation for another mesh");
  }
  if (!anchor.trusts(entry.issuer_key)) {
    return Status(Detail::kUnknownIssuer, "revocation not issued by the mesh authority");
  }
  if (!verify_signature(entry.issuer_key, signed_message(entry), entry.signature)) {
    return Status(Detail::kBadSignature, "revocation signature does not verify");
  }
  return ok_status();
}

bool RevocationSet::merge_one(const Revocation& entry) {
  auto [it, inserted] = entries_.try_emplace(entry.device_key, entry);
  if (!inserted) {
    const Revocation& cur = it->second;
    if (std::tie(entry.revoked_at_s, entry.signature) < std::tie(cur.revoked_at_s, cur.signature)) {
      it->second = entry;
    }
  }
  return inserted;
}

Status RevocationSet::insert(const Revocation& entry, const TrustAnchor& anchor) {
  SHOAL_RETURN_IF_ERROR(verify_revocation(entry, anchor));
  merge_one(entry);
  return ok_status();
}

JoinStats RevocationSet::join(const RevocationSet& other, const TrustAnchor& anchor) {
  JoinStats stats;
  for (const auto& [key, entry] : other.entries_) {
    if (!verify_revocation(entry, anchor).ok()) {
      ++stats.rejected;
      continue;
    }
    if (merge_one(entry)) ++stats.added;
  }
  return stats;
}

std::vector<std::uint8_t> encode_revocations(const RevocationSet& set) {
  std::vector<std::uint8_t> out;
  out.reserve(9 + set.size() * kRevocationEntryBytes);
  detail::put_bytes(out, kMagic);
  detail::put_u8(out, kVersion);
  detail::put_u32be(out, static_cast<std::uint32_t>(set.size()));
  for (const auto& [key, e] : set.entries()) {
    detail::put_bytes(out, e.mesh_id);
    detail::put_bytes(out, e.device_key);
    detail::put_u64be(out, static_cast<std::uint64_t>(e.revoked_at_s));
    detail::put_bytes(out, e.issuer_key);
    detail::put_bytes(out, e.signature);
  }
  return out;
}

Result<RevocationSet> decode_revocations(std::span<const std::uint8_t> bytes,
                                         std::size_t max_entries) {
  detail::Reader r(bytes);
  std::uint8_t magic[4];
  r.bytes(magic, 4);
  const std::uint8_t version = r.u8();
  const std::uint32_t count = r.u32be();
  if (!r.ok()) return Status(Detail::kTruncated, "revocation set shorter than its header");
  if (std::memcmp(magic, kMagic, 4) != 0) return Status(Detail::kBadMagic, "not a revocation set");
  if (version != kVersion) {
    return Status(Detail::kVersionMismatch,
                  "revocation set version " + std::to_string(version) + " is not 1");
  }
  if (count > max_entries) {
    return Status(Detail::kTooLarge, "revocation set of " + std::to_string(count) +
                                         " entries is above the limit " +
                                         std::to_string(max_entries));
  }
  // Checked before anything is allocated.
  if (r.remaining() / kRevocationEntryBytes < count) {
    return Status(Detail::kTruncated, "revocation set shorter than its count");
  }
  if (r.remaining() != std::size_t{count} * kRevocationEntryBytes) {
    return Status(Detail::kMalformed, "trailing bytes after the revocation set");
  }
  RevocationSet set;
  const SignPublicKey* prev = nullptr;
  for (std::uint32_t i = 0; i < count; ++i) {
    Revocation e;
    r.bytes(e.mesh_id.data(), e.mesh_id.size());
    r.bytes(e.device_key.data(), e.device_key.size());
    e.revoked_at_s = static_cast<std::int64_t>(r.u64be());
    r.bytes(e.issuer_key.data(), e.issuer_key.size());
    r.bytes(e.signature.data(), e.signature.size());
    if (prev != nullptr && !(*prev < e.device_key)) {
      return Status(Detail::kMalformed, "revocation entries not sorted by key or duplicated");
    }
    set.insert_unverified(e);
    prev = &set.entries().find(e.device_key)->first;
  }
  return set;
}

}  // namespace shoal::security

// Proves the clock policy of certificate checks (security/trusted_clock.hpp): a gateway booting
// near 1970 uses its trusted floor, so it neither accepts a certificate that expired before its
// floor nor refuses one valid at the floor; the floor only rises; a wrong future local clock
// never raises it; the 300 s skew bound applies at both ends. And the revocation set: its join
// verifies each entry (forged, foreign-mesh and unknown-issuer entries are dropped), it is
// commutative, associative and idempotent over random sets (seed printed), a revocation cannot be
// undone by re-enrolment, and its encoding round trips and is decoded with strict bounds.
#include <catch2/catch.hpp>

#include "mesh_fixture.hpp"
#include "security/revocation.hpp"
#include "security/trusted_clock.hpp"

using namespace shoal;
using namespace shoal::security;
using namespace shoal::security::test;

TEST_CASE("a gateway booting near 1970 validates certificates against its trusted floor", "[security][clock]") {
  TestMesh mesh;
  Identity dev = identity_from(10);
  const Certificate cert = mesh.issue(dev);  // valid [kEpochS, kEpochS + 1 year]
  const WallTime boot_clock = at_s(12);      // no RTC: the clock reads 1970
  auto check = [&](const TrustedClock& clock) {
    return verify_certificate(cert, mesh.anchor, mesh.revoked, clock.now(boot_clock),
                              RoleSet::all(), nullptr);
  };
  SECTION("without a floor, the certificate is not yet valid (fails closed)") {
    TrustedClock clock;
    CHECK(check(clock).detail() == Detail::kNotYetValid);
  }
  SECTION("a floor persisted from before the reboot makes it valid") {
    TrustedClock clock(at_s(kEpochS + 5000));
    CHECK(clock.now(boot_clock) == at_s(kEpochS + 5000));
    CHECK(check(clock).ok());
  }
  SECTION("a floor past the certificate's expiry still rejects it as expired") {
    TrustedClock clock(at_s(kEpochS + kYearS + 1000));
    CHECK(check(clock).detail() == Detail::kExpired);
  }
  SECTION("verified certificates raise the floor; nothing lowers it") {
    TrustedClock clock;
    clock.observe(at_s(cert.not_before_s));
    CHECK(check(clock).ok());
    clock.observe(at_s(100));  // older evidence
    CHECK(clock.floor() == at_s(cert.not_before_s));
  }
}

TEST_CASE("after months offline the local clock is used and expired certificates are refused", "[security][clock]") {
  TestMesh mesh;
  Identity dev = identity_from(11);
  const Certificate cert = mesh.issue(dev);
  TrustedClock clock(at_s(kEpochS + 100));
  const WallTime local = at_s(kEpochS + kYearS + 90 * 24 * 3600);  // 3 months past expiry
  CHECK(clock.now(local) == local);
  CHECK(verify_certificate(cert, mesh.anchor, mesh.revoked, clock.now(local), RoleSet::all(),
                           nullptr)
            .detail() == Detail::kExpired);
  // The local clock did not raise the floor: fixing a clock set too far ahead recovers.
  CHECK(clock.floor() == at_s(kEpochS + 100));
  CHECK(verify_certificate(cert, mesh.anchor, mesh.revoked, clock.now(at_s(kEpochS + 200)),
                           RoleSet::all(), nullptr)
            .ok());
}

TEST_CASE("the revocation join verifies every entry's signature", "[security][revocation]") {
  TestMesh mesh;
  Identity dev = identity_from(20);
  Identity other_authority = identity_from(21);
  RevocationSet incoming;
  incoming.insert_unverified(make_revocation(mesh.anchor.mesh_id, identity_from(22).public_key(),
                                             kEpochS, mesh.authority));  // valid
  Revocation forged = make_revocation(mesh.anchor.mesh_id, dev.public_key(), kEpochS, mesh.authority);
  forged.signature[3] ^= 1;
  incoming.insert_unverified(forged);
  incoming.insert_unverified(make_revocation(mesh.anchor.mesh_id, identity_from(23).public_key(),
                                             kEpochS, other_authority));
  MeshId other_mesh = mesh.anchor.mesh_id;
  other_mesh[0] ^= 1;
  incoming.insert_unverified(
      make_revocation(other_mesh, identity_from(24).public_key(), kEpochS, mesh.authority));

  RevocationSet trusted;
  JoinStats stats = trusted.join(incoming, mesh.anchor);
  CHECK(stats.added == 1);
  CHECK(stats.rejected == 3);
  CHECK(trusted.size() == 1);
  CHECK_FALSE(trusted.contains(dev.public_key()));
  CHECK(trusted.insert(forged, mesh.anchor).detail() == Detail::kBadSignature);
  Revocation foreign = make_revocation(mesh.anchor.mesh_id, dev.public_key(), kEpochS, other_authority);
  CHECK(trusted.insert(foreign, mesh.anchor).detail() == Detail::kUnknownIssuer);
}

TEST_CASE("revocation join is commutative, associative and idempotent", "[security][revocation][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  TestMesh mesh;
  std::vector<SignPublicKey> keys;
  for (int i = 0; i < 6; ++i) keys.push_back(random_bytes<32>(rng));
  auto random_set = [&]() {
    RevocationSet s;
    for (int i = 0; i < 4; ++i) {
      const auto& k = keys[rng.uniform(keys.size())];
      // Same key, different revoked_at: the join must pick one deterministically.
      Revocation e = make_revocation(mesh.anchor.mesh_id, k,
                                     kEpochS + static_cast<std::int64_t>(rng.uniform(3)),
                                     mesh.authority);
      REQUIRE(s.insert(e, mesh.anchor).ok());
    }
    return s;
  };
  for (int round = 0; round < 30; ++round) {
    RevocationSet a = random_set(), b = random_set(), c = random_set();
    RevocationSet ab = a;
    (void)ab.join(b, mesh.anchor);
    RevocationSet ba = b;
    (void)ba.join(a, mesh.anchor);
    CHECK(ab == ba);
    RevocationSet ab_c = ab;
    (void)ab_c.join(c, mesh.anchor);
    RevocationSet bc = b;
    (void)bc.join(c, mesh.anchor);
    RevocationSet a_bc = a;
    (void)a_bc.join(bc, mesh.anchor);
    CHECK(a_bc == ab_c);
    RevocationSet aa = a;
    (void)aa.join(a, mesh.anchor);
    CHECK(aa == a);
  }
}

TEST_CASE("a re-enrolled key stays revoked", "[security][revocation]") {
  TestMesh mesh;
  Identity dev = identity_from(30);
  REQUIRE(mesh.revoked.insert(make_revocation(mesh.anchor.mesh_id, dev.public_key(), kEpochS,
                                              mesh.authority),
                              mesh.anchor)
              .ok());
  // A fresh certificate for the same key (a concurrent re-enrolment) is still refused.
  Certificate renewed = mesh.draft(dev);
  renewed.serial = 99;
  auto c = issue_certificate(renewed, mesh.authority);
  REQUIRE(c.ok());
  CHECK(verify_certificate(*c, mesh.anchor, mesh.revoked, at_s(kEpochS + 10), RoleSet::all(),
                           nullptr)
            .detail() == Detail::kRevoked);
}

TEST_CASE("revocation sets encode, decode and refuse malformed input", "[security][revocation]") {
  TestMesh mesh;
  RevocationSet s;
  for (std::uint64_t i = 0; i < 5; ++i) {
    REQUIRE(s.insert(make_revocation(mesh.anchor.mesh_id, identity_from(40 + i).public_key(),
                                     kEpochS, mesh.authority),
                     mesh.anchor)
                .ok());
  }
  auto bytes = encode_revocations(s);
  CHECK(bytes.size() == 9 + 5 * kRevocationEntryBytes);
  auto back = decode_revocations(bytes);
  REQUIRE(back.ok());
  CHECK(*back == s);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    CHECK_FALSE(decode_revocations(std::span<const std::uint8_t>(bytes.data(), n)).ok());
  }
  auto extra = bytes;
  extra.push_back(1);
  CHECK(decode_revocations(extra).status().detail() == Detail::kMalformed);
  CHECK(decode_revocations(bytes, 4).status().detail() == Detail::kTooLarge);
  // A count of 2^32-1 with no entries: refused before any allocation.
  std::vector<std::uint8_t> hostile = {'S', 'H', 'R', 'V', 1, 0xff, 0xff, 0xff, 0xff};
  CHECK(decode_revocations(hostile, ~std::size_t{0}).status().detail() == Detail::kTruncated);
  // Swapped entries are not canonical.
  auto swapped = bytes;
  std::swap_ranges(swapped.begin() + 9, swapped.begin() + 9 + kRevocationEntryBytes,
                   swapped.begin() + 9 + kRevocationEntryBytes);
  CHECK(decode_revocations(swapped).status().detail() == Detail::kMalformed);
}

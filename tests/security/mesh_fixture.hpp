// tests/security/mesh_fixture.hpp: a test mesh: an authority, a trust anchor, devices with
// certificates, and a driver that runs a SecureHandshake pair to completion.
// Thread rules: values owned by one test.
#pragma once

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/random.hpp"
#include "security/certificate.hpp"
#include "security/handshake.hpp"
#include "security/identity.hpp"
#include "test_util.hpp"

namespace shoal::security::test {

// Fixed times: certificates valid for a year from kEpoch.
inline constexpr std::int64_t kEpochS = 1'700'000'000;
inline constexpr std::int64_t kYearS = 365 * 24 * 3600;
inline WallTime at_s(std::int64_t s) { return WallTime::from_ns(s * 1'000'000'000); }

inline Identity identity_from(std::uint64_t seed) {
  Rng rng(seed);
  auto bytes = random_bytes<kSeedBytes>(rng);
  auto id = Identity::from_seed(bytes);
  REQUIRE(id.ok());
  return std::move(*id);
}

inline noise::KeyPair ephemeral_from(Rng& rng) {
  auto bytes = random_bytes<noise::kDhLen>(rng);
  return noise::KeyPair::from_private(bytes);
}

struct TestMesh {
  Identity authority = identity_from(1000);
  TrustAnchor anchor;
  RevocationSet revoked;

  TestMesh() {
    anchor.mesh_id.fill(0x5a);
    anchor.authorities = {authority.public_key()};
  }

  Certificate draft(const Identity& device, DeviceRole role = DeviceRole::kMember) const {
    Certificate c;
    c.role = role;
    c.mesh_id = anchor.mesh_id;
    c.device_key = device.public_key();
    c.serial = 7;
    c.not_before_s = kEpochS;
    c.not_after_s = kEpochS + kYearS;
    c.grants = {{"*", kRead}, {"photos", kReadWrite}};
    return c;
  }
  Certificate issue(const Identity& device, DeviceRole role = DeviceRole::kMember) const {
    auto c = issue_certificate(draft(device, role), authority);
    REQUIRE(c.ok());
    return *c;
  }
  std::vector<std::uint8_t> issue_bytes(const Identity& device,
                                        DeviceRole role = DeviceRole::kMember) const {
    auto b = encode_certificate(issue(device, role));
    REQUIRE(b.ok());
    return *b;
  }
  HandshakeSetup setup(noise::Role role, const Identity& id, std::vector<std::uint8_t> cert,
                       Rng& rng) const {
    HandshakeSetup s;
    s.role = role;
    s.identity = &id;
    s.certificate = std::move(cert);
    s.anchor = &anchor;
    s.revocations = &revoked;
    s.trusted_now = at_s(kEpochS + 1000);
    s.ephemeral = ephemeral_from(rng);
    return s;
  }
};

// Runs both sides, moving every output byte across, until both complete or one fails. Returns
// the first failure (OK when both completed).
inline Status run_handshake(SecureHandshake& init, SecureHandshake& resp) {
  SHOAL_RETURN_IF_ERROR(init.start());
  for (int round = 0; round < 4; ++round) {
    auto a = init.take_output();
    if (!a.empty()) SHOAL_RETURN_IF_ERROR(resp.receive(a));
    auto b = resp.take_output();
    if (!b.empty()) SHOAL_RETURN_IF_ERROR(init.receive(b));
    if (init.is_complete() && resp.is_complete()) return ok_status();
  }
  auto a = init.take_output();
  if (!a.empty()) SHOAL_RETURN_IF_ERROR(resp.receive(a));
  if (init.is_complete() && resp.is_complete()) return ok_status();
  return Status(Code::kInternal, "handshake did not complete");
}

}  // namespace shoal::security::test

// tests/mesh/test_authority.hpp: a test mesh authority on real keys (a random mesh id and
// authority key, certificates issued for a day, revocations signed by it) and fresh random device
// identities, for the tests that run real links: the mesh's (mesh_fixture.hpp) and the sink's
// (tests/sink/sink_rpc_test.cpp).
// Thread rules: values owned by one test.
#pragma once

#include <catch2/catch.hpp>

#include <sodium.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "common/time.hpp"
#include "security/certificate.hpp"
#include "security/identity.hpp"
#include "security/revocation.hpp"

namespace shoal::mesh_test {

inline security::Identity fresh_identity() {
  std::array<std::uint8_t, security::kSeedBytes> seed{};
  randombytes_buf(seed.data(), seed.size());
  auto id = security::Identity::from_seed(seed);
  REQUIRE(id.ok());
  return std::move(*id);
}

struct Authority {
  security::Identity key = fresh_identity();
  security::TrustAnchor anchor;

  Authority() {
    randombytes_buf(anchor.mesh_id.data(), anchor.mesh_id.size());
    anchor.authorities = {key.public_key()};
  }

  std::vector<std::uint8_t> certify(const security::Identity& device,
                                    security::DeviceRole role = security::DeviceRole::kMember,
                                    std::vector<security::Grant> grants = {{"*", security::kReadWrite}}) const {
    security::Certificate c;
    c.role = role;
    c.mesh_id = anchor.mesh_id;
    c.device_key = device.public_key();
    c.serial = 1;
    const std::int64_t now_s = now_wall().ns() / 1'000'000'000;
    c.not_before_s = now_s - 3600;
    c.not_after_s = now_s + 24 * 3600;
    c.grants = std::move(grants);
    auto issued = security::issue_certificate(c, key);
    REQUIRE(issued.ok());
    auto bytes = security::encode_certificate(*issued);
    REQUIRE(bytes.ok());
    return *bytes;
  }

  std::string revoke(const security::Identity& device) const {
    security::RevocationSet set;
    set.insert_unverified(security::make_revocation(anchor.mesh_id, device.public_key(),
                                                    now_wall().ns() / 1'000'000'000, key));
    auto bytes = security::encode_revocations(set);
    return std::string(bytes.begin(), bytes.end());
  }
};

}  // namespace shoal::mesh_test

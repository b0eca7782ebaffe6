// libFuzzer target: a Shoal handshake responder and initiator fed arbitrary bytes, in arbitrary
// chunks, after their first legitimate step. Proves (under ASan+UBSan) that reading handshake
// messages never crashes or over-reads, never completes without a certificate signed by the mesh
// authority (the input cannot forge one), and that a closed handshake stays closed. Then the same
// bytes go to a channel's receive/next, which must never hand out a payload. A violation traps.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "security/certificate.hpp"
#include "security/channel.hpp"
#include "security/handshake.hpp"

namespace {

using namespace shoal;
using namespace shoal::security;

struct World {
  Identity authority;
  Identity device;
  TrustAnchor anchor;
  RevocationSet revoked;
  std::vector<std::uint8_t> cert;
};

Identity make_identity(std::uint8_t fill) {
  std::array<std::uint8_t, kSeedBytes> seed{};
  seed.fill(fill);
  auto id = Identity::from_seed(seed);
  if (!id.ok()) __builtin_trap();
  return std::move(*id);
}

World& world() {
  // Built once per process (libFuzzer runs one input at a time); fixed keys, no randomness.
  static World w{make_identity(1), make_identity(2), {}, {}, {}};
  if (w.cert.empty()) {
    w.anchor.mesh_id.fill(9);
    w.anchor.authorities = {w.authority.public_key()};
    Certificate c;
    c.mesh_id = w.anchor.mesh_id;
    c.device_key = w.device.public_key();
    c.not_after_s = 4'000'000'000;
    c.grants = {{"*", kReadWrite}};
    w.cert = *encode_certificate(*issue_certificate(c, w.authority));
  }
  return w;
}

void drive(noise::Role role, std::span<const std::uint8_t> input) {
  World& w = world();
  HandshakeSetup s;
  s.role = role;
  s.identity = &w.device;
  s.certificate = w.cert;
  s.anchor = &w.anchor;
  s.revocations = &w.revoked;
  s.trusted_now = WallTime::from_ns(std::int64_t{1'700'000'000} * 1'000'000'000);
  std::array<std::uint8_t, 32> e{};
  // Not the ephemerals the committed seeds were recorded with (3 and 4): replaying a recorded
  // transcript to a side that reuses its ephemeral would legitimately complete.
  e.fill(role == noise::Role::kInitiator ? 0x33 : 0x44);
  s.ephemeral = noise::KeyPair::from_private(e);
  auto hs = SecureHandshake::create(std::move(s));
  if (!hs.ok()) __builtin_trap();
  if (role == noise::Role::kInitiator && !hs->start().ok()) __builtin_trap();
  (void)hs->take_output();
  // The first byte picks a chunk size, so framing across chunk boundaries is explored too.
  const std::size_t chunk = input.empty() ? 1 : 1 + input[0] % 64;
  bool failed = false;
  for (std::size_t at = 0; at < input.size(); at += chunk) {
    auto piece = input.subspan(at, std::min(chunk, input.size() - at));
    Status st = hs->receive(piece);
    (void)hs->take_output();
    if (failed && st.detail() != Detail::kSessionClosed) __builtin_trap();
    if (!st.ok()) failed = true;
  }
  // Completing needs a certificate signed by the authority for a static key whose private key
  // the sender holds; the input has neither.
  if (hs->is_complete()) __builtin_trap();
}

void channel(std::span<const std::uint8_t> input) {
  noise::TransportKeys keys;
  std::array<std::uint8_t, 32> k{};
  k.fill(5);
  keys.receive.initialize_key(k);
  Channel c(std::move(keys), ChannelLimits{4096, 16, Duration::seconds(1)}, MonoTime());
  if (!c.receive(input).ok()) return;
  std::vector<std::uint8_t> payload;
  auto r = c.next(payload);
  // A payload needs the key, which the input does not have (a forgery would be a 2^-106 event).
  if (r.ok() && *r) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  drive(noise::Role::kResponder, input);
  drive(noise::Role::kInitiator, input);
  channel(input);
  return 0;
}

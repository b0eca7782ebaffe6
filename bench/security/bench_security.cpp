// bench_security: how fast Shoal's security layer is, against its anchor in the same run.
//  * handshakes per second: a full Shoal XX handshake (both sides, certificates verified, split
//    into channels), in one process, so the figure is the CPU cost of both ends together;
//  * channel throughput at 512 B and 64 KiB payloads: Channel::seal + Channel::open_frame,
//    against raw crypto_aead_chacha20poly1305_ietf_encrypt + _decrypt on the same buffers, with
//    the ratio printed (goal >= 0.9x).
// Usage: bench_security [--quick]
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "common/time.hpp"
#include "security/certificate.hpp"
#include "security/channel.hpp"
#include "security/handshake.hpp"

using namespace shoal;
using namespace shoal::security;

namespace {

Identity identity_from(Rng& rng) {
  std::array<std::uint8_t, kSeedBytes> seed{};
  for (auto& b : seed) b = static_cast<std::uint8_t>(rng.next_u64());
  auto id = Identity::from_seed(seed);
  SHOAL_ASSERT(id.ok());
  return std::move(*id);
}

noise::KeyPair ephemeral(Rng& rng) {
  std::array<std::uint8_t, 32> k{};
  for (auto& b : k) b = static_cast<std::uint8_t>(rng.next_u64());
  return noise::KeyPair::from_private(k);
}

double handshakes_per_second(int count) {
  Rng rng(1);
  Identity authority = identity_from(rng);
  TrustAnchor anchor;
  anchor.mesh_id.fill(1);
  anchor.authorities = {authority.public_key()};
  RevocationSet revoked;
  Identity a = identity_from(rng);
  Identity b = identity_from(rng);
  auto cert_of = [&](const Identity& id) {
    Certificate c;
    c.mesh_id = anchor.mesh_id;
    c.device_key = id.public_key();
    c.not_before_s = 0;
    c.not_after_s = 4'000'000'000;
    c.grants = {{"*", kReadWrite}};
    return *encode_certificate(*issue_certificate(c, authority));
  };
  const auto ca = cert_of(a);
  const auto cb = cert_of(b);
  const MonoTime t0 = now_mono();
  for (int i = 0; i < count; ++i) {
    auto setup = [&](noise::Role role, const Identity& id, const std::vector<std::uint8_t>& cert) {
      HandshakeSetup s;
      s.role = role;
      s.identity = &id;
      s.certificate = cert;
      s.anchor = &anchor;
      s.revocations = &revoked;
      s.trusted_now = WallTime::from_ns(std::int64_t{1'700'000'000} * 1'000'000'000);
      s.ephemeral = ephemeral(rng);
      return s;
    };
    auto hi = SecureHandshake::create(setup(noise::Role::kInitiator, a, ca));
    auto hr = SecureHandshake::create(setup(noise::Role::kResponder, b, cb));
    SHOAL_ASSERT(hi.ok() && hr.ok());
    SHOAL_ASSERT(hi->start().ok());
    SHOAL_ASSERT(hr->receive(hi->take_output()).ok());
    SHOAL_ASSERT(hi->receive(hr->take_output()).ok());
    SHOAL_ASSERT(hr->receive(hi->take_output()).ok());
    SHOAL_ASSERT(hi->is_complete() && hr->is_complete());
    auto c1 = hi->into_channel(MonoTime());
    auto c2 = hr->into_channel(MonoTime());
    SHOAL_ASSERT(c1.ok() && c2.ok());
  }
  return count / (now_mono() - t0).seconds_f();
}

struct Throughput {
  double channel_mbps;
  double raw_mbps;
};

Throughput channel_vs_raw(std::size_t payload_bytes, std::size_t total_bytes, int reps) {
  const std::size_t frames = std::max<std::size_t>(1, total_bytes / payload_bytes);
  Rng rng(2);
  std::vector<std::uint8_t> payload(payload_bytes);
  for (auto& b : payload) b = static_cast<std::uint8_t>(rng.next_u64());
  std::array<std::uint8_t, 32> k1{};
  for (auto& b : k1) b = static_cast<std::uint8_t>(rng.next_u64());
  // One buffer, reused by both loops: room for a frame and its overhead.
  std::vector<std::uint8_t> buf;
  buf.reserve(payload_bytes + kFrameOverheadBytes);
  std::vector<std::uint8_t> plain(payload_bytes);

  double best_channel = 0;
  double best_raw = 0;
  for (int rep = 0; rep < reps; ++rep) {
    // Raw AEAD: encrypt payload into buf, decrypt buf back into plain, counter nonces.
    {
      std::uint8_t nonce[12] = {};
      buf.resize(payload_bytes + noise::kTagLen);
      const MonoTime t0 = now_mono();
      for (std::size_t i = 0; i < frames; ++i) {
        std::memcpy(nonce + 4, &i, sizeof i);
        unsigned long long n = 0;
        crypto_aead_chacha20poly1305_ietf_encrypt(buf.data(), &n, payload.data(), payload.size(),
                                                  nullptr, 0, nullptr, nonce, k1.data());
        if (crypto_aead_chacha20poly1305_ietf_decrypt(plain.data(), &n, nullptr, buf.data(),
                                                      buf.size(), nullptr, 0, nonce,
                                                      k1.data()) != 0) {
          std::abort();
        }
      }
      const double s = (now_mono() - t0).seconds_f();
      best_raw = std::max(best_raw, static_cast<double>(frames * payload_bytes) / s / 1e6);
    }
    // The channel: seal into buf (cleared, so no reallocation), open in place.
    {
      noise::TransportKeys ka;
      noise::TransportKeys kb;
      ka.send.initialize_key(k1);
      kb.receive.initialize_key(k1);
      ChannelLimits limits;
      limits.max_payload_bytes = std::max<std::size_t>(limits.max_payload_bytes, payload_bytes);
      Channel a(std::move(ka), limits, MonoTime());
      Channel b(std::move(kb), limits, MonoTime());
      const MonoTime t0 = now_mono();
      for (std::size_t i = 0; i < frames; ++i) {
        buf.clear();
        if (!a.seal(payload, MonoTime(), buf).ok()) std::abort();
        auto opened = b.open_frame(buf);
        if (!opened.ok() || opened->size() != payload_bytes) std::abort();
      }
      const double s = (now_mono() - t0).seconds_f();
      best_channel = std::max(best_channel, static_cast<double>(frames * payload_bytes) / s / 1e6);
    }
  }
  return {best_channel, best_raw};
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  if (!sodium_ready()) return 1;
  const int hs = quick ? 200 : 2000;
  std::printf("bench_security: Noise_XX_25519_ChaChaPoly_BLAKE2b with certificates (libsodium %s)\n",
              sodium_version_string());
  std::printf("handshakes: %d in one process (both sides): %.0f handshakes/s\n", hs,
              handshakes_per_second(hs));
  const std::size_t total = quick ? (std::size_t{32} << 20) : (std::size_t{256} << 20);
  const int reps = quick ? 2 : 3;
  std::printf("%-10s %14s %14s %8s\n", "payload", "channel MB/s", "raw AEAD MB/s", "ratio");
  for (std::size_t size : {std::size_t{512}, std::size_t{64} << 10}) {
    Throughput t = channel_vs_raw(size, total, reps);
    std::printf("%-10zu %14.1f %14.1f %7.2fx\n", size, t.channel_mbps, t.raw_mbps,
                t.channel_mbps / t.raw_mbps);
  }
  std::printf("(seal + open per frame, best of %d runs over %zu MiB; goal: ratio >= 0.90)\n", reps,
              total >> 20);
  return 0;
}

// Proves that security/noise reproduces, byte for byte, the published Noise test vectors
// (cacophony, tests/security/data/noise/) for Noise_NN and Noise_XX over 25519 and ChaChaPoly
// with BLAKE2b, SHA256 and SHA512: every handshake message, the handshake hash, and the transport
// messages after Split() (so the channel's CipherState is pinned too). BLAKE2s vectors are
// skipped (libsodium has no BLAKE2s) and so are the XXpsk3 vectors (no psk modifiers in Shoal);
// the test counts what it ran and what it skipped, and fails if it ran fewer than six.
#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "security/noise.hpp"
#include "test_util.hpp"

using namespace shoal::security;
using namespace shoal::security::noise;
using shoal::security::test::from_hex;
using shoal::security::test::to_hex;

namespace {

std::optional<KeyPair> key_from_hex(const nlohmann::json& v, const char* field) {
  if (!v.contains(field)) return std::nullopt;
  auto bytes = from_hex(v[field].get<std::string>());
  REQUIRE(bytes.size() == kDhLen);
  return KeyPair::from_private(std::span<const std::uint8_t, kDhLen>(bytes.data(), kDhLen));
}

void run_vector(const nlohmann::json& v, Pattern pattern, HashKind hash) {
  HandshakeConfig ic;
  ic.pattern = pattern;
  ic.hash = hash;
  ic.role = Role::kInitiator;
  ic.prologue = from_hex(v["init_prologue"].get<std::string>());
  ic.static_keys = key_from_hex(v, "init_static");
  ic.ephemeral_keys = key_from_hex(v, "init_ephemeral");
  HandshakeConfig rc;
  rc.pattern = pattern;
  rc.hash = hash;
  rc.role = Role::kResponder;
  rc.prologue = from_hex(v["resp_prologue"].get<std::string>());
  rc.static_keys = key_from_hex(v, "resp_static");
  rc.ephemeral_keys = key_from_hex(v, "resp_ephemeral");
  auto init = HandshakeState::create(std::move(ic));
  auto resp = HandshakeState::create(std::move(rc));
  REQUIRE(init.ok());
  REQUIRE(resp.ok());

  std::optional<TransportKeys> ti;
  std::optional<TransportKeys> tr;
  const auto& messages = v["messages"];
  for (std::size_t i = 0; i < messages.size(); ++i) {
    INFO("message " << i);
    const auto payload = from_hex(messages[i]["payload"].get<std::string>());
    const std::string expected = messages[i]["ciphertext"].get<std::string>();
    const bool from_initiator = i % 2 == 0;
    if (!ti) {
      HandshakeState& w = from_initiator ? *init : *resp;
      HandshakeState& r = from_initiator ? *resp : *init;
      auto msg = w.write_message(payload);
      REQUIRE(msg.ok());
      CHECK(to_hex(*msg) == expected);
      auto got = r.read_message(*msg);
      REQUIRE(got.ok());
      CHECK(*got == payload);
      if (init->is_finished()) {
        REQUIRE(resp->is_finished());
        CHECK(to_hex(init->handshake_hash().data(), init->handshake_hash().size()) ==
              v["handshake_hash"].get<std::string>());
        CHECK(to_hex(resp->handshake_hash().data(), resp->handshake_hash().size()) ==
              v["handshake_hash"].get<std::string>());
        auto a = init->split();
        auto b = resp->split();
        REQUIRE(a.ok());
        REQUIRE(b.ok());
        ti = std::move(*a);
        tr = std::move(*b);
      }
    } else {
      CipherState& send = from_initiator ? ti->send : tr->send;
      CipherState& recv = from_initiator ? tr->receive : ti->receive;
      std::vector<std::uint8_t> ct(payload.size() + kTagLen);
      REQUIRE(send.encrypt_with_ad({}, payload, ct.data()).ok());
      CHECK(to_hex(ct) == expected);
      std::vector<std::uint8_t> pt(payload.size());
      REQUIRE(recv.decrypt_with_ad({}, ct, pt.data()).ok());
      CHECK(pt == payload);
    }
  }
  CHECK(ti.has_value());
}

}  // namespace

TEST_CASE("Noise NN and XX reproduce the cacophony vectors byte for byte for BLAKE2b, SHA256, SHA512",
          "[security][noise]") {
  std::ifstream in(SHOAL_NOISE_VECTORS_PATH);
  REQUIRE(in.good());
  const auto doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  REQUIRE(!doc.is_discarded());
  int ran = 0;
  int skipped = 0;
  for (const auto& v : doc["vectors"]) {
    const std::string name = v["protocol_name"].get<std::string>();
    std::optional<Pattern> pattern;
    std::optional<HashKind> hash;
    for (Pattern p : {Pattern::kNN, Pattern::kXX}) {
      for (HashKind h : {HashKind::kBlake2b, HashKind::kSha256, HashKind::kSha512}) {
        if (protocol_name(p, h) == name) {
          pattern = p;
          hash = h;
        }
      }
    }
    if (!pattern) {
      ++skipped;  // BLAKE2s or psk: not implemented, on purpose.
      continue;
    }
    INFO(name);
    run_vector(v, *pattern, *hash);
    ++ran;
  }
  INFO("ran " << ran << ", skipped " << skipped << " (BLAKE2s and XXpsk3)");
  CHECK(ran == 6);
  CHECK(skipped == 6);
}

TEST_CASE("HMAC-SHA256 and HMAC-SHA512 match RFC 4231 test case 2", "[security][noise]") {
  REQUIRE(sodium_ready());
  const std::string key = "Jefe";
  const std::string data = "what do ya want for nothing?";
  auto k = std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(key.data()), key.size());
  auto d = std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()), data.size());
  std::array<std::uint8_t, 64> out{};
  detail::hmac(HashKind::kSha256, k, d, out.data());
  CHECK(to_hex(out.data(), 32) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  detail::hmac(HashKind::kSha512, k, d, out.data());
  CHECK(to_hex(out.data(), 64) ==
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
}

// security/identity.hpp: a device's (or the mesh authority's) Ed25519 identity key and the X25519
// static key derived from it.
//
// Role: one Identity per device: it signs (certificate requests, nothing else today) and its
// X25519 conversion (crypto_sign_ed25519_sk_to_curve25519) is the device's Noise static key, so a
// certificate over the Ed25519 public key also vouches for the Noise static key. The mesh
// authority's key is an Identity too. Identities are built from a 32-byte seed, which is what the
// key file stores (security/key_file.hpp); where the seed comes from (libsodium's randombytes in
// the tools, a seeded stream in tests and the simulator) is the caller's choice, so this file
// draws no randomness.
//
// Secrets (seed, Ed25519 secret key, X25519 private key) live in one sodium_malloc block: guarded
// pages, locked against swapping where the OS allows, and wiped by sodium_free when the Identity
// dies. Public keys are plain values.
// Thread rules: an Identity is owned by one thread; its const methods are safe to call from several
// threads at once (they only read).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "common/status.hpp"
#include "security/noise.hpp"

namespace shoal::security {

inline constexpr std::size_t kSeedBytes = 32;
// An Ed25519 public key.
using SignPublicKey = std::array<std::uint8_t, 32>;
// An Ed25519 signature.
using Signature = std::array<std::uint8_t, 64>;

class Identity {
 public:
  // The identity whose Ed25519 seed is `seed` (deterministic). Statuses: kInternal when libsodium
  // cannot initialise; kOverloaded when secure memory cannot be allocated.
  [[nodiscard]] static Result<Identity> from_seed(std::span<const std::uint8_t, kSeedBytes> seed);

  Identity(Identity&&) noexcept = default;
  Identity& operator=(Identity&&) noexcept = default;
  Identity(const Identity&) = delete;
  Identity& operator=(const Identity&) = delete;
  ~Identity() = default;

  const SignPublicKey& public_key() const noexcept { return public_key_; }
  // The X25519 public key: the Noise static key of this identity.
  const noise::PublicKey& static_public_key() const noexcept { return static_public_key_; }
  // A copy of the X25519 key pair, for a HandshakeConfig (the copy wipes itself too).
  noise::KeyPair static_key_pair() const noexcept;
  // Ed25519 signature of `message`.
  Signature sign(std::span<const std::uint8_t> message) const noexcept;
  // The seed, for the key file writer only. Valid while this Identity lives.
  std::span<const std::uint8_t, kSeedBytes> seed_for_key_file() const noexcept;

 private:
  struct SecretBlock;
  struct Free {
    void operator()(SecretBlock* p) const noexcept;
  };
  Identity() = default;

  std::unique_ptr<SecretBlock, Free> secret_;
  SignPublicKey public_key_{};
  noise::PublicKey static_public_key_{};
};

// True when `signature` is a valid Ed25519 signature of `message` by `key`.
[[nodiscard]] bool verify_signature(const SignPublicKey& key, std::span<const std::uint8_t> message,
                                    const Signature& signature) noexcept;

// The X25519 public key of an Ed25519 public key (crypto_sign_ed25519_pk_to_curve25519).
// Statuses: kMalformed when `key` is not a valid Ed25519 point.
[[nodiscard]] Result<noise::PublicKey> static_key_of(const SignPublicKey& key) noexcept;

}  // namespace shoal::security

#include "security/identity.hpp"

#include <cstring>
#include <new>

namespace shoal::security {

struct Identity::SecretBlock {
  std::uint8_t seed[kSeedBytes];
  std::uint8_t sign_secret[crypto_sign_SECRETKEYBYTES];
  std::uint8_t x25519_private[crypto_scalarmult_BYTES];
};

void Identity::Free::operator()(SecretBlock* p) const noexcept {
  // sodium_free wipes the block before unmapping it.
  sodium_free(p);
}

Result<Identity> Identity::from_seed(std::span<const std::uint8_t, kSeedBytes> seed) {
  if (!sodium_ready()) return Status(Code::kInternal, "libsodium failed to initialise");
  void* mem = sodium_malloc(sizeof(SecretBlock));
  if (mem == nullptr) return Status(Code::kOverloaded, "cannot allocate secure memory for a key");
  Identity id;
  id.secret_.reset(new (mem) SecretBlock);
  SecretBlock& s = *id.secret_;
  std::memcpy(s.seed, seed.data(), kSeedBytes);
  crypto_sign_seed_keypair(id.public_key_.data(), s.sign_secret, s.seed);
  crypto_sign_ed25519_sk_to_curve25519(s.x25519_private, s.sign_secret);
  crypto_scalarmult_base(id.static_public_key_.data(), s.x25519_private);
  return id;
}

noise::KeyPair Identity::static_key_pair() const noexcept {
  return noise::KeyPair::from_private(
      std::span<const std::uint8_t, noise::kDhLen>(secret_->x25519_private, noise::kDhLen));
}

Signature Identity::sign(std::span<const std::uint8_t> message) const noexcept {
  Signature sig{};
  crypto_sign_detached(sig.data(), nullptr, message.data(), message.size(), secret_->sign_secret);
  return sig;
}

std::span<const std::uint8_t, kSeedBytes> Identity::seed_for_key_file() const noexcept {
  return std::span<const std::uint8_t, kSeedBytes>(secret_->seed, kSeedBytes);
}

bool verify_signature(const SignPublicKey& key, std::span<const std::uint8_t> message,
                      const Signature& signature) noexcept {
  if (!sodium_ready()) return false;
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                     key.data()) == 0;
}

Result<noise::PublicKey> static_key_of(const SignPublicKey& key) noexcept {
  noise::PublicKey out{};
  if (crypto_sign_ed25519_pk_to_curve25519(out.data(), key.data()) != 0) {
    return Status(Detail::kMalformed, "not a valid Ed25519 public key");
  }
  return out;
}

}  // namespace shoal::security

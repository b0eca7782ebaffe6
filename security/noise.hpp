// security/noise.hpp: the Noise protocol framework (revision 34) for the NN and XX patterns over
// Curve25519 and ChaChaPoly, with BLAKE2b, SHA256 or SHA512, on libsodium.
//
// Role: the generic, Shoal-agnostic layer beneath the Shoal handshake (security/handshake.hpp).
// It is sans-I/O: a HandshakeState turns payloads into handshake messages and back, and never
// reads a clock or draws randomness; the ephemeral key pair is injected at creation (so the
// published test vectors, and the simulator, reproduce every byte). It reproduces the cacophony
// test vectors byte for byte (tests/security/noise_vectors_test.cpp). Pre-shared keys (psk
// modifiers) and BLAKE2s are not implemented: Shoal needs neither.
//
// Primitives, as the Noise specification names them: DH = X25519 (crypto_scalarmult), whose
// all-zero output for a low-order public key is rejected; ENCRYPT = ChaCha20-Poly1305 IETF with
// the nonce 0x00000000 || little-endian u64 n; HASH = BLAKE2b-512 (crypto_generichash), SHA-256
// or SHA-512; HMAC is built on HASH as RFC 2104 says (so HMAC-BLAKE2b is HMAC over
// crypto_generichash, not BLAKE2b's keyed mode), and HKDF on HMAC as the Noise specification says.
//
// Errors are final: after any failed call a HandshakeState is closed, and every later call returns
// kSessionClosed. Secrets (ck, k, e, s) live in security::Secret and are wiped when they die.
// Thread rules: values owned by one thread; no shared state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "security/secret.hpp"

namespace shoal::security::noise {

inline constexpr std::size_t kDhLen = 32;
inline constexpr std::size_t kKeyLen = 32;
inline constexpr std::size_t kTagLen = 16;
inline constexpr std::size_t kMaxHashLen = 64;
// The Noise specification's limit on any handshake or transport message.
inline constexpr std::size_t kMaxMessageBytes = 65535;

enum class HashKind : std::uint8_t { kBlake2b, kSha256, kSha512 };
enum class Pattern : std::uint8_t { kNN, kXX };
enum class Role : std::uint8_t { kInitiator, kResponder };

// HASHLEN and BLOCKLEN of the Noise specification.
std::size_t hash_len(HashKind hash) noexcept;
std::size_t block_len(HashKind hash) noexcept;
// "BLAKE2b", "SHA256", "SHA512".
std::string_view hash_name(HashKind hash) noexcept;
// "Noise_XX_25519_ChaChaPoly_BLAKE2b" and so on.
std::string protocol_name(Pattern pattern, HashKind hash);

using PublicKey = std::array<std::uint8_t, kDhLen>;

// An X25519 key pair. The private key is wiped when the pair dies.
struct KeyPair {
  Secret<kDhLen> private_key;
  PublicKey public_key{};

  // The pair whose private key is `private_key` (its public key is computed).
  static KeyPair from_private(std::span<const std::uint8_t, kDhLen> private_key) noexcept;
};

// A Noise CipherState: a key k (or none) and a 64-bit nonce n. Nonce 2^64-1 is reserved (used by
// rekey), so a CipherState refuses to encrypt or decrypt once n reaches it.
class CipherState {
 public:
  CipherState() = default;

  void initialize_key(std::span<const std::uint8_t, kKeyLen> key) noexcept;
  bool has_key() const noexcept { return has_key_; }
  std::uint64_t nonce() const noexcept { return n_; }
  void set_nonce(std::uint64_t n) noexcept { n_ = n; }

  // EncryptWithAd: writes plaintext.size() (+ kTagLen when a key is set) bytes to `out`, which
  // may equal plaintext.data() (in place) but must not otherwise overlap it. Increments n.
  // Statuses: kOutOfRange (invalid argument) when the nonce space is exhausted.
  [[nodiscard]] Status encrypt_with_ad(std::span<const std::uint8_t> ad,
                                       std::span<const std::uint8_t> plaintext,
                                       std::uint8_t* out) noexcept;
  // DecryptWithAd: writes ciphertext.size() (- kTagLen when a key is set) bytes to `out` (may
  // equal ciphertext.data()). Increments n only on success. Statuses: kDecryptFailed
  // (unauthenticated) on a wrong tag or a ciphertext shorter than a tag; kOutOfRange.
  [[nodiscard]] Status decrypt_with_ad(std::span<const std::uint8_t> ad,
                                       std::span<const std::uint8_t> ciphertext,
                                       std::uint8_t* out) noexcept;
  // Rekey(): k = the first 32 bytes of ENCRYPT(k, 2^64-1, empty, 32 zero bytes). n is unchanged.
  void rekey() noexcept;

 private:
  Secret<kKeyLen> k_;
  bool has_key_ = false;
  std::uint64_t n_ = 0;
};

// The transport CipherStates after Split(), already oriented for one side.
struct TransportKeys {
  CipherState send;
  CipherState receive;
};

struct HandshakeConfig {
  Pattern pattern = Pattern::kXX;
  HashKind hash = HashKind::kBlake2b;
  Role role = Role::kInitiator;
  std::vector<std::uint8_t> prologue;
  // The local static key pair: required by XX, ignored by NN.
  std::optional<KeyPair> static_keys;
  // The local ephemeral key pair, injected by the caller (fresh randomness in production, fixed
  // bytes in tests and the simulator). Required.
  std::optional<KeyPair> ephemeral_keys;
};

class HandshakeState {
 public:
  // Initialize(): statuses kInvalidArgument when a required key pair is missing.
  [[nodiscard]] static Result<HandshakeState> create(HandshakeConfig config);

  HandshakeState(HandshakeState&&) noexcept = default;
  HandshakeState& operator=(HandshakeState&&) noexcept = default;
  HandshakeState(const HandshakeState&) = delete;
  HandshakeState& operator=(const HandshakeState&) = delete;

  // True when the next call must be write_message (false: read_message).
  bool is_my_turn() const noexcept;
  bool is_finished() const noexcept { return next_message_ >= message_count(); }
  bool is_closed() const noexcept { return closed_; }

  // WriteMessage(payload): the next handshake message. Statuses: kSessionClosed after an earlier
  // error; kInvalidArgument when it is not this side's turn or the handshake is finished;
  // kTooLarge when the message would exceed kMaxMessageBytes; kMalformed when a DH gives the
  // all-zero output (a low-order remote key).
  [[nodiscard]] Result<std::vector<std::uint8_t>> write_message(
      std::span<const std::uint8_t> payload);
  // ReadMessage(message): the payload of the next handshake message. Statuses: kSessionClosed;
  // kInvalidArgument (wrong turn); kTooLarge (above kMaxMessageBytes); kTruncated (shorter than
  // its tokens need); kDecryptFailed (a static key or payload whose tag does not verify);
  // kMalformed (low-order remote key). Any error closes the state.
  [[nodiscard]] Result<std::vector<std::uint8_t>> read_message(
      std::span<const std::uint8_t> message);

  // The handshake hash h (channel binding); hash_len() bytes. Final once finished.
  std::span<const std::uint8_t> handshake_hash() const noexcept {
    return std::span<const std::uint8_t>(h_.data(), hash_len(hash_));
  }
  // The remote static key, once a message carrying it has been read.
  const std::optional<PublicKey>& remote_static() const noexcept { return rs_; }
  Role role() const noexcept { return role_; }

  // Split(): the transport keys, oriented (an initiator sends with c1). Statuses:
  // kInvalidArgument when the handshake is not finished; kSessionClosed. Closes this state (the
  // chaining key is wiped).
  [[nodiscard]] Result<TransportKeys> split();

 private:
  HandshakeState() = default;
  std::size_t message_count() const noexcept;
  void mix_hash(std::span<const std::uint8_t> data) noexcept;
  void mix_key(std::span<const std::uint8_t> ikm) noexcept;
  [[nodiscard]] Status dh_mix(const KeyPair& local, const PublicKey& remote) noexcept;
  [[nodiscard]] Status encrypt_and_hash(std::span<const std::uint8_t> plaintext,
                                        std::vector<std::uint8_t>& out) noexcept;
  [[nodiscard]] Status decrypt_and_hash(std::span<const std::uint8_t> ciphertext,
                                        std::vector<std::uint8_t>& out) noexcept;
  [[nodiscard]] Status process_dh_token(int token) noexcept;
  Status fail(Status status) noexcept;

  Pattern pattern_ = Pattern::kXX;
  HashKind hash_ = HashKind::kBlake2b;
  Role role_ = Role::kInitiator;
  Secret<kMaxHashLen> ck_;
  std::array<std::uint8_t, kMaxHashLen> h_{};
  CipherState cipher_;
  std::optional<KeyPair> s_;
  std::optional<KeyPair> e_;
  std::optional<PublicKey> rs_;
  std::optional<PublicKey> re_;
  std::size_t next_message_ = 0;
  bool closed_ = false;
};

namespace detail {
// HMAC-HASH(key, data) as RFC 2104 (key.size() <= block_len). Writes hash_len() bytes. Exposed for
// tests (RFC 4231 vectors pin the SHA variants).
void hmac(HashKind hash, std::span<const std::uint8_t> key, std::span<const std::uint8_t> data,
          std::uint8_t* out) noexcept;
// HKDF(chaining_key, ikm, 2) of the Noise specification; each output is hash_len() bytes.
void hkdf2(HashKind hash, std::span<const std::uint8_t> chaining_key,
           std::span<const std::uint8_t> ikm, std::uint8_t* out1, std::uint8_t* out2) noexcept;
}  // namespace detail

}  // namespace shoal::security::noise

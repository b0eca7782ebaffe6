#include "security/noise.hpp"

#include <cstring>
#include <utility>

namespace shoal::security {

bool sodium_ready() noexcept { return sodium_init() >= 0; }

}  // namespace shoal::security

namespace shoal::security::noise {

namespace {

// One incremental hash of any of the three kinds. Hash states hold no secrets of their own beyond
// what they absorbed, but HMAC keys pass through them, so they are wiped after use.
class Hasher {
 public:
  explicit Hasher(HashKind kind) noexcept : kind_(kind) {
    switch (kind_) {
      case HashKind::kBlake2b: crypto_generichash_init(&b2_, nullptr, 0, 64); break;
      case HashKind::kSha256: crypto_hash_sha256_init(&s256_); break;
      case HashKind::kSha512: crypto_hash_sha512_init(&s512_); break;
    }
  }
  ~Hasher() {
    sodium_memzero(&b2_, sizeof b2_);
    sodium_memzero(&s256_, sizeof s256_);
    sodium_memzero(&s512_, sizeof s512_);
  }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(const std::uint8_t* data, std::size_t n) noexcept {
    if (n == 0) return;
    switch (kind_) {
      case HashKind::kBlake2b: crypto_generichash_update(&b2_, data, n); break;
      case HashKind::kSha256: crypto_hash_sha256_update(&s256_, data, n); break;
      case HashKind::kSha512: crypto_hash_sha512_update(&s512_, data, n); break;
    }
  }
  void update(std::span<const std::uint8_t> s) noexcept { update(s.data(), s.size()); }
  // Writes hash_len(kind) bytes.
  void final(std::uint8_t* out) noexcept {
    switch (kind_) {
      case HashKind::kBlake2b: crypto_generichash_final(&b2_, out, 64); break;
      case HashKind::kSha256: crypto_hash_sha256_final(&s256_, out); break;
      case HashKind::kSha512: crypto_hash_sha512_final(&s512_, out); break;
    }
  }

 private:
  HashKind kind_;
  crypto_generichash_state b2_{};
  crypto_hash_sha256_state s256_{};
  crypto_hash_sha512_state s512_{};
};

void make_nonce(std::uint64_t n, std::uint8_t out[12]) noexcept {
  std::memset(out, 0, 4);
  for (int i = 0; i < 8; ++i) out[4 + i] = static_cast<std::uint8_t>(n >> (8 * i));
}

constexpr std::uint64_t kMaxNonce = ~std::uint64_t{0};

// Tokens of the message patterns.
enum Token : int { kE, kS, kEE, kES, kSE, kEnd };
constexpr int kNN[2][3] = {{kE, kEnd, kEnd}, {kE, kEE, kEnd}};
constexpr int kXX[3][5] = {
    {kE, kEnd, kEnd, kEnd, kEnd}, {kE, kEE, kS, kES, kEnd}, {kS, kSE, kEnd, kEnd, kEnd}};

const int* tokens_of(Pattern p, std::size_t message) noexcept {
  return p == Pattern::kNN ? kNN[message] : kXX[message];
}

}  // namespace

std::size_t hash_len(HashKind hash) noexcept { return hash == HashKind::kSha256 ? 32 : 64; }
std::size_t block_len(HashKind hash) noexcept { return hash == HashKind::kSha256 ? 64 : 128; }

std::string_view hash_name(HashKind hash) noexcept {
  switch (hash) {
    case HashKind::kBlake2b: return "BLAKE2b";
    case HashKind::kSha256: return "SHA256";
    case HashKind::kSha512: return "SHA512";
  }
  return "?";
}

std::string protocol_name(Pattern pattern, HashKind hash) {
  std::string name = pattern == Pattern::kNN ? "Noise_NN" : "Noise_XX";
  name += "_25519_ChaChaPoly_";
  name += hash_name(hash);
  return name;
}

KeyPair KeyPair::from_private(std::span<const std::uint8_t, kDhLen> private_key) noexcept {
  KeyPair kp;
  kp.private_key = Secret<kDhLen>(private_key);
  crypto_scalarmult_base(kp.public_key.data(), kp.private_key.data());
  return kp;
}

namespace detail {

void hmac(HashKind hash, std::span<const std::uint8_t> key, std::span<const std::uint8_t> data,
          std::uint8_t* out) noexcept {
  const std::size_t bl = block_len(hash);
  SHOAL_ASSERT(key.size() <= bl);
  Secret<128> pad;
  std::memcpy(pad.data(), key.data(), key.size());
  for (std::size_t i = 0; i < bl; ++i) pad.data()[i] ^= 0x36;
  std::array<std::uint8_t, kMaxHashLen> inner{};
  {
    Hasher h(hash);
    h.update(pad.data(), bl);
    h.update(data);
    h.final(inner.data());
  }
  for (std::size_t i = 0; i < bl; ++i) pad.data()[i] ^= 0x36 ^ 0x5c;
  Hasher h(hash);
  h.update(pad.data(), bl);
  h.update(inner.data(), hash_len(hash));
  h.final(out);
  sodium_memzero(inner.data(), inner.size());
}

void hkdf2(HashKind hash, std::span<const std::uint8_t> chaining_key,
           std::span<const std::uint8_t> ikm, std::uint8_t* out1, std::uint8_t* out2) noexcept {
  const std::size_t hl = hash_len(hash);
  Secret<kMaxHashLen> temp_key;
  hmac(hash, chaining_key, ikm, temp_key.data());
  const std::uint8_t one = 0x01;
  hmac(hash, std::span<const std::uint8_t>(temp_key.data(), hl), {&one, 1}, out1);
  Secret<kMaxHashLen + 1> buf;
  std::memcpy(buf.data(), out1, hl);
  buf.data()[hl] = 0x02;
  hmac(hash, std::span<const std::uint8_t>(temp_key.data(), hl),
       std::span<const std::uint8_t>(buf.data(), hl + 1), out2);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// CipherState

void CipherState::initialize_key(std::span<const std::uint8_t, kKeyLen> key) noexcept {
  k_ = Secret<kKeyLen>(key);
  has_key_ = true;
  n_ = 0;
}

Status CipherState::encrypt_with_ad(std::span<const std::uint8_t> ad,
                                    std::span<const std::uint8_t> plaintext,
                                    std::uint8_t* out) noexcept {
  if (!has_key_) {
    if (out != plaintext.data() && !plaintext.empty()) {
      std::memmove(out, plaintext.data(), plaintext.size());
    }
    return ok_status();
  }
  if (n_ == kMaxNonce) return Status(Detail::kOutOfRange, "cipher nonce space exhausted");
  std::uint8_t nonce[12];
  make_nonce(n_, nonce);
  unsigned long long clen = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, plaintext.data(), plaintext.size(),
                                            ad.data(), ad.size(), nullptr, nonce, k_.data());
  ++n_;
  return ok_status();
}

Status CipherState::decrypt_with_ad(std::span<const std::uint8_t> ad,
                                    std::span<const std::uint8_t> ciphertext,
                                    std::uint8_t* out) noexcept {
  if (!has_key_) {
    if (out != ciphertext.data() && !ciphertext.empty()) {
      std::memmove(out, ciphertext.data(), ciphertext.size());
    }
    return ok_status();
  }
  if (n_ == kMaxNonce) return Status(Detail::kOutOfRange, "cipher nonce space exhausted");
  if (ciphertext.size() < kTagLen) {
    return Status(Detail::kDecryptFailed, "ciphertext shorter than its tag");
  }
  std::uint8_t nonce[12];
  make_nonce(n_, nonce);
  unsigned long long mlen = 0;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, nullptr, ciphertext.data(),
                                                ciphertext.size(), ad.data(), ad.size(), nonce,
                                                k_.data()) != 0) {
    return Status(Detail::kDecryptFailed, "authentication tag does not verify");
  }
  ++n_;
  return ok_status();
}

void CipherState::rekey() noexcept {
  if (!has_key_) return;
  std::uint8_t nonce[12];
  make_nonce(kMaxNonce, nonce);
  Secret<kKeyLen + kTagLen> out;
  const std::array<std::uint8_t, kKeyLen> zeros{};
  unsigned long long clen = 0;
  crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &clen, zeros.data(), zeros.size(), nullptr,
                                            0, nullptr, nonce, k_.data());
  std::memcpy(k_.data(), out.data(), kKeyLen);
}

// ---------------------------------------------------------------------------------------------
// HandshakeState

Result<HandshakeState> HandshakeState::create(HandshakeConfig config) {
  if (!sodium_ready()) return Status(Code::kInternal, "libsodium failed to initialise");
  if (!config.ephemeral_keys) {
    return Status(Code::kInvalidArgument, "the handshake needs an injected ephemeral key pair");
  }
  if (config.pattern == Pattern::kXX && !config.static_keys) {
    return Status(Code::kInvalidArgument, "Noise XX needs a local static key pair");
  }
  HandshakeState hs;
  hs.pattern_ = config.pattern;
  hs.hash_ = config.hash;
  hs.role_ = config.role;
  if (config.pattern == Pattern::kXX) hs.s_ = std::move(config.static_keys);
  hs.e_ = std::move(config.ephemeral_keys);
  // InitializeSymmetric(protocol_name).
  const std::string name = protocol_name(config.pattern, config.hash);
  const std::size_t hl = hash_len(config.hash);
  if (name.size() <= hl) {
    std::memcpy(hs.h_.data(), name.data(), name.size());
  } else {
    Hasher h(config.hash);
    h.update(reinterpret_cast<const std::uint8_t*>(name.data()), name.size());
    h.final(hs.h_.data());
  }
  std::memcpy(hs.ck_.data(), hs.h_.data(), hl);
  hs.mix_hash(config.prologue);
  return hs;
}

std::size_t HandshakeState::message_count() const noexcept {
  return pattern_ == Pattern::kNN ? 2 : 3;
}

bool HandshakeState::is_my_turn() const noexcept {
  const bool initiator_turn = next_message_ % 2 == 0;
  return initiator_turn == (role_ == Role::kInitiator);
}

Status HandshakeState::fail(Status status) noexcept {
  closed_ = true;
  ck_.wipe();
  cipher_ = CipherState();
  e_.reset();
  return status;
}

void HandshakeState::mix_hash(std::span<const std::uint8_t> data) noexcept {
  const std::size_t hl = hash_len(hash_);
  Hasher h(hash_);
  h.update(h_.data(), hl);
  h.update(data);
  h.final(h_.data());
}

void HandshakeState::mix_key(std::span<const std::uint8_t> ikm) noexcept {
  const std::size_t hl = hash_len(hash_);
  Secret<kMaxHashLen> temp_k;
  Secret<kMaxHashLen> new_ck;
  detail::hkdf2(hash_, std::span<const std::uint8_t>(ck_.data(), hl), ikm, new_ck.data(),
                temp_k.data());
  ck_ = new_ck;
  // A 64-byte HASHLEN truncates temp_k to 32 bytes.
  cipher_.initialize_key(std::span<const std::uint8_t, kKeyLen>(temp_k.data(), kKeyLen));
}

Status HandshakeState::dh_mix(const KeyPair& local, const PublicKey& remote) noexcept {
  Secret<kDhLen> shared;
  if (crypto_scalarmult(shared.data(), local.private_key.data(), remote.data()) != 0) {
    return Status(Detail::kMalformed, "remote key is a low-order point");
  }
  mix_key(shared.span());
  return ok_status();
}

Status HandshakeState::encrypt_and_hash(std::span<const std::uint8_t> plaintext,
                                        std::vector<std::uint8_t>& out) noexcept {
  const std::size_t at = out.size();
  out.resize(at + plaintext.size() + (cipher_.has_key() ? kTagLen : 0));
  SHOAL_RETURN_IF_ERROR(cipher_.encrypt_with_ad(handshake_hash(), plaintext, out.data() + at));
  mix_hash(std::span<const std::uint8_t>(out.data() + at, out.size() - at));
  return ok_status();
}

Status HandshakeState::decrypt_and_hash(std::span<const std::uint8_t> ciphertext,
                                        std::vector<std::uint8_t>& out) noexcept {
  const std::size_t n = cipher_.has_key() ? ciphertext.size() - kTagLen : ciphertext.size();
  out.resize(n);
  // h before MixHash is the associated data.
  std::array<std::uint8_t, kMaxHashLen> ad = h_;
  SHOAL_RETURN_IF_ERROR(cipher_.decrypt_with_ad(
      std::span<const std::uint8_t>(ad.data(), hash_len(hash_)), ciphertext, out.data()));
  mix_hash(ciphertext);
  return ok_status();
}

Status HandshakeState::process_dh_token(int token) noexcept {
  const bool initiator = role_ == Role::kInitiator;
  switch (token) {
    case kEE: return dh_mix(*e_, *re_);
    case kES: return initiator ? dh_mix(*e_, *rs_) : dh_mix(*s_, *re_);
    case kSE: return initiator ? dh_mix(*s_, *re_) : dh_mix(*e_, *rs_);
    default: break;
  }
  return Status(Code::kInternal, "unknown Noise token");
}

Result<std::vector<std::uint8_t>> HandshakeState::write_message(
    std::span<const std::uint8_t> payload) {
  if (closed_) return Status(Detail::kSessionClosed, "the handshake already failed or split");
  if (is_finished() || !is_my_turn()) {
    return Status(Code::kInvalidArgument, "write_message called out of turn");
  }
  std::vector<std::uint8_t> out;
  out.reserve(2 * kDhLen + 2 * kTagLen + payload.size());
  for (const int* t = tokens_of(pattern_, next_message_); *t != kEnd; ++t) {
    Status st;
    if (*t == kE) {
      out.insert(out.end(), e_->public_key.begin(), e_->public_key.end());
      mix_hash(e_->public_key);
    } else if (*t == kS) {
      st = encrypt_and_hash(s_->public_key, out);
    } else {
      st = process_dh_token(*t);
    }
    if (!st.ok()) return fail(std::move(st));
  }
  Status st = encrypt_and_hash(payload, out);
  if (!st.ok()) return fail(std::move(st));
  if (out.size() > kMaxMessageBytes) {
    return fail(Status(Detail::kTooLarge, "handshake message above 65535 bytes"));
  }
  ++next_message_;
  return out;
}

Result<std::vector<std::uint8_t>> HandshakeState::read_message(
    std::span<const std::uint8_t> message) {
  if (closed_) return Status(Detail::kSessionClosed, "the handshake already failed or split");
  if (is_finished() || is_my_turn()) {
    return fail(Status(Code::kInvalidArgument, "read_message called out of turn"));
  }
  if (message.size() > kMaxMessageBytes) {
    return fail(Status(Detail::kTooLarge, "handshake message above 65535 bytes"));
  }
  std::size_t at = 0;
  std::vector<std::uint8_t> scratch;
  for (const int* t = tokens_of(pattern_, next_message_); *t != kEnd; ++t) {
    Status st;
    if (*t == kE) {
      if (message.size() - at < kDhLen) {
        return fail(Status(Detail::kTruncated, "handshake message too short for a key"));
      }
      PublicKey re;
      std::memcpy(re.data(), message.data() + at, kDhLen);
      at += kDhLen;
      re_ = re;
      mix_hash(re);
    } else if (*t == kS) {
      const std::size_t n = kDhLen + (cipher_.has_key() ? kTagLen : 0);
      if (message.size() - at < n) {
        return fail(Status(Detail::kTruncated, "handshake message too short for a key"));
      }
      st = decrypt_and_hash(message.subspan(at, n), scratch);
      at += n;
      if (st.ok()) {
        PublicKey rs;
        std::memcpy(rs.data(), scratch.data(), kDhLen);
        rs_ = rs;
      }
    } else {
      st = process_dh_token(*t);
    }
    if (!st.ok()) return fail(std::move(st));
  }
  if (cipher_.has_key() && message.size() - at < kTagLen) {
    return fail(Status(Detail::kTruncated, "handshake message too short for its payload tag"));
  }
  std::vector<std::uint8_t> payload;
  Status st = decrypt_and_hash(message.subspan(at), payload);
  if (!st.ok()) return fail(std::move(st));
  ++next_message_;
  return payload;
}

Result<TransportKeys> HandshakeState::split() {
  if (closed_) return Status(Detail::kSessionClosed, "the handshake already failed or split");
  if (!is_finished()) return Status(Code::kInvalidArgument, "split before the handshake finished");
  const std::size_t hl = hash_len(hash_);
  Secret<kMaxHashLen> k1;
  Secret<kMaxHashLen> k2;
  detail::hkdf2(hash_, std::span<const std::uint8_t>(ck_.data(), hl), {}, k1.data(), k2.data());
  CipherState c1;
  CipherState c2;
  c1.initialize_key(std::span<const std::uint8_t, kKeyLen>(k1.data(), kKeyLen));
  c2.initialize_key(std::span<const std::uint8_t, kKeyLen>(k2.data(), kKeyLen));
  closed_ = true;
  ck_.wipe();
  cipher_ = CipherState();
  e_.reset();
  s_.reset();
  if (role_ == Role::kInitiator) return TransportKeys{std::move(c1), std::move(c2)};
  return TransportKeys{std::move(c2), std::move(c1)};
}

}  // namespace shoal::security::noise

// security/handshake.hpp: Shoal's mutually authenticated handshake, Noise XX with certificates.
//
// Role: the state machine transport/ drives for every peer connection (and the simulator can
// drive too): sans-I/O, bytes in and bytes out, no clock and no randomness of its own (the
// trusted time and the ephemeral key pair are inputs). It runs
//   Noise_XX_25519_ChaChaPoly_BLAKE2b  (security/noise.hpp)
//   prologue = "shoal/noise" 0x00 | u16 big-endian protocol version | 16-byte mesh id
//   -> e                        payload: empty
//   <- e, ee, s, es             payload: the responder's certificate (security/certificate.hpp)
//   -> s, se                    payload: the initiator's certificate
// with each message framed as `[u32 big-endian length][Noise message]` (length 32..65535,
// checked before any allocation). Each side verifies the other's certificate with every check of
// verify_certificate, the Noise static key included, before it completes; the initiator before it
// sends its own certificate. A peer of another mesh or protocol version computes another
// prologue, so its first encrypted payload fails to decrypt (kDecryptFailed).
//
// Nothing but the certificate (a fixed-layout record, decoded with strict bounds) is decoded
// before completion; application bytes that arrive early are buffered raw and handed to the
// Channel unopened. Any error is final: the handshake closes and every later call returns
// kSessionClosed. After completion the caller should feed the peer certificate's not_before to
// its TrustedClock (security/trusted_clock.hpp) and keep the certificate for access decisions.
// Ownership: the pointers in HandshakeSetup must outlive the SecureHandshake.
// Thread rules: owned by one thread (the session's strand).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/status.hpp"
#include "common/time.hpp"
#include "security/certificate.hpp"
#include "security/channel.hpp"
#include "security/frame.hpp"
#include "security/identity.hpp"
#include "security/mesh.hpp"
#include "security/noise.hpp"
#include "security/revocation.hpp"

namespace shoal::security {

inline constexpr std::uint16_t kProtocolVersion = 1;

struct HandshakeSetup {
  noise::Role role = noise::Role::kInitiator;
  // This device's identity key; its X25519 conversion is the Noise static key. Not owned.
  const Identity* identity = nullptr;
  // This device's encoded certificate (decode_certificate must accept it).
  std::vector<std::uint8_t> certificate;
  // What this node trusts, and whom it has revoked. Not owned.
  const TrustAnchor* anchor = nullptr;
  const RevocationSet* revocations = nullptr;
  // The peer roles accepted on this connection.
  RoleSet accepted_roles = RoleSet::all();
  // TrustedClock::now(local wall clock) when the handshake starts.
  WallTime trusted_now;
  // A fresh X25519 key pair for this handshake only (randombytes in production, a seeded stream in
  // the simulator and tests).
  std::optional<noise::KeyPair> ephemeral;
  ChannelLimits channel_limits;
};

class SecureHandshake {
 public:
  // Statuses: kInvalidArgument (a missing pointer or key, an undecodable own certificate);
  // kInternal (libsodium).
  [[nodiscard]] static Result<SecureHandshake> create(HandshakeSetup setup);

  SecureHandshake(SecureHandshake&&) noexcept = default;
  SecureHandshake& operator=(SecureHandshake&&) noexcept = default;
  SecureHandshake(const SecureHandshake&) = delete;
  SecureHandshake& operator=(const SecureHandshake&) = delete;

  // Initiator only, once: queues message 1. Statuses: kInvalidArgument; kSessionClosed.
  [[nodiscard]] Status start();
  // Stream bytes from the peer: processes every complete handshake message, queuing replies.
  // Statuses: kSessionClosed; framing errors (kTooLarge, kMalformed); the statuses of
  // HandshakeState::read_message (kDecryptFailed, kTruncated, ...); kMalformed (a non-empty
  // first payload, an undecodable certificate); every status of verify_certificate.
  [[nodiscard]] Status receive(std::span<const std::uint8_t> bytes);
  // Bytes to send to the peer, in order; drain after every call.
  std::vector<std::uint8_t> take_output() noexcept { return std::move(out_); }

  bool is_complete() const noexcept { return complete_; }
  bool is_closed() const noexcept { return closed_; }
  // The peer's verified certificate. Precondition: is_complete().
  const Certificate& peer_certificate() const noexcept;
  // The Noise handshake hash (channel binding). Precondition: is_complete().
  std::span<const std::uint8_t> handshake_hash() const noexcept { return hash_; }

  // The sealed channel, with any bytes that followed the last handshake message already fed to
  // it. Statuses: kInvalidArgument (not complete); kSessionClosed; the channel's receive
  // statuses. Consumes the handshake.
  [[nodiscard]] Result<Channel> into_channel(MonoTime now);

 private:
  SecureHandshake() = default;
  Status fail(Status status) noexcept;
  Status send(std::span<const std::uint8_t> payload);
  Status accept_certificate(std::span<const std::uint8_t> payload);
  Status on_message(std::span<const std::uint8_t> message);

  std::optional<noise::HandshakeState> noise_;
  HandshakeSetup setup_;
  FrameBuffer rx_{32, noise::kMaxMessageBytes};
  std::vector<std::uint8_t> leftover_;
  std::vector<std::uint8_t> out_;
  std::optional<Certificate> peer_;
  std::vector<std::uint8_t> hash_;
  std::optional<noise::TransportKeys> keys_;
  bool started_ = false;
  bool complete_ = false;
  bool closed_ = false;
};

// The prologue for `mesh_id` at kProtocolVersion.
std::vector<std::uint8_t> shoal_prologue(const MeshId& mesh_id);

}  // namespace shoal::security

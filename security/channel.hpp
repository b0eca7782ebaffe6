// security/channel.hpp: the sealed channel between two peers after the handshake.
//
// Role: each direction seals messages with one of the CipherStates from the Noise Split()
// (ChaCha20-Poly1305 IETF with counter nonces; docs/decisions.md D19 says why not
// secretstream). Sans-I/O and deterministic: bytes and times in, bytes out; no randomness.
//
// Wire form of one frame:
//   [u32 big-endian length L][u8 kind][ChaCha20-Poly1305 ciphertext of L - 1 bytes]
// where the ciphertext seals the payload under the direction's key and the next nonce, with the
// five length and kind bytes as associated data, so L = 1 + payload + 16 and a change to any byte
// fails authentication. Kinds: 0 data; 1 data, then both sides rekey this direction (Noise
// Rekey()); 2 close (empty payload, the sender will send nothing more). The kind travels in clear
// (authenticated, not hidden): it reveals only what timing and the TCP close reveal anyway, and
// keeping it out of the plaintext keeps the payload block-aligned (a 513-byte plaintext costs
// ChaCha20 a ninth block at 512 B). L is checked against the limits as soon as its four bytes
// arrive, before any allocation for the body.
//
// Rekeying: the sender decides, on a message budget and a time budget (time passed in by the
// caller), and marks the last frame under the old key with kind 1; the receiver rekeys after
// opening it. So the two sides' clocks never need to agree.
//
// Errors are final: a frame that does not authenticate (tampered, replayed, reordered, dropped
// before a later one, truncated), a bad length, data after a close frame, or an end of stream
// without a close frame closes the channel; every later call returns kSessionClosed. A payload is
// handed out only after its frame authenticated.
// Thread rules: a Channel is owned by one thread (the session's strand).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/status.hpp"
#include "common/time.hpp"
#include "security/frame.hpp"
#include "security/noise.hpp"

namespace shoal::security {

// Bytes a frame adds to its payload: length, kind, tag.
inline constexpr std::size_t kFrameOverheadBytes = kFrameHeaderBytes + 1 + noise::kTagLen;

struct ChannelLimits {
  // The largest payload of one frame. Frames exceed Noise's 65535-byte message limit on purpose:
  // our length prefix is 32 bits, and one Cap'n Proto message travels per frame.
  std::size_t max_payload_bytes = std::size_t{1} << 20;
  // Rekey this direction after this many frames under one key...
  std::uint64_t rekey_after_messages = std::uint64_t{1} << 16;
  // ...or once the key has been in use this long, whichever comes first.
  Duration rekey_after = Duration::seconds(600);
};

class Channel {
 public:
  // `now` starts the first key's time budget.
  Channel(noise::TransportKeys keys, ChannelLimits limits, MonoTime now) noexcept;

  Channel(Channel&&) noexcept = default;
  Channel& operator=(Channel&&) noexcept = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Appends one sealed frame carrying `payload` (which must not point into `out`) to `out`.
  // Statuses: kSessionClosed; kTooLarge
  // (payload above max_payload_bytes; the channel stays open); kInvalidArgument after
  // seal_close.
  [[nodiscard]] Status seal(std::span<const std::uint8_t> payload, MonoTime now,
                            std::vector<std::uint8_t>& out);
  // Appends the close frame; the channel then seals nothing more.
  [[nodiscard]] Status seal_close(std::vector<std::uint8_t>& out);

  // Stream input: buffers `bytes` (checking each frame length as its header arrives). Drain with
  // next() after every call. Statuses: kSessionClosed; kTooLarge/kMalformed (a bad length);
  // kOverloaded (frames left undrained). Errors close the channel.
  [[nodiscard]] Status receive(std::span<const std::uint8_t> bytes);
  // Opens the next complete buffered frame into `payload` (replacing its contents). Returns
  // true with a payload, false when no complete data frame is buffered (a close frame is consumed
  // silently and makes peer_closed() true). Statuses: kSessionClosed; kDecryptFailed (a frame
  // that does not authenticate in sequence); kMalformed (an unknown kind, data after close).
  // Errors close the channel.
  [[nodiscard]] Result<bool> next(std::vector<std::uint8_t>& payload);
  // Opens exactly one whole frame, header included, decrypting in place; returns the payload
  // (empty for a close frame) as a view into `frame`. For message-oriented transports, tests and
  // benchmarks; same statuses as next(), plus kTooLarge/kMalformed for a bad length.
  [[nodiscard]] Result<std::span<std::uint8_t>> open_frame(std::span<std::uint8_t> frame);
  // The transport reached its end. Statuses: kTruncated (corruption) unless the peer's close
  // frame arrived and nothing is left over; either way the channel is closed afterwards.
  [[nodiscard]] Status end_of_stream();

  bool is_closed() const noexcept { return closed_; }
  bool peer_closed() const noexcept { return peer_closed_; }
  std::uint64_t rekeys_sent() const noexcept { return rekeys_sent_; }
  std::uint64_t rekeys_received() const noexcept { return rekeys_received_; }

 private:
  Status fail(Status status) noexcept;
  Status closed_status() const;

  noise::CipherState send_;
  noise::CipherState receive_;
  ChannelLimits limits_;
  FrameBuffer rx_;
  MonoTime key_since_;
  std::uint64_t sent_under_key_ = 0;
  std::uint64_t rekeys_sent_ = 0;
  std::uint64_t rekeys_received_ = 0;
  bool closed_ = false;
  bool sent_close_ = false;
  bool peer_closed_ = false;
};

}  // namespace shoal::security

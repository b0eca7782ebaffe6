#include "security/channel.hpp"

#include <cstring>
#include <string>
#include <utility>

namespace shoal::security {

namespace {
constexpr std::uint8_t kKindData = 0;
constexpr std::uint8_t kKindDataThenRekey = 1;
constexpr std::uint8_t kKindClose = 2;
constexpr std::size_t kMinBody = 1 + noise::kTagLen;
}  // namespace

Channel::Channel(noise::TransportKeys keys, ChannelLimits limits, MonoTime now) noexcept
    : send_(std::move(keys.send)),
      receive_(std::move(keys.receive)),
      limits_(limits),
      rx_(kMinBody, limits.max_payload_bytes + kMinBody),
      key_since_(now) {}

Status Channel::fail(Status status) noexcept {
  closed_ = true;
  send_ = noise::CipherState();
  receive_ = noise::CipherState();
  return status;
}

Status Channel::closed_status() const {
  return Status(Detail::kSessionClosed, "the secure channel is closed");
}

Status Channel::seal(std::span<const std::uint8_t> payload, MonoTime now,
                     std::vector<std::uint8_t>& out) {
  if (closed_) return closed_status();
  if (sent_close_) return Status(Code::kInvalidArgument, "seal after seal_close");
  if (payload.size() > limits_.max_payload_bytes) {
    return Status(Detail::kTooLarge, "payload of " + std::to_string(payload.size()) +
                                         " bytes is above the frame limit " +
                                         std::to_string(limits_.max_payload_bytes));
  }
  const bool rekey = sent_under_key_ + 1 >= limits_.rekey_after_messages ||
                     now - key_since_ >= limits_.rekey_after;
  const std::size_t at = out.size();
  const std::size_t body = 1 + payload.size() + noise::kTagLen;
  out.resize(at + kFrameHeaderBytes + body);
  std::uint8_t* p = out.data() + at;
  put_frame_length(p, static_cast<std::uint32_t>(body));
  p[kFrameHeaderBytes] = rekey ? kKindDataThenRekey : kKindData;
  // The length and kind are the associated data; the payload is encrypted straight into place.
  Status st = send_.encrypt_with_ad(std::span<const std::uint8_t>(p, kFrameHeaderBytes + 1),
                                    payload, p + kFrameHeaderBytes + 1);
  if (!st.ok()) {
    out.resize(at);
    return fail(std::move(st));
  }
  ++sent_under_key_;
  if (rekey) {
    send_.rekey();
    sent_under_key_ = 0;
    key_since_ = now;
    ++rekeys_sent_;
  }
  return ok_status();
}

Status Channel::seal_close(std::vector<std::uint8_t>& out) {
  if (closed_) return closed_status();
  if (sent_close_) return Status(Code::kInvalidArgument, "seal_close called twice");
  const std::size_t at = out.size();
  out.resize(at + kFrameHeaderBytes + kMinBody);
  std::uint8_t* p = out.data() + at;
  put_frame_length(p, static_cast<std::uint32_t>(kMinBody));
  p[kFrameHeaderBytes] = kKindClose;
  Status st = send_.encrypt_with_ad(std::span<const std::uint8_t>(p, kFrameHeaderBytes + 1), {},
                                    p + kFrameHeaderBytes + 1);
  if (!st.ok()) {
    out.resize(at);
    return fail(std::move(st));
  }
  sent_close_ = true;
  return ok_status();
}

Status Channel::receive(std::span<const std::uint8_t> bytes) {
  if (closed_) return closed_status();
  Status st = rx_.append(bytes);
  if (!st.ok()) return fail(std::move(st));
  return ok_status();
}

Result<std::span<std::uint8_t>> Channel::open_frame(std::span<std::uint8_t> frame) {
  if (closed_) return closed_status();
  if (frame.size() < kFrameHeaderBytes + kMinBody) {
    return fail(Status(Detail::kTruncated, "frame shorter than its minimum size"));
  }
  const std::uint32_t len = frame_length(frame.data());
  if (len > limits_.max_payload_bytes + kMinBody) {
    return fail(Status(Detail::kTooLarge, "frame length above the limit"));
  }
  if (len != frame.size() - kFrameHeaderBytes) {
    return fail(Status(Detail::kTruncated, "frame length does not match its bytes"));
  }
  if (peer_closed_) return fail(Status(Detail::kMalformed, "data after the peer's close frame"));
  std::uint8_t* body = frame.data() + kFrameHeaderBytes;
  Status st = receive_.decrypt_with_ad(
      std::span<const std::uint8_t>(frame.data(), kFrameHeaderBytes + 1),
      std::span<const std::uint8_t>(body + 1, len - 1), body + 1);
  if (!st.ok()) return fail(std::move(st));
  // The kind is authenticated (associated data), so it is read only now.
  const std::uint8_t kind = body[0];
  const std::size_t payload_len = len - kMinBody;
  switch (kind) {
    case kKindData: break;
    case kKindDataThenRekey:
      receive_.rekey();
      ++rekeys_received_;
      break;
    case kKindClose:
      if (payload_len != 0) return fail(Status(Detail::kMalformed, "close frame with a payload"));
      peer_closed_ = true;
      break;
    default: return fail(Status(Detail::kMalformed, "unknown frame kind"));
  }
  return std::span<std::uint8_t>(body + 1, payload_len);
}

Result<bool> Channel::next(std::vector<std::uint8_t>& payload) {
  while (true) {
    if (closed_) return closed_status();
    std::span<std::uint8_t> frame = rx_.front();
    if (frame.empty()) return false;
    auto opened = open_frame(frame);
    if (!opened.ok()) return std::move(opened).take_status();
    const bool was_close = frame[kFrameHeaderBytes] == kKindClose;
    if (!was_close) payload.assign(opened->begin(), opened->end());
    rx_.pop();
    if (!was_close) return true;
  }
}

Status Channel::end_of_stream() {
  if (closed_) return closed_status();
  const bool clean = peer_closed_ && rx_.buffered() == 0;
  closed_ = true;
  send_ = noise::CipherState();
  receive_ = noise::CipherState();
  if (!clean) {
    return Status(Detail::kTruncated, peer_closed_ ? "bytes left over after the close frame"
                                                   : "stream ended without a close frame");
  }
  return ok_status();
}

}  // namespace shoal::security

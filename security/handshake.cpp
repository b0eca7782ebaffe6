#include "security/handshake.hpp"

#include <cstring>
#include <utility>

namespace shoal::security {

std::vector<std::uint8_t> shoal_prologue(const MeshId& mesh_id) {
  static constexpr char kLabel[] = "shoal/noise";  // 11 bytes and its NUL
  std::vector<std::uint8_t> p(kLabel, kLabel + sizeof kLabel);
  p.push_back(static_cast<std::uint8_t>(kProtocolVersion >> 8));
  p.push_back(static_cast<std::uint8_t>(kProtocolVersion));
  p.insert(p.end(), mesh_id.begin(), mesh_id.end());
  return p;
}

Result<SecureHandshake> SecureHandshake::create(HandshakeSetup setup) {
  if (setup.identity == nullptr || setup.anchor == nullptr || setup.revocations == nullptr) {
    return Status(Code::kInvalidArgument, "handshake setup misses an identity, anchor or set");
  }
  if (!setup.ephemeral) {
    return Status(Code::kInvalidArgument, "handshake setup misses its ephemeral key pair");
  }
  auto own = decode_certificate(setup.certificate);
  if (!own.ok()) {
    return Status(Code::kInvalidArgument,
                  "own certificate does not decode: " + own.status().to_string());
  }
  if (own->device_key != setup.identity->public_key()) {
    return Status(Code::kInvalidArgument, "own certificate is for another key");
  }
  noise::HandshakeConfig config;
  config.pattern = noise::Pattern::kXX;
  config.hash = noise::HashKind::kBlake2b;
  config.role = setup.role;
  config.prologue = shoal_prologue(setup.anchor->mesh_id);
  config.static_keys = setup.identity->static_key_pair();
  config.ephemeral_keys = std::move(setup.ephemeral);
  setup.ephemeral.reset();
  auto hs = noise::HandshakeState::create(std::move(config));
  if (!hs.ok()) return std::move(hs).take_status();
  SecureHandshake s;
  s.noise_.emplace(std::move(*hs));
  s.setup_ = std::move(setup);
  return s;
}

Status SecureHandshake::fail(Status status) noexcept {
  closed_ = true;
  noise_.reset();
  keys_.reset();
  leftover_.clear();
  return status;
}

const Certificate& SecureHandshake::peer_certificate() const noexcept {
  SHOAL_ASSERT(complete_ && peer_.has_value());
  return *peer_;
}

Status SecureHandshake::send(std::span<const std::uint8_t> payload) {
  auto msg = noise_->write_message(payload);
  if (!msg.ok()) return std::move(msg).take_status();
  const std::size_t at = out_.size();
  out_.resize(at + kFrameHeaderBytes);
  put_frame_length(out_.data() + at, static_cast<std::uint32_t>(msg->size()));
  out_.insert(out_.end(), msg->begin(), msg->end());
  return ok_status();
}

Status SecureHandshake::start() {
  if (closed_) return Status(Detail::kSessionClosed, "the handshake is closed");
  if (setup_.role != noise::Role::kInitiator || started_) {
    return Status(Code::kInvalidArgument, "start() is for the initiator, once");
  }
  started_ = true;
  Status st = send({});
  if (!st.ok()) return fail(std::move(st));
  return ok_status();
}

Status SecureHandshake::accept_certificate(std::span<const std::uint8_t> payload) {
  auto cert = decode_certificate(payload);
  if (!cert.ok()) {
    return Status(cert.status().detail(),
                  "peer certificate does not decode: " + cert.status().message());
  }
  SHOAL_RETURN_IF_ERROR(verify_certificate(*cert, *setup_.anchor, *setup_.revocations,
                                           setup_.trusted_now, setup_.accepted_roles,
                                           &*noise_->remote_static()));
  peer_ = std::move(*cert);
  return ok_status();
}

Status SecureHandshake::on_message(std::span<const std::uint8_t> message) {
  auto payload = noise_->read_message(message);
  if (!payload.ok()) return std::move(payload).take_status();
  const bool initiator = setup_.role == noise::Role::kInitiator;
  if (!initiator && !noise_->remote_static()) {
    // Message 1: its payload is unencrypted and must be empty.
    if (!payload->empty()) return Status(Detail::kMalformed, "first handshake payload not empty");
    return send(setup_.certificate);
  }
  SHOAL_RETURN_IF_ERROR(accept_certificate(*payload));
  if (initiator) SHOAL_RETURN_IF_ERROR(send(setup_.certificate));
  SHOAL_ASSERT(noise_->is_finished());
  const auto h = noise_->handshake_hash();
  hash_.assign(h.begin(), h.end());
  auto keys = noise_->split();
  if (!keys.ok()) return std::move(keys).take_status();
  keys_.emplace(std::move(*keys));
  noise_.reset();
  complete_ = true;
  return ok_status();
}

Status SecureHandshake::receive(std::span<const std::uint8_t> bytes) {
  if (closed_) return Status(Detail::kSessionClosed, "the handshake is closed");
  if (complete_) {
    // Application bytes racing ahead of into_channel(): kept raw, never decoded here.
    leftover_.insert(leftover_.end(), bytes.begin(), bytes.end());
    return ok_status();
  }
  if (setup_.role == noise::Role::kInitiator && !started_) {
    return fail(Status(Code::kInvalidArgument, "receive() before start()"));
  }
  // Feed only as many bytes as the handshake can still use; the rest belongs to the channel.
  std::size_t used = 0;
  while (used < bytes.size() && !complete_) {
    // At most up to the end of the frame in progress, so the channel's bytes are never framed
    // as handshake messages.
    std::size_t take = bytes.size() - used;
    const std::size_t have = rx_.buffered();
    if (have < kFrameHeaderBytes) {
      take = std::min(take, kFrameHeaderBytes - have);
    } else {
      // The header is complete and was checked; rx_ holds no whole frame here.
      take = std::min(take, rx_.pending_frame_bytes() - have);
    }
    Status st = rx_.append(bytes.subspan(used, take));
    if (!st.ok()) return fail(std::move(st));
    used += take;
    std::span<std::uint8_t> frame = rx_.front();
    if (frame.empty()) continue;
    st = on_message(frame.subspan(kFrameHeaderBytes));
    rx_.pop();
    if (!st.ok()) return fail(std::move(st));
  }
  if (used < bytes.size()) leftover_.insert(leftover_.end(), bytes.begin() + used, bytes.end());
  return ok_status();
}

Result<Channel> SecureHandshake::into_channel(MonoTime now) {
  if (closed_) return Status(Detail::kSessionClosed, "the handshake is closed");
  if (!complete_) return Status(Code::kInvalidArgument, "into_channel before completion");
  Channel channel(std::move(*keys_), setup_.channel_limits, now);
  keys_.reset();
  closed_ = true;
  if (!leftover_.empty()) {
    Status st = channel.receive(leftover_);
    leftover_.clear();
    if (!st.ok()) return st;
  }
  return channel;
}

}  // namespace shoal::security

// security/frame.hpp: the length-prefixed framing of handshake messages and channel frames.
//
// Role: both the handshake and the channel move `[u32 big-endian length][body]` frames over a byte
// stream. A FrameBuffer collects stream bytes and hands out whole frames. The length is checked
// against [min_body, max_body] as soon as its four bytes arrive, before any room is made for the
// body, so a hostile length can never make it allocate: the buffer holds at most the bytes the
// caller fed it, and feeding refuses to grow it past one maximal frame plus the chunk being fed
// while the caller has not drained complete frames.
// Thread rules: a value owned by one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/status.hpp"

namespace shoal::security {

inline constexpr std::size_t kFrameHeaderBytes = 4;

// Reads a frame header's length.
inline std::uint32_t frame_length(const std::uint8_t* header) noexcept {
  return (std::uint32_t{header[0]} << 24) | (std::uint32_t{header[1]} << 16) |
         (std::uint32_t{header[2]} << 8) | std::uint32_t{header[3]};
}
inline void put_frame_length(std::uint8_t* header, std::uint32_t length) noexcept {
  header[0] = static_cast<std::uint8_t>(length >> 24);
  header[1] = static_cast<std::uint8_t>(length >> 16);
  header[2] = static_cast<std::uint8_t>(length >> 8);
  header[3] = static_cast<std::uint8_t>(length);
}


class FrameBuffer {
 public:
  FrameBuffer(std::size_t min_body_bytes, std::size_t max_body_bytes) noexcept
      : min_body_(min_body_bytes), max_body_(max_body_bytes) {}

  // Appends stream bytes. Statuses: kTooLarge or kMalformed when a complete header announces a
  // body outside [min, max] (checked for every frame the bytes complete); kOverloaded when frames
  // were left undrained and the buffer would exceed two maximal frames.
  [[nodiscard]] Status append(std::span<const std::uint8_t> bytes);
  // The next complete frame (header and body), writable in place; empty when none is complete.
  // Valid until the next append() or pop().
  std::span<std::uint8_t> front() noexcept;
  // Drops the frame front() returned.
  void pop() noexcept;
  // Bytes buffered and not yet popped (0 at a clean frame boundary once drained).
  std::size_t buffered() const noexcept { return data_.size() - start_; }
  // Header plus body bytes of the first buffered frame; 0 while its header is incomplete.
  std::size_t pending_frame_bytes() const noexcept {
    if (buffered() < kFrameHeaderBytes) return 0;
    return kFrameHeaderBytes + frame_length(data_.data() + start_);
  }

 private:
  [[nodiscard]] Status check_headers() noexcept;

  std::size_t min_body_;
  std::size_t max_body_;
  std::vector<std::uint8_t> data_;
  std::size_t start_ = 0;    // first byte not yet popped
  std::size_t checked_ = 0;  // headers before this offset were checked
};

}  // namespace shoal::security

#include "security/frame.hpp"

#include <algorithm>
#include <string>

namespace shoal::security {

Status FrameBuffer::check_headers() noexcept {
  std::size_t at = std::max(checked_, start_);
  while (at <= data_.size() && data_.size() - at >= kFrameHeaderBytes) {
    const std::uint32_t len = frame_length(data_.data() + at);
    if (len > max_body_) {
      return Status(Detail::kTooLarge, "frame of " + std::to_string(len) +
                                           " bytes announced; the limit is " +
                                           std::to_string(max_body_));
    }
    if (len < min_body_) {
      return Status(Detail::kMalformed, "frame of " + std::to_string(len) +
                                            " bytes is shorter than the minimum " +
                                            std::to_string(min_body_));
    }
    at += kFrameHeaderBytes + len;
    checked_ = at;
  }
  return ok_status();
}

Status FrameBuffer::append(std::span<const std::uint8_t> bytes) {
  if (start_ > 0 && start_ == data_.size()) {
    checked_ = checked_ > start_ ? checked_ - start_ : 0;
    data_.clear();
    start_ = 0;
  }
  // Check the header of the frame in progress with the first bytes of the chunk, before the
  // chunk is copied, so a hostile length is refused without buffering anything behind it.
  if (buffered() < kFrameHeaderBytes && buffered() + bytes.size() >= kFrameHeaderBytes &&
      checked_ <= start_) {
    std::uint8_t header[kFrameHeaderBytes];
    const std::size_t have = buffered();
    for (std::size_t i = 0; i < have; ++i) header[i] = data_[start_ + i];
    for (std::size_t i = have; i < kFrameHeaderBytes; ++i) header[i] = bytes[i - have];
    const std::uint32_t len = frame_length(header);
    if (len > max_body_ || len < min_body_) {
      return Status(len > max_body_ ? Detail::kTooLarge : Detail::kMalformed,
                    "frame of " + std::to_string(len) + " bytes announced; allowed " +
                        std::to_string(min_body_) + ".." + std::to_string(max_body_));
    }
  }
  const std::size_t limit = 2 * (kFrameHeaderBytes + max_body_);
  if (buffered() > limit) {
    return Status(Code::kOverloaded, "frames left undrained in the receive buffer");
  }
  if (start_ > 0 && start_ >= data_.size() / 2) {
    data_.erase(data_.begin(), data_.begin() + static_cast<std::ptrdiff_t>(start_));
    checked_ = checked_ > start_ ? checked_ - start_ : 0;
    start_ = 0;
  }
  data_.insert(data_.end(), bytes.begin(), bytes.end());
  return check_headers();
}

std::span<std::uint8_t> FrameBuffer::front() noexcept {
  if (data_.size() - start_ < kFrameHeaderBytes) return {};
  const std::size_t len = frame_length(data_.data() + start_);
  if (data_.size() - start_ - kFrameHeaderBytes < len) return {};
  return std::span<std::uint8_t>(data_.data() + start_, kFrameHeaderBytes + len);
}

void FrameBuffer::pop() noexcept {
  auto f = front();
  start_ += f.size();
}

}  // namespace shoal::security

// security/bytes.hpp (internal): big-endian writers and a bounds-checked reader for the fixed
// layouts of certificates, revocations and key files.
// Thread rules: values; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace shoal::security::detail {

inline void put_u8(std::vector<std::uint8_t>& out, std::uint8_t v) { out.push_back(v); }
inline void put_u32be(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline void put_u64be(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
inline void put_bytes(std::vector<std::uint8_t>& out, std::span<const std::uint8_t> b) {
  out.insert(out.end(), b.begin(), b.end());
}

// Reads from a span; every read checks the remaining length first and a failed read leaves
// ok() false (later reads then fail too), so decoders check once at the end of a group.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> bytes) noexcept : b_(bytes) {}
  bool ok() const noexcept { return ok_; }
  std::size_t remaining() const noexcept { return b_.size() - at_; }
  std::size_t position() const noexcept { return at_; }

  std::uint8_t u8() noexcept {
    if (!need(1)) return 0;
    return b_[at_++];
  }
  std::uint32_t u32be() noexcept {
    if (!need(4)) return 0;
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | b_[at_++];
    return v;
  }
  std::uint64_t u64be() noexcept {
    if (!need(8)) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | b_[at_++];
    return v;
  }
  void bytes(std::uint8_t* out, std::size_t n) noexcept {
    if (!need(n)) {
      std::memset(out, 0, n);
      return;
    }
    std::memcpy(out, b_.data() + at_, n);
    at_ += n;
  }

 private:
  bool need(std::size_t n) noexcept {
    if (!ok_ || b_.size() - at_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  std::span<const std::uint8_t> b_;
  std::size_t at_ = 0;
  bool ok_ = true;
};

}  // namespace shoal::security::detail

// security/secret.hpp: fixed-size secret bytes that are wiped when they die.
//
// Role: every private key, chaining key and cipher key in security/ lives in a Secret<N>. Its
// destructor, move and reset overwrite the bytes with sodium_memzero (which the compiler may not
// elide), so a key does not linger in freed stack or heap memory. The bytes live inline (no
// allocation), which keeps handshakes and channels allocation-free; long-lived identity keys add
// page locking on top (security/identity.hpp).
// Thread rules: a value; no shared state.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include <sodium.h>

namespace shoal::security {

template <std::size_t N>
class Secret {
 public:
  Secret() noexcept { bytes_.fill(0); }
  explicit Secret(std::span<const std::uint8_t, N> bytes) noexcept {
    for (std::size_t i = 0; i < N; ++i) bytes_[i] = bytes[i];
  }
  ~Secret() { wipe(); }
  Secret(const Secret& o) noexcept : bytes_(o.bytes_) {}
  Secret& operator=(const Secret& o) noexcept {
    bytes_ = o.bytes_;
    return *this;
  }
  // Moves copy the bytes and wipe the source.
  Secret(Secret&& o) noexcept : bytes_(o.bytes_) { o.wipe(); }
  Secret& operator=(Secret&& o) noexcept {
    if (this != &o) {
      bytes_ = o.bytes_;
      o.wipe();
    }
    return *this;
  }

  static constexpr std::size_t size() noexcept { return N; }
  std::uint8_t* data() noexcept { return bytes_.data(); }
  const std::uint8_t* data() const noexcept { return bytes_.data(); }
  std::span<std::uint8_t, N> span() noexcept { return std::span<std::uint8_t, N>(bytes_); }
  std::span<const std::uint8_t, N> span() const noexcept {
    return std::span<const std::uint8_t, N>(bytes_);
  }
  void wipe() noexcept { sodium_memzero(bytes_.data(), N); }

  // Constant-time equality (sodium_memcmp).
  friend bool operator==(const Secret& a, const Secret& b) noexcept {
    return sodium_memcmp(a.bytes_.data(), b.bytes_.data(), N) == 0;
  }

 private:
  std::array<std::uint8_t, N> bytes_;
};

// Calls sodium_init() (idempotent, thread-safe in libsodium). Returns false when libsodium cannot
// initialise, which leaves every primitive unusable; callers turn that into kInternal.
[[nodiscard]] bool sodium_ready() noexcept;

}  // namespace shoal::security

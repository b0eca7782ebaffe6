// crdt/hlc.hpp: hybrid logical clocks, the timestamps that pick the winner among siblings.
//
// Role: an Hlc is one 64-bit value: the upper 48 bits are wall-clock milliseconds since the Unix
// epoch, the lower 16 bits a logical counter (Kulkarni et al., "Logical Physical Clocks", 2014).
// Comparing two Hlc values compares their raw integers. A HybridClock is the clock state of one
// replica. It is pure: the caller passes the current WallTime on every call (the sans-I/O tick),
// and the node persists last() with its writes.
//
// Guarantees:
//   - tick() is strictly monotone whatever the wall clock does: a clock jumping backwards keeps
//     the last value and bumps the logical part; a logical overflow carries into the millisecond
//     part (the raw value simply grows by one).
//   - A clock that has observed a remote Hlc ticks above it, so a write made after seeing another
//     write is stamped later than it, even across skewed wall clocks.
//   - A remote clock more than max_forward_skew ahead of our wall clock is refused with a Status
//     (kOutOfRange) and not adopted, so one device with a broken RTC cannot drag every clock in
//     the mesh into the future. Refusing a clock never refuses data: the caller still joins the
//     entries that carried it (CRDT correctness never depends on clocks; clocks only order
//     siblings).
// Thread rules: values; no shared state.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

#include "common/status.hpp"
#include "common/time.hpp"

namespace shoal::crdt {

class Hlc {
 public:
  static constexpr unsigned kLogicalBits = 16;
  static constexpr std::uint64_t kMaxPhysicalMs = (std::uint64_t{1} << (64 - kLogicalBits)) - 1;

  constexpr Hlc() noexcept = default;
  static constexpr Hlc from_raw(std::uint64_t raw) noexcept { return Hlc(raw); }
  static constexpr Hlc from_parts(std::uint64_t physical_ms, std::uint16_t logical) noexcept {
    return Hlc((physical_ms << kLogicalBits) | logical);
  }

  constexpr std::uint64_t raw() const noexcept { return raw_; }
  constexpr std::uint64_t physical_ms() const noexcept { return raw_ >> kLogicalBits; }
  constexpr std::uint16_t logical() const noexcept {
    return static_cast<std::uint16_t>(raw_ & 0xffffu);
  }

  friend constexpr auto operator<=>(Hlc, Hlc) noexcept = default;
  friend constexpr bool operator==(Hlc, Hlc) noexcept = default;

  // "1700000000123.4" (milliseconds.logical), for traces.
  std::string to_string() const;

 private:
  constexpr explicit Hlc(std::uint64_t raw) noexcept : raw_(raw) {}
  std::uint64_t raw_ = 0;
};

// The default bound on how far ahead of our wall clock a peer's clock may be.
inline constexpr Duration kDefaultMaxForwardSkew = Duration::seconds(300);

class HybridClock {
 public:
  // `last` is the persisted last() of an earlier run (zero for a new replica).
  explicit HybridClock(Hlc last = Hlc(),
                       Duration max_forward_skew = kDefaultMaxForwardSkew) noexcept
      : last_(last), max_forward_skew_(max_forward_skew) {}

  // A timestamp for a local event (an upsert), strictly greater than every value this clock has
  // returned or observed. Wall times before the epoch count as the epoch; beyond year ~10889 they
  // are clamped. Never fails.
  Hlc tick(WallTime now) noexcept;

  // Adopts a clock seen in a peer's delta. Statuses: OK; kOutOfRange when remote is more than
  // max_forward_skew ahead of `now` (the clock is unchanged; the data may still be joined).
  [[nodiscard]] Status observe(Hlc remote, WallTime now) noexcept;

  Hlc last() const noexcept { return last_; }
  Duration max_forward_skew() const noexcept { return max_forward_skew_; }

 private:
  Hlc last_;
  Duration max_forward_skew_;
};

// The Hlc for wall time `now` with a zero logical part (clamped as in tick()).
Hlc hlc_from_wall(WallTime now) noexcept;

}  // namespace shoal::crdt

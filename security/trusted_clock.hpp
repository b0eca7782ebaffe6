// security/trusted_clock.hpp: the clock policy of certificate validity checks.
//
// Role: gateways often boot with no real-time clock (the wall clock reads 1970) or come back
// after months offline. A TrustedClock keeps a floor: the newest time the node has authenticated
// evidence for, and never lets a validity check use a time earlier than it. The policy:
//
//   * trusted now = max(local wall clock, floor);
//   * the floor only rises, and only on authenticated evidence: the not_before of every
//     certificate that verified (the authority signed it, so that time has come, up to the
//     authority's own skew), the node's own persisted hybrid logical clock (which crdt already
//     bounds against peers' skew), and the floor persisted at the last shutdown. The local wall
//     clock alone never raises it: a clock set years ahead by mistake must not poison the floor
//     and expire every certificate for good;
//   * a certificate is valid when not_before - max_skew <= trusted now <= not_after + max_skew,
//     with max_skew the bound the node already enforces on hybrid clocks (300 s).
//
// So a gateway that boots at 1970 but remembers its floor still accepts the certificates it
// accepted before shutdown and still refuses ones that expired before it, and a gateway whose
// clock is right after months offline refuses expired certificates (renew them before not_after;
// docs/security.md). What the floor cannot fix, a clock far in the future, fails closed: every
// certificate looks expired until the clock is corrected.
// Thread rules: a value owned by one thread (the node's strand).
#pragma once

#include <algorithm>

#include "common/time.hpp"

namespace shoal::security {

// The skew bound of hybrid logical clocks, reused for certificate windows.
inline constexpr Duration kMaxClockSkew = Duration::seconds(300);

class TrustedClock {
 public:
  TrustedClock() = default;
  explicit TrustedClock(WallTime floor) noexcept : floor_(floor) {}

  // Raises the floor to `evidence` if it is newer. Feed only authenticated evidence (see above).
  void observe(WallTime evidence) noexcept { floor_ = std::max(floor_, evidence); }
  WallTime floor() const noexcept { return floor_; }
  // The time validity checks use: never earlier than the floor.
  WallTime now(WallTime local_wall) const noexcept { return std::max(local_wall, floor_); }

 private:
  WallTime floor_{};
};

}  // namespace shoal::security

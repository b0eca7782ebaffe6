#include "crdt/hlc.hpp"

#include <algorithm>
#include <limits>

#include "common/assert.hpp"
#include "common/log.hpp"

namespace shoal::crdt {

std::string Hlc::to_string() const {
  return std::to_string(physical_ms()) + "." + std::to_string(logical());
}

Hlc hlc_from_wall(WallTime now) noexcept {
  const std::int64_t ms = now.ms();
  if (ms <= 0) return Hlc();
  const auto ums = static_cast<std::uint64_t>(ms);
  return Hlc::from_parts(std::min(ums, Hlc::kMaxPhysicalMs), 0);
}

Hlc HybridClock::tick(WallTime now) noexcept {
  // Reaching the top of the 64-bit space needs a wall clock beyond year 10889 and 65,535 events
  // in its last millisecond; observe() refuses remote clocks that far ahead.
  SHOAL_ASSERT(last_.raw() != std::numeric_limits<std::uint64_t>::max());
  const Hlc next = std::max(hlc_from_wall(now), Hlc::from_raw(last_.raw() + 1));
  last_ = next;
  return next;
}

Status HybridClock::observe(Hlc remote, WallTime now) noexcept {
  const Hlc limit = hlc_from_wall(now + max_forward_skew_);
  if (remote.physical_ms() > limit.physical_ms()) {
    return Status(Detail::kOutOfRange,
                  str_cat("remote clock ", remote.to_string(), " is more than ",
                          max_forward_skew_.ms(), " ms ahead of local wall clock ", now.ms()));
  }
  last_ = std::max(last_, remote);
  return ok_status();
}

}  // namespace shoal::crdt

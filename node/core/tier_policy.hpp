// node/core/tier_policy.hpp: what each collection sends to warm peers, and when (docs/tiers.md).
//
// Role: the per-collection half of DESIGN section 5's tiers that the sync engine enforces. Hot
// peers (same site) always get every delta at once and every collection. Warm peers (other
// sites, over links that cost money or are slow) get only the collections marked warm, are
// compared by digest on each collection's own schedule, and the bytes this device sends them
// for a collection (deltas and repair slices) stay within that collection's byte budget per
// interval. Policies are local to a device (its config), like its peers list: two sites may
// spend different budgets on the same collection.
// Thread rules: values.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/status.hpp"
#include "common/time.hpp"

namespace shoal::node {

struct TierPolicy {
  // Replicate this collection to warm peers at all (deltas, digest comparisons, repair answers).
  bool warm = true;
  // How often each warm peer is compared by digest for this collection, and the window of the
  // byte budget. Zero: the sync engine's SyncOptions::repair_interval_warm.
  Duration warm_interval = Duration::zero();
  // Bytes this device sends all warm peers for this collection per warm_interval (deltas and
  // repair slices, retransmissions included). Zero: no budget. A window's first item always
  // goes, so an item larger than the budget is not held forever; a window may therefore overshoot
  // by at most one item or one repair slice. Deltas wait in buffer order: an entry over budget
  // holds back the entries behind it on that peer's warm link until the next window.
  std::uint64_t warm_budget_bytes = 0;
  // Upload this collection to the cold-tier sink (node/core/node_sink_feed.cpp): every change
  // goes in buffer order once the device has a sink configured; local writes are refused with
  // kQuotaExceeded while the sink's backlog is at its quota.
  bool sink = false;
  // Eviction (node/core/node_evict.cpp): a record of a sink collection whose winner was written
  // less than this long ago keeps its payload, whatever the budget. 0 .. kMaxHotWindow.
  Duration hot_window = Duration::seconds(24 * 3600);

  friend bool operator==(const TierPolicy&, const TierPolicy&) = default;
};

// Documented limits (docs/tiers.md): an interval outside them is a typed error naming the value.
inline constexpr Duration kMinWarmInterval = Duration::seconds(1);
inline constexpr Duration kMaxWarmInterval = Duration::seconds(7 * 24 * 3600);
inline constexpr Duration kMaxHotWindow = Duration::seconds(3650LL * 24 * 3600);

// kInvalidArgument naming the field, the limit and the value seen.
[[nodiscard]] Status validate(const TierPolicy& policy);

struct TierPolicies {
  TierPolicy defaults;  // collections not named below
  std::map<std::string, TierPolicy, std::less<>> collections;

  const TierPolicy& of(std::string_view collection) const {
    auto it = collections.find(collection);
    return it == collections.end() ? defaults : it->second;
  }
  friend bool operator==(const TierPolicies&, const TierPolicies&) = default;
};

// Every policy valid (the collection named in the error).
[[nodiscard]] Status validate(const TierPolicies& policies);

}  // namespace shoal::node

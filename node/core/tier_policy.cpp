#include "node/core/tier_policy.hpp"

#include "common/log.hpp"

namespace shoal::node {

Status validate(const TierPolicy& policy) {
  const Duration i = policy.warm_interval;
  if (i != Duration::zero() && (i < kMinWarmInterval || i > kMaxWarmInterval)) {
    return Status(Detail::kOutOfRange, str_cat("warm_interval ", i.ms(), " ms outside [", kMinWarmInterval.ms(), ", ",
                                               kMaxWarmInterval.ms(), "] ms"));
  }
  if (policy.hot_window < Duration::zero() || policy.hot_window > kMaxHotWindow) {
    return Status(Detail::kOutOfRange, str_cat("hot_window ", policy.hot_window.ms(), " ms outside [0, ",
                                               kMaxHotWindow.ms(), "] ms"));
  }
  return {};
}

Status validate(const TierPolicies& policies) {
  if (Status st = validate(policies.defaults); !st.ok()) return Status(st.detail(), "default tier policy: " + st.message());
  for (const auto& [name, p] : policies.collections) {
    if (Status st = validate(p); !st.ok()) {
      return Status(st.detail(), str_cat("tier policy of collection '", name, "': ", st.message()));
    }
  }
  return {};
}

}  // namespace shoal::node

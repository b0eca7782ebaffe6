// index/metric.hpp: the distance metric, the one enum for the whole code base (the node uses it
// as node::Metric), and its snapshot encoding.
//
// Role: one definition of the metric. Every stored or ABI encoding of it has its own explicit
// conversion, pinned by static_asserts next to it, so the enum's own numbers never leak into a
// format by a cast:
//   - index snapshot header byte 20 (docs/index.md):  1 l2, 2 ip, 3 cosine  (here)
//   - node catalogue byte (docs/node-format.md):      0 l2, 1 ip, 2 cosine  (node/core/record.hpp)
//   - wire CollectionSpecWire::metric:                0 l2, 1 ip, 2 cosine  (node/core/record.hpp)
//   - C API SHOAL_METRIC_* (node/capi/shoal.h):       0 l2, 1 ip, 2 cosine  (node/capi/shoal.cpp)
// Thread rules: values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace shoal::index {

// The enumerators' numbers equal the snapshot bytes (kept so that a value seen in a debugger
// reads as the stored one), but no code may rely on that: use the conversions below.
enum class Metric : std::uint8_t { kL2 = 1, kInnerProduct = 2, kCosine = 3 };

inline constexpr Metric kAllMetrics[] = {Metric::kL2, Metric::kInnerProduct, Metric::kCosine};

// "l2", "ip", "cosine" (the names the CLI and the errors use); "unknown" for an invalid value.
std::string_view metric_name(Metric m) noexcept;

// Snapshot header byte 20. Stored: never renumber.
constexpr std::uint8_t metric_to_snapshot_byte(Metric m) noexcept {
  switch (m) {
    case Metric::kL2: return 1;
    case Metric::kInnerProduct: return 2;
    case Metric::kCosine: return 3;
  }
  return 0;
}
constexpr std::optional<Metric> metric_from_snapshot_byte(std::uint8_t b) noexcept {
  switch (b) {
    case 1: return Metric::kL2;
    case 2: return Metric::kInnerProduct;
    case 3: return Metric::kCosine;
    default: return std::nullopt;
  }
}

static_assert(metric_to_snapshot_byte(Metric::kL2) == 1);
static_assert(metric_to_snapshot_byte(Metric::kInnerProduct) == 2);
static_assert(metric_to_snapshot_byte(Metric::kCosine) == 3);
static_assert(metric_from_snapshot_byte(1) == Metric::kL2);
static_assert(metric_from_snapshot_byte(2) == Metric::kInnerProduct);
static_assert(metric_from_snapshot_byte(3) == Metric::kCosine);
static_assert(!metric_from_snapshot_byte(0) && !metric_from_snapshot_byte(4));

}  // namespace shoal::index

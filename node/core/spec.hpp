// node/core/spec.hpp: a collection's parameters and a peer's tier: values shared by the node's
// public API, its on-disk format (node_format.hpp) and the sync engine.
// Thread rules: values.
#pragma once

#include <cstdint>
#include <string>

#include "node/core/record.hpp"

namespace shoal::node {

// A collection's parameters (the catalogue's value, and the replicated catalogue's payload).
struct CollectionSpec {
  std::string name;
  std::uint32_t dimension = 0;
  Metric metric = Metric::kL2;
  std::uint32_t m = 16;
  std::uint32_t ef_construction = 200;
  std::uint32_t ef_search = 64;
  // Int8 scalar quantization of the graph with float re-ranking: the default for new
  // collections (issue 16; docs/decisions.md D34). Collections stored or replicated before it
  // carry their own value. The range [quant_min, quant_max]: both 0 (the default) means
  // calibrated from the data (index/types.hpp).
  bool quantize = true;
  float quant_min = 0.0f;
  float quant_max = 0.0f;
};

// A collection spec an app, a peer or the sink (D62) may create: name, dimension and index
// parameters in limits. Statuses: validate_collection_name's, kOutOfRange (dimension),
// index::validate_params' (m, ef_construction, ef_search, the quantization range).
[[nodiscard]] Status validate_spec(const CollectionSpec& spec, const Limits& limits);

// How close a peer is: hot peers (same site) get every delta at once;
// warm peers (other sites) on a schedule. Stored in the peers table: never renumber.
enum class Tier : std::uint8_t { kHot = 0, kWarm = 1 };

}  // namespace shoal::node

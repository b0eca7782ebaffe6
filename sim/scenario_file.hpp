// sim/scenario_file.hpp: a scenario written by a user, in TOML (docs/sim.md, "Scenario files").
//
// Role: parse_scenario_file() reads a small TOML file that fixes a mesh (peers, sites, topology),
// a workload (how long, how fast) and a schedule of faults (cuts and crashes at given times), and
// turns it into a sim::Scenario whose plan the simulator runs under the same checkers as drawn
// seeds. Every problem is a typed error naming the file, the line and the key, and the value seen.
// Thread rules: a free function; no shared state.
#pragma once

#include <string>

#include "common/status.hpp"
#include "sim/simulation.hpp"

namespace shoal::sim {

// Limits a scenario file must stay within (each named in its error).
inline constexpr std::uint32_t kScenarioMaxPeers = 16;
inline constexpr std::int64_t kScenarioMaxSeconds = 3600;  // workload and any fault's end
inline constexpr std::size_t kScenarioMaxFaults = 64;

// kInvalidArgument / kMalformed: "FILE:LINE: key K: what is wrong (value V)". kIo: unreadable.
[[nodiscard]] Result<Scenario> parse_scenario_file(const std::string& path);
[[nodiscard]] Result<Scenario> parse_scenario_text(std::string_view text, const std::string& path);

}  // namespace shoal::sim

// sim/timeline.hpp: a scenario's timeline as text and as a self-contained SVG picture
// (docs/sim.md, "Scenario files"): one lane per peer, cuts and crashes as bars, writes as ticks,
// the heal and the convergence as vertical lines.
// Thread rules: free functions; no shared state.
#pragma once

#include <string>

#include "sim/simulation.hpp"

namespace shoal::sim {

// One line per event: "   1.250 s  p02  cut  for 4000 ms", then the result line.
std::string timeline_text(const SeedResult& r);
// An SVG document (no scripts, no external references).
std::string timeline_svg(const SeedResult& r, const std::string& title);

}  // namespace shoal::sim

// Proves scenario files (docs/sim.md, "Scenario files"): the three examples in sim/scenarios/
// parse, run under every checker with no violation and converge, and give a timeline (text and
// a well-formed SVG with a lane per peer) that shows their faults, the heal and the convergence;
// every kind of bad file is refused with a typed error naming the file, the line, the key and
// the value seen.
#include <catch2/catch.hpp>

#include <string>

#include "sim/scenario_file.hpp"
#include "sim/timeline.hpp"

using namespace shoal;
using namespace shoal::sim;

namespace {

const std::string kDir = SHOAL_SIM_SCENARIO_DIR;

}  // namespace

TEST_CASE("the example scenarios run clean, converge and draw their timeline", "[sim][scenario]") {
  for (const char* name : {"gateway-offline", "chain-of-6", "split-brain"}) {
    INFO(name);
    auto sc = parse_scenario_file(kDir + "/" + name + ".toml");
    REQUIRE(sc.ok());
    REQUIRE(sc->plan != nullptr);
    REQUIRE_FALSE(sc->plan->faults.empty());
    const SeedResult r = run_seed(*sc);
    for (const Violation& v : r.violations) FAIL_CHECK(v.kind << " " << v.detail);
    CHECK(r.converged);
    const std::string text = timeline_text(r);
    CHECK(text.find(sc->plan->faults[0].kind == PlannedFault::Kind::kCut ? " cut " : " crash ") != std::string::npos);
    CHECK(text.find(" heal") != std::string::npos);
    CHECK(text.find(" converged ") != std::string::npos);
    const std::string svg = timeline_svg(r, sc->plan->name);
    CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
    CHECK(svg.find("</svg>") == svg.size() - 7);
    CHECK(svg.find("<script") == std::string::npos);
    CHECK(svg.find(">p0" + std::to_string(r.peers - 1) + "<") != std::string::npos);  // the last lane
    // Seeded: the same file runs to the same trace.
    CHECK(run_seed(*sc).trace_hash == r.trace_hash);
  }
}

TEST_CASE("bad scenario files are refused with file, line, key and value", "[sim][scenario]") {
  struct Case {
    const char* text;
    const char* expect;  // a part of the message
  };
  const Case cases[] = {
      {"peers = 3\npers = 4\n", "x.toml:2: key pers: unknown key"},
      {"peers = 40\n", "x.toml:1: key peers: must be in 2..16, got 40"},
      {"sites = 2\n", "x.toml: key peers: required"},
      {"peers = \"four\"\n", "key peers: expected a whole number, got \"four\""},
      {"peers = 3\ntopology = \"ring\"\n", "x.toml:2: key topology: expected \"full\", \"chain\" or \"star\", got \"ring\""},
      {"peers = 3\ntopology = \"chain\"\n", "key topology: a chain of sites needs sites >= 2"},
      {"peers = 3\n[workload]\nseconds = -1\n", "x.toml:3: key workload.seconds: must be in"},
      {"peers = 3\n[workload]\nspeed = 2\n", "x.toml:3: key workload.speed: unknown key"},
      {"peers = 3\n[[fault]]\nkind = \"flood\"\nat_s = 1\nfor_s = 1\npeers = [0]\n", "x.toml:3: key fault.kind: expected \"cut\" or \"crash\", got \"flood\""},
      {"peers = 3\n[[fault]]\nkind = \"cut\"\nat_s = 1\nfor_s = 1\npeers = [0, 7]\n", "x.toml:6: key fault.peers: must be in 0..2, got 7"},
      {"peers = 3\n[[fault]]\nkind = \"cut\"\nat_s = 1\nfor_s = 1\npeers = [0, 1, 2]\n", "key fault.peers: a cut needs peers on both sides"},
      {"peers = 3\n[[fault]]\nkind = \"crash\"\nat_s = 1\npeers = [0]\n", "key fault.for_s: required"},
      {"peers = 3\n[[fault]]\nkind = \"crash\"\nat_s = 99\nfor_s = 1\npeers = [0]\n", "x.toml:4: key fault.at_s: starts at or after the workload ends"},
      {"peers = 3\nrepair = 1\n", "x.toml:2: key repair: expected true or false, got 1"},
      {"peers = [\n", "x.toml:"},  // a syntax error names its line too
  };
  for (const Case& c : cases) {
    INFO(c.text);
    auto sc = parse_scenario_text(c.text, "x.toml");
    REQUIRE_FALSE(sc.ok());
    INFO(sc.status().to_string());
    CHECK(sc.status().to_string().find(c.expect) != std::string::npos);
  }
  CHECK(parse_scenario_file("/nonexistent/x.toml").status().code() == Code::kIo);
}

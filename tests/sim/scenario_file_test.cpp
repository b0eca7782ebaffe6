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
      {"peers = 3\npers = 4\n", "x.toml:2: key pers: unknown key (did you mean peers?)"},
      {"peers = 40\n", "x.toml:1: key peers: must be in 2..16, got 40"},
      {"sites = 2\n", "x.toml: key peers: required"},
      {"peers = \"four\"\n", "key peers: expected a whole number, got \"four\""},
      {"peers = 3\ntopology = \"ring\"\n", "x.toml:2: key topology: expected \"full\", \"chain\" or \"star\", got \"ring\""},
      {"peers = 3\ntopology = \"chain\"\n", "key topology: a chain of sites needs sites >= 2"},
      {"peers = 3\n[workload]\nseconds = -1\n", "x.toml:3: key workload.seconds: must be in"},
      {"peers = 3\n[workload]\nspeed = 2\n", "x.toml:3: key workload.speed: unknown key"},
      {"peers = 3\n[[fault]]\nkind = \"flood\"\nat_s = 1\nfor_s = 1\npeers = [0]\n", "x.toml:3: key fault.kind: expected \"cut\", \"crash\", \"restore\", \"rollback\" or \"clone\", got \"flood\""},
      {"peers = 3\n[[fault]]\nkind = \"restore\"\nat_s = 2\nfor_s = 1\npeers = [0]\n", "key fault.copy_at_s: required"},
      {"peers = 3\n[[fault]]\nkind = \"restore\"\nat_s = 2\ncopy_at_s = 3\nfor_s = 1\npeers = [0]\n",
       "x.toml:5: key fault.copy_at_s: the copy must be taken before the fault (at_s), got 3"},
      {"peers = 3\n[[fault]]\nkind = \"clone\"\nat_s = 2\ncopy_at_s = 1\nfor_s = 1\npeers = [1]\n", "key fault.source: required"},
      {"peers = 3\n[[fault]]\nkind = \"clone\"\nat_s = 2\ncopy_at_s = 1\nfor_s = 1\npeers = [1]\nsource = 1\n",
       "x.toml:8: key fault.source: a clone's source cannot be one of its peers"},
      {"peers = 3\n[[fault]]\nkind = \"clone\"\nat_s = 2\ncopy_at_s = 1\nfor_s = 1\npeers = [1]\nsource = 5\n",
       "x.toml:8: key fault.source: must be in 0..2, got 5"},
      {"peers = 3\n[[fault]]\nkind = \"crash\"\nat_s = 2\ncopy_at_s = 1\nfor_s = 1\npeers = [1]\n",
       "x.toml:5: key fault.copy_at_s: only a restore, rollback or clone takes a copy"},
      {"peers = 3\n[[fault]]\nkind = \"restore\"\nat_s = 2\ncopy_at_s = 1\nfor_s = 1\npeers = [1]\nsource = 0\n",
       "x.toml:8: key fault.source: only a clone has a source"},
      {"peers = 3\n[[fault]]\nkind = \"cut\"\nat_s = 1\nfor_s = 1\npeers = [0, 7]\n", "x.toml:6: key fault.peers: must be in 0..2, got 7"},
      {"peers = 3\n[[fault]]\nkind = \"cut\"\nat_s = 1\nfor_s = 1\npeers = [0, 1, 2]\n", "key fault.peers: a cut needs peers on both sides"},
      {"peers = 3\n[[fault]]\nkind = \"crash\"\nat_s = 1\npeers = [0]\n", "key fault.for_s: required"},
      {"peers = 3\n[[fault]]\nkind = \"crash\"\nat_s = 99\nfor_s = 1\npeers = [0]\n", "x.toml:4: key fault.at_s: starts at or after the workload ends"},
      {"peers = 3\nrepair = 1\n", "x.toml:2: key repair: expected true or false, got 1"},
      {"peers = 3\nsink = 1\n", "x.toml:2: key sink: expected true or false, got 1"},
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

TEST_CASE("hostile scenario files (not UTF-8, numbers past 64 bits, tables, arrays and deep nesting where a value "
          "belongs) are refused with a typed status naming the file, never a crash",
          "[sim][scenario]") {
  std::string deep = "peers = ";
  for (int i = 0; i < 2000; ++i) deep += '[';
  for (int i = 0; i < 2000; ++i) deep += ']';
  deep += "\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a string that is not UTF-8", "peers = 3\nname = \"n\xff\"\n"},
      {"a key that is not UTF-8", "peers = 3\n\"\xc3\x28\" = 1\n"},
      {"a NUL byte", std::string("peers = 3\0\n", 11)},
      {"an integer past 64 bits", "peers = 99999999999999999999\n"},
      {"the lowest 64-bit integer", "peers = 3\nseed = -9223372036854775808\n"},
      {"a float past double as seconds", "peers = 3\n[workload]\nseconds = 1e999\n"},
      {"nan as seconds", "peers = 3\n[workload]\nseconds = nan\n"},
      {"a table where a number belongs", "peers = { n = 3 }\n"},
      {"an array where a number belongs", "peers = [3]\n"},
      {"a table where [workload] belongs as a value", "peers = 3\nworkload = 3\n"},
      {"[[fault]] as a plain table", "peers = 3\n[fault]\nkind = \"cut\"\n"},
      {"[[fault]] as an array of numbers", "peers = 3\nfault = [1, 2]\n"},
      {"an empty fault array", "peers = 3\nfault = []\n"},
      {"a fault's kind as a table", "peers = 3\n[[fault]]\nkind = { a = 1 }\nat_s = 1\nfor_s = 1\npeers = [0]\n"},
      {"a fault's peers nested", "peers = 3\n[[fault]]\nkind = \"crash\"\nat_s = 1\nfor_s = 1\npeers = [[0]]\n"},
      {"a fault's peers past 64 bits", "peers = 3\n[[fault]]\nkind = \"crash\"\nat_s = 1\nfor_s = 1\npeers = [18446744073709551616]\n"},
      {"arrays nested 2,000 deep", deep},
  };
  for (const auto& [what, text] : cases) {
    INFO(what);
    Result<Scenario> sc = Scenario{};
    REQUIRE_NOTHROW(sc = parse_scenario_text(text, "x.toml"));
    REQUIRE_FALSE(sc.ok());
    INFO(sc.status().to_string());
    CHECK(sc.status().code() != Code::kOk);
    CHECK(sc.status().to_string().find("x.toml") != std::string::npos);
  }
}

TEST_CASE("a scenario file's sink key turns on the simulated sink", "[sim][scenario]") {
  auto on = parse_scenario_text("peers = 3\nsink = true\n", "x.toml");
  REQUIRE(on.ok());
  CHECK(on->sink);
  auto off = parse_scenario_text("peers = 3\n", "x.toml");
  REQUIRE(off.ok());
  CHECK_FALSE(off->sink);
}

TEST_CASE("restores, rollbacks and clones in scenario files take a new incarnation and the oracle forgets what was lost",
          "[sim][scenario]") {
  // restore-from-backup: the restore path's new incarnation, and 27 writes acknowledged while
  // the peer was cut off that nobody else got (forgotten; the mesh converges without them).
  // vm-rollback: no local sign, so a peer's hello makes it take the new incarnation.
  // golden-image: a clone of another peer's store under its own identity and a new incarnation.
  struct Expect {
    const char* name;
    const char* fault;  // the timeline's line for the fault
    bool forgets;       // some acknowledged write is lost for good
  };
  for (const Expect& e : {Expect{"restore-from-backup", "restore  copy of p02 from 1000 ms, new incarnation 03000000/1", true},
                          Expect{"vm-rollback", "restore  copy of p01 from 1500 ms, undetected", false},
                          Expect{"golden-image", "clone  copy of p00 from 1000 ms, new incarnation 05000000/1", false}}) {
    INFO(e.name);
    auto sc = parse_scenario_file(kDir + "/" + e.name + ".toml");
    REQUIRE(sc.ok());
    const SeedResult r = run_seed(*sc);
    for (const Violation& v : r.violations) FAIL_CHECK(v.kind << " " << v.detail);
    CHECK(r.converged);
    CHECK(r.stats.restores + r.stats.clones == 1);
    CHECK((r.stats.ops_forgotten > 0) == e.forgets);
    const std::string text = timeline_text(r);
    INFO(text);
    const auto fault = text.find(e.fault);
    REQUIRE(fault != std::string::npos);
    // After the restart the peer moves to a newer incarnation than it came back with (a peer's
    // hello names a counter of its replica beyond what the copy holds).
    const auto restart = text.find(" restart", fault);
    REQUIRE(restart != std::string::npos);
    CHECK(text.find(" incarnation ", restart) != std::string::npos);
    CHECK(timeline_svg(r, sc->plan->name).find("#93c") != std::string::npos);  // drawn as a restore
  }
}

#include "sim/scenario_file.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "common/toml_report.hpp"

namespace shoal::sim {

namespace {

// The position of `node` as "FILE:LINE".
std::string where(const std::string& path, const toml::node* node) {
  if (node == nullptr || node->source().begin.line == 0) return path;
  return path + ":" + std::to_string(node->source().begin.line);
}

Status bad(const std::string& path, const toml::node* node, std::string_view key, std::string what) {
  return Status(Code::kInvalidArgument, where(path, node) + ": key " + std::string(key) + ": " + what);
}

// The value of `node` as written, for error messages.
std::string shown(const toml::node& node) { return toml_report::echo(node); }

// Rejects keys of `table` outside `allowed` (a misspelt key must not be silently ignored).
Status only_keys(const std::string& path, const toml::table& table, std::string_view where_name,
                 std::initializer_list<std::string_view> allowed) {
  for (const auto& [k, v] : table) {
    bool ok = false;
    for (std::string_view a : allowed) ok = ok || k.str() == a;
    if (!ok) {
      const std::vector<std::string_view> names(allowed);
      const std::string_view hint = toml_report::closest(k.str(), names);
      return bad(path, &v, std::string(where_name) + std::string(k.str()),
                 hint.empty() ? "unknown key (allowed: " + toml_report::join(names, ", ") + ")"
                              : "unknown key (did you mean " + std::string(where_name) + std::string(hint) + "?)");
    }
  }
  return {};
}

// A whole number in [lo, hi].
Result<std::int64_t> integer(const std::string& path, const toml::node& node, std::string_view key, std::int64_t lo,
                             std::int64_t hi) {
  const auto* v = node.as_integer();
  if (v == nullptr) return bad(path, &node, key, "expected a whole number, got " + shown(node));
  if (v->get() < lo || v->get() > hi) {
    return bad(path, &node, key, "must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + shown(node));
  }
  return v->get();
}

// Seconds (integer or float) in [lo, hi], as a Duration.
Result<Duration> seconds(const std::string& path, const toml::node& node, std::string_view key, double lo, double hi) {
  double x = 0;
  if (const auto* i = node.as_integer()) {
    x = static_cast<double>(i->get());
  } else if (const auto* f = node.as_floating_point()) {
    x = f->get();
  } else {
    return bad(path, &node, key, "expected seconds (a number), got " + shown(node));
  }
  if (!std::isfinite(x) || x < lo || x > hi) {
    std::ostringstream range;
    range << lo << ".." << hi;
    return bad(path, &node, key, "must be in " + range.str() + " s, got " + shown(node));
  }
  return Duration::nanos(static_cast<std::int64_t>(std::llround(x * 1e9)));
}

}  // namespace

Result<Scenario> parse_scenario_text(std::string_view text, const std::string& path) {
  toml::table doc;
  try {
    doc = toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& e) {
    return Status(Detail::kMalformed, path + ":" + std::to_string(e.source().begin.line) +
                                          ": TOML syntax error: " + std::string(e.description()));
  }
  SHOAL_RETURN_IF_ERROR(only_keys(path, doc, "",
                                  {"name", "seed", "peers", "sites", "topology", "repair", "random_faults",
                                   "hostile_own_context", "sink", "workload", "fault"}));
  Scenario sc;
  auto plan = std::make_shared<Plan>();
  if (const auto* n = doc.get("name")) {
    if (!n->is_string()) return bad(path, n, "name", "expected a string, got " + shown(*n));
    plan->name = n->as_string()->get();
  }
  if (const auto* n = doc.get("seed")) {
    SHOAL_ASSIGN_OR_RETURN(auto v, integer(path, *n, "seed", 0, INT64_MAX));
    sc.seed = static_cast<std::uint64_t>(v);
  }
  const auto* peers_node = doc.get("peers");
  if (peers_node == nullptr) return bad(path, nullptr, "peers", "required (the number of peers, 2.." + std::to_string(kScenarioMaxPeers) + ")");
  SHOAL_ASSIGN_OR_RETURN(const std::int64_t peers, integer(path, *peers_node, "peers", 2, kScenarioMaxPeers));
  sc.peers = static_cast<std::uint32_t>(peers);
  std::int64_t sites = 1;
  if (const auto* n = doc.get("sites")) {
    SHOAL_ASSIGN_OR_RETURN(sites, integer(path, *n, "sites", 1, std::min<std::int64_t>(peers, 16)));
  }
  sc.sites = static_cast<std::uint32_t>(sites);
  if (const auto* n = doc.get("topology")) {
    const auto* s = n->as_string();
    const std::string t = s == nullptr ? std::string() : s->get();
    if (t == "full") {
      plan->topology = 0;
    } else if (t == "chain") {
      plan->topology = 1;
    } else if (t == "star") {
      plan->topology = 2;
    } else {
      return bad(path, n, "topology", "expected \"full\", \"chain\" or \"star\", got " + shown(*n));
    }
    if (sites < 2 && t != "full") return bad(path, n, "topology", "a " + t + " of sites needs sites >= 2, got sites = " + std::to_string(sites));
  }
  for (const char* key : {"repair", "random_faults", "hostile_own_context", "sink"}) {
    if (const auto* n = doc.get(key)) {
      if (!n->is_boolean()) return bad(path, n, key, "expected true or false, got " + shown(*n));
      const bool v = n->as_boolean()->get();
      if (std::string_view(key) == "repair") sc.repair = v;
      if (std::string_view(key) == "random_faults") sc.faults = v;
      if (std::string_view(key) == "hostile_own_context") sc.hostile_own_context = v;
      if (std::string_view(key) == "sink") sc.sink = v;
    }
  }
  if (!doc.get("random_faults")) sc.faults = false;  // a scenario's faults are its schedule unless asked
  if (const auto* n = doc.get("workload")) {
    const auto* w = n->as_table();
    if (w == nullptr) return bad(path, n, "workload", "expected a table [workload]");
    SHOAL_RETURN_IF_ERROR(only_keys(path, *w, "workload.", {"seconds", "op_mean_ms"}));
    if (const auto* d = w->get("seconds")) {
      SHOAL_ASSIGN_OR_RETURN(plan->chaos, seconds(path, *d, "workload.seconds", 0.1, static_cast<double>(kScenarioMaxSeconds)));
    }
    if (const auto* d = w->get("op_mean_ms")) {
      SHOAL_ASSIGN_OR_RETURN(const std::int64_t ms, integer(path, *d, "workload.op_mean_ms", 1, 60'000));
      plan->op_mean = Duration::millis(ms);
    }
  }
  if (const auto* n = doc.get("fault")) {
    const auto* arr = n->as_array();
    if (arr == nullptr || !arr->is_array_of_tables()) return bad(path, n, "fault", "expected [[fault]] tables");
    if (arr->size() > kScenarioMaxFaults) {
      return bad(path, n, "fault", "at most " + std::to_string(kScenarioMaxFaults) + " faults, got " + std::to_string(arr->size()));
    }
    for (const auto& item : *arr) {
      const auto& f = *item.as_table();
      SHOAL_RETURN_IF_ERROR(only_keys(path, f, "fault.", {"kind", "at_s", "for_s", "peers", "copy_at_s", "source"}));
      PlannedFault pf;
      const auto* kind = f.get("kind");
      const std::string k = kind != nullptr && kind->is_string() ? kind->as_string()->get() : std::string();
      if (k == "cut") {
        pf.kind = PlannedFault::Kind::kCut;
      } else if (k == "crash") {
        pf.kind = PlannedFault::Kind::kCrash;
      } else if (k == "restore" || k == "rollback") {
        pf.kind = PlannedFault::Kind::kRestore;
        pf.detected = k == "restore";
      } else if (k == "clone") {
        pf.kind = PlannedFault::Kind::kClone;
        pf.detected = true;
      } else {
        return bad(path, kind != nullptr ? kind : &item, "fault.kind",
                   "expected \"cut\", \"crash\", \"restore\", \"rollback\" or \"clone\", got " +
                       (kind != nullptr ? shown(*kind) : std::string("nothing")));
      }
      const bool copies = pf.kind == PlannedFault::Kind::kRestore || pf.kind == PlannedFault::Kind::kClone;
      const auto* copy_at = f.get("copy_at_s");
      const auto* source = f.get("source");
      if (!copies && copy_at != nullptr) return bad(path, copy_at, "fault.copy_at_s", "only a restore, rollback or clone takes a copy, got kind " + shown(*kind));
      if (pf.kind != PlannedFault::Kind::kClone && source != nullptr) return bad(path, source, "fault.source", "only a clone has a source, got kind " + shown(*kind));
      if (copies && copy_at == nullptr) return bad(path, &item, "fault.copy_at_s", "required (when the copy was taken, seconds from the start)");
      if (pf.kind == PlannedFault::Kind::kClone && source == nullptr) return bad(path, &item, "fault.source", "required (the peer whose store is copied)");
      if (copy_at != nullptr) {
        SHOAL_ASSIGN_OR_RETURN(pf.copy_at, seconds(path, *copy_at, "fault.copy_at_s", 0.0, static_cast<double>(kScenarioMaxSeconds)));
      }
      if (source != nullptr) {
        SHOAL_ASSIGN_OR_RETURN(const std::int64_t v, integer(path, *source, "fault.source", 0, peers - 1));
        pf.source = static_cast<std::uint32_t>(v);
      }
      const auto* at = f.get("at_s");
      const auto* len = f.get("for_s");
      const auto* ps = f.get("peers");
      if (at == nullptr) return bad(path, &item, "fault.at_s", "required (seconds from the start)");
      if (len == nullptr) return bad(path, &item, "fault.for_s", "required (how long, in seconds)");
      if (ps == nullptr) return bad(path, &item, "fault.peers", "required (a list of peer numbers)");
      SHOAL_ASSIGN_OR_RETURN(pf.at, seconds(path, *at, "fault.at_s", 0.0, static_cast<double>(kScenarioMaxSeconds)));
      SHOAL_ASSIGN_OR_RETURN(pf.length, seconds(path, *len, "fault.for_s", 0.001, static_cast<double>(kScenarioMaxSeconds)));
      const auto* list = ps->as_array();
      if (list == nullptr || list->empty()) return bad(path, ps, "fault.peers", "expected a non-empty list of peer numbers, got " + shown(*ps));
      std::set<std::uint32_t> seen;
      for (const auto& p : *list) {
        SHOAL_ASSIGN_OR_RETURN(const std::int64_t v, integer(path, p, "fault.peers", 0, peers - 1));
        if (!seen.insert(static_cast<std::uint32_t>(v)).second) return bad(path, &p, "fault.peers", "peer " + std::to_string(v) + " named twice");
        pf.peers.push_back(static_cast<std::uint32_t>(v));
      }
      if (pf.kind == PlannedFault::Kind::kCut && pf.peers.size() >= static_cast<std::size_t>(peers)) {
        return bad(path, ps, "fault.peers", "a cut needs peers on both sides; it names all " + std::to_string(peers));
      }
      if (pf.at >= plan->chaos) {
        return bad(path, at, "fault.at_s", "starts at or after the workload ends (workload.seconds), got " + shown(*at));
      }
      if (copies && !(pf.copy_at < pf.at)) {
        return bad(path, copy_at, "fault.copy_at_s", "the copy must be taken before the fault (at_s), got " + shown(*copy_at));
      }
      if (pf.kind == PlannedFault::Kind::kClone &&
          std::find(pf.peers.begin(), pf.peers.end(), pf.source) != pf.peers.end()) {
        return bad(path, source, "fault.source", "a clone's source cannot be one of its peers (that is a restore), got " + shown(*source));
      }
      plan->faults.push_back(std::move(pf));
    }
  }
  plan->path = path;
  sc.plan = std::move(plan);
  return sc;
}

Result<Scenario> parse_scenario_file(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(const std::string text, toml_report::read_file(path, "scenario file", 1'000'000));
  return parse_scenario_text(text, path);
}

}  // namespace shoal::sim

// sim/main.cpp: shoal-sim, the deterministic simulator's command line (docs/sim.md).
//
// Runs seeds [--seed, --seed + --seeds) (or the scenarios of a regression list), prints one
// summary line per seed, the violations and the command reproducing each failing seed, and ends
// with exactly one line:
//   sim seeds=<N> violations=<V> converged=<C> max_converge_ms=<T> trace=<16 hex digits>
// Exit status: 0 when no violation occurred, 1 otherwise, 2 for a usage error.
// Thread rules: seeds may run on --jobs threads; each seed is independent and its output is
// printed in seed order, so output and trace hash do not depend on --jobs.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/hash.hpp"
#include "common/whole_number.hpp"
#include "sim/measure.hpp"
#include "sim/scenario_file.hpp"
#include "sim/simulation.hpp"
#include "sim/timeline.hpp"

namespace {

using shoal::sim::Scenario;
using shoal::sim::SeedResult;

struct Flags {
  std::uint64_t seed = 1;
  std::uint64_t seeds = 1;
  std::uint32_t peers = 0;
  std::uint32_t sites = 0;
  bool no_faults = false;
  bool no_repair = false;
  bool hostile_own_context = false;
  bool rollbacks = false;
  bool sink = false;
  std::uint32_t large = 0;
  std::uint32_t large_dim = 128;
  std::string mutation = "none";
  bool trace = false;
  std::int64_t max_converge_s = 120;
};

// The limits of the numeric flags. The simulation itself clamped --peers to 1..64 and --sites to
// the peers silently, --seeds -1 asked for 2^64 scenarios (std::bad_alloc), --max-converge-s -5
// judged every seed not converged and --jobs 100000 died starting threads: each flag now names
// its range, and a value outside it is a usage error (exit 2).
constexpr std::uint64_t kMaxSeeds = 1'000'000;
constexpr std::uint32_t kMaxPeers = 64;
constexpr std::int64_t kMaxConvergeS = 366LL * 24 * 3600;
constexpr unsigned kMaxJobs = 256;
constexpr std::uint32_t kMinLargeDim = 4, kMaxLargeDim = 1024;

// Decimal digits only (a sign is refused: CLI11 would read "-1" into an unsigned flag as its
// largest value), within [lo, hi].
template <typename T>
CLI::Validator whole_number(T lo, T hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        if (shoal::parse_whole_number<T>(text, lo, hi)) return {};
        return shoal::whole_number_refusal<T>(lo, hi, text.substr(0, 40));
      },
      "");
}

// Registers the scenario flags (shared by the command line and regression-list lines).
void add_scenario_flags(CLI::App& app, Flags& f) {
  app.add_option("--seed", f.seed, "first seed")
      ->check(whole_number<std::uint64_t>(0, std::numeric_limits<std::uint64_t>::max()));
  app.add_option("--seeds", f.seeds, "number of seeds (0..1000000)")->check(whole_number<std::uint64_t>(0, kMaxSeeds));
  app.add_option("--peers", f.peers, "peers, 1..64 (default: drawn from the seed, 2..16)")
      ->check(whole_number<std::uint32_t>(1, kMaxPeers));
  app.add_option("--sites", f.sites, "sites, 1..peers (default: drawn from the seed, 1..4)")
      ->check(whole_number<std::uint32_t>(1, kMaxPeers));
  app.add_flag("--no-faults", f.no_faults, "no network faults, crashes, clock jumps or full disks");
  app.add_flag("--no-repair", f.no_repair, "disable the digest path (and faults that need it)");
  app.add_flag("--hostile-own-context", f.hostile_own_context,
               "the hostile peer also sends contexts claiming dots beyond their owner's counter (the receiver's own; with repair, the sender's own)");
  app.add_flag("--rollbacks", f.rollbacks,
               "drawn restores are undetected rollbacks (the copy keeps its incarnation; only a peer's hello reveals it)");
  app.add_flag("--sink", f.sink,
               "a simulated cold-tier sink with outages of up to 7 simulated days; collection c goes to it, quota 40 entries (docs/sim.md)");
  app.add_option("--mutation", f.mutation, "none|lww|lazy-counter|trim-before-ack|early-context-merge|store-flip|tight-decode|tiny-outbox|skew-beyond-bound|stranger|wipe-on-restart|hlc-ignore-remote|winner-by-dot|drop-keeps-records|recreate-keeps-hidden|catalogue-not-relayed|nosync-store|torn-commit|lose-deltas|hostile-split|read-elsewhere|keep-own-claims|lax-decode|search-wrong-collection|lenient-dots|wrong-metric|read-only-disk|unreadable-after-ack|sink-ack-unapplied|sink-quota-off|cold-wrong-metric|sink-store-unreachable|sink-acks-dropped|sink-removed-dropped|stale-incarnation|truncated-request|restore-disk-full|full-after-heal|evict-unacked|stub-wrong-digest|refill-unchecked|merge-local-only|merge-unjudged");
  app.add_option("--max-converge-s", f.max_converge_s, "simulated seconds allowed to converge after heal (1..31622400)")
      ->check(whole_number<std::int64_t>(1, kMaxConvergeS));
  app.add_option("--large", f.large, "large seeds: N records of clustered vectors, the HNSW graph built (docs/sim.md)")
      ->check(whole_number<std::uint32_t>(0, std::numeric_limits<std::uint32_t>::max()));
  app.add_option("--large-dim", f.large_dim, "with --large: the vectors' dimension, 4..1024 (default 128)")
      ->check(whole_number<std::uint32_t>(kMinLargeDim, kMaxLargeDim));
}

bool to_scenario(const Flags& f, Scenario& sc, std::string& error) {
  auto m = shoal::sim::parse_mutation(f.mutation);
  if (!m.ok()) {
    error = m.status().to_string();
    return false;
  }
  if (f.peers != 0 && f.sites > f.peers) {
    error = "--sites " + std::to_string(f.sites) + " must be at most --peers " + std::to_string(f.peers);
    return false;
  }
  sc.seed = f.seed;
  if (f.peers != 0) sc.peers = f.peers;
  if (f.sites != 0) sc.sites = f.sites;
  sc.faults = !f.no_faults;
  sc.repair = !f.no_repair;
  sc.hostile_own_context = f.hostile_own_context;
  sc.rollbacks = f.rollbacks;
  sc.sink = f.sink;
  sc.large_records = f.large;
  sc.large_dim = f.large_dim;
  sc.mutation = *m;
  sc.max_converge = shoal::Duration::seconds(f.max_converge_s);
  return true;
}

// Runs `scenarios` on `jobs` threads; results in input order.
std::vector<SeedResult> run_all(const std::vector<Scenario>& scenarios, unsigned jobs) {
  std::vector<SeedResult> results(scenarios.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&]() {
    for (std::size_t i = next++; i < scenarios.size(); i = next++) results[i] = shoal::sim::run_seed(scenarios[i]);
  };
  std::vector<std::thread> threads;
  for (unsigned j = 1; j < jobs; ++j) threads.emplace_back(worker);
  worker();
  for (auto& t : threads) t.join();
  return results;
}

struct Totals {
  std::uint64_t seeds = 0;
  std::uint64_t violations = 0;
  std::uint64_t converged = 0;
  std::int64_t max_converge_ms = 0;
  shoal::Hasher64 hasher;
};

void print_result(const Scenario& sc, const SeedResult& r, Totals& t) {
  std::printf("seed=%" PRIu64 " peers=%u sites=%u converged=%s converge_ms=%lld violations=%zu "
              "acked=%" PRIu64 "/%" PRIu64 " cat_ops=%" PRIu64 " hops=%u bad_frames=%" PRIu64 "/%" PRIu64 "/%" PRIu64
              " causal_pairs=%" PRIu64 " store_crashes=%" PRIu64 "/%" PRIu64 "/%" PRIu64 " probe=%lld/%lldms"
              " restores=%" PRIu64 "/%" PRIu64 "/%" PRIu64 " msgs=%" PRIu64 " events=%" PRIu64 " trace=%016" PRIx64 "\n",
              r.seed, r.peers, r.sites, r.converged ? "yes" : "no", static_cast<long long>(r.converge_ms),
              r.violations.size(), r.stats.acked_upserts, r.stats.acked_removes, r.stats.catalogue_ops, r.stats.hops,
              r.stats.frames_corrupted, r.stats.frames_rejected, r.stats.frames_forged, r.stats.causal_pairs,
              r.stats.crashes_in_op, r.stats.commits_landed, r.stats.landed_client_ops,
              static_cast<long long>(r.stats.probe_max_ms), static_cast<long long>(r.stats.probe_bound_ms),
              r.stats.restores, r.stats.clones, r.stats.ops_forgotten, r.stats.messages_sent, r.stats.events, r.trace_hash);
  if (sc.sink) {
    std::printf("  sink: uploads=%" PRIu64 " acks=%" PRIu64 " lost=%" PRIu64 " quota_refusals=%" PRIu64
                " longest_outage_s=%lld records=%" PRIu64 "\n",
                r.stats.sink_uploads, r.stats.sink_acks, r.stats.sink_lost, r.stats.quota_refusals,
                static_cast<long long>(r.stats.sink_outage_ms / 1000), r.stats.sink_records);
    std::printf("  evict: budget=%" PRIu64 "B hot_window_ms=%lld evicted=%" PRIu64 " stubs_at_end=%" PRIu64
                " refills=%" PRIu64 "/%" PRIu64 "/%" PRIu64 " cold_searches=%" PRIu64 " cold_hits=%" PRIu64 "\n",
                r.stats.evict_budget_bytes, static_cast<long long>(r.stats.hot_window_ms), r.stats.evicted,
                r.stats.stubs_at_end, r.stats.refills, r.stats.cold_unavailable, r.stats.refills_refused,
                r.stats.cold_searches, r.stats.cold_hits);
    if (r.stats.replacements > 0) {
      std::printf("  replace: devices=%" PRIu64 " bootstraps=%" PRIu64 "/%" PRIu64 " pages=%" PRIu64 " records=%" PRIu64
                  " created=%" PRIu64 " forgotten_ops=%" PRIu64 "\n",
                  r.stats.replacements, r.stats.bootstraps, r.stats.boot_attempts, r.stats.boot_pages,
                  r.stats.boot_records, r.stats.boot_created, r.stats.ops_forgotten_replace);
    }
  }
  if (!r.violations.empty()) {
    std::printf("  scenario: %s\n", r.scenario.c_str());
    for (const auto& v : r.violations) std::printf("  violation %s: %s\n", v.kind.c_str(), v.detail.c_str());
    std::printf("  reproduce: %s\n", shoal::sim::reproduce_command(sc).c_str());
  }
  ++t.seeds;
  t.violations += r.violations.size();
  if (r.converged) {
    ++t.converged;
    t.max_converge_ms = std::max(t.max_converge_ms, static_cast<std::int64_t>(r.converge_ms));
  }
  const std::uint64_t h = r.trace_hash;
  t.hasher.update(&h, sizeof h);
}

int report(const Flags& f, std::uint64_t report_records, unsigned jobs) {
  (void)jobs;
  const std::uint32_t per_point = static_cast<std::uint32_t>(f.seeds < 5 ? 20 : f.seeds);
  std::printf("== convergence after heal vs peers (%u faulty seeds each from seed %" PRIu64 ") ==\n", per_point, f.seed);
  for (const auto& p : shoal::sim::measure_convergence(f.seed, per_point, {2, 4, 8, 16})) {
    std::printf("peers=%-2u converged=%u/%u median_ms=%lld p90_ms=%lld max_ms=%lld\n", p.peers, p.converged,
                p.seeds, static_cast<long long>(p.median_ms), static_cast<long long>(p.p90_ms),
                static_cast<long long>(p.max_ms));
  }
  std::fflush(stdout);
  for (const bool repair : {true, false}) {
    std::printf("== convergence after heal vs hops (chains of sites, 2 peers each; %u faulty seeds each; repair %s) ==\n",
                per_point, repair ? "on" : "off");
    for (const auto& p : shoal::sim::measure_convergence_hops(f.seed, per_point, {1, 2, 3, 5, 7}, repair)) {
      std::printf("hops=%u peers=%-2u converged=%u/%u median_ms=%lld p90_ms=%lld max_ms=%lld\n", p.hops, p.peers,
                  p.converged, p.seeds, static_cast<long long>(p.median_ms), static_cast<long long>(p.p90_ms),
                  static_cast<long long>(p.max_ms));
    }
    std::fflush(stdout);
  }
  std::printf("== delta path: bytes per delivered change (2 hot peers, 500 upserts) ==\n");
  for (std::uint32_t dim : {8u, 128u, 768u}) {
    auto c = shoal::sim::measure_delta_path(dim, 500);
    if (!c.ok()) {
      std::printf("dim=%u error: %s\n", dim, c.status().to_string().c_str());
      continue;
    }
    std::printf("dim=%-3u payload_B=%.1f delta_batch_B=%.1f (%.3fx) all_sync_B=%.1f (%.3fx)\n", dim,
                c->payload_bytes, c->delta_batch_bytes, c->delta_batch_bytes / c->payload_bytes,
                c->all_sync_bytes, c->all_sync_bytes / c->payload_bytes);
  }
  std::fflush(stdout);
  std::printf("== digest path: repair of a 1%%-divergent collection (2 peers, dim 4) ==\n");
  std::vector<std::uint64_t> sizes{10'000};
  if (report_records != 10'000) sizes.push_back(report_records);
  for (std::uint64_t n : sizes) {
    auto c = shoal::sim::measure_repair(n, 0.01);
    if (!c.ok()) {
      std::printf("records=%" PRIu64 " error: %s\n", n, c.status().to_string().c_str());
      continue;
    }
    std::printf("records=%" PRIu64 " diverged=%" PRIu64 " full_state_B=%" PRIu64 " initial_sync_B=%" PRIu64
                " after_reconnect: total_B=%" PRIu64 " (%.2f%% of full state) repair_B=%" PRIu64 " delta_B=%" PRIu64
                " hello_B=%" PRIu64 " repair_sessions=%" PRIu64 " converged=%s wall_s=%.1f\n",
                c->records, c->diverged, c->full_state_bytes, c->initial_sync_bytes, c->total_bytes,
                100.0 * static_cast<double>(c->total_bytes) / static_cast<double>(c->full_state_bytes),
                c->repair_bytes, c->delta_bytes, c->hello_bytes, c->repair_sessions, c->converged ? "yes" : "no",
                c->build_seconds);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shoal-sim: deterministic simulation of a Shoal mesh (docs/sim.md)"};
  Flags f;
  add_scenario_flags(app, f);
  unsigned jobs = 1;
  std::string regressions;
  bool do_report = false;
  std::uint64_t report_records = 100'000;
  app.add_flag("--trace", f.trace, "print every trace line (use with --seeds 1)");
  app.add_option("--jobs", jobs, "threads running seeds in parallel, 0..256 (0: 1; output does not change)")
      ->check(whole_number<unsigned>(0, kMaxJobs));
  app.add_option("--regressions", regressions,
                 "run every scenario of this regression list twice and compare trace hashes");
  app.add_flag("--report", do_report, "print the sync measurements instead of running seeds");
  app.add_option("--report-records", report_records, "collection size for the repair measurement");
  std::string scenario_file, timeline_file, svg_file;
  app.add_option("--scenario", scenario_file,
                 "run the TOML scenario FILE (mesh, workload, fault schedule; docs/sim.md) and print its timeline");
  app.add_option("--timeline", timeline_file, "with --scenario: write the timeline text to this file instead of stdout");
  app.add_option("--svg", svg_file, "with --scenario: write the timeline as an SVG picture to this file");
  // CLI11 reports errors by exception; this is the boundary where one becomes a message and the
  // documented exit code (2 for a usage error; --help exits 0).
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (jobs == 0) jobs = 1;
  if (f.trace) jobs = 1;

  if (do_report) return report(f, report_records, jobs);

  std::vector<Scenario> scenarios;
  bool twice = false;
  if (!regressions.empty()) {
    std::ifstream in(regressions);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", regressions.c_str());
      return 2;
    }
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      line = line.substr(0, line.find('#'));
      std::istringstream words(line);
      std::vector<std::string> args;
      for (std::string w; words >> w;) args.push_back(w);
      if (args.empty()) continue;
      if (args[0] == "shoal-sim") args.erase(args.begin());
      std::reverse(args.begin(), args.end());  // CLI11 parses a reversed vector
      CLI::App line_app;
      Flags lf;
      add_scenario_flags(line_app, lf);
      // CLI11 reports errors by exception; this is the boundary where it becomes a message.
      try {
        line_app.parse(args);
      } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "%s:%d: %s\n", regressions.c_str(), lineno, e.what());
        return 2;
      }
      Scenario sc;
      std::string error;
      if (!to_scenario(lf, sc, error)) {
        std::fprintf(stderr, "%s:%d: %s\n", regressions.c_str(), lineno, error.c_str());
        return 2;
      }
      for (std::uint64_t s = 0; s < lf.seeds; ++s) {
        Scenario one = sc;
        one.seed = lf.seed + s;
        scenarios.push_back(one);
      }
    }
    twice = true;
  } else if (!scenario_file.empty()) {
    auto parsed = shoal::sim::parse_scenario_file(scenario_file);
    if (!parsed.ok()) {
      std::fprintf(stderr, "%s\n", parsed.status().to_string().c_str());
      return 2;
    }
    Scenario sc = *parsed;
    auto m = shoal::sim::parse_mutation(f.mutation);
    if (!m.ok()) {
      std::fprintf(stderr, "%s\n", m.status().to_string().c_str());
      return 2;
    }
    sc.mutation = *m;
    if (app.count("--seed") > 0) sc.seed = f.seed;
    if (f.hostile_own_context) sc.hostile_own_context = true;
    if (f.rollbacks) sc.rollbacks = true;
    if (f.no_repair) sc.repair = false;
    if (f.sink) sc.sink = true;
    sc.max_converge = shoal::Duration::seconds(f.max_converge_s);
    if (f.trace) sc.trace_out = stdout;
    for (std::uint64_t s = 0; s < f.seeds; ++s) {
      Scenario one = sc;
      one.seed = sc.seed + s;
      scenarios.push_back(one);
    }
  } else {
    Scenario sc;
    std::string error;
    if (!to_scenario(f, sc, error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 2;
    }
    if (f.trace) sc.trace_out = stdout;
    for (std::uint64_t s = 0; s < f.seeds; ++s) {
      Scenario one = sc;
      one.seed = f.seed + s;
      scenarios.push_back(one);
    }
  }

  Totals totals;
  const std::vector<SeedResult> results = run_all(scenarios, jobs);
  std::vector<SeedResult> again;
  if (twice) again = run_all(scenarios, jobs);
  for (std::size_t i = 0; i < scenarios.size(); ++i) {
    print_result(scenarios[i], results[i], totals);
    if (twice && again[i].trace_hash != results[i].trace_hash) {
      ++totals.violations;
      std::printf("  violation nondeterministic: trace %016" PRIx64 " then %016" PRIx64 "\n  reproduce: %s\n",
                  results[i].trace_hash, again[i].trace_hash, shoal::sim::reproduce_command(scenarios[i]).c_str());
    }
  }
  if (!scenario_file.empty() && !results.empty()) {
    // The first seed's timeline (docs/sim.md, "Scenario files").
    const std::string text = shoal::sim::timeline_text(results[0]);
    if (timeline_file.empty()) {
      std::printf("timeline (seed %" PRIu64 "):\n%s", results[0].seed, text.c_str());
    } else if (!(std::ofstream(timeline_file) << text)) {
      std::fprintf(stderr, "cannot write %s\n", timeline_file.c_str());
      return 2;
    }
    const std::string title = scenarios[0].plan->name.empty() ? scenario_file : scenarios[0].plan->name;
    if (!svg_file.empty() && !(std::ofstream(svg_file) << shoal::sim::timeline_svg(results[0], title))) {
      std::fprintf(stderr, "cannot write %s\n", svg_file.c_str());
      return 2;
    }
  }
  std::printf("sim seeds=%" PRIu64 " violations=%" PRIu64 " converged=%" PRIu64 " max_converge_ms=%lld trace=%016" PRIx64 "\n",
              totals.seeds, totals.violations, totals.converged, static_cast<long long>(totals.max_converge_ms),
              totals.hasher.digest());
  return totals.violations == 0 ? 0 : 1;
}

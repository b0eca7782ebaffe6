// tests/daemon/metrics_test.cpp: proves that MetricsRegistry (node/daemon/metrics.hpp) writes
// valid Prometheus text (format 0.0.4) and that each value of a DaemonSnapshot reaches the right
// series. How: every line of serialize() is matched against the exposition grammar (comments,
// samples with escaped label values), every sample must follow the HELP and TYPE of its family,
// and the samples are parsed into (name, labels) -> value and compared with the snapshot's
// numbers. Counters are checked across updates (growth added, a decrease taken as a reset), series
// removal when a peer leaves, histogram buckets, and observations from several threads at once.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "node/daemon/metrics.hpp"
#include "snapshot_fixture.hpp"

using namespace shoal;
using daemon::DaemonSnapshot;
using daemon::MetricsRegistry;

namespace {

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family -> type
  std::map<std::string, std::string> help;   // family -> help text
};

// The family a sample belongs to: histogram samples carry a suffix.
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      const std::string base = name.substr(0, name.size() - s.size());
      auto it = types.find(base);
      if (it != types.end() && it->second == "histogram") return base;
    }
  }
  return name;
}

// Parses `text`, failing the test on any line outside the 0.0.4 grammar or any sample before
// its family's HELP and TYPE.
Exposition parse(const std::string& text) {
  static const std::regex kHelp(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$)");
  static const std::regex kType(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? )"
      R"((NaN|[+-]?Inf|[+-]?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?)(?: -?[0-9]+)?$)");
  static const std::regex kLabel(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)")re");
  Exposition e;
  std::istringstream in(text);
  std::string line;
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  while (std::getline(in, line)) {
    INFO("line: " << line);
    std::smatch m;
    if (std::regex_match(line, m, kHelp)) {
      CHECK(e.help.count(m[1]) == 0);
      CHECK(!m[2].str().empty());
      e.help[m[1]] = m[2];
    } else if (std::regex_match(line, m, kType)) {
      CHECK(e.types.count(m[1]) == 0);
      e.types[m[1]] = m[2];
    } else if (std::regex_match(line, m, kSample)) {
      Sample s;
      s.name = m[1];
      const std::string labels = m[3];
      for (auto it = std::sregex_iterator(labels.begin(), labels.end(), kLabel); it != std::sregex_iterator(); ++it) {
        std::string raw = (*it)[2], value;
        for (std::size_t i = 0; i < raw.size(); ++i) {
          if (raw[i] == '\\' && i + 1 < raw.size()) {
            ++i;
            value += raw[i] == 'n' ? '\n' : raw[i];
          } else {
            value += raw[i];
          }
        }
        s.labels[(*it)[1]] = value;
      }
      const std::string v = m[4];
      s.value = v == "NaN" ? NAN : (v == "+Inf" || v == "Inf") ? INFINITY : v == "-Inf" ? -INFINITY : std::stod(v);
      const std::string family = family_of(s.name, e.types);
      CHECK(e.types.count(family) == 1);
      CHECK(e.help.count(family) == 1);
      CHECK(family.rfind("shoal_", 0) == 0);
      e.samples.push_back(std::move(s));
    } else {
      FAIL("not a line of the Prometheus text format 0.0.4");
    }
  }
  return e;
}

// The value of the one sample with this name and exactly these labels; NaN when absent.
double value(const Exposition& e, const std::string& name, const Labels& labels = {}) {
  int found = 0;
  double v = NAN;
  for (const Sample& s : e.samples) {
    if (s.name == name && s.labels == labels) {
      ++found;
      v = s.value;
    }
  }
  INFO(name);
  CHECK(found <= 1);
  return v;
}

bool has_series(const Exposition& e, const std::string& name, const std::string& peer) {
  for (const Sample& s : e.samples) {
    auto it = s.labels.find("peer");
    if (s.name == name && it != s.labels.end() && it->second == peer) return true;
  }
  return false;
}

// A histogram's cumulative bucket counts by upper bound (+Inf included).
std::map<double, double> buckets_of(const Exposition& e, const std::string& family) {
  std::map<double, double> out;
  for (const Sample& s : e.samples) {
    if (s.name != family + "_bucket") continue;
    const std::string le = s.labels.at("le");
    out[le == "+Inf" ? INFINITY : std::stod(le)] = s.value;
  }
  return out;
}

Labels peer(const std::string& device, const std::string& tier) { return {{"peer", device}, {"tier", tier}}; }

}  // namespace

TEST_CASE("every line of the metrics text follows the exposition format, with HELP and TYPE per family",
          "[daemon][metrics]") {
  MetricsRegistry m;
  m.observe_search(0.0003);
  m.observe_write(0.002);
  m.update(daemon_test::three_peer_snapshot());
  const Exposition e = parse(m.serialize());
  CHECK(e.types.at("shoal_search_duration_seconds") == "histogram");
  CHECK(e.types.at("shoal_write_duration_seconds") == "histogram");
  CHECK(e.types.at("shoal_peer_received_bytes_total") == "counter");
  CHECK(e.types.at("shoal_handshake_failures_total") == "counter");
  CHECK(e.types.at("shoal_peer_lag_entries") == "gauge");
  CHECK(e.types.at("shoal_peer_lag_seconds") == "gauge");
  CHECK(e.types.at("shoal_store_bytes") == "gauge");
  // Every family has both comments and each TYPE matches a HELP.
  for (const auto& [family, type] : e.types) CHECK(e.help.count(family) == 1);
  CHECK(e.help.size() == e.types.size());
}

TEST_CASE("a snapshot's values appear under their names with the peer and tier labels", "[daemon][metrics]") {
  MetricsRegistry m;
  m.update(daemon_test::three_peer_snapshot());
  const Exposition e = parse(m.serialize());
  const Labels kitchen = peer("gw-kitchen-7c21", "hot"), attic = peer("gw-attic-9e03", "warm"),
               garage = peer("gw-garage-b2d8", "hot");
  CHECK(value(e, "shoal_peer_up", kitchen) == 1);
  CHECK(value(e, "shoal_peer_up", attic) == 1);
  CHECK(value(e, "shoal_peer_up", garage) == 0);
  CHECK(value(e, "shoal_peer_lag_entries", attic) == 12);
  CHECK(value(e, "shoal_peer_lag_entries", garage) == 3071);
  CHECK(value(e, "shoal_peer_lag_seconds", attic) == Approx(42.0));
  CHECK(value(e, "shoal_peer_lag_seconds", kitchen) == Approx(0.3));
  CHECK(!has_series(e, "shoal_peer_lag_seconds", "gw-garage-b2d8"));  // no delta from it yet
  CHECK(value(e, "shoal_peer_last_contact_timestamp_seconds", attic) ==
        Approx((daemon_test::kTakenUnixMs - 3000) / 1000.0).epsilon(1e-12));
  CHECK(value(e, "shoal_peer_received_bytes_total", kitchen) == 48000);
  CHECK(value(e, "shoal_peer_sent_bytes_total", attic) == 9000000);
  CHECK(value(e, "shoal_peer_received_messages_total", kitchen) == 120);
  CHECK(value(e, "shoal_peer_sent_messages_total", attic) == 30);
  CHECK(value(e, "shoal_peer_info",
              {{"peer", "gw-attic-9e03"}, {"tier", "warm"}, {"replica", "5555666677778888"},
               {"remote", "127.0.0.1:7402"}, {"role", "member"}}) == 1);
  CHECK(value(e, "shoal_peers", {{"tier", "hot"}, {"state", "up"}}) == 1);
  CHECK(value(e, "shoal_peers", {{"tier", "hot"}, {"state", "partitioned"}}) == 1);
  CHECK(value(e, "shoal_peers", {{"tier", "warm"}, {"state", "up"}}) == 1);
  CHECK(value(e, "shoal_peers", {{"tier", "warm"}, {"state", "partitioned"}}) == 0);
  CHECK(value(e, "shoal_handshake_failures_total", {{"reason", "revoked"}}) == 2);
  CHECK(value(e, "shoal_handshake_failures_total", {{"reason", "timeout"}}) == 5);
  CHECK(value(e, "shoal_store_bytes") == 64.0 * 1024 * 1024);
  CHECK(value(e, "shoal_index_bytes", {{"collection", "fm"}}) == 9400000);
  CHECK(value(e, "shoal_index_records", {{"collection", "faces"}}) == 250);
  CHECK(value(e, "shoal_delta_buffer_entries") == 3100);
  CHECK(value(e, "shoal_index_backlog") == 212);
  CHECK(value(e, "shoal_write_groups_total") == 40);
  CHECK(value(e, "shoal_group_writes_total") == 290);
  CHECK(value(e, "shoal_repair_sessions_started_total") == 9);
  CHECK(value(e, "shoal_repair_sessions_completed_total") == 7);
  CHECK(value(e, "shoal_repair_sessions_abandoned_total") == 1);
  CHECK(value(e, "shoal_discovered_devices_total") == 4);
  CHECK(value(e, "shoal_warm_bytes_sent_total") == 123456);
  CHECK(value(e, "shoal_warm_budget_deferrals_total") == 3);
  CHECK(value(e, "shoal_warm_entries_withheld_total") == 17);
}

TEST_CASE("counters add the growth of a total, and a total that went down counts as a new link",
          "[daemon][metrics]") {
  MetricsRegistry m;
  DaemonSnapshot s = daemon_test::three_peer_snapshot();
  s.peers[0].bytes_in = 100;
  m.update(s);
  s.peers[0].bytes_in = 250;
  s.repair_sessions_started = 11;
  m.update(s);
  CHECK(value(parse(m.serialize()), "shoal_peer_received_bytes_total", peer("gw-kitchen-7c21", "hot")) == 250);
  // The peer reconnected: its new link has carried 40 bytes so far.
  s.peers[0].bytes_in = 40;
  m.update(s);
  m.update(s);  // the same totals again add nothing
  const Exposition e = parse(m.serialize());
  CHECK(value(e, "shoal_peer_received_bytes_total", peer("gw-kitchen-7c21", "hot")) == 290);
  CHECK(value(e, "shoal_repair_sessions_started_total") == 11);
}

TEST_CASE("a peer that leaves the snapshot or changes tier has its old series removed", "[daemon][metrics]") {
  MetricsRegistry m;
  DaemonSnapshot s = daemon_test::three_peer_snapshot();
  m.update(s);
  s.peers.erase(s.peers.begin() + 2);         // the garage peer is forgotten
  s.peers[1].tier = daemon::PeerTier::kHot;   // the attic peer is promoted
  s.collections.pop_back();
  s.handshake_failures.erase("revoked");
  m.update(s);
  const Exposition e = parse(m.serialize());
  for (const char* name : {"shoal_peer_up", "shoal_peer_lag_entries", "shoal_peer_received_bytes_total",
                           "shoal_peer_info", "shoal_peer_last_contact_timestamp_seconds"}) {
    INFO(name);
    CHECK(!has_series(e, name, "gw-garage-b2d8"));
  }
  CHECK(std::isnan(value(e, "shoal_peer_up", peer("gw-attic-9e03", "warm"))));
  CHECK(value(e, "shoal_peer_up", peer("gw-attic-9e03", "hot")) == 1);
  CHECK(std::isnan(value(e, "shoal_index_records", {{"collection", "faces"}})));
  CHECK(std::isnan(value(e, "shoal_handshake_failures_total", {{"reason", "revoked"}})));
  CHECK(value(e, "shoal_peers", {{"tier", "hot"}, {"state", "up"}}) == 2);
}

TEST_CASE("hostile peer labels stay inside their quotes", "[daemon][metrics]") {
  MetricsRegistry m;
  DaemonSnapshot s;
  daemon::PeerSnapshot p;
  p.device = "evil\"} shoal_store_bytes 1e99\n# TYPE x counter\\\xff";
  p.up = true;
  s.peers = {p};
  s.collections = {{"a\"b\nc", 1, 2}};
  m.update(s);
  const Exposition e = parse(m.serialize());  // fails on any line the label could have added
  CHECK(value(e, "shoal_store_bytes") == 0);
  CHECK(value(e, "shoal_peer_up", peer("evil\"} shoal_store_bytes 1e99\n# TYPE x counter\\\xEF\xBF\xBD", "hot")) == 1);
  CHECK(value(e, "shoal_index_records", {{"collection", "a\"b\nc"}}) == 1);
}

TEST_CASE("latency histograms put each observation in its bucket, 50 us to 1 s", "[daemon][metrics]") {
  MetricsRegistry m;
  const std::vector<double>& buckets = MetricsRegistry::latency_buckets_seconds();
  CHECK(buckets.front() == Approx(50e-6));
  CHECK(buckets.back() == 1.0);
  for (int i = 0; i < 3; ++i) m.observe_search(0.0002);
  m.observe_search(0.04);
  m.observe_search(2.0);    // above the last bucket: only +Inf
  m.observe_search(-1.0);   // ignored
  m.observe_search(NAN);    // ignored
  m.observe_write(0.00001);
  const Exposition e = parse(m.serialize());
  const std::map<double, double> search = buckets_of(e, "shoal_search_duration_seconds");
  CHECK(search.size() == buckets.size() + 1);
  CHECK(search.at(INFINITY) == 5);
  for (const auto& [le, n] : search) {
    INFO("le " << le);
    CHECK(n == (le < 0.0002 ? 0 : le < 0.04 ? 3 : le < 2.0 ? 4 : 5));
  }
  CHECK(value(e, "shoal_search_duration_seconds_count") == 5);
  CHECK(value(e, "shoal_search_duration_seconds_sum") == Approx(2.0406));
  CHECK(value(e, "shoal_write_duration_seconds_count") == 1);
  CHECK(buckets_of(e, "shoal_write_duration_seconds").begin()->second == 1);  // le 50 us
}

TEST_CASE("observations from several threads during updates and scrapes are all counted", "[daemon][metrics]") {
  MetricsRegistry m;
  constexpr int kThreads = 4, kEach = 5000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        m.observe_write(0.001);
        m.observe_search(0.0001);
      }
    });
  }
  DaemonSnapshot s = daemon_test::three_peer_snapshot();
  for (int i = 0; i < 50; ++i) {
    s.peers[0].bytes_in += 10;
    m.update(s);
    (void)m.serialize();
  }
  for (auto& t : threads) t.join();
  const Exposition e = parse(m.serialize());
  CHECK(value(e, "shoal_write_duration_seconds_count") == kThreads * kEach);
  CHECK(value(e, "shoal_search_duration_seconds_count") == kThreads * kEach);
  CHECK(value(e, "shoal_peer_received_bytes_total", peer("gw-kitchen-7c21", "hot")) == 48000 + 500);
}

// tests/daemon/config_test.cpp: proves that shoald's configuration file (node/daemon/config.hpp)
// reads every key into the right member, refuses every kind of mistake with a status naming the
// file, the line and column, the key and the value, classifies what a SIGHUP may apply, and that
// the documentation cannot drift from the code. How: texts parsed under a fixed path
// (/etc/shoal/shoald.toml) and exact or substring checks of the messages; one case per kind of
// error; plan_reload driven by one mutation per key of config_keys(), so a key added without a
// reload classification fails; packaging/shoald.toml parsed as shipped and with every commented
// setting uncommented (which must give the documented defaults), and every key of
// config_keys() looked up in the example and in docs/operations.md.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <unistd.h>

#include "node/daemon/config.hpp"

using namespace shoal;
using daemon::ConfigKey;
using daemon::DaemonConfig;
using daemon::PeerConfig;
using Catch::Matchers::Contains;

namespace {

const std::string kPath = "/etc/shoal/shoald.toml";
const std::string kRequired = "[node]\ndata_dir = \"/var/lib/shoal\"\ncertificate = \"/etc/shoal/device.cert\"\n";

Result<DaemonConfig> parse(const std::string& text) { return daemon::parse_config(text, kPath); }

// The status of a text that must not parse.
Status error_of(const std::string& text) {
  auto r = parse(text);
  REQUIRE_FALSE(r.ok());
  return r.status();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

DaemonConfig with_required() {
  DaemonConfig c;
  c.path = kPath;
  c.data_dir = "/var/lib/shoal";
  c.certificate = "/etc/shoal/device.cert";
  return c;
}

}  // namespace

TEST_CASE("a file with only the required keys gets every default", "[daemon][config]") {
  auto r = parse(kRequired);
  REQUIRE(r.ok());
  CHECK(*r == with_required());
  CHECK(r->log_level == LogLevel::kInfo);
  CHECK(r->listen_address == "0.0.0.0");
  CHECK(r->listen_port == 7411);
  CHECK(r->socket == "/run/shoal/shoald.sock");
  CHECK(r->socket_mode == 0660);
  CHECK(r->metrics_port == 9464);
}

TEST_CASE("every key is parsed into its member", "[daemon][config]") {
  const std::string text = R"([node]
data_dir = "/srv/shoal/data"
certificate = "/srv/shoal/device.cert"
log_level = "debug"

[mesh]
listen = "[::]:7500"
discovery = false
discovery_interface = "192.168.1.10"
ping_interval_ms = 2500
call_timeout_ms = 7000
backoff_max_ms = 60000
max_links = 32
max_pending_handshakes = 8

[[mesh.peers]]
address = "10.0.0.5:7411"
tier = "warm"

[[mesh.peers]]
address = "gateway-2.local:7412"

[[mesh.peers]]
address = "[fd00::7]:7413"
tier = "hot"

[api]
socket = "/run/shoal/other.sock"
socket_mode = "0600"
socket_group = "shoal"
allow_uids = [1000, 1001]
allow_gids = [998]
max_clients = 12

[metrics]
enabled = false
listen = "0.0.0.0:9100"
)";
  auto r = parse(text);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  const DaemonConfig& c = *r;
  CHECK(c.path == kPath);
  CHECK(c.data_dir == "/srv/shoal/data");
  CHECK(c.certificate == "/srv/shoal/device.cert");
  CHECK(c.log_level == LogLevel::kDebug);
  CHECK(c.listen_address == "::");
  CHECK(c.listen_port == 7500);
  CHECK_FALSE(c.discovery);
  CHECK(c.discovery_interface == "192.168.1.10");
  REQUIRE(c.peers.size() == 3);
  CHECK(c.peers[0] == PeerConfig{"10.0.0.5", 7411, node::Tier::kWarm});
  CHECK(c.peers[1] == PeerConfig{"gateway-2.local", 7412, node::Tier::kHot});
  CHECK(c.peers[2] == PeerConfig{"fd00::7", 7413, node::Tier::kHot});
  CHECK(c.ping_interval == Duration::millis(2500));
  CHECK(c.call_timeout == Duration::millis(7000));
  CHECK(c.backoff_max == Duration::millis(60000));
  CHECK(c.max_links == 32);
  CHECK(c.max_pending_handshakes == 8);
  CHECK(c.socket == "/run/shoal/other.sock");
  CHECK(c.socket_mode == 0600);
  CHECK(c.socket_group == std::optional<std::string>("shoal"));
  CHECK(c.allow_uids == std::vector<std::uint32_t>{1000, 1001});
  CHECK(c.allow_gids == std::vector<std::uint32_t>{998});
  CHECK(c.max_clients == 12);
  CHECK_FALSE(c.metrics_enabled);
  CHECK(c.metrics_address == "0.0.0.0");
  CHECK(c.metrics_port == 9100);
}

TEST_CASE("each log level name is accepted", "[daemon][config]") {
  const std::map<std::string, LogLevel> levels{
      {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo}, {"warn", LogLevel::kWarn}, {"error", LogLevel::kError}};
  for (const auto& [name, level] : levels) {
    auto r = parse(kRequired + "log_level = \"" + name + "\"\n");
    REQUIRE(r.ok());
    CHECK(r->log_level == level);
  }
}

TEST_CASE("relative paths are taken from the config file's directory", "[daemon][config]") {
  const std::string text = "[node]\ndata_dir = \"data\"\ncertificate = \"../keys/./device.cert\"\n[api]\nsocket = \"run/shoald.sock\"\n";
  auto r = parse(text);
  REQUIRE(r.ok());
  CHECK(r->data_dir == "/etc/shoal/data");
  CHECK(r->certificate == "/etc/keys/device.cert");
  CHECK(r->socket == "/etc/shoal/run/shoald.sock");

  SECTION("a relative config path is made absolute from the current directory") {
    auto rel = daemon::parse_config(text, "conf/shoald.toml");
    REQUIRE(rel.ok());
    CHECK(rel->path == "conf/shoald.toml");
    CHECK(rel->data_dir == (std::filesystem::current_path() / "conf/data").lexically_normal().string());
  }
}

// --- One case per kind of error: each names the file, the line and column, and the key. ---

TEST_CASE("a TOML syntax error names the file, line and column", "[daemon][config][errors]") {
  const Status s = error_of("[node]\ndata_dir = \"/d\"\ncertificate = \n");
  CHECK(s.detail() == Detail::kMalformed);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Contains("/etc/shoal/shoald.toml:3:"));
  CHECK_THAT(s.message(), Contains("TOML syntax error"));
}

TEST_CASE("an unknown table is an error with a suggestion", "[daemon][config][errors]") {
  const Status s = error_of(kRequired + "\n[metric]\nenabled = false\n");
  CHECK(s.detail() == Detail::kUnknownName);
  CHECK(s.context() == "metric");
  CHECK(s.message() == "/etc/shoal/shoald.toml:5:2: table [metric]: unknown table (did you mean [metrics]?)");

  const Status far = error_of(kRequired + "[replication]\n");
  CHECK(far.detail() == Detail::kUnknownName);
  CHECK_THAT(far.message(), Contains("/etc/shoal/shoald.toml:4:2: table [replication]: unknown table; the tables are [node], [mesh], [api], [tiers], [sink], [metrics]"));

  const Status nested = error_of(kRequired + "[mesh.listen_options]\n");
  CHECK(nested.detail() == Detail::kUnknownName);
  CHECK_THAT(nested.message(), Contains("/etc/shoal/shoald.toml:4:7: table [mesh.listen_options]: unknown table"));
}

TEST_CASE("an unknown key is an error, never ignored", "[daemon][config][errors]") {
  const Status s = error_of(kRequired + "[mesh]\nping_interval = 5000\n");
  CHECK(s.detail() == Detail::kUnknownName);
  CHECK(s.context() == "mesh.ping_interval");
  CHECK(s.message() ==
        "/etc/shoal/shoald.toml:5:1: key mesh.ping_interval = 5000: unknown key (did you mean mesh.ping_interval_ms?)");

  const Status far = error_of(kRequired + "[api]\ncolour = \"blue\"\n");
  CHECK_THAT(far.message(), Contains("/etc/shoal/shoald.toml:5:1: key api.colour = \"blue\": unknown key; [api] has socket, socket_mode"));

  const Status root = error_of("log_level = \"info\"\n" + kRequired);
  CHECK(root.detail() == Detail::kUnknownName);
  CHECK_THAT(root.message(), Contains("/etc/shoal/shoald.toml:1:1: key log_level = \"info\": unknown key; every key belongs in a table (did you mean node.log_level?)"));

  const Status in_peer = error_of(kRequired + "[[mesh.peers]]\naddress = \"a:1\"\ntierr = \"warm\"\n");
  CHECK(in_peer.detail() == Detail::kUnknownName);
  CHECK(in_peer.context() == "mesh.peers[0].tierr");
  CHECK(in_peer.message() ==
        "/etc/shoal/shoald.toml:6:1: key mesh.peers[0].tierr = \"warm\": unknown key (did you mean mesh.peers[0].tier?)");
}

TEST_CASE("a value of the wrong type names what was expected and what was seen", "[daemon][config][errors]") {
  const Status s = error_of(kRequired + "[mesh]\ndiscovery = \"yes\"\n");
  CHECK(s.detail() == Detail::kMalformed);
  CHECK(s.context() == "mesh.discovery");
  CHECK(s.message() == "/etc/shoal/shoald.toml:5:1: key mesh.discovery = \"yes\": expected a boolean (true or false), saw a string");

  CHECK_THAT(error_of(kRequired + "[mesh]\nping_interval_ms = 2.5\n").message(),
             Contains(":5:1: key mesh.ping_interval_ms = 2.5: expected an integer (milliseconds), saw a float"));
  CHECK_THAT(error_of(kRequired + "[mesh]\npeers = \"10.0.0.5:7411\"\n").message(),
             Contains(":5:1: key mesh.peers = \"10.0.0.5:7411\": expected an array of tables ([[mesh.peers]]), saw a string"));
  CHECK_THAT(error_of(kRequired + "[mesh.peers]\naddress = \"a:1\"\n").message(),
             Contains(":4:7: key mesh.peers = {...}: expected an array of tables ([[mesh.peers]]), saw a table"));
  CHECK_THAT(error_of("node = 3\n").message(), Contains(":1:1: key node = 3: expected a table [node], saw an integer"));
  CHECK_THAT(error_of(kRequired + "[api]\nallow_uids = [1000, \"bob\"]\n").message(),
             Contains(":5:21: key api.allow_uids[1] = \"bob\": expected an integer, saw a string"));
}

TEST_CASE("a port out of range is refused, naming the key and the value", "[daemon][config][errors]") {
  // The example of the issue: line 7, column 1.
  const std::string text = kRequired + "\n# the mesh\n\n[mesh]\nlisten = \"0.0.0.0:99999\"\n";
  const Status s = error_of(text);
  CHECK(s.detail() == Detail::kOutOfRange);
  CHECK(s.context() == "mesh.listen");
  CHECK(s.message() == "/etc/shoal/shoald.toml:8:1: key mesh.listen = \"0.0.0.0:99999\": port must be 0..65535 (0: any free port)");

  CHECK_THAT(error_of(kRequired + "[metrics]\nlisten = \"127.0.0.1:65536\"\n").message(),
             Contains(":5:1: key metrics.listen = \"127.0.0.1:65536\": port must be 0..65535"));
  // A peer's port cannot be 0: it is dialed.
  const Status peer = error_of(kRequired + "[[mesh.peers]]\naddress = \"10.0.0.5:0\"\n");
  CHECK(peer.detail() == Detail::kOutOfRange);
  CHECK(peer.message() == "/etc/shoal/shoald.toml:5:1: key mesh.peers[0].address = \"10.0.0.5:0\": port must be 1..65535");
  // Port 0 on a listening key means any free port (for tests).
  auto zero = parse(kRequired + "[mesh]\nlisten = \"127.0.0.1:0\"\n");
  REQUIRE(zero.ok());
  CHECK(zero->listen_port == 0);
}

TEST_CASE("other numbers out of range are refused with their range", "[daemon][config][errors]") {
  const Status s = error_of(kRequired + "[mesh]\nping_interval_ms = 5\n");
  CHECK(s.detail() == Detail::kOutOfRange);
  CHECK(s.message() == "/etc/shoal/shoald.toml:5:1: key mesh.ping_interval_ms = 5: must be 100..3600000 milliseconds");
  CHECK_THAT(error_of(kRequired + "[mesh]\nmax_links = 0\n").message(), Contains(":5:1: key mesh.max_links = 0: must be 1..65536"));
  CHECK_THAT(error_of(kRequired + "[api]\nallow_gids = [-1]\n").message(),
             Contains(":5:15: key api.allow_gids[0] = -1: must be 0..4294967294"));
  CHECK_THAT(error_of(kRequired + "[api]\nmax_clients = 100000\n").message(), Contains("key api.max_clients = 100000: must be 1..65536"));
  CHECK_THAT(error_of(kRequired + "[api]\nread_threads = 300\n").message(), Contains("key api.read_threads = 300: must be 0..256"));
  CHECK_THAT(error_of(kRequired + "[api]\nread_threads = -1\n").message(), Contains("key api.read_threads = -1: must be 0..256"));
}

TEST_CASE("a bad tier names the peer's key", "[daemon][config][errors]") {
  const Status s = error_of(kRequired + "[[mesh.peers]]\naddress = \"10.0.0.5:7411\"\n[[mesh.peers]]\naddress = \"10.0.0.6:7411\"\ntier = \"cold\"\n");
  CHECK(s.detail() == Detail::kMalformed);
  CHECK(s.context() == "mesh.peers[1].tier");
  CHECK(s.message() == "/etc/shoal/shoald.toml:8:1: key mesh.peers[1].tier = \"cold\": expected \"hot\" or \"warm\"");
}

TEST_CASE("a bad socket mode string is refused", "[daemon][config][errors]") {
  const Status s = error_of(kRequired + "[api]\nsocket_mode = \"0968\"\n");
  CHECK(s.detail() == Detail::kMalformed);
  CHECK(s.context() == "api.socket_mode");
  CHECK(s.message() ==
        "/etc/shoal/shoald.toml:5:1: key api.socket_mode = \"0968\": expected an octal mode string such as \"0660\" (3 or 4 octal digits, at most 0777)");
  // An integer is refused too: TOML has no leading-zero octal, and 660 would be read as decimal.
  CHECK_THAT(error_of(kRequired + "[api]\nsocket_mode = 660\n").message(),
             Contains(":5:1: key api.socket_mode = 660: expected an octal mode string such as \"0660\""));
  CHECK_THAT(error_of(kRequired + "[api]\nsocket_mode = \"rw-rw----\"\n").message(), Contains("key api.socket_mode"));
  CHECK(error_of(kRequired + "[api]\nsocket_mode = \"4770\"\n").detail() == Detail::kOutOfRange);
  auto ok = parse(kRequired + "[api]\nsocket_mode = \"600\"\n");
  REQUIRE(ok.ok());
  CHECK(ok->socket_mode == 0600);
}

TEST_CASE("a bad log level lists the levels", "[daemon][config][errors]") {
  const Status s = error_of(kRequired + "log_level = \"verbose\"\n");
  CHECK(s.detail() == Detail::kMalformed);
  CHECK(s.context() == "node.log_level");
  CHECK(s.message() == "/etc/shoal/shoald.toml:4:1: key node.log_level = \"verbose\": expected \"debug\", \"info\", \"warn\" or \"error\"");
}

TEST_CASE("a missing required key names its table's line, or the file", "[daemon][config][errors]") {
  const Status s = error_of("[mesh]\ndiscovery = false\n\n[node]\ncertificate = \"c\"\n");
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.detail() == static_cast<Detail>(Code::kInvalidArgument));
  CHECK(s.context() == "node.data_dir");
  CHECK(s.message() == "/etc/shoal/shoald.toml:4:1: table [node] lacks key node.data_dir, which is required");

  const Status none = error_of("[mesh]\ndiscovery = false\n");
  CHECK(none.message() ==
        "/etc/shoal/shoald.toml: table [node] is missing; key node.data_dir is required\n"
        "/etc/shoal/shoald.toml: table [node] is missing; key node.certificate is required");

  const Status peer = error_of(kRequired + "[[mesh.peers]]\ntier = \"warm\"\n");
  CHECK_THAT(peer.message(), Contains("/etc/shoal/shoald.toml:4:1: key mesh.peers[0].address is missing"));
}

TEST_CASE("addresses that do not parse are refused with the reason", "[daemon][config][errors]") {
  const std::map<std::string, std::string> listen_cases{
      {"0.0.0.0", "expected ADDRESS:PORT"},
      {"::1:7411", "an IPv6 address is written in brackets"},
      {"localhost:7411", "the address must be an IP address"},
      {"0.0.0.0:port", "the port must be a decimal number"},
      {"[zz]:1", "expected an IPv6 address inside [ ]"},
      {":7411", "expected an address before the ':'"},
  };
  for (const auto& [value, reason] : listen_cases) {
    INFO(value);
    const Status s = error_of(kRequired + "[mesh]\nlisten = \"" + value + "\"\n");
    CHECK(s.detail() == Detail::kMalformed);
    CHECK_THAT(s.message(), Contains("/etc/shoal/shoald.toml:5:1: key mesh.listen = \"" + value + "\": " + reason));
  }
  CHECK_THAT(error_of(kRequired + "[[mesh.peers]]\naddress = \"bad_host!:7411\"\n").message(),
             Contains(":5:1: key mesh.peers[0].address = \"bad_host!:7411\": the host must be a host name or an IP address"));
  CHECK_THAT(error_of(kRequired + "[mesh]\ndiscovery_interface = \"eth0\"\n").message(),
             Contains(":5:1: key mesh.discovery_interface = \"eth0\": expected an IPv4 address"));
  const Status dup = error_of(kRequired + "[[mesh.peers]]\naddress = \"a:1\"\n[[mesh.peers]]\naddress = \"a:1\"\ntier = \"warm\"\n");
  CHECK_THAT(dup.message(), Contains(":6:1: key mesh.peers[1] = {...}: the same address as mesh.peers[0]"));
  CHECK_THAT(error_of("[node]\ndata_dir = \"\"\ncertificate = \"c\"\n").message(),
             Contains(":2:1: key node.data_dir = \"\": must not be empty"));
  const std::string long_socket = "/run/" + std::string(120, 's') + ".sock";
  CHECK(error_of(kRequired + "[api]\nsocket = \"" + long_socket + "\"\n").detail() == Detail::kTooLarge);
}

TEST_CASE("every problem of a file is reported, in file order", "[daemon][config][errors]") {
  const Status s = error_of("[node]\ncertificate = \"c\"\nlog_level = \"loud\"\n[mesh]\nmax_links = -3\nlisten = 7411\n");
  // The first problem in the file decides the code and the context: here the [node] header's.
  CHECK(s.context() == "node.data_dir");
  CHECK(s.detail() == static_cast<Detail>(Code::kInvalidArgument));
  CHECK(s.message() ==
        "/etc/shoal/shoald.toml:1:1: table [node] lacks key node.data_dir, which is required\n"
        "/etc/shoal/shoald.toml:3:1: key node.log_level = \"loud\": expected \"debug\", \"info\", \"warn\" or \"error\"\n"
        "/etc/shoal/shoald.toml:5:1: key mesh.max_links = -3: must be 1..65536\n"
        "/etc/shoal/shoald.toml:6:1: key mesh.listen = 7411: expected a string \"ADDRESS:PORT\", saw an integer");
}

TEST_CASE("load_config reads a file and names it when it cannot", "[daemon][config]") {
  const auto dir = std::filesystem::temp_directory_path() / ("shoal_config_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "shoald.toml").string();
  {
    std::ofstream out(path);
    out << "[node]\ndata_dir = \"data\"\ncertificate = \"device.cert\"\n[mesh]\nlisten = \"0.0.0.0:99999\"\n";
  }
  const Status bad = daemon::load_config(path).status();
  CHECK(bad.detail() == Detail::kOutOfRange);
  CHECK_THAT(bad.message(), Contains(path + ":5:1: key mesh.listen"));
  {
    std::ofstream out(path);
    out << "[node]\ndata_dir = \"data\"\ncertificate = \"device.cert\"\n";
  }
  auto good = daemon::load_config(path);
  REQUIRE(good.ok());
  CHECK(good->data_dir == (dir / "data").string());
  CHECK(good->certificate == (dir / "device.cert").string());

  const Status missing = daemon::load_config((dir / "absent.toml").string()).status();
  CHECK(missing.code() == Code::kIo);
  CHECK_THAT(missing.message(), Contains((dir / "absent.toml").string()));
  {
    std::ofstream out(path);
    out << "# " << std::string(daemon::kMaxConfigBytes, 'x') << "\n";
  }
  CHECK(daemon::load_config(path).status().detail() == Detail::kTooLarge);
  std::filesystem::remove_all(dir);
}

// --- Reload ---

TEST_CASE("plan_reload applies reloadable keys and names the others", "[daemon][config][reload]") {
  // One change per key of config_keys(); a key added without a mutation here fails the test.
  using Mutation = std::function<void(DaemonConfig&)>;
  const std::map<std::string, Mutation> mutations{
      {"node.data_dir", [](DaemonConfig& c) { c.data_dir = "/other"; }},
      {"node.certificate", [](DaemonConfig& c) { c.certificate = "/other.cert"; }},
      {"node.log_level", [](DaemonConfig& c) { c.log_level = LogLevel::kDebug; }},
      {"mesh.listen", [](DaemonConfig& c) { c.listen_port = 7500; }},
      {"mesh.discovery", [](DaemonConfig& c) { c.discovery = false; }},
      {"mesh.discovery_interface", [](DaemonConfig& c) { c.discovery_interface = "10.0.0.1"; }},
      {"mesh.peers", [](DaemonConfig& c) { c.peers.push_back({"10.0.0.9", 7411, node::Tier::kWarm}); }},
      {"mesh.peers.address", [](DaemonConfig& c) { c.peers.push_back({"10.0.0.8", 7411, node::Tier::kHot}); }},
      {"mesh.peers.tier", [](DaemonConfig& c) { c.peers.push_back({"10.0.0.7", 7411, node::Tier::kWarm}); }},
      {"mesh.ping_interval_ms", [](DaemonConfig& c) { c.ping_interval = Duration::seconds(1); }},
      {"mesh.call_timeout_ms", [](DaemonConfig& c) { c.call_timeout = Duration::seconds(1); }},
      {"mesh.backoff_max_ms", [](DaemonConfig& c) { c.backoff_max = Duration::seconds(1); }},
      {"mesh.max_links", [](DaemonConfig& c) { c.max_links = 3; }},
      {"mesh.max_pending_handshakes", [](DaemonConfig& c) { c.max_pending_handshakes = 3; }},
      {"api.socket", [](DaemonConfig& c) { c.socket = "/tmp/x.sock"; }},
      {"api.socket_mode", [](DaemonConfig& c) { c.socket_mode = 0600; }},
      {"api.socket_group", [](DaemonConfig& c) { c.socket_group = "shoal"; }},
      {"api.allow_uids", [](DaemonConfig& c) { c.allow_uids = {1000}; }},
      {"api.allow_gids", [](DaemonConfig& c) { c.allow_gids = {1000}; }},
      {"api.max_clients", [](DaemonConfig& c) { c.max_clients = 3; }},
      {"api.read_threads", [](DaemonConfig& c) { c.read_threads = 3; }},
      {"tiers.warm", [](DaemonConfig& c) { c.tier_warm = false; }},
      {"tiers.warm_interval_ms", [](DaemonConfig& c) { c.tier_warm_interval = Duration::seconds(60); }},
      {"tiers.warm_budget_bytes", [](DaemonConfig& c) { c.tier_warm_budget_bytes = 4096; }},
      {"tiers.collections", [](DaemonConfig& c) { c.tier_collections.push_back({"a", false, {}, {}, {}, {}}); }},
      {"tiers.collections.name", [](DaemonConfig& c) { c.tier_collections.push_back({"b", {}, {}, {}, {}, {}}); }},
      {"tiers.collections.warm", [](DaemonConfig& c) { c.tier_collections.push_back({"c", true, {}, {}, {}, {}}); }},
      {"tiers.collections.warm_interval_ms",
       [](DaemonConfig& c) { c.tier_collections.push_back({"d", {}, Duration::seconds(5), {}, {}, {}}); }},
      {"tiers.collections.warm_budget_bytes", [](DaemonConfig& c) { c.tier_collections.push_back({"e", {}, {}, 10, {}, {}}); }},
      {"tiers.sink", [](DaemonConfig& c) { c.tier_sink = true; }},
      {"tiers.hot_window_ms", [](DaemonConfig& c) { c.tier_hot_window = Duration::seconds(60); }},
      {"tiers.collections.sink", [](DaemonConfig& c) { c.tier_collections.push_back({"f", {}, {}, {}, true, {}}); }},
      {"tiers.collections.hot_window_ms",
       [](DaemonConfig& c) { c.tier_collections.push_back({"g", {}, {}, {}, {}, Duration::seconds(7)}); }},
      {"sink.address", [](DaemonConfig& c) { c.sink = PeerConfig{"sink.example.net", 7420, node::Tier::kHot}; }},
      {"sink.quota_entries", [](DaemonConfig& c) { c.sink_quota_entries = 10; }},
      {"sink.payload_budget_bytes", [](DaemonConfig& c) { c.sink_payload_budget_bytes = 1 << 20; }},
      {"sink.memory_budget_bytes", [](DaemonConfig& c) { c.sink_memory_budget_bytes = 1 << 20; }},
      {"metrics.enabled", [](DaemonConfig& c) { c.metrics_enabled = false; }},
      {"metrics.listen", [](DaemonConfig& c) { c.metrics_address = "0.0.0.0"; }},
  };
  const DaemonConfig current = with_required();
  for (const ConfigKey& key : daemon::config_keys()) {
    const std::string name(key.name);
    INFO(name);
    const auto m = mutations.find(name);
    REQUIRE(m != mutations.end());
    DaemonConfig next = current;
    m->second(next);
    REQUIRE_FALSE(next == current);
    const daemon::ReloadPlan plan = daemon::plan_reload(current, next);
    // Fields of [[mesh.peers]] are reported as mesh.peers, the list they reload with.
    const std::string reported = name.rfind("mesh.peers", 0) == 0          ? "mesh.peers"
                                 : name.rfind("tiers.collections", 0) == 0 ? "tiers.collections"
                                                                           : name;
    if (key.reloadable) {
      CHECK(plan.applied == std::vector<std::string>{reported});
      CHECK(plan.need_restart.empty());
      CHECK(plan.next == next);
      CHECK(plan.status().ok());
    } else {
      CHECK(plan.applied.empty());
      CHECK(plan.need_restart == std::vector<std::string>{reported});
      CHECK(plan.next == current);
      CHECK(plan.status().code() == Code::kInvalidArgument);
      CHECK(plan.status().context() == reported);
    }
  }
}

TEST_CASE("plan_reload of a file with mixed changes applies some and refuses the rest", "[daemon][config][reload]") {
  auto current = parse(kRequired);
  auto next = parse(kRequired +
                    "log_level = \"warn\"\n[mesh]\nlisten = \"0.0.0.0:7500\"\n[[mesh.peers]]\naddress = \"10.0.0.5:7411\"\ntier = \"warm\"\n"
                    "[api]\nsocket_mode = \"0600\"\n[metrics]\nlisten = \"127.0.0.1:9500\"\n");
  REQUIRE(current.ok());
  REQUIRE(next.ok());
  const daemon::ReloadPlan plan = daemon::plan_reload(*current, *next);
  CHECK(plan.applied == std::vector<std::string>{"node.log_level", "mesh.peers", "metrics.listen"});
  CHECK(plan.need_restart == std::vector<std::string>{"mesh.listen", "api.socket_mode"});
  CHECK(plan.next.log_level == LogLevel::kWarn);
  CHECK(plan.next.peers == next->peers);
  CHECK(plan.next.metrics_port == 9500);
  CHECK(plan.next.listen_port == 7411);    // kept until a restart
  CHECK(plan.next.socket_mode == 0660);
  const Status s = plan.status();
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() == "/etc/shoal/shoald.toml: changed but need a restart (kept their current values): mesh.listen, api.socket_mode");

  const daemon::ReloadPlan same = daemon::plan_reload(*current, *current);
  CHECK(same.applied.empty());
  CHECK(same.need_restart.empty());
  CHECK(same.next == *current);
}

// --- The shipped example and the documentation ---

TEST_CASE("packaging/shoald.toml parses, and shows the true defaults", "[daemon][config][docs]") {
  const std::string example_path = std::string(SHOAL_SOURCE_DIR) + "/packaging/shoald.toml";
  const std::string text = read_file(example_path);
  auto as_shipped = daemon::parse_config(text, "/etc/shoal/shoald.toml");
  INFO(as_shipped.status().to_string());
  REQUIRE(as_shipped.ok());

  // Every commented setting is written "#key = value" (prose comments have a space after '#'):
  // uncommented, they must parse and give the defaults, apart from the example peer and group.
  const std::string uncommented = std::regex_replace(text, std::regex("(^|\n)#([a-z_\\[])"), "$1$2");
  auto all = daemon::parse_config(uncommented, "/etc/shoal/shoald.toml");
  INFO(all.status().to_string());
  REQUIRE(all.ok());
  DaemonConfig expected = *as_shipped;
  expected.peers = {PeerConfig{"10.0.0.5", 7411, node::Tier::kWarm}};
  expected.socket_group = "shoal";
  expected.tier_collections = {DaemonConfig::CollectionTier{"images", false, Duration::seconds(60), 1048576, true, {}}};
  expected.sink = PeerConfig{"sink.example.net", 7420, node::Tier::kHot};
  CHECK(*all == expected);
  // And the shipped file changes nothing but the required keys.
  DaemonConfig defaults;
  defaults.path = as_shipped->path;
  defaults.data_dir = as_shipped->data_dir;
  defaults.certificate = as_shipped->certificate;
  CHECK(*as_shipped == defaults);

  // Every key appears in it (mesh.peers as its [[mesh.peers]] header).
  for (const ConfigKey& key : daemon::config_keys()) {
    INFO(key.name);
    if (key.name == "mesh.peers" || key.name == "tiers.collections") {
      CHECK(uncommented.find(str_cat("\n[[", key.name, "]]\n")) != std::string::npos);
      continue;
    }
    const std::string leaf(key.name.substr(key.name.rfind('.') + 1));
    CHECK(std::regex_search(uncommented, std::regex("(^|\n)" + leaf + " = ")));
  }
}

TEST_CASE("docs/operations.md documents every key and whether it reloads", "[daemon][config][docs]") {
  const std::string doc = read_file(std::string(SHOAL_SOURCE_DIR) + "/docs/operations.md");
  const auto start = doc.find("## shoald configuration");
  REQUIRE(start != std::string::npos);
  const auto end = doc.find("\n## ", start + 1);
  const std::string section = doc.substr(start, end == std::string::npos ? std::string::npos : end - start);
  for (const ConfigKey& key : daemon::config_keys()) {
    INFO(key.name);
    // A table row: | `mesh.listen` | type | default | range | reload |
    const std::regex row("\\| `" + std::string(key.name) + "` \\|[^\n]*\\| (yes|no) \\|");
    std::smatch m;
    REQUIRE(std::regex_search(section, m, row));
    CHECK((m[1] == "yes") == key.reloadable);
  }
}

// --- [tiers] ---

TEST_CASE("[tiers] gives each collection its policy; the keys an entry leaves out take the defaults",
          "[daemon][config][tiers]") {
  auto c = parse(kRequired +
                 "[tiers]\nwarm_budget_bytes = 65536\n"
                 "[[tiers.collections]]\nname = \"images\"\nwarm = false\n"
                 "[[tiers.collections]]\nname = \"logs\"\nwarm_interval_ms = 3600000\n");
  INFO(c.status().to_string());
  REQUIRE(c.ok());
  const node::TierPolicies p = daemon::tier_policies(*c);
  CHECK(p.defaults == node::TierPolicy{true, Duration::seconds(20), 65536});
  CHECK(p.of("images") == node::TierPolicy{false, Duration::seconds(20), 65536});
  CHECK(p.of("logs") == node::TierPolicy{true, Duration::seconds(3600), 65536});
  CHECK(p.of("other") == p.defaults);
  CHECK(node::validate(p).ok());
}

TEST_CASE("[sink] and tiers' sink key: the sink's address and quota, which collections go to it",
          "[daemon][config][tiers][sink]") {
  auto c = parse(kRequired + "[tiers]\nsink = false\n[[tiers.collections]]\nname = \"images\"\nsink = true\n"
                 "[sink]\naddress = \"[::1]:7420\"\nquota_entries = 1000\n");
  INFO(c.status().to_string());
  REQUIRE(c.ok());
  REQUIRE(c->sink);
  CHECK(c->sink->host == "::1");
  CHECK(c->sink->port == 7420);
  CHECK(c->sink_quota_entries == 1000);
  const node::TierPolicies p = daemon::tier_policies(*c);
  CHECK(p.of("images").sink);
  CHECK_FALSE(p.of("other").sink);
  // No [sink]: none.
  auto none = parse(kRequired);
  REQUIRE(none.ok());
  CHECK_FALSE(none->sink);

  const Status port = error_of(kRequired + "[sink]\naddress = \"sink:0\"\n");
  CHECK(port.detail() == Detail::kOutOfRange);
  CHECK_THAT(port.message(), Contains("/etc/shoal/shoald.toml:5:1: key sink.address = \"sink:0\""));
  const Status quota = error_of(kRequired + "[sink]\nquota_entries = 0\n");
  CHECK(quota.detail() == Detail::kOutOfRange);
  CHECK_THAT(quota.message(), Contains("sink.quota_entries = 0"));
  const Status big = error_of(kRequired + "[sink]\nquota_entries = 100001\n");
  CHECK(big.detail() == Detail::kOutOfRange);
  // The two eviction budgets (D68): read into their members; beyond 2^50 refused with the range.
  auto budgets = parse(kRequired + "[sink]\npayload_budget_bytes = 4096\nmemory_budget_bytes = 8192\n");
  REQUIRE(budgets.ok());
  CHECK(budgets->sink_payload_budget_bytes == 4096);
  CHECK(budgets->sink_memory_budget_bytes == 8192);
  const Status memory = error_of(kRequired + "[sink]\nmemory_budget_bytes = 1125899906842625\n");
  CHECK(memory.detail() == Detail::kOutOfRange);
  CHECK_THAT(memory.message(), Contains("key sink.memory_budget_bytes = 1125899906842625: must be 0..1125899906842624"));
  const Status typo = error_of(kRequired + "[sink]\nadress = \"a:1\"\n");
  CHECK(typo.detail() == Detail::kUnknownName);
  CHECK_THAT(typo.message(), Contains("did you mean sink.address?"));
}

TEST_CASE("a tiers.collections entry's hot_window_ms gives that collection its own hot window; the others keep the default",
          "[daemon][config][tiers]") {
  auto c = parse(kRequired +
                 "[tiers]\nhot_window_ms = 3600000\n"
                 "[[tiers.collections]]\nname = \"frames\"\nhot_window_ms = 0\n"
                 "[[tiers.collections]]\nname = \"labels\"\nhot_window_ms = 604800000\nwarm = false\n"
                 "[[tiers.collections]]\nname = \"logs\"\nsink = true\n");
  INFO(c.status().to_string());
  REQUIRE(c.ok());
  const node::TierPolicies p = daemon::tier_policies(*c);
  CHECK(p.defaults.hot_window == Duration::seconds(3600));
  CHECK(p.of("frames").hot_window == Duration::zero());
  CHECK(p.of("labels").hot_window == Duration::seconds(7 * 24 * 3600));
  CHECK_FALSE(p.of("labels").warm);
  CHECK(p.of("logs").hot_window == Duration::seconds(3600));  // left out: the default
  CHECK(p.of("other").hot_window == Duration::seconds(3600));
  CHECK(node::validate(p).ok());

  // Out of range (0..3650 days) and the wrong type: file, line, the entry's key, the value seen.
  const Status big = error_of(kRequired + "[[tiers.collections]]\nname = \"frames\"\nhot_window_ms = 315360000001\n");
  CHECK(big.detail() == Detail::kOutOfRange);
  CHECK_THAT(big.message(), Contains("/etc/shoal/shoald.toml:6:1: key tiers.collections[0].hot_window_ms = 315360000001"));
  const Status negative = error_of(kRequired + "[[tiers.collections]]\nname = \"frames\"\nhot_window_ms = -5\n");
  CHECK(negative.detail() == Detail::kOutOfRange);
  CHECK_THAT(negative.message(), Contains("tiers.collections[0].hot_window_ms = -5"));
  const Status text = error_of(kRequired + "[[tiers.collections]]\nname = \"frames\"\nhot_window_ms = \"1h\"\n");
  CHECK_THAT(text.message(), Contains("/etc/shoal/shoald.toml:6:1: key tiers.collections[0].hot_window_ms"));
  const Status typo = error_of(kRequired + "[[tiers.collections]]\nname = \"frames\"\nhot_window = 5\n");
  CHECK(typo.detail() == Detail::kUnknownName);
  CHECK_THAT(typo.message(), Contains("did you mean tiers.collections[0].hot_window_ms?"));
}

TEST_CASE("[tiers] errors name the file, line, key and value", "[daemon][config][tiers][errors]") {
  const Status fast = error_of(kRequired + "[tiers]\nwarm_interval_ms = 500\n");
  CHECK(fast.detail() == Detail::kOutOfRange);
  CHECK_THAT(fast.message(), Contains("/etc/shoal/shoald.toml:5:1: key tiers.warm_interval_ms = 500"));
  CHECK_THAT(fast.message(), Contains("1000"));

  const Status unknown = error_of(kRequired + "[[tiers.collections]]\nname = \"a\"\nbudget = 4\n");
  CHECK(unknown.detail() == Detail::kUnknownName);
  CHECK_THAT(unknown.message(), Contains("tiers.collections[0].budget"));

  const Status nameless = error_of(kRequired + "[[tiers.collections]]\nwarm = false\n");
  CHECK_THAT(nameless.message(), Contains("tiers.collections[0].name is missing"));

  const Status twice = error_of(kRequired + "[[tiers.collections]]\nname = \"a\"\n[[tiers.collections]]\nname = \"a\"\n");
  CHECK(twice.detail() == Detail::kMalformed);
  CHECK_THAT(twice.message(), Contains("the same collection as tiers.collections[0]"));

  const Status negative = error_of(kRequired + "[tiers]\nwarm_budget_bytes = -1\n");
  CHECK(negative.detail() == Detail::kOutOfRange);
  CHECK_THAT(negative.message(), Contains("tiers.warm_budget_bytes = -1"));
}

TEST_CASE("hostile TOML (bytes that are not UTF-8, numbers past 64 bits, tables, arrays and deep nesting where a "
          "value belongs) is refused with a typed status naming the file, never a crash",
          "[daemon][config]") {
  // Each text is a valid config (kRequired) spoiled in one way; the parse must fail with a
  // status whose message names the file (the syntax error or the key's problem), whatever the
  // spoiling, and never throw.
  std::string deep = "[node]\ndata_dir = ";
  for (int i = 0; i < 2000; ++i) deep += '[';
  for (int i = 0; i < 2000; ++i) deep += ']';
  deep += "\ncertificate = \"/etc/shoal/device.cert\"\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a string that is not UTF-8", kRequired + "[api]\nsocket_group = \"g\xff\xfe\"\n"},
      {"a key that is not UTF-8", kRequired + "[api]\n\"so\xc3\x28\" = 1\n"},
      {"a comment that is not UTF-8", kRequired + "# \xe2\x82\n"},
      {"a NUL byte", kRequired + std::string("[api]\nmax_clients = 1\0\n", 23)},
      {"an integer past 64 bits", kRequired + "[api]\nmax_clients = 99999999999999999999\n"},
      {"the lowest 64-bit integer", kRequired + "[api]\nmax_clients = -9223372036854775808\n"},
      {"a float past double", kRequired + "[api]\nmax_clients = 1e999\n"},
      {"nan where an integer belongs", kRequired + "[mesh]\nping_interval_ms = nan\n"},
      {"a table where a string belongs", kRequired + "[mesh]\nlisten = { host = \"0.0.0.0\" }\n"},
      {"a sub-table where a string belongs", kRequired + "[mesh.listen]\nhost = \"0.0.0.0\"\n"},
      {"an array where a string belongs", kRequired + "[api]\nsocket = [\"/run/a\", \"/run/b\"]\n"},
      {"an array where an integer belongs", kRequired + "[api]\nmax_clients = [1]\n"},
      {"an array of arrays where ids belong", kRequired + "[api]\nallow_uids = [[0], [1]]\n"},
      {"a table of tables where a peer belongs", kRequired + "[[mesh.peers]]\naddress = { a = { b = 1 } }\n"},
      {"a table given as an array of tables", "[[node]]\ndata_dir = \"/a\"\ncertificate = \"/b\"\n"},
      {"a root key where a table belongs", "node = 3\n"},
      {"arrays nested 2,000 deep", deep},
      {"a date where a path belongs", "[node]\ndata_dir = 1979-05-27T07:32:00Z\ncertificate = \"/c\"\n"},
      {"a port of 20 digits", kRequired + "[mesh]\nlisten = \"0.0.0.0:99999999999999999999\"\n"},
  };
  for (const auto& [what, text] : cases) {
    INFO(what);
    Result<DaemonConfig> r = DaemonConfig{};
    REQUIRE_NOTHROW(r = parse(text));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() != Code::kOk);
    CHECK_THAT(r.status().message(), Contains(kPath));
  }
}

TEST_CASE("an unquoted socket_mode = 0660 is a syntax error that says how to write it", "[daemon][config]") {
  const Status s = error_of(kRequired + "[api]\nsocket_mode = 0660\n");
  CHECK(s.detail() == Detail::kMalformed);
  CHECK_THAT(s.message(), Contains("leading zero"));
  CHECK_THAT(s.message(), Contains("a file mode is written as a string, as in socket_mode = \"0660\""));
}

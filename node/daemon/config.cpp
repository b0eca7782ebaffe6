// node/daemon/config.cpp: shoald's TOML configuration (config.hpp).
//
// One table of rules (kRules) lists every key once: its table, its name, whether a SIGHUP may
// apply it, whether it is required, how its value is parsed into a DaemonConfig, and which
// members hold it (for plan_reload). Adding a key is adding one rule; the tests check that every
// rule is documented, shown in packaging/shoald.toml and classified by plan_reload.
//
// toml++ reports syntax errors by throwing toml::parse_error: it is caught in exactly one place
// (parse_document) and becomes a kMalformed status. Everything after that is our own checks,
// which collect every problem instead of stopping at the first.
#include "node/daemon/config.hpp"

#include <arpa/inet.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <memory>
#include <system_error>
#include <utility>

#include <toml++/toml.h>

#include "common/toml_report.hpp"

namespace shoal::daemon {
namespace {

namespace fs = std::filesystem;

// Limits on lists in the file.
constexpr std::size_t kMaxPeers = 1024;
constexpr std::size_t kMaxIds = 1024;
// A Unix socket path must fit sockaddr_un::sun_path with its terminating NUL.
constexpr std::size_t kMaxSocketPathBytes = sizeof(sockaddr_un::sun_path) - 1;

// Ranges of the numeric keys.
constexpr std::int64_t kMinIntervalMs = 100;
constexpr std::int64_t kMaxIntervalMs = 3'600'000;
constexpr std::int64_t kMaxLinkCount = 65'536;
constexpr std::int64_t kMaxClients = 65'536;
constexpr std::int64_t kMaxId = 4'294'967'294;  // (uid_t)-1 means "no id" to the kernel

// --- Problems (common/toml_report.hpp) ------------------------------------------------------

using toml_report::closest;
using toml_report::echo;
using toml_report::Field;
using toml_report::join;
using toml_report::Report;
using toml_report::type_name;

// --- Values ---------------------------------------------------------------------------------

bool is_ipv4(const std::string& text) {
  in_addr a{};
  return inet_pton(AF_INET, text.c_str(), &a) == 1;
}

bool is_ipv6(const std::string& text) {
  in6_addr a{};
  return inet_pton(AF_INET6, text.c_str(), &a) == 1;
}

// A DNS name: labels of letters, digits and '-', not starting or ending with '-'.
bool is_host_name(std::string_view text) {
  if (text.empty() || text.size() > 253) return false;
  std::size_t label = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '.') {
      if (label == 0 || label > 63 || text[i - 1] == '-' || text[i - label] == '-') return false;
      label = 0;
      continue;
    }
    const char c = text[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
    ++label;
  }
  return true;
}

struct HostPort {
  std::string host;  // without brackets
  bool bracketed = false;
  std::uint32_t port = 0;
};

// Splits "HOST:PORT" or "[IPV6]:PORT". On failure, the reason in `problem`.
std::optional<HostPort> split_host_port(const std::string& text, std::string& problem) {
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      problem = "expected [IPV6]:PORT";
      return std::nullopt;
    }
    out.host = text.substr(1, close - 1);
    out.bracketed = true;
    if (!is_ipv6(out.host)) {
      problem = "expected an IPv6 address inside [ ]";
      return std::nullopt;
    }
    port_text = std::string_view(text).substr(close + 2);
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string::npos) {
      problem = "expected ADDRESS:PORT";
      return std::nullopt;
    }
    out.host = text.substr(0, colon);
    if (out.host.find(':') != std::string::npos) {
      problem = "an IPv6 address is written in brackets: [ADDRESS]:PORT";
      return std::nullopt;
    }
    if (out.host.empty()) {
      problem = "expected an address before the ':'";
      return std::nullopt;
    }
    port_text = std::string_view(text).substr(colon + 1);
  }
  if (port_text.empty() || port_text.size() > 5 ||
      !std::all_of(port_text.begin(), port_text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    problem = "the port must be a decimal number";
    return std::nullopt;
  }
  for (char c : port_text) out.port = out.port * 10 + static_cast<std::uint32_t>(c - '0');
  return out;
}

// Which addresses a key takes: a socket we listen on (an IP address, port 0 = any free port) or a
// device we dial (a peer, the sink: a host name too, and a real port).
enum class AddressUse { kListen, kDial };

// "HOST:PORT" ("[IPV6]:PORT") into host and port, under the rules of `use`.
bool parse_address(Field& f, AddressUse use, std::string& host, std::uint16_t& port) {
  const bool dial = use == AddressUse::kDial;
  auto text = f.string(dial ? "a string \"HOST:PORT\"" : "a string \"ADDRESS:PORT\"");
  if (!text) return false;
  std::string problem;
  auto hp = split_host_port(*text, problem);
  if (!hp) {
    f.fail(Detail::kMalformed, problem);
    return false;
  }
  if (!hp->bracketed && !is_ipv4(hp->host) && !(dial && is_host_name(hp->host))) {
    f.fail(Detail::kMalformed, dial ? "the host must be a host name or an IP address"
                                    : "the address must be an IP address, such as 0.0.0.0, 127.0.0.1 or [::]");
    return false;
  }
  const std::uint32_t lowest = dial ? 1 : 0;
  if (hp->port < lowest || hp->port > 65535) {
    f.fail(Detail::kOutOfRange, dial ? "port must be 1..65535" : "port must be 0..65535 (0: any free port)");
    return false;
  }
  host = hp->host;
  port = static_cast<std::uint16_t>(hp->port);
  return true;
}

// --- The rules ------------------------------------------------------------------------------

using ParseFn = void (*)(Field&, DaemonConfig&);
using SameFn = bool (*)(const DaemonConfig&, const DaemonConfig&);
using TakeFn = void (*)(DaemonConfig&, const DaemonConfig&);

// The members that hold one key.
template <auto... Members>
struct Fields {
  static bool same(const DaemonConfig& a, const DaemonConfig& b) { return ((a.*Members == b.*Members) && ...); }
  static void take(DaemonConfig& to, const DaemonConfig& from) { ((to.*Members = from.*Members), ...); }
};

struct Rule {
  std::string_view table;
  std::string_view name;  // within the table
  bool reloadable;
  bool required;
  ParseFn parse;
  SameFn same;
  TakeFn take;
};

constexpr bool kReload = true;
constexpr bool kRestart = false;
constexpr bool kRequired = true;
constexpr bool kOptional = false;

template <auto... Members>
constexpr Rule rule(std::string_view table, std::string_view name, bool reloadable, bool required, ParseFn parse) {
  return Rule{table, name, reloadable, required, parse, &Fields<Members...>::same, &Fields<Members...>::take};
}

void parse_data_dir(Field& f, DaemonConfig& c) {
  if (auto p = f.path()) c.data_dir = std::move(*p);
}

void parse_certificate(Field& f, DaemonConfig& c) {
  if (auto p = f.path()) c.certificate = std::move(*p);
}

void parse_log_level_key(Field& f, DaemonConfig& c) {
  auto text = f.string();
  if (!text) return;
  static constexpr std::array<std::pair<std::string_view, LogLevel>, 4> kLevels{{
      {"debug", LogLevel::kDebug}, {"info", LogLevel::kInfo}, {"warn", LogLevel::kWarn}, {"error", LogLevel::kError}}};
  for (const auto& [name, level] : kLevels) {
    if (*text == name) {
      c.log_level = level;
      return;
    }
  }
  f.fail(Detail::kMalformed, "expected \"debug\", \"info\", \"warn\" or \"error\"");
}

void parse_mesh_listen(Field& f, DaemonConfig& c) { parse_address(f, AddressUse::kListen, c.listen_address, c.listen_port); }

void parse_discovery(Field& f, DaemonConfig& c) {
  if (auto b = f.boolean()) c.discovery = *b;
}

void parse_discovery_interface(Field& f, DaemonConfig& c) {
  auto text = f.string("a string (an IPv4 address)");
  if (!text) return;
  if (!is_ipv4(*text)) {
    f.fail(Detail::kMalformed, "expected an IPv4 address (0.0.0.0: the kernel's choice of interface)");
    return;
  }
  c.discovery_interface = std::move(*text);
}

std::optional<node::Tier> parse_tier(Field& f) {
  auto text = f.string("a string, \"hot\" or \"warm\"");
  if (!text) return std::nullopt;
  if (*text == "hot") return node::Tier::kHot;
  if (*text == "warm") return node::Tier::kWarm;
  f.fail(Detail::kMalformed, "expected \"hot\" or \"warm\"");
  return std::nullopt;
}

// "HOST:PORT" of a device to dial (a peer, the sink) into peer.host and peer.port.
bool parse_dial_address(Field& f, PeerConfig& peer) { return parse_address(f, AddressUse::kDial, peer.host, peer.port); }

std::optional<PeerConfig> parse_peer(Field& f, std::size_t index) {
  if (!f.expect(toml::node_type::table, "a table with address and tier")) return std::nullopt;
  const toml::table& t = *f.value().as_table();
  const std::string prefix = str_cat("mesh.peers[", index, "].");
  PeerConfig peer;
  bool ok = true;
  bool have_address = false;
  for (const auto& [k, v] : t) {
    Field sub(f.report(), prefix + std::string(k.str()), k.source(), v);
    if (k.str() == "address") {
      have_address = true;
      if (!parse_dial_address(sub, peer)) ok = false;
    } else if (k.str() == "tier") {
      if (auto tier = parse_tier(sub)) peer.tier = *tier; else ok = false;
    } else {
      std::string_view hint = closest(k.str(), {"address", "tier"});
      sub.fail(Detail::kUnknownName,
               hint.empty() ? std::string("unknown key; a peer has address and tier")
                            : str_cat("unknown key (did you mean ", prefix, hint, "?)"));
      ok = false;
    }
  }
  if (!have_address) {
    f.report().add(&f.value().source(), Detail::kNone, prefix + "address",
                   str_cat("key ", prefix, "address is missing; a peer needs address = \"HOST:PORT\""));
    ok = false;
  }
  if (!ok) return std::nullopt;
  return peer;
}

void parse_peers(Field& f, DaemonConfig& c) {
  if (!f.expect(toml::node_type::array, "an array of tables ([[mesh.peers]])")) return;
  const toml::array& a = *f.value().as_array();
  if (a.size() > kMaxPeers) {
    f.fail(Detail::kTooLarge, str_cat(a.size(), " peers; at most ", kMaxPeers));
    return;
  }
  std::vector<PeerConfig> peers;
  bool ok = true;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const toml::node& element = *a.get(i);
    Field item(f.report(), str_cat("mesh.peers[", i, "]"), element.source(), element);
    auto peer = parse_peer(item, i);
    if (!peer) {
      ok = false;
      continue;
    }
    const auto dup = std::find_if(peers.begin(), peers.end(), [&](const PeerConfig& p) {
      return p.port == peer->port && p.host == peer->host;
    });
    if (dup != peers.end()) {
      item.fail(Detail::kMalformed, str_cat("the same address as mesh.peers[", dup - peers.begin(), "]"));
      ok = false;
      continue;
    }
    peers.push_back(std::move(*peer));
  }
  if (ok) c.peers = std::move(peers);
}

void parse_ping_interval(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(kMinIntervalMs, kMaxIntervalMs, "milliseconds")) c.ping_interval = Duration::millis(*v);
}

void parse_call_timeout(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(kMinIntervalMs, kMaxIntervalMs, "milliseconds")) c.call_timeout = Duration::millis(*v);
}

void parse_backoff_max(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(kMinIntervalMs, kMaxIntervalMs, "milliseconds")) c.backoff_max = Duration::millis(*v);
}

void parse_max_links(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(1, kMaxLinkCount)) c.max_links = static_cast<std::size_t>(*v);
}

void parse_max_pending_handshakes(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(1, kMaxLinkCount)) c.max_pending_handshakes = static_cast<std::size_t>(*v);
}

void parse_socket(Field& f, DaemonConfig& c) {
  auto p = f.path();
  if (!p) return;
  if (p->size() > kMaxSocketPathBytes) {
    f.fail(Detail::kTooLarge, str_cat("the socket path is ", p->size(), " bytes once absolute (", *p,
                                      "); a Unix socket path holds at most ", kMaxSocketPathBytes));
    return;
  }
  c.socket = std::move(*p);
}

void parse_socket_mode(Field& f, DaemonConfig& c) {
  constexpr std::string_view kExpected = "expected an octal mode string such as \"0660\" (3 or 4 octal digits, at most 0777)";
  if (!f.value().is_string()) {
    f.fail(Detail::kMalformed, str_cat(kExpected, ", saw ", type_name(f.value().type())));
    return;
  }
  const std::string& text = f.value().as_string()->get();
  const bool digits = std::all_of(text.begin(), text.end(), [](char ch) { return ch >= '0' && ch <= '7'; });
  if (text.size() < 3 || text.size() > 4 || !digits) {
    f.fail(Detail::kMalformed, kExpected);
    return;
  }
  std::uint32_t mode = 0;
  for (char ch : text) mode = mode * 8 + static_cast<std::uint32_t>(ch - '0');
  if (mode > 0777) {
    f.fail(Detail::kOutOfRange, "setuid, setgid and sticky bits have no meaning on a socket; at most 0777");
    return;
  }
  c.socket_mode = mode;
}

void parse_socket_group(Field& f, DaemonConfig& c) {
  auto text = f.string("a string (a group name)");
  if (!text) return;
  if (text->empty() || text->find_first_of(std::string_view(":/ \t\n\0", 6)) != std::string::npos) {
    f.fail(Detail::kMalformed, "expected a group name (not empty; no ':', '/', space or NUL)");
    return;
  }
  c.socket_group = std::move(*text);
}

std::optional<std::vector<std::uint32_t>> parse_ids(Field& f) {
  if (!f.expect(toml::node_type::array, "an array of integers")) return std::nullopt;
  const toml::array& a = *f.value().as_array();
  if (a.size() > kMaxIds) {
    f.fail(Detail::kTooLarge, str_cat(a.size(), " ids; at most ", kMaxIds));
    return std::nullopt;
  }
  std::vector<std::uint32_t> ids;
  bool ok = true;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const toml::node& element = *a.get(i);
    Field item(f.report(), str_cat(f.key(), "[", i, "]"), element.source(), element);
    if (auto v = item.integer(0, kMaxId)) ids.push_back(static_cast<std::uint32_t>(*v)); else ok = false;
  }
  if (!ok) return std::nullopt;
  return ids;
}

void parse_allow_uids(Field& f, DaemonConfig& c) {
  if (auto ids = parse_ids(f)) c.allow_uids = std::move(*ids);
}

void parse_allow_gids(Field& f, DaemonConfig& c) {
  if (auto ids = parse_ids(f)) c.allow_gids = std::move(*ids);
}

void parse_max_clients(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(1, kMaxClients)) c.max_clients = static_cast<std::size_t>(*v);
}

void parse_read_threads(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(0, static_cast<std::int64_t>(kMaxApiReadThreads), "threads; 0: four per core")) {
    c.read_threads = static_cast<std::size_t>(*v);
  }
}

// [tiers]: the limits are node::validate's (tier_policy.hpp), checked here so that the file's
// line is named.
constexpr std::int64_t kMaxTierCollections = 1024;

std::optional<Duration> parse_warm_interval(Field& f) {
  auto v = f.integer(node::kMinWarmInterval.ms(), node::kMaxWarmInterval.ms(), "milliseconds");
  if (!v) return std::nullopt;
  return Duration::millis(*v);
}

std::optional<std::uint64_t> parse_warm_budget(Field& f) {
  // 0: no budget; at most 1 TiB per interval.
  auto v = f.integer(0, std::int64_t{1} << 40, "bytes");
  if (!v) return std::nullopt;
  return static_cast<std::uint64_t>(*v);
}

void parse_tiers_warm(Field& f, DaemonConfig& c) {
  if (auto b = f.boolean()) c.tier_warm = *b;
}

void parse_tiers_warm_interval(Field& f, DaemonConfig& c) {
  if (auto d = parse_warm_interval(f)) c.tier_warm_interval = *d;
}

std::optional<Duration> parse_hot_window(Field& f) {
  auto v = f.integer(0, node::kMaxHotWindow.ms(), "milliseconds");
  if (!v) return std::nullopt;
  return Duration::millis(*v);
}

void parse_tiers_hot_window(Field& f, DaemonConfig& c) {
  if (auto d = parse_hot_window(f)) c.tier_hot_window = *d;
}

// Eviction's budget (node::EvictionOptions): 0 (never) .. 2^50, node::kMaxPayloadBudgetBytes (the
// node refuses more too; this library does not include the node core's header).
void parse_sink_payload_budget(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(0, std::int64_t{1} << 50, "bytes")) {
    c.sink_payload_budget_bytes = static_cast<std::uint64_t>(*v);
  }
}

// Eviction's memory budget (node::EvictionOptions::memory_budget_bytes): the same range.
void parse_sink_memory_budget(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(0, std::int64_t{1} << 50, "bytes")) {
    c.sink_memory_budget_bytes = static_cast<std::uint64_t>(*v);
  }
}

void parse_tiers_warm_budget(Field& f, DaemonConfig& c) {
  if (auto b = parse_warm_budget(f)) c.tier_warm_budget_bytes = *b;
}

void parse_tiers_sink(Field& f, DaemonConfig& c) {
  if (auto b = f.boolean()) c.tier_sink = *b;
}

void parse_sink_address(Field& f, DaemonConfig& c) {
  PeerConfig sink;
  if (parse_dial_address(f, sink)) c.sink = sink;
}

// The quota cannot exceed the node's delta buffer bound (NodeOptions::delta_buffer_max).
void parse_sink_quota(Field& f, DaemonConfig& c) {
  if (auto v = f.integer(1, 100'000)) c.sink_quota_entries = static_cast<std::uint64_t>(*v);
}

std::optional<DaemonConfig::CollectionTier> parse_collection_tier(Field& f, std::size_t index) {
  if (!f.expect(toml::node_type::table,
                "a table with name and any of warm, warm_interval_ms, warm_budget_bytes, sink, hot_window_ms")) {
    return std::nullopt;
  }
  const toml::table& t = *f.value().as_table();
  const std::string prefix = str_cat("tiers.collections[", index, "].");
  DaemonConfig::CollectionTier entry;
  bool ok = true;
  bool have_name = false;
  for (const auto& [k, v] : t) {
    Field sub(f.report(), prefix + std::string(k.str()), k.source(), v);
    if (k.str() == "name") {
      have_name = true;
      auto text = sub.string("a string, a collection name");
      if (!text || text->empty()) {
        if (text) sub.fail(Detail::kMalformed, "expected a collection name, saw an empty string");
        ok = false;
      } else {
        entry.name = std::move(*text);
      }
    } else if (k.str() == "warm") {
      if (auto b = sub.boolean()) entry.warm = *b; else ok = false;
    } else if (k.str() == "warm_interval_ms") {
      if (auto d = parse_warm_interval(sub)) entry.warm_interval = *d; else ok = false;
    } else if (k.str() == "warm_budget_bytes") {
      if (auto b = parse_warm_budget(sub)) entry.warm_budget_bytes = *b; else ok = false;
    } else if (k.str() == "sink") {
      if (auto b = sub.boolean()) entry.sink = *b; else ok = false;
    } else if (k.str() == "hot_window_ms") {
      if (auto d = parse_hot_window(sub)) entry.hot_window = *d; else ok = false;
    } else {
      std::string_view hint =
          closest(k.str(), {"name", "warm", "warm_interval_ms", "warm_budget_bytes", "sink", "hot_window_ms"});
      sub.fail(Detail::kUnknownName,
               hint.empty() ? std::string("unknown key; an entry has name, warm, warm_interval_ms, warm_budget_bytes, "
                                          "sink and hot_window_ms")
                            : str_cat("unknown key (did you mean ", prefix, hint, "?)"));
      ok = false;
    }
  }
  if (!have_name) {
    f.report().add(&f.value().source(), Detail::kNone, prefix + "name",
                   str_cat("key ", prefix, "name is missing; an entry names its collection"));
    ok = false;
  }
  if (!ok) return std::nullopt;
  return entry;
}

void parse_tier_collections(Field& f, DaemonConfig& c) {
  if (!f.expect(toml::node_type::array, "an array of tables ([[tiers.collections]])")) return;
  const toml::array& a = *f.value().as_array();
  if (a.size() > static_cast<std::size_t>(kMaxTierCollections)) {
    f.fail(Detail::kTooLarge, str_cat(a.size(), " collections; at most ", kMaxTierCollections));
    return;
  }
  std::vector<DaemonConfig::CollectionTier> entries;
  bool ok = true;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const toml::node& element = *a.get(i);
    Field item(f.report(), str_cat("tiers.collections[", i, "]"), element.source(), element);
    auto entry = parse_collection_tier(item, i);
    if (!entry) {
      ok = false;
      continue;
    }
    const auto dup = std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return e.name == entry->name; });
    if (dup != entries.end()) {
      item.fail(Detail::kMalformed, str_cat("the same collection as tiers.collections[", dup - entries.begin(), "]"));
      ok = false;
      continue;
    }
    entries.push_back(std::move(*entry));
  }
  if (ok) c.tier_collections = std::move(entries);
}

void parse_metrics_enabled(Field& f, DaemonConfig& c) {
  if (auto b = f.boolean()) c.metrics_enabled = *b;
}

void parse_metrics_listen(Field& f, DaemonConfig& c) { parse_address(f, AddressUse::kListen, c.metrics_address, c.metrics_port); }

using C = DaemonConfig;
const std::array kRules{
    rule<&C::data_dir>("node", "data_dir", kRestart, kRequired, parse_data_dir),
    rule<&C::certificate>("node", "certificate", kRestart, kRequired, parse_certificate),
    rule<&C::log_level>("node", "log_level", kReload, kOptional, parse_log_level_key),
    rule<&C::listen_address, &C::listen_port>("mesh", "listen", kRestart, kOptional, parse_mesh_listen),
    rule<&C::discovery>("mesh", "discovery", kRestart, kOptional, parse_discovery),
    rule<&C::discovery_interface>("mesh", "discovery_interface", kRestart, kOptional, parse_discovery_interface),
    rule<&C::peers>("mesh", "peers", kReload, kOptional, parse_peers),
    rule<&C::ping_interval>("mesh", "ping_interval_ms", kRestart, kOptional, parse_ping_interval),
    rule<&C::call_timeout>("mesh", "call_timeout_ms", kRestart, kOptional, parse_call_timeout),
    rule<&C::backoff_max>("mesh", "backoff_max_ms", kRestart, kOptional, parse_backoff_max),
    rule<&C::max_links>("mesh", "max_links", kRestart, kOptional, parse_max_links),
    rule<&C::max_pending_handshakes>("mesh", "max_pending_handshakes", kRestart, kOptional, parse_max_pending_handshakes),
    rule<&C::socket>("api", "socket", kRestart, kOptional, parse_socket),
    rule<&C::socket_mode>("api", "socket_mode", kRestart, kOptional, parse_socket_mode),
    rule<&C::socket_group>("api", "socket_group", kRestart, kOptional, parse_socket_group),
    rule<&C::allow_uids>("api", "allow_uids", kRestart, kOptional, parse_allow_uids),
    rule<&C::allow_gids>("api", "allow_gids", kRestart, kOptional, parse_allow_gids),
    rule<&C::max_clients>("api", "max_clients", kRestart, kOptional, parse_max_clients),
    rule<&C::read_threads>("api", "read_threads", kRestart, kOptional, parse_read_threads),
    rule<&C::tier_warm>("tiers", "warm", kReload, kOptional, parse_tiers_warm),
    rule<&C::tier_warm_interval>("tiers", "warm_interval_ms", kReload, kOptional, parse_tiers_warm_interval),
    rule<&C::tier_warm_budget_bytes>("tiers", "warm_budget_bytes", kReload, kOptional, parse_tiers_warm_budget),
    rule<&C::tier_sink>("tiers", "sink", kReload, kOptional, parse_tiers_sink),
    rule<&C::tier_hot_window>("tiers", "hot_window_ms", kReload, kOptional, parse_tiers_hot_window),
    rule<&C::tier_collections>("tiers", "collections", kReload, kOptional, parse_tier_collections),
    rule<&C::sink>("sink", "address", kRestart, kOptional, parse_sink_address),
    rule<&C::sink_quota_entries>("sink", "quota_entries", kRestart, kOptional, parse_sink_quota),
    rule<&C::sink_payload_budget_bytes>("sink", "payload_budget_bytes", kRestart, kOptional, parse_sink_payload_budget),
    rule<&C::sink_memory_budget_bytes>("sink", "memory_budget_bytes", kRestart, kOptional, parse_sink_memory_budget),
    rule<&C::metrics_enabled>("metrics", "enabled", kReload, kOptional, parse_metrics_enabled),
    rule<&C::metrics_address, &C::metrics_port>("metrics", "listen", kReload, kOptional, parse_metrics_listen),
};

constexpr std::array<std::string_view, 6> kTables{"node", "mesh", "api", "tiers", "sink", "metrics"};

std::string dotted(const Rule& r) { return str_cat(r.table, ".", r.name); }

// The keys of one table.
std::vector<std::string_view> names_in(std::string_view table) {
  std::vector<std::string_view> names;
  for (const Rule& r : kRules) {
    if (r.table == table) names.push_back(r.name);
  }
  return names;
}

void unknown_in_table(Report& report, std::string_view table, const toml::key& k, const toml::node& v) {
  toml_report::unknown_in_table(report, table, names_in(table), k, v);
}

void unknown_at_root(Report& report, const toml::key& k, const toml::node& v) {
  const std::vector<std::string_view> tables(kTables.begin(), kTables.end());
  std::string text;
  if (v.is_table()) {
    text = str_cat("table [", k.str(), "]: unknown table");
    std::string_view hint = closest(k.str(), tables);
    text += hint.empty() ? str_cat("; the tables are [", join(tables, "], ["), "]") : str_cat(" (did you mean [", hint, "]?)");
  } else {
    text = str_cat("key ", k.str(), " = ", echo(v), ": unknown key; every key belongs in a table");
    for (const Rule& r : kRules) {
      if (r.name == k.str()) {
        text += str_cat(" (did you mean ", r.table, ".", r.name, "?)");
        break;
      }
    }
  }
  report.add(&k.source(), Detail::kUnknownName, std::string(k.str()), std::move(text));
}

// One of kTables: every key known, parsed; every required key present.
void parse_table(Report& report, std::string_view table, const toml::key& header, const toml::node& value, DaemonConfig& c) {
  if (!value.is_table()) {
    report.add(&header.source(), Detail::kMalformed, std::string(table),
               str_cat("key ", table, " = ", echo(value), ": expected a table [", table, "], saw ", type_name(value.type())));
    return;
  }
  const toml::table& t = *value.as_table();
  for (const auto& [k, v] : t) {
    const auto r = std::find_if(kRules.begin(), kRules.end(), [&](const Rule& x) { return x.table == table && x.name == k.str(); });
    if (r == kRules.end()) {
      unknown_in_table(report, table, k, v);
      continue;
    }
    Field f(report, dotted(*r), k.source(), v);
    r->parse(f, c);
  }
  for (const Rule& r : kRules) {
    if (r.table == table && r.required && !t.contains(r.name)) {
      report.add(&t.source(), Detail::kNone, dotted(r),
                 str_cat("table [", table, "] lacks key ", dotted(r), ", which is required"));
    }
  }
}

}  // namespace

Result<DaemonConfig> parse_config(std::string_view text, const std::string& path) {
  std::error_code ec;
  fs::path base = fs::path(path).parent_path();
  if (base.empty()) base = ".";
  fs::path absolute_base = fs::absolute(base, ec);
  if (ec) {
    return Status(Code::kIo, str_cat(path, ": cannot make the config directory absolute: ", ec.message()), path);
  }
  Report report(path, absolute_base.lexically_normal());
  auto document = toml_report::parse_document(text, path, report);
  if (!document) return report.status();

  DaemonConfig config;
  config.path = path;
  std::array<bool, kTables.size()> seen{};
  for (const auto& [k, v] : *document) {
    const auto t = std::find(kTables.begin(), kTables.end(), k.str());
    if (t == kTables.end()) {
      unknown_at_root(report, k, v);
      continue;
    }
    seen[static_cast<std::size_t>(t - kTables.begin())] = true;
    parse_table(report, *t, k, v, config);
  }
  for (std::size_t i = 0; i < kTables.size(); ++i) {
    if (seen[i]) continue;
    for (const Rule& r : kRules) {
      if (r.table == kTables[i] && r.required) {
        report.add(nullptr, Detail::kNone, dotted(r),
                   str_cat("table [", r.table, "] is missing; key ", dotted(r), " is required"));
      }
    }
  }
  if (!report.empty()) return report.status();
  return config;
}

Result<DaemonConfig> load_config(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(const std::string text, toml_report::read_file(path, "config file", kMaxConfigBytes));
  return parse_config(text, path);
}

node::TierPolicies tier_policies(const DaemonConfig& config) {
  node::TierPolicies out;
  out.defaults = node::TierPolicy{config.tier_warm, config.tier_warm_interval, config.tier_warm_budget_bytes,
                                  config.tier_sink, config.tier_hot_window};
  for (const auto& e : config.tier_collections) {
    node::TierPolicy p = out.defaults;
    if (e.warm) p.warm = *e.warm;
    if (e.warm_interval) p.warm_interval = *e.warm_interval;
    if (e.warm_budget_bytes) p.warm_budget_bytes = *e.warm_budget_bytes;
    if (e.sink) p.sink = *e.sink;
    if (e.hot_window) p.hot_window = *e.hot_window;
    out.collections.emplace(e.name, p);
  }
  return out;
}

std::span<const ConfigKey> config_keys() noexcept {
  static const std::vector<ConfigKey> keys = [] {
    // The names must outlive the call: built once from the rules into static strings.
    static std::vector<std::string> names;
    names.reserve(kRules.size() + 2);
    std::vector<ConfigKey> out;
    for (const Rule& r : kRules) {
      names.push_back(dotted(r));
      out.push_back(ConfigKey{names.back(), r.reloadable, r.required});
      if (r.table == "mesh" && r.name == "peers") {
        // The fields of each [[mesh.peers]] entry, reloaded with the list.
        out.push_back(ConfigKey{"mesh.peers.address", true, true});  // required in each entry
        out.push_back(ConfigKey{"mesh.peers.tier", true, false});
      }
      if (r.table == "tiers" && r.name == "collections") {
        // The fields of each [[tiers.collections]] entry, reloaded with the list.
        out.push_back(ConfigKey{"tiers.collections.name", true, true});  // required in each entry
        out.push_back(ConfigKey{"tiers.collections.warm", true, false});
        out.push_back(ConfigKey{"tiers.collections.warm_interval_ms", true, false});
        out.push_back(ConfigKey{"tiers.collections.warm_budget_bytes", true, false});
        out.push_back(ConfigKey{"tiers.collections.sink", true, false});
        out.push_back(ConfigKey{"tiers.collections.hot_window_ms", true, false});
      }
    }
    return out;
  }();
  return keys;
}

ReloadPlan plan_reload(const DaemonConfig& current, const DaemonConfig& next) {
  ReloadPlan plan;
  plan.next = current;
  plan.next.path = next.path;
  for (const Rule& r : kRules) {
    if (r.same(current, next)) continue;
    if (r.reloadable) {
      r.take(plan.next, next);
      plan.applied.push_back(dotted(r));
    } else {
      plan.need_restart.push_back(dotted(r));
    }
  }
  return plan;
}

Status ReloadPlan::status() const {
  if (need_restart.empty()) return ok_status();
  std::string keys;
  for (const std::string& k : need_restart) {
    if (!keys.empty()) keys += ", ";
    keys += k;
  }
  return Status(Code::kInvalidArgument,
                str_cat(next.path, ": changed but need a restart (kept their current values): ", keys),
                need_restart.front());
}

}  // namespace shoal::daemon

// shoal: the operator's command-line tool, for a running daemon or a local data directory.
//
//   shoal [--connect SOCKET | --data DIR] [--json] <command> ...
// The data verbs (collection, put/upsert, get, delete, search, import, count, stats) run through
// capi::Backend (node/capi/backend.hpp), the interface behind a shoal_db: against a running
// shoald (client mode, libshoal_client) with --connect SOCKET, and by default when -d is not
// given and $SHOAL_SOCKET (else /run/shoal/shoald.sock) exists; otherwise on the data directory
// (embedded mode: the node runs in this process). One code path per verb for both modes. `status`,
// `sink status`, `tier`, `bootstrap` and `search --cold` need the daemon (its sink link and config). init, export, backup, restore, compact and mesh work on files only.
//     init                                   create the data directory
//     collection create NAME --dim N [--metric l2|ip|cosine] [--m 16] [--ef-construction 200]
//                                            [--ef 64] [--quantization int8|none]
//                                            [--quant-min A --quant-max B]
//     collection list | collection drop NAME | collection info NAME
//     put (or upsert) COLL ID --vector 1,2,3 [--meta key=value ...] [--model TAG]
//     get COLL ID [--full]                   vectors compact unless --full
//     delete COLL ID
//     count COLL
//     import COLL FILE [--format idx|fvecs|npy|jsonl] [--limit N] [--batch 1000] [--id-prefix P]
//                      [--ids FILE] [--metadata FILE] [--skip N]   streamed; Ctrl-C stops after
//                                            the current batch and prints the --skip to resume
//     export COLL [FILE] [--format jsonl|npy] [--ids FILE] [--metadata FILE]
//                                            the records as JSON lines, or as .npy with the ids
//                                            and metadata in side files (records_io.hpp)
//     search COLL (--vector 1,2,3 | --query-file FILE --row I) [-k 10] [--ef 0] [--filter EXPR]
//                 [--cold]                   --cold: the sink's records too (daemon only)
//     stats
//     status                                 the daemon's peers and sink backlog
//     sink status                            the daemon's link to its sink: backlog, last ack, bytes
//     tier [COLL]                            the tier policy in effect per collection (set in the
//                                            config file's [tiers], reloaded on SIGHUP)
//     bootstrap COLL                         restore COLL from the daemon's sink, then peers catch up
//     backup DEST [--compact]                a consistent copy of the store into DEST (closed dir)
//     restore BACKUP                         create the data directory from BACKUP, new incarnation
//     compact                                rewrite the store without its free pages
//   shoal --version
// Exit codes: 0 success; 1 the request failed (the message names the reason); 2 usage error (an
// unknown command or option, a missing or malformed argument; JSON under --json); 130 an import
// stopped by Ctrl-C (after its current batch). --json, --data and --connect may come anywhere on
// the line.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <csignal>
#include <functional>
#include <limits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <pthread.h>
#include <unistd.h>
#include <iostream>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "common/hex.hpp"
#include "common/log.hpp"
#include "common/time.hpp"
#include "common/whole_number.hpp"
#include "node/capi/backend.hpp"
#include "node/capi/client_loader.hpp"
#include "node/capi/embedded.hpp"
#include "node/runtime/data_dir.hpp"
#include "node/io/datasets.hpp"
#include "node/tools/mesh_commands.hpp"
#include "node/tools/records_io.hpp"
#include "node/tools/streams.hpp"

using namespace shoal;
using namespace shoal::node;
using nlohmann::json;

namespace {

struct Globals {
  std::string data = "./shoal-data";
  std::string connect;  // --connect SOCKET
  bool json_output = false;
};

constexpr const char* kDefaultSocket = "/run/shoal/shoald.sock";

// Set by SIGINT during an import: the import finishes its current batch and stops.
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_sigint(int) { g_stop = 1; }

// Every JSON output goes through here: a store may hold ids, model tags and metadata strings
// written before UTF-8 was enforced, and printing them must never fail; invalid bytes are
// printed as U+FFFD (docs/api.md).
std::string dump(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

// `get` of a record evicted to the cold tier whose vector could not be fetched from the sink
// (docs/api.md, "CLI"): the metadata is printed, the reason goes to stderr.
constexpr int kExitCold = 3;

int fail(const Globals& g, const Status& s) {
  if (g.json_output) {
    std::cout << dump(json{{"ok", false}, {"code", s.full_code()}, {"error", s.to_string()}}) << "\n";
  } else {
    std::cerr << "shoal: " << s.to_string() << "\n";
  }
  return 1;
}

// A usage error found after parsing (an option value that cannot work): exit code 2.
int fail_usage(const Globals& g, const std::string& message) {
  const Status s(Code::kInvalidArgument, message);
  if (g.json_output) {
    std::cout << dump(json{{"ok", false}, {"code", s.full_code()}, {"error", s.to_string()}, {"usage", true}}) << "\n";
  } else {
    std::cerr << "shoal: " << s.to_string() << "\n";
  }
  return 2;
}

// A filter that does not parse: the status, and on a terminal-style output the filter with a
// caret under the byte where parsing stopped; in JSON the offset as "error_offset".
int fail_filter(const Globals& g, const Status& s, const std::string& filter, std::size_t offset) {
  if (g.json_output) {
    std::cout << dump(json{{"ok", false}, {"code", s.full_code()}, {"error", s.to_string()},
                           {"error_offset", offset}})
              << "\n";
    return 1;
  }
  std::cerr << "shoal: " << s.to_string() << "\n  " << escape_for_message(filter, 200) << "\n  ";
  // The caret column counts the escaped rendering of the bytes before the offset.
  std::cerr << std::string(escape_for_message(std::string_view(filter).substr(0, offset), 200).size(), ' ')
            << "^\n";
  return 1;
}

// "0.9,0.1,-2e-3": decimal floats separated by commas (spaces around them allowed, a leading '+'
// too). "nan" and "inf" parse, and the node refuses them with the component's index.
Result<std::vector<float>> parse_vector(const std::string& text) {
  std::vector<float> v;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view item(text.data() + pos, end - pos);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    std::string_view digits = item;
    if (digits.size() > 1 && digits.front() == '+' && digits[1] != '-') digits.remove_prefix(1);
    float x = 0;
    const auto [stop, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), x);
    const std::string what = str_cat("vector component ", v.size(), " '", item, "'");
    if (ec == std::errc::result_out_of_range) {
      return Status(Detail::kOutOfRange, what + " is outside the float range (a magnitude of 1.4e-45 .. 3.4e38, or 0)");
    }
    if (digits.empty() || ec != std::errc() || stop != digits.data() + digits.size()) {
      return Status(Detail::kMalformed, what + " is not a decimal number");
    }
    v.push_back(x);
    pos = end + 1;
  }
  return v;
}

// CLI11 reads "-1" into a 64-bit unsigned option as its largest value (`import --limit -1`
// imported everything, `search --row -1` asked for row 18446744073709551615) and refuses a
// too large number for a 32-bit one without saying the limit. Every count option takes decimal
// digits only, up to the largest value of its type; anything else is a usage error naming both.
template <typename T>
CLI::Validator whole_number() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        constexpr T kMax = std::numeric_limits<T>::max();
        if (parse_whole_number<T>(text, 0, kMax)) return {};
        return whole_number_refusal<T>(0, kMax, escape_for_message(text, 40));
      },
      "");
}

json meta_json(const Metadata& m) {
  json out = json::object();
  for (const auto& [k, v] : m.fields) {
    std::visit(
        [&](const auto& x) {
          if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::string>) {
            out[to_valid_utf8(k)] = to_valid_utf8(x);
          } else {
            out[to_valid_utf8(k)] = x;
          }
        },
        v);
  }
  return out;
}

Result<Metadata> parse_meta(const std::vector<std::string>& items) {
  Metadata m;
  for (const auto& item : items) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status(Detail::kMalformed, str_cat("metadata '", escape_for_message(item, 200), "' must be key=value"));
    }
    // Reuse the filter value grammar: int, float, true/false, "quoted string", else string. A
    // --meta item is exactly one key=value: another operator (year>=5) or a second condition
    // (a=1,b=2) would otherwise be stored as something the user did not write.
    auto f = parse_filter(item);
    if (!f.ok()) {
      std::string why = f.status().message();
      if (why.rfind("filter: ", 0) == 0) why.erase(0, 8);
      if (auto at = why.find("the end of the filter"); at != std::string::npos) why.replace(at + 15, 6, "item");
      const bool hint = item.find_first_of(",?") != std::string::npos;
      return Status(Detail::kMalformed, str_cat("metadata '", escape_for_message(item, 200), "': ", why,
                                                hint ? " (quote a value holding ',' or '?': key=\"a, b\")" : ""));
    }
    if (f->all.size() != 1 || f->all[0].op != Condition::Op::kEq) {
      return Status(Detail::kMalformed,
                    str_cat("metadata '", escape_for_message(item, 200), "' must be one key=value, got ",
                            f->all.size(), f->all.size() == 1 ? " condition with another operator than '='"
                                                              : " conditions (give --meta once per field)"));
    }
    m.fields.emplace_back(f->all[0].key, f->all[0].value);
  }
  m.normalize();
  return m;
}

// What a hit's distance is, per metric, exactly as node/core and index/ compute it
// (index/topk.hpp float_distance; cosine vectors are stored normalized and scored 1 - dot).
std::string distance_label(Metric m) {
  switch (m) {
    case Metric::kL2: return "squared L2";
    case Metric::kInnerProduct: return "inner product distance (1 - dot)";
    case Metric::kCosine: return "cosine distance (1 - cos)";
  }
  return "distance";
}

std::string num(float x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", static_cast<double>(x));
  return buf;
}

// "dim 784 [0, 0, 12, 255, ..., 0, 3]": all values up to 8, else the first 4 and the last 2.
std::string compact_vector(const std::vector<float>& v, bool full) {
  std::string out = str_cat("dim ", v.size(), " [");
  const bool all = full || v.size() <= 8;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!all && i == 4) {
      out += "..., ";
      i = v.size() - 2;
    }
    out += num(v[i]);
    if (i + 1 < v.size()) out += ", ";
  }
  out += "]";
  if (!all) out += " (--full for all)";
  return out;
}

std::string age_text(std::int64_t ms) {
  if (ms < 0) return "no delta since the daemon started";
  char buf[64];
  if (ms < 1000) std::snprintf(buf, sizeof buf, "%lld ms since the last delta", static_cast<long long>(ms));
  else std::snprintf(buf, sizeof buf, "%.1f s since the last delta", static_cast<double>(ms) / 1000.0);
  return buf;
}

std::string short_age(std::int64_t ms) {
  if (ms < 0) return "never";
  char buf[32];
  if (ms < 1000) std::snprintf(buf, sizeof buf, "%lld ms", static_cast<long long>(ms));
  else std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

// `shoal status`'s table, from the daemon's statistics (node/daemon/local_api.cpp stats_json).
void print_status(const json& s, const std::string& socket) {
  auto get = [&](const json& j, const char* key) -> std::string {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return "-";
    return it->is_string() ? it->get<std::string>() : it->dump();
  };
  std::cout << "shoald at " << socket << ": replica " << get(s, "replica") << ", " << get(s, "collections")
            << " collections, " << get(s, "live_records") << " records, delta buffer "
            << get(s, "delta_buffer_entries") << " entries\n";
  const json peers = s.contains("peers") && s["peers"].is_array() ? s["peers"] : json::array();
  if (peers.empty()) {
    std::cout << "peers: none\n";
  } else {
    std::printf("%-24s %-14s %-5s %-12s %-16s %12s %12s\n", "DEVICE", "REPLICA", "TIER", "STATE", "SINCE LAST DELTA",
                "BYTES IN", "BYTES OUT");
    std::fflush(stdout);
    for (const auto& p : peers) {
      std::string replica = get(p, "replica");
      if (replica.size() > 12) replica = replica.substr(0, 12) + "..";
      const bool up = p.value("up", false);
      const std::int64_t since = p.value("since_last_delta_ms", std::int64_t{-1});
      std::printf("%-24s %-14s %-5s %-12s %-16s %12s %12s\n", escape_for_message(get(p, "device"), 24).c_str(),
                  replica.c_str(), get(p, "tier").c_str(),
                  up ? "up" : p.value("partitioned", false) ? "partitioned" : "linking", short_age(since).c_str(),
                  get(p, "bytes_in").c_str(), get(p, "bytes_out").c_str());
    }
    std::fflush(stdout);
  }
  const auto sink = s.find("sink");
  if (sink == s.end() || !sink->is_object()) {
    std::cout << "sink: none configured\n";
    return;
  }
  const json& k = *sink;
  std::cout << "sink " << escape_for_message(get(k, "address"), 64) << ": "
            << (k.value("connected", false) ? "connected" : "not connected") << ", backlog "
            << get(k, "backlog_entries") << " entries (quota " << get(k, "quota_entries") << "), "
            << get(k, "uploads") << " uploads acknowledged (" << get(k, "bytes") << " bytes), "
            << get(k, "quota_refusals") << " writes refused at the quota";
  if (k.value("full_state_pending", false)) std::cout << ", sending collections whole";
  const std::string err = get(k, "last_error");
  if (!k.value("connected", false) && err != "-" && !err.empty()) {
    std::cout << "; last error: " << escape_for_message(err, 200);
  }
  std::cout << "\n";
  if (k.contains("payload_budget_bytes") && get(k, "payload_budget_bytes") != "0") {
    std::cout << "eviction: " << get(k, "evicted_records") << " records evicted to the sink (" << get(k, "evicted_bytes")
              << " bytes), " << get(k, "payload_held_bytes") << " bytes held of a budget of "
              << get(k, "payload_budget_bytes") << "\n";
  }
  if (k.contains("memory_budget_bytes") && get(k, "memory_budget_bytes") != "0") {
    std::cout << "eviction: " << get(k, "index_held_bytes") << " bytes of index memory held of a budget of "
              << get(k, "memory_budget_bytes") << "\n";
  }
}

std::string wall_ms_text(std::int64_t unix_ms) {
  const std::int64_t age = now_wall().ns() / 1'000'000 - unix_ms;
  return str_cat(short_age(age < 0 ? 0 : age), " ago");
}

// `search --cold`: the daemon's hits and its sink's, merged (docs/tiers.md, "Cold search").
int print_cold_search(const Globals& g, capi::Backend& db, const std::string& collection, const std::vector<float>& q,
                      std::uint32_t k, std::uint32_t ef) {
  const MonoTime t0 = now_mono();
  auto answer = db.search_cold(collection, q, k, ef);
  const auto us = (now_mono() - t0).us();
  if (!answer.ok()) return fail(g, answer.status());
  auto info = db.collection_info(collection);
  const std::string label = info.ok() ? distance_label(info->spec.metric) : "distance";
  json arr = json::array();
  json fresh = json::array();
  for (const auto& h : answer->hits) {
    arr.push_back({{"id", h.id}, {"distance", h.distance}, {"tier", h.cold ? "cold" : "local"}});
  }
  for (const auto& f : answer->freshness) {
    fresh.push_back({{"device", to_valid_utf8(f.device)}, {"replica", common::to_hex(f.replica)},
                     {"since_last_delta_ms", f.since_last_delta_ms}, {"up", f.up}});
  }
  json sink{{"answered", answer->sink_answered}};
  if (answer->sink_answered) {
    sink["objects"] = answer->sink_objects;
    sink["records"] = answer->sink_records;
    sink["last_ack_unix_ms"] = answer->sink_last_ack_wall_ns / 1'000'000;
  } else {
    sink["code"] = answer->sink_error.full_code();
    sink["error"] = answer->sink_error.to_string();
  }
  if (g.json_output) {
    json out{{"ok", true}, {"hits", arr}, {"latency_us", us}, {"distance", label}, {"freshness", fresh}, {"sink", sink}};
    if (info.ok()) out["metric"] = metric_name(info->spec.metric);
    std::cout << dump(out) << "\n";
    return 0;
  }
  std::cout << "# id\t" << label << "\ttier\n";
  for (const auto& h : answer->hits) {
    std::cout << escape_for_message(h.id, 1024) << "\t" << h.distance << "\t" << (h.cold ? "cold" : "local") << "\n";
  }
  std::cerr << answer->hits.size() << " hits in " << us << " us; distances are " << label << "\n";
  if (answer->sink_answered) {
    std::cerr << "sink: " << answer->sink_records << " live records in " << answer->sink_objects
              << " objects, last acknowledgement "
              << (answer->sink_last_ack_wall_ns > 0 ? wall_ms_text(answer->sink_last_ack_wall_ns / 1'000'000) : "never")
              << "\n";
  } else {
    std::cerr << "sink did not answer (local hits only): " << answer->sink_error.to_string() << "\n";
  }
  if (answer->freshness.empty()) std::cerr << "freshness: the daemon has no peers (its own data only)\n";
  for (const auto& f : answer->freshness) {
    std::cerr << "freshness: " << escape_for_message(f.device, 128) << " " << (f.up ? "up" : "not linked") << ", "
              << age_text(f.since_last_delta_ms) << "\n";
  }
  return 0;
}

// `shoal sink status`, from the daemon's statistics' "sink" object (local_api.cpp stats_json).
int print_sink_status(const Globals& g, const json& stats) {
  const auto sink = stats.find("sink");
  const bool configured = sink != stats.end() && sink->is_object();
  if (g.json_output) {
    json out = configured ? *sink : json::object();
    out["configured"] = configured;
    out["ok"] = true;
    std::cout << dump(out) << "\n";
    return 0;
  }
  if (!configured) {
    std::cout << "sink: none configured (shoald's [sink] address)\n";
    return 0;
  }
  const json& k = *sink;
  auto get = [&](const char* key) -> std::string {
    auto it = k.find(key);
    if (it == k.end() || it->is_null()) return "-";
    return it->is_string() ? escape_for_message(it->get<std::string>(), 200) : it->dump();
  };
  std::cout << "sink:            " << get("address") << "\n"
            << "connected:       " << (k.value("connected", false) ? "yes" : "no") << "\n"
            << "backlog:         " << get("backlog_entries") << " delta buffer entries (quota " << get("quota_entries")
            << ")" << (k.value("full_state_pending", false) ? ", sending collections whole" : "") << "\n";
  const auto last = k.find("last_ack_unix_ms");
  std::cout << "last ack:        "
            << (last != k.end() && last->is_number() ? wall_ms_text(last->get<std::int64_t>()) : std::string("never"))
            << "\n"
            << "uploaded:        " << get("uploads") << " uploads, " << get("bytes") << " bytes acknowledged, "
            << get("upload_failures") << " failed\n"
            << "quota refusals:  " << get("quota_refusals") << " writes\n";
  const std::string err = get("last_error");
  if (err != "-" && !err.empty()) std::cout << "last error:      " << err << "\n";
  return 0;
}

// `shoal tier [COLL]`: the policy in effect per collection (the daemon's "tiers": defaults and
// the collections its config names; docs/tiers.md).
int print_tiers(const Globals& g, const json& stats, const std::vector<CollectionInfo>& infos, const std::string& only) {
  const auto tiers = stats.find("tiers");
  if (tiers == stats.end() || !tiers->is_object() || !tiers->contains("defaults")) {
    return fail(g, Status(Code::kUnimplemented, "this daemon does not report its tier policies (an older shoald)"));
  }
  const json& defaults = (*tiers)["defaults"];
  const json named = tiers->value("collections", json::object());
  std::vector<std::string> names;
  for (const auto& info : infos) names.push_back(info.spec.name);
  // Policies the config names for collections that do not exist (yet) are shown too.
  for (const auto& [name, p] : named.items()) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  if (!only.empty()) {
    if (std::find(names.begin(), names.end(), only) == names.end()) {
      return fail(g, Status(Detail::kNoSuchCollection, "no collection '" + only + "' on this daemon, and its config names none"));
    }
    names = {only};
  }
  json rows = json::array();
  for (const auto& name : names) {
    const bool configured = named.contains(name);
    json row = configured ? named[name] : defaults;
    row["collection"] = name;
    row["source"] = configured ? "[[tiers.collections]]" : "[tiers] defaults";
    row["exists"] = std::any_of(infos.begin(), infos.end(), [&](const CollectionInfo& i) { return i.spec.name == name; });
    rows.push_back(std::move(row));
  }
  if (g.json_output) {
    std::cout << dump(json{{"ok", true}, {"collections", rows}, {"defaults", defaults}}) << "\n";
    return 0;
  }
  std::printf("%-24s %-5s %-14s %-16s %-5s %-12s %s\n", "COLLECTION", "WARM", "WARM INTERVAL", "WARM BUDGET", "SINK",
              "HOT WINDOW", "FROM");
  for (const auto& r : rows) {
    const std::int64_t interval = r.value("warm_interval_ms", std::int64_t{0});
    const std::uint64_t budget = r.value("warm_budget_bytes", std::uint64_t{0});
    // The hot window matters only where records go to the sink (eviction spares newer ones).
    const std::int64_t hot = r.value("hot_window_ms", std::int64_t{-1});
    std::printf("%-24s %-5s %-14s %-16s %-5s %-12s %s%s\n", escape_for_message(r["collection"].get<std::string>(), 24).c_str(),
                r.value("warm", true) ? "yes" : "no", interval == 0 ? "default" : short_age(interval).c_str(),
                budget == 0 ? "none" : str_cat(budget, " B").c_str(), r.value("sink", false) ? "yes" : "no",
                hot < 0 ? "-" : short_age(hot).c_str(), r["source"].get<std::string>().c_str(),
                r["exists"].get<bool>() ? "" : " (no such collection yet)");
  }
  std::fflush(stdout);
  std::cout << "policies are set in shoald's config file ([tiers]) and applied with SIGHUP\n";
  return 0;
}

// Renders a progress bar on stderr when it is a terminal, else a line every 10%.
class Progress {
 public:
  explicit Progress(std::size_t total) : total_(total), start_(now_mono()) {}
  void update(std::size_t done) {
    if (total_ == 0) {  // unknown total: a count every 10,000 records
      if (done / 10000 == last_count_ / 10000) return;
      last_count_ = done;
      const double secs = (now_mono() - start_).seconds_f();
      std::fprintf(stderr, "%s%zu records %.0f/s%s", tty_ ? "\r" : "", done, secs > 0 ? static_cast<double>(done) / secs : 0.0,
                   tty_ ? "" : "\n");
      std::fflush(stderr);
      return;
    }
    const int pct = static_cast<int>(100 * std::min(done, total_) / total_);
    if (pct == last_) return;
    last_ = pct;
    const double secs = (now_mono() - start_).seconds_f();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    if (!tty_ && pct % 10 != 0) return;
    const int width = 30;
    std::string bar(static_cast<std::size_t>(width * pct / 100), '#');
    bar.resize(width, '.');
    std::fprintf(stderr, "%s[%s] %3d%% %zu/%zu %.0f vectors/s%s", tty_ ? "\r" : "", bar.c_str(), pct,
                 done, total_, rate, tty_ ? "" : "\n");
    if (tty_ && done == total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  std::size_t total_;
  bool tty_ = ::isatty(2) != 0;
  MonoTime start_;
  int last_ = -1;
  std::size_t last_count_ = 0;
};

// Parses the command line. Returns -1 to go on, or the exit code to end with: 0 after --help or
// --version (printed by CLI11), 2 after a usage error (printed like fail(), as JSON under --json,
// which is looked for on the whole line since the parse stopped early), or the code a subcommand's
// callback ended the parse with (mesh_commands.cpp; it printed its own message).
int parse_command_line(CLI::App& app, Globals& g, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    for (int i = 1; i < argc; ++i) {
      if (std::string_view(argv[i]) == "--json") g.json_output = true;
    }
    const Status s(Code::kInvalidArgument, e.what());
    if (g.json_output) {
      std::cout << dump(json{{"ok", false}, {"code", s.full_code()}, {"error", s.to_string()}, {"usage", true}})
                << "\n";
    } else {
      std::cerr << "shoal: " << e.what() << "\nRun 'shoal --help' (or 'shoal COMMAND --help') for usage.\n";
    }
    return 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  CLI::App app{"shoal: manage a local Shoal data directory"};
  // The global options may come anywhere on the line (`shoal collection list --json`): options a
  // subcommand does not know fall through to the parent. Set before any subcommand is added, which
  // inherits it.
  app.fallthrough();
  auto* data_opt = app.add_option("--data,-d", g.data, "data directory (offline: the node runs in this process)")
                       ->capture_default_str();
  auto* connect_opt = app.add_option("--connect", g.connect,
                                     "a running shoald's socket (default when -d is not given: $SHOAL_SOCKET, else " +
                                         std::string(kDefaultSocket) + ", when it exists)");
  app.add_flag("--json", g.json_output, "machine-readable JSON output");
  app.set_version_flag("--version", std::string("shoal ") + SHOAL_VERSION_STRING);
  app.require_subcommand(1);

  auto* init = app.add_subcommand("init", "create the data directory");

  auto* coll = app.add_subcommand("collection", "create, list or drop collections");
  coll->require_subcommand(1);
  CollectionSpec spec;
  std::string metric = "l2";
  auto* ccreate = coll->add_subcommand("create", "create a collection");
  ccreate->add_option("name", spec.name)->required();
  ccreate->add_option("--dim", spec.dimension, "vector dimension")->required()->check(whole_number<std::uint32_t>());
  ccreate->add_option("--metric", metric, "l2, ip or cosine")->capture_default_str();
  ccreate->add_option("--m", spec.m, "HNSW graph degree")->capture_default_str()->check(whole_number<std::uint32_t>());
  ccreate->add_option("--ef-construction", spec.ef_construction)
      ->capture_default_str()
      ->check(whole_number<std::uint32_t>());
  ccreate->add_option("--ef,--ef-search", spec.ef_search, "default search beam (ef when a search passes 0)")
      ->capture_default_str()
      ->check(whole_number<std::uint32_t>());
  std::string quantization = "int8";
  ccreate->add_option("--quantization", quantization,
                      "int8 (graph vectors as int8, results re-ranked with the floats) or none")
      ->check(CLI::IsMember({"int8", "none"}))
      ->capture_default_str();
  ccreate->add_flag("--quantize")->description("same as --quantization int8 (kept for scripts)");
  // Explicit int8 range (L2 and ip: calibrated from the data when both are 0; cosine: [-1, 1]).
  ccreate->add_option("--quant-min", spec.quant_min);
  ccreate->add_option("--quant-max", spec.quant_max);
  auto* clist = coll->add_subcommand("list", "list collections");
  std::string drop_name;
  auto* cdrop = coll->add_subcommand("drop", "drop a collection and its records");
  cdrop->add_option("name", drop_name)->required();
  auto* cinfo = coll->add_subcommand("info", "a collection's parameters and size");
  cinfo->add_option("name", drop_name)->required();

  std::string c_name, r_id, vector_text, model, filter_text, query_file, format;
  std::vector<std::string> meta_items;
  auto* put = app.add_subcommand("put", "insert or replace one record");
  put->alias("upsert");
  put->add_option("collection", c_name)->required();
  put->add_option("id", r_id)->required();
  put->add_option("--vector", vector_text, "comma-separated floats")->required();
  put->add_option("--meta", meta_items, "key=value (repeatable)");
  put->add_option("--model", model, "embedding-model tag");

  bool full = false;
  auto* get = app.add_subcommand("get", "read one record with its siblings");
  get->add_option("collection", c_name)->required();
  get->add_option("id", r_id)->required();
  get->add_flag("--full", full, "print every vector component (default: the first and last few)");

  auto* count = app.add_subcommand("count", "the number of live records in a collection");
  count->add_option("collection", c_name)->required();

  auto* del = app.add_subcommand("delete", "delete one record");
  del->add_option("collection", c_name)->required();
  del->add_option("id", r_id)->required();

  std::string file;
  std::size_t limit = 0, batch = 1000;
  std::string id_prefix, ids_file, meta_file;
  std::uint64_t skip = 0;
  auto* imp = app.add_subcommand("import", "import vectors from IDX (.gz), .fvecs or .npy, or records from JSON lines");
  imp->add_option("collection", c_name)->required();
  imp->add_option("file", file)->required();
  imp->add_option("--format", format, "idx, fvecs, npy or jsonl (default: from the file name; '-' is jsonl)");
  imp->add_option("--limit", limit, "import at most N vectors")->check(whole_number<std::size_t>());
  imp->add_option("--batch", batch, "records per atomic batch")->capture_default_str()->check(whole_number<std::size_t>());
  imp->add_option("--id-prefix", id_prefix, "ids are <prefix><row number>");
  imp->add_option("--model", model, "embedding-model tag");
  imp->add_option("--ids", ids_file, "vector files: the ids, one per line (default: <prefix><row number>)");
  imp->add_option("--metadata", meta_file, "vector files: each row's metadata, a JSON object per line");
  imp->add_option("--skip", skip, "pass over the first N records (resume an interrupted import)")
      ->check(whole_number<std::uint64_t>());

  std::uint32_t k = 10, ef = 0;
  std::size_t row = 0;
  auto* search = app.add_subcommand("search", "k-nearest-neighbour search");
  search->add_option("collection", c_name)->required();
  auto* vopt = search->add_option("--vector", vector_text, "comma-separated floats");
  auto* qopt = search->add_option("--query-file", query_file, "take the query from this file");
  vopt->excludes(qopt);
  search->add_option("--row", row, "row of --query-file")->capture_default_str()->check(whole_number<std::size_t>());
  search->add_option("-k", k)->capture_default_str()->check(whole_number<std::uint32_t>());
  search->add_option("--ef", ef, "beam width (0: the collection default)")
      ->capture_default_str()
      ->check(whole_number<std::uint32_t>());
  search->add_option("--filter", filter_text, "e.g. color=red,year>=2020");
  bool cold_search = false;
  search->add_flag("--cold", cold_search, "include the cold tier: the daemon's sink answers too (docs/tiers.md)");

  std::string export_to, export_format, export_ids, export_meta;
  auto* exp = app.add_subcommand("export", "write a collection's records as JSON lines or NumPy .npy");
  exp->add_option("collection", c_name)->required();
  exp->add_option("file", export_to, "output file (default: standard output, JSON lines)");
  exp->add_option("--format", export_format, "jsonl or npy (default: npy for a FILE ending in .npy, else jsonl)");
  exp->add_option("--ids", export_ids, "npy: the ids file, one per line (default: FILE without .npy + .ids.txt)");
  exp->add_option("--metadata", export_meta,
                  "npy: the metadata file, a JSON object per line (default: FILE without .npy + .metadata.jsonl)");

  auto* stats = app.add_subcommand("stats", "node statistics");
  auto* status = app.add_subcommand("status", "a running daemon's peers, tiers, lag and sink backlog");
  auto* sink_cmd = app.add_subcommand("sink", "the daemon's cold-tier sink");
  sink_cmd->require_subcommand(1);
  auto* sink_status = sink_cmd->add_subcommand("status", "the sink link: connected, backlog, last acknowledgement, bytes, quota");
  std::string tier_name;
  std::vector<std::string> tier_set;
  auto* tier = app.add_subcommand("tier", "the tier policy in effect per collection (the config file's [tiers])");
  tier->add_option("collection", tier_name, "one collection (default: every collection)");
  tier->add_option("--set", tier_set, "not supported: policies are set in shoald's config file and reloaded on SIGHUP");
  auto* boot = app.add_subcommand("bootstrap", "restore a collection from the daemon's sink (a new or replaced device)");
  boot->add_option("collection", c_name, "the collection (it must exist on this device)")->required();

  // Maintenance of a closed data directory (docs/operations.md): they take the directory's lock
  // themselves and never open the node.
  std::string backup_dest, restore_from;
  bool backup_compact = false;
  auto* backup = app.add_subcommand("backup", "write a consistent copy of the store to DEST");
  backup->add_option("dest", backup_dest, "a new (or empty) directory")->required();
  backup->add_flag("--compact", backup_compact, "leave free pages out of the copy");
  auto* restore = app.add_subcommand("restore", "create the data directory from a backup, under a new incarnation");
  restore->add_option("backup", restore_from, "a directory written by 'shoal backup'")->required();
  auto* compact = app.add_subcommand("compact", "rewrite the store without its free pages");

  add_mesh_commands(app, g.json_output);

  if (const int rc = parse_command_line(app, g, argc, argv); rc >= 0) return rc;

  const bool data_given = data_opt->count() > 0;
  const bool connect_given = connect_opt->count() > 0;
  if (data_given && connect_given) return fail_usage(g, "give --connect SOCKET or -d DIR, not both");
  if (connect_given && (init->parsed() || backup->parsed() || restore->parsed() || compact->parsed())) {
    return fail_usage(g, "init, backup, restore and compact work on a data directory (-d DIR), not through the daemon");
  }

  if (backup->parsed() || restore->parsed() || compact->parsed()) {
    Result<StoreCopyReport> r = backup->parsed()    ? backup_data_dir(g.data, backup_dest, backup_compact)
                                : restore->parsed() ? restore_data_dir(restore_from, g.data, DataDirOptions{})
                                                    : compact_data_dir(g.data);
    if (!r.ok()) return fail(g, r.status());
    const char* verb = backup->parsed() ? "backup" : restore->parsed() ? "restore" : "compact";
    if (g.json_output) {
      json out{{"ok", true}, {verb, backup->parsed() ? backup_dest : g.data}, {"replica", r->replica},
               {"source_bytes", r->source_bytes}, {"copy_bytes", r->copy_bytes}};
      if (!r->note.empty()) out["note"] = r->note;
      std::cout << dump(out) << "\n";
      return 0;
    }
    if (backup->parsed()) {
      std::cout << "backed up " << g.data << " (replica " << r->replica << ") to " << backup_dest << ": "
                << r->copy_bytes << " bytes" << (backup_compact ? " (compacted from " : " (store file ")
                << r->source_bytes << ")\n";
    } else if (restore->parsed()) {
      std::cout << "restored " << restore_from << " into " << g.data << " under the new incarnation "
                << r->replica << " (" << r->copy_bytes << " bytes)\n";
    } else {
      std::cout << "compacted " << g.data << ": " << r->source_bytes << " -> " << r->copy_bytes << " bytes\n";
    }
    if (!r->note.empty()) std::cerr << "shoal: note: " << r->note << "\n";
    return 0;
  }

  // Export (records_io.hpp): offline it reads the store directly (no index is loaded); against a
  // running daemon it pages through the local API. `open` gives the source once the arguments
  // are checked.
  using OpenExport = std::function<Result<std::unique_ptr<tools::ExportSource>>()>;
  auto run_export = [&](const OpenExport& open) -> int {
    if (export_format == "npy" || (export_format.empty() && export_to.ends_with(".npy"))) {
      if (export_to.empty() || export_to == "-") {
        return fail_usage(g, "export --format npy needs an output FILE (a .npy file is written in place, not streamed)");
      }
      const std::string base = export_to.ends_with(".npy") ? export_to.substr(0, export_to.size() - 4) : export_to;
      const tools::NpyExportFiles files{export_to, export_ids.empty() ? base + ".ids.txt" : export_ids,
                                        export_meta.empty() ? base + ".metadata.jsonl" : export_meta};
      const MonoTime start = now_mono();
      auto source = open();
      if (!source.ok()) return fail(g, source.status());
      auto r = tools::export_npy(**source, files);
      if (!r.ok()) return fail(g, r.status());
      const double secs = (now_mono() - start).seconds_f();
      if (g.json_output) {
        return std::cout << dump(json{{"ok", true}, {"exported", r->records}, {"file", files.vectors},
                                      {"ids", files.ids}, {"metadata", files.metadata}, {"dim", r->dim},
                                      {"model", r->model}, {"seconds", secs}}) << "\n", 0;
      }
      std::cerr << "exported " << r->records << " records of " << c_name << " (" << r->dim << "-d float32) in " << secs
                << " s: vectors " << files.vectors << ", ids " << files.ids << ", metadata " << files.metadata << "\n";
      if (!r->model.empty()) {
        std::cerr << "shoal: note: every record has the model tag '" << r->model << "'; import with --model "
                  << r->model << " to keep it\n";
      }
      return 0;
    }
    if (!export_format.empty() && export_format != "jsonl") {
      return fail_usage(g, "unknown export format '" + export_format + "'; expected jsonl or npy");
    }
    if (!export_ids.empty() || !export_meta.empty()) {
      return fail_usage(g, "--ids and --metadata are for .npy exports; JSON lines carry their ids and metadata");
    }
    {
      // Under --json the records go to the file and the summary to stdout; without a file, the
      // records are the output.
      const bool to_stdout = export_to.empty() || export_to == "-";
      if (to_stdout && g.json_output) {
        return fail_usage(g, "export --json needs an output file (the records are JSON already)");
      }
      // The source first: a missing collection creates no file.
      auto source = open();
      if (!source.ok()) return fail(g, source.status());
      std::ofstream file_out;
      if (!to_stdout) {
        file_out.open(export_to, std::ios::binary | std::ios::trunc);
        if (!file_out) return fail(g, Status(Code::kIo, "cannot create the export file", export_to));
      }
      const MonoTime start = now_mono();
      auto n_written = tools::export_jsonl(**source, to_stdout ? std::cout : file_out);
      if (!n_written.ok()) return fail(g, n_written.status());
      const double secs = (now_mono() - start).seconds_f();
      if (g.json_output) return std::cout << dump(json{{"ok", true}, {"exported", *n_written}, {"file", export_to},
                                                       {"seconds", secs}}) << "\n", 0;
      std::cerr << "exported " << *n_written << " records of " << c_name << " in " << secs << " s\n";
      return 0;
    }
  };

  // Client mode (the daemon) or embedded mode (the data directory), behind one interface.
  std::string socket = g.connect;
  if (socket.empty() && !data_given) {
    const char* env = std::getenv("SHOAL_SOCKET");
    const std::string fallback = env != nullptr && *env != '\0' ? env : kDefaultSocket;
    std::error_code ec;
    if (std::filesystem::exists(fallback, ec)) socket = fallback;
  }
  const bool remote = !socket.empty();
  if (exp->parsed() && !remote) return run_export([&] { return tools::open_store_export(g.data, c_name); });

  if (init->parsed()) {
    // Idempotent: an existing data directory is opened and left as it is, and says so.
    std::error_code ec;
    const bool existed = std::filesystem::exists(g.data + "/store/data.mdb", ec);
    auto dir = open_data_dir(g.data, DataDirOptions{});
    if (!dir.ok()) return fail(g, dir.status());
    const std::string replica = (*dir)->node().replica().to_string();
    if (g.json_output) {
      std::cout << dump(json{{"ok", true}, {"data", g.data}, {"replica", replica}, {"created", !existed}}) << "\n";
      return 0;
    }
    std::cout << (existed ? "already initialised " : "initialised ") << g.data << " (replica " << replica << ")\n";
    return 0;
  }

  if (tier->parsed() && !tier_set.empty()) {
    return fail_usage(g, "tier --set is not supported: a collection's tier policy is set in shoald's config file "
                         "([tiers] and [[tiers.collections]], docs/tiers.md) and applied with SIGHUP "
                         "(systemctl reload shoald); 'shoal tier' shows what is in effect");
  }
  if (search->parsed() && cold_search && !filter_text.empty()) {
    return fail_usage(g, "search --cold takes no --filter: the sink answers by distance only");
  }
  const bool daemon_only = status->parsed() || sink_status->parsed() || tier->parsed() || boot->parsed() ||
                           (search->parsed() && cold_search);
  if (daemon_only && !remote) {
    const char* verb = status->parsed() ? "status" : sink_status->parsed() ? "sink status" : tier->parsed() ? "tier"
                       : boot->parsed() ? "bootstrap" : "search --cold";
    return fail(g, Status(Code::kUnavailable, data_given ? str_cat(verb, " needs a running shoald (its sink link and "
                                                                   "config); -d opens a data directory offline: give "
                                                                   "--connect SOCKET")
                                                         : str_cat(verb, " needs a running shoald, and no socket is at ",
                                                                   kDefaultSocket, " (give --connect SOCKET or set "
                                                                   "SHOAL_SOCKET)")));
  }
  // The backend's threads (client mode's connection, embedded watches) inherit a mask with
  // SIGINT blocked, so an import's Ctrl-C reaches this thread and interrupts a blocked read.
  sigset_t sigint_only, old_mask;
  sigemptyset(&sigint_only);
  sigaddset(&sigint_only, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &sigint_only, &old_mask);
  std::unique_ptr<capi::Backend> db;
  if (remote) {
    auto entry = capi::load_client_library();
    if (!entry.ok()) return fail(g, entry.status());
    // A bootstrap lasts as long as the sink takes to send the collection: no call deadline.
    capi::ConnectOptions copts;
    if (boot->parsed()) copts.timeout_ms = 0;
    if (Status s = entry->connect_with(socket, copts, &db); !s.ok()) return fail(g, s);
  } else {
    if (!std::filesystem::exists(g.data + "/store")) {
      return fail(g, Status(Code::kNotFound, "no data directory here; create it with 'shoal init'", g.data));
    }
    auto b = capi::open_embedded(g.data, DataDirOptions{});
    if (!b.ok()) return fail(g, b.status());
    db = std::move(*b);
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (exp->parsed()) return run_export([&] { return tools::open_daemon_export(*db, c_name); });

  auto ok_json = [&](json extra) {
    extra["ok"] = true;
    std::cout << dump(extra) << "\n";
    return 0;
  };

  if (ccreate->parsed()) {
    auto m = parse_metric(metric);
    if (!m.ok()) return fail(g, m.status());
    spec.metric = *m;
    spec.quantize = quantization == "int8" || ccreate->count("--quantize") > 0;
    if (Status s = db->create_collection(spec); !s.ok()) return fail(g, s);
    if (g.json_output) return ok_json({{"created", spec.name}});
    std::cout << "created collection " << spec.name << "\n";
    return 0;
  }
  if (clist->parsed()) {
    auto infos = db->list_collections();
    if (!infos.ok()) return fail(g, infos.status());
    json arr = json::array();
    for (const auto& c : *infos) {
      arr.push_back({{"name", c.spec.name}, {"dimension", c.spec.dimension},
                     {"metric", metric_name(c.spec.metric)}, {"records", c.live_records},
                     {"index_bytes", c.index_bytes}});
      if (!g.json_output) {
        std::cout << c.spec.name << "  dim=" << c.spec.dimension << " metric="
                  << metric_name(c.spec.metric) << " records=" << c.live_records << "\n";
      }
    }
    if (g.json_output) return ok_json({{"collections", arr}});
    return 0;
  }
  if (cinfo->parsed() || count->parsed()) {
    auto info = db->collection_info(cinfo->parsed() ? drop_name : c_name);
    if (!info.ok()) return fail(g, info.status());
    if (count->parsed()) {
      if (g.json_output) return ok_json({{"collection", c_name}, {"count", info->live_records}});
      std::cout << info->live_records << "\n";
      return 0;
    }
    const auto& sp = info->spec;
    json out{{"name", sp.name}, {"dimension", sp.dimension}, {"metric", metric_name(sp.metric)},
             {"distance", distance_label(sp.metric)}, {"records", info->live_records}, {"m", sp.m},
             {"ef_construction", sp.ef_construction}, {"ef_search", sp.ef_search}, {"quantize", sp.quantize},
             {"index_bytes", info->index_bytes}};
    if (g.json_output) return ok_json(out);
    std::cout << sp.name << "  dim=" << sp.dimension << " metric=" << metric_name(sp.metric) << " ("
              << distance_label(sp.metric) << ") records=" << info->live_records << " m=" << sp.m
              << " ef_construction=" << sp.ef_construction << " ef_search=" << sp.ef_search
              << (sp.quantize ? " quantized" : "") << " index_bytes=" << info->index_bytes << "\n";
    return 0;
  }
  if (cdrop->parsed()) {
    if (Status s = db->drop_collection(drop_name); !s.ok()) return fail(g, s);
    if (g.json_output) return ok_json({{"dropped", drop_name}});
    std::cout << "dropped collection " << drop_name << "\n";
    return 0;
  }
  if (put->parsed()) {
    auto v = parse_vector(vector_text);
    if (!v.ok()) return fail(g, v.status());
    auto m = parse_meta(meta_items);
    if (!m.ok()) return fail(g, m.status());
    if (Status s = db->upsert(c_name, r_id, RecordValue{*v, *m, model}); !s.ok()) return fail(g, s);
    if (g.json_output) return ok_json({{"id", r_id}});
    std::cout << "stored " << r_id << "\n";
    return 0;
  }
  if (get->parsed()) {
    auto answer = db->get(c_name, r_id);
    if (!answer.ok()) return fail(g, answer.status());
    const node::GetResult* r = &answer->record;
    // An evicted record neither refilled from the sink: its metadata, the reason, exit code 3.
    const Status& cold = answer->cold;
    json sibs = json::array();
    for (const auto& s : r->siblings) {
      json one{{"vector", s.value.vector}, {"metadata", meta_json(s.value.metadata)}, {"model", s.value.model}};
      if (s.evicted) one["evicted"] = true;
      // The clock and dot are the node's; the local API does not carry them.
      if (!remote) {
        one["clock"] = s.clock.to_string();
        one["dot"] = s.dot.to_string();
      }
      sibs.push_back(std::move(one));
    }
    if (g.json_output) {
      if (cold.ok()) return ok_json({{"id", r_id}, {"siblings", sibs}});
      std::cout << dump(json{{"ok", false}, {"code", cold.full_code()}, {"error", cold.to_string()}, {"cold", true},
                             {"id", r_id}, {"siblings", sibs}})
                << "\n";
      return kExitCold;
    }
    std::cout << "id: " << escape_for_message(r_id, 1024) << "\n";
    for (std::size_t i = 0; i < r->siblings.size(); ++i) {
      const auto& s = r->siblings[i];
      if (r->siblings.size() > 1) {
        std::cout << "sibling " << i + 1 << " of " << r->siblings.size() << (i == 0 ? " (the winner)" : "")
                  << ":\n";
      }
      if (s.evicted) {
        std::cout << "  vector: evicted to the cold-tier sink, not here\n";
      } else {
        std::cout << "  vector: " << compact_vector(s.value.vector, full) << "\n";
      }
      std::cout << "  metadata: " << dump(meta_json(s.value.metadata)) << "\n";
      if (!s.value.model.empty()) std::cout << "  model: " << escape_for_message(s.value.model, 256) << "\n";
      if (!remote) std::cout << "  clock: " << s.clock.to_string() << "  dot: " << s.dot.to_string() << "\n";
    }
    if (!cold.ok()) {
      std::cerr << "shoal: " << cold.to_string() << "\n";
      return kExitCold;
    }
    return 0;
  }
  if (del->parsed()) {
    if (Status s = db->remove(c_name, r_id); !s.ok()) return fail(g, s);
    if (g.json_output) return ok_json({{"deleted", r_id}});
    std::cout << "deleted " << r_id << "\n";
    return 0;
  }
  if (imp->parsed()) {
    if (batch == 0) return fail_usage(g, "--batch must be at least 1");
    const bool jsonl = format == "jsonl" || (format.empty() && (file == "-" || file.ends_with(".jsonl") ||
                                                                file.ends_with(".jsonl.gz") || file.ends_with(".ndjson")));
    io::VectorFormat fmt = io::guess_format(file);
    if (format == "idx") fmt = io::VectorFormat::kIdx;
    else if (format == "fvecs") fmt = io::VectorFormat::kFvecs;
    else if (format == "npy") fmt = io::VectorFormat::kNpy;
    else if (!format.empty() && !jsonl) return fail_usage(g, "unknown format '" + format + "'; expected idx, fvecs, npy or jsonl");
    if (jsonl && (!ids_file.empty() || !meta_file.empty() || !id_prefix.empty())) {
      return fail_usage(g, "--ids, --metadata and --id-prefix are for vector files; JSON lines carry their ids and metadata");
    }
    std::unique_ptr<tools::RecordSource> source;
    std::optional<std::uint64_t> rows;
    if (jsonl) {
      auto in = tools::ByteReader::open(file);
      if (!in.ok()) return fail(g, in.status());
      source = tools::jsonl_source(std::move(*in), model);
    } else {
      auto vr = tools::VectorReader::open(file, fmt);
      if (!vr.ok()) return fail(g, vr.status());
      rows = (*vr)->rows();
      std::unique_ptr<tools::ByteReader> ids, metas;
      if (!ids_file.empty()) {
        auto r = tools::ByteReader::open(ids_file);
        if (!r.ok()) return fail(g, r.status());
        ids = std::move(*r);
      }
      if (!meta_file.empty()) {
        auto r = tools::ByteReader::open(meta_file);
        if (!r.ok()) return fail(g, r.status());
        metas = std::move(*r);
      }
      source = tools::vector_source(std::move(*vr), std::move(ids), std::move(metas), id_prefix, model);
    }
    tools::ImportOptions io_opts;
    io_opts.batch = batch;
    io_opts.skip = skip;
    io_opts.limit = limit;
    io_opts.stop = &g_stop;
    // Ctrl-C: finish the current batch, then stop (a second Ctrl-C kills, SA_RESETHAND). No
    // SA_RESTART, so a read blocked on a pipe returns.
    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    std::uint64_t total = 0;
    if (rows) total = limit != 0 ? std::min<std::uint64_t>(*rows, skip + limit) : *rows;
    Progress progress(static_cast<std::size_t>(total));
    tools::ImportReport report;
    const MonoTime start = now_mono();
    Status s = tools::import_records(*db, c_name, *source, io_opts, report, [&](std::uint64_t pos) {
      if (!g.json_output) progress.update(static_cast<std::size_t>(pos));
    });
    if (!g.json_output && ::isatty(2)) std::fprintf(stderr, "\n");
    if (!s.ok()) return fail(g, s);
    if (!report.stopped && report.position < skip) {
      // The source ended inside the --skip: a resume position from another file or a typo, not
      // an import of nothing. Nothing was written.
      return fail(g, Status(Detail::kOutOfRange, str_cat("--skip ", skip, " passes the end of the input, which has ",
                                                          report.position, " records; nothing imported")));
    }
    const double secs = (now_mono() - start).seconds_f();
    const std::uint64_t imported = report.position - std::min(report.position, skip);
    if (report.stopped) {
      const std::string msg = str_cat("stopped after ", report.position, " records; resume with --skip ", report.position);
      if (g.json_output) {
        std::cout << dump(json{{"ok", false}, {"stopped", true}, {"position", report.position},
                               {"written", report.written}, {"unchanged", report.unchanged}, {"error", msg}})
                  << "\n";
      } else {
        std::cerr << "shoal: " << msg << "\n";
      }
      return 130;
    }
    if (g.json_output) {
      return ok_json({{"imported", imported}, {"written", report.written}, {"unchanged", report.unchanged},
                      {"position", report.position}, {"seconds", secs}});
    }
    std::cout << "imported " << imported << " records (" << report.written << " written, " << report.unchanged
              << " unchanged) in " << secs << " s\n";
    return 0;
  }
  if (search->parsed()) {
    std::vector<float> q;
    if (!query_file.empty()) {
      auto vr = tools::VectorReader::open(query_file, io::guess_format(query_file));
      if (!vr.ok()) return fail(g, vr.status());
      bool found = false;
      for (std::size_t i = 0; i <= row; ++i) {
        auto more = (*vr)->next(q);
        if (!more.ok()) return fail(g, more.status());
        if (!*more) {
          return fail(g, Status(Detail::kOutOfRange, str_cat("--row ", row, " but the file has ", i, " rows")));
        }
        found = i == row;
      }
      if (!found) return fail(g, Status(Code::kInternal, "query row not read"));
    } else if (!vector_text.empty()) {
      auto v = parse_vector(vector_text);
      if (!v.ok()) return fail(g, v.status());
      q = *v;
    } else {
      return fail_usage(g, "search needs a query: give --vector or --query-file");
    }
    if (!filter_text.empty()) {
      // Parsed here too, for the caret under the offending byte; the node parses the text again.
      std::size_t error_offset = 0;
      auto f = parse_filter(filter_text, &error_offset);
      if (!f.ok()) return fail_filter(g, f.status(), filter_text, error_offset);
    }
    if (cold_search) return print_cold_search(g, *db, c_name, q, k, ef);
    const MonoTime t0 = now_mono();
    auto answer = db->search(c_name, q, k, ef, filter_text, /*with_metadata=*/true);
    const auto us = (now_mono() - t0).us();
    if (!answer.ok()) return fail(g, answer.status());
    auto info = db->collection_info(c_name);  // the metric, to say what the distances are
    const std::string label = info.ok() ? distance_label(info->spec.metric) : "distance";
    json arr = json::array();
    if (!g.json_output) std::cout << "# id\t" << label << "\tmetadata\n";
    for (const auto& h : answer->hits) {
      arr.push_back({{"id", h.id}, {"distance", h.distance}, {"metadata", meta_json(h.metadata)},
                     {"model", h.model}});
      if (!g.json_output) std::cout << escape_for_message(h.id, 1024) << "\t" << h.distance << "\t" << dump(meta_json(h.metadata)) << "\n";
    }
    json fresh = json::array();
    for (const auto& f : answer->freshness) {
      fresh.push_back({{"device", to_valid_utf8(f.device)}, {"replica", common::to_hex(f.replica)},
                       {"since_last_delta_ms", f.since_last_delta_ms}, {"up", f.up}});
    }
    if (g.json_output) {
      json out{{"hits", arr}, {"latency_us", us}, {"distance", label}};
      if (info.ok()) out["metric"] = metric_name(info->spec.metric);
      if (remote) out["freshness"] = fresh;
      return ok_json(out);
    }
    std::cerr << answer->hits.size() << " hits in " << us << " us; distances are " << label << "\n";
    if (remote) {
      if (answer->freshness.empty()) std::cerr << "freshness: the daemon has no peers (its own data only)\n";
      for (const auto& f : answer->freshness) {
        std::cerr << "freshness: " << escape_for_message(f.device, 128) << " " << (f.up ? "up" : "not linked")
                  << ", " << age_text(f.since_last_delta_ms) << "\n";
      }
    }
    return 0;
  }
  if (stats->parsed() || status->parsed()) {
    auto text = db->stats_json();
    if (!text.ok()) return fail(g, text.status());
    json out = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (out.is_discarded() || !out.is_object()) {
      return fail(g, Status(Detail::kMalformed, "the node's statistics are not a JSON object"));
    }
    if (stats->parsed()) {
      if (g.json_output) return ok_json(out);
      std::cout << dump(out, 2) << "\n";
      return 0;
    }
    // The sink's backlog at the top level (kept for scripts); null when no sink is configured,
    // never 0.
    if (g.json_output) {
      const auto sk = out.find("sink");
      const bool has_sink = sk != out.end() && sk->is_object();
      out["sink_backlog"] = has_sink ? sk->value("backlog_entries", json(nullptr)) : json(nullptr);
      out["sink_backlog_note"] = has_sink ? "delta buffer entries the sink has not acknowledged" : "no sink configured";
      return ok_json(out);
    }
    print_status(out, socket);
    return 0;
  }
  if (sink_status->parsed() || tier->parsed()) {
    auto text = db->stats_json();
    if (!text.ok()) return fail(g, text.status());
    json out = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (out.is_discarded() || !out.is_object()) {
      return fail(g, Status(Detail::kMalformed, "the daemon's statistics are not a JSON object"));
    }
    if (sink_status->parsed()) return print_sink_status(g, out);
    auto infos = db->list_collections();
    if (!infos.ok()) return fail(g, infos.status());
    return print_tiers(g, out, *infos, tier_name);
  }
  if (boot->parsed()) {
    const MonoTime t0 = now_mono();
    auto r = db->bootstrap_from_sink(c_name);
    if (!r.ok()) return fail(g, r.status());
    const double secs = (now_mono() - t0).seconds_f();
    // A created collection's index options: the sink's spec's (D62), or the defaults from a sink
    // that keeps none; read back as created.
    std::optional<CollectionSpec> made;
    if (r->created) {
      auto info = db->collection_info(c_name);
      if (info.ok()) made = info->spec;
    }
    if (g.json_output) {
      json out{{"collection", c_name}, {"pages", r->pages}, {"records", r->records}, {"bytes", r->bytes},
               {"seconds", secs}, {"created", r->created}};
      if (r->created) {
        out["dimension"] = r->dimension;
        out["metric"] = std::string(metric_name(r->metric));
      }
      if (made) {
        out["m"] = made->m;
        out["ef_construction"] = made->ef_construction;
        out["ef_search"] = made->ef_search;
        out["quantize"] = made->quantize;
      }
      return ok_json(out);
    }
    if (r->created) {
      std::cout << "created " << escape_for_message(c_name, 256) << " from the sink's settings: dimension " << r->dimension
                << ", metric " << metric_name(r->metric);
      if (made) {
        std::cout << ", m " << made->m << ", ef_construction " << made->ef_construction << ", ef_search "
                  << made->ef_search << (made->quantize ? ", quantized" : ", not quantized");
      }
      std::cout << "\n";
    }
    std::cout << "bootstrapped " << escape_for_message(c_name, 256) << " from the sink: " << r->records << " records in "
              << r->pages << " pages (" << r->bytes << " bytes) in " << secs
              << " s; peers bring what the sink does not hold\n";
    return 0;
  }
  return 2;
}

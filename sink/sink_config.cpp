// sink/sink_config.cpp: see sink_config.hpp. One table of rules (kRules) lists every key once;
// problems are collected and reported as shoald's are (common/toml_report.hpp: the syntax error
// caught in one place, values echoed, typos answered with the likely key), so one run of the
// program names them all.
#include "sink/sink_config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <system_error>
#include <type_traits>
#include <vector>

#include <toml++/toml.h>

#include "common/toml_report.hpp"

namespace shoal::sink {

namespace {

namespace fs = std::filesystem;
using toml_report::Field;
using toml_report::Report;

// One key: its table, its name, and how its value goes into a SinkConfig.
struct Rule {
  std::string_view table;
  std::string_view name;
  void (*parse)(Field&, SinkConfig&);
};

template <auto Member>
void string_key(Field& f, SinkConfig& c) {
  auto s = f.string();
  if (!s) return;
  if (s->empty()) return f.fail(Detail::kMalformed, "must not be empty");
  c.*Member = std::move(*s);
}

template <auto Member>
void path_key(Field& f, SinkConfig& c) {
  if (auto p = f.path()) c.*Member = std::move(*p);
}

template <auto Member, std::int64_t Lo, std::int64_t Hi>
void int_key(Field& f, SinkConfig& c) {
  if (auto v = f.integer(Lo, Hi)) c.*Member = static_cast<std::remove_reference_t<decltype(c.*Member)>>(*v);
}

template <auto Member, std::int64_t Lo, std::int64_t Hi>
void limit_key(Field& f, SinkConfig& c) {
  if (auto v = f.integer(Lo, Hi)) c.limits.*Member = static_cast<std::remove_reference_t<decltype(c.limits.*Member)>>(*v);
}

void parse_listen(Field& f, SinkConfig& c) {
  auto s = f.string("a string \"ADDR:PORT\"");
  if (!s) return;
  const std::string& text = *s;
  std::string addr;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return f.fail(Detail::kMalformed, "expected \"[IPV6]:PORT\"");
    }
    addr = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return f.fail(Detail::kMalformed, "expected \"ADDR:PORT\"");
    addr = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned char buf[16];
  if (inet_pton(AF_INET, addr.c_str(), buf) != 1 && inet_pton(AF_INET6, addr.c_str(), buf) != 1) {
    return f.fail(Detail::kMalformed, "the address must be an IPv4 or IPv6 address");
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    return f.fail(Detail::kOutOfRange, "port must be 0..65535");
  }
  c.listen_address = addr;
  c.listen_port = static_cast<std::uint16_t>(std::stoul(port));
}

void parse_level(Field& f, SinkConfig& c) {
  auto s = f.string("a string: \"debug\", \"info\", \"warn\" or \"error\"");
  if (!s) return;
  if (*s == "debug") c.log_level = LogLevel::kDebug;
  else if (*s == "info") c.log_level = LogLevel::kInfo;
  else if (*s == "warn") c.log_level = LogLevel::kWarn;
  else if (*s == "error") c.log_level = LogLevel::kError;
  else f.fail(Detail::kUnknownName, "expected \"debug\", \"info\", \"warn\" or \"error\"");
}

void parse_kind(Field& f, SinkConfig& c) {
  auto s = f.string("a string: \"lmdb\" or \"s3\"");
  if (!s) return;
  if (*s != "lmdb" && *s != "s3") return f.fail(Detail::kUnknownName, "expected \"lmdb\" or \"s3\"");
  c.store_kind = *s;
}

void parse_create_bucket(Field& f, SinkConfig& c) {
  if (auto b = f.boolean()) c.s3_create_bucket = *b;
}

constexpr std::array<std::string_view, 3> kTables = {"sink", "store", "limits"};

constexpr Rule kRules[] = {
    {"sink", "data_dir", path_key<&SinkConfig::data_dir>},
    {"sink", "certificate", path_key<&SinkConfig::certificate>},
    {"sink", "listen", parse_listen},
    {"sink", "log_level", parse_level},
    {"sink", "compact_interval_s", int_key<&SinkConfig::compact_interval_s, 0, 604800>},
    {"store", "kind", parse_kind},
    {"store", "lmdb_map_size_mb", int_key<&SinkConfig::lmdb_map_size_mb, 1, 16777216>},
    {"store", "s3_endpoint", string_key<&SinkConfig::s3_endpoint>},
    {"store", "s3_region", string_key<&SinkConfig::s3_region>},
    {"store", "s3_bucket", string_key<&SinkConfig::s3_bucket>},
    {"store", "s3_access_key_id", string_key<&SinkConfig::s3_access_key_id>},
    {"store", "s3_secret_access_key", string_key<&SinkConfig::s3_secret_access_key>},
    {"store", "s3_create_bucket", parse_create_bucket},
    {"limits", "max_collections", limit_key<&SinkLimits::max_collections, 1, 1'000'000>},
    {"limits", "max_k", limit_key<&SinkLimits::max_k, 1, 100'000>},
    {"limits", "max_fetch_ids", limit_key<&SinkLimits::max_fetch_ids, 1, 100'000>},
    {"limits", "max_upload_bytes", limit_key<&SinkLimits::max_upload_bytes, 1024, std::int64_t{16} << 20>},
};

std::vector<std::string_view> names_in(std::string_view table) {
  std::vector<std::string_view> names;
  for (const Rule& r : kRules) {
    if (r.table == table) names.push_back(r.name);
  }
  return names;
}

void parse_table(Report& report, std::string_view table, const toml::table& t, SinkConfig& c) {
  for (const auto& [k, v] : t) {
    const Rule* rule = nullptr;
    for (const Rule& r : kRules) {
      if (r.table == table && r.name == k.str()) rule = &r;
    }
    if (rule == nullptr) {
      toml_report::unknown_in_table(report, table, names_in(table), k, v);
      continue;
    }
    Field f(report, str_cat(table, ".", k.str()), k.source(), v);
    rule->parse(f, c);
  }
}

}  // namespace

Result<SinkConfig> parse_sink_config(std::string_view text, const std::string& path) {
  std::error_code ec;
  fs::path base = fs::path(path).parent_path();
  if (base.empty()) base = ".";
  const fs::path absolute_base = fs::absolute(base, ec);
  if (ec) return Status(Code::kIo, str_cat(path, ": cannot make the config directory absolute: ", ec.message()), path);
  Report report(path, absolute_base.lexically_normal());
  auto document = toml_report::parse_document(text, path, report);
  if (!document) return report.status();

  SinkConfig c;
  c.path = path;
  const std::vector<std::string_view> tables(kTables.begin(), kTables.end());
  for (const auto& [k, v] : *document) {
    const std::string_view name = k.str();
    if (std::find(kTables.begin(), kTables.end(), name) == kTables.end() || !v.is_table()) {
      std::string what;
      if (!v.is_table()) {
        what = str_cat("key ", name, " = ", toml_report::echo(v), ": unknown key; every key belongs in a table [",
                       toml_report::join(tables, "], ["), "]");
      } else {
        const std::string_view hint = toml_report::closest(name, tables);
        what = str_cat("table [", name, "]: unknown table",
                       hint.empty() ? str_cat("; the tables are [", toml_report::join(tables, "], ["), "]")
                                    : str_cat(" (did you mean [", hint, "]?)"));
      }
      report.add(&k.source(), Detail::kUnknownName, std::string(name), std::move(what));
      continue;
    }
    parse_table(report, name, *v.as_table(), c);
  }
  // A required key that is absent (one present with a bad value has its own problem already).
  auto required = [&](std::string_view key, std::string_view why) {
    if (!document->at_path(key)) report.add(nullptr, Detail::kNone, std::string(key), str_cat("key ", key, ": required", why));
  };
  required("sink.data_dir", "");
  required("sink.certificate", "");
  if (c.store_kind == "s3") {
    constexpr std::string_view kWhenS3 = " when store.kind = \"s3\"";
    required("store.s3_endpoint", kWhenS3);
    required("store.s3_bucket", kWhenS3);
    required("store.s3_access_key_id", kWhenS3);
    required("store.s3_secret_access_key", kWhenS3);
  }
  if (!report.empty()) return report.status();
  return c;
}

Result<SinkConfig> load_sink_config(const std::string& path) {
  SHOAL_ASSIGN_OR_RETURN(const std::string text, toml_report::read_file(path, "config file", kMaxSinkConfigBytes));
  return parse_sink_config(text, path);
}

}  // namespace shoal::sink

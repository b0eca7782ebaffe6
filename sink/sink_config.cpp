// sink/sink_config.cpp: see sink_config.hpp. toml++ throws toml::parse_error on a syntax error:
// it is caught in exactly one place (parse_sink_config) and becomes a kMalformed status. Every
// other problem is collected, so one run of the program reports them all.
#include "sink/sink_config.hpp"

#include <arpa/inet.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <vector>

#include <toml++/toml.h>

namespace shoal::sink {

namespace {

namespace fs = std::filesystem;

struct Problems {
  std::string path;
  std::vector<std::string> lines;
  Detail detail = Detail::kNone;

  void add(const toml::source_region& where, const std::string& key, const std::string& seen, const std::string& what,
           Detail d = Detail::kNone) {
    lines.push_back(str_cat(path, ":", where.begin.line, ":", where.begin.column, ": key ", key, seen.empty() ? "" : " = ",
                            seen, ": ", what));
    if (detail == Detail::kNone) detail = d;
  }
  void add_plain(const std::string& key, const std::string& what) {
    lines.push_back(str_cat(path, ": key ", key, ": ", what));
  }
};

std::string shown(const toml::node& n) {
  std::ostringstream os;
  if (auto s = n.as_string()) {
    os << '"' << s->get() << '"';
  } else {
    n.visit([&os](auto&& v) { os << v; });
  }
  std::string out = os.str();
  if (out.size() > 80) out = out.substr(0, 77) + "...";
  return out;
}

// One key's parser: (value node, problems, config) -> nothing; reports into problems.
using Parser = std::function<void(const std::string& key, const toml::node&, Problems&, SinkConfig&)>;

Parser string_key(std::string SinkConfig::*member, bool non_empty = true) {
  return [member, non_empty](const std::string& key, const toml::node& n, Problems& p, SinkConfig& c) {
    auto s = n.as_string();
    if (!s) return p.add(n.source(), key, shown(n), "expected a string");
    if (non_empty && s->get().empty()) return p.add(n.source(), key, shown(n), "must not be empty");
    c.*member = s->get();
  };
}

template <typename T>
Parser int_key(T SinkConfig::*member, std::int64_t lo, std::int64_t hi) {
  return [member, lo, hi](const std::string& key, const toml::node& n, Problems& p, SinkConfig& c) {
    auto v = n.as_integer();
    if (!v) return p.add(n.source(), key, shown(n), "expected an integer");
    if (v->get() < lo || v->get() > hi) return p.add(n.source(), key, shown(n), str_cat("must be ", lo, "..", hi));
    c.*member = static_cast<T>(v->get());
  };
}

template <typename T>
Parser limit_key(T SinkLimits::*member, std::int64_t lo, std::int64_t hi) {
  return [member, lo, hi](const std::string& key, const toml::node& n, Problems& p, SinkConfig& c) {
    auto v = n.as_integer();
    if (!v) return p.add(n.source(), key, shown(n), "expected an integer");
    if (v->get() < lo || v->get() > hi) return p.add(n.source(), key, shown(n), str_cat("must be ", lo, "..", hi));
    c.limits.*member = static_cast<T>(v->get());
  };
}

void parse_listen(const std::string& key, const toml::node& n, Problems& p, SinkConfig& c) {
  auto s = n.as_string();
  if (!s) return p.add(n.source(), key, shown(n), "expected a string \"ADDR:PORT\"");
  const std::string& text = s->get();
  std::string addr;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return p.add(n.source(), key, shown(n), "expected \"[IPV6]:PORT\"");
    }
    addr = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) return p.add(n.source(), key, shown(n), "expected \"ADDR:PORT\"");
    addr = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned char buf[16];
  if (inet_pton(AF_INET, addr.c_str(), buf) != 1 && inet_pton(AF_INET6, addr.c_str(), buf) != 1) {
    return p.add(n.source(), key, shown(n), "the address must be an IPv4 or IPv6 address");
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) > 65535) {
    return p.add(n.source(), key, shown(n), "port must be 0..65535");
  }
  c.listen_address = addr;
  c.listen_port = static_cast<std::uint16_t>(std::stoul(port));
}

void parse_level(const std::string& key, const toml::node& n, Problems& p, SinkConfig& c) {
  auto s = n.as_string();
  const std::string v = s ? s->get() : "";
  if (v == "debug") c.log_level = LogLevel::kDebug;
  else if (v == "info") c.log_level = LogLevel::kInfo;
  else if (v == "warn") c.log_level = LogLevel::kWarn;
  else if (v == "error") c.log_level = LogLevel::kError;
  else p.add(n.source(), key, shown(n), "expected \"debug\", \"info\", \"warn\" or \"error\"");
}

void parse_kind(const std::string& key, const toml::node& n, Problems& p, SinkConfig& c) {
  auto s = n.as_string();
  if (!s || (s->get() != "lmdb" && s->get() != "s3")) {
    return p.add(n.source(), key, shown(n), "expected \"lmdb\" or \"s3\"");
  }
  c.store_kind = s->get();
}

void parse_bool(bool SinkConfig::*member, const std::string& key, const toml::node& n, Problems& p, SinkConfig& c) {
  auto b = n.as_boolean();
  if (!b) return p.add(n.source(), key, shown(n), "expected true or false");
  c.*member = b->get();
}

const std::map<std::string, std::map<std::string, Parser>>& rules() {
  static const std::map<std::string, std::map<std::string, Parser>> r = {
      {"sink",
       {{"data_dir", string_key(&SinkConfig::data_dir)},
        {"certificate", string_key(&SinkConfig::certificate)},
        {"listen", parse_listen},
        {"log_level", parse_level},
        {"compact_interval_s", int_key(&SinkConfig::compact_interval_s, 0, 604800)}}},
      {"store",
       {{"kind", parse_kind},
        {"lmdb_map_size_mb", int_key(&SinkConfig::lmdb_map_size_mb, 1, 16777216)},
        {"s3_endpoint", string_key(&SinkConfig::s3_endpoint)},
        {"s3_region", string_key(&SinkConfig::s3_region)},
        {"s3_bucket", string_key(&SinkConfig::s3_bucket)},
        {"s3_access_key_id", string_key(&SinkConfig::s3_access_key_id)},
        {"s3_secret_access_key", string_key(&SinkConfig::s3_secret_access_key)},
        {"s3_create_bucket",
         [](const std::string& k, const toml::node& n, Problems& p, SinkConfig& c) {
           parse_bool(&SinkConfig::s3_create_bucket, k, n, p, c);
         }}}},
      {"limits",
       {{"max_collections", limit_key(&SinkLimits::max_collections, 1, 1'000'000)},
        {"max_k", limit_key(&SinkLimits::max_k, 1, 100'000)},
        {"max_fetch_ids", limit_key(&SinkLimits::max_fetch_ids, 1, 100'000)},
        {"max_upload_bytes", limit_key(&SinkLimits::max_upload_bytes, 1024, std::int64_t{16} << 20)}}},
  };
  return r;
}

std::string absolute_from(const fs::path& base, const std::string& p) {
  if (p.empty()) return p;
  fs::path path(p);
  if (path.is_relative()) path = base / path;
  return path.lexically_normal().string();
}

}  // namespace

Result<SinkConfig> parse_sink_config(std::string_view text, const std::string& path) {
  toml::table doc;
  try {
    doc = toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& e) {
    return Status(Detail::kMalformed, str_cat(path, ":", e.source().begin.line, ":", e.source().begin.column,
                                              ": TOML syntax error: ", e.description()));
  }
  SinkConfig c;
  c.path = path;
  Problems p;
  p.path = path;
  for (const auto& [tk, tv] : doc) {
    const std::string table(tk.str());
    auto tr = rules().find(table);
    if (tr == rules().end() || !tv.is_table()) {
      p.add(tk.source(), table, "", tr == rules().end() ? "unknown table (known: [sink], [store], [limits])" : "expected a table",
            Detail::kUnknownName);
      continue;
    }
    for (const auto& [k, v] : *tv.as_table()) {
      const std::string key = table + "." + std::string(k.str());
      auto r = tr->second.find(std::string(k.str()));
      if (r == tr->second.end()) {
        p.add(k.source(), key, "", "unknown key", Detail::kUnknownName);
        continue;
      }
      r->second(key, v, p, c);
    }
  }
  if (c.data_dir.empty()) p.add_plain("sink.data_dir", "required");
  if (c.certificate.empty()) p.add_plain("sink.certificate", "required");
  if (c.store_kind == "s3") {
    if (c.s3_endpoint.empty()) p.add_plain("store.s3_endpoint", "required when store.kind = \"s3\"");
    if (c.s3_bucket.empty()) p.add_plain("store.s3_bucket", "required when store.kind = \"s3\"");
    if (c.s3_access_key_id.empty()) p.add_plain("store.s3_access_key_id", "required when store.kind = \"s3\"");
    if (c.s3_secret_access_key.empty()) p.add_plain("store.s3_secret_access_key", "required when store.kind = \"s3\"");
  }
  if (!p.lines.empty()) {
    std::string msg;
    for (const auto& l : p.lines) msg += (msg.empty() ? "" : "\n") + l;
    return p.detail == Detail::kNone ? Status(Code::kInvalidArgument, msg) : Status(p.detail, msg);
  }
  std::error_code ec;
  fs::path base = fs::path(path).parent_path();
  if (base.empty()) base = ".";
  base = fs::absolute(base, ec);
  c.data_dir = absolute_from(base, c.data_dir);
  c.certificate = absolute_from(base, c.certificate);
  return c;
}

Result<SinkConfig> load_sink_config(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status(Code::kIo, "cannot read " + path, path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parse_sink_config(text, path);
}

}  // namespace shoal::sink

// common/toml_report.cpp: see toml_report.hpp.
#include "common/toml_report.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>
#include <utility>

#include "common/log.hpp"

namespace shoal::toml_report {

namespace {

// A TOML basic string: double quotes, with \" \\ and control characters escaped.
std::string basic_string_literal(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789ABCDEF";
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

// The value as written in TOML, on one line, uncut. Strings are shown as basic strings (toml++
// would print a literal 'string' when it can; messages keep one form).
std::string echo_full(const toml::node& value) {
  if (value.is_table()) return "{...}";
  if (const auto* s = value.as_string()) return basic_string_literal(s->get());
  if (const auto* a = value.as_array()) {
    std::string out = "[";
    for (std::size_t i = 0; i < a->size() && out.size() <= kMaxEchoChars; ++i) {
      if (i > 0) out += ", ";
      out += echo_full(*a->get(i));
    }
    return out + "]";
  }
  std::ostringstream out;
  value.visit([&out](const auto& v) { out << v; });
  return out.str();
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string type_name(toml::node_type type) {
  switch (type) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string echo(const toml::node& value) {
  std::string text = echo_full(value);
  if (text.size() > kMaxEchoChars) {
    std::size_t cut = kMaxEchoChars;
    // Not inside a UTF-8 sequence: back up over continuation bytes.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = text.substr(0, cut) + "...";
  }
  return text;
}

std::string_view closest(std::string_view name, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  std::size_t best_distance = std::max<std::size_t>(2, name.size() / 4) + 1;
  for (std::string_view c : candidates) {
    const std::size_t d = edit_distance(name, c);
    if (d < best_distance) {
      best = c;
      best_distance = d;
    }
  }
  return best;
}

std::string join(const std::vector<std::string_view>& items, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

// --- Report ---

Report::Report(std::string path, std::filesystem::path base_dir) : path_(std::move(path)), base_dir_(std::move(base_dir)) {}

void Report::add(const toml::source_region* where, Detail detail, std::string key, std::string text) {
  Problem p;
  if (where != nullptr && where->begin) {
    p.line = where->begin.line;
    p.column = where->begin.column;
  }
  p.detail = detail;
  p.key = std::move(key);
  p.text = std::move(text);
  problems_.push_back(std::move(p));
}

std::string Report::resolve(const std::string& value) const {
  std::filesystem::path p(value);
  if (p.is_relative()) p = base_dir_ / p;
  return p.lexically_normal().string();
}

Status Report::status() {
  if (problems_.empty()) return {};
  std::stable_sort(problems_.begin(), problems_.end(), [](const Problem& a, const Problem& b) {
    const auto rank = [](const Problem& p) { return std::pair(p.line == 0 ? UINT32_MAX : p.line, p.column); };
    return rank(a) < rank(b);
  });
  std::string message;
  for (const Problem& p : problems_) {
    if (!message.empty()) message += '\n';
    message += path_;
    if (p.line != 0) message += str_cat(":", p.line, ":", p.column);
    message += ": ";
    message += p.text;
  }
  const Problem& first = problems_.front();
  if (first.detail == Detail::kNone) return Status(Code::kInvalidArgument, message, first.key);
  return Status(first.detail, message, first.key);
}

// --- Field ---

void Field::fail(Detail detail, std::string_view problem) {
  report_.add(&where_, detail, key_, str_cat("key ", key_, " = ", echo(value_), ": ", problem));
}

bool Field::expect(toml::node_type type, std::string_view expected) {
  if (value_.type() == type) return true;
  fail(Detail::kMalformed, str_cat("expected ", expected, ", saw ", type_name(value_.type())));
  return false;
}

std::optional<std::string> Field::string(std::string_view expected) {
  if (!expect(toml::node_type::string, expected)) return std::nullopt;
  return value_.as_string()->get();
}

std::optional<bool> Field::boolean() {
  if (!expect(toml::node_type::boolean, "a boolean (true or false)")) return std::nullopt;
  return value_.as_boolean()->get();
}

std::optional<std::int64_t> Field::integer(std::int64_t min, std::int64_t max, std::string_view unit) {
  const std::string expected = unit.empty() ? std::string("an integer") : str_cat("an integer (", unit, ")");
  if (!expect(toml::node_type::integer, expected)) return std::nullopt;
  const std::int64_t v = value_.as_integer()->get();
  if (v < min || v > max) {
    fail(Detail::kOutOfRange, str_cat("must be ", min, "..", max, unit.empty() ? "" : " ", unit));
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> Field::path() {
  auto text = string("a string (a path)");
  if (!text) return std::nullopt;
  if (text->empty()) {
    fail(Detail::kMalformed, "must not be empty; expected a path");
    return std::nullopt;
  }
  if (text->find('\0') != std::string::npos) {
    fail(Detail::kMalformed, "a path must not contain a NUL character");
    return std::nullopt;
  }
  return report_.resolve(*text);
}

// --- documents and keys ---

Result<std::string> read_file(const std::string& path, std::string_view what, std::size_t max_bytes) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) return Status(Code::kIo, str_cat(path, ": cannot open the ", what, ": ", std::strerror(errno)), path);
  std::string text;
  char buffer[16384];
  for (;;) {
    const std::size_t n = std::fread(buffer, 1, sizeof buffer, file.get());
    text.append(buffer, n);
    if (text.size() > max_bytes) {
      return Status(Detail::kTooLarge, str_cat(path, ": the ", what, " is larger than ", max_bytes, " bytes"), path);
    }
    if (n < sizeof buffer) break;
  }
  if (std::ferror(file.get())) {
    return Status(Code::kIo, str_cat(path, ": cannot read the ", what, ": ", std::strerror(errno)), path);
  }
  return text;
}

std::optional<toml::table> parse_document(std::string_view text, const std::string& path, Report& report) {
  try {
    return toml::parse(text, std::string_view(path));
  } catch (const toml::parse_error& e) {
    std::string message = str_cat("TOML syntax error: ", e.description());
    // "mode = 0660" is the usual way in: say how TOML writes it.
    if (e.description().find("leading zero") != std::string_view::npos) {
      message += " (TOML numbers cannot start with 0: a file mode is written as a string, as in socket_mode = \"0660\")";
    }
    report.add(&e.source(), Detail::kMalformed, {}, std::move(message));
  }
  return std::nullopt;
}

void unknown_in_table(Report& report, std::string_view table, const std::vector<std::string_view>& names,
                      const toml::key& k, const toml::node& v) {
  const std::string key = str_cat(table, ".", k.str());
  const std::string_view hint = closest(k.str(), names);
  std::string text = v.is_table() ? str_cat("table [", key, "]: unknown table") : str_cat("key ", key, " = ", echo(v), ": unknown key");
  if (!hint.empty()) {
    text += str_cat(" (did you mean ", table, ".", hint, "?)");
  } else {
    text += str_cat("; [", table, "] has ", join(names, ", "));
  }
  report.add(&k.source(), Detail::kUnknownName, key, std::move(text));
}

}  // namespace shoal::toml_report

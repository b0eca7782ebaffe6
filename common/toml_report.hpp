// common/toml_report.hpp: what shoald's, shoal-sink's and the simulator's TOML files share when
// they report problems: a value echoed as written, the likely key a typo meant, and a Report that
// collects every problem of a file (with its line, column, key and value) into one Status, so one
// run of a program names them all.
//
//   /etc/shoal/shoald.toml:3:10: key mesh.listen = "0.0.0.0:99999": port must be 0..65535
//
// toml++ reports a syntax error by throwing toml::parse_error; parse_document is the one place that
// catches it. Thread rules: values and free functions; a Report and its Fields belong to one parse.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <toml++/toml.h>

#include "common/status.hpp"

namespace shoal::toml_report {

// The longest value echoed in a message; longer ones are cut with "...".
inline constexpr std::size_t kMaxEchoChars = 80;

// "a string", "an integer", ... for "expected X, saw Y".
std::string type_name(toml::node_type type);
// The value as written in TOML, on one line; strings as basic strings ("..."), cut past
// kMaxEchoChars (not inside a UTF-8 sequence).
std::string echo(const toml::node& value);
// The candidate closest to `name` by edit distance, if close enough to be a likely typo; empty
// otherwise.
std::string_view closest(std::string_view name, const std::vector<std::string_view>& candidates);
std::string join(const std::vector<std::string_view>& items, std::string_view separator);

// Collects problems and knows the file they are about.
class Report {
 public:
  // `base_dir`: the directory relative paths in the file are taken from (absolute).
  Report(std::string path, std::filesystem::path base_dir);

  // One problem: `where` null or without a line for one with no position (a missing key);
  // `detail` kNone for a plain kInvalidArgument; `text` starts with the key ("key a.b = 3: ...").
  void add(const toml::source_region* where, Detail detail, std::string key, std::string text);
  bool empty() const noexcept { return problems_.empty(); }
  const std::string& path() const noexcept { return path_; }

  // A path from the file, absolute: relative ones are taken from the file's directory.
  std::string resolve(const std::string& value) const;

  // Every problem, in file order (positionless ones last), one line each: "PATH:LINE:COL: TEXT".
  // The status's detail is the first problem's (kInvalidArgument when it has none), its subject the
  // first problem's key.
  Status status();

 private:
  struct Problem {
    std::uint32_t line = 0;  // 0: no position
    std::uint32_t column = 0;
    Detail detail = Detail::kNone;
    std::string key;
    std::string text;
  };
  std::string path_;
  std::filesystem::path base_dir_;
  std::vector<Problem> problems_;
};

// One key's value, with what a message about it needs. Each getter reports its own problem and
// returns nullopt when the value is not what it asks for.
class Field {
 public:
  Field(Report& report, std::string key, const toml::source_region& where, const toml::node& value)
      : report_(report), key_(std::move(key)), where_(where), value_(value) {}

  const std::string& key() const noexcept { return key_; }
  const toml::node& value() const noexcept { return value_; }
  Report& report() noexcept { return report_; }

  // Adds "key KEY = VALUE: PROBLEM" at the value's position.
  void fail(Detail detail, std::string_view problem);
  // True when the value has `type`; otherwise reports "expected EXPECTED, saw TYPE".
  bool expect(toml::node_type type, std::string_view expected);

  std::optional<std::string> string(std::string_view expected = "a string");
  std::optional<bool> boolean();
  // An integer in [min, max]; `unit` (e.g. "ms") is named in the messages.
  std::optional<std::int64_t> integer(std::int64_t min, std::int64_t max, std::string_view unit = {});
  // A non-empty path without NUL, made absolute against the file's directory.
  std::optional<std::string> path();

 private:
  Report& report_;
  std::string key_;
  const toml::source_region& where_;
  const toml::node& value_;
};

// Reads the whole file at `path` (`what` names it in messages: "config file", "scenario file"),
// at most `max_bytes` of it. Statuses: kIo naming the file and the OS reason when it cannot be
// opened or read; kTooLarge naming the limit when it holds more (reading stops there).
[[nodiscard]] Result<std::string> read_file(const std::string& path, std::string_view what, std::size_t max_bytes);

// Parses `text` as the file `path`; a syntax error is added to `report` (kMalformed, with its
// position) and gives nullopt.
std::optional<toml::table> parse_document(std::string_view text, const std::string& path, Report& report);

// Reports key `k` (value `v`) of table `table`, which has the keys `names`, as unknown
// (kUnknownName): "key T.K = V: unknown key (did you mean T.N?)", or with the table's keys listed
// when no name is close.
void unknown_in_table(Report& report, std::string_view table, const std::vector<std::string_view>& names,
                      const toml::key& k, const toml::node& v);

}  // namespace shoal::toml_report

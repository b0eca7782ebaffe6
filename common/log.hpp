// common/log.hpp: minimal leveled logging for the runtime, tools and tests.
//
// Role: a Logger is an object the program's main (or the C API's open call) creates and passes
// down; there is no global logger. The sans-I/O node core logs only through the Logger its owner
// injects (NodeOptions::logger, which may be null). A line is
//   "<level> <component>: <message>"
// and goes to the sink, stderr by default. Messages below the logger's level are dropped before
// they are formatted when callers use SHOAL_LOG.
// Thread rules: log() may be called from any thread; the sink is called under the logger's mutex,
// so a sink must not log to the same logger.
#pragma once

#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>

namespace shoal {

enum class LogLevel : int { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

std::string_view log_level_name(LogLevel level) noexcept;
// Parses "debug", "info", "warn", "error", "off"; returns false on anything else.
bool parse_log_level(std::string_view text, LogLevel& out) noexcept;

class Logger {
 public:
  using Sink = std::function<void(LogLevel, std::string_view component, std::string_view message)>;

  // Logs to stderr at `level` and above.
  explicit Logger(LogLevel level = LogLevel::kInfo);
  Logger(LogLevel level, Sink sink);
  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  bool enabled(LogLevel level) const noexcept { return level >= level_ && level_ != LogLevel::kOff; }
  void set_level(LogLevel level) noexcept { level_ = level; }
  void log(LogLevel level, std::string_view component, std::string_view message);

 private:
  LogLevel level_;
  Sink sink_;
  std::mutex mu_;
};

// Concatenates any streamable values into a string: str_cat("dim ", 4, " != ", 3).
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

}  // namespace shoal

// SHOAL_LOG(logger_ptr, kInfo, "store", "opened ", path): formats only when enabled; a null
// logger pointer logs nothing.
#define SHOAL_LOG(logger, level, component, ...)                                           \
  do {                                                                                     \
    ::shoal::Logger* shoal_logger_ = (logger);                                             \
    if (shoal_logger_ != nullptr && shoal_logger_->enabled(::shoal::LogLevel::level))      \
      shoal_logger_->log(::shoal::LogLevel::level, component, ::shoal::str_cat(__VA_ARGS__)); \
  } while (0)

#include "common/log.hpp"

#include <cstdio>

namespace shoal {

std::string_view log_level_name(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
    case LogLevel::kOff: return "off";
  }
  return "?";
}

bool parse_log_level(std::string_view text, LogLevel& out) noexcept {
  for (auto l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError, LogLevel::kOff}) {
    if (text == log_level_name(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

Logger::Logger(LogLevel level)
    : Logger(level, [](LogLevel l, std::string_view component, std::string_view message) {
        std::fprintf(stderr, "%.*s %.*s: %.*s\n", static_cast<int>(log_level_name(l).size()),
                     log_level_name(l).data(), static_cast<int>(component.size()), component.data(),
                     static_cast<int>(message.size()), message.data());
      }) {}

Logger::Logger(LogLevel level, Sink sink) : level_(level), sink_(std::move(sink)) {}

void Logger::log(LogLevel level, std::string_view component, std::string_view message) {
  if (!enabled(level)) return;
  std::lock_guard<std::mutex> lock(mu_);
  sink_(level, component, message);
}

}  // namespace shoal

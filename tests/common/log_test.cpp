// Proves that the logger filters by level, formats lazily, and sends lines to its sink.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/log.hpp"

TEST_CASE("the logger drops lines below its level and passes the rest to its sink", "[common]") {
  std::vector<std::string> lines;
  shoal::Logger logger(shoal::LogLevel::kInfo, [&](shoal::LogLevel l, std::string_view c,
                                                   std::string_view m) {
    lines.push_back(std::string(shoal::log_level_name(l)) + " " + std::string(c) + ": " +
                    std::string(m));
  });
  int formatted = 0;
  auto counted = [&] {
    ++formatted;
    return 1;
  };
  SHOAL_LOG(&logger, kDebug, "store", "hidden ", counted());
  SHOAL_LOG(&logger, kWarn, "store", "map at ", 90, "%");
  SHOAL_LOG(static_cast<shoal::Logger*>(nullptr), kError, "x", "nothing");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "warn store: map at 90%");
  CHECK(formatted == 0);
  logger.set_level(shoal::LogLevel::kOff);
  SHOAL_LOG(&logger, kError, "store", "off");
  CHECK(lines.size() == 1);
}

TEST_CASE("log levels parse from their names", "[common]") {
  shoal::LogLevel l{};
  CHECK(shoal::parse_log_level("warn", l));
  CHECK(l == shoal::LogLevel::kWarn);
  CHECK_FALSE(shoal::parse_log_level("loud", l));
}

// Proves common/hex.hpp: to_hex spells every byte value as two lowercase digits in order, from_hex
// reads back what to_hex wrote (and upper case), and refuses odd lengths and non-hex characters.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "common/hex.hpp"

using shoal::common::from_hex;
using shoal::common::to_hex;

TEST_CASE("to_hex writes two lowercase digits per byte and from_hex reads them back", "[common]") {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string text = to_hex(all);
  REQUIRE(text.size() == 512);
  CHECK(text.substr(0, 6) == "000102");
  CHECK(text.substr(text.size() - 4) == "feff");
  CHECK(text.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(from_hex(text) == all);
  const std::vector<std::uint8_t> key = {0xde, 0xad, 0x00, 0x0f};
  CHECK(to_hex(key) == "dead000f");
  CHECK(from_hex("DEAD000F") == std::string("\xde\xad\x00\x0f", 4));
  CHECK(to_hex(std::string_view()).empty());
  CHECK(from_hex("") == std::string());
}

TEST_CASE("from_hex refuses odd lengths and characters that are not hex digits", "[common]") {
  CHECK_FALSE(from_hex("abc").has_value());
  CHECK_FALSE(from_hex("0g").has_value());
  CHECK_FALSE(from_hex("+1").has_value());
  CHECK_FALSE(from_hex(" 1").has_value());
  CHECK_FALSE(from_hex("12-3").has_value());
}

// common/whole_number.hpp: the programs' count options (shoal, shoal-sim, shoal-demo; D80).
// Decimal digits only: no sign (CLI11 and std::stoul read "-1" into an unsigned option as its
// largest value), no spaces, no exponent, within a named range.
#pragma once

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace shoal {

// `text` as a T in [lo, hi], or nullopt.
template <typename T>
std::optional<T> parse_whole_number(std::string_view text, T lo, T hi) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || text.front() == '-' || ec != std::errc() || stop != end || value < lo || value > hi) {
    return std::nullopt;
  }
  return value;
}

// The refusal: "must be a whole number LO..HI, got 'SHOWN'" (`shown`: the text as the caller
// prints it, cut or escaped).
template <typename T>
std::string whole_number_refusal(T lo, T hi, std::string_view shown) {
  return "must be a whole number " + std::to_string(lo) + ".." + std::to_string(hi) + ", got '" + std::string(shown) +
         "'";
}

}  // namespace shoal

// common/hex.hpp: bytes as lowercase hexadecimal text and back (keys, replica ids and digests in
// files, logs and the tools' output).
// Thread rules: functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace shoal::common {

// Two lowercase digits per byte.
std::string to_hex(std::span<const std::uint8_t> bytes);
inline std::string to_hex(std::string_view bytes) {
  return to_hex(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

// The bytes `text` spells (either case); nullopt when its length is odd or a character is not a
// hex digit.
std::optional<std::string> from_hex(std::string_view text);

}  // namespace shoal::common

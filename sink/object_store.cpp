// sink/object_store.cpp: the size and key checks every ObjectStore runs before any I/O.
#include "sink/object_store.hpp"

#include <string>

namespace shoal::sink {

Status check_key(std::string_view key, const Limits& limits) {
  if (key.empty()) {
    return Status(Detail::kOutOfRange, "object key is empty");
  }
  if (key.size() > limits.max_key_bytes) {
    return Status(Detail::kTooLarge,
                  "object key is " + std::to_string(key.size()) + " bytes, above the limit of " +
                      std::to_string(limits.max_key_bytes));
  }
  return check_prefix(key, limits);
}

Status check_prefix(std::string_view prefix, const Limits& limits) {
  if (prefix.size() > limits.max_key_bytes) {
    return Status(Detail::kTooLarge,
                  "object key prefix is " + std::to_string(prefix.size()) +
                      " bytes, above the limit of " + std::to_string(limits.max_key_bytes));
  }
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const auto c = static_cast<unsigned char>(prefix[i]);
    if (c < 0x20 || c > 0x7e) {
      return Status(Detail::kMalformed, "object key byte " + std::to_string(i) + " is 0x" +
                                            std::string(1, "0123456789abcdef"[c >> 4]) +
                                            std::string(1, "0123456789abcdef"[c & 15]) +
                                            ", outside printable ASCII (0x20..0x7e)");
    }
  }
  return ok_status();
}

Status check_object_size(std::size_t size, const Limits& limits) {
  if (size > limits.max_object_bytes) {
    return Status(Detail::kTooLarge,
                  "object is " + std::to_string(size) + " bytes, above the limit of " +
                      std::to_string(limits.max_object_bytes));
  }
  return ok_status();
}

}  // namespace shoal::sink

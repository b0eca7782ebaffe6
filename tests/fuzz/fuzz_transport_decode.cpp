// libFuzzer target: transport::decode on arbitrary bytes. Proves (by not crashing under
// ASan+UBSan) that decode never crashes, asserts or lets an exception out, under the default and
// under tight limits, and that whatever it accepts is stable: encode(decoded) decodes again and
// re-encodes to the same bytes. A violation traps, so libFuzzer saves the input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "transport/codec.hpp"

namespace {

shoal::transport::DecodeLimits tight_limits() {
  shoal::transport::DecodeLimits l;
  l.max_indices = 64;
  l.max_digests = 64;
  l.max_items = 8;
  l.max_specs = 4;
  l.max_collection_name_bytes = 8;
  l.max_payload_bytes = 64;
  l.traversal_limit_words = 512;
  l.nesting_limit = 4;
  return l;
}

void check(std::string_view bytes, const shoal::transport::DecodeLimits& limits) {
  auto r = shoal::transport::decode(bytes, limits);
  if (!r.ok()) {
    if (r.status().message().empty()) __builtin_trap();
    return;
  }
  const std::string again = shoal::transport::encode(*r);
  auto r2 = shoal::transport::decode(again, limits);
  if (!r2.ok() || shoal::transport::encode(*r2) != again) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const shoal::transport::DecodeLimits kDefault{};
  static const shoal::transport::DecodeLimits kTight = tight_limits();
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check(bytes, kDefault);
  check(bytes, kTight);
  return 0;
}

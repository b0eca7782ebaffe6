// libFuzzer target: sink::decode_segment on arbitrary bytes (sink/segment.hpp,
// docs/sink-format.md). Proves (by not crashing under ASan+UBSan, and trapping on a broken
// rule) that decoding never crashes or reads out of bounds, whatever the lengths and counts
// claim; that a decoded segment re-encodes to exactly the bytes it came from (the format has one
// encoding per segment, so a stored segment's bytes are its identity); and that tighter limits
// only ever refuse more. A mutated input's checksum almost never matches, so each input is also
// decoded re-sealed (its bytes but the last 8, followed by their correct XXH64): that drives the
// record parser itself with arbitrary lengths, counts, orders and digests. Seeds (valid
// segments): tests/fuzz/corpus/fuzz_sink_segment.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <xxhash.h>

#include "sink/segment.hpp"

namespace {

void require(bool ok) {
  if (!ok) __builtin_trap();
}

void check(std::string_view bytes) {
  auto decoded = shoal::sink::decode_segment(bytes);
  shoal::sink::SegmentLimits tight;
  tight.max_payload_bytes = 64;
  tight.max_entries_per_record = 2;
  tight.max_records = 4;
  auto strict = shoal::sink::decode_segment(bytes, tight);
  if (!decoded.ok()) {
    require(!strict.ok());
    return;
  }
  auto again = shoal::sink::encode_segment(*decoded);
  require(again.ok());
  require(*again == bytes);
  if (strict.ok()) require(*strict == *decoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  check(bytes);
  if (size >= 8) {
    std::string sealed(bytes.substr(0, size - 8));
    const std::uint64_t h = XXH64(sealed.data(), sealed.size(), 0);
    for (int i = 0; i < 8; ++i) sealed += static_cast<char>(static_cast<std::uint8_t>(h >> (8 * i)));
    check(sealed);
  }
  return 0;
}

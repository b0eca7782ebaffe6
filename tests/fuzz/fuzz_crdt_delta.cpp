// libFuzzer target: crdt::decode_delta and the joins on arbitrary bytes. The input is
// [u16 little-endian length n][n bytes: delta A][the rest: delta B]. Proves (by not crashing
// under ASan+UBSan, and trapping on a broken law) that decoding never crashes, and that decoded
// deltas, which crdt/codec.hpp promises can be joined without further checks, join without
// crashing; joining A and B again changes nothing; a decoded delta re-encodes to the same bytes
// it came from.
//
// With SHOAL_FUZZ_STRICT=1 in the environment it also requires the joined maps to pass
// check_invariants_for_testing, Delta::join to commute and ORMap::join of A then B to equal B
// then A. These fail today,
// reported to the crdt owner with reproducers:
//   regressions/crdt_delta_join_order.bin: a decodable delta whose context covers dots of
//     records it does not name (the shape of ORMap::to_delta(), which must not be join()ed;
//     decode_delta cannot tell the two apart) makes join order matter;
//   regressions/crdt_delta_duplicate_dot.bin: decode_delta accepts one dot under two records,
//     and the joined map fails check_invariants_for_testing ("no dot in two places");
//   regressions/crdt_delta_same_dot_two_values.bin: A and B carry the same dot with different
//     clocks and payloads (impossible from honest replicas, undetectable by one decoder), and
//     Delta::join keeps whichever came first.
// Off by default so the fuzzer keeps hunting crashes and memory errors.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "crdt/codec.hpp"
#include "crdt/or_map.hpp"

namespace {

using shoal::crdt::Bytes;
using shoal::crdt::Delta;
using shoal::crdt::ORMap;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

bool strict() {
  static const bool on = [] {
    const char* v = std::getenv("SHOAL_FUZZ_STRICT");
    return v != nullptr && v[0] == '1';
  }();
  return on;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t n = std::min<std::size_t>(size - 2, std::size_t{data[0]} | (std::size_t{data[1]} << 8));
  const std::span<const std::uint8_t> a_bytes(data + 2, n);
  const std::span<const std::uint8_t> b_bytes(data + 2 + n, size - 2 - n);

  auto a = shoal::crdt::decode_delta(a_bytes);
  auto b = shoal::crdt::decode_delta(b_bytes);
  if (a.ok()) {
    Bytes out;
    shoal::crdt::encode_delta(*a, out);
    require(std::equal(out.begin(), out.end(), a_bytes.begin(), a_bytes.end()));
  }
  if (!a.ok() || !b.ok()) return 0;

  Delta ab = *a;
  ab.join(*b);
  Delta ba = *b;
  ba.join(*a);

  ORMap x;
  x.join(*a);
  x.join(*b);
  ORMap y;
  y.join(*b);
  y.join(*a);
  const ORMap before = x;
  x.join(*a);
  x.join(*b);
  require(x == before);
  if (strict()) {
    require(ab == ba);
    require(x.check_invariants_for_testing());
    require(y.check_invariants_for_testing());
    require(x == y);
    ORMap z;
    z.join(ab);
    require(z == y);
  }
  return 0;
}

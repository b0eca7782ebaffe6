// Proves the binary format: dots, contexts, entries and deltas round-trip exactly; the
// encoding is canonical (anything the decoder accepts re-encodes to the same bytes); and the
// decoders are robust: every strict prefix of a valid encoding, random bytes, and valid
// encodings with random bytes flipped, inserted or removed are refused with a Status or decode
// to values that satisfy every invariant, never a crash (run under ASan/UBSan too).
#include "crdt/codec.hpp"

#include "crdt_test_util.hpp"

using namespace shoal::crdt;
using namespace shoal::crdt::testing;
using shoal::Rng;

namespace {

template <typename T, typename Enc>
Bytes encoded(const T& v, Enc enc) {
  Bytes out;
  enc(v, out);
  return out;
}

// Decodes `bytes` every way; whatever is accepted must be canonical and valid.
void decode_everything(const Bytes& bytes) {
  if (auto d = decode_delta(bytes); d.ok()) {
    REQUIRE(encoded(*d, encode_delta) == bytes);
    for (const auto& [id, entries] : d->records) REQUIRE(entries_valid(entries));
  } else {
    REQUIRE(d.status().code() != shoal::Code::kOk);
  }
  if (auto e = decode_entries(bytes); e.ok()) {
    REQUIRE(entries_valid(*e));
    Bytes again;
    encode_entries(*e, again);
    REQUIRE(again == bytes);
  }
  if (auto c = decode_context(bytes); c.ok()) REQUIRE(encoded(*c, encode_context) == bytes);
  if (auto d = decode_dot(bytes); d.ok()) REQUIRE(encoded(*d, encode_dot) == bytes);
}

}  // namespace

TEST_CASE("deltas, contexts, entries and dots round-trip exactly", "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    RandomHistory h(rng, 4, 20);
    for (int i = 0; i < 500; ++i) {
      Delta d = h.step();
      auto back = decode_delta(encoded(d, encode_delta));
      REQUIRE(back.ok());
      REQUIRE(*back == d);
      const ORMap& s = h.random_state();
      const Delta full = s.to_delta();
      auto full_back = decode_delta(encoded(full, encode_delta));
      REQUIRE(full_back.ok());
      REQUIRE(*full_back == full);
      auto ctx_back = decode_context(encoded(s.context(), encode_context));
      REQUIRE(ctx_back.ok());
      REQUIRE(*ctx_back == s.context());
      for (const auto& [id, entries] : s.records()) {
        Bytes b;
        encode_entries(entries, b);
        auto eb = decode_entries(b);
        REQUIRE(eb.ok());
        REQUIRE(*eb == entries);
        auto dot = decode_dot(encoded(entries.front().dot, encode_dot));
        REQUIRE(dot.ok());
        REQUIRE(*dot == entries.front().dot);
      }
    }
  }
}

TEST_CASE("decoders refuse truncated, corrupted and random bytes without crashing",
          "[crdt][property]") {
  for (std::uint64_t seed : test_seeds()) {
    INFO("seed " << seed);
    Rng rng(seed);
    RandomHistory h(rng, 3, 10);
    std::vector<Bytes> valid;  // in triples: delta, context, entries (the last may be absent)
    std::vector<int> kinds;
    for (int i = 0; i < 60; ++i) {
      h.step();
      const ORMap& s = h.random_state();
      valid.push_back(encoded(s.to_delta(), encode_delta));
      kinds.push_back(0);
      valid.push_back(encoded(s.context(), encode_context));
      kinds.push_back(1);
      if (!s.records().empty()) {
        Bytes b;
        encode_entries(s.records().begin()->second, b);
        valid.push_back(b);
        kinds.push_back(2);
      }
    }
    for (std::size_t k = 0; k < valid.size(); ++k) {
      const Bytes& v = valid[k];
      // Every strict prefix is refused by the decoder of its kind (a prefix of a delta may well
      // be a whole context, so other decoders are not asked).
      for (std::size_t len = 0; len < v.size(); ++len) {
        const std::span<const std::uint8_t> prefix(v.data(), len);
        if (kinds[k] == 0) REQUIRE_FALSE(decode_delta(prefix).ok());
        if (kinds[k] == 1) REQUIRE_FALSE(decode_context(prefix).ok());
        if (kinds[k] == 2) REQUIRE_FALSE(decode_entries(prefix).ok());
        decode_everything(Bytes(prefix.begin(), prefix.end()));
      }
      // Mutations: flips, insertions, deletions.
      for (int m = 0; m < 40; ++m) {
        Bytes x = v;
        const int kind = static_cast<int>(rng.uniform(3));
        const std::size_t at = static_cast<std::size_t>(rng.uniform(x.size()));
        if (kind == 0) {
          x[at] = static_cast<std::uint8_t>(x[at] ^ (1u << rng.uniform(8)));
        } else if (kind == 1) {
          x.insert(x.begin() + static_cast<std::ptrdiff_t>(at),
                   static_cast<std::uint8_t>(rng.next_u32()));
        } else {
          x.erase(x.begin() + static_cast<std::ptrdiff_t>(at));
        }
        decode_everything(x);
      }
    }
    // Pure noise, with a valid version byte most of the time so decoding goes deeper.
    for (int i = 0; i < 20'000; ++i) {
      Bytes x(static_cast<std::size_t>(rng.uniform(64)));
      for (auto& b : x)
        b = static_cast<std::uint8_t>(rng.uniform(4) == 0 ? rng.next_u32() : rng.uniform(3));
      if (!x.empty() && rng.bernoulli(0.9)) x[0] = kFormatVersion;
      decode_everything(x);
    }
  }
}

TEST_CASE("decoders report the documented statuses", "[crdt]") {
  CHECK(decode_delta(Bytes{}).status().detail() == shoal::Detail::kTruncated);
  CHECK(decode_delta(Bytes{9, 0, 0}).status().detail() == shoal::Detail::kVersionMismatch);
  CHECK(decode_context(Bytes{kFormatVersion, 0, 0}).status().code() == shoal::Code::kCorruption);
  // An overlong varint (a zero continuation group) is refused.
  CHECK(decode_context(Bytes{kFormatVersion, 0x80, 0x00}).status().code() ==
        shoal::Code::kCorruption);
  // A count far beyond the input does not allocate; it is refused as truncated.
  CHECK(decode_entries(Bytes{kFormatVersion, 0xff, 0xff, 0xff, 0xff, 0x0f}).status().detail() ==
        shoal::Detail::kTruncated);
  // A delta entry whose dot its context does not cover is refused.
  Delta d;
  d.records["x"] = Entries{Entry{Dot{replica_for_testing(1), 1}, Hlc::from_raw(1), Bytes{}}};
  Bytes b;
  encode_delta(d, b);
  CHECK(decode_delta(b).status().code() == shoal::Code::kCorruption);
  d.context.add(Dot{replica_for_testing(1), 1});
  b.clear();
  encode_delta(d, b);
  CHECK(decode_delta(b).ok());
}

// Proves D74's removed-dot ranges: canonical lists round-trip, ranges_contain agrees with a plain
// scan, every strict prefix is refused, and a list over the limit, out of order, touching or
// starting at counter 0 is refused with the documented status.
TEST_CASE("removed-dot ranges round-trip, answer membership and refuse bad input", "[crdt]") {
  for (std::uint64_t seed = 1; seed <= 50; ++seed) {
    Rng rng(seed);
    std::vector<DotRange> ranges;
    for (std::uint64_t r = 1; r <= 3; ++r) {
      std::uint64_t at = 1 + rng.uniform(3);
      const std::uint64_t n = rng.uniform(6);
      for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint64_t len = rng.uniform(4);
        ranges.push_back(DotRange{replica_for_testing(r), at, at + len});
        at += len + 2 + rng.uniform(3);
      }
    }
    Bytes b;
    encode_dot_ranges(ranges, b);
    auto back = decode_dot_ranges(b, 100);
    REQUIRE(back.ok());
    CHECK(*back == ranges);
    for (std::uint64_t r = 1; r <= 4; ++r) {
      for (std::uint64_t c = 1; c < 40; ++c) {
        const Dot d{replica_for_testing(r), c};
        bool scan = false;
        for (const DotRange& x : ranges) scan = scan || (x.replica == d.replica && x.first <= c && c <= x.last);
        CHECK(ranges_contain(ranges, d) == scan);
      }
    }
    for (std::size_t cut = 0; cut < b.size(); ++cut) {
      CHECK_FALSE(decode_dot_ranges(std::span(b).first(cut), 100).ok());
    }
    if (ranges.size() > 1) {
      auto over = decode_dot_ranges(b, ranges.size() - 1);
      REQUIRE_FALSE(over.ok());
      CHECK(over.status().detail() == shoal::Detail::kTooLarge);
    }
  }
  const ReplicaId r1 = replica_for_testing(1);
  const auto bad = [](std::vector<DotRange> v) {
    Bytes b;
    encode_dot_ranges(v, b);
    return decode_dot_ranges(b, 100).status().code();
  };
  CHECK(bad({{r1, 3, 4}, {r1, 1, 1}}) == shoal::Code::kCorruption);  // out of order
  CHECK(bad({{r1, 1, 2}, {r1, 3, 4}}) == shoal::Code::kCorruption);  // touching
  CHECK(bad({{r1, 1, 4}, {r1, 2, 5}}) == shoal::Code::kCorruption);  // overlapping
  CHECK(bad({{r1, 0, 4}}) == shoal::Code::kCorruption);              // counter 0
}

// tests/sink/segment_test.cpp: the segment codec (sink/segment.hpp, docs/sink-format.md):
// round trips, the exact layout of a small segment, and strict decoding: every truncation and
// every single-byte change is refused; with a recomputed trailer, each structural violation is
// refused with its own typed error; limits apply on both sides.
#include <catch2/catch.hpp>

#include <xxhash.h>

#include <random>
#include <string>

#include "sink/segment.hpp"

namespace shoal::sink {
namespace {

SegmentEntry entry(std::uint8_t replica, std::uint64_t counter, std::uint64_t hlc,
                   std::string payload) {
  SegmentEntry e;
  e.dot.replica.fill(replica);
  e.dot.counter = counter;
  e.hlc = hlc;
  e.payload = std::move(payload);
  return e;
}

Segment sample() {
  Segment s;
  s.collection = "photos";
  s.records.push_back({"a", {entry(1, 1, 100, "alpha")}});
  s.records.push_back({"b", {entry(1, 2, 101, ""), entry(2, 7, 99, std::string("\0\1\2", 3))}});
  s.records.push_back({"c/long-id", {entry(3, 1ull << 40, ~0ull, std::string(1000, 'p'))}});
  return s;
}

// Re-seals `bytes` (a segment whose body was edited) with a correct trailer.
std::string reseal(std::string bytes) {
  bytes.resize(bytes.size() - 8);
  const std::uint64_t h = XXH64(bytes.data(), bytes.size(), 0);
  for (int i = 0; i < 8; ++i) bytes += static_cast<char>(static_cast<std::uint8_t>(h >> (8 * i)));
  return bytes;
}

TEST_CASE("segment: round trips, including an empty segment", "[sink][segment]") {
  const Segment s = sample();
  auto bytes = encode_segment(s);
  REQUIRE(bytes.ok());
  auto back = decode_segment(*bytes);
  REQUIRE(back.ok());
  CHECK(*back == s);

  Segment empty;
  empty.collection = "c";
  auto eb = encode_segment(empty);
  REQUIRE(eb.ok());
  CHECK(eb->size() == 8 + 2 + 2 + 2 + 1 + 4 + 8);
  auto eback = decode_segment(*eb);
  REQUIRE(eback.ok());
  CHECK(*eback == empty);
}

TEST_CASE("segment: the layout of docs/sink-format.md", "[sink][segment]") {
  Segment s;
  s.collection = "c";
  s.records.push_back({"id", {entry(0xab, 5, 0x0102030405060708ull, "xyz")}});
  auto bytes = encode_segment(s);
  REQUIRE(bytes.ok());
  const std::string& b = *bytes;
  std::string want = "SHOALSEG";
  want += std::string("\x01\x00" "\x00\x00" "\x01\x00" "c" "\x01\x00\x00\x00", 11);
  want += std::string("\x02\x00" "id" "\x01\x00\x00\x00", 8);
  want += std::string(20, '\xab');
  want += std::string("\x05\x00\x00\x00\x00\x00\x00\x00", 8);
  want += std::string("\x08\x07\x06\x05\x04\x03\x02\x01", 8);
  want += std::string("\x03\x00\x00\x00" "xyz", 7);
  const PayloadDigest d = payload_digest("xyz");
  want.append(reinterpret_cast<const char*>(d.data()), d.size());
  REQUIRE(b.size() == want.size() + 8);
  CHECK(b.substr(0, want.size()) == want);
  CHECK(reseal(b) == b);
  // BLAKE2b-256("abc"), the RFC 7693 family's published vector for the 32-byte digest.
  const PayloadDigest abc = payload_digest("abc");
  CHECK(abc[0] == 0xbd);
  CHECK(abc[1] == 0xdd);
  CHECK(abc[31] == 0x19);
}

TEST_CASE("segment: every truncation and every single-byte change is refused",
          "[sink][segment]") {
  auto bytes = encode_segment(sample());
  REQUIRE(bytes.ok());
  const std::string& b = *bytes;
  for (std::size_t n = 0; n < b.size(); ++n) {
    auto r = decode_segment(std::string_view(b).substr(0, n));
    INFO("length " << n);
    REQUIRE_FALSE(r.ok());
  }
  for (std::size_t i = 0; i < b.size(); ++i) {
    std::string c = b;
    c[i] = static_cast<char>(c[i] ^ 0x40);
    auto r = decode_segment(c);
    INFO("byte " << i);
    REQUIRE_FALSE(r.ok());
    const Code code = r.status().code();
    CHECK((code == Code::kCorruption || code == Code::kUnimplemented));
  }
  std::string extra = b + "x";
  CHECK_FALSE(decode_segment(extra).ok());
}

TEST_CASE("segment: typed errors for each violation", "[sink][segment]") {
  auto bytes = encode_segment(sample());
  REQUIRE(bytes.ok());
  const std::string b = *bytes;

  std::string c = b;
  c[0] = 'X';
  CHECK(decode_segment(c).status().detail() == Detail::kBadMagic);
  c = b;
  c[8] = 2;
  CHECK(decode_segment(reseal(c)).status().detail() == Detail::kVersionMismatch);
  c = b;
  c[b.size() - 1] = static_cast<char>(c[b.size() - 1] ^ 1);
  CHECK(decode_segment(c).status().detail() == Detail::kChecksumMismatch);
  c = b;
  c[10] = 1;  // flags
  CHECK(decode_segment(reseal(c)).status().code() == Code::kCorruption);

  // A payload byte changed under a valid trailer: the payload digest names the record.
  c = b;
  const std::size_t at = c.find("alpha");
  REQUIRE(at != std::string::npos);
  c[at] = 'A';
  auto r = decode_segment(reseal(c));
  CHECK(r.status().detail() == Detail::kChecksumMismatch);
  CHECK(r.status().context() == "a");

  // Ids out of order: swap "a" for "d" (the first id) so that "d" > "b".
  c = b;
  const std::size_t id_at = 8 + 2 + 2 + 2 + 6 + 4 + 2;
  REQUIRE(c[id_at] == 'a');
  c[id_at] = 'd';
  r = decode_segment(reseal(c));
  CHECK(r.status().code() == Code::kCorruption);
  CHECK(r.status().message().find("ascending") != std::string::npos);

  // A record count larger than the bytes can hold.
  c = b;
  c[8 + 2 + 2 + 2 + 6 + 1] = 0x03;  // 771 records
  CHECK(decode_segment(reseal(c)).status().detail() == Detail::kTruncated);
  c = b;
  c[8 + 2 + 2 + 2 + 6 + 3] = 0x7f;  // above max_records
  CHECK(decode_segment(reseal(c)).status().detail() == Detail::kTooLarge);

  // Limits on decode.
  SegmentLimits small;
  small.max_payload_bytes = 999;
  r = decode_segment(b, small);
  CHECK(r.status().detail() == Detail::kTooLarge);
  CHECK(r.status().message().find("999") != std::string::npos);
  small = {};
  small.max_segment_bytes = b.size() - 1;
  CHECK(decode_segment(b, small).status().detail() == Detail::kTooLarge);
}

TEST_CASE("segment: encode refuses what decode would refuse", "[sink][segment]") {
  Segment s = sample();
  std::swap(s.records[0], s.records[1]);
  CHECK(encode_segment(s).status().code() == Code::kInvalidArgument);
  s = sample();
  std::swap(s.records[1].entries[0], s.records[1].entries[1]);
  CHECK(encode_segment(s).status().code() == Code::kInvalidArgument);
  s = sample();
  s.records[0].entries.clear();
  CHECK(encode_segment(s).status().code() == Code::kInvalidArgument);
  s = sample();
  s.records[0].entries[0].dot.counter = 0;
  CHECK(encode_segment(s).status().code() == Code::kInvalidArgument);
  s = sample();
  s.collection.clear();
  CHECK(encode_segment(s).status().code() == Code::kInvalidArgument);
  s = sample();
  s.records[0].id = std::string(1025, 'i');
  s.records[0].id[0] = '0';
  CHECK(encode_segment(s).status().detail() == Detail::kTooLarge);
  s = sample();
  SegmentLimits small;
  small.max_entries_per_record = 1;
  CHECK(encode_segment(s, small).status().detail() == Detail::kTooLarge);
}

TEST_CASE("segment: random segments round trip", "[sink][segment]") {
  std::mt19937_64 rng(Catch::rngSeed());
  for (int round = 0; round < 50; ++round) {
    Segment s;
    s.collection = "col" + std::to_string(round);
    const int records = static_cast<int>(rng() % 20);
    for (int i = 0; i < records; ++i) {
      SegmentRecord r;
      r.id = "id" + std::to_string(1000 + i);
      const int entries = 1 + static_cast<int>(rng() % 4);
      for (int j = 0; j < entries; ++j) {
        std::string payload(rng() % 300, '\0');
        for (auto& ch : payload) ch = static_cast<char>(rng());
        r.entries.push_back(entry(static_cast<std::uint8_t>(j), rng() % 1000 + 1, rng(),
                                  std::move(payload)));
      }
      s.records.push_back(std::move(r));
    }
    auto bytes = encode_segment(s);
    REQUIRE(bytes.ok());
    auto back = decode_segment(*bytes);
    REQUIRE(back.ok());
    CHECK(*back == s);
  }
}

}  // namespace
}  // namespace shoal::sink

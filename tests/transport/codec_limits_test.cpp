// Proves that decode() enforces every DecodeLimits bound and every structural rule with its typed
// Status: each limit is broken by one field just above it (kTooLarge, with the limit's name and
// the value seen in the message), inputs cut short anywhere are kTruncated, trailing bytes, bad
// segment tables, bad pointers and wrong-sized replica ids are kMalformed, and an unknown message
// kind is kUnimplemented. Hostile messages are crafted as raw Cap'n Proto words where the encoder
// cannot produce them (zero-sized list elements, unknown union members).
#include <catch2/catch.hpp>

#include <functional>
#include <string>

#include "message_gen.hpp"
#include "transport/codec.hpp"

using namespace shoal;
using namespace shoal::transport;
using namespace shoal::transport::testing;

namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// One case: a message, a change to the limits, and the status it must give.
struct LimitCase {
  std::string what;
  Message message;
  std::function<void(DecodeLimits&)> tighten;
  std::string limit_name;
  std::string seen;  // the value seen, as printed
};

std::string name_of(std::size_t n) { return std::string(n, 'c'); }

std::vector<LimitCase> limit_cases() {
  std::vector<LimitCase> cases;
  const std::size_t name_max = DecodeLimits{}.max_collection_name_bytes;
  const std::string long_name = name_of(name_max + 1);
  const std::string seen_name = std::to_string(name_max + 1) + " bytes";

  // Collection names, in every message that carries one.
  {
    Hello h;
    h.replica.assign(kReplicaWireBytes, 'r');
    h.collections.push_back(CollectionSpecWire{long_name});
    cases.push_back({"Hello spec name", h, {}, "max_collection_name_bytes", seen_name});
    DeltaBatch b;
    b.specs.push_back(CollectionSpecWire{long_name});
    cases.push_back({"DeltaBatch spec name", b, {}, "max_collection_name_bytes", seen_name});
    DeltaBatch bi;
    bi.items.push_back(DeltaItem{long_name, "d"});
    cases.push_back({"DeltaItem.collection", bi, {}, "max_collection_name_bytes", seen_name});
    cases.push_back({"DigestQuery.collection", DigestQuery{1, long_name, 0, {}}, {},
                     "max_collection_name_bytes", seen_name});
    DigestReply r;
    r.collection = long_name;
    cases.push_back({"DigestReply.collection", r, {}, "max_collection_name_bytes", seen_name});
    cases.push_back({"BucketQuery.collection", BucketQuery{1, long_name, {}}, {},
                     "max_collection_name_bytes", seen_name});
    cases.push_back({"BucketReply.collection", BucketReply{1, long_name, {}, ""}, {},
                     "max_collection_name_bytes", seen_name});
  }
  // List lengths: default limits for the small ones, tightened limits for the big ones (the
  // defaults are exercised in codec_roundtrip_test at exactly the limit).
  {
    Hello h;
    h.replica.assign(kReplicaWireBytes, 'r');
    h.collections.resize(DecodeLimits{}.max_specs + 1);
    cases.push_back({"Hello.collections", h, {}, "max_specs",
                     std::to_string(DecodeLimits{}.max_specs + 1) + " elements"});
    DeltaBatch b;
    b.specs.resize(DecodeLimits{}.max_specs + 1);
    cases.push_back({"DeltaBatch.specs", b, {}, "max_specs",
                     std::to_string(DecodeLimits{}.max_specs + 1) + " elements"});
    DeltaBatch bi;
    bi.items.resize(DecodeLimits{}.max_items + 1);
    cases.push_back({"DeltaBatch.items", bi, {}, "max_items",
                     std::to_string(DecodeLimits{}.max_items + 1) + " elements"});
    const auto tight_indices = [](DecodeLimits& l) { l.max_indices = 10; };
    cases.push_back({"DigestQuery.indices", DigestQuery{1, "c", 0, std::vector<std::uint32_t>(11)},
                     tight_indices, "max_indices=10", "11 elements"});
    DigestReply ri;
    ri.indices.resize(11);
    cases.push_back({"DigestReply.indices", ri, tight_indices, "max_indices=10", "11 elements"});
    DigestReply rd;
    rd.digests.resize(11);
    cases.push_back({"DigestReply.digests", rd, [](DecodeLimits& l) { l.max_digests = 10; },
                     "max_digests=10", "11 elements"});
    cases.push_back({"BucketQuery.buckets", BucketQuery{1, "c", std::vector<std::uint32_t>(11)},
                     tight_indices, "max_indices=10", "11 elements"});
    cases.push_back({"BucketReply.buckets",
                     BucketReply{1, "c", std::vector<std::uint32_t>(11), ""}, tight_indices,
                     "max_indices=10", "11 elements"});
  }
  // Payloads.
  {
    const auto tight_payload = [](DecodeLimits& l) { l.max_payload_bytes = 100; };
    DeltaBatch b;
    b.items.push_back(DeltaItem{"c", std::string(101, 'd')});
    cases.push_back({"DeltaItem.delta", b, tight_payload, "max_payload_bytes=100", "101 bytes"});
    DigestReply r;
    r.context.assign(101, 'x');
    cases.push_back({"DigestReply.context", r, tight_payload, "max_payload_bytes=100",
                     "101 bytes"});
    cases.push_back({"BucketReply.slice", BucketReply{1, "c", {}, std::string(101, 's')},
                     tight_payload, "max_payload_bytes=100", "101 bytes"});
  }
  return cases;
}

// Raw Cap'n Proto words (little-endian host assumed, as everywhere in Shoal).
std::uint64_t struct_ptr(std::uint32_t offset_words, std::uint16_t data, std::uint16_t ptrs) {
  return (std::uint64_t{offset_words} << 2) | (std::uint64_t{data} << 32) |
         (std::uint64_t{ptrs} << 48);
}

std::string to_bytes(const std::vector<std::uint64_t>& words) {
  return std::string(reinterpret_cast<const char*>(words.data()), words.size() * 8);
}

// A DeltaBatch whose items list holds `count` zero-sized structs in zero words: Cap'n Proto's
// classic amplification shape (a few bytes that claim a huge list).
std::string zero_sized_items(std::uint32_t count) {
  std::vector<std::uint64_t> seg = {
      struct_ptr(0, 1, 1),         // root -> Envelope
      1,                           // Envelope union tag: deltaBatch
      struct_ptr(0, 2, 2),         // Envelope.deltaBatch -> next word
      0, 0,                        // firstSeq, lastSeq
      0,                           // specs: null
      1 | (std::uint64_t{7} << 32),  // items: inline-composite list, 0 words, tag follows
      struct_ptr(count, 0, 0),     // tag: `count` elements of 0 data and 0 pointer words
  };
  std::vector<std::uint64_t> words = {std::uint64_t{seg.size()} << 32};
  words.insert(words.end(), seg.begin(), seg.end());
  return to_bytes(words);
}

}  // namespace

TEST_CASE("every list, name and payload limit gives kTooLarge naming the limit and the value",
          "[transport]") {
  for (const auto& c : limit_cases()) {
    INFO(c.what);
    DecodeLimits limits;
    if (c.tighten) c.tighten(limits);
    const std::string bytes = encode(c.message);
    // The same bytes decode under the default limits (when they were tightened) ...
    if (c.tighten) REQUIRE(decode(bytes).ok());
    // ... and fail under the broken one.
    auto r = decode(bytes, limits);
    REQUIRE_FALSE(r.ok());
    INFO(r.status().to_string());
    CHECK(r.status().detail() == Detail::kTooLarge);
    CHECK(contains(r.status().message(), c.limit_name));
    CHECK(contains(r.status().message(), c.seen));
  }
}

TEST_CASE("a message above max_message_bytes is kTooLarge before it is parsed", "[transport]") {
  const std::string bytes = encode(BucketReply{1, "c", {1, 2, 3}, std::string(1000, 's')});
  DecodeLimits limits;
  limits.max_message_bytes = bytes.size() - 1;
  auto r = decode(bytes, limits);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == Detail::kTooLarge);
  CHECK(contains(r.status().message(), "max_message_bytes=" + std::to_string(bytes.size() - 1)));
  CHECK(contains(r.status().message(), std::to_string(bytes.size()) + " bytes"));
  limits.max_message_bytes = bytes.size();
  CHECK(decode(bytes, limits).ok());
  // Garbage above the limit is refused on size alone.
  CHECK(decode(std::string(limits.max_message_bytes + 1, '\xff'), limits).status().detail() ==
        Detail::kTooLarge);
}

TEST_CASE("the traversal limit gives kTooLarge", "[transport]") {
  DigestReply reply;
  reply.digests.resize(10000, 3);
  const std::string bytes = encode(reply);
  DecodeLimits limits;
  limits.traversal_limit_words = 1000;
  auto r = decode(bytes, limits);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == Detail::kTooLarge);
  CHECK(contains(r.status().message(), "traversal_limit_words=1000"));
}

TEST_CASE("the nesting limit gives kTooLarge, and the deepest message needs depth 4",
          "[transport]") {
  DeltaBatch batch;
  batch.items.push_back(DeltaItem{"c", "delta"});
  batch.specs.push_back(CollectionSpecWire{"n"});
  const std::string bytes = encode(batch);
  DecodeLimits limits;
  limits.nesting_limit = 3;
  auto r = decode(bytes, limits);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == Detail::kTooLarge);
  CHECK(contains(r.status().message(), "nesting_limit=3"));
  limits.nesting_limit = 4;
  CHECK(decode(bytes, limits).ok());
}

TEST_CASE("zero-sized list elements cannot amplify a small message", "[transport]") {
  // The crafted shape is valid Cap'n Proto: a small count decodes to empty items.
  auto small = decode(zero_sized_items(3));
  REQUIRE(small.ok());
  REQUIRE(std::holds_alternative<DeltaBatch>(*small));
  CHECK(std::get<DeltaBatch>(*small).items.size() == 3);
  // A count above max_items is refused before any item is built.
  auto over = decode(zero_sized_items(200000));
  REQUIRE_FALSE(over.ok());
  CHECK(over.status().detail() == Detail::kTooLarge);
  CHECK(contains(over.status().message(), "max_items"));
  // The largest count Cap'n Proto can express is stopped by the traversal limit.
  auto huge = decode(zero_sized_items((1u << 29) - 1));
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.status().detail() == Detail::kTooLarge);
}

TEST_CASE("a Hello replica id that is not exactly 20 bytes is kMalformed", "[transport]") {
  for (std::size_t len : {std::size_t{0}, std::size_t{16}, std::size_t{19}, std::size_t{21},
                          std::size_t{64}}) {
    INFO("replica bytes " << len);
    Hello h;
    h.replica.assign(len, 'r');
    auto r = decode(encode(h));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().detail() == Detail::kMalformed);
    CHECK(contains(r.status().message(), std::to_string(len) + " bytes"));
  }
}

TEST_CASE("every strict prefix of a message is kTruncated", "[transport]") {
  Rng rng(static_cast<std::uint64_t>(Catch::rngSeed()));
  INFO("seed " << rng.seed());
  for (std::size_t kind = 0; kind < kMessageKinds; ++kind) {
    const std::string bytes = encode(random_message(rng, kind));
    for (std::size_t len = 0; len < bytes.size(); ++len) {
      auto r = decode(std::string_view(bytes).substr(0, len));
      REQUIRE_FALSE(r.ok());
      INFO("kind " << kind << " prefix " << len << ": " << r.status().to_string());
      REQUIRE(r.status().detail() == Detail::kTruncated);
    }
  }
}

TEST_CASE("trailing bytes and bad segment tables are kMalformed", "[transport]") {
  const std::string bytes = encode(DeltaAck{42});
  for (std::size_t extra : {1, 7, 8, 64}) {
    auto r = decode(bytes + std::string(extra, '\0'));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().detail() == Detail::kMalformed);
    CHECK(contains(r.status().message(), std::to_string(extra) + " trailing bytes"));
  }
  // 1000 segments.
  std::string many = bytes;
  many[0] = static_cast<char>(999 & 0xff);
  many[1] = static_cast<char>(999 >> 8);
  auto r = decode(many);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == Detail::kMalformed);
  CHECK(contains(r.status().message(), "1000 segments"));
}

TEST_CASE("out-of-bounds and wrongly typed pointers are kMalformed", "[transport]") {
  const std::string bytes = encode(DeltaAck{42});
  // The root pointer (bytes 8..15): a struct far beyond the segment.
  std::string far = bytes;
  far[8] = static_cast<char>(0xfc);
  far[9] = static_cast<char>(0xff);
  auto r = decode(far);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == Detail::kMalformed);
  // The root pointer made a list pointer.
  std::string list = bytes;
  list[8] = static_cast<char>((list[8] & ~3) | 1);
  auto l = decode(list);
  REQUIRE_FALSE(l.ok());
  CHECK(l.status().detail() == Detail::kMalformed);
}

TEST_CASE("an unknown message kind is kUnimplemented", "[transport]") {
  std::string bytes = encode(DeltaAck{42});
  // Layout: segment table (8 bytes), root pointer (8), Envelope data word whose first u16 is the
  // union tag.
  REQUIRE(bytes[16] == 2);  // deltaAck's tag: the layout assumption holds
  bytes[16] = 7;            // the next ordinal, not known to this build
  auto r = decode(bytes);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kUnimplemented);
  CHECK(contains(r.status().message(), "unknown message kind 7"));
}

TEST_CASE("an absent root or body decodes to defaults, never to a crash", "[transport]") {
  // A one-word segment holding a null root pointer: an Envelope of all defaults is a Hello with
  // no replica, which is refused.
  const std::vector<std::uint64_t> null_root = {std::uint64_t{1} << 32, 0};
  auto r = decode(to_bytes(null_root));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().detail() == Detail::kMalformed);
  // An empty first segment has no root pointer at all.
  const std::vector<std::uint64_t> empty_segment = {0};
  auto e = decode(to_bytes(empty_segment));
  REQUIRE_FALSE(e.ok());
  CHECK(e.status().detail() == Detail::kMalformed);
}

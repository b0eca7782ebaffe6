// Proves the record layer's edge checks and formats: every invalid vector, id, name or metadata
// gets its typed detail code with the limit and value in the message; payloads round-trip
// exactly; decoding arbitrary or truncated bytes returns a status and never crashes; filters
// parse and match as documented.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "common/random.hpp"
#include "node/core/record.hpp"

using namespace shoal;
using namespace shoal::node;

namespace {
RecordValue random_record(Rng& rng, std::uint32_t dim) {
  RecordValue r;
  r.vector.resize(dim);
  for (auto& x : r.vector) x = rng.uniform_float(-1, 1);
  r.model = rng.bernoulli(0.5) ? "clip-vit-b32" : "";
  const auto n = rng.uniform(6);
  for (std::uint64_t i = 0; i < n; ++i) {
    std::string key = "k" + std::to_string(rng.uniform(10));
    switch (rng.uniform(4)) {
      case 0: r.metadata.fields.emplace_back(key, std::string(rng.uniform(20), 'x')); break;
      case 1: r.metadata.fields.emplace_back(key, static_cast<std::int64_t>(rng.next_u64())); break;
      case 2: r.metadata.fields.emplace_back(key, rng.uniform_double()); break;
      default: r.metadata.fields.emplace_back(key, rng.bernoulli(0.5)); break;
    }
  }
  r.metadata.normalize();
  return r;
}
}  // namespace

TEST_CASE("vectors are rejected with a typed detail naming the limit and the value", "[node]") {
  std::vector<float> v{1, 2, 3};
  auto s = validate_vector(v, 4, Metric::kL2);
  CHECK(s.detail() == Detail::kDimensionMismatch);
  CHECK(s.message() == "vector has dimension 3, collection has 4");
  v = {1, std::numeric_limits<float>::quiet_NaN(), 0, 0};
  CHECK(validate_vector(v, 4, Metric::kL2).detail() == Detail::kNonFinite);
  v = {1, std::numeric_limits<float>::infinity(), 0, 0};
  CHECK(validate_vector(v, 4, Metric::kL2).detail() == Detail::kNonFinite);
  v = {0, 0, 0, 0};
  CHECK(validate_vector(v, 4, Metric::kL2).ok());
  CHECK(validate_vector(v, 4, Metric::kCosine).detail() == Detail::kZeroVector);
}

TEST_CASE("ids, names, model tags and metadata are checked against the limits", "[node]") {
  Limits lim;
  CHECK(validate_record_id("a", lim).ok());
  CHECK(validate_record_id("", lim).detail() == Detail::kTooLarge);
  auto s = validate_record_id(std::string(257, 'a'), lim);
  CHECK(s.detail() == Detail::kTooLarge);
  CHECK(s.message() == "record id must be 1..256 bytes, got 257");
  CHECK(validate_record_id(std::string("a\0b", 3), lim).detail() == Detail::kMalformed);
  CHECK(validate_collection_name("photos_2024-v1.x", lim).ok());
  CHECK(validate_collection_name("bad name", lim).detail() == Detail::kMalformed);
  CHECK(validate_collection_name(".hidden", lim).detail() == Detail::kMalformed);

  RecordValue r;
  r.vector = {1, 0};
  r.model = std::string(129, 'm');
  CHECK(validate_record(r, 2, Metric::kL2, lim).detail() == Detail::kTooLarge);
  r.model.clear();
  r.metadata.fields.emplace_back("big", std::string(41 * 1024, 'x'));
  s = validate_record(r, 2, Metric::kL2, lim);
  CHECK(s.detail() == Detail::kTooLarge);
  CHECK(s.message().find("limit 40960") != std::string::npos);
  r.metadata.fields = {{"f", std::numeric_limits<double>::infinity()}};
  CHECK(validate_record(r, 2, Metric::kL2, lim).detail() == Detail::kNonFinite);
  r.metadata.fields = {{"b", true}, {"a", true}};
  CHECK(validate_record(r, 2, Metric::kL2, lim).detail() == Detail::kMalformed);
  r.metadata.normalize();
  CHECK(validate_record(r, 2, Metric::kL2, lim).ok());
}

TEST_CASE("payloads round-trip exactly", "[node][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  for (int i = 0; i < 2000; ++i) {
    auto r = random_record(rng, static_cast<std::uint32_t>(rng.uniform(64)));
    auto bytes = encode_payload(r);
    auto back = decode_payload(bytes);
    REQUIRE(back.ok());
    REQUIRE(*back == r);
  }
}

TEST_CASE("decoding random, truncated or flipped bytes returns a status, never crashes",
          "[node][property]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  int rejected = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = encode_payload(random_record(rng, static_cast<std::uint32_t>(rng.uniform(8))));
    switch (rng.uniform(3)) {
      case 0: bytes.resize(rng.uniform(bytes.size())); break;
      case 1: bytes[rng.uniform(bytes.size())] ^= static_cast<char>(1 + rng.uniform(255)); break;
      default:
        for (auto& c : bytes) c = static_cast<char>(rng.uniform(256));
        break;
    }
    auto r = decode_payload(bytes);
    if (!r.ok()) {
      ++rejected;
      CHECK((r.status().code() == Code::kInvalidArgument ||
             r.status().code() == Code::kUnimplemented));
    }
  }
  CHECK(rejected > 10000);
}

TEST_CASE("filters parse and match conjunctions of typed conditions", "[node]") {
  Metadata m;
  m.fields = {{"color", std::string("red")}, {"year", std::int64_t{2021}}, {"score", 0.5},
              {"ok", true}};
  m.normalize();
  auto match = [&](std::string_view text) {
    auto f = parse_filter(text);
    REQUIRE(f.ok());
    return f->matches(m);
  };
  CHECK(match(""));
  CHECK(match("color=red"));
  CHECK_FALSE(match("color=blue"));
  CHECK(match("color!=blue"));
  CHECK(match("year>=2021,year<2022"));
  CHECK_FALSE(match("year>2021"));
  CHECK(match("score<0.75"));
  CHECK(match("score>0"));   // int against float compares numerically
  CHECK(match("ok=true"));
  CHECK(match("year?"));
  CHECK_FALSE(match("missing?"));
  CHECK_FALSE(match("missing=1"));
  CHECK(match("year!=\"2021\""));  // a quoted string never equals an int
  CHECK_FALSE(match("color=\"red\",year=2020"));
  CHECK(parse_filter("=3").status().detail() == Detail::kMalformed);
  CHECK(parse_filter("a=1,,b=2").status().detail() == Detail::kMalformed);
  CHECK(parse_filter("novalue").status().detail() == Detail::kMalformed);
}

// Proves the record layer's edge checks and formats: every invalid vector, id, name or metadata
// gets its typed detail code with the limit and value in the message; payloads round-trip
// exactly; decoding arbitrary or truncated bytes returns a status and never crashes; filters
// parse and match as documented.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "common/random.hpp"
#include "node/core/node_format.hpp"
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

namespace {
// The offset parse_filter reports for `text`, or npos when it parses.
std::size_t error_offset(std::string_view text) {
  std::size_t at = std::string_view::npos;
  auto f = parse_filter(text, &at);
  if (f.ok()) return std::string_view::npos;
  CHECK(f.status().detail() == Detail::kMalformed);
  CHECK(f.status().message().find("at byte " + std::to_string(at)) != std::string::npos);
  return at;
}
}  // namespace

TEST_CASE("malformed filters are refused with the byte offset of the error", "[node][filter]") {
  // What this proves: each input the old splitter accepted and matched nothing with (or split
  // wrongly) is now kMalformed, and the message and the out-parameter name where it went wrong.
  CHECK(error_offset("color=\"red") == 6);               // unterminated quote: its opening byte
  CHECK(error_offset("\"color=red") == 0);
  CHECK(error_offset("year>>2021") == 5);                // the second '>' is no value
  CHECK(error_offset("year=<2021") == 5);
  CHECK(error_offset("year=>2021") == 5);
  CHECK(error_offset("year!2021") == 4);                 // '!' without '='
  CHECK(error_offset("k\xff" "y=1") == 1);               // a key that is not UTF-8
  CHECK(error_offset("\"k\xff\"=1") == 2);
  CHECK(error_offset("k=\"v\xfe\"") == 4);               // a quoted value that is not UTF-8
  CHECK(error_offset("k=\"a\\qb\"") == 4);               // unknown escape
  CHECK(error_offset("=3") == 0);
  CHECK(error_offset("a=1,,b=2") == 4);
  CHECK(error_offset("a=1,") == 4);
  CHECK(error_offset("novalue") == 7);
  CHECK(error_offset("a=") == 2);
  CHECK(error_offset("a=b=c") == 3);
  CHECK(error_offset("a=1 b=2") == 5);                   // a missing comma
  CHECK(error_offset("a?b") == 2);
  CHECK(error_offset("a=\"x\"y") == 5);
  CHECK(error_offset("\"\"=1") == 0);                    // an empty key
  auto s = parse_filter("year>>2021").status();
  CHECK(s.message() == "filter: expected a value, got '>' at byte 5");
}

TEST_CASE("quoted values keep commas, escapes and spaces; whitespace between tokens is ignored",
          "[node][filter]") {
  auto f = parse_filter("note=\"a,b\",year>=2020");
  REQUIRE(f.ok());
  REQUIRE(f->all.size() == 2);
  CHECK(f->all[0].key == "note");
  CHECK(f->all[0].value == MetaValue(std::string("a,b")));
  CHECK(f->all[1].op == Condition::Op::kGe);
  f = parse_filter(R"(q="say \"hi\" \\ ok")");
  REQUIRE(f.ok());
  CHECK(f->all.at(0).value == MetaValue(std::string(R"(say "hi" \ ok)")));
  f = parse_filter(" place = living room , \"my key\" ? ,n=\"2021\" ");
  REQUIRE(f.ok());
  REQUIRE(f->all.size() == 3);
  CHECK(f->all[0].key == "place");
  CHECK(f->all[0].value == MetaValue(std::string("living room")));
  CHECK(f->all[1].key == "my key");
  CHECK(f->all[1].op == Condition::Op::kExists);
  CHECK(f->all[2].value == MetaValue(std::string("2021")));  // quoted: a string, not an int
  f = parse_filter("  ");
  REQUIRE(f.ok());
  CHECK(f->empty());
  f = parse_filter("name=h\xc3\xa9l\xc3\xa8ne");  // UTF-8 in a bare value
  REQUIRE(f.ok());
  CHECK(f->all.at(0).value == MetaValue(std::string("h\xc3\xa9l\xc3\xa8ne")));
}

TEST_CASE("every filter used in tests and examples parses as before", "[node][filter]") {
  // What this proves: the new parser is a drop-in for the filters already written down (tests,
  // examples/quickstart.c, shoal.h, docs/api.md, the kill -9 test); each one yields exactly the
  // conditions the old splitter produced.
  using Op = Condition::Op;
  struct Want {
    std::string key;
    Op op;
    MetaValue value;
  };
  const std::vector<std::pair<std::string, std::vector<Want>>> cases = {
      {"color=red", {{"color", Op::kEq, std::string("red")}}},
      {"color=blue", {{"color", Op::kEq, std::string("blue")}}},
      {"color!=blue", {{"color", Op::kNe, std::string("blue")}}},
      {"year>=2021,year<2022", {{"year", Op::kGe, std::int64_t{2021}}, {"year", Op::kLt, std::int64_t{2022}}}},
      {"year>2021", {{"year", Op::kGt, std::int64_t{2021}}}},
      {"year<50", {{"year", Op::kLt, std::int64_t{50}}}},
      {"year>=1990", {{"year", Op::kGe, std::int64_t{1990}}}},
      {"score<0.75", {{"score", Op::kLt, 0.75}}},
      {"score>0", {{"score", Op::kGt, std::int64_t{0}}}},
      {"ok=true", {{"ok", Op::kEq, true}}},
      {"year?", {{"year", Op::kExists, MetaValue{}}}},
      {"missing=1", {{"missing", Op::kEq, std::int64_t{1}}}},
      {"year!=\"2021\"", {{"year", Op::kNe, std::string("2021")}}},
      {"color=\"red\",year=2020", {{"color", Op::kEq, std::string("red")}, {"year", Op::kEq, std::int64_t{2020}}}},
      {"place=indoor", {{"place", Op::kEq, std::string("indoor")}}},
      {"place=indoor,year>=2020", {{"place", Op::kEq, std::string("indoor")}, {"year", Op::kGe, std::int64_t{2020}}}},
      {"color=red,year>=2020", {{"color", Op::kEq, std::string("red")}, {"year", Op::kGe, std::int64_t{2020}}}},
      {"batch=17,i=1", {{"batch", Op::kEq, std::int64_t{17}}, {"i", Op::kEq, std::int64_t{1}}}},
      {"t=-2.5e3", {{"t", Op::kEq, -2500.0}}},
      {"flag=false", {{"flag", Op::kEq, false}}},
  };
  for (const auto& [text, want] : cases) {
    INFO(text);
    auto f = parse_filter(text);
    REQUIRE(f.ok());
    REQUIRE(f->all.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      CHECK(f->all[i].key == want[i].key);
      CHECK(f->all[i].op == want[i].op);
      if (want[i].op != Op::kExists) CHECK(f->all[i].value == want[i].value);
    }
  }
}

TEST_CASE("a catalogue entry written before int8 became the default reads back as written", "[node]") {
  // The catalogue value exactly as every earlier build wrote it (docs/node-format.md, catalogue
  // table): version 1, id 7, dimension 3, metric 1 (ip), m 16, ef_construction 200, ef_search 64,
  // quantize 0, range 0..0. Its collection stays a float graph; only new specs default to int8.
  auto le32 = [](std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  std::string old;
  old.push_back(1);
  le32(old, 7);
  le32(old, 3);
  old.push_back(1);
  le32(old, 16);
  le32(old, 200);
  le32(old, 64);
  old.push_back(0);
  le32(old, 0);  // f32 0.0
  le32(old, 0);
  auto d = format::decode_spec("old", old);
  REQUIRE(d.ok());
  CHECK(d->second == 7);
  CHECK(d->first.name == "old");
  CHECK(d->first.dimension == 3);
  CHECK(d->first.metric == Metric::kInnerProduct);
  CHECK(d->first.m == 16);
  CHECK(d->first.ef_construction == 200);
  CHECK(d->first.ef_search == 64);
  CHECK_FALSE(d->first.quantize);
  // The same bytes, but for the quantize flag, are what a spec created now encodes to.
  CollectionSpec fresh;
  fresh.name = "old";
  fresh.dimension = 3;
  fresh.metric = Metric::kInnerProduct;
  CHECK(fresh.quantize);
  std::string want = old;
  want[22] = 1;  // u8 quantize after 1 + 4 + 4 + 1 + 4 + 4 + 4 bytes
  CHECK(format::encode_spec(fresh, 7) == want);
  auto back = format::decode_spec("old", want);
  REQUIRE(back.ok());
  CHECK(back->first.quantize);
}

// Proves that Status and Result carry codes, details, messages and values as documented: stable
// numeric codes, the low-byte primary code, propagation through the SHOAL_* macros.
#include <catch2/catch.hpp>

#include "common/status.hpp"

using shoal::Code;
using shoal::Detail;
using shoal::Result;
using shoal::Status;

TEST_CASE("status codes keep their stable numbers", "[common]") {
  // These numbers are ABI: shoal.h exposes them. Changing one breaks every app built against us.
  CHECK(static_cast<int>(Code::kOk) == 0);
  CHECK(static_cast<int>(Code::kInvalidArgument) == 1);
  CHECK(static_cast<int>(Code::kNotFound) == 2);
  CHECK(static_cast<int>(Code::kConflict) == 3);
  CHECK(static_cast<int>(Code::kUnavailable) == 4);
  CHECK(static_cast<int>(Code::kOverloaded) == 5);
  CHECK(static_cast<int>(Code::kUnauthenticated) == 6);
  CHECK(static_cast<int>(Code::kCorruption) == 7);
  CHECK(static_cast<int>(Code::kIo) == 8);
  CHECK(static_cast<int>(Code::kUnimplemented) == 9);
  CHECK(static_cast<int>(Code::kInternal) == 10);
  CHECK(shoal::full_code(Detail::kDimensionMismatch) == 0x101u);
  CHECK(shoal::full_code(Detail::kMapFull) == 0x108u);
}

TEST_CASE("a detail code's low byte is its primary code", "[common]") {
  for (Detail d : {Detail::kDimensionMismatch, Detail::kNonFinite, Detail::kZeroVector,
                   Detail::kTooLarge, Detail::kOutOfRange, Detail::kMalformed,
                   Detail::kUnknownName}) {
    CHECK(Status(d, "x").code() == Code::kInvalidArgument);
  }
  CHECK(Status(Detail::kNoSuchCollection, "x").code() == Code::kNotFound);
  CHECK(Status(Detail::kChecksumMismatch, "x").code() == Code::kCorruption);
  CHECK(Status(Detail::kDiskFull, "x").code() == Code::kIo);
  CHECK(Status(Detail::kVersionMismatch, "x").code() == Code::kUnimplemented);
  CHECK(Status(Detail::kQueueFull, "x").code() == Code::kOverloaded);
  CHECK(Status(Detail::kAlreadyExists, "x").code() == Code::kConflict);
}

TEST_CASE("an OK status is the default and prints as ok", "[common]") {
  Status s;
  CHECK(s.ok());
  CHECK(s.full_code() == 0u);
  CHECK(s.to_string() == "ok");
}

TEST_CASE("an error status names its code, message and context", "[common]") {
  Status s(Detail::kDimensionMismatch, "vector dimension 3, collection dimension 4", "photos");
  CHECK_FALSE(s.ok());
  CHECK(s.detail() == Detail::kDimensionMismatch);
  CHECK(s.to_string() == "invalid argument: vector dimension 3, collection dimension 4 [photos]");
  Status t = Status(Code::kIo, "fsync failed").with_context("/data/x");
  CHECK(t.context() == "/data/x");
  CHECK(t.code() == Code::kIo);
}

namespace {
Result<int> parse_positive(int v) {
  if (v <= 0) return Status(Detail::kOutOfRange, "value must be > 0, got " + std::to_string(v));
  return v;
}
Result<int> doubled(int v) {
  SHOAL_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}
Status check_both(int a, int b) {
  SHOAL_RETURN_IF_ERROR(parse_positive(a).status());
  SHOAL_RETURN_IF_ERROR(parse_positive(b).status());
  return {};
}
}  // namespace

TEST_CASE("results carry a value or propagate the error through the macros", "[common]") {
  auto ok = doubled(21);
  REQUIRE(ok.ok());
  CHECK(*ok == 42);
  CHECK(ok.status().ok());
  auto bad = doubled(-1);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().detail() == Detail::kOutOfRange);
  CHECK(bad.status().message() == "value must be > 0, got -1");
  CHECK(bad.value_or(7) == 7);
  CHECK(check_both(1, 2).ok());
  CHECK(check_both(1, 0).detail() == Detail::kOutOfRange);
}

TEST_CASE("results hold move-only values", "[common]") {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(5));
  REQUIRE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  CHECK(*p == 5);
}

// Proves the MemoryStore's simulation API: crash() drops uncommitted writes and kills open
// transactions while committed data stays; a capacity makes growing commits fail with kDiskFull
// while shrinking ones pass; injected read and write faults fail exactly the next N operations
// with kIo and leave the data untouched; and the same operations give the same state hash.
#include <catch2/catch.hpp>

#include "common/random.hpp"
#include "store_fixtures.hpp"

using namespace shoal;
using namespace shoal::store;
using namespace shoal::store::testing;

TEST_CASE("crash drops uncommitted writes and turns open transactions into kUnavailable",
          "[store][memory]") {
  MemoryStore s;
  auto w = must_write(s);
  must(w->put(Table::kRecords, "a", "1"));
  must(w->commit());
  w = must_write(s);
  must(w->put(Table::kRecords, "b", "2"));
  auto r = must_read(s);
  s.crash();
  CHECK(w->put(Table::kRecords, "c", "3").code() == Code::kUnavailable);
  CHECK(w->commit().code() == Code::kUnavailable);
  CHECK(r->get(Table::kRecords, "a").status().code() == Code::kUnavailable);
  w.reset();
  r.reset();
  r = must_read(s);
  CHECK(r->get(Table::kRecords, "a").value() == "1");
  CHECK(r->get(Table::kRecords, "b").status().code() == Code::kNotFound);
  r.reset();
  // A writer can start again after the crash even though the old one was still open.
  w = must_write(s);
  must(w->put(Table::kRecords, "c", "3"));
  must(w->commit());
}

TEST_CASE("a capacity fails growing commits with kDiskFull and lets shrinking ones pass",
          "[store][memory]") {
  MemoryStoreOptions o;
  o.capacity_bytes = 1000;
  MemoryStore s(o);
  const std::uint64_t base = s.used_bytes();
  auto w = must_write(s);
  must(w->put(Table::kRecords, "a", std::string(500, 'x')));
  must(w->commit());
  CHECK(s.used_bytes() == base + 501);
  const std::uint64_t before = must_hash(s);
  w = must_write(s);
  must(w->put(Table::kRecords, "b", std::string(600, 'x')));
  Status st = w->commit();
  CHECK(st.detail() == Detail::kDiskFull);
  CHECK(st.message().find("1000") != std::string::npos);
  w.reset();
  CHECK(must_hash(s) == before);
  // Replacing with a smaller value and deleting always fit.
  w = must_write(s);
  must(w->put(Table::kRecords, "a", "small"));
  must(w->commit());
  CHECK(s.used_bytes() == base + 6);
  s.set_capacity_bytes(0);
  w = must_write(s);
  must(w->del(Table::kRecords, "a"));
  must(w->commit());
  CHECK(s.used_bytes() == base);
}

TEST_CASE("injected read and write faults fail exactly the next N operations with kIo",
          "[store][memory]") {
  MemoryStore s;
  auto w = must_write(s);
  must(w->put(Table::kRecords, "a", "1"));
  must(w->commit());
  w.reset();
  const std::uint64_t before = must_hash(s);

  s.fail_next_reads(2);
  auto r = must_read(s);
  CHECK(r->get(Table::kRecords, "a").status().code() == Code::kIo);
  CHECK(r->count(Table::kRecords).status().code() == Code::kIo);
  CHECK(r->get(Table::kRecords, "a").value() == "1");
  r.reset();

  s.fail_next_writes(1);
  w = must_write(s);
  must(w->put(Table::kRecords, "b", "2"));
  CHECK(w->commit().code() == Code::kIo);
  CHECK(w->get(Table::kRecords, "a").status().code() == Code::kIo);  // the transaction is dead
  w.reset();
  CHECK(must_hash(s) == before);
  w = must_write(s);
  must(w->put(Table::kRecords, "b", "2"));
  must(w->commit());
  w.reset();
  r = must_read(s);
  CHECK(r->get(Table::kRecords, "b").value() == "2");
}

TEST_CASE("the same operations give the same state hash", "[store][memory]") {
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  std::uint64_t hashes[2] = {0, 0};
  for (auto& h : hashes) {
    MemoryStore s;
    Rng rng(seed);
    for (int t = 0; t < 20; ++t) {
      auto w = must_write(s);
      for (int i = 0; i < 20; ++i) {
        const std::string key = "k" + std::to_string(rng.uniform(100));
        if (rng.bernoulli(0.3)) {
          must(w->del(Table::kRecords, key));
        } else {
          must(w->put(Table::kRecords, key, std::to_string(rng.next_u64())));
        }
      }
      if (rng.bernoulli(0.2)) {
        w->abort();
      } else {
        must(w->commit());
      }
    }
    h = must_hash(s);
  }
  CHECK(hashes[0] == hashes[1]);
}

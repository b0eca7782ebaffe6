// Proves the Store contract on both implementations (LmdbStore and MemoryStore), by running every
// case below through TEMPLATE_TEST_CASE over one fixture per implementation: put/get/del, ordered
// scans and ranges, atomic batches, abort, reading one's own writes, snapshot isolation,
// persistence of committed data across reopen/crash (and loss of uncommitted data), typed limit
// errors, and a full store that aborts the transaction, leaves prior data readable and the state
// hash unchanged.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "common/random.hpp"
#include "store_fixtures.hpp"

using namespace shoal;
using namespace shoal::store;
using namespace shoal::store::testing;

#define STORE_FIXTURES LmdbFixture, MemoryFixture

TEMPLATE_TEST_CASE("put, get and del round-trip bytes per table", "[store][contract]",
                   STORE_FIXTURES) {
  TestType f;
  auto w = must_write(f.store());
  const std::string binary("\x00\xff\x01k", 4);
  must(w->put(Table::kRecords, "a", "1"));
  must(w->put(Table::kContexts, "a", "ctx"));
  must(w->put(Table::kRecords, binary, std::string("\x00v\x00", 3)));
  must(w->put(Table::kRecords, "empty", ""));
  must(w->commit());

  auto r = must_read(f.store());
  CHECK(r->get(Table::kRecords, "a").value() == "1");
  CHECK(r->get(Table::kContexts, "a").value() == "ctx");
  CHECK(r->get(Table::kRecords, binary).value() == std::string("\x00v\x00", 3));
  CHECK(r->get(Table::kRecords, "empty").value().empty());
  CHECK(r->get(Table::kPeers, "a").status().code() == Code::kNotFound);
  CHECK(r->get(Table::kRecords, "").status().code() == Code::kNotFound);
  r.reset();

  w = must_write(f.store());
  must(w->put(Table::kRecords, "a", "2"));          // overwrite
  must(w->del(Table::kContexts, "a"));
  must(w->del(Table::kContexts, "never-there"));    // deletes are idempotent
  must(w->commit());
  w.reset();
  r = must_read(f.store());
  CHECK(r->get(Table::kRecords, "a").value() == "2");
  CHECK(r->get(Table::kContexts, "a").status().code() == Code::kNotFound);
  CHECK(r->count(Table::kRecords).value() == 3);
  CHECK(r->count(Table::kContexts).value() == 0);
}

TEMPLATE_TEST_CASE("get_view reads a value in place for the transaction's life, and its own writes",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  const std::string big(5000, 'v');  // an LMDB overflow value as well as a small one
  {
    auto w = must_write(f.store());
    must(w->put(Table::kVectors, "big", big));
    must(w->put(Table::kVectors, "small", "0123"));
    must(w->commit());
  }
  auto r = must_read(f.store());
  const std::string_view b = r->get_view(Table::kVectors, "big").value();
  const std::string_view small = r->get_view(Table::kVectors, "small").value();
  CHECK(r->get_view(Table::kVectors, "absent").status().code() == Code::kNotFound);
  {
    // A later commit changes nothing this snapshot's views show.
    auto w = must_write(f.store());
    must(w->put(Table::kVectors, "big", std::string(5000, 'x')));
    must(w->del(Table::kVectors, "small"));
    CHECK(w->get_view(Table::kVectors, "big").value() == std::string(5000, 'x'));
    CHECK(w->get_view(Table::kVectors, "small").status().code() == Code::kNotFound);
    must(w->commit());
  }
  CHECK(b == big);
  CHECK(small == "0123");
  r.reset();
  CHECK(must_read(f.store())->get_view(Table::kVectors, "big").value() == std::string(5000, 'x'));
}

TEMPLATE_TEST_CASE("scans visit keys in bytewise order within ranges, both ways",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  Rng rng(seed);
  std::vector<std::string> keys = {"a", "a\x01", "ab", "b", "ba", "c", std::string("\xff", 1),
                                   std::string("\xff\xff", 2), "B", "0"};
  rng.shuffle(std::span<std::string>(keys));
  auto w = must_write(f.store());
  for (const auto& k : keys) must(w->put(Table::kRecords, k, "v" + k));
  must(w->commit());
  w.reset();
  std::sort(keys.begin(), keys.end());  // std::string compares bytes as unsigned char

  auto r = must_read(f.store());
  auto all = r->collect(Table::kRecords, Range::all());
  REQUIRE(all.ok());
  REQUIRE(all->size() == keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    CHECK((*all)[i].key == keys[i]);
    CHECK((*all)[i].value == "v" + keys[i]);
  }
  CHECK(keys_of(*r, Table::kRecords, Range::between("a", "b")) == "a,a\x01,ab");
  CHECK(keys_of(*r, Table::kRecords, Range::between("a", "b").reversed()) == "ab,a\x01,a");
  CHECK(keys_of(*r, Table::kRecords, Range::between("aa", "ba")) == "ab,b");
  CHECK(keys_of(*r, Table::kRecords, Range::prefix("a")) == "a,a\x01,ab");
  CHECK(keys_of(*r, Table::kRecords, Range::prefix("b").reversed()) == "ba,b");
  CHECK(keys_of(*r, Table::kRecords, Range::all().limited(2)) == "0,B");
  CHECK(keys_of(*r, Table::kRecords, Range::all().reversed().limited(2)) ==
        std::string("\xff\xff,\xff", 4));
  CHECK(keys_of(*r, Table::kRecords, Range::prefix(std::string("\xff", 1))) ==
        std::string("\xff,\xff\xff", 4));
  CHECK(keys_of(*r, Table::kRecords, Range::between("x", "y")).empty());
  CHECK(keys_of(*r, Table::kRecords, Range::between("b", "b")).empty());
  CHECK(keys_of(*r, Table::kPeers, Range::all()).empty());

  int visited = 0;
  must(r->scan(Table::kRecords, Range::all(), [&](std::string_view, std::string_view) {
    return ++visited < 3;  // stop after the third
  }));
  CHECK(visited == 3);
}

TEMPLATE_TEST_CASE("delta sequences encoded big-endian scan in numeric order",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  auto w = must_write(f.store());
  for (std::uint64_t seq : {1ull, 255ull, 256ull, 65536ull, 2ull, (1ull << 40), 0ull}) {
    must(w->put(Table::kDeltas, encode_u64_be(seq), std::to_string(seq)));
  }
  must(w->commit());
  w.reset();
  auto r = must_read(f.store());
  std::vector<std::uint64_t> seen;
  must(r->scan(Table::kDeltas, Range::all(), [&](std::string_view k, std::string_view) {
    seen.push_back(decode_u64_be(k).value());
    return true;
  }));
  CHECK(seen == std::vector<std::uint64_t>{0, 1, 2, 255, 256, 65536, 1ull << 40});
  auto last = r->collect(Table::kDeltas, Range::all().reversed().limited(1));
  REQUIRE(last.ok());
  REQUIRE(last->size() == 1);
  CHECK(decode_u64_be((*last)[0].key).value() == (1ull << 40));
  CHECK(decode_u64_be("short").status().detail() == Detail::kTruncated);
}

TEMPLATE_TEST_CASE("a batch across tables commits atomically and is seen whole",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  const std::uint64_t before = must_hash(f.store());
  auto w = must_write(f.store());
  must(w->put(Table::kRecords, "r1", "record"));
  must(w->put(Table::kMeta, "dot_counter", encode_u64_be(7)));
  must(w->put(Table::kDeltas, encode_u64_be(1), "delta"));
  // Not yet visible to a reader.
  {
    auto r = must_read(f.store());
    CHECK(r->get(Table::kRecords, "r1").status().code() == Code::kNotFound);
  }
  CHECK(must_hash(f.store()) == before);
  must(w->commit());
  w.reset();
  auto r = must_read(f.store());
  CHECK(r->get(Table::kRecords, "r1").value() == "record");
  CHECK(r->get(Table::kMeta, "dot_counter").value() == encode_u64_be(7));
  CHECK(r->get(Table::kDeltas, encode_u64_be(1)).value() == "delta");
  r.reset();
  CHECK(must_hash(f.store()) != before);
}

TEMPLATE_TEST_CASE("abort, or dropping a write transaction, leaves nothing behind",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  auto w = must_write(f.store());
  must(w->put(Table::kRecords, "keep", "1"));
  must(w->commit());
  w.reset();
  const std::uint64_t before = must_hash(f.store());

  w = must_write(f.store());
  must(w->put(Table::kRecords, "gone", "1"));
  must(w->del(Table::kRecords, "keep"));
  w->abort();
  w.reset();
  CHECK(must_hash(f.store()) == before);

  w = must_write(f.store());
  must(w->put(Table::kCatalogue, "gone", "1"));
  w.reset();  // destroyed without commit
  CHECK(must_hash(f.store()) == before);
  auto r = must_read(f.store());
  CHECK(r->get(Table::kRecords, "keep").value() == "1");
}

TEMPLATE_TEST_CASE("a write transaction reads its own writes, deletes included",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  auto w = must_write(f.store());
  for (const char* k : {"a", "b", "c", "d"}) must(w->put(Table::kRecords, k, k));
  must(w->commit());
  w = must_write(f.store());
  must(w->del(Table::kRecords, "b"));
  must(w->put(Table::kRecords, "bb", "new"));
  must(w->put(Table::kRecords, "c", "changed"));
  must(w->put(Table::kRecords, "e", "e"));
  must(w->del(Table::kRecords, "e"));
  CHECK(w->get(Table::kRecords, "b").status().code() == Code::kNotFound);
  CHECK(w->get(Table::kRecords, "c").value() == "changed");
  CHECK(w->get(Table::kRecords, "e").status().code() == Code::kNotFound);
  CHECK(keys_of(*w, Table::kRecords, Range::all()) == "a,bb,c,d");
  CHECK(keys_of(*w, Table::kRecords, Range::all().reversed()) == "d,c,bb,a");
  CHECK(keys_of(*w, Table::kRecords, Range::between("b", "d").limited(1)) == "bb");
  CHECK(w->count(Table::kRecords).value() == 4);
  must(w->commit());
  w.reset();
  auto r = must_read(f.store());
  CHECK(keys_of(*r, Table::kRecords, Range::all()) == "a,bb,c,d");
  CHECK(r->get(Table::kRecords, "c").value() == "changed");
}

TEMPLATE_TEST_CASE("a read transaction keeps its snapshot across later commits",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  auto w = must_write(f.store());
  must(w->put(Table::kRecords, "k", "old"));
  must(w->commit());
  w.reset();

  auto snap = must_read(f.store());
  const std::uint64_t snap_hash = state_hash(*snap).value();
  w = must_write(f.store());
  must(w->put(Table::kRecords, "k", "new"));
  must(w->put(Table::kRecords, "k2", "added"));
  must(w->put(Table::kPeers, "p", "1"));
  must(w->commit());
  w.reset();

  CHECK(snap->get(Table::kRecords, "k").value() == "old");
  CHECK(snap->get(Table::kRecords, "k2").status().code() == Code::kNotFound);
  CHECK(snap->count(Table::kRecords).value() == 1);
  CHECK(keys_of(*snap, Table::kPeers, Range::all()).empty());
  CHECK(state_hash(*snap).value() == snap_hash);
  auto fresh = must_read(f.store());
  CHECK(fresh->get(Table::kRecords, "k").value() == "new");
  CHECK(fresh->count(Table::kRecords).value() == 2);
}

TEMPLATE_TEST_CASE("committed data survives a reopen and uncommitted data vanishes",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  auto w = must_write(f.store());
  for (int i = 0; i < 100; ++i) {
    must(w->put(Table::kRecords, "r" + std::to_string(i), std::string(100, 'x')));
  }
  must(w->put(Table::kMeta, "node_id", "n1"));
  must(w->commit());
  w.reset();
  const std::uint64_t committed = must_hash(f.store());

  w = must_write(f.store());
  must(w->put(Table::kRecords, "uncommitted", "1"));
  must(w->del(Table::kRecords, "r0"));
  f.crash_with(w);

  CHECK(must_hash(f.store()) == committed);
  auto r = must_read(f.store());
  CHECK(r->count(Table::kRecords).value() == 100);
  CHECK(r->get(Table::kRecords, "uncommitted").status().code() == Code::kNotFound);
  CHECK(r->get(Table::kMeta, "node_id").value() == "n1");
  CHECK(r->get(Table::kMeta, kSchemaVersionKey).value() == std::string("\0\0\0\7", 4));
  r.reset();
  f.reopen();  // a second restart changes nothing
  CHECK(must_hash(f.store()) == committed);
}

TEMPLATE_TEST_CASE("key and value limits give typed errors naming the limit and the size",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  const StoreLimits lim = f.store().limits();
  CHECK(lim.max_key_bytes == kDefaultMaxKeyBytes);
  const std::uint64_t before = must_hash(f.store());
  auto w = must_write(f.store());

  Status s = w->put(Table::kRecords, "", "v");
  CHECK(s.detail() == Detail::kOutOfRange);
  CHECK(s.code() == Code::kInvalidArgument);

  s = w->put(Table::kRecords, std::string(lim.max_key_bytes + 1, 'k'), "v");
  CHECK(s.detail() == Detail::kTooLarge);
  CHECK(s.message().find(std::to_string(lim.max_key_bytes + 1)) != std::string::npos);
  CHECK(s.message().find(std::to_string(lim.max_key_bytes)) != std::string::npos);
  CHECK(s.context() == "records");
  CHECK(w->del(Table::kRecords, std::string(lim.max_key_bytes + 1, 'k')).detail() ==
        Detail::kTooLarge);

  s = w->put(Table::kRecords, "big", std::string(lim.max_value_bytes + 1, 'v'));
  CHECK(s.detail() == Detail::kTooLarge);
  CHECK(s.message().find(std::to_string(lim.max_value_bytes)) != std::string::npos);

  // A rejected argument does not spoil the transaction.
  must(w->put(Table::kRecords, std::string(lim.max_key_bytes, 'k'), "max-size key"));
  must(w->commit());
  w.reset();
  auto r = must_read(f.store());
  CHECK(r->get(Table::kRecords, std::string(lim.max_key_bytes, 'k')).value() == "max-size key");
  CHECK(r->count(Table::kRecords).value() == 1);
  r.reset();
  CHECK(must_hash(f.store()) != before);
}

TEMPLATE_TEST_CASE("a full store aborts the transaction with a typed error and keeps reads",
                   "[store][contract]", STORE_FIXTURES) {
  TestType f;
  f.make_bounded(std::uint64_t{1} << 20);
  auto w = must_write(f.store());
  must(w->put(Table::kRecords, "first", "committed before the store filled"));
  must(w->commit());
  w.reset();
  const std::uint64_t before = must_hash(f.store());

  // Fill in one transaction until the store refuses (at put or at commit).
  w = must_write(f.store());
  Status failure;
  const std::string value(4000, 'v');
  for (int i = 0; i < 2000 && failure.ok(); ++i) {
    failure = w->put(Table::kRecords, "fill" + std::to_string(i), value);
  }
  if (failure.ok()) failure = w->commit();
  INFO(failure.to_string());
  REQUIRE(!failure.ok());
  CHECK(failure.code() == Code::kIo);
  CHECK(failure.detail() == TestType::kFullDetail);
  // The transaction is dead: every later call repeats the failure.
  CHECK(w->put(Table::kRecords, "after", "x").detail() == TestType::kFullDetail);
  CHECK(w->get(Table::kRecords, "first").status().detail() == TestType::kFullDetail);
  CHECK(w->commit().detail() == TestType::kFullDetail);
  w.reset();

  CHECK(must_hash(f.store()) == before);
  auto r = must_read(f.store());
  CHECK(r->get(Table::kRecords, "first").value() == "committed before the store filled");
  CHECK(r->count(Table::kRecords).value() == 1);
  r.reset();
  // A small transaction still commits.
  w = must_write(f.store());
  must(w->put(Table::kRecords, "small", "fits"));
  must(w->commit());
}

TEST_CASE("the state hash is the same for the same content in both implementations",
          "[store][contract]") {
  LmdbFixture l;
  MemoryFixture m;
  const std::uint64_t seed = Catch::rngSeed();
  INFO("seed " << seed);
  CHECK(must_hash(l.store()) == must_hash(m.store()));
  for (Store* s : {&l.store(), &m.store()}) {
    Rng rng(seed);
    for (int t = 0; t < 5; ++t) {
      auto w = must_write(*s);
      for (int i = 0; i < 50; ++i) {
        const Table table = kAllTables[rng.uniform(kTableCount)];
        const std::string key = "k" + std::to_string(rng.uniform(40));
        if (rng.bernoulli(0.2)) {
          must(w->del(table, key));
        } else {
          must(w->put(table, key, std::string(rng.uniform(64), 'a')));
        }
      }
      must(w->commit());
    }
  }
  CHECK(must_hash(l.store()) == must_hash(m.store()));
  auto w = must_write(m.store());
  must(w->put(Table::kPeers, "one-more", ""));
  must(w->commit());
  w.reset();
  CHECK(must_hash(l.store()) != must_hash(m.store()));
}

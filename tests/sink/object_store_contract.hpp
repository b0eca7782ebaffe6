// tests/sink/object_store_contract.hpp: the ObjectStore contract (sink/object_store.hpp), one
// function run against every implementation: LMDB, memory, and S3 against moto_server.
//
// run_object_store_contract(store, names): every key it writes starts with names.ns, so a store
// that outlives the test (an S3 bucket) can host several runs. names.odd is a key component
// whose characters need percent-encoding in a URL path and in the LIST query; names.sep
// separates key components. The local stores take every printable punctuation character and
// '/'. moto_server 5.2 re-encodes what it received before checking the signature, differently
// from SigV4 (boto3's own requests fail the same way): in a path it mis-handles + = & % ! ' ( )
// $ , ; : @ *, in a query / , : @. So the S3 run uses spaces and "~" there; the encoding of
// every character is checked offline (object_store_test.cpp). The store's limits must have
// max_object_bytes <= 1 MiB (the test writes an object of exactly that size).
#pragma once

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "sink/object_store.hpp"

namespace shoal::sink::testing {

inline std::string binary_bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  unsigned x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 16);
  }
  return s;
}

struct ContractNames {
  std::string ns;
  std::string odd = "odd dir+x=y&z%~*!'()$,;:@";
  std::string sep = "/";
};

inline void run_object_store_contract(ObjectStore& store, const ContractNames& names) {
  const std::string& ns = names.ns;
  const std::string& odd = names.odd;
  const std::string& sep = names.sep;
  const Limits& limits = store.limits();
  REQUIRE(limits.max_object_bytes <= (std::size_t{1} << 20));

  // A missing key.
  auto missing = store.get(ns + "absent");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);

  // Round trips: binary bytes (NUL included), the empty object, an object of the maximum size.
  const std::string a = binary_bytes(4096, 1) + std::string(3, '\0');
  REQUIRE(store.put(ns + "seg" + sep + "a", a).ok());
  auto got = store.get(ns + "seg" + sep + "a");
  REQUIRE(got.ok());
  CHECK(*got == a);
  REQUIRE(store.put(ns + "seg" + sep + "empty", "").ok());
  got = store.get(ns + "seg" + sep + "empty");
  REQUIRE(got.ok());
  CHECK(got->empty());
  const std::string big = binary_bytes(limits.max_object_bytes, 2);
  REQUIRE(store.put(ns + "seg" + sep + "big", big).ok());
  got = store.get(ns + "seg" + sep + "big");
  REQUIRE(got.ok());
  CHECK(*got == big);

  // Overwrite replaces.
  REQUIRE(store.put(ns + "seg" + sep + "a", "second").ok());
  got = store.get(ns + "seg" + sep + "a");
  REQUIRE(got.ok());
  CHECK(*got == "second");

  // list: sorted, exactly the keys under the prefix, across pages; prefixes that need encoding.
  const std::string odd_dir = ns + odd + sep;
  std::vector<std::string> want;
  for (int i = 9; i >= 0; --i) {
    const std::string k = odd_dir + "k" + std::to_string(i);
    REQUIRE(store.put(k, "v" + std::to_string(i)).ok());
    want.insert(want.begin(), k);
  }
  // Shares all of the prefix but the separator: not listed.
  REQUIRE(store.put(ns + odd + "z", "outside").ok());
  auto listed = store.list(odd_dir);
  REQUIRE(listed.ok());
  CHECK(*listed == want);
  for (const auto& k : want) {
    got = store.get(k);
    REQUIRE(got.ok());
    CHECK(*got == "v" + k.substr(k.size() - 1));
  }
  listed = store.list(ns + "seg" + sep);
  REQUIRE(listed.ok());
  const std::string seg = ns + "seg" + sep;
  CHECK(*listed == std::vector<std::string>{seg + "a", seg + "big", seg + "empty"});
  listed = store.list(ns + "nothing-here" + sep);
  REQUIRE(listed.ok());
  CHECK(listed->empty());
  listed = store.list(ns);
  REQUIRE(listed.ok());
  CHECK(listed->size() == 3 + want.size() + 1);
  CHECK(std::is_sorted(listed->begin(), listed->end()));

  // remove: gone from get and list; removing an absent key is OK.
  REQUIRE(store.remove(ns + "seg" + sep + "a").ok());
  got = store.get(ns + "seg" + sep + "a");
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().code() == Code::kNotFound);
  CHECK(store.remove(ns + "seg" + sep + "a").ok());
  listed = store.list(ns + "seg" + sep);
  REQUIRE(listed.ok());
  CHECK(*listed == std::vector<std::string>{seg + "big", seg + "empty"});

  // Bounds are checked before any I/O, with typed errors.
  const std::string too_big(limits.max_object_bytes + 1, 'x');
  Status st = store.put(ns + "seg" + sep + "too-big", too_big);
  CHECK(st.detail() == Detail::kTooLarge);
  CHECK(st.message().find(std::to_string(limits.max_object_bytes)) != std::string::npos);
  CHECK(st.message().find(std::to_string(limits.max_object_bytes + 1)) != std::string::npos);
  const std::string long_key(limits.max_key_bytes + 1, 'k');
  CHECK(store.put(long_key, "x").detail() == Detail::kTooLarge);
  CHECK(store.get(long_key).status().detail() == Detail::kTooLarge);
  CHECK(store.remove(long_key).detail() == Detail::kTooLarge);
  CHECK(store.list(long_key).status().detail() == Detail::kTooLarge);
  CHECK(store.put("", "x").code() == Code::kInvalidArgument);
  CHECK(store.put(ns + "bad\nkey", "x").detail() == Detail::kMalformed);
  CHECK(store.put(ns + "bad\x80key", "x").detail() == Detail::kMalformed);
  const std::string max_key = ns + std::string(limits.max_key_bytes - ns.size(), 'm');
  REQUIRE(store.put(max_key, "at the limit").ok());
  got = store.get(max_key);
  REQUIRE(got.ok());
  CHECK(*got == "at the limit");
  got = store.get(ns + "seg" + sep + "too-big");
  CHECK(got.status().code() == Code::kNotFound);

  // Clean up what we wrote.
  listed = store.list(ns);
  REQUIRE(listed.ok());
  for (const auto& k : *listed) REQUIRE(store.remove(k).ok());
  listed = store.list(ns);
  REQUIRE(listed.ok());
  CHECK(listed->empty());
}

}  // namespace shoal::sink::testing

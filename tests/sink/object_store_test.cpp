// tests/sink/object_store_test.cpp: the contract on the LMDB and memory stores, their own
// behaviour (persistence, a full map, the memory store's faults), and the S3 store's request
// building (no network). The S3 contract against moto_server is s3_object_store_test.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "sink/lmdb_object_store.hpp"
#include "sink/memory_object_store.hpp"
#include "tests/sink/object_store_contract.hpp"
#ifdef SHOAL_SINK_HAS_S3
#include "sink/s3_object_store.hpp"
#endif

namespace shoal::sink {
namespace {

Limits small_limits() {
  Limits l;
  l.max_object_bytes = std::size_t{1} << 20;
  return l;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/shoal_sink_test_XXXXXX";
    char* p = mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

TEST_CASE("object store contract: memory", "[sink][contract]") {
  MemoryObjectStore store(small_limits());
  testing::run_object_store_contract(store, {"ns1/"});
}

TEST_CASE("object store contract: lmdb", "[sink][contract]") {
  TempDir dir;
  LmdbObjectStore::Options options;
  options.limits = small_limits();
  auto store = LmdbObjectStore::open(dir.path + "/objects", options);
  REQUIRE(store.ok());
  testing::run_object_store_contract(**store, {"ns1/"});
}

// Two writers and a lister at once: every acknowledged put reads back, lists stay sorted.
void run_concurrently(ObjectStore& store) {
  std::atomic<bool> failed{false};
  auto writer = [&](int t) {
    for (int i = 0; i < 200; ++i) {
      const std::string key = "c/" + std::to_string(t) + "/" + std::to_string(1000 + i);
      if (!store.put(key, key).ok()) failed = true;
      auto got = store.get(key);
      if (!got.ok() || *got != key) failed = true;
    }
  };
  std::thread a(writer, 0);
  std::thread b(writer, 1);
  for (int i = 0; i < 50; ++i) {
    auto keys = store.list("c/");
    if (!keys.ok() || !std::is_sorted(keys->begin(), keys->end())) failed = true;
  }
  a.join();
  b.join();
  CHECK_FALSE(failed.load());
  auto keys = store.list("c/");
  REQUIRE(keys.ok());
  CHECK(keys->size() == 400);
}

TEST_CASE("object stores: concurrent puts, gets and lists", "[sink]") {
  MemoryObjectStore memory;
  run_concurrently(memory);
  TempDir dir;
  auto lmdb = LmdbObjectStore::open(dir.path);
  REQUIRE(lmdb.ok());
  run_concurrently(**lmdb);
}

TEST_CASE("lmdb object store: objects survive a reopen; a full map is kIo/kMapFull", "[sink]") {
  TempDir dir;
  {
    auto store = LmdbObjectStore::open(dir.path);
    REQUIRE(store.ok());
    REQUIRE((*store)->put("seg/1", testing::binary_bytes(1000, 7)).ok());
  }
  auto reopened = LmdbObjectStore::open(dir.path);
  REQUIRE(reopened.ok());
  auto got = (*reopened)->get("seg/1");
  REQUIRE(got.ok());
  CHECK(*got == testing::binary_bytes(1000, 7));
  reopened->reset();

  LmdbObjectStore::Options options;
  options.map_size_bytes = std::uint64_t{1} << 20;
  auto store = LmdbObjectStore::open(dir.path + "/small", options);
  REQUIRE(store.ok());
  REQUIRE((*store)->put("seg/1", std::string(300 * 1024, 'a')).ok());
  // 1 MiB map: a 900 KiB object does not fit next to the first; nothing changes.
  Status st = (*store)->put("seg/2", std::string(900 * 1024, 'z'));
  CHECK(st.detail() == Detail::kMapFull);
  CHECK((*store)->get("seg/2").status().code() == Code::kNotFound);
  CHECK((*store)->put("seg/3", "small").ok());
}

TEST_CASE("lmdb object store: open reports an unusable directory", "[sink]") {
  auto store = LmdbObjectStore::open("/proc/shoal-no-such/dir");
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == Code::kIo);
}

TEST_CASE("memory object store: an outage refuses every call and changes nothing", "[sink]") {
  MemoryObjectStore store;
  REQUIRE(store.put("a", "1").ok());
  store.set_unreachable(true);
  CHECK(store.put("b", "2").code() == Code::kUnavailable);
  CHECK(store.get("a").status().code() == Code::kUnavailable);
  CHECK(store.list("").status().code() == Code::kUnavailable);
  CHECK(store.remove("a").code() == Code::kUnavailable);
  // Bounds come first, even during an outage.
  CHECK(store.put(std::string(600, 'k'), "x").detail() == Detail::kTooLarge);
  store.set_unreachable(false);
  CHECK(*store.get("a") == "1");
  CHECK(store.get("b").status().code() == Code::kNotFound);
}

TEST_CASE("memory object store: failed writes, unsynced writes and a crash", "[sink]") {
  MemoryObjectStore store;
  REQUIRE(store.put("acked", "v1").ok());
  REQUIRE(store.put("old", "before").ok());

  store.fail_next_writes(1, /*applied=*/false);
  CHECK(store.put("acked", "v2").code() == Code::kIo);
  CHECK(*store.get("acked") == "v1");

  store.fail_next_writes(3, /*applied=*/true);
  CHECK(store.put("acked", "v3").code() == Code::kIo);  // visible, not synced
  CHECK(store.put("new", "n").code() == Code::kIo);
  CHECK(store.remove("old").code() == Code::kIo);
  CHECK(*store.get("acked") == "v3");
  CHECK(*store.get("new") == "n");
  CHECK(store.get("old").status().code() == Code::kNotFound);
  CHECK(store.unsynced_count() == 3);
  REQUIRE(store.put("later", "l").ok());  // the faults are used up

  store.crash();
  CHECK(*store.get("acked") == "v1");
  CHECK(store.get("new").status().code() == Code::kNotFound);
  CHECK(*store.get("old") == "before");
  CHECK(*store.get("later") == "l");
  CHECK(store.unsynced_count() == 0);

  // An acknowledged write over an unsynced one is durable.
  store.fail_next_writes(1, true);
  CHECK(store.put("k", "unsynced").code() == Code::kIo);
  REQUIRE(store.put("k", "acked").ok());
  store.crash();
  CHECK(*store.get("k") == "acked");
  CHECK(store.object_count() == 4);
}

#ifdef SHOAL_SINK_HAS_S3
TEST_CASE("s3 object store: SigV4 encoding and the sorted ListObjectsV2 query", "[sink][s3]") {
  CHECK(S3ObjectStore::uri_encode("a b+c=d&e/f~-_.", true) == "a%20b%2Bc%3Dd%26e/f~-_.");
  CHECK(S3ObjectStore::uri_encode("a/b", false) == "a%2Fb");
  CHECK(S3ObjectStore::uri_encode("%*", false) == "%25%2A");
  // Every printable ASCII character: RFC 3986's unreserved ones stay, the rest become %XX.
  for (int c = 0x20; c <= 0x7e; ++c) {
    const std::string one(1, static_cast<char>(c));
    const bool unreserved = std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
    char hex[4];
    std::snprintf(hex, sizeof hex, "%%%02X", c);
    CHECK(S3ObjectStore::uri_encode(one, false) == (unreserved ? one : std::string(hex)));
    CHECK(S3ObjectStore::uri_encode(one, true) == (unreserved || c == '/' ? one : std::string(hex)));
  }
  CHECK(S3ObjectStore::list_query("", "", 1000) == "list-type=2&max-keys=1000");
  CHECK(S3ObjectStore::list_query("p q/", "t+k=", 3) ==
        "continuation-token=t%2Bk%3D&list-type=2&max-keys=3&prefix=p%20q%2F");
}

TEST_CASE("s3 object store: options are checked; an unreachable endpoint is kUnavailable",
          "[sink][s3]") {
  S3Options o;
  o.endpoint = "http://127.0.0.1:9";  // discard port: nothing listens
  o.bucket = "b";
  o.access_key_id = "id";
  o.secret_access_key = "secret";
  o.connect_timeout = std::chrono::milliseconds(2000);
  S3Options bad = o;
  bad.bucket = "Upper_Case";
  CHECK(S3ObjectStore::create(bad).status().detail() == Detail::kMalformed);
  bad = o;
  bad.secret_access_key.clear();
  CHECK(S3ObjectStore::create(bad).status().code() == Code::kInvalidArgument);
  bad = o;
  bad.endpoint = "127.0.0.1:9";
  CHECK(S3ObjectStore::create(bad).status().detail() == Detail::kMalformed);
  auto store = S3ObjectStore::create(o);
  REQUIRE(store.ok());
  Status st = (*store)->put("k", "v");
  CHECK(st.code() == Code::kUnavailable);
  CHECK(st.message().find("127.0.0.1:9") != std::string::npos);
  CHECK((*store)->put(std::string(600, 'k'), "v").detail() == Detail::kTooLarge);
}
#endif

}  // namespace
}  // namespace shoal::sink

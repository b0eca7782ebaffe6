// tests/store/store_fixtures.hpp: one fixture per Store implementation, so the contract suite
// (contract_test.cpp) runs every case against both through TEMPLATE_TEST_CASE.
//
// Each fixture owns a store and offers the same verbs: store(), reopen() (LMDB: close and open
// the directory again; memory: crash(), which is what a process restart means for it),
// crash_with(txn) (the process dies with `txn` open), and make_bounded(bytes) (a store that
// fills up near `bytes`: LMDB through a map maximum, memory through a capacity).
// Thread rules: test-only, one thread.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "node/store/lmdb_store.hpp"
#include "node/store/memory_store.hpp"

namespace shoal::store::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    std::error_code ec;
    std::filesystem::path base = std::filesystem::temp_directory_path(ec);
    if (ec) base = ".";
    std::string tmpl = (base / "shoal-store-XXXXXX").string();
    char* made = ::mkdtemp(tmpl.data());
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct LmdbFixture {
  static constexpr const char* kName = "lmdb";
  static constexpr Detail kFullDetail = Detail::kMapFull;

  LmdbFixture() {
    options.path = dir.sub("env");
    open();
  }
  ~LmdbFixture() { store_.reset(); }

  Store& store() { return *store_; }
  void open() {
    auto r = LmdbStore::open(options);
    INFO(r.status().to_string());
    REQUIRE(r.ok());
    store_ = std::move(r).value();
  }
  void reopen() {
    store_.reset();
    open();
  }
  // The process dies with `txn` open: LMDB never wrote it, so destroying it then reopening is
  // the same outcome (the kill -9 test covers real process death).
  void crash_with(std::unique_ptr<WriteTxn>& txn) {
    txn.reset();
    reopen();
  }
  void make_bounded(std::uint64_t bytes) {
    store_.reset();
    options.path = dir.sub("bounded");
    options.map_size_initial_bytes = bytes;
    options.map_size_max_bytes = bytes;
    open();
  }

  TempDir dir;
  LmdbStoreOptions options;
  std::unique_ptr<LmdbStore> store_;
};

struct MemoryFixture {
  static constexpr const char* kName = "memory";
  static constexpr Detail kFullDetail = Detail::kDiskFull;

  MemoryFixture() : store_(std::make_unique<MemoryStore>()) {}

  Store& store() { return *store_; }
  void reopen() { store_->crash(); }
  void crash_with(std::unique_ptr<WriteTxn>& txn) {
    store_->crash();
    txn.reset();
  }
  void make_bounded(std::uint64_t bytes) {
    MemoryStoreOptions o;
    o.capacity_bytes = bytes;
    store_ = std::make_unique<MemoryStore>(o);
  }

  std::unique_ptr<MemoryStore> store_;
};

// Helpers that REQUIRE success, to keep the cases short.
inline std::unique_ptr<WriteTxn> must_write(Store& s) {
  auto r = s.begin_write();
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  return std::move(r).value();
}
inline std::unique_ptr<ReadTxn> must_read(Store& s) {
  auto r = s.begin_read();
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  return std::move(r).value();
}
inline void must(const Status& s) {
  INFO(s.to_string());
  REQUIRE(s.ok());
}
inline std::uint64_t must_hash(Store& s) {
  auto r = state_hash(s);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  return *r;
}
inline std::string keys_of(ReadView& v, Table t, const Range& range) {
  auto r = v.collect(t, range);
  INFO(r.status().to_string());
  REQUIRE(r.ok());
  std::string out;
  for (const auto& kv : *r) {
    if (!out.empty()) out += ",";
    out += kv.key;
  }
  return out;
}

}  // namespace shoal::store::testing

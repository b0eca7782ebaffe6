// sink/lmdb_object_store.hpp: the default ObjectStore, one LMDB environment (a directory).
//
// Role: the sink's local object store when no S3-compatible service is configured. Objects are
// values of the environment's unnamed database, keyed by the object key. Commits are LMDB's
// default synchronous commits (no MDB_NOSYNC, no MDB_NOMETASYNC): put and remove return OK only
// after the data and meta pages are on stable storage. The map has a fixed size
// (Options::map_size_bytes); a put that does not fit returns kIo/kMapFull and changes nothing.
// Open clears stale reader slots of dead processes (mdb_reader_check).
//
// Thread rules: any thread; LMDB serialises writers, readers run concurrently (MDB_NOTLS).
// Ownership: the store owns the environment. One process opens a directory at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "sink/object_store.hpp"

namespace shoal::sink {

class LmdbObjectStore final : public ObjectStore {
 public:
  struct Options {
    std::uint64_t map_size_bytes = std::uint64_t{1} << 30;  // 1 GiB
    Limits limits{};
  };

  // Creates `dir` if missing. Statuses: kIo with the OS/LMDB reason.
  static Result<std::unique_ptr<LmdbObjectStore>> open(const std::string& dir, Options options);
  static Result<std::unique_ptr<LmdbObjectStore>> open(const std::string& dir) {
    return open(dir, Options{});
  }
  ~LmdbObjectStore() override;
  LmdbObjectStore(const LmdbObjectStore&) = delete;
  LmdbObjectStore& operator=(const LmdbObjectStore&) = delete;

  Status put(std::string_view key, std::string_view bytes) override;
  Result<std::string> get(std::string_view key) override;
  Result<std::vector<std::string>> list(std::string_view prefix) override;
  Status remove(std::string_view key) override;
  const Limits& limits() const noexcept override { return options_.limits; }
  std::string_view kind() const noexcept override { return "lmdb"; }

 private:
  struct Env;
  LmdbObjectStore(std::unique_ptr<Env> env, Options options, std::string dir);
  Status write(std::string_view key, const std::string_view* bytes);

  std::unique_ptr<Env> env_;
  const Options options_;
  const std::string dir_;
};

}  // namespace shoal::sink

// sink/object_store.hpp: the narrow object store the cold-tier sink writes its segments through.
//
// Role: the sink (issue 15) keeps cold data as immutable objects (segments, sink/segment.hpp)
// under string keys. ObjectStore is the one storage dependency it has. Three implementations
// pass one contract suite (tests/sink/object_store_contract.hpp): LmdbObjectStore (the default,
// a local LMDB environment), S3ObjectStore (an S3-compatible service through libcurl, built when
// libcurl is found) and MemoryObjectStore (the simulator's model, with faults).
//
// Contract:
//   - put(key, bytes) stores the whole object or nothing; when it returns OK the object is
//     durable (survives a crash of the store's host). It replaces an existing object.
//   - get(key) returns the bytes of the last acknowledged put, or kNotFound/kNoSuchRecord.
//   - list(prefix) returns every key starting with `prefix`, sorted bytewise ascending; pages
//     of the backend are followed internally (up to Limits::max_list_keys keys, else kTooLarge).
//   - remove(key) deletes the object; removing an absent key is OK (as S3's DELETE is), so a
//     retried remove after a lost reply is harmless.
//   - Sizes are checked before any I/O: keys are 1..max_key_bytes bytes of printable ASCII
//     (0x20..0x7e; kInvalidArgument/kMalformed otherwise), objects at most max_object_bytes
//     (kInvalidArgument/kTooLarge naming the limit and the value).
//   - Errors: kNotFound (absent key), kUnauthenticated (the service refused the credentials: the
//     message names the key id, never the secret), kUnavailable (the store cannot be reached:
//     connection refused, timeout, a simulated outage), kOverloaded (the service asks to slow
//     down: HTTP 429/503), kIo (anything else the backend reports:
//     the HTTP status and the service's error code, or the OS/LMDB reason; kIo/kMapFull when the
//     LMDB map is full).
//
// Thread rules: every implementation may be called from several threads at once.
// Ownership: values in, values out; nothing returned refers to the store's memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.hpp"

namespace shoal::sink {

// S3 allows 1024-byte keys; LMDB's compiled-in key limit is 511. Every implementation enforces
// the same default so the contract holds for all.
inline constexpr std::size_t kDefaultMaxKeyBytes = 511;
inline constexpr std::size_t kDefaultMaxObjectBytes = std::size_t{64} << 20;
inline constexpr std::size_t kDefaultMaxListKeys = 1'000'000;

struct Limits {
  std::size_t max_key_bytes = kDefaultMaxKeyBytes;
  std::size_t max_object_bytes = kDefaultMaxObjectBytes;
  std::size_t max_list_keys = kDefaultMaxListKeys;
};

// kInvalidArgument/kTooLarge or kMalformed when `key` breaks the limits above; OK otherwise.
Status check_key(std::string_view key, const Limits& limits);
// kInvalidArgument/kTooLarge when `size` > limits.max_object_bytes.
Status check_object_size(std::size_t size, const Limits& limits);
// A prefix may be empty; otherwise the same rules as a key.
Status check_prefix(std::string_view prefix, const Limits& limits);

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  virtual Status put(std::string_view key, std::string_view bytes) = 0;
  virtual Result<std::string> get(std::string_view key) = 0;
  virtual Result<std::vector<std::string>> list(std::string_view prefix) = 0;
  virtual Status remove(std::string_view key) = 0;

  virtual const Limits& limits() const noexcept = 0;
  // "lmdb", "s3", "memory": for logs and status output. A static string.
  virtual std::string_view kind() const noexcept = 0;
};

}  // namespace shoal::sink

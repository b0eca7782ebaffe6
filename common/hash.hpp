// common/hash.hpp: fast non-cryptographic hashing (XXH3 from Debian's libxxhash).
//
// Role: record-id bucketing and repair digests in crdt/, and checksums in file formats (index
// snapshots). These hashes are part of on-disk and on-wire formats: never change the algorithm
// or seed of an existing use without bumping that format's version. Not for authentication:
// that is security/'s job.
// Thread rules: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace shoal {

std::uint64_t hash64(const void* data, std::size_t size, std::uint64_t seed = 0) noexcept;
inline std::uint64_t hash64(std::string_view s, std::uint64_t seed = 0) noexcept {
  return hash64(s.data(), s.size(), seed);
}
inline std::uint64_t hash64(std::span<const std::byte> b, std::uint64_t seed = 0) noexcept {
  return hash64(b.data(), b.size(), seed);
}

// Incremental XXH3-64 over a stream of chunks; equals hash64() of their concatenation.
class Hasher64 {
 public:
  explicit Hasher64(std::uint64_t seed = 0) noexcept;
  ~Hasher64();
  Hasher64(const Hasher64&) = delete;
  Hasher64& operator=(const Hasher64&) = delete;
  void update(const void* data, std::size_t size) noexcept;
  std::uint64_t digest() const noexcept;

 private:
  void* state_;  // XXH3_state_t*, kept opaque so xxhash.h stays out of our headers.
};

}  // namespace shoal

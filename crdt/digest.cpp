#include "crdt/digest.hpp"

#include <array>
#include <cstring>

#include "common/assert.hpp"
#include "common/hash.hpp"
#include "common/log.hpp"

namespace shoal::crdt {

Status validate(const DigestConfig& config) {
  if (config.leaf_bits < 1 || config.leaf_bits > 24 || config.fanout_bits < 1 ||
      config.fanout_bits > config.leaf_bits) {
    return Status(Detail::kOutOfRange,
                  str_cat("digest tree leaf_bits ", config.leaf_bits, " fanout_bits ",
                          config.fanout_bits, " outside 1..24 and 1..leaf_bits"));
  }
  return ok_status();
}

std::uint32_t bucket_of(std::string_view id, unsigned leaf_bits) noexcept {
  return static_cast<std::uint32_t>(hash64(id, kBucketSeed) >> (64 - leaf_bits));
}

std::uint64_t record_digest(std::string_view id, std::span<const Entry> entries) noexcept {
  if (entries.empty()) return 0;
  std::uint64_t h = hash64(id, kDigestSeed);
  // Chain one fixed-size block per dot: identity, incarnation, counter (little-endian), then
  // the running hash. No allocation.
  std::array<std::uint8_t, ReplicaId::kIdentityBytes + 4 + 8 + 8> block{};
  for (const Entry& e : entries) {
    std::size_t p = 0;
    std::memcpy(block.data(), e.dot.replica.identity.data(), ReplicaId::kIdentityBytes);
    p += ReplicaId::kIdentityBytes;
    for (int i = 0; i < 4; ++i)
      block[p++] = static_cast<std::uint8_t>(e.dot.replica.incarnation >> (8 * i));
    for (int i = 0; i < 8; ++i) block[p++] = static_cast<std::uint8_t>(e.dot.counter >> (8 * i));
    for (int i = 0; i < 8; ++i) block[p++] = static_cast<std::uint8_t>(h >> (8 * i));
    h = hash64(block.data(), block.size(), kDigestSeed);
  }
  // 0 is reserved for "no record"; remap the (2^-64) collision.
  return h == 0 ? 1 : h;
}

DigestTree::DigestTree(DigestConfig config) : config_(config) {
  SHOAL_ASSERT(validate(config).ok());
  // Leaves first, then group by fanout until one node remains.
  std::vector<unsigned> bits;  // index bits per level, leaves first
  unsigned b = config.leaf_bits;
  bits.push_back(b);
  while (b > 0) {
    b = b >= config.fanout_bits ? b - config.fanout_bits : 0;
    bits.push_back(b);
  }
  levels_.resize(bits.size());
  shift_.resize(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) {
    const std::size_t level = bits.size() - 1 - i;
    levels_[level].assign(std::size_t{1} << bits[i], 0);
    shift_[level] = config.leaf_bits - bits[i];
  }
}

void DigestTree::update(std::uint32_t bucket, std::uint64_t before, std::uint64_t after) noexcept {
  SHOAL_ASSERT(bucket < leaf_count());
  if (before == after) return;
  const std::uint64_t diff = after - before;  // wrapping
  for (std::size_t l = 0; l < levels_.size(); ++l) levels_[l][bucket >> shift_[l]] += diff;
}

void DigestTree::update_record(std::string_view id, std::span<const Entry> before,
                               std::span<const Entry> after) noexcept {
  update(bucket_of(id), record_digest(id, before), record_digest(id, after));
}

std::span<const std::uint64_t> DigestTree::level(std::size_t l) const noexcept {
  SHOAL_ASSERT(l < levels_.size());
  return levels_[l];
}

std::span<const std::uint64_t> DigestTree::children(std::size_t l,
                                                    std::size_t index) const noexcept {
  SHOAL_ASSERT(l + 1 < levels_.size());
  SHOAL_ASSERT(index < levels_[l].size());
  const std::size_t per = levels_[l + 1].size() / levels_[l].size();
  return std::span<const std::uint64_t>(levels_[l + 1]).subspan(index * per, per);
}

std::vector<std::uint32_t> DigestTree::differing_buckets(const DigestTree& other) const {
  SHOAL_ASSERT(config_ == other.config_);
  std::vector<std::size_t> frontier;
  if (root() != other.root()) frontier.push_back(0);
  for (std::size_t l = 0; l + 1 < levels_.size() && !frontier.empty(); ++l) {
    std::vector<std::size_t> next;
    const std::size_t per = levels_[l + 1].size() / levels_[l].size();
    for (std::size_t index : frontier) {
      for (std::size_t c = index * per; c < (index + 1) * per; ++c) {
        if (levels_[l + 1][c] != other.levels_[l + 1][c]) next.push_back(c);
      }
    }
    frontier = std::move(next);
  }
  std::vector<std::uint32_t> out;
  out.reserve(frontier.size());
  for (std::size_t b : frontier) out.push_back(static_cast<std::uint32_t>(b));
  return out;
}

}  // namespace shoal::crdt

// crdt/digest.hpp: repair digests, a hash tree over buckets of the record-id hash space.
//
// Role: two replicas that diverged (for months, possibly) compare DigestTrees top-down, find the
// buckets whose digests differ, and exchange only the records of those buckets.
//
// Shape: 2^leaf_bits leaf buckets (default 4096); a record id's bucket is the top leaf_bits bits
// of hash64(id, kBucketSeed). Inner levels have a fixed fan-out of 2^fanout_bits (default 16);
// level 0 is the root, level depth() the leaves. A node's digest is the wrapping sum (mod 2^64)
// of the record digests below it; a record digest hashes its id and the dots of its entries (a
// dot names one write, so clocks and payloads need not be hashed), and an empty record's digest
// is 0. Hence a change to one record updates depth()+1 nodes by the difference: O(depth).
// Bucket and digest seeds are part of the sync protocol: changing them needs a protocol version.
//
// Repair protocol (the sync engine implements it; ORMap::join_repair shows it in memory):
//   1. Both sides exchange roots; if equal, stop. Otherwise descend: request children() of each
//      differing node, down to the leaves, to get the set of differing buckets.
//   2. For each differing bucket (or batch of buckets), the sender ships ALL its records in those
//      buckets (entries), taken from one snapshot, together with that snapshot's context.
//   3. The receiver joins per record over the whole bucket: for every record id in the bucket,
//      on either side, join_entries(local, local_ctx, remote_or_empty, sender_ctx); then
//      add_entry_dots(local_ctx, remote_entries). It must NOT merge sender_ctx yet: that context
//      covers dots of records in buckets not yet exchanged, and merging it early would make the
//      receiver claim (to a third peer) that those records were deleted: they would be lost.
//   4. Only once every differing bucket has been reconciled, merge the context of the sender's
//      EARLIEST snapshot used in the session (contexts only grow, so it is the smallest). An
//      interrupted session merges no context at all; what it joined stays valid.
// A restricted join over all differing buckets followed by step 4 equals the full state join
// (tests/crdt/repair_test.cpp proves it on random divergence).
//
// Thread rules: values; no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/status.hpp"
#include "crdt/entries.hpp"

namespace shoal::crdt {

inline constexpr std::uint64_t kBucketSeed = 0x73686f616c2d626bull;  // "shoal-bk"
inline constexpr std::uint64_t kDigestSeed = 0x73686f616c2d6467ull;  // "shoal-dg"

struct DigestConfig {
  unsigned leaf_bits = 12;   // 2^leaf_bits buckets; 1..24
  unsigned fanout_bits = 4;  // 2^fanout_bits children per inner node; 1..leaf_bits

  friend bool operator==(const DigestConfig&, const DigestConfig&) = default;
};

// Statuses: OK; kOutOfRange for bits outside the ranges above. Validate a peer's config with it.
[[nodiscard]] Status validate(const DigestConfig& config);

// The bucket of a record id under `leaf_bits` (top bits of its hash).
std::uint32_t bucket_of(std::string_view id, unsigned leaf_bits) noexcept;

// The digest of one record: 0 for an empty record, else a hash of the id and the sorted dots.
std::uint64_t record_digest(std::string_view id, std::span<const Entry> entries) noexcept;

class DigestTree {
 public:
  // Precondition: validate(config) is OK.
  explicit DigestTree(DigestConfig config = {});

  const DigestConfig& config() const noexcept { return config_; }
  // Number of inner levels below the root; the leaves are level depth().
  std::size_t depth() const noexcept { return levels_.size() - 1; }
  std::uint32_t leaf_count() const noexcept { return std::uint32_t{1} << config_.leaf_bits; }

  std::uint32_t bucket_of(std::string_view id) const noexcept {
    return crdt::bucket_of(id, config_.leaf_bits);
  }

  // Replaces a record digest `before` by `after` in `bucket`. O(depth).
  void update(std::uint32_t bucket, std::uint64_t before, std::uint64_t after) noexcept;
  // The same for a record whose entries change from `before` to `after`.
  void update_record(std::string_view id, std::span<const Entry> before,
                     std::span<const Entry> after) noexcept;

  std::uint64_t root() const noexcept { return levels_[0][0]; }
  // All digests of `level` (0 = root, depth() = leaves), left to right. Lives until the next
  // update.
  std::span<const std::uint64_t> level(std::size_t level) const noexcept;
  // The children of node `index` at `level` < depth(). Lives until the next update.
  std::span<const std::uint64_t> children(std::size_t level, std::size_t index) const noexcept;

  // The differing buckets between this tree and `other`, found by descending only into
  // differing nodes, ascending. Precondition: equal configs.
  std::vector<std::uint32_t> differing_buckets(const DigestTree& other) const;

  friend bool operator==(const DigestTree&, const DigestTree&) = default;

 private:
  DigestConfig config_;
  // levels_[0] has one node (the root); levels_.back() has leaf_count() nodes. When leaf_bits
  // is not a multiple of fanout_bits the first level below the root has fewer children.
  std::vector<std::vector<std::uint64_t>> levels_;
  std::vector<unsigned> shift_;  // bucket >> shift_[l] = node index at level l
};

}  // namespace shoal::crdt

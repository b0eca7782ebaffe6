#include "node/core/repair_session.hpp"

#include <algorithm>

#include "common/assert.hpp"

namespace shoal::node {

namespace {
constexpr std::uint64_t kQueryMask = (std::uint64_t{1} << RepairSession::kQueryBits) - 1;
constexpr std::uint32_t kBucketLevel = 0xffffffffu;
constexpr std::size_t kDigestIndicesPerQuery = 1024;
}  // namespace

RepairSession::RepairSession(std::uint64_t id, crdt::ReplicaId peer, std::string collection, MonoTime now)
    : id_(id), peer_(peer), collection_(std::move(collection)), last_activity_(now) {}

transport::DigestQuery RepairSession::start() {
  SHOAL_ASSERT(next_query_ == 0);
  const std::uint32_t q = next_query_++;
  outstanding_.emplace(q, 0);
  return transport::DigestQuery{field(q), collection_, 0, {0}};
}

bool RepairSession::accept_digest_reply(const transport::DigestReply& m, MonoTime now) {
  auto q = outstanding_.find(static_cast<std::uint32_t>(m.session & kQueryMask));
  if (q == outstanding_.end() || q->second != m.level || q->second == kBucketLevel) return false;
  outstanding_.erase(q);
  last_activity_ = now;
  return true;
}

bool RepairSession::accept_bucket_reply(const transport::BucketReply& m, MonoTime now) {
  auto q = outstanding_.find(static_cast<std::uint32_t>(m.session & kQueryMask));
  if (q == outstanding_.end() || q->second != kBucketLevel) return false;
  outstanding_.erase(q);
  last_activity_ = now;
  return true;
}

RepairSession::Outcome RepairSession::on_digest_reply(const transport::DigestReply& m, const crdt::DigestTree& t,
                                                      std::size_t buckets_per_query) {
  Outcome out;
  auto fail = [&](Status st) {
    out.step = Step::kFailed;
    out.error = std::move(st);
    return out;
  };
  if (m.level >= t.depth()) return fail(Status(Detail::kOutOfRange, "digest reply below the leaves"));
  if (m.level == 0 && m.root == t.root() && outstanding_.empty()) {
    out.step = Step::kDone;
    return out;
  }
  // Compare the children the peer sent with ours; descend into the differing ones.
  std::vector<std::uint32_t> differing;
  std::size_t pos = 0;
  for (std::uint32_t i : m.indices) {
    if (i >= t.level(m.level).size()) return fail(Status(Detail::kOutOfRange, "digest reply names a node we do not have"));
    auto ours = t.children(m.level, i);
    if (m.digests.size() < pos + ours.size()) return fail(Status(Detail::kMalformed, "digest reply holds too few digests"));
    for (std::size_t j = 0; j < ours.size(); ++j) {
      if (ours[j] != m.digests[pos + j]) differing.push_back(static_cast<std::uint32_t>(i * ours.size() + j));
    }
    pos += ours.size();
  }
  if (m.level + 1 == t.depth()) {
    buckets_.insert(buckets_.end(), differing.begin(), differing.end());
  } else {
    for (std::size_t from = 0; from < differing.size(); from += kDigestIndicesPerQuery) {
      const std::size_t to = std::min(differing.size(), from + kDigestIndicesPerQuery);
      const std::uint32_t qn = next_query_++;
      outstanding_.emplace(qn, m.level + 1);
      out.out.push_back(transport::DigestQuery{
          field(qn), collection_, m.level + 1,
          std::vector<std::uint32_t>(differing.begin() + static_cast<std::ptrdiff_t>(from),
                                     differing.begin() + static_cast<std::ptrdiff_t>(to))});
    }
  }
  if (outstanding_.empty()) return next_buckets(buckets_per_query);
  out.step = Step::kContinue;
  return out;
}

RepairSession::Outcome RepairSession::next_buckets(std::size_t buckets_per_query) {
  Outcome out;
  if (!outstanding_.empty()) {
    out.step = Step::kContinue;
    return out;
  }
  if (buckets_.empty()) {
    out.step = Step::kDone;
    return out;
  }
  const std::size_t n = std::min(buckets_.size(), std::max<std::size_t>(1, buckets_per_query));
  const std::uint32_t qn = next_query_++;
  outstanding_.emplace(qn, kBucketLevel);
  out.out.push_back(transport::BucketQuery{
      field(qn), collection_, std::vector<std::uint32_t>(buckets_.begin(), buckets_.begin() + static_cast<std::ptrdiff_t>(n))});
  buckets_.erase(buckets_.begin(), buckets_.begin() + static_cast<std::ptrdiff_t>(n));
  out.step = Step::kContinue;
  return out;
}

}  // namespace shoal::node

// node/core/repair_session.hpp: one repair session pulling one collection from one peer (the
// digest path of docs/protocol.md).
//
// Role: the puller's side of a session, with no store and no node: it descends the peer's digest
// tree against ours to the differing leaf buckets, asks for those buckets a batch at a time, and
// keeps the context of the peer's FIRST reply, which the engine merges only once every differing
// bucket is reconciled (never earlier; an abandoned session merges nothing: docs/crdt.md).
// A reply is accepted once, and only for a query still outstanding: duplicated or stale replies
// are ignored, so the session can never finish while a differing bucket is unanswered.
// Thread rules: one owner (the sync engine).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/status.hpp"
#include "common/time.hpp"
#include "crdt/causal_context.hpp"
#include "crdt/digest.hpp"
#include "crdt/replica.hpp"
#include "transport/messages.hpp"

namespace shoal::node {

class RepairSession {
 public:
  // A message's session field is (session id << kQueryBits) | query number.
  static constexpr unsigned kQueryBits = 20;
  static std::uint64_t session_of(std::uint64_t field) noexcept { return field >> kQueryBits; }

  RepairSession(std::uint64_t id, crdt::ReplicaId peer, std::string collection, MonoTime now);

  std::uint64_t id() const noexcept { return id_; }
  const crdt::ReplicaId& peer() const noexcept { return peer_; }
  const std::string& collection() const noexcept { return collection_; }
  MonoTime last_activity() const noexcept { return last_activity_; }
  // The context of the peer's first reply (set by the first accepted digest reply).
  const std::optional<crdt::CausalContext>& first_context() const noexcept { return first_context_; }
  void set_first_context(crdt::CausalContext ctx) { first_context_ = std::move(ctx); }

  // The first query: the root's children.
  transport::DigestQuery start();

  enum class Step {
    kIgnored,   // a duplicated or stale reply: nothing happened
    kContinue,  // `out` holds the next queries (maybe none: wait for outstanding replies)
    kDone,      // every differing bucket is reconciled: merge first_context() and end
    kFailed,    // the peer's reply is inconsistent: end without merging (error says why)
  };
  struct Outcome {
    Step step = Step::kIgnored;
    Status error;
    std::vector<transport::Message> out;
  };

  // True if `m` answers an outstanding digest query of this session (it is then consumed).
  bool accept_digest_reply(const transport::DigestReply& m, MonoTime now);
  // Compares the digests of an accepted reply with `ours` and descends (or asks for buckets).
  Outcome on_digest_reply(const transport::DigestReply& m, const crdt::DigestTree& ours, std::size_t buckets_per_query);
  // True if `m` answers an outstanding bucket query (it is then consumed).
  bool accept_bucket_reply(const transport::BucketReply& m, MonoTime now);
  // After a bucket reply was joined: the next bucket query, or kDone.
  Outcome next_buckets(std::size_t buckets_per_query);

 private:
  std::uint64_t field(std::uint32_t query) const noexcept { return (id_ << kQueryBits) | query; }

  std::uint64_t id_;
  crdt::ReplicaId peer_;
  std::string collection_;
  std::optional<crdt::CausalContext> first_context_;
  // Queries sent and not yet answered, by query number, with the digest level each asked about
  // (kBucketLevel for bucket queries, so a digest reply is never taken for a bucket reply).
  std::map<std::uint32_t, std::uint32_t> outstanding_;
  std::uint32_t next_query_ = 0;
  std::vector<std::uint32_t> buckets_;  // differing buckets not yet requested
  MonoTime last_activity_;
};

}  // namespace shoal::node

// node/core/sync_engine.hpp: the sync engine, sans-I/O (docs/architecture.md;
// docs/protocol.md, "Sync engine").
//
// Role: decides what to tell which peer and when. Delta path: every change sits in the node's
// durable DeltaBuffer; each up peer is sent the entries after its acknowledged position (hot
// peers at once, warm peers on a schedule), one batch in flight, retransmitted until
// acknowledged, never sent back to its origin nor relayed between hot peers; entries every peer
// has acknowledged (durably) are trimmed. Digest path: RepairSessions pull a collection from a
// peer when it comes up and on each tier's interval. The engine never touches a collection's
// records itself: everything that reads or changes the data goes through SyncHost, which the
// node implements with the same data path an app's write takes. Time arrives as arguments;
// messages leave through the outbox.
// Thread rules: one owner (the node core), no locks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.hpp"
#include "common/status.hpp"
#include "common/time.hpp"
#include "crdt/causal_context.hpp"
#include "crdt/digest.hpp"
#include "crdt/or_map.hpp"
#include "crdt/replica.hpp"
#include "node/core/delta_buffer.hpp"
#include "node/core/peer_table.hpp"
#include "node/core/repair_session.hpp"
#include "node/core/tier_policy.hpp"
#include "node/store/store.hpp"
#include "transport/messages.hpp"

namespace shoal::node {

struct SyncOptions {
  // A delta batch not acknowledged within this time is sent again.
  Duration retransmit_hot = Duration::millis(300);
  Duration retransmit_warm = Duration::seconds(2);
  // Warm peers get the buffered deltas at most this often.
  Duration warm_push_interval = Duration::seconds(2);
  // Each peer is compared by digest (repair pulled from it) this often, and when it comes up.
  Duration repair_interval_hot = Duration::seconds(30);
  Duration repair_interval_warm = Duration::seconds(20);
  // A repair session with no reply for this long is abandoned (merging no context).
  Duration repair_timeout = Duration::seconds(5);
  bool repair_enabled = true;
  std::size_t max_batch_entries = 256;
  std::size_t max_batch_bytes = std::size_t{1} << 20;
  std::size_t buckets_per_query = 64;
  // A peer's acknowledged position is written at most this often (a lost one only makes us
  // resend), or after this many entries.
  Duration persist_interval = Duration::seconds(1);
  std::uint64_t persist_every_entries = 1024;
};

// Test-only sync faults that the simulator's checkers must catch (tests/sim). Off in production.
struct SyncMutations {
  // A delta leaves the buffer as soon as it was sent once, before the peer acknowledged it.
  bool trim_before_ack = false;
  // A repair session merges the sender's context at its first reply, before reconciling.
  bool early_context_merge = false;
};

// A message the node wants sent; the driver encodes it (transport/codec.hpp) and delivers it.
struct Outgoing {
  crdt::ReplicaId to;
  transport::Message message;
};

struct SyncStats {
  std::uint64_t delta_batches_sent = 0;
  std::uint64_t delta_items_sent = 0;
  std::uint64_t delta_bytes_sent = 0;   // encoded delta bytes in batches
  std::uint64_t repair_sessions_started = 0;
  std::uint64_t repair_sessions_completed = 0;
  std::uint64_t repair_sessions_abandoned = 0;
  std::uint64_t buckets_repaired = 0;
  std::uint64_t repair_bytes_received = 0;  // slice bytes
  std::uint64_t messages_rejected = 0;      // undecodable or invalid content from peers
  std::uint64_t peer_persist_failures = 0;  // writes of a peer's progress that failed (retried)
  // Warm tier (tier_policy.hpp): bytes sent to warm peers (deltas and repair slices), times a
  // delta batch or a digest comparison waited for the next budget window, and buffer entries
  // warm peers were not sent because their collection is not replicated warm.
  std::uint64_t warm_bytes_sent = 0;
  std::uint64_t warm_budget_deferrals = 0;
  std::uint64_t warm_entries_withheld = 0;
};

// What the sync engine needs of the node's data: implemented by Node over its store, index and
// catalogue. Every method that changes data validates what a peer sent exactly as an app's
// write, and applies it in one store transaction that also appends to the delta buffer (with
// `origin`), or changes nothing and returns the reason.
class SyncHost {
 public:
  virtual const crdt::ReplicaId& replica() const noexcept = 0;
  // Who we are, every collection we hold storage for, the whole catalogue, and the highest
  // counters we hold of `to`'s dots (`to` as it last announced itself).
  virtual transport::Hello hello(const crdt::ReplicaId& to) const = 0;
  // A peer's report of the highest counters it holds of our dots: when one is above ours, this
  // node was restored from an older copy of itself and takes a new incarnation.
  [[nodiscard]] virtual Status check_own_counters(const std::vector<transport::CounterWire>& counters) = 0;
  // Joins a peer's revocation set; true when ours grew (then every up peer hears of it at once).
  [[nodiscard]] virtual Result<bool> join_revocations(std::string_view encoded) = 0;
  // Names of every collection we hold storage for (dropped ones too), in order.
  virtual std::vector<std::string> collection_names() const = 0;
  // The wire spec of the collection with local id `cid`; nullopt when there is none.
  virtual std::optional<transport::CollectionSpecWire> collection_spec(std::uint32_t cid) const = 0;
  // Storage for a collection a peer named (hidden until the catalogue makes it live); kConflict
  // when ours has another dimension or metric.
  [[nodiscard]] virtual Status ensure_collection(const transport::CollectionSpecWire& spec) = 0;
  [[nodiscard]] virtual Status apply_peer_batch(const Origin& origin, const transport::DeltaBatch& batch) = 0;
  [[nodiscard]] virtual Status join_catalogue_state(const Origin& origin, std::string_view bytes) = 0;
  // Repair, answering side: nullptr / nullopt when there is no such collection.
  virtual const crdt::DigestTree* digests(std::string_view collection) const = 0;
  virtual std::optional<std::string> encoded_context(std::string_view collection) const = 0;
  // All our records of `buckets` and our context, encoded (crdt::encode_delta); an empty
  // delta when there is no such collection. Precondition: buckets are in range.
  [[nodiscard]] virtual Result<std::string> bucket_slice(std::string_view collection,
                                                         std::span<const std::uint32_t> buckets) const = 0;
  // Repair, pulling side: joins a peer's slice restricted to `buckets` (adding only the received
  // entries' dots to our context).
  [[nodiscard]] virtual Status apply_repair_slice(const Origin& origin, std::string_view collection,
                                                  std::span<const std::uint32_t> buckets, std::string_view slice) = 0;
  // The last step of a completed repair: merges a peer's context (no-op when included).
  [[nodiscard]] virtual Status merge_context(std::string_view collection, const crdt::CausalContext& ctx) = 0;

 protected:
  ~SyncHost() = default;
};

class SyncEngine {
 public:
  // `host`, `store` and `buffer` must outlive the engine.
  SyncEngine(SyncHost& host, store::Store& store, DeltaBuffer& buffer, SyncOptions options, SyncMutations mutations,
             Logger* logger);
  SyncEngine(const SyncEngine&) = delete;
  SyncEngine& operator=(const SyncEngine&) = delete;

  // Reads the peers table (after the buffer's extent is known).
  [[nodiscard]] Status load(store::ReadView& txn);

  void peer_up(const crdt::ReplicaId& peer, Tier tier, MonoTime now);
  void peer_down(const crdt::ReplicaId& peer, MonoTime now);
  [[nodiscard]] Status receive(const crdt::ReplicaId& from, const transport::Message& message, MonoTime now,
                               WallTime wall);
  void tick(MonoTime now);
  // The node committed new buffer entries: hot peers are pushed on the next tick.
  void on_buffer_grew() noexcept { push_pending_ = true; }
  // The revocation set grew (locally or from a peer): every up peer gets our Hello now.
  void on_revocations_grew();
  // What each collection sends warm peers (tier_policy.hpp); takes effect at the next push or
  // comparison. kInvalidArgument (nothing changed) for a policy outside the documented limits.
  [[nodiscard]] Status set_tier_policies(TierPolicies policies);
  const TierPolicies& tier_policies() const noexcept { return policies_; }
  // The buffer is never trimmed past `cap` (the sink feed's acknowledged position: entries the
  // sink has not taken stay, whatever peers acknowledged); nullopt: no cap.
  void set_trim_cap(std::optional<std::uint64_t> cap) noexcept { trim_cap_ = cap; }
  std::vector<Outgoing> take_outbox();
  std::optional<MonoTime> next_wakeup() const;
  std::vector<PeerProgress> peer_progress() const { return peers_.progress(buffer_.last()); }
  const SyncStats& stats() const noexcept { return stats_; }

 private:
  Origin origin_of(const PeerState& p) const { return Origin{p.id, p.tier == Tier::kHot}; }
  void push_to(PeerState& p, MonoTime now, bool retransmit);
  // The warm budget window of `collection` at `now` (a new one once the last has run out).
  struct BudgetWindow {
    MonoTime start;
    std::uint64_t spent = 0;
    bool open = false;
  };
  BudgetWindow& window(const std::string& collection, MonoTime now);
  Duration warm_interval(const TierPolicy& policy) const;
  // Digest comparisons with a warm peer, each collection on its own schedule.
  void start_due_warm_repairs(PeerState& p, MonoTime now);
  Status trim(MonoTime now);
  std::optional<std::uint64_t> trim_cap_;
  // Counts and logs a failed write of a peer's progress (the next attempt repeats it).
  void report_persist(const PeerState& p, const Status& st);
  void start_repair(PeerState& p, const std::string& collection, MonoTime now);
  void finish_repair(RepairSession& s, bool completed);
  void run_step(RepairSession& s, RepairSession::Outcome outcome);
  RepairSession* session_for(const PeerState& p, std::uint64_t field, const std::string& collection);
  Status on_hello(PeerState& p, const transport::Hello& m, MonoTime now);
  Status on_delta_batch(PeerState& p, const transport::DeltaBatch& m);
  Status on_delta_ack(PeerState& p, const transport::DeltaAck& m, MonoTime now);
  Status on_digest_query(PeerState& p, const transport::DigestQuery& m, MonoTime now);
  Status on_digest_reply(PeerState& p, const transport::DigestReply& m, MonoTime now);
  Status on_bucket_query(PeerState& p, const transport::BucketQuery& m, MonoTime now);
  Status on_bucket_reply(PeerState& p, const transport::BucketReply& m, MonoTime now);

  SyncHost& host_;
  store::Store& store_;
  DeltaBuffer& buffer_;
  SyncOptions options_;
  SyncMutations mutations_;
  Logger* logger_;  // nullable
  PeerTable peers_;
  std::map<std::uint64_t, std::unique_ptr<RepairSession>> sessions_;
  std::uint64_t next_session_ = 1;
  std::vector<Outgoing> outbox_;
  SyncStats stats_;
  bool push_pending_ = false;  // new buffer entries that hot peers have not been sent
  TierPolicies policies_;
  std::map<std::string, BudgetWindow, std::less<>> windows_;
  std::map<std::pair<crdt::ReplicaId, std::string>, MonoTime> warm_repair_due_;
};

}  // namespace shoal::node

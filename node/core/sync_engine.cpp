#include "node/core/sync_engine.hpp"

#include <algorithm>
#include <set>

#include "common/assert.hpp"
#include "crdt/codec.hpp"
#include "node/core/node_format.hpp"

namespace shoal::node {

namespace {
constexpr std::size_t kMaxDigestIndices = std::size_t{1} << 16;
constexpr std::size_t kMaxBucketsPerQuery = 4096;
}  // namespace

SyncEngine::SyncEngine(SyncHost& host, store::Store& store, DeltaBuffer& buffer, SyncOptions options,
                       SyncMutations mutations, Logger* logger)
    : host_(host), store_(store), buffer_(buffer), options_(options), mutations_(mutations), logger_(logger) {}

Status SyncEngine::load(store::ReadView& txn) { return peers_.load(txn, buffer_.last()); }

// --- peers ---

void SyncEngine::peer_up(const crdt::ReplicaId& peer, Tier tier, MonoTime now) {
  if (peer == host_.replica()) return;
  PeerState& p = peers_.get(peer);
  p.up = true;
  p.tier = tier;
  p.in_flight = false;
  p.next_push = now;
  p.next_repair = now + (tier == Tier::kHot ? options_.repair_interval_hot : options_.repair_interval_warm);
  for (auto it = warm_repair_due_.lower_bound({peer, std::string()}); it != warm_repair_due_.end() && it->first.first == peer;) {
    it = warm_repair_due_.erase(it);
  }
  // Durable from first contact (see peer_table.hpp); a failure blocks trimming until it works.
  if (!p.durable) report_persist(p, peers_.persist(store_, p, now));
  outbox_.push_back(Outgoing{peer, host_.hello(p.announced)});
  if (tier == Tier::kHot) push_to(p, now, false);
}

void SyncEngine::peer_down(const crdt::ReplicaId& peer, MonoTime now) {
  PeerState* p = peers_.find(peer);
  if (p == nullptr) return;
  p->up = false;
  p->in_flight = false;
  for (auto s = sessions_.begin(); s != sessions_.end();) {
    auto next = std::next(s);
    if (s->second->peer() == peer) finish_repair(*s->second, false);
    s = next;
  }
  report_persist(*p, peers_.persist_if_due(store_, *p, now, options_.persist_interval, /*force=*/true));
}

std::vector<Outgoing> SyncEngine::take_outbox() {
  std::vector<Outgoing> out;
  out.swap(outbox_);
  return out;
}

void SyncEngine::on_revocations_grew() {
  for (auto& [id, p] : peers_.all()) {
    if (p->up) outbox_.push_back(Outgoing{p->id, host_.hello(p->announced)});
  }
}

void SyncEngine::report_persist(const PeerState& p, const Status& st) {
  if (st.ok()) return;
  ++stats_.peer_persist_failures;
  SHOAL_LOG(logger_, kWarn, "sync", "persisting peer ", p.id.to_string(), " failed (retried; trimming waits): ",
            st.to_string());
}

// --- tiers ---

Status SyncEngine::set_tier_policies(TierPolicies policies) {
  SHOAL_RETURN_IF_ERROR(validate(policies));
  policies_ = std::move(policies);
  return {};
}

Duration SyncEngine::warm_interval(const TierPolicy& policy) const {
  return policy.warm_interval == Duration::zero() ? options_.repair_interval_warm : policy.warm_interval;
}

SyncEngine::BudgetWindow& SyncEngine::window(const std::string& collection, MonoTime now) {
  BudgetWindow& w = windows_[collection];
  if (!w.open || now >= w.start + warm_interval(policies_.of(collection))) w = BudgetWindow{now, 0, true};
  return w;
}

void SyncEngine::start_due_warm_repairs(PeerState& p, MonoTime now) {
  for (const auto& name : host_.collection_names()) {
    const TierPolicy& policy = policies_.of(name);
    if (!policy.warm) continue;
    // A collection first seen for this peer is compared one interval on (its Hello started the
    // first comparison of every collection it holds).
    auto [it, fresh] = warm_repair_due_.try_emplace({p.id, name}, now + warm_interval(policy));
    if (now < it->second) continue;
    it->second = now + warm_interval(policy);
    start_repair(p, name, now);
  }
}

// --- the delta path ---

void SyncEngine::push_to(PeerState& p, MonoTime now, bool retransmit) {
  if (!p.up || (p.in_flight && !retransmit)) return;
  p.in_flight = false;
  // Bounded: each round either sends a batch or advances past entries the peer does not need.
  for (int round = 0; round < 64 && p.acked < buffer_.last(); ++round) {
    if (p.acked + 1 < buffer_.oldest()) {
      // The buffer no longer reaches back to this peer: it must pull a repair from us for what
      // is gone; what is still buffered goes on the delta path as usual.
      outbox_.push_back(Outgoing{p.id, host_.hello(p.announced)});
      p.acked = buffer_.oldest() - 1;
      continue;
    }
    transport::DeltaBatch batch;
    batch.first_seq = p.acked;
    batch.last_seq = p.acked;
    std::set<std::uint32_t> cids;
    std::size_t bytes = 0;
    const bool warm = p.tier == Tier::kWarm;
    std::map<std::string, std::uint64_t, std::less<>> planned;  // warm: bytes per collection in this batch
    bool over_budget = false;
    auto txn = store_.begin_read();
    if (!txn.ok()) return;
    std::string scratch;  // a skeleton entry's re-hydrated delta (DeltaBuffer::delta_bytes)
    Status hydrated;
    Status scanned = buffer_.scan(**txn, p.acked, options_.max_batch_entries, [&](std::uint64_t seq, const format::BufferEntry& e) {
      const bool skip = e.has_origin && (e.origin == p.id || (e.origin_hot && p.tier == Tier::kHot));
      std::string name;  // empty: the catalogue
      std::optional<transport::CollectionSpecWire> spec;
      if (!skip && e.cid != format::kCatalogueCid) spec = host_.collection_spec(e.cid);
      if (skip || (e.cid != format::kCatalogueCid && !spec)) {  // not for this peer, or no storage any more
        batch.last_seq = seq;
        return true;
      }
      // Only entries that go are re-hydrated; the limits count the bytes sent.
      auto sent = DeltaBuffer::delta_bytes(**txn, e, scratch);
      if (!sent.ok()) {
        hydrated = sent.status().with_context(str_cat("delta buffer entry ", seq));
        return false;
      }
      const std::string_view delta = *sent;
      if (bytes > 0 && bytes + delta.size() > options_.max_batch_bytes) return false;
      if (spec) name = spec->name;
      if (warm && !name.empty()) {
        const TierPolicy& policy = policies_.of(name);
        if (!policy.warm) {  // not replicated to warm peers: passed over, as if acknowledged
          batch.last_seq = seq;
          ++stats_.warm_entries_withheld;
          return true;
        }
        if (policy.warm_budget_bytes != 0) {
          const BudgetWindow& w = window(name, now);
          std::uint64_t& mine = planned[name];
          const bool first_of_window = w.spent == 0 && mine == 0;
          if (!first_of_window && w.spent + mine + delta.size() > policy.warm_budget_bytes) {
            over_budget = true;  // this entry and the ones behind it wait for the next window
            return false;
          }
          mine += delta.size();
        }
      }
      batch.last_seq = seq;
      if (spec) cids.insert(e.cid);
      bytes += delta.size();
      batch.items.push_back(transport::DeltaItem{std::move(name), std::string(delta)});
      return true;
    });
    if (scanned.ok()) scanned = hydrated;
    if (!scanned.ok()) {
      SHOAL_LOG(logger_, kError, "sync", "reading the delta buffer: ", scanned.to_string());
      return;
    }
    txn->reset();
    if (over_budget) ++stats_.warm_budget_deferrals;
    if (batch.last_seq == p.acked) return;  // over budget at once (else cannot happen while acked < last)
    if (batch.items.empty()) {
      p.acked = batch.last_seq;  // nothing this peer needs in that range
      if (over_budget) return;
      continue;
    }
    for (const auto& [name, n] : planned) window(name, now).spent += n;
    if (warm) stats_.warm_bytes_sent += bytes;
    for (std::uint32_t cid : cids) batch.specs.push_back(*host_.collection_spec(cid));
    std::sort(batch.specs.begin(), batch.specs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    p.in_flight = true;
    p.in_flight_last = batch.last_seq;
    p.sent_at = now;
    ++stats_.delta_batches_sent;
    stats_.delta_items_sent += batch.items.size();
    stats_.delta_bytes_sent += bytes;
    const std::uint64_t first = batch.first_seq, last = batch.last_seq;
    outbox_.push_back(Outgoing{p.id, std::move(batch)});
    if (mutations_.trim_before_ack) buffer_.drop_for_testing(store_, first, last);
    return;
  }
}

Status SyncEngine::trim(MonoTime now) {
  if (peers_.empty() || mutations_.trim_before_ack) return {};
  // Only persisted positions count: after a crash the node resumes from those, and must still
  // hold every entry after them.
  auto floor = peers_.trim_floor(store_, buffer_.last(), now);
  if (!floor) return {};
  if (trim_cap_) floor = std::min(*floor, *trim_cap_);
  if (*floor < buffer_.oldest()) return {};
  // Trim in steps, not on every acknowledgement.
  if (*floor < buffer_.oldest() + 32 && *floor != buffer_.last()) return {};
  return buffer_.trim_through(store_, *floor);
}

Status SyncEngine::on_delta_batch(PeerState& p, const transport::DeltaBatch& m) {
  SHOAL_RETURN_IF_ERROR(host_.apply_peer_batch(origin_of(p), m));
  outbox_.push_back(Outgoing{p.id, transport::DeltaAck{m.last_seq}});
  return {};
}

Status SyncEngine::on_delta_ack(PeerState& p, const transport::DeltaAck& m, MonoTime now) {
  if (m.last_seq > buffer_.last()) {
    return Status(Detail::kOutOfRange, str_cat("acknowledgement of sequence ", m.last_seq, " beyond our last ", buffer_.last()));
  }
  if (m.last_seq > p.acked) p.acked = m.last_seq;
  if (p.in_flight && m.last_seq >= p.in_flight_last) p.in_flight = false;
  report_persist(p, peers_.persist_if_due(store_, p, now, options_.persist_interval,
                                          /*force=*/p.acked >= p.persisted_acked + options_.persist_every_entries));
  SHOAL_RETURN_IF_ERROR(trim(now));
  push_to(p, now, false);
  return {};
}

Status SyncEngine::on_hello(PeerState& p, const transport::Hello& m, MonoTime now) {
  if (m.protocol_version != transport::kProtocolVersion) {
    return Status(Detail::kVersionMismatch,
                  str_cat("peer speaks protocol ", m.protocol_version, ", we speak ", transport::kProtocolVersion));
  }
  crdt::ReplicaId said;
  // The identity must be the sender's; the incarnation may be newer than the one we know it by
  // (a peer that was restored takes a new one).
  if (!crdt::ReplicaId::decode(m.replica, said) || said.identity != p.id.identity) {
    return Status(Code::kUnauthenticated, "hello names another replica than its sender");
  }
  p.announced = said;
  Status first_error = host_.check_own_counters(m.your_counters);
  if (!m.revocations.empty()) {
    auto grew = host_.join_revocations(m.revocations);
    if (!grew.ok()) {
      if (first_error.ok()) first_error = grew.status();
    } else if (*grew) {
      on_revocations_grew();
    }
  }
  if (!m.catalogue.empty()) {
    Status st = host_.join_catalogue_state(origin_of(p), m.catalogue);
    if (!st.ok()) first_error = st;
  }
  for (const auto& spec : m.collections) {
    Status st = host_.ensure_collection(spec);
    if (!st.ok()) {
      if (first_error.ok()) first_error = st;
      continue;
    }
    if (!options_.repair_enabled) continue;
    if (p.tier == Tier::kHot) {
      start_repair(p, spec.name, now);
    } else if (const TierPolicy& policy = policies_.of(spec.name); policy.warm) {
      warm_repair_due_[{p.id, spec.name}] = now + warm_interval(policy);
      start_repair(p, spec.name, now);
    }
  }
  return first_error;
}

// --- the digest path ---

void SyncEngine::start_repair(PeerState& p, const std::string& collection, MonoTime now) {
  for (const auto& [id, s] : sessions_) {
    if (s->peer() == p.id && s->collection() == collection) return;
  }
  auto s = std::make_unique<RepairSession>(next_session_++, p.id, collection, now);
  outbox_.push_back(Outgoing{p.id, s->start()});
  ++stats_.repair_sessions_started;
  sessions_.emplace(s->id(), std::move(s));
}

Status SyncEngine::on_digest_query(PeerState& p, const transport::DigestQuery& m, MonoTime now) {
  transport::DigestReply r;
  r.session = m.session;
  r.collection = m.collection;
  r.level = m.level;
  // A warm peer is answered only for collections replicated warm, and not when the collection's
  // budget for this window is spent (it asks again at its next comparison).
  bool answer = true;
  if (p.tier == Tier::kWarm) {
    const TierPolicy& policy = policies_.of(m.collection);
    if (!policy.warm) {
      answer = false;
    } else if (policy.warm_budget_bytes != 0 && window(m.collection, now).spent >= policy.warm_budget_bytes) {
      answer = false;
      ++stats_.warm_budget_deferrals;
    }
  }
  if (const crdt::DigestTree* t = answer ? host_.digests(m.collection) : nullptr; t != nullptr) {
    if (m.level >= t->depth()) {
      return Status(Detail::kOutOfRange, str_cat("digest level ", m.level, " has no children; depth ", t->depth()));
    }
    if (m.indices.size() > kMaxDigestIndices) {
      return Status(Detail::kTooLarge, str_cat("digest query for ", m.indices.size(), " nodes, limit ", kMaxDigestIndices));
    }
    const std::size_t width = t->level(m.level).size();
    for (std::uint32_t i : m.indices) {
      if (i >= width) return Status(Detail::kOutOfRange, str_cat("digest node ", i, " at level ", m.level, " of ", width));
      auto ch = t->children(m.level, i);
      r.digests.insert(r.digests.end(), ch.begin(), ch.end());
    }
    r.has_collection = true;
    r.indices = m.indices;
    r.root = t->root();
    r.leaf_bits = t->config().leaf_bits;
    r.fanout_bits = t->config().fanout_bits;
    r.context = host_.encoded_context(m.collection).value_or(std::string());
  }
  outbox_.push_back(Outgoing{p.id, std::move(r)});
  return {};
}

RepairSession* SyncEngine::session_for(const PeerState& p, std::uint64_t field, const std::string& collection) {
  auto it = sessions_.find(RepairSession::session_of(field));
  if (it == sessions_.end() || !(it->second->peer() == p.id) || it->second->collection() != collection) return nullptr;
  return it->second.get();
}

Status SyncEngine::on_digest_reply(PeerState& p, const transport::DigestReply& m, MonoTime now) {
  RepairSession* s = session_for(p, m.session, m.collection);
  if (s == nullptr || !s->accept_digest_reply(m, now)) return {};  // ended, duplicated or stale
  const crdt::DigestTree* t = host_.digests(m.collection);
  if (!m.has_collection || t == nullptr) {
    finish_repair(*s, false);
    return {};
  }
  if (m.leaf_bits != t->config().leaf_bits || m.fanout_bits != t->config().fanout_bits) {
    finish_repair(*s, false);
    return Status(Detail::kParameterMismatch, str_cat("peer digest shape ", m.leaf_bits, "/", m.fanout_bits, ", ours ",
                                                      t->config().leaf_bits, "/", t->config().fanout_bits));
  }
  if (!s->first_context()) {
    auto ctx = crdt::decode_context(format::as_bytes(m.context));
    if (!ctx.ok()) {
      finish_repair(*s, false);
      return ctx.status();
    }
    s->set_first_context(std::move(ctx).value());
    if (mutations_.early_context_merge) {
      // Mutation under test: merge the sender's context before reconciling any bucket.
      (void)host_.merge_context(s->collection(), *s->first_context());
    }
  }
  auto outcome = s->on_digest_reply(m, *t, options_.buckets_per_query);
  Status error = outcome.error;
  run_step(*s, std::move(outcome));
  return error;
}

void SyncEngine::run_step(RepairSession& s, RepairSession::Outcome outcome) {
  for (auto& msg : outcome.out) outbox_.push_back(Outgoing{s.peer(), std::move(msg)});
  if (outcome.step == RepairSession::Step::kDone) finish_repair(s, true);
  if (outcome.step == RepairSession::Step::kFailed) finish_repair(s, false);
}

Status SyncEngine::on_bucket_query(PeerState& p, const transport::BucketQuery& m, MonoTime now) {
  if (m.buckets.size() > kMaxBucketsPerQuery) {
    return Status(Detail::kTooLarge, str_cat("bucket query for ", m.buckets.size(), " buckets, limit ", kMaxBucketsPerQuery));
  }
  if (const crdt::DigestTree* t = host_.digests(m.collection); t != nullptr) {
    for (std::uint32_t b : m.buckets) {
      if (b >= t->leaf_count()) return Status(Detail::kOutOfRange, str_cat("bucket ", b, " of ", t->leaf_count()));
    }
  }
  if (p.tier == Tier::kWarm && !policies_.of(m.collection).warm) {
    return Status(Detail::kOutOfRange, str_cat("collection '", m.collection, "' is not replicated to warm peers"));
  }
  SHOAL_ASSIGN_OR_RETURN(std::string slice, host_.bucket_slice(m.collection, m.buckets));
  if (p.tier == Tier::kWarm) {
    // Charged, never refused: the session was admitted at its digest query.
    if (policies_.of(m.collection).warm_budget_bytes != 0) window(m.collection, now).spent += slice.size();
    stats_.warm_bytes_sent += slice.size();
  }
  outbox_.push_back(Outgoing{p.id, transport::BucketReply{m.session, m.collection, m.buckets, std::move(slice)}});
  return {};
}

Status SyncEngine::on_bucket_reply(PeerState& p, const transport::BucketReply& m, MonoTime now) {
  RepairSession* s = session_for(p, m.session, m.collection);
  if (s == nullptr || !s->accept_bucket_reply(m, now)) return {};  // ended, duplicated or stale
  if (host_.digests(m.collection) == nullptr) {
    finish_repair(*s, false);
    return {};
  }
  if (Status st = host_.apply_repair_slice(origin_of(p), m.collection, m.buckets, m.slice); !st.ok()) {
    finish_repair(*s, false);
    return st;
  }
  std::set<std::uint32_t> distinct(m.buckets.begin(), m.buckets.end());
  stats_.buckets_repaired += distinct.size();
  stats_.repair_bytes_received += m.slice.size();
  run_step(*s, s->next_buckets(options_.buckets_per_query));
  return {};
}

void SyncEngine::finish_repair(RepairSession& s, bool completed) {
  if (completed && s.first_context() && !mutations_.early_context_merge) {
    if (!host_.merge_context(s.collection(), *s.first_context()).ok()) {
      completed = false;  // nothing merged; a later session repeats the work
    }
  }
  ++(completed ? stats_.repair_sessions_completed : stats_.repair_sessions_abandoned);
  sessions_.erase(s.id());  // `s` dies here
}

// --- dispatch and time ---

Status SyncEngine::receive(const crdt::ReplicaId& from, const transport::Message& message, MonoTime now, WallTime wall) {
  if (from == host_.replica()) return Status(Code::kInvalidArgument, "a message from ourselves");
  PeerState& p = peers_.get(from);
  p.last_seen = wall;
  Status st = std::visit(
      [&](const auto& m) -> Status {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, transport::Hello>) return on_hello(p, m, now);
        else if constexpr (std::is_same_v<M, transport::DeltaBatch>) return on_delta_batch(p, m);
        else if constexpr (std::is_same_v<M, transport::DeltaAck>) return on_delta_ack(p, m, now);
        else if constexpr (std::is_same_v<M, transport::DigestQuery>) return on_digest_query(p, m, now);
        else if constexpr (std::is_same_v<M, transport::DigestReply>) return on_digest_reply(p, m, now);
        else if constexpr (std::is_same_v<M, transport::BucketQuery>) return on_bucket_query(p, m, now);
        else return on_bucket_reply(p, m, now);
      },
      message);
  if (!st.ok()) ++stats_.messages_rejected;
  return st;
}

void SyncEngine::tick(MonoTime now) {
  const auto& o = options_;
  for (auto& [id, pp] : peers_.all()) {
    PeerState& p = *pp;
    if (!p.up) continue;
    const Duration rto = p.tier == Tier::kHot ? o.retransmit_hot : o.retransmit_warm;
    if (p.in_flight && now >= p.sent_at + rto) push_to(p, now, true);
    if (p.tier == Tier::kWarm && now >= p.next_push) {
      push_to(p, now, false);
      p.next_push = now + o.warm_push_interval;
    }
    if (o.repair_enabled && now >= p.next_repair) {
      // Every repair round also sends our Hello: it carries the whole catalogue, which the
      // digest path does not cover (a hot peer reached only through others hears of a create or
      // drop no other way).
      outbox_.push_back(Outgoing{p.id, host_.hello(p.announced)});
      if (p.tier == Tier::kHot) {
        for (const auto& name : host_.collection_names()) start_repair(p, name, now);
      }
      p.next_repair = now + (p.tier == Tier::kHot ? o.repair_interval_hot : o.repair_interval_warm);
    }
    if (o.repair_enabled && p.tier == Tier::kWarm) start_due_warm_repairs(p, now);
    report_persist(p, peers_.persist_if_due(store_, p, now, o.persist_interval, /*force=*/false));
  }
  if (push_pending_) {
    push_pending_ = false;
    for (auto& [id, p] : peers_.all()) {
      if (p->up && p->tier == Tier::kHot) push_to(*p, now, false);
    }
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto next = std::next(it);
    if (now >= it->second->last_activity() + o.repair_timeout) finish_repair(*it->second, false);
    it = next;
  }
}

std::optional<MonoTime> SyncEngine::next_wakeup() const {
  std::optional<MonoTime> t;
  auto consider = [&](MonoTime x) {
    if (!t || x < *t) t = x;
  };
  const auto& o = options_;
  for (const auto& [id, p] : peers_.all()) {
    if (!p->up) continue;
    if (p->in_flight) consider(p->sent_at + (p->tier == Tier::kHot ? o.retransmit_hot : o.retransmit_warm));
    if (p->tier == Tier::kWarm && p->acked < buffer_.last()) consider(p->next_push);
    if (o.repair_enabled) consider(p->next_repair);
    if (o.repair_enabled && p->tier == Tier::kWarm) {
      for (auto it = warm_repair_due_.lower_bound({p->id, std::string()});
           it != warm_repair_due_.end() && it->first.first == p->id; ++it) {
        consider(it->second);
      }
    }
    if (p->acked != p->persisted_acked) consider(p->last_persist + o.persist_interval);
  }
  for (const auto& [id, s] : sessions_) consider(s->last_activity() + o.repair_timeout);
  if (push_pending_) consider(MonoTime::from_ns(0));  // now: the caller's clock is ahead of 0
  return t;
}

}  // namespace shoal::node

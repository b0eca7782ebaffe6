// node/core/sync.cpp: the sync engine, sans-I/O (DESIGN.md sections 4 and 8).
//
// Delta path: every change (local, or received and new here) sits in the durable delta buffer
// under a sequence number. Each peer has an acknowledged position; an up peer is sent the buffer
// entries after it (hot peers at once, warm peers on a schedule), one batch in flight at a time,
// retransmitted until acknowledged. Entries are not sent back to the peer they came from, nor
// from one hot peer to another (hot peers form a full mesh on a site). A peer whose position
// the buffer no longer reaches back to is sent a Hello instead, which makes it pull a repair.
//
// Digest path: a repair session pulls one collection from one peer: the puller descends the
// peer's digest tree to the differing buckets, fetches all the peer's records of those buckets,
// joins them bucket by bucket (adding only the received entries' dots to its context), and
// merges the context of the peer's FIRST reply only after every differing bucket is done. An
// abandoned session merges no context. Sessions start when a peer comes up (Hello) and on each
// tier's repair interval.
//
// Everything here runs under the node's exclusive lock and never touches a socket or a clock:
// time arrives as arguments, messages leave through the outbox.
#include <algorithm>
#include <set>

#include "node/core/node_internal.hpp"

namespace shoal::node {

using namespace detail;

namespace {

constexpr std::uint8_t kPeerVersion = 1;
constexpr std::size_t kMaxDigestIndices = std::size_t{1} << 16;
constexpr std::size_t kDigestIndicesPerQuery = 1024;
constexpr std::size_t kMaxBucketsPerQuery = 4096;
// A message's session field is (session id << 20) | query number.
constexpr unsigned kQueryBits = 20;
constexpr std::uint64_t kQueryMask = (std::uint64_t{1} << kQueryBits) - 1;
constexpr std::uint32_t kBucketLevel = 0xffffffffu;

transport::CollectionSpecWire to_wire(const CollectionSpec& s) {
  return transport::CollectionSpecWire{s.name, s.dimension, static_cast<std::uint8_t>(s.metric), s.m,
                                       s.ef_construction, s.ef_search, s.quantize, s.quant_min,
                                       s.quant_max};
}

Result<CollectionSpec> from_wire(const transport::CollectionSpecWire& w) {
  if (w.metric > 2) return Status(Detail::kUnknownName, str_cat("unknown metric ", int{w.metric}));
  CollectionSpec s;
  s.name = w.name;
  s.dimension = w.dimension;
  s.metric = static_cast<Metric>(w.metric);
  s.m = w.m;
  s.ef_construction = w.ef_construction;
  s.ef_search = w.ef_search;
  s.quantize = w.quantize;
  s.quant_min = w.quant_min;
  s.quant_max = w.quant_max;
  return s;
}

std::string encode_peer(const Tier tier, std::uint64_t acked, WallTime last_seen) {
  std::string v;
  put_le<std::uint8_t>(v, kPeerVersion);
  put_le<std::uint8_t>(v, static_cast<std::uint8_t>(tier));
  put_le<std::uint64_t>(v, acked);
  put_le<std::int64_t>(v, last_seen.ns());
  return v;
}

// Peers' deltas must name each dot once: honest replicas never do otherwise, and the join's laws
// assume it (the fuzzer found decodable deltas that break them: tests/fuzz/regressions).
Status check_unique_dots(const crdt::Delta& d) {
  std::set<crdt::Dot> seen;
  for (const auto& [id, entries] : d.records) {
    for (const auto& e : entries) {
      if (!seen.insert(e.dot).second) {
        return Status(Detail::kMalformed, str_cat("dot ", e.dot.to_string(), " appears twice in one delta"));
      }
    }
  }
  return {};
}

// The catalogue's deltas and states from peers: every name a valid collection name, every entry
// a decodable spec within limits, each dot once.
Status validate_catalogue(const crdt::Delta& d, const Limits& limits) {
  SHOAL_RETURN_IF_ERROR(check_unique_dots(d));
  for (const auto& [name, entries] : d.records) {
    SHOAL_RETURN_IF_ERROR(validate_collection_name(name, limits));
    for (const auto& e : entries) {
      auto spec = decode_spec(name, as_view(e.payload));
      if (!spec.ok()) return Status(Detail::kMalformed, str_cat("catalogue entry '", name, "' does not decode"));
      SHOAL_RETURN_IF_ERROR(validate_spec(spec->first, limits));
    }
  }
  return {};
}

}  // namespace

transport::Hello Node::make_hello() const {
  transport::Hello hello;
  hello.replica = encode_replica(replica_);
  for (const auto& [name, c] : collections_) hello.collections.push_back(to_wire(c->spec));
  crdt::Bytes b;
  crdt::encode_delta(catalogue_.to_delta(), b);
  hello.catalogue = std::string(as_view(b));
  return hello;
}

// --- peers ---

Status Node::load_peers() {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
  Status err;
  SHOAL_RETURN_IF_ERROR(txn->scan(Table::kPeers, store::Range::all(), [&](std::string_view k, std::string_view v) {
    auto p = std::make_unique<PeerState>();
    std::uint8_t version = 0, tier = 0;
    std::int64_t seen = 0;
    if (!decode_replica(k, p->id) || !get_le(v, version) || version != kPeerVersion || !get_le(v, tier) ||
        tier > 1 || !get_le(v, p->acked) || !get_le(v, seen)) {
      err = Status(Code::kCorruption, "undecodable peer entry", "peers");
      return false;
    }
    p->tier = static_cast<Tier>(tier);
    p->persisted_acked = p->acked;
    p->durable = true;
    p->last_seen = WallTime::from_ns(seen);
    // A position beyond our buffer (restored store) means nothing: start over.
    if (p->acked > delta_seq_) p->acked = p->persisted_acked = 0;
    peers_.emplace(p->id, std::move(p));
    return true;
  }));
  return err;
}

Node::PeerState& Node::peer_state(const crdt::ReplicaId& peer) {
  auto it = peers_.find(peer);
  if (it != peers_.end()) return *it->second;
  auto p = std::make_unique<PeerState>();
  p->id = peer;
  return *peers_.emplace(peer, std::move(p)).first->second;
}

Status Node::persist_peer(const PeerState& p) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  SHOAL_RETURN_IF_ERROR(txn->put(Table::kPeers, encode_replica(p.id), encode_peer(p.tier, p.acked, p.last_seen)));
  return txn->commit();
}

void Node::peer_up(const crdt::ReplicaId& peer, Tier tier, MonoTime now) {
  std::unique_lock lock(mu_);
  if (peer == replica_) return;
  PeerState& p = peer_state(peer);
  // A peer is durable from first contact: trim_buffer() keeps every entry after the smallest
  // persisted position, so a peer that a restart forgot would have its undelivered entries
  // trimmed away (found by shoal-sim --seed 100977 --no-repair). Until this write succeeds the
  // peer blocks trimming (trim_buffer() retries it).
  if (!p.durable) p.durable = persist_peer(p).ok();
  p.up = true;
  p.tier = tier;
  p.in_flight = false;
  p.next_push = now;
  p.next_repair = now + (tier == Tier::kHot ? options_.sync.repair_interval_hot : options_.sync.repair_interval_warm);
  outbox_.push_back(Outgoing{peer, make_hello()});
  if (tier == Tier::kHot) push_to(p, now, false);
}

void Node::peer_down(const crdt::ReplicaId& peer, MonoTime now) {
  std::unique_lock lock(mu_);
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  PeerState& p = *it->second;
  p.up = false;
  p.in_flight = false;
  for (auto s = sessions_.begin(); s != sessions_.end();) {
    auto next = std::next(s);
    if (s->second->peer == peer) finish_repair(*s->second, false);
    s = next;
  }
  if (p.acked != p.persisted_acked) {
    if (persist_peer(p).ok()) {
      p.persisted_acked = p.acked;
      p.last_persist = now;
    }
  }
}

std::vector<PeerProgress> Node::peer_progress() const {
  std::shared_lock lock(mu_);
  std::vector<PeerProgress> out;
  for (const auto& [id, p] : peers_) {
    out.push_back(PeerProgress{id, p->tier, p->up, p->acked, delta_seq_ > p->acked ? delta_seq_ - p->acked : 0,
                               p->last_seen});
  }
  return out;
}

SyncStats Node::sync_stats() const {
  std::shared_lock lock(mu_);
  return sync_stats_;
}

std::vector<Outgoing> Node::take_outbox() {
  std::unique_lock lock(mu_);
  std::vector<Outgoing> out;
  out.swap(outbox_);
  return out;
}

// --- the delta path ---

void Node::push_to(PeerState& p, MonoTime now, bool retransmit) {
  if (!p.up || (p.in_flight && !retransmit)) return;
  p.in_flight = false;
  // Bounded: each round either sends a batch or advances past entries the peer does not need.
  for (int round = 0; round < 64 && p.acked < delta_seq_; ++round) {
    if (p.acked + 1 < delta_oldest_) {
      // The buffer no longer reaches back to this peer: it must pull a repair from us for what
      // is gone; what is still buffered goes on the delta path as usual.
      outbox_.push_back(Outgoing{p.id, make_hello()});
      p.acked = delta_oldest_ - 1;
      continue;
    }
    transport::DeltaBatch batch;
    batch.first_seq = p.acked;
    batch.last_seq = p.acked;
    std::set<std::uint32_t> cids;
    std::size_t bytes = 0;
    auto txn = store_->begin_read();
    if (!txn.ok()) return;
    Status err;
    Status scanned = (*txn)->scan(
        Table::kDeltas,
        store::Range{store::encode_u64_be(p.acked + 1), std::nullopt, false, options_.sync.max_batch_entries},
        [&](std::string_view k, std::string_view v) {
          auto seq = store::decode_u64_be(k);
          auto entry = decode_buffer_entry(v);
          if (!seq.ok() || !entry.ok()) {
            err = Status(Code::kCorruption, "bad delta buffer entry");
            return false;
          }
          if (bytes > 0 && bytes + entry->delta.size() > options_.sync.max_batch_bytes) return false;
          batch.last_seq = *seq;
          const bool skip = entry->has_origin &&
                            (entry->origin == p.id || (entry->origin_hot && p.tier == Tier::kHot));
          if (skip) return true;
          if (entry->cid == kCatalogueCid) {
            bytes += entry->delta.size();
            batch.items.push_back(transport::DeltaItem{std::string(), std::string(entry->delta)});
            return true;
          }
          const Collection* c = nullptr;
          for (const auto& [name, col] : collections_) {
            if (col->id == entry->cid) c = col.get();
          }
          if (c == nullptr) return true;  // dropped collection
          cids.insert(entry->cid);
          bytes += entry->delta.size();
          batch.items.push_back(transport::DeltaItem{c->spec.name, std::string(entry->delta)});
          return true;
        });
    if (!scanned.ok() || !err.ok()) {
      SHOAL_LOG(options_.logger, kError, "sync", "reading the delta buffer: ", (scanned.ok() ? err : scanned).to_string());
      return;
    }
    txn->reset();
    if (batch.last_seq == p.acked) return;  // nothing readable (cannot happen while acked < seq)
    if (batch.items.empty()) {
      p.acked = batch.last_seq;  // nothing this peer needs in that range
      continue;
    }
    for (const auto& [name, c] : collections_) {
      if (cids.count(c->id) != 0) batch.specs.push_back(to_wire(c->spec));
    }
    p.in_flight = true;
    p.in_flight_last = batch.last_seq;
    p.sent_at = now;
    ++sync_stats_.delta_batches_sent;
    sync_stats_.delta_items_sent += batch.items.size();
    sync_stats_.delta_bytes_sent += bytes;
    const std::uint64_t first = batch.first_seq, last = batch.last_seq;
    outbox_.push_back(Outgoing{p.id, std::move(batch)});
    if (options_.mutations.trim_before_ack) {
      // Mutation under test: drop what was sent before the peer acknowledged it.
      auto w = store_->begin_write();
      if (w.ok()) {
        bool ok = true;
        for (std::uint64_t s = std::max(first + 1, delta_oldest_); s <= last && ok; ++s) {
          ok = (*w)->del(Table::kDeltas, store::encode_u64_be(s)).ok();
        }
        if (ok && (*w)->commit().ok() && first + 1 <= delta_oldest_) delta_oldest_ = std::max(delta_oldest_, last + 1);
      }
    }
    return;
  }
}

Status Node::trim_buffer() {
  if (peers_.empty() || options_.mutations.trim_before_ack) return {};
  // A peer not yet durable (its first write failed, or it only ever sent us messages) would be
  // forgotten by a crash: trim nothing until it is.
  for (auto& [id, p] : peers_) {
    if (!p->durable) {
      p->durable = persist_peer(*p).ok();
      if (!p->durable) return {};
    }
  }
  // Only positions that are persisted count: after a crash the node resumes from those, and must
  // still hold every entry after them.
  std::uint64_t min_acked = delta_seq_;
  for (const auto& [id, p] : peers_) min_acked = std::min(min_acked, p->persisted_acked);
  // Trim in steps, not on every acknowledgement.
  if (min_acked < delta_oldest_ + 32 && min_acked != delta_seq_) return {};
  if (min_acked < delta_oldest_) return {};
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  for (std::uint64_t s = delta_oldest_; s <= min_acked; ++s) {
    SHOAL_RETURN_IF_ERROR(txn->del(Table::kDeltas, store::encode_u64_be(s)));
  }
  SHOAL_RETURN_IF_ERROR(txn->commit());
  delta_oldest_ = min_acked + 1;
  return {};
}

Result<Node::Collection*> Node::ensure_collection(const transport::CollectionSpecWire& wire) {
  SHOAL_ASSIGN_OR_RETURN(CollectionSpec spec, from_wire(wire));
  if (Collection* c = find(spec.name); c != nullptr) {
    if (c->spec.dimension != spec.dimension || c->spec.metric != spec.metric) {
      return Status(Code::kConflict, str_cat("peer's collection '", spec.name, "' has dimension ", spec.dimension,
                                             " and metric ", metric_name(spec.metric), "; ours has ",
                                             c->spec.dimension, " and ", metric_name(c->spec.metric)));
    }
    return c;
  }
  return create_collection_locked(spec);
}

Status Node::on_delta_batch(PeerState& p, const transport::DeltaBatch& m, MonoTime) {
  // Validate everything before touching the store: a rejected batch changes nothing.
  std::vector<std::pair<Collection*, crdt::Delta>> items;  // a null collection: the catalogue
  for (const auto& item : m.items) {
    if (item.collection.empty()) {
      auto delta = crdt::decode_delta(as_bytes(item.delta));
      if (!delta.ok()) return delta.status().with_context("catalogue delta from peer " + p.id.to_string());
      SHOAL_RETURN_IF_ERROR(validate_catalogue(*delta, options_.limits));
      // Storage for the collections it creates (not live until the catalogue says so).
      for (const auto& [name, entries] : delta->records) {
        for (const auto& e : entries) {
          auto spec = decode_spec(name, as_view(e.payload));
          SHOAL_RETURN_IF_ERROR(ensure_collection(to_wire(spec->first)).status());
        }
      }
      items.emplace_back(nullptr, std::move(delta).value());
      continue;
    }
    auto spec = std::find_if(m.specs.begin(), m.specs.end(), [&](const auto& s) { return s.name == item.collection; });
    Collection* c = find(item.collection);
    if (c == nullptr) {
      if (spec == m.specs.end()) {
        return Status(Detail::kNoSuchCollection, str_cat("delta for unknown collection '", item.collection, "'"));
      }
      SHOAL_ASSIGN_OR_RETURN(c, ensure_collection(*spec));
    }
    auto delta = crdt::decode_delta(as_bytes(item.delta));
    if (!delta.ok()) return delta.status().with_context("delta from peer " + p.id.to_string());
    SHOAL_RETURN_IF_ERROR(check_unique_dots(*delta));
    for (const auto& [id, entries] : delta->records) {
      SHOAL_RETURN_IF_ERROR(validate_record_id(id, options_.limits));
      for (const auto& e : entries) {
        auto value = decode_entry_payload(e);
        if (!value.ok()) return value.status().with_context(str_cat("record '", id, "' from peer"));
        SHOAL_RETURN_IF_ERROR(validate_record(*value, c->spec.dimension, c->spec.metric, options_.limits));
      }
    }
    items.emplace_back(c, std::move(delta).value());
  }
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  // Keyed by collection id, so the order of effects never depends on pointer values.
  std::map<std::uint32_t, std::pair<Collection*, Pending>> pendings;
  BufferCursor cur = cursor();
  const Origin origin{p.id, p.tier == Tier::kHot};
  crdt::ORMap cat = catalogue_;
  for (auto& [c, delta] : items) {
    if (c == nullptr) {
      SHOAL_RETURN_IF_ERROR(apply_catalogue_delta_in_txn(*txn, cat, delta, cur, &origin));
      continue;
    }
    auto it = pendings.find(c->id);
    if (it == pendings.end()) it = pendings.emplace(c->id, std::pair{c, Pending{c->ctx, {}, c->next_label}}).first;
    SHOAL_RETURN_IF_ERROR(apply_delta_in_txn(*txn, *c, delta, it->second.second, cur, &origin));
  }
  for (auto& [id, cp] : pendings) SHOAL_RETURN_IF_ERROR(write_state(*txn, *cp.first, cp.second, clock_.last()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  catalogue_ = std::move(cat);
  commit_cursor(cur);
  for (auto& [id, cp] : pendings) apply_pending(*cp.first, cp.second);
  const WallTime wall = wall_now();
  for (const auto& [c, delta] : items) {
    if (c == nullptr) continue;
    for (const auto& [id, entries] : delta.records) {
      for (const auto& e : entries) (void)clock_.observe(e.clock, wall);
    }
  }
  outbox_.push_back(Outgoing{p.id, transport::DeltaAck{m.last_seq}});
  return {};
}

Status Node::on_delta_ack(PeerState& p, const transport::DeltaAck& m, MonoTime now) {
  if (m.last_seq > delta_seq_) {
    return Status(Detail::kOutOfRange, str_cat("acknowledgement of sequence ", m.last_seq, " beyond our last ", delta_seq_));
  }
  if (m.last_seq > p.acked) p.acked = m.last_seq;
  if (p.in_flight && m.last_seq >= p.in_flight_last) p.in_flight = false;
  if (p.acked >= p.persisted_acked + 64 || now - p.last_persist >= Duration::seconds(1)) {
    if (persist_peer(p).ok()) {
      p.persisted_acked = p.acked;
      p.last_persist = now;
    }
  }
  SHOAL_RETURN_IF_ERROR(trim_buffer());
  push_to(p, now, false);
  return {};
}

Status Node::on_hello(PeerState& p, const transport::Hello& m, MonoTime now) {
  if (m.protocol_version != transport::kProtocolVersion) {
    return Status(Detail::kVersionMismatch, str_cat("peer speaks protocol ", m.protocol_version, ", we speak ",
                                                    transport::kProtocolVersion));
  }
  crdt::ReplicaId said;
  if (!decode_replica(m.replica, said) || !(said == p.id)) {
    return Status(Code::kUnauthenticated, "hello names another replica than its sender");
  }
  Status first_error;
  if (!m.catalogue.empty()) {
    Status st = join_catalogue_state(p, m.catalogue);
    if (!st.ok()) first_error = st;
  }
  for (const auto& spec : m.collections) {
    auto c = ensure_collection(spec);
    if (!c.ok()) {
      if (first_error.ok()) first_error = c.status();
      continue;
    }
    if (options_.sync.repair_enabled) start_repair(p, spec.name, now);
  }
  return first_error;
}

Status Node::join_catalogue_state(PeerState& p, std::string_view bytes) {
  auto state = crdt::decode_delta(as_bytes(bytes));
  if (!state.ok()) return state.status().with_context("catalogue from peer " + p.id.to_string());
  SHOAL_RETURN_IF_ERROR(validate_catalogue(*state, options_.limits));
  for (const auto& [name, entries] : state->records) {
    for (const auto& e : entries) {
      auto spec = decode_spec(name, as_view(e.payload));
      SHOAL_RETURN_IF_ERROR(ensure_collection(to_wire(spec->first)).status());
    }
  }
  const crdt::ORMap theirs = ormap_from_state(*state, kCatalogueDigestConfig);
  crdt::ORMap cat = catalogue_;
  if (!cat.join_state(theirs)) return {};
  // Relay what changed on the delta path, as a proper delta: each changed name with its new
  // entries, and the dots of the entries it had and has.
  crdt::Delta changed;
  std::set<std::string> names;
  for (const auto& [name, e] : catalogue_.records()) names.insert(name);
  for (const auto& [name, e] : cat.records()) names.insert(name);
  for (const auto& name : names) {
    const crdt::Entries* before = catalogue_.find(name);
    const crdt::Entries* after = cat.find(name);
    if (before != nullptr && after != nullptr && *before == *after) continue;
    auto& slot = changed.records[name];
    if (after != nullptr) {
      slot = *after;
      crdt::add_entry_dots(changed.context, *after);
    }
    if (before != nullptr) crdt::add_entry_dots(changed.context, *before);
  }
  SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
  BufferCursor cur = cursor();
  const Origin origin{p.id, p.tier == Tier::kHot};
  SHOAL_RETURN_IF_ERROR(put_catalogue(*txn, cat));
  if (!changed.records.empty()) SHOAL_RETURN_IF_ERROR(append_delta(*txn, kCatalogueCid, changed, cur, &origin));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  catalogue_ = std::move(cat);
  commit_cursor(cur);
  return {};
}

// --- the digest path ---

void Node::start_repair(PeerState& p, const std::string& collection, MonoTime now) {
  for (const auto& [id, s] : sessions_) {
    if (s->peer == p.id && s->collection == collection) return;
  }
  auto s = std::make_unique<RepairSession>();
  s->id = next_session_++;
  s->peer = p.id;
  s->collection = collection;
  s->last_activity = now;
  const std::uint32_t q = s->next_query++;
  s->outstanding.emplace(q, 0);
  outbox_.push_back(Outgoing{p.id, transport::DigestQuery{(s->id << kQueryBits) | q, collection, 0, {0}}});
  ++sync_stats_.repair_sessions_started;
  sessions_.emplace(s->id, std::move(s));
}

Status Node::on_digest_query(PeerState& p, const transport::DigestQuery& m) {
  transport::DigestReply r;
  r.session = m.session;
  r.collection = m.collection;
  r.level = m.level;
  Collection* c = find(m.collection);
  if (c != nullptr) {
    const crdt::DigestTree& t = c->digests;
    if (m.level >= t.depth()) {
      return Status(Detail::kOutOfRange, str_cat("digest level ", m.level, " has no children; depth ", t.depth()));
    }
    if (m.indices.size() > kMaxDigestIndices) {
      return Status(Detail::kTooLarge, str_cat("digest query for ", m.indices.size(), " nodes, limit ", kMaxDigestIndices));
    }
    const std::size_t width = t.level(m.level).size();
    for (std::uint32_t i : m.indices) {
      if (i >= width) return Status(Detail::kOutOfRange, str_cat("digest node ", i, " at level ", m.level, " of ", width));
      auto ch = t.children(m.level, i);
      r.digests.insert(r.digests.end(), ch.begin(), ch.end());
    }
    r.has_collection = true;
    r.indices = m.indices;
    r.root = t.root();
    r.leaf_bits = t.config().leaf_bits;
    r.fanout_bits = t.config().fanout_bits;
    crdt::Bytes ctx;
    crdt::encode_context(c->ctx, ctx);
    r.context = std::string(as_view(ctx));
  }
  outbox_.push_back(Outgoing{p.id, std::move(r)});
  return {};
}

Status Node::on_digest_reply(PeerState& p, const transport::DigestReply& m, MonoTime now) {
  auto it = sessions_.find(m.session >> kQueryBits);
  if (it == sessions_.end() || !(it->second->peer == p.id) || it->second->collection != m.collection) {
    return {};  // a reply to a session that ended
  }
  RepairSession& s = *it->second;
  auto q = s.outstanding.find(static_cast<std::uint32_t>(m.session & kQueryMask));
  if (q == s.outstanding.end() || q->second != m.level) return {};  // duplicated or stale
  s.outstanding.erase(q);
  s.last_activity = now;
  Collection* c = find(m.collection);
  if (!m.has_collection || c == nullptr) {
    finish_repair(s, false);
    return {};
  }
  if (m.leaf_bits != kDigestConfig.leaf_bits || m.fanout_bits != kDigestConfig.fanout_bits) {
    finish_repair(s, false);
    return Status(Detail::kParameterMismatch, str_cat("peer digest shape ", m.leaf_bits, "/", m.fanout_bits,
                                                      ", ours ", kDigestConfig.leaf_bits, "/", kDigestConfig.fanout_bits));
  }
  const crdt::DigestTree& t = c->digests;
  if (m.level >= t.depth()) {
    finish_repair(s, false);
    return Status(Detail::kOutOfRange, "digest reply below the leaves");
  }
  if (!s.first_context) {
    auto ctx = crdt::decode_context(as_bytes(m.context));
    if (!ctx.ok()) {
      finish_repair(s, false);
      return ctx.status();
    }
    s.first_context = std::move(ctx).value();
    if (options_.mutations.early_context_merge) {
      // Mutation under test: merge the sender's context before reconciling any bucket.
      Pending pending{c->ctx, {}, c->next_label};
      pending.ctx.merge(*s.first_context);
      pending.state_dirty = true;
      auto txn = store_->begin_write();
      if (txn.ok() && write_state(**txn, *c, pending, clock_.last()).ok() && (*txn)->commit().ok()) {
        apply_pending(*c, pending);
      }
    }
  }
  if (m.level == 0 && m.root == t.root() && s.outstanding.empty()) {
    finish_repair(s, true);
    return {};
  }
  // Compare the children the peer sent with ours; descend into the differing ones.
  std::vector<std::uint32_t> differing;
  std::size_t pos = 0;
  for (std::uint32_t i : m.indices) {
    if (i >= t.level(m.level).size()) {
      finish_repair(s, false);
      return Status(Detail::kOutOfRange, "digest reply names a node we do not have");
    }
    auto ours = t.children(m.level, i);
    if (m.digests.size() < pos + ours.size()) {
      finish_repair(s, false);
      return Status(Detail::kMalformed, "digest reply holds too few digests");
    }
    for (std::size_t j = 0; j < ours.size(); ++j) {
      if (ours[j] != m.digests[pos + j]) differing.push_back(static_cast<std::uint32_t>(i * ours.size() + j));
    }
    pos += ours.size();
  }
  if (m.level + 1 == t.depth()) {
    s.buckets.insert(s.buckets.end(), differing.begin(), differing.end());
  } else {
    for (std::size_t from = 0; from < differing.size(); from += kDigestIndicesPerQuery) {
      const std::size_t to = std::min(differing.size(), from + kDigestIndicesPerQuery);
      const std::uint32_t qn = s.next_query++;
      s.outstanding.emplace(qn, m.level + 1);
      transport::DigestQuery query{(s.id << kQueryBits) | qn, s.collection, m.level + 1,
                                   std::vector<std::uint32_t>(differing.begin() + static_cast<std::ptrdiff_t>(from),
                                                              differing.begin() + static_cast<std::ptrdiff_t>(to))};
      outbox_.push_back(Outgoing{p.id, std::move(query)});
    }
  }
  if (s.outstanding.empty()) send_next_repair_step(s, now);
  return {};
}

void Node::send_next_repair_step(RepairSession& s, MonoTime now) {
  if (s.buckets.empty()) {
    finish_repair(s, true);
    return;
  }
  const std::size_t n = std::min(s.buckets.size(), std::max<std::size_t>(1, options_.sync.buckets_per_query));
  // Bucket queries carry the level past the leaves in `outstanding`, so a digest reply can never
  // be taken for a bucket reply.
  const std::uint32_t qn = s.next_query++;
  s.outstanding.emplace(qn, kBucketLevel);
  transport::BucketQuery q{(s.id << kQueryBits) | qn, s.collection,
                           std::vector<std::uint32_t>(s.buckets.begin(), s.buckets.begin() + static_cast<std::ptrdiff_t>(n))};
  s.buckets.erase(s.buckets.begin(), s.buckets.begin() + static_cast<std::ptrdiff_t>(n));
  s.last_activity = now;
  outbox_.push_back(Outgoing{s.peer, std::move(q)});
}

Status Node::on_bucket_query(PeerState& p, const transport::BucketQuery& m) {
  if (m.buckets.size() > kMaxBucketsPerQuery) {
    return Status(Detail::kTooLarge, str_cat("bucket query for ", m.buckets.size(), " buckets, limit ", kMaxBucketsPerQuery));
  }
  crdt::Delta slice;
  Collection* c = find(m.collection);
  if (c != nullptr) {
    for (std::uint32_t b : m.buckets) {
      if (b >= c->digests.leaf_count()) return Status(Detail::kOutOfRange, str_cat("bucket ", b, " of ", c->digests.leaf_count()));
    }
    SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
    Status err;
    for (std::uint32_t b : m.buckets) {
      const std::string prefix = bucket_prefix(c->id, b);
      SHOAL_RETURN_IF_ERROR(txn->scan(Table::kRecords, store::Range::prefix(prefix), [&](std::string_view k, std::string_view v) {
        auto rec = decode_record(v, k);
        if (!rec.ok()) {
          err = rec.status();
          return false;
        }
        slice.records.emplace(std::string(k.substr(kRecordKeyPrefix)), std::move(rec->entries));
        return true;
      }));
      SHOAL_RETURN_IF_ERROR(err);
    }
    slice.context = c->ctx;
  }
  crdt::Bytes bytes;
  crdt::encode_delta(slice, bytes);
  outbox_.push_back(Outgoing{p.id, transport::BucketReply{m.session, m.collection, m.buckets, std::string(as_view(bytes))}});
  return {};
}

Status Node::on_bucket_reply(PeerState& p, const transport::BucketReply& m, MonoTime now) {
  auto it = sessions_.find(m.session >> kQueryBits);
  if (it == sessions_.end() || !(it->second->peer == p.id) || it->second->collection != m.collection) {
    return {};
  }
  RepairSession& s = *it->second;
  auto q = s.outstanding.find(static_cast<std::uint32_t>(m.session & kQueryMask));
  if (q == s.outstanding.end() || q->second != kBucketLevel) return {};  // duplicated or stale
  s.outstanding.erase(q);
  Collection* c = find(m.collection);
  if (c == nullptr) {
    finish_repair(s, false);
    return {};
  }
  auto fail = [&](Status st) {
    finish_repair(s, false);
    return st;
  };
  auto slice = crdt::decode_delta(as_bytes(m.slice));
  if (!slice.ok()) return fail(slice.status());
  if (Status st = check_unique_dots(*slice); !st.ok()) return fail(st);
  std::set<std::uint32_t> buckets(m.buckets.begin(), m.buckets.end());
  for (std::uint32_t b : buckets) {
    if (b >= c->digests.leaf_count()) return fail(Status(Detail::kOutOfRange, "bucket out of range"));
  }
  for (const auto& [id, entries] : slice->records) {
    if (Status st = validate_record_id(id, options_.limits); !st.ok()) return fail(st);
    if (buckets.count(crdt::bucket_of(id, kDigestConfig.leaf_bits)) == 0) {
      return fail(Status(Detail::kMalformed, str_cat("record '", id, "' is not in the buckets of the reply")));
    }
    for (const auto& e : entries) {
      auto value = decode_entry_payload(e);
      if (!value.ok()) return fail(value.status());
      if (Status st = validate_record(*value, c->spec.dimension, c->spec.metric, options_.limits); !st.ok()) return fail(st);
    }
  }
  // The restricted join, bucket by bucket: every record of the bucket on either side.
  auto txn = store_->begin_write();
  if (!txn.ok()) return fail(txn.status());
  Pending pending{c->ctx, {}, c->next_label};
  BufferCursor cur = cursor();
  const Origin origin{p.id, p.tier == Tier::kHot};
  const crdt::CausalContext before_ctx = c->ctx;
  for (std::uint32_t b : buckets) {
    std::map<std::string, StoredRecord> local;
    Status err;
    Status scanned = (*txn)->scan(Table::kRecords, store::Range::prefix(bucket_prefix(c->id, b)), [&](std::string_view k, std::string_view v) {
      auto rec = decode_record(v, k);
      if (!rec.ok()) {
        err = rec.status();
        return false;
      }
      local.emplace(std::string(k.substr(kRecordKeyPrefix)), std::move(rec).value());
      return true;
    });
    if (!scanned.ok()) return fail(scanned);
    if (!err.ok()) return fail(err);
    for (const auto& [id, entries] : slice->records) {
      if (crdt::bucket_of(id, kDigestConfig.leaf_bits) == b) local.try_emplace(id);
    }
    for (auto& [id, rec] : local) {
      auto remote_it = slice->records.find(id);
      const std::span<const crdt::Entry> remote =
          remote_it == slice->records.end() ? std::span<const crdt::Entry>() : std::span<const crdt::Entry>(remote_it->second);
      crdt::Entries before = rec.entries;
      const bool changed = join_record(rec.entries, pending.ctx, remote, slice->context);
      crdt::add_entry_dots(pending.ctx, remote);
      if (!changed) continue;
      const std::string key = record_key(c->id, id);
      Status st = rec.entries.empty() ? (*txn)->del(Table::kRecords, key)
                                      : (*txn)->put(Table::kRecords, key,
                                                    encode_record(rec.label != 0 ? rec.label : (rec.label = pending.next_label++), rec.entries));
      if (!st.ok()) return fail(st);
      // Relay the change on the delta path: the new entries, and the dots they replace.
      crdt::Delta d;
      d.records[id] = rec.entries;
      crdt::add_entry_dots(d.context, before);
      crdt::add_entry_dots(d.context, rec.entries);
      if (Status a = append_delta(**txn, c->id, d, cur, &origin); !a.ok()) return fail(a);
      pending.changes.push_back({id, rec.label, std::move(before), rec.entries});
      pending.state_dirty = true;
    }
  }
  if (!(pending.ctx == before_ctx)) pending.state_dirty = true;
  if (Status st = write_state(**txn, *c, pending, clock_.last()); !st.ok()) return fail(st);
  if (Status st = (*txn)->commit(); !st.ok()) return fail(st);
  commit_cursor(cur);
  apply_pending(*c, pending);
  sync_stats_.buckets_repaired += buckets.size();
  sync_stats_.repair_bytes_received += m.slice.size();
  s.last_activity = now;
  send_next_repair_step(s, now);
  return {};
}

void Node::finish_repair(RepairSession& s, bool completed) {
  if (completed && s.first_context && !options_.mutations.early_context_merge) {
    if (Collection* c = find(s.collection); c != nullptr && !c->ctx.includes(*s.first_context)) {
      Pending pending{c->ctx, {}, c->next_label};
      pending.ctx.merge(*s.first_context);
      pending.state_dirty = true;
      auto txn = store_->begin_write();
      Status st = txn.ok() ? write_state(**txn, *c, pending, clock_.last()) : txn.status();
      if (st.ok()) st = (*txn)->commit();
      if (st.ok()) {
        apply_pending(*c, pending);
      } else {
        completed = false;  // nothing merged; a later session repeats the work
      }
    }
  }
  ++(completed ? sync_stats_.repair_sessions_completed : sync_stats_.repair_sessions_abandoned);
  sessions_.erase(s.id);  // `s` dies here
}

// --- dispatch and time ---

Status Node::receive(const crdt::ReplicaId& from, const transport::Message& message, MonoTime now) {
  std::unique_lock lock(mu_);
  if (from == replica_) return Status(Code::kInvalidArgument, "a message from ourselves");
  PeerState& p = peer_state(from);
  p.last_seen = wall_now();
  Status st = std::visit(
      [&](const auto& m) -> Status {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, transport::Hello>) return on_hello(p, m, now);
        else if constexpr (std::is_same_v<M, transport::DeltaBatch>) return on_delta_batch(p, m, now);
        else if constexpr (std::is_same_v<M, transport::DeltaAck>) return on_delta_ack(p, m, now);
        else if constexpr (std::is_same_v<M, transport::DigestQuery>) return on_digest_query(p, m);
        else if constexpr (std::is_same_v<M, transport::DigestReply>) return on_digest_reply(p, m, now);
        else if constexpr (std::is_same_v<M, transport::BucketQuery>) return on_bucket_query(p, m);
        else return on_bucket_reply(p, m, now);
      },
      message);
  if (!st.ok()) ++sync_stats_.messages_rejected;
  return st;
}

void Node::tick(MonoTime now) {
  std::unique_lock lock(mu_);
  const auto& o = options_.sync;
  for (auto& [id, pp] : peers_) {
    PeerState& p = *pp;
    if (!p.up) continue;
    const Duration rto = p.tier == Tier::kHot ? o.retransmit_hot : o.retransmit_warm;
    if (p.in_flight && now >= p.sent_at + rto) push_to(p, now, true);
    if (p.tier == Tier::kWarm && now >= p.next_push) {
      push_to(p, now, false);
      p.next_push = now + o.warm_push_interval;
    }
    if (o.repair_enabled && now >= p.next_repair) {
      for (const auto& [name, c] : collections_) start_repair(p, name, now);
      p.next_repair = now + (p.tier == Tier::kHot ? o.repair_interval_hot : o.repair_interval_warm);
    }
    if (p.acked != p.persisted_acked && now - p.last_persist >= Duration::seconds(1)) {
      if (persist_peer(p).ok()) {
        p.persisted_acked = p.acked;
        p.last_persist = now;
      }
    }
  }
  if (push_pending_) {
    push_pending_ = false;
    for (auto& [id, p] : peers_) {
      if (p->up && p->tier == Tier::kHot) push_to(*p, now, false);
    }
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto next = std::next(it);
    if (now >= it->second->last_activity + o.repair_timeout) finish_repair(*it->second, false);
    it = next;
  }
}

std::optional<MonoTime> Node::next_wakeup() const {
  std::shared_lock lock(mu_);
  std::optional<MonoTime> t;
  auto consider = [&](MonoTime x) {
    if (!t || x < *t) t = x;
  };
  const auto& o = options_.sync;
  for (const auto& [id, p] : peers_) {
    if (!p->up) continue;
    if (p->in_flight) consider(p->sent_at + (p->tier == Tier::kHot ? o.retransmit_hot : o.retransmit_warm));
    if (p->tier == Tier::kWarm && p->acked < delta_seq_) consider(p->next_push);
    if (o.repair_enabled) consider(p->next_repair);
    if (p->acked != p->persisted_acked) consider(p->last_persist + Duration::seconds(1));
  }
  for (const auto& [id, s] : sessions_) consider(s->last_activity + o.repair_timeout);
  if (push_pending_) consider(MonoTime::from_ns(0));  // now: the caller's clock is ahead of 0
  return t;
}

}  // namespace shoal::node

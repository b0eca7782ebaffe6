#include "node/core/peer_table.hpp"

#include <algorithm>

#include "common/assert.hpp"
#include "node/core/node_format.hpp"

namespace shoal::node {

Status PeerTable::load(store::ReadView& txn, std::uint64_t last_seq) {
  Status err;
  SHOAL_RETURN_IF_ERROR(txn.scan(store::Table::kPeers, store::Range::all(), [&](std::string_view k, std::string_view v) {
    auto p = std::make_unique<PeerState>();
    auto rec = format::decode_peer(v);
    if (!crdt::ReplicaId::decode(k, p->id) || !rec.ok()) {
      err = Status(Code::kCorruption, "undecodable peer entry", "peers");
      return false;
    }
    p->announced = p->id;
    p->tier = rec->tier;
    p->acked = p->persisted_acked = rec->acked > last_seq ? 0 : rec->acked;
    p->last_seen = rec->last_seen;
    p->durable = true;
    peers_.emplace(p->id, std::move(p));
    return true;
  }));
  return err;
}

PeerState& PeerTable::get(const crdt::ReplicaId& peer) {
  auto it = peers_.find(peer);
  if (it != peers_.end()) return *it->second;
  auto p = std::make_unique<PeerState>();
  p->id = peer;
  p->announced = peer;
  return *peers_.emplace(peer, std::move(p)).first->second;
}

PeerState* PeerTable::find(const crdt::ReplicaId& peer) noexcept {
  auto it = peers_.find(peer);
  return it == peers_.end() ? nullptr : it->second.get();
}

Status PeerTable::persist(store::Store& store, PeerState& p, MonoTime now) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store.begin_write());
  SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kPeers, p.id.encode(), format::encode_peer({p.tier, p.acked, p.last_seen})));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  p.durable = true;
  p.persisted_acked = p.acked;
  p.last_persist = now;
  return {};
}

Status PeerTable::persist_if_due(store::Store& store, PeerState& p, MonoTime now, Duration interval, bool force) {
  if (p.acked == p.persisted_acked && p.durable) return {};
  if (!force && now - p.last_persist < interval) return {};
  // A failure keeps the old durable position: after a crash we only resend more.
  return persist(store, p, now);
}

std::optional<std::uint64_t> PeerTable::trim_floor(store::Store& store, std::uint64_t last_seq, MonoTime now) {
  // A peer not yet durable (its first write failed, or it only ever sent us messages) would be
  // forgotten by a crash: trim nothing until it is.
  for (auto& [id, p] : peers_) {
    if (!p->durable && !persist(store, *p, now).ok()) return std::nullopt;
  }
  std::uint64_t floor = last_seq;
  for (const auto& [id, p] : peers_) {
    SHOAL_ASSERT(p->persisted_acked <= p->acked);
    floor = std::min(floor, p->persisted_acked);
  }
  return floor;
}

std::vector<PeerProgress> PeerTable::progress(std::uint64_t last_seq) const {
  std::vector<PeerProgress> out;
  for (const auto& [id, p] : peers_) {
    out.push_back(PeerProgress{id, p->tier, p->up, p->acked, last_seq > p->acked ? last_seq - p->acked : 0, p->last_seen});
  }
  return out;
}

}  // namespace shoal::node

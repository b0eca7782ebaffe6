// node/core/peer_table.hpp: the peers a node syncs with and their durable progress.
//
// Role: per peer, what it has acknowledged of our delta buffer and when it was last heard from
// (persisted in the peers table, docs/node-format.md), plus the transient delta-path state. A
// peer is written at first contact and blocks trimming until it is: trimming keeps every entry
// after the smallest *persisted* position, so a peer a restart forgot would lose what it never
// received (shoal-sim --seed 100977 --no-repair found that).
// Thread rules: one owner (the sync engine).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "common/status.hpp"
#include "common/time.hpp"
#include "crdt/replica.hpp"
#include "node/core/spec.hpp"
#include "node/store/store.hpp"

namespace shoal::node {

struct PeerState {
  crdt::ReplicaId id;         // how the driver names the peer
  crdt::ReplicaId announced;  // the replica id the peer issues dots under (its last Hello)
  Tier tier = Tier::kHot;
  bool up = false;
  std::uint64_t acked = 0;            // the peer applied our buffer up to here
  std::uint64_t persisted_acked = 0;  // what the peers table says (<= acked)
  bool durable = false;               // the peers table holds this peer
  WallTime last_seen;
  MonoTime last_persist;
  bool in_flight = false;  // a delta batch awaits its acknowledgement
  std::uint64_t in_flight_last = 0;
  MonoTime sent_at;
  MonoTime next_push;    // warm peers: the next scheduled push
  MonoTime next_repair;  // the next digest comparison with this peer
};

struct PeerProgress {
  crdt::ReplicaId peer;
  Tier tier = Tier::kHot;
  bool up = false;
  std::uint64_t acked_seq = 0;  // the peer has applied our delta buffer up to here
  std::uint64_t behind = 0;     // our last delta sequence minus acked_seq
  WallTime last_seen;           // last message from the peer (persisted)
};

class PeerTable {
 public:
  using Map = std::map<crdt::ReplicaId, std::unique_ptr<PeerState>>;

  // Loads the peers table. A position beyond `last_seq` (a store restored from an older copy)
  // means nothing and restarts at 0. kCorruption for an undecodable entry.
  [[nodiscard]] Status load(store::ReadView& txn, std::uint64_t last_seq);

  // The peer's state, created (transient, not yet durable) on first use.
  PeerState& get(const crdt::ReplicaId& peer);
  PeerState* find(const crdt::ReplicaId& peer) noexcept;
  Map& all() noexcept { return peers_; }
  const Map& all() const noexcept { return peers_; }
  bool empty() const noexcept { return peers_.empty(); }

  // Writes the peer's progress in a transaction of its own; on success it is durable and its
  // persisted position is its acknowledged one.
  [[nodiscard]] Status persist(store::Store& store, PeerState& p, MonoTime now);
  // Persists the peer when its position moved (or it is not durable yet) and the last write is
  // older than `interval` (or `force`). On failure the position stays in memory and the next
  // attempt repeats the write; the caller reports the status.
  [[nodiscard]] Status persist_if_due(store::Store& store, PeerState& p, MonoTime now, Duration interval, bool force);

  // How far the buffer may be trimmed: the smallest persisted position of all peers; nullopt
  // when a peer is not durable yet and cannot be made so now (then nothing may be trimmed).
  std::optional<std::uint64_t> trim_floor(store::Store& store, std::uint64_t last_seq, MonoTime now);

  std::vector<PeerProgress> progress(std::uint64_t last_seq) const;

 private:
  Map peers_;
};

}  // namespace shoal::node

// sim/oracle.hpp: the model of what the mesh must converge to, and the end-of-seed checkers.
//
// Role: the oracle is a crdt::ORMap built ONLY from the effects of acknowledged client
// operations, never from what replicas received from each other. For an acknowledged upsert of
// `id` on node X, the simulator reads X's entries of `id` just before and just after the call;
// the effect is the delta {id: [the new entry]} with context {new dot} + dots(entries before)
// (an upsert replaces what X had observed, docs/crdt.md). For an acknowledged remove the effect
// is {id: []} with context dots(entries before). The join of these deltas is exactly the state a
// correct mesh reaches after healing (join is the lattice's least upper bound, and sync only
// moves deltas around), so a replica that differs from it has lost, invented or resurrected
// something. Reading "before" from X trusts X's view of what it observed, which is what the
// operation's meaning depends on; it does not trust X's view of anything else.
//
// The oracle also keeps the registry of issued dots: every acknowledged upsert's dot with a hash
// of its payload. The same dot with another payload is a dot issued twice (a counter not made
// durable before an acknowledgement, then reused after a crash).
//
// Checkers (docs/sim.md, "Checkers"): lost (an oracle entry missing on a replica), phantom (a
// replica entry whose dot no acknowledged operation issued, or that the oracle never saw),
// resurrected (a replica entry whose dot the oracle's context covers but whose entry the oracle
// removed), payload mismatch, context mismatch, dot issued twice, search recall.
// Thread rules: one simulation thread.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "crdt/or_map.hpp"

namespace shoal::sim {

struct Violation {
  std::string kind;    // "lost", "phantom", "resurrected", "dot_reused", "not_converged", ...
  std::string detail;  // what, where
};

class Oracle {
 public:
  // An acknowledged upsert of `id` by `node`. `before`/`after`: the node's entries of `id` just
  // before and after the call. Appends a violation when the new entry cannot be found (an
  // acknowledged upsert that is not readable) or when its dot was issued before with another
  // payload.
  // `client_payload` (nullable): the payload bytes the client asked to store
  // (node::encode_payload of its request). When given, the model holds these bytes, not the
  // node's, so a node that stores something else is caught by payload_mismatch (the client-side
  // oracle); the clock and dot are the node's (the client does not choose them).
  // Returns the new entry's dot (nullopt when none was found).
  std::optional<crdt::Dot> upsert(const crdt::ReplicaId& node, std::string_view id,
                                  const crdt::Entries& before, const crdt::Entries& after,
                                  std::vector<Violation>& out,
                                  const crdt::Bytes* client_payload = nullptr);
  // An acknowledged remove of `id`; `before`: the node's entries just before. `by_drop`: the
  // remove is part of a collection drop (dropped_dots() collects the dots such removes deleted).
  void remove(std::string_view id, const crdt::Entries& before, bool by_drop = false);
  // A dot that a peer claimed in a context, with no entry, and a receiver accepted (a claim on a
  // third replica's dot, which no receiver can tell from the remove of a write it never saw):
  // the mesh converges to a context holding it. Its owner must never issue it (dot_reused,
  // lost and resurrected would show it).
  void claimed(const crdt::Dot& dot);
  // The oracle entry of `id` whose dot is `dot`, or null (returns the new entry after upsert()).
  const crdt::Entry* entry(std::string_view id, const crdt::Dot& dot) const noexcept;

  // A restore (docs/sim.md, "Restores and clones"): a replica came back from an older copy of a
  // store, so acknowledged operations whose effect only it held are gone. Marks each recorded
  // operation held or not (`held(delta)`: some replica's state, or a copy of a store that may
  // still be put back, includes its delta: join(state, delta) == state), and rebuilds the model
  // and the registry of issued dots from the held ones. Operations stay recorded: one that a
  // copy brings back later is held again at the next call. Two held upserts of one dot with
  // different payloads are a dot issued twice (appended to `out`). An operation not held as a
  // whole keeps the parts (`parts`) some replica holds: an entry, or the removal of a dot it
  // removed where a replica covers that dot without its entry. Returns the number of
  // operations not held as a whole.
  std::size_t forget_unheld(const std::function<bool(const crdt::Delta&)>& held, std::vector<Violation>& out);
  // The dots deleted by the recorded removes marked by_drop.
  std::set<crdt::Dot> dropped_dots() const;
  // The parts of a recorded operation's delta that a replica can hold apart (forget_unheld):
  // one delta per entry (the entry and its dot), and one per other dot of its context (that
  // dot, removed from the operation's records).
  static std::vector<crdt::Delta> parts(const crdt::Delta& delta);
  // Whether `state` includes `delta` in the lattice order: every dot of the delta's context is in
  // the state's context, and no entry of the state whose dot the delta's context covers is
  // missing from the delta (the join would delete it).
  static bool includes(const crdt::ORMap& state, const crdt::Delta& delta);

  const crdt::ORMap& model() const noexcept { return model_; }
  // Recorded operations, and of them those the model holds.
  std::size_t ops() const noexcept { return ops_.size(); }
  std::size_t held_ops() const noexcept;
  std::uint64_t acknowledged_upserts() const noexcept { return upserts_; }
  std::uint64_t acknowledged_removes() const noexcept { return removes_; }

  // Compares a converged replica's state with the model; appends one violation per finding
  // (at most `max_each` per kind, then a count).
  // `prefix` is prepended to every violation kind ("d:" for the second collection, "catalogue:").
  void check_replica(std::string_view replica_name, const crdt::ORMap& replica,
                     std::vector<Violation>& out, std::size_t max_each = 5,
                     std::string_view prefix = {}) const;

 private:
  // One recorded operation: its delta (what it contributed to the model) and, for an upsert, its
  // dot and payload hash.
  struct Op {
    crdt::Delta delta;
    std::optional<crdt::Dot> dot;
    std::uint64_t payload_hash = 0;
    bool by_drop = false;
    std::vector<crdt::Dot> dropped;  // by_drop: the dots it deleted
    bool held = true;                // false: no replica holds it (forget_unheld)
  };
  std::vector<Op> ops_;
  crdt::ORMap model_;
  std::map<crdt::Dot, std::uint64_t> issued_;  // dot -> hash of its payload
  std::uint64_t upserts_ = 0;
  std::uint64_t removes_ = 0;
};

// The entries of `id` in `state` (empty when absent).
crdt::Entries entries_of(const crdt::ORMap& state, std::string_view id);

}  // namespace shoal::sim

#include "sim/oracle.hpp"

#include <algorithm>

#include "common/hash.hpp"

namespace shoal::sim {

namespace {

std::uint64_t payload_hash(const crdt::Bytes& b) { return hash64(b.data(), b.size()); }

bool has_dot(const crdt::Entries& es, const crdt::Dot& d) {
  return std::any_of(es.begin(), es.end(), [&](const crdt::Entry& e) { return e.dot == d; });
}

}  // namespace

crdt::Entries entries_of(const crdt::ORMap& state, std::string_view id) {
  const crdt::Entries* e = state.find(id);
  return e == nullptr ? crdt::Entries{} : *e;
}

std::optional<crdt::Dot> Oracle::upsert(const crdt::ReplicaId& node, std::string_view id,
                                        const crdt::Entries& before, const crdt::Entries& after,
                                        std::vector<Violation>& out, const crdt::Bytes* client_payload) {
  // The new entry: the node's own dot with the highest counter that was not there before.
  const crdt::Entry* fresh = nullptr;
  for (const crdt::Entry& e : after) {
    if (e.dot.replica != node || has_dot(before, e.dot)) continue;
    if (fresh == nullptr || fresh->dot.counter < e.dot.counter) fresh = &e;
  }
  if (fresh == nullptr) {
    out.push_back({"ack_not_visible", "upsert of '" + std::string(id) + "' acknowledged by " +
                                          node.to_string() + " has no new entry"});
    return std::nullopt;
  }
  ++upserts_;
  crdt::Entry modeled = *fresh;
  if (client_payload != nullptr) modeled.payload = *client_payload;
  const std::uint64_t h = payload_hash(modeled.payload);
  auto [it, inserted] = issued_.emplace(fresh->dot, h);
  if (!inserted && it->second != h) {
    out.push_back({"dot_reused", "dot " + fresh->dot.to_string() + " issued twice (id '" +
                                     std::string(id) + "', another payload)"});
  }
  crdt::Delta d;
  d.records[std::string(id)] = crdt::Entries{modeled};
  d.context.add(fresh->dot);
  for (const crdt::Entry& e : before) d.context.add(e.dot);
  model_.join(d);
  ops_.push_back(Op{std::move(d), modeled.dot, h, false, {}});
  return modeled.dot;
}

void Oracle::claimed(const crdt::Dot& dot) {
  crdt::Delta d;
  d.context.add(dot);
  model_.join(d);
  ops_.push_back(Op{std::move(d), std::nullopt, 0, false, {}});
}

void Oracle::remove(std::string_view id, const crdt::Entries& before, bool by_drop) {
  ++removes_;
  crdt::Delta d;
  d.records[std::string(id)] = crdt::Entries{};
  for (const crdt::Entry& e : before) d.context.add(e.dot);
  if (d.context.empty()) return;
  model_.join(d);
  Op op{std::move(d), std::nullopt, 0, by_drop, {}};
  if (by_drop) {
    for (const crdt::Entry& e : before) op.dropped.push_back(e.dot);
  }
  ops_.push_back(std::move(op));
}

bool Oracle::includes(const crdt::ORMap& state, const crdt::Delta& delta) {
  if (!state.context().includes(delta.context)) return false;
  for (const auto& [id, entries] : delta.records) {
    for (const crdt::Entry& e : entries_of(state, id)) {
      if (delta.context.contains(e.dot) && !has_dot(entries, e.dot)) return false;
    }
  }
  return true;
}

std::vector<crdt::Delta> Oracle::parts(const crdt::Delta& delta) {
  std::vector<crdt::Delta> out;
  crdt::CausalContext own;  // the dots of the delta's entries
  for (const auto& [id, entries] : delta.records) {
    for (const crdt::Entry& e : entries) {
      crdt::Delta& d = out.emplace_back();
      d.records[id] = crdt::Entries{e};
      d.context.add(e.dot);
      own.add(e.dot);
    }
  }
  for (const auto& [replica, row] : delta.context.rows()) {
    auto removal = [&](std::uint64_t counter) {
      const crdt::Dot dot{replica, counter};
      if (own.contains(dot)) return;
      crdt::Delta& d = out.emplace_back();
      for (const auto& [id, entries] : delta.records) d.records[id] = crdt::Entries{};
      d.context.add(dot);
    };
    for (std::uint64_t c = 1; c <= row.contiguous; ++c) removal(c);
    for (std::uint64_t c : row.cloud) removal(c);
  }
  return out;
}

std::size_t Oracle::forget_unheld(const std::function<bool(const crdt::Delta&)>& held, std::vector<Violation>& out) {
  std::size_t gone = 0;
  model_ = crdt::ORMap{};
  issued_.clear();
  for (Op& op : ops_) {
    op.held = held(op.delta);
    bool entry_held = op.held;
    if (op.held) {
      model_.join(op.delta);
    } else {
      ++gone;
      // A replica can hold part of an operation: repair adds only the dots of the entries it
      // carries, and merges the sender's whole context only when the session ends, so a peer may
      // hold an overwrite's entry without the dots it removed, or cover a removed dot without
      // the entry that removed it (seed 4647: the rolled-back node's later overwrite of 'r2' is
      // forgotten, yet a peer's context covers the first 'r2', which it learned was removed).
      // The parts some replica holds stay: each entry, and each removal of a dot this
      // acknowledged operation removed. A removal stays only where a replica covers the dot and
      // lacks its entry, so a node that drops a write nobody removed is still caught.
      for (const crdt::Delta& part : parts(op.delta)) {
        if (!held(part)) continue;
        model_.join(part);
        if (op.dot && part.context.contains(*op.dot)) entry_held = true;
      }
    }
    if (!op.dot || !entry_held) continue;
    auto [it, inserted] = issued_.emplace(*op.dot, op.payload_hash);
    if (!inserted && it->second != op.payload_hash) {
      out.push_back({"dot_reused", "dot " + op.dot->to_string() + " issued twice (both writes are held after a restore)"});
    }
  }
  return gone;
}

std::size_t Oracle::held_ops() const noexcept {
  return static_cast<std::size_t>(std::count_if(ops_.begin(), ops_.end(), [](const Op& op) { return op.held; }));
}

std::set<crdt::Dot> Oracle::dropped_dots() const {
  std::set<crdt::Dot> out;
  for (const Op& op : ops_) {
    if (op.held) out.insert(op.dropped.begin(), op.dropped.end());
  }
  return out;
}

const crdt::Entry* Oracle::entry(std::string_view id, const crdt::Dot& dot) const noexcept {
  const crdt::Entries* es = model_.find(id);
  if (es == nullptr) return nullptr;
  for (const crdt::Entry& e : *es) {
    if (e.dot == dot) return &e;
  }
  return nullptr;
}

void Oracle::check_replica(std::string_view replica_name, const crdt::ORMap& replica,
                           std::vector<Violation>& out, std::size_t max_each,
                           std::string_view prefix) const {
  std::map<std::string, std::size_t> counts;
  auto report = [&](const char* kind_name, std::string detail) {
    const std::string kind = std::string(prefix) + kind_name;
    if (++counts[kind] <= max_each) {
      out.push_back({kind, std::string(replica_name) + ": " + std::move(detail)});
    }
  };
  // Oracle entries missing or different on the replica.
  for (const auto& [id, want] : model_.records()) {
    const crdt::Entries have = entries_of(replica, id);
    for (const crdt::Entry& e : want) {
      auto it = std::find_if(have.begin(), have.end(), [&](const crdt::Entry& h) { return h.dot == e.dot; });
      if (it == have.end()) {
        report("lost", "acknowledged upsert '" + id + "' " + e.dot.to_string() + " missing" +
                           (replica.context().contains(e.dot) ? " (covered by the replica's context)" : ""));
      } else if (it->payload != e.payload || it->clock != e.clock) {
        report("payload_mismatch", "'" + id + "' " + e.dot.to_string());
      }
    }
  }
  // Replica entries the oracle does not have.
  for (const auto& [id, have] : replica.records()) {
    const crdt::Entries want = entries_of(model_, id);
    for (const crdt::Entry& e : have) {
      if (has_dot(want, e.dot)) continue;
      if (!issued_.contains(e.dot) || !model_.context().contains(e.dot)) {
        report("phantom", "'" + id + "' " + e.dot.to_string() + " was never acknowledged");
      } else {
        report("resurrected", "'" + id + "' " + e.dot.to_string() + " was removed");
      }
    }
  }
  if (!(replica.context() == model_.context())) {
    const bool over = replica.context().includes(model_.context());
    const bool under = model_.context().includes(replica.context());
    report("context_mismatch", std::string(over ? "replica context is a strict superset"
                                           : under ? "replica context is a strict subset"
                                                   : "contexts incomparable") +
                                   ": replica " + replica.context().to_string().substr(0, 160) +
                                   " oracle " + model_.context().to_string().substr(0, 160));
  }
  for (const auto& [kind, n] : counts) {
    if (n > max_each) out.push_back({kind, std::string(replica_name) + ": " + std::to_string(n - max_each) + " more"});
  }
}

}  // namespace shoal::sim

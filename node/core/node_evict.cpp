// node/core/node_evict.cpp: eviction to stubs (docs/tiers.md, "Eviction"; docs/decisions.md,
// D49). Sans-I/O: the driver (the mesh host's timer, or a test) calls evict_step.
//
// What may be evicted: a record of a collection whose tier policy has `sink`, whose winner was
// written (its hybrid clock's wall part) more than the collection's hot window ago, and every one
// of whose whole entries' dots the sink acknowledged for that collection (a stub entry needs none:
// D72, at the check). sink_acked_ holds, per
// collection (dots are numbered per collection, so D:5 of one collection says nothing of D:5 of
// another: D57), the dots of the entries each acknowledged upload of it carried (deltas and
// full-state chunks alike) and the dots its context said were removed, so a hole in the buffer or
// a full-state upload changes nothing here: an entry counts once the sink durably took an upload
// that carried it, and never because the cursor moved past a sequence (a kFullDone or a skipped
// entry of another collection moves the cursor without carrying it). A removed dot in the set is
// no record's, so it never makes a record eligible.
//
// What eviction does: each entry's payload becomes a stub (record.hpp: the metadata and model
// tag, the evicted vector's dimension and the payload's BLAKE2b-256 digest); the vector leaves
// the vectors table and the index. The dots, clocks, the collection's context, the repair
// digests (which hash ids and dots only, crdt/digest.hpp) and the delta buffer stay as they
// were: a stub joins and replicates as the entry it stands for, and the join keeps a replica's
// own copy of an entry it already holds (crdt/entries.cpp), so a stub never replaces a peer's
// whole payload, and a peer that receives only a stub (a repair slice) holds a stub.
#include <algorithm>

#include "common/assert.hpp"
#include "node/core/node.hpp"
#include "node/core/node_state.hpp"

namespace shoal::node {

using namespace format;
using store::Table;

Status Node::set_eviction(EvictionOptions options) {
  if (options.payload_budget_bytes > kMaxPayloadBudgetBytes) {
    return Status(Detail::kOutOfRange, str_cat("payload_budget_bytes ", options.payload_budget_bytes,
                                               " above the limit ", kMaxPayloadBudgetBytes));
  }
  if (options.memory_budget_bytes > kMaxPayloadBudgetBytes) {
    return Status(Detail::kOutOfRange, str_cat("memory_budget_bytes ", options.memory_budget_bytes,
                                               " above the limit ", kMaxPayloadBudgetBytes));
  }
  if (options.max_records_per_step < 1 || options.max_records_per_step > 1'000'000) {
    return Status(Detail::kOutOfRange,
                  str_cat("eviction max_records_per_step ", options.max_records_per_step, " outside 1..1000000"));
  }
  if ((options.payload_budget_bytes != 0 || options.memory_budget_bytes != 0) && !options.payload_digest) {
    return Status(Code::kInvalidArgument, "an eviction budget needs a payload digest function");
  }
  evict_.options = std::move(options);
  return {};
}

// Only collections that go to the sink count: the others can never be evicted, so counting them
// could keep a device over its budget for good, every idle poll scanning records under the
// exclusive lock for nothing (issue 15 review, item 5).
std::uint64_t Node::held_vector_bytes() const {
  std::uint64_t held = 0;
  const TierPolicies& policies = sync_.tier_policies();
  for (const auto& [name, c] : collections_) {
    if (!live(name) || !policies.of(name).sink) continue;
    held += (c->live - c->stubs) * std::uint64_t{c->spec.dimension} * sizeof(float);
  }
  return held;
}

// The memory budget's measure (D68). An index's memory (HnswIndex::memory: codes or vectors,
// links, labels, sized by its capacity) does not shrink when a record leaves it: the element is
// marked deleted and stays until the background rebuild, which runs once more than a quarter of
// the elements are deleted (IndexParams::rebuild_deleted_share). So each record not evicted is
// charged the index's memory divided by the elements it stores (live and deleted; records still
// waiting in the index queue are charged as stored ones): evicting a record frees its share at
// once, as the rebuild will. Only sink collections count (the others are never evicted).
Node::IndexShare Node::index_share(const Collection& c) const {
  IndexShare out;
  const std::uint64_t held = c.live - c.stubs;
  if (held == 0) return out;
  const std::uint64_t total = c.index->memory().total();
  const double share = c.index->deleted_share();
  const auto in_index = static_cast<double>(c.index->size());
  std::uint64_t stored = share < 1.0 ? static_cast<std::uint64_t>(in_index / (1.0 - share) + 0.5) : 0;
  stored = std::max(stored, held);
  out.each = total / stored;
  out.held = out.each * held;
  return out;
}

std::uint64_t Node::held_index_bytes() const {
  std::uint64_t held = 0;
  const TierPolicies& policies = sync_.tier_policies();
  for (const auto& [name, c] : collections_) {
    if (!live(name) || !policies.of(name).sink) continue;
    held += index_share(*c).held;
  }
  return held;
}

EvictionStatus Node::eviction_status() const {
  EvictionStatus s;
  s.budget_bytes = evict_.options.payload_budget_bytes;
  s.held_bytes = held_vector_bytes();
  s.memory_budget_bytes = evict_.options.memory_budget_bytes;
  s.index_held_bytes = held_index_bytes();
  for (const auto& [name, c] : collections_) {
    s.evicted_records += c->stubs;
    s.evicted_bytes += c->stubs * std::uint64_t{c->spec.dimension} * sizeof(float);
  }
  s.evictions = evict_.evictions;
  s.skipped_unacked = evict_.skipped_unacked;
  return s;
}

Result<EvictStep> Node::evict_step() {
  EvictStep step;
  const std::uint64_t budget = evict_.options.payload_budget_bytes;
  const std::uint64_t memory_budget = evict_.options.memory_budget_bytes;
  // Without a feed nothing was acknowledged, so nothing may go.
  if ((budget == 0 && memory_budget == 0) || !sink_.enabled) return step;
  // Over a budget: the payload one (vector bytes) or the memory one (index bytes), each 0 = none.
  const std::uint64_t held = budget == 0 ? 0 : held_vector_bytes();
  const std::uint64_t held_memory = memory_budget == 0 ? 0 : held_index_bytes();
  std::uint64_t freeing_memory = 0;
  auto over = [&](std::uint64_t freeing) {
    return (budget != 0 && held - freeing > budget) || (memory_budget != 0 && held_memory - freeing_memory > memory_budget);
  };
  if (!over(0)) return step;
  const std::uint64_t now_ms = static_cast<std::uint64_t>(std::max<std::int64_t>(0, wall_now().ms()));
  const TierPolicies& policies = sync_.tier_policies();

  struct Candidate {
    Collection* c;
    std::string key;
    std::uint64_t label;
  };
  std::vector<Candidate> picked;
  std::uint64_t freeing = 0;
  {
    SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_read());
    // The collections in name order from where the last step stopped, then the ones before it
    // (the keys before next_key in its own collection wait for the next round).
    std::vector<Collection*> order;
    auto start = collections_.lower_bound(evict_.next_collection);
    for (auto it = start; it != collections_.end(); ++it) order.push_back(it->second.get());
    for (auto it = collections_.begin(); it != start; ++it) order.push_back(it->second.get());
    bool first = true;
    for (Collection* c : order) {
      const bool resume = first && c->spec.name == evict_.next_collection && !evict_.next_key.empty();
      first = false;
      if (step.examined >= evict_.options.max_records_per_step || !over(freeing)) break;
      const TierPolicy& policy = policies.of(c->spec.name);
      if (!live(c->spec.name) || !policy.sink || c->live == c->stubs) continue;
      const std::uint64_t hot_ms = static_cast<std::uint64_t>(policy.hot_window.ms());
      const std::uint64_t cutoff = now_ms > hot_ms ? now_ms - hot_ms : 0;
      const std::uint64_t bytes_each = std::uint64_t{c->spec.dimension} * sizeof(float);
      const std::uint64_t memory_each = memory_budget == 0 ? 0 : index_share(*c).each;
      // This collection's acknowledgements only: dots are numbered per collection (D57).
      auto acked_it = sink_acked_.find(c->id);
      const crdt::CausalContext* acked_here = acked_it == sink_acked_.end() ? nullptr : &acked_it->second;
      store::Range range = store::Range::prefix(collection_prefix(c->id));
      if (resume) range.begin = evict_.next_key + std::string(1, '\0');
      Status err;
      bool stopped = false;
      SHOAL_RETURN_IF_ERROR(txn->scan(Table::kRecords, range, [&](std::string_view k, std::string_view v) {
        if (step.examined >= evict_.options.max_records_per_step || !over(freeing)) {
          stopped = true;
          return false;
        }
        ++step.examined;
        evict_.next_collection = c->spec.name;
        evict_.next_key = std::string(k);
        auto rec = decode_record(v, k);  // the elided form: the vector is not needed to decide
        if (!rec.ok()) {
          err = rec.status();
          return false;
        }
        const crdt::Entry* w = crdt::winner(rec->entries);
        if (w == nullptr || is_stub_payload(as_view(w->payload))) return true;
        if (w->clock.physical_ms() >= cutoff) return true;  // within the hot window
        // Every whole entry's dot acknowledged. A stub entry needs nothing (D72): with one sink
        // per mesh (D49) a stub is made only of an entry the sink acknowledged, and a peer's stub
        // replicated to us is never in our set (we never had its payload to upload), so asking
        // for it kept such a record whole for good.
        const bool acked = acked_here != nullptr &&
                           std::all_of(rec->entries.begin(), rec->entries.end(), [&](const crdt::Entry& e) {
                             return is_stub_payload(as_view(e.payload)) || acked_here->contains(e.dot);
                           });
        if (!acked && !options_.mutations.evict_unacked) {
          ++evict_.skipped_unacked;
          return true;
        }
        picked.push_back(Candidate{c, std::string(k), rec->label});
        freeing += bytes_each;
        freeing_memory += memory_each;
        return true;
      }));
      SHOAL_RETURN_IF_ERROR(err);
      if (!stopped) {
        // This collection was scanned to its end: the next step starts at the next one.
        auto next = collections_.upper_bound(c->spec.name);
        evict_.next_collection = next == collections_.end() ? std::string() : next->first;
        evict_.next_key.clear();
      }
    }
  }
  if (!picked.empty()) {
    SHOAL_ASSIGN_OR_RETURN(auto txn, store_->begin_write());
    for (const Candidate& cand : picked) {
      SHOAL_ASSIGN_OR_RETURN(auto got, txn->get(Table::kRecords, cand.key));
      SHOAL_ASSIGN_OR_RETURN(auto rec, read_record(*txn, cand.c->id, cand.key, got));
      for (crdt::Entry& e : rec.entries) {
        if (is_stub_payload(as_view(e.payload))) continue;
        const PayloadDigest digest = evict_.options.payload_digest(as_view(e.payload));
        SHOAL_ASSIGN_OR_RETURN(std::string stub, make_stub_payload(as_view(e.payload), digest));
        e.payload.assign(stub.begin(), stub.end());
      }
      SHOAL_RETURN_IF_ERROR(put_record(*txn, cand.c->id, cand.key, rec.label, rec.entries));
      if (index_dirty_kept_ && rec.label != 0) {
        SHOAL_RETURN_IF_ERROR(txn->put(Table::kIndexDirty, vector_key(cand.c->id, rec.label), id_of_record_key(cand.key)));
      }
    }
    SHOAL_RETURN_IF_ERROR(txn->commit());
    // Committed: the memory and the index follow.
    const bool deferred = options_.index_queue_max > 0;
    for (const Candidate& cand : picked) {
      Collection& c = *cand.c;
      auto& d = c.doc(cand.label);
      SHOAL_ASSERT(!d.id.empty() && !d.evicted);
      d.evicted = true;
      ++c.stubs;
      if (deferred) {
        c.unindexed.push_back(IndexOp{cand.label, {}});
        ++index_backlog_;
      } else if (c.index->contains(cand.label)) {
        Status s = c.index->remove(cand.label);
        if (!s.ok()) SHOAL_LOG(options_.logger, kError, "node", "index remove after eviction: ", s.to_string());
      }
      ++step.evicted;
      step.bytes += std::uint64_t{c.spec.dimension} * sizeof(float);
    }
    evict_.evictions += step.evicted;
  }
  step.over_budget = (budget != 0 && held_vector_bytes() > budget) ||
                     (memory_budget != 0 && held_index_bytes() > memory_budget);
  return step;
}

Result<RecordValue> Node::check_refill(std::string_view id, const Sibling& stub, std::string_view payload) const {
  if (!evict_.options.payload_digest) {
    return Status(Code::kInvalidArgument, "checking a refill needs the eviction's payload digest function");
  }
  if (evict_.options.payload_digest(payload) != stub.digest) {
    return Status(Detail::kChecksumMismatch,
                  str_cat("the sink's payload of record '", escape_for_message(id),
                          "' does not match the digest its stub keeps"));
  }
  SHOAL_ASSIGN_OR_RETURN(auto value, decode_payload(payload));
  if (value.metadata != stub.value.metadata || value.model != stub.value.model) {
    return Status(Detail::kChecksumMismatch,
                  str_cat("the sink's payload of record '", escape_for_message(id), "' differs from its stub's metadata"));
  }
  return value;
}

}  // namespace shoal::node

#include "crdt/or_map.hpp"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "common/assert.hpp"
#include "common/log.hpp"

namespace shoal::crdt {

void Delta::join(const Delta& other) {
  // Records only here: judged by the other context (a no-op for deltas that keep the invariant,
  // but it makes Delta::join the exact state join).
  for (auto& [id, mine] : records) {
    if (other.records.find(id) == other.records.end()) {
      join_entries(mine, context, {}, other.context);
    }
  }
  for (const auto& [id, theirs] : other.records) {
    auto [it, inserted] = records.try_emplace(id);
    join_entries(it->second, context, theirs, other.context);
  }
  context.merge(other.context);
}

Status validate_record_id(std::string_view id) {
  if (id.empty()) return Status(Detail::kOutOfRange, "record id is empty");
  if (id.size() > kMaxRecordIdBytes) {
    return Status(Detail::kTooLarge,
                  str_cat("record id has ", id.size(), " bytes, limit ", kMaxRecordIdBytes));
  }
  return ok_status();
}

ORMap::ORMap(DigestConfig digest_config) : digests_(digest_config) {}

Result<Delta> ORMap::upsert(const ReplicaId& self, std::string_view id, Bytes payload, Hlc clock) {
  SHOAL_RETURN_IF_ERROR(validate_record_id(id));
  Delta delta;
  auto it = records_.find(id);
  std::uint64_t before = 0;
  if (it != records_.end()) {
    before = record_digest(id, it->second);
    for (const Entry& e : it->second) delta.context.add(e.dot);
  } else {
    it = records_.emplace(std::string(id), Entries{}).first;
  }
  const Dot dot = context_.next_dot(self);
  SHOAL_ASSERT(dot.counter < kMaxCounter);
  context_.add(dot);
  delta.context.add(dot);
  it->second.clear();
  it->second.push_back(Entry{dot, clock, std::move(payload)});
  digests_.update(digests_.bucket_of(id), before, record_digest(id, it->second));
  delta.records.emplace(std::string(id), it->second);
  return delta;
}

Result<Delta> ORMap::remove(std::string_view id) {
  SHOAL_RETURN_IF_ERROR(validate_record_id(id));
  Delta delta;
  auto it = records_.find(id);
  if (it == records_.end()) return delta;
  for (const Entry& e : it->second) delta.context.add(e.dot);
  digests_.update(digests_.bucket_of(id), record_digest(id, it->second), 0);
  records_.erase(it);
  delta.records.emplace(std::string(id), Entries{});
  return delta;
}

bool ORMap::join_one(std::string_view id, std::span<const Entry> remote,
                     const CausalContext& remote_ctx) {
  auto it = records_.find(id);
  if (it == records_.end()) {
    if (remote.empty()) return false;
    Entries local;
    if (!join_entries(local, context_, remote, remote_ctx)) return false;
    digests_.update(digests_.bucket_of(id), 0, record_digest(id, local));
    records_.emplace(std::string(id), std::move(local));
    return true;
  }
  const std::uint64_t before = record_digest(id, it->second);
  if (!join_entries(it->second, context_, remote, remote_ctx)) return false;
  digests_.update(digests_.bucket_of(id), before, record_digest(id, it->second));
  if (it->second.empty()) records_.erase(it);
  return true;
}

bool ORMap::join(const Delta& delta) {
  bool changed = false;
  for (const auto& [id, entries] : delta.records) {
    changed |= join_one(id, entries, delta.context);
  }
  if (!context_.includes(delta.context)) {
    context_.merge(delta.context);
    changed = true;
  }
  return changed;
}

bool ORMap::join_state(const ORMap& other) {
  bool changed = false;
  std::vector<std::string> local_only;
  for (const auto& [id, entries] : records_) {
    if (other.records_.find(id) == other.records_.end()) local_only.push_back(id);
  }
  for (const std::string& id : local_only) changed |= join_one(id, {}, other.context_);
  for (const auto& [id, entries] : other.records_) changed |= join_one(id, entries, other.context_);
  if (!context_.includes(other.context_)) {
    context_.merge(other.context_);
    changed = true;
  }
  return changed;
}

bool ORMap::join_repair(const Delta& slice, std::span<const std::uint32_t> buckets) {
  std::vector<bool> wanted(digests_.leaf_count(), false);
  for (std::uint32_t b : buckets) {
    SHOAL_ASSERT(b < digests_.leaf_count());
    wanted[b] = true;
  }
  bool changed = false;
  // Local records of those buckets that the sender does not have: judged by its context.
  std::vector<std::string> local_only;
  for (const auto& [id, entries] : records_) {
    if (wanted[digests_.bucket_of(id)] && slice.records.find(id) == slice.records.end()) {
      local_only.push_back(id);
    }
  }
  for (const std::string& id : local_only) changed |= join_one(id, {}, slice.context);
  for (const auto& [id, entries] : slice.records) {
    // A record outside the requested buckets is not part of this exchange; ignore it.
    if (!wanted[digests_.bucket_of(id)]) continue;
    changed |= join_one(id, entries, slice.context);
    // Only the received entries' own dots join our context (the repair trap, docs/crdt.md).
    for (const Entry& e : entries) {
      if (!context_.contains(e.dot)) {
        context_.add(e.dot);
        changed = true;
      }
    }
  }
  return changed;
}

Delta ORMap::slice_buckets(std::span<const std::uint32_t> buckets) const {
  std::vector<bool> wanted(digests_.leaf_count(), false);
  for (std::uint32_t b : buckets) {
    SHOAL_ASSERT(b < digests_.leaf_count());
    wanted[b] = true;
  }
  Delta slice;
  for (const auto& [id, entries] : records_) {
    if (wanted[digests_.bucket_of(id)]) slice.records.emplace(id, entries);
  }
  slice.context = context_;
  return slice;
}

void ORMap::merge_context(const CausalContext& context) { context_.merge(context); }

Delta ORMap::to_delta() const {
  Delta d;
  d.records = records_;
  d.context = context_;
  return d;
}

const Entries* ORMap::find(std::string_view id) const noexcept {
  auto it = records_.find(id);
  return it == records_.end() ? nullptr : &it->second;
}

const Entry* ORMap::winner(std::string_view id) const noexcept {
  const Entries* e = find(id);
  return e == nullptr ? nullptr : crdt::winner(*e);
}

bool ORMap::check_invariants_for_testing() const {
  std::set<Dot> seen;
  DigestTree recomputed(digests_.config());
  for (const auto& [id, entries] : records_) {
    if (entries.empty() || !entries_valid(entries)) return false;
    for (const Entry& e : entries) {
      if (!context_.contains(e.dot)) return false;
      if (!seen.insert(e.dot).second) return false;
    }
    recomputed.update_record(id, {}, entries);
  }
  return recomputed == digests_;
}

std::string ORMap::to_string() const {
  std::string out = "context " + context_.to_string() + "\n";
  for (const auto& [id, entries] : records_) {
    out += "  " + id + ":";
    for (const Entry& e : entries) {
      out += " " + e.dot.to_string() + "@" + e.clock.to_string() + "#" +
             std::to_string(e.payload.size());
    }
    out += "\n";
  }
  return out;
}

}  // namespace shoal::crdt

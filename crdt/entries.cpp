#include "crdt/entries.hpp"

#include <tuple>
#include <utility>

#include "common/assert.hpp"

namespace shoal::crdt {

bool entries_valid(std::span<const Entry> entries) noexcept {
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].dot.counter == 0) return false;
    if (i > 0 && !(entries[i - 1].dot < entries[i].dot)) return false;
  }
  return true;
}

bool join_entries(Entries& local, const CausalContext& local_ctx, std::span<const Entry> remote,
                  const CausalContext& remote_ctx) {
  SHOAL_DEBUG_ASSERT(entries_valid(local));
  SHOAL_DEBUG_ASSERT(entries_valid(remote));
  // Fast paths for the common shapes: nothing remote, or identical lists.
  if (remote.empty()) {
    bool changed = false;
    std::size_t out = 0;
    for (std::size_t i = 0; i < local.size(); ++i) {
      if (remote_ctx.contains(local[i].dot)) {
        changed = true;
        continue;
      }
      if (out != i) local[out] = std::move(local[i]);
      ++out;
    }
    local.resize(out);
    return changed;
  }

  Entries merged;
  merged.reserve(local.size() + remote.size());
  bool changed = false;
  std::size_t i = 0, j = 0;
  while (i < local.size() || j < remote.size()) {
    if (j == remote.size() || (i < local.size() && local[i].dot < remote[j].dot)) {
      // Only local has it: keep unless the remote side has seen (and so removed) it.
      if (remote_ctx.contains(local[i].dot)) {
        changed = true;
      } else {
        merged.push_back(std::move(local[i]));
      }
      ++i;
    } else if (i == local.size() || remote[j].dot < local[i].dot) {
      // Only remote has it: adopt unless we have seen (and so removed) it.
      if (!local_ctx.contains(remote[j].dot)) {
        merged.push_back(remote[j]);
        changed = true;
      }
      ++j;
    } else {
      // Both have it. A dot names one write, so the entries are equal unless bytes were
      // corrupted; keep ours.
      merged.push_back(std::move(local[i]));
      ++i;
      ++j;
    }
  }
  local = std::move(merged);
  return changed;
}

void add_entry_dots(CausalContext& ctx, std::span<const Entry> entries) {
  for (const Entry& e : entries) ctx.add(e.dot);
}

bool loses_to(const Entry& a, const Entry& b) noexcept {
  return std::tie(a.clock, a.dot.replica, a.dot.counter) <
         std::tie(b.clock, b.dot.replica, b.dot.counter);
}

const Entry* winner(std::span<const Entry> entries) noexcept {
  const Entry* best = nullptr;
  for (const Entry& e : entries) {
    if (best == nullptr || loses_to(*best, e)) best = &e;
  }
  return best;
}

}  // namespace shoal::crdt

#include "crdt/causal_context.hpp"

#include <algorithm>
#include <iterator>

#include "common/assert.hpp"

namespace shoal::crdt {

bool CausalContext::contains(const Dot& dot) const noexcept {
  auto it = rows_.find(dot.replica);
  if (it == rows_.end()) return false;
  const Row& row = it->second;
  if (dot.counter <= row.contiguous) return dot.counter >= 1;
  return std::binary_search(row.cloud.begin(), row.cloud.end(), dot.counter);
}

void CausalContext::compact(Row& row) {
  std::size_t taken = 0;
  while (taken < row.cloud.size() && row.cloud[taken] <= row.contiguous + 1) {
    row.contiguous = std::max(row.contiguous, row.cloud[taken]);
    ++taken;
  }
  if (taken > 0)
    row.cloud.erase(row.cloud.begin(), row.cloud.begin() + static_cast<std::ptrdiff_t>(taken));
}

void CausalContext::add(const Dot& dot) {
  SHOAL_ASSERT(dot.counter >= 1);
  Row& row = rows_[dot.replica];
  if (dot.counter <= row.contiguous) return;
  if (dot.counter == row.contiguous + 1) {
    row.contiguous = dot.counter;
    compact(row);
    return;
  }
  auto pos = std::lower_bound(row.cloud.begin(), row.cloud.end(), dot.counter);
  if (pos != row.cloud.end() && *pos == dot.counter) return;
  row.cloud.insert(pos, dot.counter);
}

void CausalContext::erase(const Dot& dot) {
  auto it = rows_.find(dot.replica);
  if (it == rows_.end() || dot.counter == 0) return;
  Row& row = it->second;
  if (dot.counter <= row.contiguous) {
    std::vector<std::uint64_t> cloud;
    cloud.reserve(row.contiguous - dot.counter + row.cloud.size());
    for (std::uint64_t c = dot.counter + 1; c <= row.contiguous; ++c) cloud.push_back(c);
    cloud.insert(cloud.end(), row.cloud.begin(), row.cloud.end());
    row.contiguous = dot.counter - 1;
    row.cloud = std::move(cloud);
  } else {
    auto pos = std::lower_bound(row.cloud.begin(), row.cloud.end(), dot.counter);
    if (pos == row.cloud.end() || *pos != dot.counter) return;
    row.cloud.erase(pos);
  }
  if (row.contiguous == 0 && row.cloud.empty()) rows_.erase(it);
}

void CausalContext::merge(const CausalContext& other) {
  for (const auto& [replica, theirs] : other.rows_) {
    auto [it, inserted] = rows_.try_emplace(replica, theirs);
    if (inserted) continue;
    Row& mine = it->second;
    if (theirs.contiguous <= mine.contiguous && theirs.cloud.empty()) continue;
    const std::uint64_t contiguous = std::max(mine.contiguous, theirs.contiguous);
    std::vector<std::uint64_t> cloud;
    cloud.reserve(mine.cloud.size() + theirs.cloud.size());
    std::set_union(mine.cloud.begin(), mine.cloud.end(), theirs.cloud.begin(), theirs.cloud.end(),
                   std::back_inserter(cloud));
    // Drop what the new prefix already covers, then compact the rest.
    auto first = std::upper_bound(cloud.begin(), cloud.end(), contiguous);
    mine.contiguous = contiguous;
    mine.cloud.assign(first, cloud.end());
    compact(mine);
  }
}

bool CausalContext::includes(const CausalContext& other) const noexcept {
  for (const auto& [replica, theirs] : other.rows_) {
    auto it = rows_.find(replica);
    if (it == rows_.end()) return false;
    const Row& mine = it->second;
    if (theirs.contiguous > mine.contiguous) {
      // Their prefix beyond ours must sit in our cloud, which is never contiguous with our
      // prefix; so any such counter is missing.
      return false;
    }
    for (std::uint64_t c : theirs.cloud) {
      if (!contains(Dot{replica, c})) return false;
    }
  }
  return true;
}

std::uint64_t CausalContext::drop_above(const ReplicaId& replica, std::uint64_t counter) {
  auto it = rows_.find(replica);
  if (it == rows_.end()) return 0;
  Row& row = it->second;
  std::uint64_t dropped = 0;
  // Cloud counters are sorted: cut the tail above `counter`.
  auto cut = std::upper_bound(row.cloud.begin(), row.cloud.end(), counter);
  dropped += static_cast<std::uint64_t>(row.cloud.end() - cut);
  row.cloud.erase(cut, row.cloud.end());
  if (row.contiguous > counter) {
    // Every cloud counter exceeds contiguous + 1 > counter, so the cloud is empty already.
    dropped += row.contiguous - counter;
    row.contiguous = counter;
  }
  if (row.contiguous == 0 && row.cloud.empty()) rows_.erase(it);
  return dropped;
}

std::uint64_t CausalContext::max_counter(const ReplicaId& replica) const noexcept {
  auto it = rows_.find(replica);
  if (it == rows_.end()) return 0;
  return it->second.cloud.empty() ? it->second.contiguous : it->second.cloud.back();
}

Dot CausalContext::next_dot(const ReplicaId& replica) const noexcept {
  return Dot{replica, max_counter(replica) + 1};
}

std::size_t CausalContext::cloud_size() const noexcept {
  std::size_t n = 0;
  for (const auto& [replica, row] : rows_) n += row.cloud.size();
  return n;
}

bool CausalContext::set_row_for_decoder(const ReplicaId& replica, Row row) {
  if (row.contiguous == 0 && row.cloud.empty()) return false;
  std::uint64_t prev = row.contiguous + 1;
  for (std::uint64_t c : row.cloud) {
    if (c <= prev) return false;
    prev = c;
  }
  return rows_.try_emplace(replica, std::move(row)).second;
}

std::string CausalContext::to_string() const {
  std::string out = "{";
  bool first = true;
  for (const auto& [replica, row] : rows_) {
    if (!first) out += ", ";
    first = false;
    out += replica.to_string() + ":" + std::to_string(row.contiguous);
    if (!row.cloud.empty()) {
      out += "+[";
      for (std::size_t i = 0; i < row.cloud.size(); ++i) {
        if (i) out += ",";
        out += std::to_string(row.cloud[i]);
      }
      out += "]";
    }
  }
  return out + "}";
}

}  // namespace shoal::crdt

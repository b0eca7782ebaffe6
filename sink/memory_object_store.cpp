// sink/memory_object_store.cpp: the in-memory ObjectStore with faults (see the header).
#include "sink/memory_object_store.hpp"

#include <utility>

namespace shoal::sink {

namespace {
Status outage() { return Status(Code::kUnavailable, "object store unreachable (simulated outage)"); }
}  // namespace

void MemoryObjectStore::set_unreachable(bool unreachable) {
  std::lock_guard lock(mu_);
  unreachable_ = unreachable;
}

void MemoryObjectStore::fail_next_writes(std::uint64_t n, bool applied) {
  std::lock_guard lock(mu_);
  fail_writes_ = n;
  fail_applied_ = applied;
}

void MemoryObjectStore::crash() {
  std::lock_guard lock(mu_);
  for (auto& [key, before] : unsynced_) {
    if (before) {
      visible_.insert_or_assign(key, std::move(*before));
    } else {
      visible_.erase(key);
    }
  }
  unsynced_.clear();
}

// Applies a write (value = nullopt: remove) under mu_, with the configured faults.
Status MemoryObjectStore::fault_or_ok(std::string_view key, std::optional<std::string> value) {
  if (unreachable_) return outage();
  const bool fail = fail_writes_ > 0;
  if (fail) --fail_writes_;
  if (fail && !fail_applied_) {
    return Status(Code::kIo, "simulated write failure (not applied)", std::string(key));
  }
  auto it = visible_.find(key);
  if (fail && unsynced_.find(key) == unsynced_.end()) {
    std::optional<std::string> before;
    if (it != visible_.end()) before = it->second;
    unsynced_.emplace(std::string(key), std::move(before));
  }
  if (!fail) unsynced_.erase(std::string(key));
  if (value) {
    visible_.insert_or_assign(std::string(key), std::move(*value));
  } else if (it != visible_.end()) {
    visible_.erase(it);
  }
  if (fail) {
    return Status(Code::kIo, "simulated write failure (applied, reply lost)", std::string(key));
  }
  return ok_status();
}

Status MemoryObjectStore::put(std::string_view key, std::string_view bytes) {
  SHOAL_RETURN_IF_ERROR(check_key(key, limits_));
  SHOAL_RETURN_IF_ERROR(check_object_size(bytes.size(), limits_));
  std::lock_guard lock(mu_);
  return fault_or_ok(key, std::string(bytes));
}

Result<std::string> MemoryObjectStore::get(std::string_view key) {
  SHOAL_RETURN_IF_ERROR(check_key(key, limits_));
  std::lock_guard lock(mu_);
  if (unreachable_) return outage();
  auto it = visible_.find(key);
  if (it == visible_.end()) {
    return Status(Detail::kNoSuchRecord, "no such object", std::string(key));
  }
  return it->second;
}

Result<std::vector<std::string>> MemoryObjectStore::list(std::string_view prefix) {
  SHOAL_RETURN_IF_ERROR(check_prefix(prefix, limits_));
  std::lock_guard lock(mu_);
  if (unreachable_) return outage();
  std::vector<std::string> keys;
  for (auto it = visible_.lower_bound(prefix);
       it != visible_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
    if (keys.size() == limits_.max_list_keys) {
      return Status(Detail::kTooLarge, "more than " + std::to_string(limits_.max_list_keys) +
                                           " keys under the prefix", std::string(prefix));
    }
    keys.push_back(it->first);
  }
  return keys;
}

Status MemoryObjectStore::remove(std::string_view key) {
  SHOAL_RETURN_IF_ERROR(check_key(key, limits_));
  std::lock_guard lock(mu_);
  return fault_or_ok(key, std::nullopt);
}

std::uint64_t MemoryObjectStore::object_count() const {
  std::lock_guard lock(mu_);
  return visible_.size();
}

std::uint64_t MemoryObjectStore::stored_bytes() const {
  std::lock_guard lock(mu_);
  std::uint64_t n = 0;
  for (const auto& [k, v] : visible_) n += v.size();
  return n;
}

std::uint64_t MemoryObjectStore::unsynced_count() const {
  std::lock_guard lock(mu_);
  return unsynced_.size();
}

}  // namespace shoal::sink

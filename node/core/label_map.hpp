// node/core/label_map.hpp: a collection's map from record id to index label, stored as a flat
// open-addressing table of labels whose keys are read from the collection's docs (D64).
//
// Role: the id-to-label lookup of Node::Collection. The ids already live in the docs (by label),
// so the table holds only (hash, label) slots: no second copy of every id, no allocation per
// entry. Building it for 1M records was a fifth of a 1M x 128 open as a
// std::unordered_map<std::string, std::uint64_t> (one node allocation and one string per entry,
// plus pointer chasing on each probe); here it is one hash and a probe into one array per id.
// Every call that compares ids takes `id_of(label)`, the id the caller's docs hold for a label: a
// slot's label must keep the id it was inserted with until it is erased (Node clears a doc only
// after erasing its id).
// The slots are allocated zeroed (calloc: a large table comes from fresh zero pages, not a memset
// of memory the kernel has just zeroed), and a collection's open builds the table in one pass
// (insert_new) that hashes a few ids ahead and prefetches their home slots, so the random probes
// of 1M inserts overlap instead of each waiting for memory (D70).
// Thread rules: a value; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <utility>

#include "common/hash.hpp"

namespace shoal::node {

class LabelMap {
 public:
  LabelMap() = default;
  // Move-only (the slots are one calloc'ed array); a moved-from map is empty.
  LabelMap(LabelMap&& other) noexcept
      : slots_(std::move(other.slots_)),
        capacity_(std::exchange(other.capacity_, 0)),
        mask_(std::exchange(other.mask_, 0)),
        size_(std::exchange(other.size_, 0)) {}
  LabelMap& operator=(LabelMap&& other) noexcept {
    slots_ = std::move(other.slots_);
    capacity_ = std::exchange(other.capacity_, 0);
    mask_ = std::exchange(other.mask_, 0);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }
  // The label of `id`; 0 (never a label) when absent.
  template <typename IdOf>
  std::uint64_t find(std::string_view id, const IdOf& id_of) const {
    if (size_ == 0) return 0;
    const std::uint64_t h = hash_of(id);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.label == 0) return 0;
      if (s.hash == h && id_of(s.label) == id) return s.label;
    }
  }
  // Maps `id` to `label` (label > 0). With `replace`, an existing mapping of `id` takes the new
  // label; without it, an existing mapping is left as it is and false is returned.
  template <typename IdOf>
  bool insert(std::string_view id, std::uint64_t label, const IdOf& id_of, bool replace) {
    if ((size_ + 1) * kLoadDen > capacity_ * kLoadNum) grow((size_ + 1) * 2);
    return insert_hashed(hash_of(id), id, label, id_of, replace);
  }
  // Maps each label that next_label() returns (each > 0, until it returns 0) to its id,
  // id_of(label), keeping the first label of an id seen twice: what insert(id_of(label), label,
  // id_of, false) does for each in turn, with room for `count` labels made first (a hint: more
  // still fit, growing as insert does) and the home slots of the next kAhead ids prefetched while
  // one is inserted. Returns 0, or the first label whose id was already mapped (to an earlier label
  // or before the call; the rest are still inserted).
  template <typename NextLabel, typename IdOf>
  std::uint64_t insert_new(NextLabel&& next_label, std::size_t count, const IdOf& id_of) {
    reserve(size_ + (count == 0 ? 1 : count));
    struct Ahead {
      std::uint64_t hash;
      std::uint64_t label;
    };
    Ahead ring[kAhead];
    std::size_t queued = 0;
    std::uint64_t duplicate = 0;
    auto put = [&](const Ahead& a) {
      if ((size_ + 1) * kLoadDen > capacity_ * kLoadNum) grow((size_ + 1) * 2);
      if (!insert_hashed(a.hash, id_of(a.label), a.label, id_of, false) && duplicate == 0) duplicate = a.label;
    };
    for (std::uint64_t label = next_label(); label != 0; label = next_label()) {
      const std::uint64_t h = hash_of(id_of(label));
      __builtin_prefetch(&slots_[h & mask_], 1);
      Ahead& slot = ring[queued % kAhead];
      if (queued >= kAhead) put(slot);
      slot = Ahead{h, label};
      ++queued;
    }
    const std::size_t first = queued > kAhead ? queued - kAhead : 0;
    for (std::size_t k = first; k < queued; ++k) put(ring[k % kAhead]);
    return duplicate;
  }
  // Removes `id`'s mapping; false when it had none.
  template <typename IdOf>
  bool erase(std::string_view id, const IdOf& id_of) {
    if (size_ == 0) return false;
    const std::uint64_t h = hash_of(id);
    std::size_t i = h & mask_;
    for (;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.label == 0) return false;
      if (s.hash == h && id_of(s.label) == id) break;
    }
    // Backward-shift deletion: later slots of the same probe run move up into the hole, so
    // lookups never need tombstones.
    for (std::size_t j = (i + 1) & mask_;; j = (j + 1) & mask_) {
      const Slot& s = slots_[j];
      if (s.label == 0) break;
      const std::size_t home = s.hash & mask_;
      // s may move to i when i lies cyclically in [home, j).
      if (((j - home) & mask_) >= ((j - i) & mask_)) {
        slots_[i] = s;
        i = j;
      }
    }
    slots_[i] = Slot{};
    --size_;
    return true;
  }
  // Room for `n` ids without growing.
  void reserve(std::size_t n);
  void clear() noexcept;
  std::size_t size() const noexcept { return size_; }
  // The table's own bytes (the ids stay in the docs).
  std::size_t memory_bytes() const noexcept { return capacity_ * sizeof(Slot); }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint64_t label = 0;  // 0: empty
  };
  struct Free {
    void operator()(Slot* p) const noexcept { std::free(p); }
  };
  // Grown past 7/10 full: linear probing stays short.
  static constexpr std::size_t kLoadNum = 7, kLoadDen = 10;
  // How many ids insert_new hashes ahead of the one it inserts (their slots' prefetches in flight).
  static constexpr std::size_t kAhead = 16;
  static std::uint64_t hash_of(std::string_view id) noexcept { return hash64(id.data(), id.size()); }
  // insert() with the id's hash known and the room made.
  template <typename IdOf>
  bool insert_hashed(std::uint64_t h, std::string_view id, std::uint64_t label, const IdOf& id_of, bool replace) {
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.label == 0) {
        s = Slot{h, label};
        ++size_;
        return true;
      }
      if (s.hash == h && id_of(s.label) == id) {
        if (!replace) return false;
        s.label = label;
        return true;
      }
    }
  }
  // Rehashes into a power of two of at least `min_slots` slots (from the stored hashes).
  void grow(std::size_t min_slots);

  std::unique_ptr<Slot[], Free> slots_;
  std::size_t capacity_ = 0;  // slots, a power of two (or 0)
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

}  // namespace shoal::node

// node/core/label_map.cpp: LabelMap's growth (label_map.hpp).
#include "node/core/label_map.hpp"

#include <bit>
#include <new>

#include "common/memory.hpp"

namespace shoal::node {

void LabelMap::reserve(std::size_t n) {
  const std::size_t need = (n * kLoadDen + kLoadNum - 1) / kLoadNum;
  if (need > capacity_) grow(need);
}

void LabelMap::clear() noexcept {
  slots_.reset();
  capacity_ = 0;
  mask_ = 0;
  size_ = 0;
}

void LabelMap::grow(std::size_t min_slots) {
  const std::size_t n = std::bit_ceil(min_slots < 16 ? std::size_t{16} : min_slots);
  if (n <= capacity_) return;
  // Zeroed by calloc: all slots empty. A large table is fresh zero pages from the kernel, so
  // nothing writes it twice (a std::vector of slots was memset first; D70).
  std::unique_ptr<Slot[], Free> fresh(static_cast<Slot*>(std::calloc(n, sizeof(Slot))));
  if (fresh == nullptr) throw std::bad_alloc();
  // Inserts touch the table at random: huge pages take its first touches from one fault per
  // 4 KiB to one per 2 MiB (a 1M-id table is 32 MiB).
  advise_huge_pages(fresh.get(), n * sizeof(Slot));
  std::unique_ptr<Slot[], Free> old = std::move(slots_);
  const std::size_t old_capacity = capacity_;
  slots_ = std::move(fresh);
  capacity_ = n;
  mask_ = n - 1;
  for (std::size_t k = 0; k < old_capacity; ++k) {
    const Slot& s = old[k];
    if (s.label == 0) continue;
    std::size_t i = s.hash & mask_;
    while (slots_[i].label != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

}  // namespace shoal::node

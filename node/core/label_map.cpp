// node/core/label_map.cpp: LabelMap's growth (label_map.hpp).
#include "node/core/label_map.hpp"

#include <bit>

namespace shoal::node {

void LabelMap::reserve(std::size_t n) {
  const std::size_t need = (n * kLoadDen + kLoadNum - 1) / kLoadNum;
  if (need > slots_.size()) grow(need);
}

void LabelMap::clear() noexcept {
  slots_ = std::vector<Slot>();
  mask_ = 0;
  size_ = 0;
}

void LabelMap::grow(std::size_t min_slots) {
  const std::size_t n = std::bit_ceil(min_slots < 16 ? std::size_t{16} : min_slots);
  if (n <= slots_.size()) return;
  std::vector<Slot> old(n);
  old.swap(slots_);
  mask_ = n - 1;
  for (const Slot& s : old) {
    if (s.label == 0) continue;
    std::size_t i = s.hash & mask_;
    while (slots_[i].label != 0) i = (i + 1) & mask_;
    slots_[i] = s;
  }
}

}  // namespace shoal::node

// node/core/doc_extras.cpp: the side table of docs' metadata and model tags (doc_extras.hpp).
#include "node/core/doc_extras.hpp"

#include <limits>
#include <utility>

#include "common/assert.hpp"

namespace shoal::node {

const Metadata& DocExtras::empty_metadata() noexcept {
  static const Metadata empty;
  return empty;
}

const std::string& DocExtras::empty_model() noexcept {
  static const std::string empty;
  return empty;
}

std::uint32_t DocExtras::set(std::uint32_t handle, Metadata&& metadata, std::string&& model) {
  if (metadata.fields.empty() && model.empty()) {
    release(handle);
    return kNone;
  }
  if (handle == kNone) {
    if (!free_.empty()) {
      handle = free_.back();
      free_.pop_back();
    } else {
      // One slot per doc at most, and a collection's labels are far below 2^32 docs in memory.
      SHOAL_ASSERT(slots_.size() < std::numeric_limits<std::uint32_t>::max());
      slots_.emplace_back();
      handle = static_cast<std::uint32_t>(slots_.size());
    }
  }
  Slot& s = slots_[handle - 1];
  s.metadata = std::move(metadata);
  s.model = std::move(model);
  return handle;
}

void DocExtras::release(std::uint32_t handle) {
  if (handle == kNone) return;
  Slot& s = slots_[handle - 1];
  s.metadata.fields.clear();
  s.metadata.fields.shrink_to_fit();
  s.model.clear();
  s.model.shrink_to_fit();
  free_.push_back(handle);
}

void DocExtras::clear() noexcept {
  slots_.clear();
  free_.clear();
}

}  // namespace shoal::node

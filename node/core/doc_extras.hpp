// node/core/doc_extras.hpp: the rare fields of a collection's docs (metadata and model tag), kept
// in a side table so that a doc without them stays small (D70).
//
// Role: Node::Collection keeps one Doc per label; most records carry neither metadata nor a model
// tag, yet a Doc holding both inline was 104 bytes (an empty vector and an empty string per doc),
// and a 1M-record open first-touched 104 MB for them. A doc now holds a 32-bit handle into this
// table, 0 when it has neither. Slots freed by `release` are reused (a free list), so the table
// stays as large as the most docs that had extras at once. The slots' numbers are never observed
// outside (nothing iterates the table), so their order does not affect determinism.
// Thread rules: a value; not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "node/core/record.hpp"

namespace shoal::node {

class DocExtras {
 public:
  // The handle of a doc with neither metadata nor model.
  static constexpr std::uint32_t kNone = 0;

  // The metadata under `handle` (an empty one for kNone).
  const Metadata& metadata(std::uint32_t handle) const noexcept {
    return handle == kNone ? empty_metadata() : slots_[handle - 1].metadata;
  }
  // The model tag under `handle` (empty for kNone).
  const std::string& model(std::uint32_t handle) const noexcept {
    return handle == kNone ? empty_model() : slots_[handle - 1].model;
  }
  // Stores `metadata` and `model` for a doc whose handle is `handle` and returns its new handle:
  // kNone when both are empty (the old slot, if any, is freed), else the old slot overwritten or a
  // new one taken.
  [[nodiscard]] std::uint32_t set(std::uint32_t handle, Metadata&& metadata, std::string&& model);
  // Frees `handle`'s slot (nothing for kNone); the caller forgets the handle.
  void release(std::uint32_t handle);
  void clear() noexcept;
  // Slots holding extras now.
  std::size_t size() const noexcept { return slots_.size() - free_.size(); }

 private:
  struct Slot {
    Metadata metadata;
    std::string model;
  };
  static const Metadata& empty_metadata() noexcept;
  static const std::string& empty_model() noexcept;

  std::vector<Slot> slots_;           // handle h is slots_[h - 1]
  std::vector<std::uint32_t> free_;  // freed handles, reused last in first out
};

}  // namespace shoal::node

// node/core/snapshot_store.hpp: where a node's index snapshots (and open states) live, behind an interface, so that
// the core never touches a file (node/runtime/ keeps them as files in the data directory; the
// simulator keeps none).
// Thread rules: called by the node's owner only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.hpp"
#include "index/hnsw_index.hpp"

namespace shoal::node {

// The bytes of an open state file, and whatever keeps them readable (a string, a read-only
// memory map of the file, D70) until the value is dropped.
class StateBytes {
 public:
  StateBytes() = default;
  explicit StateBytes(std::string bytes)
      : owner_(std::make_shared<const std::string>(std::move(bytes))),
        view_(*static_cast<const std::string*>(owner_.get())) {}
  // `view` stays valid while `owner` lives.
  StateBytes(std::string_view view, std::shared_ptr<const void> owner) : owner_(std::move(owner)), view_(view) {}
  std::string_view view() const noexcept { return view_; }

 private:
  std::shared_ptr<const void> owner_;
  std::string_view view_;
};

class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;
  // The snapshot of collection `cid`, if one exists: nullopt when none; an error when one exists
  // but cannot be used (the node then rebuilds and reports why). `floats` as for
  // index::HnswIndex::load_snapshot (the collection's vectors in the store; may be null), and
  // `spare` (room for that many more vectors).
  [[nodiscard]] virtual Result<std::optional<index::HnswIndex::Loaded>> load(
      std::uint32_t cid, const index::IndexParams& expected, std::function<void(std::function<void()>)> executor,
      const index::FloatSource* floats, std::size_t spare) = 0;
  // May start loading the snapshot of collection `cid` in the background, for the load() with the
  // same arguments that follows (open calls it before reading the open state, so that the two
  // files are read at once, D64). The default loads nothing ahead. Each prefetch must be followed
  // by that load(), which returns the prefetched result.
  virtual void prefetch(std::uint32_t cid, const index::IndexParams& expected,
                        std::function<void(std::function<void()>)> executor, const index::FloatSource* floats,
                        std::size_t spare) {
    (void)cid, (void)expected, (void)executor, (void)floats, (void)spare;
  }
  // Replaces the snapshot of collection `cid` (atomically: a crash leaves the old or the new).
  [[nodiscard]] virtual Status save(std::uint32_t cid, const index::HnswIndex& index, std::uint64_t covered_position) = 0;
  // The open state of collection `cid` (format::OpenStateWriter's bytes: what opening needs
  // besides the index, so that it reads no record; docs/node-format.md, "Open state files"), if
  // one was saved: nullopt when none; an error when it cannot be read.
  [[nodiscard]] virtual Result<std::optional<StateBytes>> load_state(std::uint32_t cid) = 0;
  // Replaces the open state of collection `cid` (atomically: a crash leaves the old or the new).
  [[nodiscard]] virtual Status save_state(std::uint32_t cid, std::string_view bytes) = 0;
  // Removes the snapshot and the open state of collection `cid`, if any.
  virtual void remove(std::uint32_t cid) noexcept = 0;
};

}  // namespace shoal::node

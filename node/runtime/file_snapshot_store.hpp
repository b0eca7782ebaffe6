// node/runtime/file_snapshot_store.hpp: index snapshots as files in a directory, one per
// collection (`collection-<id>.hnsw`, format: docs/index.md); written atomically and mode 0600 by
// index::HnswIndex::save_snapshot. Beside each, the collection's open state
// (`collection-<id>.state`, docs/node-format.md), written atomically and mode 0600 as well.
// Thread rules: as its node (called by the node's owner). prefetch() loads on a thread of its
// own, joined by the load() that takes its result (or by the destructor).
#pragma once

#include <future>
#include <map>
#include <string>

#include "node/core/snapshot_store.hpp"

namespace shoal::node {

class FileSnapshotStore final : public SnapshotStore {
 public:
  explicit FileSnapshotStore(std::string dir) : dir_(std::move(dir)) {}
  ~FileSnapshotStore() override;
  FileSnapshotStore(const FileSnapshotStore&) = delete;
  FileSnapshotStore& operator=(const FileSnapshotStore&) = delete;
  void prefetch(std::uint32_t cid, const index::IndexParams& expected,
                std::function<void(std::function<void()>)> executor, const index::FloatSource* floats,
                std::size_t spare) override;
  Result<std::optional<index::HnswIndex::Loaded>> load(std::uint32_t cid, const index::IndexParams& expected,
                                                       std::function<void(std::function<void()>)> executor,
                                                       const index::FloatSource* floats, std::size_t spare) override;
  Status save(std::uint32_t cid, const index::HnswIndex& index, std::uint64_t covered_position) override;
  Result<std::optional<StateBytes>> load_state(std::uint32_t cid) override;
  Status save_state(std::uint32_t cid, std::string_view bytes) override;
  void remove(std::uint32_t cid) noexcept override;
  std::string path(std::uint32_t cid) const;
  std::string state_path(std::uint32_t cid) const;

 private:
  using LoadResult = Result<std::optional<index::HnswIndex::Loaded>>;
  LoadResult load_now(std::uint32_t cid, const index::IndexParams& expected,
                      std::function<void(std::function<void()>)> executor, const index::FloatSource* floats,
                      std::size_t spare) const;
  // Loads prefetch() started, by collection, with what they were started for.
  struct Pending {
    index::IndexParams expected;
    const index::FloatSource* floats = nullptr;
    std::size_t spare = 0;
    std::future<LoadResult> result;
  };
  std::map<std::uint32_t, Pending> pending_;
  std::string dir_;
};

}  // namespace shoal::node

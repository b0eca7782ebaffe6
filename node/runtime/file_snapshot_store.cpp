#include "node/runtime/file_snapshot_store.hpp"

#include <filesystem>

namespace shoal::node {

std::string FileSnapshotStore::path(std::uint32_t cid) const {
  return dir_ + "/collection-" + std::to_string(cid) + ".hnsw";
}

Result<std::optional<index::HnswIndex::Loaded>> FileSnapshotStore::load(
    std::uint32_t cid, const index::IndexParams& expected, std::function<void(std::function<void()>)> executor,
    const index::FloatSource* floats) {
  const std::string p = path(cid);
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) return std::optional<index::HnswIndex::Loaded>();
  SHOAL_ASSIGN_OR_RETURN(auto loaded, index::HnswIndex::load_snapshot(p, expected, std::move(executor), floats));
  return std::optional<index::HnswIndex::Loaded>(std::move(loaded));
}

Status FileSnapshotStore::save(std::uint32_t cid, const index::HnswIndex& index, std::uint64_t covered_position) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return Status(Code::kIo, ec.message(), dir_);
  return index.save_snapshot(path(cid), covered_position);
}

void FileSnapshotStore::remove(std::uint32_t cid) noexcept {
  std::error_code ec;
  std::filesystem::remove(path(cid), ec);
}

}  // namespace shoal::node

#include "node/runtime/file_snapshot_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/file_io.hpp"
#include "common/log.hpp"

namespace shoal::node {

std::string FileSnapshotStore::path(std::uint32_t cid) const {
  return dir_ + "/collection-" + std::to_string(cid) + ".hnsw";
}

Result<std::optional<index::HnswIndex::Loaded>> FileSnapshotStore::load(
    std::uint32_t cid, const index::IndexParams& expected, std::function<void(std::function<void()>)> executor,
    const index::FloatSource* floats, std::size_t spare) {
  const std::string p = path(cid);
  std::error_code ec;
  if (!std::filesystem::exists(p, ec)) return std::optional<index::HnswIndex::Loaded>();
  SHOAL_ASSIGN_OR_RETURN(auto loaded, index::HnswIndex::load_snapshot(p, expected, std::move(executor), floats, spare));
  return std::optional<index::HnswIndex::Loaded>(std::move(loaded));
}

Status FileSnapshotStore::save(std::uint32_t cid, const index::HnswIndex& index, std::uint64_t covered_position) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return Status(Code::kIo, ec.message(), dir_);
  return index.save_snapshot(path(cid), covered_position);
}

std::string FileSnapshotStore::state_path(std::uint32_t cid) const {
  return dir_ + "/collection-" + std::to_string(cid) + ".state";
}

Result<std::optional<std::string>> FileSnapshotStore::load_state(std::uint32_t cid) {
  const std::string p = state_path(cid);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return Status(Code::kIo, str_cat("cannot open the open state: ", std::strerror(errno)), p);
  }
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0) out.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int e = errno;
      ::close(fd);
      return Status(Code::kIo, str_cat("cannot read the open state: ", std::strerror(e)), p);
    }
    if (r == 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fd);
  return std::optional<std::string>(std::move(out));
}

Status FileSnapshotStore::save_state(std::uint32_t cid, std::string_view bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return Status(Code::kIo, ec.message(), dir_);
  return write_file_atomic(state_path(cid), bytes);
}

void FileSnapshotStore::remove(std::uint32_t cid) noexcept {
  std::error_code ec;
  std::filesystem::remove(path(cid), ec);
  std::filesystem::remove(state_path(cid), ec);
}

}  // namespace shoal::node

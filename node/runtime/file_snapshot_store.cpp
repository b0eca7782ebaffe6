#include "node/runtime/file_snapshot_store.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/file_io.hpp"
#include "common/log.hpp"

namespace shoal::node {

std::string FileSnapshotStore::path(std::uint32_t cid) const {
  return dir_ + "/collection-" + std::to_string(cid) + ".hnsw";
}

FileSnapshotStore::~FileSnapshotStore() {
  // A prefetch nobody took (open failed first): wait for its thread, then drop the index.
  for (auto& [cid, p] : pending_) {
    if (p.result.valid()) p.result.wait();
  }
}

void FileSnapshotStore::prefetch(std::uint32_t cid, const index::IndexParams& expected,
                                 std::function<void(std::function<void()>)> executor,
                                 const index::FloatSource* floats, std::size_t spare) {
  if (auto it = pending_.find(cid); it != pending_.end()) {
    if (it->second.result.valid()) it->second.result.wait();
    pending_.erase(it);
  }
  Pending p{expected, floats, spare, {}};
  try {
    p.result = std::async(std::launch::async, [this, cid, expected, executor = std::move(executor), floats,
                                               spare]() mutable {
      return load_now(cid, expected, std::move(executor), floats, spare);
    });
  } catch (const std::system_error&) {
    return;  // no thread to be had: load() reads the file itself
  }
  pending_.emplace(cid, std::move(p));
}

Result<std::optional<index::HnswIndex::Loaded>> FileSnapshotStore::load(
    std::uint32_t cid, const index::IndexParams& expected, std::function<void(std::function<void()>)> executor,
    const index::FloatSource* floats, std::size_t spare) {
  if (auto it = pending_.find(cid); it != pending_.end()) {
    Pending p = std::move(it->second);
    pending_.erase(it);
    LoadResult got = p.result.get();
    // The prefetch was for the same collection shape, source and room (the node passes the same
    // values): its result stands. Otherwise it is dropped and the file read again.
    const index::IndexParams& e = p.expected;
    if (e.dimension == expected.dimension && e.metric == expected.metric && e.m == expected.m &&
        e.ef_construction == expected.ef_construction && e.quantization == expected.quantization &&
        e.quant_min == expected.quant_min && e.quant_max == expected.quant_max &&
        e.keep_float_vectors == expected.keep_float_vectors && p.floats == floats && p.spare >= spare) {
      return got;
    }
  }
  return load_now(cid, expected, std::move(executor), floats, spare);
}

FileSnapshotStore::LoadResult FileSnapshotStore::load_now(std::uint32_t cid, const index::IndexParams& expected,
                                                          std::function<void(std::function<void()>)> executor,
                                                          const index::FloatSource* floats, std::size_t spare) const {
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

Result<std::optional<StateBytes>> FileSnapshotStore::load_state(std::uint32_t cid) {
  const std::string p = state_path(cid);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<StateBytes>();
    return Status(Code::kIo, str_cat("cannot open the open state: ", std::strerror(errno)), p);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return Status(Code::kIo, str_cat("cannot read the open state: ", std::strerror(e)), p);
  }
  const auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return std::optional<StateBytes>(StateBytes(std::string()));
  }
  // Mapped read-only, not read into memory: the open reads the page cache in place, with no copy
  // and no fresh pages to zero (a 1M-record state is 37 MiB, D70); MAP_POPULATE maps it in one
  // call instead of a fault per few pages. The file is only ever replaced by a rename (never
  // truncated in place), so the mapping stays whole while the open reads it.
  void* at = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  const int e = errno;
  ::close(fd);
  if (at == MAP_FAILED) return Status(Code::kIo, str_cat("cannot map the open state: ", std::strerror(e)), p);
  std::shared_ptr<const void> mapping(at, [size](const void* m) { ::munmap(const_cast<void*>(m), size); });
  return std::optional<StateBytes>(StateBytes(std::string_view(static_cast<const char*>(at), size), std::move(mapping)));
}

Status FileSnapshotStore::save_state(std::uint32_t cid, std::string_view bytes) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return Status(Code::kIo, ec.message(), dir_);
  return write_file_atomic(state_path(cid), bytes);
}

void FileSnapshotStore::remove(std::uint32_t cid) noexcept {
  if (auto it = pending_.find(cid); it != pending_.end()) {
    if (it->second.result.valid()) it->second.result.wait();
    pending_.erase(it);
  }
  std::error_code ec;
  std::filesystem::remove(path(cid), ec);
  std::filesystem::remove(state_path(cid), ec);
}

}  // namespace shoal::node

#include "node/core/data_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/log.hpp"
#include "node/store/lmdb_store.hpp"

namespace shoal::node {

OpenDataDir::OpenDataDir(int lock_fd, std::unique_ptr<store::Store> store) noexcept
    : lock_fd_(lock_fd), store_(std::move(store)) {}

OpenDataDir::~OpenDataDir() {
  node_.reset();
  store_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status OpenDataDir::open_node(NodeOptions options) {
  SHOAL_ASSIGN_OR_RETURN(node_, Node::open(*store_, std::move(options)));
  return {};
}

Result<std::unique_ptr<OpenDataDir>> open_data_dir(const std::string& path, DataDirOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status(Code::kIo, str_cat("cannot create data directory: ", ec.message()), path);
  const std::string lock_path = path + "/LOCK";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status(Code::kIo, str_cat("cannot open lock file: ", std::strerror(errno)), lock_path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Status(Code::kUnavailable, "the data directory is open in another process", path);
    }
    return Status(Code::kIo, str_cat("cannot lock data directory: ", std::strerror(err)), path);
  }
  store::LmdbStoreOptions so;
  so.path = path + "/store";
  so.map_size_max_bytes = options.max_store_bytes;
  auto store = store::LmdbStore::open(so);
  if (!store.ok()) {
    ::close(fd);
    return store.status();
  }
  options.node.snapshot_dir = path + "/snapshots";
  auto dir = std::make_unique<OpenDataDir>(fd, std::move(store).value());
  SHOAL_RETURN_IF_ERROR(dir->open_node(std::move(options.node)));
  return dir;
}

}  // namespace shoal::node

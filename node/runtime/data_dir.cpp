#include "node/runtime/data_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <random>

#include "common/log.hpp"
#include "node/store/lmdb_store.hpp"

namespace shoal::node {

OpenDataDir::OpenDataDir(std::string path, int lock_fd, std::unique_ptr<store::Store> store) noexcept
    : lock_fd_(lock_fd), store_(std::move(store)), snapshots_(path + "/snapshots") {}

OpenDataDir::~OpenDataDir() {
  if (node_) {
    Status s = node_->save_snapshots();
    if (!s.ok()) SHOAL_LOG(logger_, kWarn, "node", "snapshot at close failed: ", s.to_string());
  }
  node_.reset();
  store_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status OpenDataDir::open_node(NodeOptions options) {
  logger_ = options.logger;
  options.snapshots = &snapshots_;
  if (!options.wall_clock) options.wall_clock = [] { return now_wall(); };
  if (!options.identity) {
    // Used only when the store has no identity yet (a new directory): 16 bytes from the OS.
    crdt::ReplicaId id;
    std::random_device rd;
    for (auto& b : id.identity) b = static_cast<std::uint8_t>(rd());
    options.identity = id;
  }
  SHOAL_ASSIGN_OR_RETURN(auto node, Node::open(*store_, std::move(options)));
  node_ = std::make_unique<SharedNode>(std::move(node));
  return {};
}

namespace {

// The message for a refused open: who holds the lock, as far as the LOCK file says. The holder
// writes its PID there right after taking the lock, so the file can be briefly empty (the
// holder is still opening) or name a holder from a build that did not write it.
std::string describe_holder(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  long long pid = 0;
  const char* end = buf + (n > 0 ? n : 0);
  auto [p, ec] = std::from_chars(buf, end, pid);
  if (n <= 0 || ec != std::errc() || pid <= 0 || (p != end && *p != '\n')) {
    return "the data directory is already open (its LOCK file is held; the holder's PID is not "
           "recorded)";
  }
  if (pid == static_cast<long long>(::getpid())) {
    return str_cat("the data directory is already open in this process (PID ", pid,
                   ") by another handle; close that handle first or share it");
  }
  return str_cat("the data directory is already open in another process (PID ", pid, ")");
}

}  // namespace

Result<std::unique_ptr<OpenDataDir>> open_data_dir(const std::string& path, DataDirOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status(Code::kIo, str_cat("cannot create data directory: ", ec.message()), path);
  const std::string lock_path = path + "/LOCK";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status(Code::kIo, str_cat("cannot open lock file: ", std::strerror(errno)), lock_path);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      Status held = Status(Code::kUnavailable, describe_holder(fd), path);
      ::close(fd);
      return held;
    }
    ::close(fd);
    return Status(Code::kIo, str_cat("cannot lock data directory: ", std::strerror(err)), path);
  }
  // Ours now: record our PID so that a refused opener can name the holder. A failure here only
  // costs that message, never the open.
  const std::string pid_line = str_cat(::getpid(), "\n");
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, pid_line.data(), pid_line.size(), 0) != static_cast<ssize_t>(pid_line.size())) {
    SHOAL_LOG(options.node.logger, kWarn, "data_dir", "cannot write the PID into ", lock_path, ": ",
              std::strerror(errno));
  }
  store::LmdbStoreOptions so;
  so.path = path + "/store";
  so.map_size_max_bytes = options.max_store_bytes;
  auto store = store::LmdbStore::open(so);
  if (!store.ok()) {
    ::close(fd);
    return store.status();
  }
  auto dir = std::make_unique<OpenDataDir>(path, fd, std::move(store).value());
  SHOAL_RETURN_IF_ERROR(dir->open_node(std::move(options.node)));
  return dir;
}

}  // namespace shoal::node

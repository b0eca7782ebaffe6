#include "common/file_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.hpp"

namespace shoal {

bool write_all(int fd, const void* data, std::size_t size) noexcept {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = ::write(fd, p, size);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    size -= static_cast<std::size_t>(w);
  }
  return true;
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status fsync_dir(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status(Code::kIo, str_cat("cannot open directory: ", std::strerror(errno)), dir);
  const int r = ::fsync(dfd);
  const int err = errno;
  ::close(dfd);
  if (r != 0) return Status(Code::kIo, str_cat("cannot sync directory: ", std::strerror(err)), dir);
  return {};
}

Status write_file_atomic(const std::string& path, std::string_view bytes, unsigned mode) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return Status(Code::kIo, str_cat("cannot create: ", std::strerror(errno)), tmp);
  // The umask can only narrow the mode; a file that existed keeps its old one: set it.
  const bool ok = ::fchmod(fd, static_cast<mode_t>(mode)) == 0 && write_all(fd, bytes.data(), bytes.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return Status(Code::kIo, str_cat("cannot write: ", std::strerror(err)), tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status(Code::kIo, str_cat("cannot rename into place: ", std::strerror(errno)), path);
  }
  return fsync_dir(parent_dir(path));
}

}  // namespace shoal

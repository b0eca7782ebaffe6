// tests/store/io_shim.cpp: the interposer of io_shim.hpp (see there). Built as its own shared
// library and linked first into the durability test, so these definitions shadow libc's.
#undef _FORTIFY_SOURCE  // the interposers must be plain definitions, not fortified wrappers
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "io_shim.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <sstream>

namespace shoal::io_shim {
namespace {

// The next definition of `name` (libc's, or a sanitizer's interceptor that forwards to libc).
template <typename F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

struct State {
  std::string path;            // the watched file; empty: watching nothing
  std::map<int, int> fds;      // descriptor -> open flags, for descriptors of the watched file
  std::string cache;
  std::string durable;
  std::map<std::uint64_t, std::uint64_t> unsynced;  // [begin, end) ranges, disjoint, merged
  std::vector<Event> events;
};

// Constant-initialised, so calls made before static constructors run are safe.
std::mutex g_mu;
State* g_state = nullptr;

bool is_dsync(int flags) { return (flags & O_DSYNC) != 0 || (flags & O_SYNC) == O_SYNC; }

std::uint64_t unsynced_total(const State& s) {
  std::uint64_t n = 0;
  for (const auto& [b, e] : s.unsynced) n += e - b;
  return n;
}

void add_range(State& s, std::uint64_t b, std::uint64_t e) {
  if (b >= e) return;
  auto it = s.unsynced.upper_bound(b);
  if (it != s.unsynced.begin()) {
    auto prev = std::prev(it);
    if (prev->second >= b) {
      b = prev->first;
      e = std::max(e, prev->second);
      it = s.unsynced.erase(prev);
    }
  }
  while (it != s.unsynced.end() && it->first <= e) {
    e = std::max(e, it->second);
    it = s.unsynced.erase(it);
  }
  s.unsynced.emplace(b, e);
}

void remove_range(State& s, std::uint64_t b, std::uint64_t e) {
  if (b >= e) return;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> keep;
  for (auto it = s.unsynced.begin(); it != s.unsynced.end();) {
    if (it->second <= b || it->first >= e) {
      ++it;
      continue;
    }
    if (it->first < b) keep.emplace_back(it->first, b);
    if (it->second > e) keep.emplace_back(e, it->second);
    it = s.unsynced.erase(it);
  }
  for (const auto& [kb, ke] : keep) s.unsynced.emplace(kb, ke);
}

void put_bytes(std::string& image, std::uint64_t off, const char* data, std::uint64_t len) {
  if (image.size() < off + len) image.resize(off + len, '\0');
  std::memcpy(image.data() + off, data, len);
}

// Records a write of `len` bytes of `data` at `off` through `fd` (already done by the kernel).
void record_write(State& s, int fd, int flags, std::uint64_t off, const char* data, std::uint64_t len) {
  Event ev;
  ev.kind = Kind::kWrite;
  ev.fd = fd;
  ev.open_flags = flags;
  ev.dsync = is_dsync(flags);
  ev.offset = off;
  ev.length = len;
  ev.unsynced_before = unsynced_total(s);
  s.events.push_back(ev);
  put_bytes(s.cache, off, data, len);
  if (ev.dsync) {
    put_bytes(s.durable, off, data, len);
    remove_range(s, off, off + len);
  } else {
    add_range(s, off, off + len);
  }
}

// The descriptor's flags if it is one of the watched file's; -1 else. Caller holds g_mu.
int watched_flags(int fd) {
  if (g_state == nullptr) return -1;
  auto it = g_state->fds.find(fd);
  return it == g_state->fds.end() ? -1 : it->second;
}

std::string resolve(int dirfd, const char* path) {
  if (path == nullptr) return {};
  if (path[0] == '/' || dirfd == AT_FDCWD) {
    if (path[0] == '/') return path;
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd) == nullptr) return path;
    return std::string(cwd) + "/" + path;
  }
  return path;  // relative to another directory: LMDB never does this
}

void after_open(int fd, const std::string& path, int flags) {
  if (fd < 0) return;
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_state == nullptr || g_state->path.empty() || path != g_state->path) {
    if (g_state != nullptr) g_state->fds.erase(fd);  // a reused number of a closed watched fd
    return;
  }
  g_state->fds[fd] = flags;
  Event ev;
  ev.kind = Kind::kOpen;
  ev.fd = fd;
  ev.open_flags = flags;
  ev.dsync = is_dsync(flags);
  g_state->events.push_back(ev);
}

void record_sync(int fd, Kind kind) {
  std::lock_guard<std::mutex> lk(g_mu);
  const int flags = watched_flags(fd);
  if (flags < 0) return;
  Event ev;
  ev.kind = kind;
  ev.fd = fd;
  ev.open_flags = flags;
  g_state->events.push_back(ev);
  g_state->durable = g_state->cache;
  g_state->unsynced.clear();
}

}  // namespace

void watch(const std::string& path) {
  std::string content;
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::ostringstream ss;
      ss << in.rdbuf();
      content = ss.str();
    }
  }
  std::lock_guard<std::mutex> lk(g_mu);
  delete g_state;
  g_state = new State;
  g_state->path = path;
  g_state->cache = content;
  g_state->durable = content;
}

void unwatch() {
  std::lock_guard<std::mutex> lk(g_mu);
  delete g_state;
  g_state = nullptr;
}

std::size_t event_count() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_state == nullptr ? 0 : g_state->events.size();
}

std::vector<Event> events_since(std::size_t mark) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_state == nullptr || mark >= g_state->events.size()) return {};
  return std::vector<Event>(g_state->events.begin() + static_cast<std::ptrdiff_t>(mark), g_state->events.end());
}

std::uint64_t unsynced_bytes() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_state == nullptr ? 0 : unsynced_total(*g_state);
}

std::string durable_image() {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_state == nullptr ? std::string() : g_state->durable;
}

}  // namespace shoal::io_shim

using namespace shoal::io_shim;

extern "C" {

int open(const char* path, int flags, ...) {
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list ap;
    va_start(ap, flags);
    mode = static_cast<mode_t>(va_arg(ap, int));
    va_end(ap);
  }
  static auto real = next<int (*)(const char*, int, ...)>("open");
  const int fd = real(path, flags, mode);
  after_open(fd, resolve(AT_FDCWD, path), flags);
  return fd;
}

int open64(const char* path, int flags, ...) {
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list ap;
    va_start(ap, flags);
    mode = static_cast<mode_t>(va_arg(ap, int));
    va_end(ap);
  }
  static auto real = next<int (*)(const char*, int, ...)>("open64");
  const int fd = real(path, flags, mode);
  after_open(fd, resolve(AT_FDCWD, path), flags);
  return fd;
}

int openat(int dirfd, const char* path, int flags, ...) {
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list ap;
    va_start(ap, flags);
    mode = static_cast<mode_t>(va_arg(ap, int));
    va_end(ap);
  }
  static auto real = next<int (*)(int, const char*, int, ...)>("openat");
  const int fd = real(dirfd, path, flags, mode);
  after_open(fd, resolve(dirfd, path), flags);
  return fd;
}

int close(int fd) {
  static auto real = next<int (*)(int)>("close");
  {
    std::lock_guard<std::mutex> lk(g_mu);
    if (watched_flags(fd) >= 0) {
      Event ev;
      ev.kind = Kind::kClose;
      ev.fd = fd;
      g_state->events.push_back(ev);
      g_state->fds.erase(fd);
    }
  }
  return real(fd);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  static auto real = next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  const ssize_t w = real(fd, buf, n, off);
  if (w > 0) {
    std::lock_guard<std::mutex> lk(g_mu);
    const int flags = watched_flags(fd);
    if (flags >= 0) record_write(*g_state, fd, flags, static_cast<std::uint64_t>(off), static_cast<const char*>(buf), static_cast<std::uint64_t>(w));
  }
  return w;
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
  static auto real = next<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
  const ssize_t w = real(fd, buf, n, off);
  if (w > 0) {
    std::lock_guard<std::mutex> lk(g_mu);
    const int flags = watched_flags(fd);
    if (flags >= 0) record_write(*g_state, fd, flags, static_cast<std::uint64_t>(off), static_cast<const char*>(buf), static_cast<std::uint64_t>(w));
  }
  return w;
}

ssize_t write(int fd, const void* buf, size_t n) {
  static auto real = next<ssize_t (*)(int, const void*, size_t)>("write");
  int flags = -1;
  off_t at = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    flags = watched_flags(fd);
  }
  if (flags >= 0) at = ::lseek(fd, 0, SEEK_CUR);
  const ssize_t w = real(fd, buf, n);
  if (w > 0 && flags >= 0) {
    std::lock_guard<std::mutex> lk(g_mu);
    if (g_state != nullptr) record_write(*g_state, fd, flags, static_cast<std::uint64_t>(at), static_cast<const char*>(buf), static_cast<std::uint64_t>(w));
  }
  return w;
}

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  static auto real = next<ssize_t (*)(int, const struct iovec*, int)>("writev");
  int flags = -1;
  off_t at = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    flags = watched_flags(fd);
  }
  if (flags >= 0) at = ::lseek(fd, 0, SEEK_CUR);
  const ssize_t w = real(fd, iov, cnt);
  if (w > 0 && flags >= 0) {
    std::string joined;
    for (int i = 0; i < cnt && joined.size() < static_cast<std::size_t>(w); ++i) {
      joined.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    }
    joined.resize(static_cast<std::size_t>(w));
    std::lock_guard<std::mutex> lk(g_mu);
    if (g_state != nullptr) record_write(*g_state, fd, flags, static_cast<std::uint64_t>(at), joined.data(), joined.size());
  }
  return w;
}

int fsync(int fd) {
  static auto real = next<int (*)(int)>("fsync");
  const int rc = real(fd);
  if (rc == 0) record_sync(fd, Kind::kSync);
  return rc;
}

int fdatasync(int fd) {
  static auto real = next<int (*)(int)>("fdatasync");
  const int rc = real(fd);
  if (rc == 0) record_sync(fd, Kind::kSync);
  return rc;
}

int msync(void* addr, size_t len, int flags) {
  static auto real = next<int (*)(void*, size_t, int)>("msync");
  const int rc = real(addr, len, flags);
  std::lock_guard<std::mutex> lk(g_mu);
  if (rc == 0 && g_state != nullptr && !g_state->path.empty()) {
    Event ev;
    ev.kind = Kind::kMsync;
    ev.length = len;
    g_state->events.push_back(ev);
  }
  return rc;
}

int ftruncate(int fd, off_t size) {
  static auto real = next<int (*)(int, off_t)>("ftruncate");
  const int rc = real(fd, size);
  if (rc == 0) {
    std::lock_guard<std::mutex> lk(g_mu);
    if (watched_flags(fd) >= 0) {
      Event ev;
      ev.kind = Kind::kTruncate;
      ev.fd = fd;
      ev.offset = static_cast<std::uint64_t>(size);
      g_state->events.push_back(ev);
      const std::uint64_t old = g_state->cache.size();
      g_state->cache.resize(static_cast<std::size_t>(size), '\0');
      if (static_cast<std::uint64_t>(size) > old) add_range(*g_state, old, static_cast<std::uint64_t>(size));
    }
  }
  return rc;
}

}  // extern "C"

#include "node/runtime/data_dir.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2 (glibc 2.28+, _GNU_SOURCE)
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "common/file_io.hpp"
#include "common/hex.hpp"
#include "common/log.hpp"
#include "node/core/node_format.hpp"
#include "node/store/lmdb_store.hpp"

namespace shoal::node {

OpenDataDir::OpenDataDir(std::string path, int lock_fd, std::unique_ptr<store::Store> store) noexcept
    : path_(path), lock_fd_(lock_fd), store_(std::move(store)), snapshots_(path + "/snapshots") {}

OpenDataDir::~OpenDataDir() {
  if (node_) {
    // Close in O(changes) (D65): the index thread stops mid-slice instead of draining the queue;
    // save_snapshots applies a collection's queue only if it writes that snapshot.
    node_->stop_index();
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
  // Index upkeep off the acknowledgement path (SharedNode's index thread), unless asked.
  if (options.index_queue_max == 0) options.index_queue_max = kDefaultIndexQueueMax;
  if (!options.identity) {
    // Used only when the store has no identity yet (a new directory): 16 bytes from the OS.
    crdt::ReplicaId id;
    std::random_device rd;
    for (auto& b : id.identity) b = static_cast<std::uint8_t>(rd());
    options.identity = id;
  }
  if (!options.entropy) {
    // New incarnations take a random step (docs/crdt.md, "Incarnations"): bits from the OS.
    options.entropy = [] {
      std::random_device rd;
      return (std::uint64_t{rd()} << 32) | rd();
    };
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

// --- The fingerprint (docs/node-format.md, "FINGERPRINT") ---

constexpr std::string_view kFingerprintMagic = "shoal-fingerprint 1";

// Where a data directory lives. Two opens of one directory that was not copied see the same
// place; a copy (`cp -a`, a restore, a move across filesystems or machines) sees another.
struct Place {
  std::string machine;          // the machine id, or "host:<hostname>" without one
  std::uint64_t filesystem = 0;  // statvfs f_fsid (from the filesystem's UUID), or st_dev
  std::uint64_t store_inode = 0;
  std::uint64_t data_inode = 0;  // store/data.mdb: LMDB writes it in place for its whole life
  friend bool operator==(const Place&, const Place&) = default;
};

struct Recorded {
  Place place;
  crdt::ReplicaId replica;
};

std::string first_line_of(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  return line;
}

std::string machine_id() {
  for (const char* p : {"/etc/machine-id", "/var/lib/dbus/machine-id"}) {
    if (std::string id = first_line_of(p); !id.empty()) return id;
  }
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') return str_cat("host:", host);
  return "unknown";
}

// Statuses: kIo (names the path) when the store directory or its data file cannot be examined.
Result<Place> place_of(const std::string& dir, const std::optional<std::string>& machine_override) {
  Place p;
  p.machine = machine_override ? *machine_override : machine_id();
  const std::string store_dir = dir + "/store";
  const std::string data_file = store_dir + "/data.mdb";
  struct stat st {};
  if (::stat(store_dir.c_str(), &st) != 0) {
    return Status(Code::kIo, str_cat("cannot stat the store directory: ", std::strerror(errno)), store_dir);
  }
  p.store_inode = st.st_ino;
  struct statvfs vfs {};
  p.filesystem = (::statvfs(store_dir.c_str(), &vfs) == 0 && vfs.f_fsid != 0) ? vfs.f_fsid : st.st_dev;
  if (::stat(data_file.c_str(), &st) != 0) {
    return Status(Code::kIo, str_cat("cannot stat the store's data file: ", std::strerror(errno)), data_file);
  }
  p.data_inode = st.st_ino;
  return p;
}

std::string render(const Recorded& r) {
  return str_cat(kFingerprintMagic, "\nmachine ", r.place.machine, "\nfilesystem ", r.place.filesystem,
                 "\nstore-inode ", r.place.store_inode, "\ndata-inode ", r.place.data_inode, "\nreplica ",
                 common::to_hex(r.replica.encode()), "\n");
}

// nullopt when the file is absent or is not a fingerprint this build reads (both mean: no
// trustworthy record, so the caller takes a new incarnation).
std::optional<Recorded> read_fingerprint(const std::string& file) {
  std::ifstream in(file);
  if (!in) return std::nullopt;
  std::string line;
  if (!std::getline(in, line) || line != kFingerprintMagic) return std::nullopt;
  Recorded r;
  int fields = 0;
  while (std::getline(in, line)) {
    const auto sp = line.find(' ');
    if (sp == std::string::npos) return std::nullopt;
    const std::string key = line.substr(0, sp);
    const std::string value = line.substr(sp + 1);
    auto number = [&](std::uint64_t& out) {
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
      return ec == std::errc() && p == value.data() + value.size();
    };
    bool ok = true;
    if (key == "machine") {
      r.place.machine = value;
    } else if (key == "filesystem") {
      ok = number(r.place.filesystem);
    } else if (key == "store-inode") {
      ok = number(r.place.store_inode);
    } else if (key == "data-inode") {
      ok = number(r.place.data_inode);
    } else if (key == "replica") {
      auto bytes = common::from_hex(value);
      ok = bytes && crdt::ReplicaId::decode(*bytes, r.replica);
    } else {
      ok = false;
    }
    if (!ok) return std::nullopt;
    ++fields;
  }
  if (fields != 5) return std::nullopt;
  return r;
}

// Writes FINGERPRINT atomically, mode 0600 (a lost rename only costs one more renewal).
Status write_fingerprint(const std::string& dir, const Recorded& r) {
  return write_file_atomic(dir + "/FINGERPRINT", render(r));
}

std::string describe_move(const Place& was, const Place& now) {
  std::string out;
  auto add = [&](std::string_view what, const auto& a, const auto& b) {
    if (a != b) out += str_cat(out.empty() ? "" : ", ", what, " ", a, " -> ", b);
  };
  add("machine", was.machine, now.machine);
  add("filesystem", was.filesystem, now.filesystem);
  add("store inode", was.store_inode, now.store_inode);
  add("data file inode", was.data_inode, now.data_inode);
  return out;
}

// Before Node::open: takes a new incarnation when the directory is not where its FINGERPRINT
// says, or when asked to. Returns why it did (empty: it did not). A new directory (no replica in
// the store yet) has nothing to renew. Statuses: those of the store, kCorruption (undecodable
// node.replica), kInternal (incarnation exhausted).
Result<std::string> renew_identity_if_moved(store::Store& store, const std::string& dir, const Place& here,
                                            bool force, Logger* logger) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store.begin_write());
  auto rep = txn->get(store::Table::kMeta, format::kReplicaKey);
  if (!rep.ok()) {
    if (rep.status().code() == Code::kNotFound) return std::string();
    return rep.status();
  }
  crdt::ReplicaId current;
  if (!crdt::ReplicaId::decode(*rep, current)) {
    return Status(Code::kCorruption, "bad replica id", "meta/node.replica");
  }
  const std::optional<Recorded> recorded = read_fingerprint(dir + "/FINGERPRINT");
  std::string reason;
  if (force) {
    reason = "a new incarnation was requested (restore)";
  } else if (!recorded) {
    reason = "FINGERPRINT is missing or unreadable (a directory from before fingerprints, or a partial copy)";
  } else if (recorded->place != here) {
    reason = str_cat("the data directory was copied or moved (", describe_move(recorded->place, here), ")");
  } else if (recorded->replica.identity != current.identity) {
    reason = "the store holds another replica than the one recorded for this directory";
  } else if (recorded->replica.incarnation > current.incarnation) {
    reason = str_cat("the store is an older copy put back in place (it holds incarnation ", current.incarnation,
                     ", this directory was last opened as ", recorded->replica.incarnation, ")");
  }
  if (reason.empty()) {
    txn->abort();
    return reason;
  }
  // One above every incarnation this identity may have used here: the store's, and the recorded
  // one when the store was put back from an older copy.
  std::uint32_t base = current.incarnation;
  if (recorded && recorded->replica.identity == current.identity) {
    base = std::max(base, recorded->replica.incarnation);
  }
  if (base == std::numeric_limits<std::uint32_t>::max()) {
    return Status(Code::kInternal, "replica incarnation exhausted", "meta/node.replica");
  }
  // New identity bytes as well: copies of one source (a golden image cloned to many devices, one
  // backup restored twice) all detect the same move and would all take the same next
  // incarnation; fresh random identity bytes keep their dots apart. The incarnation still counts
  // up, so the id also tells how many times this directory's replica was renewed.
  crdt::ReplicaId next = current;
  std::random_device rd;
  for (auto& b : next.identity) b = static_cast<std::uint8_t>(rd());
  next.incarnation = base + 1;
  SHOAL_RETURN_IF_ERROR(txn->put(store::Table::kMeta, format::kReplicaKey, next.encode()));
  SHOAL_RETURN_IF_ERROR(txn->commit());
  reason += str_cat("; new incarnation ", next.to_string(), " (was ", current.to_string(), ")");
  SHOAL_LOG(logger, kWarn, "data_dir", dir, ": ", reason);
  return reason;
}

}  // namespace

namespace {

// Creates the directory if needed and takes its lock. Returns the lock's file descriptor (closing
// it releases the lock). Statuses: those of open_data_dir for the lock.
Result<int> lock_data_dir(const std::string& path, Logger* logger) {
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
    SHOAL_LOG(logger, kWarn, "data_dir", "cannot write the PID into ", lock_path, ": ", std::strerror(errno));
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<OpenDataDir>> open_data_dir(const std::string& path, DataDirOptions options) {
  SHOAL_ASSIGN_OR_RETURN(const int fd, lock_data_dir(path, options.node.logger));
  store::LmdbStoreOptions so;
  so.path = path + "/store";
  so.map_size_max_bytes = options.max_store_bytes;
  auto store = store::LmdbStore::open(so);
  if (!store.ok()) {
    ::close(fd);
    return store.status();
  }
  // The identity check runs on the store before the node exists, so no dot is ever issued under
  // an identity that a copy of this directory also holds.
  std::optional<Place> here;
  std::string reason;
  if (!options.skip_fingerprint_for_testing) {
    auto place = place_of(path, options.machine_id_for_testing);
    if (!place.ok()) {
      ::close(fd);
      return place.status();
    }
    here = *place;
    auto renewed = renew_identity_if_moved(**store, path, *here, options.new_incarnation, options.node.logger);
    if (!renewed.ok()) {
      ::close(fd);
      return renewed.status();
    }
    reason = std::move(renewed).value();
  }
  Logger* logger = options.node.logger;
  auto dir = std::make_unique<OpenDataDir>(path, fd, std::move(store).value());
  dir->set_new_incarnation_reason(std::move(reason));
  SHOAL_RETURN_IF_ERROR(dir->open_node(std::move(options.node)));
  if (here) {
    const Recorded now{*here, dir->node().replica()};
    const std::optional<Recorded> was = read_fingerprint(path + "/FINGERPRINT");
    if (!was || render(*was) != render(now)) {
      if (Status s = write_fingerprint(path, now); !s.ok()) {
        SHOAL_LOG(logger, kWarn, "data_dir", "cannot record the fingerprint (the next open will take a new "
                  "incarnation): ", s.to_string());
      }
    }
  }
  return dir;
}

// --- Maintenance ---

namespace {

// Closes the lock's descriptor (releasing the lock) when it goes.
struct LockGuard {
  int fd;
  ~LockGuard() { ::close(fd); }
};

std::uint64_t file_bytes(const std::string& file) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(file, ec);
  return ec ? 0 : static_cast<std::uint64_t>(n);
}

// A data directory's store must exist before it is locked (locking creates the directory).
Status require_store(const std::string& path) {
  if (!std::filesystem::exists(path + "/store/data.mdb")) {
    return Status(Code::kNotFound, "no Shoal store here (no store/data.mdb)", path);
  }
  return {};
}

// A backup's `dest` must lie outside the data directory `path`: a copy inside it would share the
// fate it is meant to survive, and travel with every later copy of the directory.
Status require_outside(const std::string& path, const std::string& dest) {
  const auto resolved = [](const std::string& p) {
    std::error_code ec;
    std::filesystem::path r = std::filesystem::weakly_canonical(p, ec);
    if (ec) r = std::filesystem::absolute(p, ec).lexically_normal();
    if (!r.has_filename()) r = r.parent_path();  // "dir/" -> "dir"
    return r;
  };
  const std::filesystem::path dir = resolved(path), to = resolved(dest);
  if (std::mismatch(dir.begin(), dir.end(), to.begin(), to.end()).first == dir.end()) {
    return Status(Code::kInvalidArgument,
                  str_cat("the backup destination is inside the data directory ", path,
                          ": choose a directory outside it"),
                  dest);
  }
  return {};
}

// `dir` must not exist or be empty; it is created.
Status require_empty(const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec)) {
    return Status(Detail::kAlreadyExists, "the destination exists and is not empty", dir);
  }
  std::filesystem::create_directories(dir + "/store", ec);
  if (ec) return Status(Code::kIo, str_cat("cannot create: ", ec.message()), dir + "/store");
  return {};
}

Result<std::string> stored_replica(store::Store& store) {
  SHOAL_ASSIGN_OR_RETURN(auto txn, store.begin_read());
  auto rep = txn->get(store::Table::kMeta, format::kReplicaKey);
  if (!rep.ok()) {
    if (rep.status().code() == Code::kNotFound) return std::string("(none)");
    return rep.status();
  }
  crdt::ReplicaId id;
  if (!crdt::ReplicaId::decode(*rep, id)) return Status(Code::kCorruption, "bad replica id", "meta/node.replica");
  return id.to_string();
}

// Copies the store of `src` (locked by the caller, or a backup) into `dest`/store.
Result<StoreCopyReport> copy_store(const std::string& src, const std::string& dest_store, bool compact) {
  store::LmdbStoreOptions so;
  so.path = src + "/store";
  SHOAL_ASSIGN_OR_RETURN(auto store, store::LmdbStore::open(so));
  StoreCopyReport r;
  SHOAL_ASSIGN_OR_RETURN(r.replica, stored_replica(*store));
  SHOAL_RETURN_IF_ERROR(store->copy_to(dest_store, compact));
  r.source_bytes = file_bytes(so.path + "/data.mdb");
  r.copy_bytes = file_bytes(dest_store + "/data.mdb");
  return r;
}

}  // namespace

Result<StoreCopyReport> OpenDataDir::backup_to(const std::string& dest, bool compact) {
  auto* lmdb = dynamic_cast<store::LmdbStore*>(store_.get());
  if (lmdb == nullptr) return Status(Code::kUnimplemented, "this store cannot be copied");
  SHOAL_RETURN_IF_ERROR(require_outside(path_, dest));
  SHOAL_RETURN_IF_ERROR(require_empty(dest));
  StoreCopyReport r;
  r.replica = node_ ? node_->replica().to_string() : std::string();
  SHOAL_RETURN_IF_ERROR(lmdb->copy_to(dest + "/store", compact));
  r.source_bytes = file_bytes(path_ + "/store/data.mdb");
  r.copy_bytes = file_bytes(dest + "/store/data.mdb");
  return r;
}

Result<StoreCopyReport> backup_data_dir(const std::string& path, const std::string& dest, bool compact) {
  SHOAL_RETURN_IF_ERROR(require_store(path));
  SHOAL_ASSIGN_OR_RETURN(const int fd, lock_data_dir(path, nullptr));
  LockGuard lock{fd};
  SHOAL_RETURN_IF_ERROR(require_outside(path, dest));
  SHOAL_RETURN_IF_ERROR(require_empty(dest));
  return copy_store(path, dest + "/store", compact);
}

Result<StoreCopyReport> restore_data_dir(const std::string& backup, const std::string& path,
                                         DataDirOptions options) {
  SHOAL_RETURN_IF_ERROR(require_store(backup));
  SHOAL_RETURN_IF_ERROR(require_empty(path));
  StoreCopyReport r;
  {
    SHOAL_ASSIGN_OR_RETURN(const int fd, lock_data_dir(path, options.node.logger));
    LockGuard lock{fd};
    SHOAL_ASSIGN_OR_RETURN(r, copy_store(backup, path + "/store", false));
  }
  options.new_incarnation = true;
  SHOAL_ASSIGN_OR_RETURN(auto dir, open_data_dir(path, std::move(options)));
  r.replica = dir->node().replica().to_string();
  return r;
}

Result<StoreCopyReport> compact_data_dir(const std::string& path) {
  SHOAL_RETURN_IF_ERROR(require_store(path));
  SHOAL_ASSIGN_OR_RETURN(const int fd, lock_data_dir(path, nullptr));
  LockGuard lock{fd};
  const std::string store_dir = path + "/store";
  const std::string fresh = path + "/store.compact";
  std::error_code ec;
  std::filesystem::remove_all(fresh, ec);  // left by a compaction that crashed before the exchange
  std::filesystem::create_directories(fresh, ec);
  if (ec) return Status(Code::kIo, str_cat("cannot create: ", ec.message()), fresh);
  SHOAL_ASSIGN_OR_RETURN(const Place before, place_of(path, std::nullopt));
  const std::optional<Recorded> recorded = read_fingerprint(path + "/FINGERPRINT");
  SHOAL_ASSIGN_OR_RETURN(StoreCopyReport r, copy_store(path, fresh, true));
  // The old environment is closed (copy_store's store is gone) before the exchange.
  if (::renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, store_dir.c_str(), RENAME_EXCHANGE) != 0) {
    const int err = errno;
    std::filesystem::remove_all(fresh, ec);
    return Status(err == EINVAL || err == ENOSYS ? Code::kUnimplemented : Code::kIo,
                  str_cat("cannot exchange the compacted store into place: ", std::strerror(err)), store_dir);
  }
  // The exchange is in place; a failed directory sync only means a crash now could undo it (the
  // old store, still whole, would come back): said in the report, not an error.
  if (Status s = fsync_dir(path); !s.ok()) r.note = str_cat("the exchange may not be durable yet: ", s.to_string());
  std::filesystem::remove_all(fresh, ec);  // now the old store
  // Same data, new inodes: keep the directory's identity when it was in its recorded place.
  if (recorded && recorded->place == before) {
    auto after = place_of(path, std::nullopt);
    if (after.ok()) {
      if (Status s = write_fingerprint(path, Recorded{*after, recorded->replica}); !s.ok()) {
        r.note = str_cat("the fingerprint was not updated, so the next open takes a new incarnation: ", s.to_string());
      }
    } else {
      r.note = str_cat("the fingerprint was not updated, so the next open takes a new incarnation: ",
                       after.status().to_string());
    }
  }
  return r;
}

}  // namespace shoal::node

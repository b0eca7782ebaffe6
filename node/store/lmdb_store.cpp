#include "node/store/lmdb_store.hpp"

#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <algorithm>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace shoal::store {

static_assert(std::is_same_v<MDB_dbi, unsigned int>, "dbi_ mirrors MDB_dbi");

namespace {

std::size_t index_of(Table t) { return static_cast<std::size_t>(t); }

MDB_val to_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
std::string_view to_view(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

// Maps an LMDB or errno result to a Status (docs/storage.md, "Errors").
Status to_status(int rc, std::string_view what, std::string context = {}) {
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  switch (rc) {
    case MDB_MAP_FULL: return Status(Detail::kMapFull, std::move(msg), std::move(context));
    case ENOSPC: return Status(Detail::kDiskFull, std::move(msg), std::move(context));
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND: return Status(Code::kCorruption, std::move(msg), std::move(context));
    case MDB_INVALID: return Status(Detail::kBadMagic, std::move(msg), std::move(context));
    case MDB_VERSION_MISMATCH:
      return Status(Detail::kVersionMismatch, std::move(msg), std::move(context));
    case MDB_READERS_FULL: return Status(Code::kOverloaded, std::move(msg), std::move(context));
    case MDB_BAD_VALSIZE: return Status(Detail::kTooLarge, std::move(msg), std::move(context));
    case MDB_NOTFOUND: return Status(Code::kNotFound, std::move(msg), std::move(context));
    default: return Status(Code::kIo, std::move(msg), std::move(context));
  }
}

std::uint64_t round_to_page(std::uint64_t bytes) {
  const long page = sysconf(_SC_PAGESIZE);
  const std::uint64_t p = page > 0 ? static_cast<std::uint64_t>(page) : 4096u;
  return (bytes + p - 1) / p * p;
}

// The value in place, in the memory map: valid while the transaction lives (and, in a write
// transaction, until its next write).
Result<std::string_view> txn_get_view(MDB_txn* txn, MDB_dbi dbi, Table table, std::string_view key) {
  if (key.empty()) return Status(Code::kNotFound, "no such key", std::string(table_name(table)));
  MDB_val k = to_val(key);
  MDB_val v;
  const int rc = mdb_get(txn, dbi, &k, &v);
  if (rc == MDB_NOTFOUND) {
    return Status(Code::kNotFound, "no such key", std::string(table_name(table)));
  }
  if (rc != 0) return to_status(rc, "mdb_get", std::string(table_name(table)));
  return to_view(v);
}

Result<std::string> txn_get(MDB_txn* txn, MDB_dbi dbi, Table table, std::string_view key) {
  SHOAL_ASSIGN_OR_RETURN(std::string_view v, txn_get_view(txn, dbi, table, key));
  return std::string(v);
}

Status txn_scan(MDB_txn* txn, MDB_dbi dbi, Table table, const Range& range, Visitor visit) {
  MDB_cursor* cur = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc != 0) return to_status(rc, "mdb_cursor_open", std::string(table_name(table)));
  MDB_val k{0, nullptr};
  MDB_val v{0, nullptr};
  std::uint64_t n = 0;
  if (!range.reverse) {
    if (range.begin.empty()) {
      rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    } else {
      k = to_val(range.begin);
      rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    while (rc == 0) {
      const std::string_view key = to_view(k);
      if (range.end && key >= *range.end) break;
      if (!visit(key, to_view(v))) break;
      if (range.limit != 0 && ++n >= range.limit) break;
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
  } else {
    if (range.end && !range.end->empty()) {
      k = to_val(*range.end);
      rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
      if (rc == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
      } else if (rc == MDB_NOTFOUND) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
      }
    } else if (range.end) {
      rc = MDB_NOTFOUND;  // end == "": nothing sorts below the empty key
    } else {
      rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    }
    while (rc == 0) {
      const std::string_view key = to_view(k);
      if (key < range.begin) break;
      if (!visit(key, to_view(v))) break;
      if (range.limit != 0 && ++n >= range.limit) break;
      rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
    }
  }
  mdb_cursor_close(cur);
  if (rc != 0 && rc != MDB_NOTFOUND) {
    return to_status(rc, "mdb_cursor_get", std::string(table_name(table)));
  }
  return ok_status();
}

Result<std::uint64_t> txn_count(MDB_txn* txn, MDB_dbi dbi, Table table) {
  MDB_stat st;
  const int rc = mdb_stat(txn, dbi, &st);
  if (rc != 0) return to_status(rc, "mdb_stat", std::string(table_name(table)));
  return static_cast<std::uint64_t>(st.ms_entries);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Read transactions.

class LmdbStore::Read final : public ReadTxn {
 public:
  Read(LmdbStore* store, MDB_txn* txn, std::uint64_t mapping)
      : store_(store), txn_(txn), stamp_{static_cast<std::uint64_t>(mdb_txn_id(txn)), mapping} {}
  ~Read() override { store_->end_read(txn_); }
  Stamp stamp() const noexcept override { return stamp_; }
  Result<std::string> get(Table table, std::string_view key) override {
    return txn_get(txn_, store_->dbi_[index_of(table)], table, key);
  }
  Result<std::string_view> get_view(Table table, std::string_view key) override {
    return txn_get_view(txn_, store_->dbi_[index_of(table)], table, key);
  }
  Status scan(Table table, const Range& range, Visitor visit) override {
    return txn_scan(txn_, store_->dbi_[index_of(table)], table, range, visit);
  }
  Result<std::uint64_t> count(Table table) override {
    return txn_count(txn_, store_->dbi_[index_of(table)], table);
  }

 private:
  LmdbStore* store_;
  MDB_txn* txn_;
  Stamp stamp_;
};

// ---------------------------------------------------------------------------------------------
// The write transaction, with its replay log for map growth.

class LmdbStore::Write final : public WriteTxn {
 public:
  Write(LmdbStore* store, std::unique_lock<std::mutex> lock, MDB_txn* txn)
      : store_(store), lock_(std::move(lock)), txn_(txn) {}
  ~Write() override { finish(); }

  Result<std::string> get(Table table, std::string_view key) override {
    SHOAL_RETURN_IF_ERROR(check_live());
    return txn_get(txn_, dbi(table), table, key);
  }
  Result<std::string_view> get_view(Table table, std::string_view key) override {
    SHOAL_RETURN_IF_ERROR(check_live());
    return txn_get_view(txn_, dbi(table), table, key);
  }
  Status scan(Table table, const Range& range, Visitor visit) override {
    SHOAL_RETURN_IF_ERROR(check_live());
    return txn_scan(txn_, dbi(table), table, range, visit);
  }
  Result<std::uint64_t> count(Table table) override {
    SHOAL_RETURN_IF_ERROR(check_live());
    return txn_count(txn_, dbi(table), table);
  }

  Status put(Table table, std::string_view key, std::string_view value) override {
    SHOAL_RETURN_IF_ERROR(check_live());
    SHOAL_RETURN_IF_ERROR(store_->check_value(table, key, value));
    return apply(logged(table, true, key, value));
  }
  Status del(Table table, std::string_view key) override {
    SHOAL_RETURN_IF_ERROR(check_live());
    SHOAL_RETURN_IF_ERROR(store_->check_key(table, key));
    return apply(logged(table, false, key, {}));
  }

  Status commit() override {
    SHOAL_RETURN_IF_ERROR(check_live());
    while (true) {
      // mdb_txn_commit frees the transaction whether or not it succeeds.
      const int rc = mdb_txn_commit(txn_);
      txn_ = nullptr;
      if (rc == 0) break;
      if (rc != MDB_MAP_FULL) return fail(to_status(rc, "mdb_txn_commit"));
      Status s = regrow_and_replay();
      if (!s.ok()) return fail(std::move(s));
    }
    finish();
    return ok_status();
  }

  void abort() noexcept override { finish(); }

 private:
  struct Op {
    Table table;
    bool is_put;
    std::string key;
    std::string value;
  };

  MDB_dbi dbi(Table t) const { return store_->dbi_[index_of(t)]; }

  Status check_live() {
    SHOAL_ASSERT(!finished_);  // using a committed or aborted transaction is a bug
    return failed_;
  }

  int apply_op(const Op& op) {
    MDB_val k = to_val(op.key);
    if (op.is_put) {
      MDB_val v = to_val(op.value);
      return mdb_put(txn_, dbi(op.table), &k, &v, 0);
    }
    const int rc = mdb_del(txn_, dbi(op.table), &k, nullptr);
    return rc == MDB_NOTFOUND ? 0 : rc;
  }

  // The log's op for this key, now saying `is_put`/`value`. One op per key: a later write to a key
  // replaces its earlier one in place, since the replay's outcome depends only on each key's last
  // write (writes to different keys commute). A value rewritten many times in one transaction
  // (a vector slab, docs/node-format.md) is then logged once, not once per write.
  const Op& logged(Table table, bool is_put, std::string_view key, std::string_view value) {
    std::string id;
    id.reserve(key.size() + 1);
    id.push_back(static_cast<char>(table));
    id.append(key);
    auto [it, fresh] = log_index_.try_emplace(std::move(id), log_.size());
    if (fresh) {
      log_.push_back(Op{table, is_put, std::string(key), std::string(value)});
      return log_.back();
    }
    Op& op = log_[it->second];
    op.is_put = is_put;
    op.value.assign(value);
    return op;
  }

  Status apply(const Op& op) {
    const int rc = apply_op(op);
    if (rc == 0) return ok_status();
    if (rc != MDB_MAP_FULL) return fail(to_status(rc, op.is_put ? "mdb_put" : "mdb_del"));
    mdb_txn_abort(txn_);
    txn_ = nullptr;
    Status s = regrow_and_replay();
    if (!s.ok()) return fail(std::move(s));
    return ok_status();
  }

  // Called with txn_ already freed: grows the map, then replays the log in a new transaction,
  // growing again as often as needed.
  Status regrow_and_replay() {
    while (true) {
      SHOAL_RETURN_IF_ERROR(store_->grow());
      int rc = mdb_txn_begin(store_->env_, nullptr, 0, &txn_);
      if (rc != 0) {
        txn_ = nullptr;
        return to_status(rc, "mdb_txn_begin");
      }
      for (const Op& op : log_) {
        rc = apply_op(op);
        if (rc != 0) break;
      }
      if (rc == 0) return ok_status();
      mdb_txn_abort(txn_);
      txn_ = nullptr;
      if (rc != MDB_MAP_FULL) return to_status(rc, "replaying after map growth");
    }
  }

  Status fail(Status s) {
    if (txn_ != nullptr) {
      mdb_txn_abort(txn_);
      txn_ = nullptr;
    }
    log_.clear();
    log_.shrink_to_fit();
    log_index_.clear();
    failed_ = s;
    return s;
  }

  void finish() noexcept {
    if (finished_) return;
    finished_ = true;
    if (txn_ != nullptr) mdb_txn_abort(txn_);
    txn_ = nullptr;
    log_.clear();
    log_index_.clear();
    store_->writer_thread_.store(std::thread::id{});
    lock_.unlock();
  }

  LmdbStore* store_;
  std::unique_lock<std::mutex> lock_;
  MDB_txn* txn_;
  std::vector<Op> log_;
  std::unordered_map<std::string, std::size_t> log_index_;  // table byte + key -> its op in log_
  Status failed_;
  bool finished_ = false;
};

// ---------------------------------------------------------------------------------------------
// The store.

LmdbStore::LmdbStore(const LmdbStoreOptions& options) : options_(options) {
  limits_.max_value_bytes = options.max_value_bytes;
}

LmdbStore::~LmdbStore() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    SHOAL_ASSERT(active_readers_ == 0);  // transactions must die before their store
  }
  SHOAL_ASSERT(writer_thread_.load() == std::thread::id{});
  // Kept read transactions hold reader slots; LMDB wants every transaction gone before close.
  for (MDB_txn* txn : idle_reads_) mdb_txn_abort(txn);
  idle_reads_.clear();
  if (env_ != nullptr) mdb_env_close(env_);
}

Result<std::unique_ptr<LmdbStore>> LmdbStore::open(const LmdbStoreOptions& options) {
  if (options.path.empty()) {
    return Status(Detail::kOutOfRange, "the store path is empty");
  }
  if (options.map_size_initial_bytes < (std::uint64_t{64} << 10)) {
    return Status(Detail::kOutOfRange,
                  "map_size_initial_bytes " + std::to_string(options.map_size_initial_bytes) +
                      " is below the minimum of 65536",
                  options.path);
  }
  std::unique_ptr<LmdbStore> store(new LmdbStore(options));
  store->options_.map_size_initial_bytes = round_to_page(options.map_size_initial_bytes);
  store->options_.map_size_max_bytes = round_to_page(
      std::max(options.map_size_max_bytes, store->options_.map_size_initial_bytes));
  SHOAL_RETURN_IF_ERROR(store->open_impl());
  return store;
}

Status LmdbStore::open_impl() {
  const std::string& path = options_.path;
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status(Code::kIo, "cannot create the store directory: " + ec.message(), path);

  int rc = mdb_env_create(&env_);
  if (rc != 0) {
    env_ = nullptr;
    return to_status(rc, "mdb_env_create", path);
  }
  rc = mdb_env_set_maxdbs(env_, static_cast<MDB_dbi>(kTableCount + 2));
  if (rc == 0) rc = mdb_env_set_maxreaders(env_, options_.max_readers);
  if (rc == 0) rc = mdb_env_set_mapsize(env_, options_.map_size_initial_bytes);
  if (rc != 0) return to_status(rc, "configuring the environment", path);
  // MDB_NOTLS: read transactions are not bound to threads (see the header's thread rules).
  // No MDB_NOSYNC / MDB_NOMETASYNC / MDB_WRITEMAP: every commit is synced before it returns.
  rc = mdb_env_open(env_, path.c_str(), MDB_NOTLS, 0600);
  if (rc != 0) return to_status(rc, "mdb_env_open", path);

  rc = mdb_reader_check(env_, &stale_readers_cleared_);
  if (rc != 0) return to_status(rc, "mdb_reader_check", path);

  MDB_envinfo info;
  rc = mdb_env_info(env_, &info);
  if (rc != 0) return to_status(rc, "mdb_env_info", path);
  map_size_.store(static_cast<std::uint64_t>(info.me_mapsize));

  const int max_key = mdb_env_get_maxkeysize(env_);
  limits_.max_key_bytes = max_key > 0 ? static_cast<std::size_t>(max_key) : kDefaultMaxKeyBytes;

  // Create the named databases and check or write the schema version, in one transaction.
  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return to_status(rc, "mdb_txn_begin", path);
  for (Table t : kAllTables) {
    const std::string name(table_name(t));
    rc = mdb_dbi_open(txn, name.c_str(), MDB_CREATE, &dbi_[index_of(t)]);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return to_status(rc, "mdb_dbi_open " + name, path);
    }
  }
  const std::string expected = encode_u64_be(kSchemaVersion).substr(4);
  MDB_val k = to_val(kSchemaVersionKey);
  MDB_val v;
  rc = mdb_get(txn, dbi_[index_of(Table::kMeta)], &k, &v);
  // Versions 1 and 2 lack only tables that mdb_dbi_open just created empty (vectors,
  // index_dirty); version 3 differs only in the delta buffer's entries, which version 4 writes
  // without payloads, version 5 only in index_dirty's values (empty before version 6, which
  // names the record; the node then scans its records once), and version 6 only in the length
  // of vector slabs (version 7 stores a slab up to its last present slot; the full length that
  // version 6 wrote is a valid version 7 slab): the upgrade is the new version number, in this
  // transaction. Filling the
  // vectors table and rewriting the buffer's entries are the node core's job (docs/node-format.md,
  // "Vectors apart from their records" and "Delta-buffer entries without payloads").
  std::uint32_t older = 0;
  for (std::uint32_t version = 1; version < kSchemaVersion && rc == 0; ++version) {
    if (to_view(v) == encode_u64_be(version).substr(4)) older = version;
  }
  if (rc == 0 && older != 0) {
    upgraded_from_ = older;
    MDB_val val = to_val(expected);
    rc = mdb_put(txn, dbi_[index_of(Table::kMeta)], &k, &val, 0);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return to_status(rc, "upgrading the schema version", path);
    }
  } else if (rc == 0) {
    const std::string_view found = to_view(v);
    if (found != expected) {
      mdb_txn_abort(txn);
      std::uint32_t found_version = 0;
      for (char c : found) found_version = (found_version << 8) | static_cast<unsigned char>(c);
      return Status(Detail::kVersionMismatch,
                    "store schema version " + std::to_string(found_version) +
                        " (" + std::to_string(found.size()) + " bytes), this build reads " +
                        std::to_string(kSchemaVersion),
                    path);
    }
  } else if (rc == MDB_NOTFOUND) {
    for (Table t : kAllTables) {
      MDB_stat st;
      rc = mdb_stat(txn, dbi_[index_of(t)], &st);
      if (rc != 0 || st.ms_entries != 0) {
        mdb_txn_abort(txn);
        if (rc != 0) return to_status(rc, "mdb_stat", path);
        return Status(Code::kCorruption,
                      "table " + std::string(table_name(t)) +
                          " holds data but meta has no schema version",
                      path);
      }
    }
    MDB_val val = to_val(expected);
    rc = mdb_put(txn, dbi_[index_of(Table::kMeta)], &k, &val, 0);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return to_status(rc, "writing the schema version", path);
    }
  } else {
    mdb_txn_abort(txn);
    return to_status(rc, "reading the schema version", path);
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return to_status(rc, "committing the schema", path);
  return ok_status();
}

Result<std::unique_ptr<ReadTxn>> LmdbStore::begin_read() {
  MDB_txn* txn = nullptr;
  std::uint64_t mapping = 0;
  {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !growing_; });
    ++active_readers_;
    // The map cannot move until this reader ends (grow waits for active_readers_ == 0, and
    // counts under mu_).
    mapping = grow_count_.load();
    if (!idle_reads_.empty()) {
      txn = idle_reads_.back();
      idle_reads_.pop_back();
    }
  }
  if (txn != nullptr) {
    // LMDB's pattern for frequent readers: renewing a reset transaction takes a fresh snapshot in
    // the reader slot it kept, without allocating a transaction or claiming a slot (D43).
    const int rc = mdb_txn_renew(txn);
    if (rc == 0) return std::unique_ptr<ReadTxn>(std::make_unique<Read>(this, txn, mapping));
    mdb_txn_abort(txn);  // and begin a new one below
    txn = nullptr;
  }
  const int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) {
    end_read(nullptr);
    return to_status(rc, "mdb_txn_begin (read)", options_.path);
  }
  return std::unique_ptr<ReadTxn>(std::make_unique<Read>(this, txn, mapping));
}

Status LmdbStore::copy_to(const std::string& dir, bool compact) {
  const std::string file = dir + "/data.mdb";
  if (::access(file.c_str(), F_OK) == 0) return Status(Code::kIo, "the destination already holds a store", file);
  {
    // Registered as a reader: mdb_env_copy2 holds a read transaction, and the map must not be
    // resized under it.
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return !growing_; });
    ++active_readers_;
  }
  const int rc = mdb_env_copy2(env_, dir.c_str(), compact ? MDB_CP_COMPACT : 0u);
  end_read(nullptr);
  if (rc != 0) return to_status(rc, compact ? "mdb_env_copy2 (compact)" : "mdb_env_copy2", file);
  // mdb_env_copy2 creates the file 0666 & ~umask; the store's own file is 0600 (mdb_env_open).
  if (::chmod(file.c_str(), 0600) != 0) return to_status(errno, "chmod 0600 of the copy", file);
  for (const std::string& p : {file, dir}) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::fsync(fd) != 0) {
      const int err = errno;
      if (fd >= 0) ::close(fd);
      return to_status(err, "fsync of the copy", p);
    }
    ::close(fd);
  }
  return {};
}

void LmdbStore::end_read(MDB_txn* txn) noexcept {
  if (txn != nullptr) {
    // Reset releases the snapshot at once (old pages are free for writers again, and a reset
    // transaction does not block mdb_env_set_mapsize, which only refuses an open write
    // transaction); only the reader slot stays claimed, for the next begin_read to renew.
    mdb_txn_reset(txn);
  }
  std::lock_guard<std::mutex> lk(mu_);
  if (txn != nullptr) {
    if (idle_reads_.size() < kIdleReadsKept) {
      idle_reads_.push_back(txn);
    } else {
      mdb_txn_abort(txn);
    }
  }
  --active_readers_;
  cv_.notify_all();
}

Result<std::unique_ptr<WriteTxn>> LmdbStore::begin_write() {
  // A second writer on the same thread would wait for itself forever.
  SHOAL_ASSERT(writer_thread_.load() != std::this_thread::get_id());
  std::unique_lock<std::mutex> lock(write_mu_);
  writer_thread_.store(std::this_thread::get_id());
  MDB_txn* txn = nullptr;
  const int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) {
    writer_thread_.store(std::thread::id{});
    return to_status(rc, "mdb_txn_begin (write)", options_.path);
  }
  return std::unique_ptr<WriteTxn>(std::make_unique<Write>(this, std::move(lock), txn));
}

Status LmdbStore::grow() {
  const std::uint64_t current = map_size_.load();
  const std::uint64_t max = options_.map_size_max_bytes;
  if (current >= max) {
    return Status(Detail::kMapFull,
                  "the map is full at its configured maximum of " + std::to_string(max) +
                      " bytes",
                  options_.path);
  }
  const std::uint64_t next = round_to_page(std::min(max, current * 2));
  std::unique_lock<std::mutex> lk(mu_);
  growing_ = true;
  const bool idle = cv_.wait_for(lk, std::chrono::nanoseconds(options_.grow_wait.ns()),
                                 [&] { return active_readers_ == 0; });
  if (!idle) {
    growing_ = false;
    cv_.notify_all();
    return Status(Detail::kMapFull,
                  "the map is full at " + std::to_string(current) + " bytes and cannot grow while " +
                      std::to_string(active_readers_) + " read transactions stay open",
                  options_.path);
  }
  // No transaction of this process is active: the writer aborted its own, readers are held off.
  const int rc = mdb_env_set_mapsize(env_, next);
  growing_ = false;
  cv_.notify_all();
  if (rc != 0) return to_status(rc, "mdb_env_set_mapsize", options_.path);
  map_size_.store(next);
  grow_count_.fetch_add(1);
  return ok_status();
}

}  // namespace shoal::store

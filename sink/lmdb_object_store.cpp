// sink/lmdb_object_store.cpp: the ObjectStore on LMDB (see the header).
#include "sink/lmdb_object_store.hpp"

#include <lmdb.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace shoal::sink {

struct LmdbObjectStore::Env {
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  ~Env() {
    if (env != nullptr) mdb_env_close(env);
  }
};

namespace {

Status lmdb_error(int rc, std::string_view what, std::string context = {}) {
  if (rc == MDB_MAP_FULL) {
    return Status(Detail::kMapFull, std::string(what) + ": the LMDB map is full", std::move(context));
  }
  if (rc == ENOSPC) {
    return Status(Detail::kDiskFull, std::string(what) + ": no space left on device",
                  std::move(context));
  }
  return Status(Code::kIo, std::string(what) + ": " + mdb_strerror(rc), std::move(context));
}

MDB_val val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

// Aborts a transaction unless it was committed.
struct TxnGuard {
  MDB_txn* txn = nullptr;
  ~TxnGuard() {
    if (txn != nullptr) mdb_txn_abort(txn);
  }
  int commit() {
    int rc = mdb_txn_commit(txn);
    txn = nullptr;
    return rc;
  }
};

}  // namespace

Result<std::unique_ptr<LmdbObjectStore>> LmdbObjectStore::open(const std::string& dir,
                                                               Options options) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status(Code::kIo, std::string("cannot create the object store directory: ") +
                                 std::strerror(errno), dir);
  }
  auto env = std::make_unique<Env>();
  int rc = mdb_env_create(&env->env);
  if (rc != 0) return lmdb_error(rc, "mdb_env_create", dir);
  rc = mdb_env_set_mapsize(env->env, options.map_size_bytes);
  if (rc != 0) return lmdb_error(rc, "mdb_env_set_mapsize", dir);
  rc = mdb_env_open(env->env, dir.c_str(), MDB_NOTLS, 0600);
  if (rc != 0) return lmdb_error(rc, "mdb_env_open", dir);
  int dead = 0;
  (void)mdb_reader_check(env->env, &dead);
  const auto maxkey = static_cast<std::size_t>(mdb_env_get_maxkeysize(env->env));
  if (options.limits.max_key_bytes > maxkey) options.limits.max_key_bytes = maxkey;
  TxnGuard txn;
  rc = mdb_txn_begin(env->env, nullptr, 0, &txn.txn);
  if (rc != 0) return lmdb_error(rc, "mdb_txn_begin", dir);
  rc = mdb_dbi_open(txn.txn, nullptr, 0, &env->dbi);
  if (rc != 0) return lmdb_error(rc, "mdb_dbi_open", dir);
  rc = txn.commit();
  if (rc != 0) return lmdb_error(rc, "mdb_txn_commit", dir);
  return std::unique_ptr<LmdbObjectStore>(new LmdbObjectStore(std::move(env), options, dir));
}

LmdbObjectStore::LmdbObjectStore(std::unique_ptr<Env> env, Options options, std::string dir)
    : env_(std::move(env)), options_(options), dir_(std::move(dir)) {}

LmdbObjectStore::~LmdbObjectStore() = default;

Status LmdbObjectStore::write(std::string_view key, const std::string_view* bytes) {
  TxnGuard txn;
  int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn.txn);
  if (rc != 0) return lmdb_error(rc, "mdb_txn_begin", std::string(key));
  MDB_val k = val(key);
  if (bytes != nullptr) {
    MDB_val v = val(*bytes);
    rc = mdb_put(txn.txn, env_->dbi, &k, &v, 0);
    if (rc != 0) return lmdb_error(rc, "mdb_put", std::string(key));
  } else {
    rc = mdb_del(txn.txn, env_->dbi, &k, nullptr);
    if (rc == MDB_NOTFOUND) return ok_status();
    if (rc != 0) return lmdb_error(rc, "mdb_del", std::string(key));
  }
  rc = txn.commit();
  if (rc != 0) return lmdb_error(rc, "mdb_txn_commit", std::string(key));
  return ok_status();
}

Status LmdbObjectStore::put(std::string_view key, std::string_view bytes) {
  SHOAL_RETURN_IF_ERROR(check_key(key, options_.limits));
  SHOAL_RETURN_IF_ERROR(check_object_size(bytes.size(), options_.limits));
  return write(key, &bytes);
}

Status LmdbObjectStore::remove(std::string_view key) {
  SHOAL_RETURN_IF_ERROR(check_key(key, options_.limits));
  return write(key, nullptr);
}

Result<std::string> LmdbObjectStore::get(std::string_view key) {
  SHOAL_RETURN_IF_ERROR(check_key(key, options_.limits));
  TxnGuard txn;
  int rc = mdb_txn_begin(env_->env, nullptr, MDB_RDONLY, &txn.txn);
  if (rc != 0) return lmdb_error(rc, "mdb_txn_begin", std::string(key));
  MDB_val k = val(key);
  MDB_val v{};
  rc = mdb_get(txn.txn, env_->dbi, &k, &v);
  if (rc == MDB_NOTFOUND) return Status(Detail::kNoSuchRecord, "no such object", std::string(key));
  if (rc != 0) return lmdb_error(rc, "mdb_get", std::string(key));
  return std::string(static_cast<const char*>(v.mv_data), v.mv_size);
}

Result<std::vector<std::string>> LmdbObjectStore::list(std::string_view prefix) {
  SHOAL_RETURN_IF_ERROR(check_prefix(prefix, options_.limits));
  TxnGuard txn;
  int rc = mdb_txn_begin(env_->env, nullptr, MDB_RDONLY, &txn.txn);
  if (rc != 0) return lmdb_error(rc, "mdb_txn_begin", std::string(prefix));
  MDB_cursor* cursor = nullptr;
  rc = mdb_cursor_open(txn.txn, env_->dbi, &cursor);
  if (rc != 0) return lmdb_error(rc, "mdb_cursor_open", std::string(prefix));
  std::vector<std::string> keys;
  MDB_val k{};
  MDB_val v{};
  if (prefix.empty()) {
    rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
  } else {
    k = val(prefix);
    rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  }
  Status status;
  while (rc == 0) {
    std::string_view key(static_cast<const char*>(k.mv_data), k.mv_size);
    if (key.substr(0, prefix.size()) != prefix) break;
    if (keys.size() == options_.limits.max_list_keys) {
      status = Status(Detail::kTooLarge, "more than " + std::to_string(options_.limits.max_list_keys) +
                                             " keys under the prefix", std::string(prefix));
      break;
    }
    keys.emplace_back(key);
    rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cursor);
  if (!status.ok()) return status;
  if (rc != 0 && rc != MDB_NOTFOUND) return lmdb_error(rc, "mdb_cursor_get", std::string(prefix));
  return keys;
}

}  // namespace shoal::sink
